//! The runtime: the one thread that owns the stack.
//!
//! [`Stack::new`] starts a thread that owns the device, the protocol core
//! ([`Interface`]), every timer, and the tasks spawned on it
//! ([`Stack::spawn`]). Application handles never touch protocol state: a
//! stream reads and writes its connection's shared buffers directly, and
//! control calls (listen, connect, close, options) are commands sent over a
//! channel. The runtime is woken only while it sleeps.
//!
//! Each turn of its loop: take every packet that is ready (up to
//! `rx_batch`) into the core, fire due timers, run the tasks those woke,
//! handle the commands (the tasks' included), dispatch each connection the
//! batch touched once (one ACK per connection per batch), write every
//! pending packet; then, after a short busy poll ([`Config::busy_poll`]),
//! sleep until the next deadline, a packet, or a command.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};

use crate::config::{random_seed, Config};
use crate::device::capture::Capture;
use crate::device::fault::FaultInjector;
use crate::device::pcap::PcapWriter;
use crate::device::tun::{TunDevice, TunOptions};
use crate::device::{Device, Waker};
use crate::iface::{Event, Interface};
use crate::stats::{DropReason, Stats};
use crate::tcp::stream::Stream;
use crate::tcp::{ConnId, ConnInfo, KeepaliveConfig, ListenerId, State, TcpError, TcpOption};
use crate::time::{Clock, Instant};
use crate::udp::{SocketId, UdpError};

mod executor;
mod reply;
mod tcp;
mod timer;
mod udp;

use crate::ip::IpOptions;
pub(crate) use executor::on_runtime;
use executor::{BoxFuture, Executor, ReadyQueue};
pub(crate) use reply::{reply, Reply};
pub(crate) use timer::{TimerKey, TimerQueue};
pub(crate) use udp::{UdpDelivery, UdpShared, UdpState};

pub(crate) use tcp::ListenerShared;

/// Size of the buffer packets are read into: the largest IPv4 packet.
const RX_BUFFER: usize = 65_536 + crate::wire::gso::VNET_HDR_LEN;

/// What a newly bound UDP socket gets back from the runtime.
pub(crate) struct UdpBinding {
    pub(crate) id: SocketId,
    pub(crate) local: SocketAddrV4,
    pub(crate) shared: Arc<UdpShared>,
}

/// The runtime's answer to a connect: the connection, its local address,
/// and the stream its handle shares with the core.
pub(crate) type Connecting = Result<(ConnId, SocketAddrV4, Arc<Stream>), TcpError>;

/// Requests from API handles to the runtime thread.
pub(crate) enum Command {
    UdpBind {
        local: SocketAddrV4,
        reply: Reply<Result<UdpBinding, UdpError>>,
    },
    UdpConnect {
        id: SocketId,
        remote: SocketAddrV4,
        reply: Reply<Result<(), UdpError>>,
    },
    UdpSend {
        id: SocketId,
        to: SocketAddrV4,
        payload: Vec<u8>,
        ip: IpOptions,
    },
    UdpClose {
        id: SocketId,
    },
    Stats {
        reply: Reply<Stats>,
    },
    TcpListen {
        local: SocketAddrV4,
        backlog: usize,
        reply: Reply<Result<(ListenerId, Arc<ListenerShared>), TcpError>>,
    },
    TcpAcceptMore {
        id: ListenerId,
    },
    TcpCloseListener {
        id: ListenerId,
    },
    TcpConnect {
        remote: SocketAddrV4,
        reply: Reply<Connecting>,
    },
    /// The application queued data while the core waited for it.
    TcpPush {
        id: ConnId,
    },
    /// The application's reads opened the receive window enough to
    /// announce.
    TcpWindowUpdate {
        id: ConnId,
    },
    TcpShutdown {
        id: ConnId,
    },
    TcpClose {
        id: ConnId,
    },
    TcpAbort {
        id: ConnId,
    },
    TcpSetOption {
        id: ConnId,
        opt: TcpOption,
        reply: Reply<Result<(), TcpError>>,
    },
    TcpSetListenerOption {
        id: ListenerId,
        opt: TcpOption,
        reply: Reply<Result<(), TcpError>>,
    },
    TcpSetNodelay {
        id: ConnId,
        nodelay: bool,
        reply: Reply<Result<(), TcpError>>,
    },
    TcpSetKeepalive {
        id: ConnId,
        keepalive: Option<KeepaliveConfig>,
        reply: Reply<Result<(), TcpError>>,
    },
    TcpInfo {
        id: ConnId,
        reply: Reply<Option<ConnInfo>>,
    },
    TcpConnections {
        reply: Reply<Vec<ConnInfo>>,
    },
    /// Run a task on the runtime thread.
    Spawn {
        task: BoxFuture,
    },
    Shutdown,
}

