//! The runtime: the one thread that owns the stack.
//!
//! [`Stack::new`] starts a thread that owns the device, the protocol core
//! ([`Interface`]) and every timer. Application handles (sockets) never touch
//! protocol state: they send [`Command`]s over a crossbeam channel and fire
//! the device's waker. Each wakeup the thread drains the commands, takes up
//! to `rx_batch` packets from the device, fires due timers, hands events to
//! the sockets' queues, writes every pending packet, and only then sleeps
//! until the next deadline, a packet, or a command.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
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
use crate::tcp::{ConnId, ConnInfo, KeepaliveConfig, ListenerId, State, TcpError};
use crate::time::{Clock, Instant};
use crate::udp::{SocketId, UdpError};

mod tcp;

pub(crate) use tcp::ListenerShared;

/// Size of the buffer packets are read into: the largest IPv4 packet.
const RX_BUFFER: usize = 65_536;

/// Datagrams a UDP socket's queue holds at most (bytes are limited too).
const UDP_QUEUE_DATAGRAMS: usize = 4096;

/// What a UDP socket's queue holds: datagrams, and errors that ICMP reported.
pub(crate) enum QueuedDatagram {
    Datagram(SocketAddrV4, Vec<u8>),
    Error(io::ErrorKind),
}

/// What a newly bound UDP socket gets back from the runtime.
pub(crate) struct UdpBinding {
    pub(crate) id: SocketId,
    pub(crate) local: SocketAddrV4,
    pub(crate) rx: Receiver<QueuedDatagram>,
    pub(crate) queued: Arc<AtomicUsize>,
}

/// The runtime's answer to a connect: the connection, its local address,
/// and the stream its handle shares with the core.
pub(crate) type Connecting = Result<(ConnId, SocketAddrV4, Arc<Stream>), TcpError>;

/// Requests from API handles to the runtime thread.
pub(crate) enum Command {
    UdpBind {
        local: SocketAddrV4,
        reply: Sender<Result<UdpBinding, UdpError>>,
    },
    UdpConnect {
        id: SocketId,
        remote: SocketAddrV4,
        reply: Sender<Result<(), UdpError>>,
    },
    UdpSend {
        id: SocketId,
        to: SocketAddrV4,
        payload: Vec<u8>,
    },
    UdpClose {
        id: SocketId,
    },
    Stats {
        reply: Sender<Stats>,
    },
    TcpListen {
        local: SocketAddrV4,
        backlog: usize,
        reply: Sender<Result<(ListenerId, Arc<ListenerShared>), TcpError>>,
    },
    TcpAcceptMore {
        id: ListenerId,
    },
    TcpCloseListener {
        id: ListenerId,
    },
    TcpConnect {
        remote: SocketAddrV4,
        reply: Sender<Connecting>,
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
    TcpSetNodelay {
        id: ConnId,
        nodelay: bool,
        reply: Sender<Result<(), TcpError>>,
    },
    TcpSetKeepalive {
        id: ConnId,
        keepalive: Option<KeepaliveConfig>,
        reply: Sender<Result<(), TcpError>>,
    },
    TcpInfo {
        id: ConnId,
        reply: Sender<Option<ConnInfo>>,
    },
    TcpConnections {
        reply: Sender<Vec<ConnInfo>>,
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
}

/// A cloneable way to reach the runtime, held by every API handle.
#[derive(Clone)]
pub(crate) struct StackHandle {
    commands: Sender<Command>,
    waker: Arc<RuntimeWaker>,
    pub(crate) addr: Ipv4Addr,
}

impl StackHandle {
    /// Queues a command and wakes the runtime if it sleeps.
    pub(crate) fn send(&self, cmd: Command) -> io::Result<()> {
        self.commands.send(cmd).map_err(|_| stack_gone())?;
        self.waker.wake();
        Ok(())
    }

    /// Sends a command that carries a reply channel and waits for the reply.
    pub(crate) fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> io::Result<T> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(make(tx))?;
        rx.recv().map_err(|_| stack_gone())
    }
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
}

impl Stack {
    /// Opens (or creates) the TUN device `config.tun_name` and starts the stack on it.
    pub fn new(config: Config) -> io::Result<Stack> {
        let opts = TunOptions {
            mtu: config.mtu,
            host_addr: config.host_addr,
        };
        let tun = TunDevice::open(&config.tun_name, &opts)?;
        Stack::with_device(config, tun)
    }