/// How other threads wake the runtime: the device's waker, fired only
/// while the runtime sleeps (or is about to).
pub(crate) struct RuntimeWaker {
    device: Waker,
    sleeping: AtomicBool,
}

impl RuntimeWaker {
    /// Wakes the runtime if it sleeps. Call after queueing the work it
    /// must see: the runtime checks its queues after announcing that it
    /// sleeps, and the fences order the two sides' flag and queue accesses
    /// (either the runtime sees the work, or this call sees it sleeping).
    pub(crate) fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.device.wake();
        }
    }

    /// The runtime is about to sleep; it must look at its queues once more.
    fn going_to_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> RuntimeWaker {
        RuntimeWaker {
            device: Waker::new(|| {}),
            sleeping: AtomicBool::new(false),
        }
    }
}

/// A cloneable handle to a running [`Stack`]: what tasks and the async
/// API ([`crate::aio`]) use to reach it from any thread.
#[derive(Clone)]
pub struct StackHandle {
    commands: Sender<Command>,
    waker: Arc<RuntimeWaker>,
    pub(crate) timers: Arc<TimerQueue>,
    pub(crate) addr: Ipv4Addr,
    /// The subnet's directed broadcast address.
    pub(crate) broadcast: Ipv4Addr,
    /// TTL of the packets the stack originates (`Config::ttl`).
    pub(crate) default_ttl: u8,
}

impl std::fmt::Debug for StackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl StackHandle {
    /// Queues a command and wakes the runtime if it sleeps.
    pub(crate) fn send(&self, cmd: Command) -> io::Result<()> {
        self.commands.send(cmd).map_err(|_| stack_gone())?;
        self.waker.wake();
        Ok(())
    }

    /// Sends a command that carries a reply and blocks for the answer.
    /// Fails instead of deadlocking when called from a task on the
    /// runtime thread (use [`StackHandle::call_async`] there).
    pub(crate) fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> io::Result<T> {
        if on_runtime() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "tunstack: a blocking call from a task on the stack's own thread would \
                 deadlock; use the async API (tunstack::aio) in tasks",
            ));
        }
        let (tx, rx) = reply();
        self.send(make(tx))?;
        rx.wait().ok_or_else(stack_gone)
    }

    /// Sends a command that carries a reply; the answer is awaited.
    pub(crate) async fn call_async<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> io::Result<T> {
        let (tx, rx) = reply();
        self.send(make(tx))?;
        rx.await.ok_or_else(stack_gone)
    }

    /// Runs `task` on the stack's own thread, where it is polled right
    /// after the packets that woke it are taken in, and its output leaves
    /// in the same batch (see [`crate::aio`]). The task must not block:
    /// use the async API inside it.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        self.send(Command::Spawn {
            task: Box::pin(task),
        })
    }

    /// The stack's IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Wakes `waker` at `at` (see [`TimerQueue`]); the runtime is woken to
    /// look at the new deadline.
    pub(crate) fn timer(&self, at: std::time::Instant, waker: std::task::Waker) -> TimerKey {
        let key = self.timers.insert(at, waker);
        self.waker.wake();
        key
    }
}