    /// Starts the stack on any device (an in-memory link in tests). When
    /// `config.pcap` is set, the device is wrapped in a capture.
    pub fn with_device<D: Device + 'static>(config: Config, device: D) -> io::Result<Stack> {
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
                Box::new(Capture::new(device, writer))
            }
            None => device,
        };
        let mtu = device.mtu();
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let waker = Arc::new(RuntimeWaker {
            device: device.waker(),
            sleeping: AtomicBool::new(false),
        });
        let handle = StackHandle {
            commands: tx,
            waker: waker.clone(),
            addr: config.addr,
        };
        let seed = config.seed.unwrap_or_else(random_seed);
        let iface = Interface::new(&config, mtu, seed);
        let runtime = Runtime {
            device,
            iface,
            commands: rx,
            waker,
            udp_sinks: HashMap::new(),
            tcp: tcp::TcpGlue::new(config.keepalive_all),
            rx_batch: config.rx_batch.max(1),
            udp_recv_buffer: config.udp_recv_buffer,
        };
        let thread = std::thread::Builder::new()
            .name("tunstack-runtime".into())
            .spawn(move || runtime.run())?;
        info!("tunstack up: {} (mtu {mtu})", config.addr);
        Ok(Stack {
            handle,
            thread: Some(thread),
            mtu,
        })
    }

    /// The stack's IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.handle.addr
    }

    /// The device MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
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

    pub(crate) fn handle(&self) -> &StackHandle {
        &self.handle
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.handle.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!("tunstack runtime thread panicked");
            }
        }
    }
}

/// Where the runtime delivers one UDP socket's datagrams.
struct UdpSink {
    tx: Sender<QueuedDatagram>,
    queued: Arc<AtomicUsize>,
}

/// Bookkeeping cost of a queued datagram beyond its payload, like the
/// kernel's per-skb overhead, so empty datagrams still count.
pub(crate) const DATAGRAM_OVERHEAD: usize = 64;

struct Runtime {
    device: Box<dyn Device>,
    iface: Interface,
    commands: Receiver<Command>,
    waker: Arc<RuntimeWaker>,
    udp_sinks: HashMap<SocketId, UdpSink>,
    tcp: tcp::TcpGlue,
    rx_batch: usize,
    udp_recv_buffer: usize,
}

impl Runtime {
    fn run(mut self) {
        let clock = Clock::new();
        let mut buf = vec![0u8; RX_BUFFER];
        loop {
            let mut busy = false;
            // Commands first: they are few and cheap, and a shutdown must win.
            while let Ok(cmd) = self.commands.try_recv() {
                busy = true;
                if !self.command(clock.now(), cmd) {
                    self.flush();
                    self.stopped();
                    info!("tunstack runtime stopped");
                    return;
                }
            }
            // Then a bounded batch of packets.
            for _ in 0..self.rx_batch {
                match self.device.recv(&mut buf) {
                    Ok(Some(n)) => {
                        busy = true;
                        self.iface.receive(clock.now(), &buf[..n]);
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
            self.iface.poll(clock.now());
            self.deliver(clock.now());
            self.flush();
            if busy {
                continue;
            }
            self.waker.going_to_sleep();
            if !self.commands.is_empty() {
                self.waker.awake();
                continue;
            }
            let timeout = self
                .iface
                .poll_at()
                .map(|t| t.saturating_duration_since(clock.now()));
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
                    let (tx, rx) = crossbeam_channel::bounded(UDP_QUEUE_DATAGRAMS);
                    let queued = Arc::new(AtomicUsize::new(0));
                    self.udp_sinks.insert(
                        id,
                        UdpSink {
                            tx,
                            queued: queued.clone(),
                        },
                    );
                    UdpBinding {
                        id,
                        local,
                        rx,
                        queued,
                    }
                });
                let _ = reply.send(result);
            }
            Command::UdpConnect { id, remote, reply } => {
                let _ = reply.send(self.iface.udp_connect(id, remote));
            }
            Command::UdpSend { id, to, payload } => {
                if let Err(e) = self.iface.udp_send(id, to, &payload) {
                    warn!("udp: send from closed socket {id:?}: {e}");
                }
            }
            Command::UdpClose { id } => {
                self.iface.udp_close(id);
                self.udp_sinks.remove(&id);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.iface.stats());
            }
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
                    let cost = payload.len() + DATAGRAM_OVERHEAD;
                    if sink.queued.load(Ordering::Acquire) + cost > self.udp_recv_buffer {
                        self.iface.count_drop(DropReason::UdpReceiveBufferFull);
                        continue;
                    }
                    sink.queued.fetch_add(cost, Ordering::AcqRel);
                    match sink.tx.try_send(QueuedDatagram::Datagram(from, payload)) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            sink.queued.fetch_sub(cost, Ordering::AcqRel);
                            self.iface.count_drop(DropReason::UdpReceiveBufferFull);
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            sink.queued.fetch_sub(cost, Ordering::AcqRel);
                        }
                    }
                }
                Event::UdpError { socket, error } => {
                    if let Some(sink) = self.udp_sinks.get(&socket) {
                        let _ = sink.tx.try_send(QueuedDatagram::Error(error));
                    }
                }
            }
        }
    }

    /// Tells every handle that the stack is gone, so none blocks forever.
    fn stopped(&mut self) {
        self.tcp_stopped();
        self.udp_sinks.clear();
    }

    /// Writes every pending packet to the device.
    fn flush(&mut self) {
        while let Some(packet) = self.iface.pop_transmit() {
            if let Err(e) = self.device.send(&packet) {
                warn!("tunstack: device write failed: {e}");
            }
            self.iface.recycle(packet);
        }
    }
}