fn invalid_config(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("tunstack: {why}"))
}

/// The error API calls return once the stack has shut down.
pub(crate) fn stack_gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "tunstack: the stack has shut down",
    )
}

/// A running stack: the runtime thread and a handle to it. Dropping it shuts
/// the stack down and joins the thread; sockets still open then fail with
/// `NotConnected`.
pub struct Stack {
    handle: StackHandle,
    thread: Option<JoinHandle<()>>,
    mtu: usize,
    offload: bool,
}

impl Stack {
    /// Opens (or creates) the TUN device `config.tun_name` and starts the
    /// stack on it. A configuration the stack cannot work with
    /// ([`Config::validate`]), or an address the kernel side of the TUN
    /// already has, is refused with `InvalidInput`.
    pub fn new(config: Config) -> io::Result<Stack> {
        config.validate().map_err(invalid_config)?;
        let opts = TunOptions {
            mtu: config.mtu,
            host_addr: config.host_addr,
            tx_queue_len: config.tx_queue_len,
            offload: config.offload,
        };
        let tun = TunDevice::open(&config.tun_name, &opts)?;
        if tun.kernel_addresses().contains(&config.addr) {
            return Err(invalid_config(format!(
                "{} cannot be the stack's address: the kernel side of {} has it",
                config.addr, config.tun_name
            )));
        }
        Stack::with_device(config, tun)
    }

    /// Starts the stack on any device (an in-memory link in tests). When
    /// `config.pcap` is set, the device is wrapped in a capture.
    pub fn with_device<D: Device + 'static>(config: Config, device: D) -> io::Result<Stack> {
        config.validate().map_err(invalid_config)?;
        if device.mtu() < 68 {
            return Err(invalid_config(format!(
                "the device's MTU {} is below IPv4's minimum of 68 bytes",
                device.mtu()
            )));
        }
        // The capture sits between the stack and the fault injector, so it
        // records what the stack saw and sent (a dropped outgoing packet is
        // in the capture, followed by its retransmission).
        let device: Box<dyn Device> = if config.faults.is_empty() {
            Box::new(device)
        } else {
            Box::new(FaultInjector::new(device, config.faults.clone()))
        };
        let device: Box<dyn Device> = match &config.pcap {
            Some(path) => {
                let writer = PcapWriter::create(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("creating pcap file {}: {e}", path.display()),
                    )
                })?;
                Box::new(Capture::new(device, writer).segmented(config.pcap_segmented))
            }
            None => device,
        };
        let mtu = device.mtu();
        // Unbounded: the runtime thread's own tasks send commands too, and
        // must never block on a full queue. What can pile up is bounded
        // elsewhere (one poke per stream at a time; UDP by bytes).
        let (tx, rx) = crossbeam_channel::unbounded();
        let waker = Arc::new(RuntimeWaker {
            device: device.waker(),
            sleeping: AtomicBool::new(false),
        });
        let timers = Arc::new(TimerQueue::default());
        let handle = StackHandle {
            commands: tx,
            waker: waker.clone(),
            timers: timers.clone(),
            addr: config.addr,
            broadcast: config.broadcast(),
            default_ttl: config.ttl.max(1),
        };
        let seed = config.seed.unwrap_or_else(random_seed);
        let mut iface = Interface::new(&config, mtu, seed);
        let offload = device.offload();
        iface.set_offload(offload);
        let runtime = Runtime {
            device,
            iface,
            commands: rx,
            executor: Executor::new(ReadyQueue::new(waker.clone())),
            waker,
            timers,
            udp_sinks: HashMap::new(),
            tcp: tcp::TcpGlue::new(config.keepalive_all),
            rx_batch: config.rx_batch.max(1),
            busy_poll: config.busy_poll,
            udp_recv_buffer: config.udp_recv_buffer,
        };
        let thread = std::thread::Builder::new()
            .name("tunstack-runtime".into())
            .spawn(move || runtime.run())?;
        info!(
            "tunstack up: {} (mtu {mtu}, offload {})",
            config.addr,
            if offload { "on" } else { "off" }
        );
        Ok(Stack {
            handle,
            thread: Some(thread),
            mtu,
            offload,
        })
    }

    /// The stack's IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.handle.addr
    }

    /// Whether the device took segmentation and checksum offload
    /// ([`crate::Config::offload`]).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// The device MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The TTL of the packets the stack sends unless a socket sets its own.
    pub fn default_ttl(&self) -> u8 {
        self.handle.default_ttl
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> io::Result<Stats> {
        self.handle.call(|reply| Command::Stats { reply })
    }

    /// A snapshot of every TCP connection (state, queues, RTT,
    /// retransmits), like `ss -tni`.
    pub fn tcp_connections(&self) -> io::Result<Vec<ConnInfo>> {
        self.handle.call(|reply| Command::TcpConnections { reply })
    }

    /// Waits up to `timeout` for every TCP connection to finish closing
    /// (to reach TIME-WAIT or CLOSED), so a process that exits right after
    /// dropping its streams still completes their closes on the wire.
    pub fn linger(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match self.tcp_connections() {
                Ok(conns)
                    if conns
                        .iter()
                        .all(|c| matches!(c.state, State::TimeWait | State::Closed)) =>
                {
                    return
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => return,
            }
        }
    }

    /// A cloneable handle to the stack, for tasks and the async API.
    pub fn handle(&self) -> &StackHandle {
        &self.handle
    }

    /// Runs `task` on the stack's own thread ([`StackHandle::spawn`]).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        self.handle.spawn(task)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.handle.send(Command::Shutdown);
        // Dropped by a task on the runtime thread itself: it stops after
        // this task; joining would wait for ourselves.
        if on_runtime() {
            return;
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!("tunstack runtime thread panicked");
            }
        }
    }
}

struct Runtime {
    device: Box<dyn Device>,
    iface: Interface,
    commands: Receiver<Command>,
    waker: Arc<RuntimeWaker>,
    executor: Executor,
    timers: Arc<TimerQueue>,
    udp_sinks: HashMap<SocketId, Arc<UdpShared>>,
    tcp: tcp::TcpGlue,
    rx_batch: usize,
    busy_poll: Duration,
    udp_recv_buffer: usize,
}

impl Runtime {
    fn run(mut self) {
        executor::enter_runtime();
        let clock = Clock::new();
        let mut buf = vec![0u8; RX_BUFFER];
        let mut last_work = std::time::Instant::now();
        loop {
            let mut busy = false;
            // A batch of packets: the core takes them all in, and each
            // connection they touched is dispatched once, at the flush.
            for _ in 0..self.rx_batch {
                match self.device.recv_with(&mut buf) {
                    Ok(Some(r)) => {
                        busy = true;
                        let packet = &buf[r.start..r.start + r.len];
                        self.iface.receive_with(clock.now(), packet, r.meta);
                    }
                    Ok(None) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                    Err(e) => {
                        error!("tunstack: device read failed, stopping: {e}");
                        self.stopped();
                        return;
                    }
                }
            }
            let now = clock.now();
            self.iface.poll(now);
            if self
                .timers
                .next()
                .is_some_and(|t| t <= std::time::Instant::now())
            {
                self.timers.fire(std::time::Instant::now());
            }
            self.deliver(now);
            // Tasks woken by the packets, timers and events run now, so
            // their replies leave in this batch (with the ACKs on them).
            if self.executor.run() > 0 {
                busy = true;
            }
            // Commands: the tasks' pokes, and the other threads' calls.
            while let Ok(cmd) = self.commands.try_recv() {
                busy = true;
                if !self.command(clock.now(), cmd) {
                    self.flush();
                    self.stopped();
                    info!("tunstack runtime stopped");
                    return;
                }
            }
            self.flush();
            if busy {
                last_work = std::time::Instant::now();
                continue;
            }
            // Busy polling: right after work, the next packet is likely to
            // come soon (the answer to what we just sent); taking it
            // without sleeping saves the wake-up.
            if last_work.elapsed() < self.busy_poll {
                std::hint::spin_loop();
                continue;
            }
            self.waker.going_to_sleep();
            if !self.commands.is_empty() || !self.executor.idle() {
                self.waker.awake();
                continue;
            }
            let now = clock.now();
            let core = self
                .iface
                .poll_at()
                .map(|t| t.saturating_duration_since(now));
            let tasks = self
                .timers
                .next()
                .map(|t| t.saturating_duration_since(std::time::Instant::now()));
            let timeout = match (core, tasks) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let waited = self.device.wait(timeout);
            self.waker.awake();
            if let Err(e) = waited {
                error!("tunstack: device wait failed, stopping: {e}");
                self.stopped();
                return;
            }
        }
    }

    /// Handles one command; false means shut down.
    fn command(&mut self, now: Instant, cmd: Command) -> bool {
        match cmd {
            Command::UdpBind { local, reply } => {
                let result = self.iface.udp_bind(local).map(|(id, local)| {
                    let shared = Arc::new(UdpShared::new(self.udp_recv_buffer));
                    self.udp_sinks.insert(id, shared.clone());
                    UdpBinding { id, local, shared }
                });
                reply.send(result);
            }
            Command::UdpConnect { id, remote, reply } => {
                reply.send(self.iface.udp_connect(id, remote));
            }
            Command::UdpSend {
                id,
                to,
                payload,
                ip,
            } => {
                if let Err(e) = self.iface.udp_send(id, to, &payload, ip) {
                    warn!("udp: send from closed socket {id:?}: {e}");
                }
                if let Some(sink) = self.udp_sinks.get(&id) {
                    sink.sent(payload.len());
                }
            }
            Command::UdpClose { id } => {
                self.iface.udp_close(id);
                self.udp_sinks.remove(&id);
            }
            Command::Stats { reply } => {
                let mut stats = self.iface.stats();
                stats.device = self.device.counters();
                reply.send(stats);
            }
            Command::Spawn { task } => self.executor.spawn(task),
            Command::Shutdown => return false,
            tcp => self.tcp_command(now, tcp),
        }
        true
    }

    /// Moves events from the core to the sockets' queues.
    fn deliver(&mut self, now: Instant) {
        while let Some(event) = self.iface.pop_event() {
            match event {
                Event::Tcp(e) => self.tcp_event(now, e),
                Event::UdpDatagram {
                    socket,
                    from,
                    payload,
                } => {
                    let Some(sink) = self.udp_sinks.get(&socket) else {
                        continue;
                    };
                    if !sink.deliver(UdpDelivery::Datagram(from, payload)) {
                        self.iface.count_drop(DropReason::UdpReceiveBufferFull);
                    }
                }
                Event::UdpError { socket, error } => {
                    if let Some(sink) = self.udp_sinks.get(&socket) {
                        sink.deliver(UdpDelivery::Error(error));
                    }
                }
            }
        }
    }

    /// Tells every handle that the stack is gone, so none blocks forever.
    fn stopped(&mut self) {
        self.executor.clear();
        self.tcp_stopped();
        for sink in self.udp_sinks.values() {
            sink.stopped();
        }
        self.udp_sinks.clear();
    }

    /// Writes every pending packet to the device.
    fn flush(&mut self) {
        while let Some(packet) = self.iface.pop_transmit() {
            if let Err(e) = self.device.send_with(&packet, packet.meta()) {
                warn!("tunstack: device write failed: {e}");
            }
            self.iface.recycle(packet);
        }
    }
}
