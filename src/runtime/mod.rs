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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};

use crate::config::{random_seed, Config, Medium};
use crate::device::capture::Capture;
use crate::device::ethernet::EthernetDevice;
use crate::device::fault::FaultInjector;
use crate::device::pcap::{SharedPcap, LINKTYPE_ETHERNET, LINKTYPE_RAW};
use crate::device::tun::{TunDevice, TunOptions};
use crate::device::{Device, RxMeta, Waker};
use crate::iface::{Event, Interface};
use crate::ladder::recent::{RecentConnection, RecentConnections};
use crate::stats::{DropReason, ShardStats, Stats};
use crate::tcp::stream::Stream;
use crate::tcp::{ConnId, ConnInfo, KeepaliveConfig, ListenerId, State, TcpError, TcpOption};
use crate::time::{Clock, Instant};
use crate::udp::{SocketId, UdpError};

mod executor;
mod reply;
mod shard;
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
    pub(crate) local: SocketAddr,
    pub(crate) shared: Arc<UdpShared>,
}

/// The runtime's answer to a connect: the connection, its local address,
/// and the stream its handle shares with the core.
pub(crate) type Connecting = Result<(ConnId, SocketAddr, Arc<Stream>), TcpError>;

/// Requests from API handles to the runtime thread.
pub(crate) enum Command {
    UdpBind {
        local: SocketAddr,
        reply: Reply<Result<UdpBinding, UdpError>>,
    },
    UdpConnect {
        id: SocketId,
        remote: SocketAddr,
        reply: Reply<Result<(), UdpError>>,
    },
    UdpSend {
        id: SocketId,
        to: SocketAddr,
        payload: Vec<u8>,
        ip: IpOptions,
    },
    UdpClose {
        id: SocketId,
    },
    Stats {
        reply: Reply<Stats>,
    },
    /// Listen on `local`, queueing accepted connections in `shared` (the
    /// same queue on every shard).
    TcpListen {
        local: SocketAddr,
        backlog: usize,
        shared: Arc<ListenerShared>,
        reply: Reply<Result<ListenerId, TcpError>>,
    },
    TcpAcceptMore {
        id: ListenerId,
    },
    /// Stop listening; `done` (when given) is answered once it has.
    TcpCloseListener {
        id: ListenerId,
        done: Option<Reply<()>>,
    },
    TcpConnect {
        remote: SocketAddr,
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
    /// The recorded segments of the last connections (empty when the
    /// record is off).
    RecentConnections {
        reply: Reply<Vec<RecentConnection>>,
    },
    /// Run a task on the runtime thread.
    Spawn {
        task: BoxFuture,
    },
    /// A packet another shard received that belongs to this one.
    Packet {
        bytes: Vec<u8>,
        meta: RxMeta,
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

/// How to reach one shard's runtime: its command queue, its wake-up and
/// its task timers.
#[derive(Clone)]
pub(crate) struct ShardLink {
    commands: Sender<Command>,
    waker: Arc<RuntimeWaker>,
    timers: Arc<TimerQueue>,
}

/// A cloneable handle to a running [`Stack`]: what tasks and the async
/// API ([`crate::aio`]) use to reach it from any thread. It speaks to one
/// shard (a runtime thread with its own device queue and connection
/// table; one unless [`Config::queues`] asks for more) and knows the
/// others.
#[derive(Clone)]
pub struct StackHandle {
    /// Which shard this handle speaks to (an index into `shards`).
    pub(crate) shard: usize,
    /// Every shard, by index.
    shards: Arc<[ShardLink]>,
    /// Where the next connection the application opens goes (round robin).
    next_shard: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) addr: Ipv4Addr,
    /// The stack's IPv6 address and, in TAP mode, its link-local one.
    pub(crate) addrs6: [Option<Ipv6Addr>; 2],
    /// The subnet's directed broadcast address.
    pub(crate) broadcast: Ipv4Addr,
    /// TTL of the packets the stack originates (`Config::ttl`).
    pub(crate) default_ttl: u8,
}

impl std::fmt::Debug for StackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackHandle")
            .field("addr", &self.addr)
            .field("shard", &self.shard)
            .finish()
    }
}

impl StackHandle {
    /// How many shards the stack runs.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// A handle to shard `k` (this handle's own if there is no such shard).
    pub(crate) fn on_shard(&self, k: usize) -> StackHandle {
        if k >= self.shards.len() {
            return self.clone();
        }
        StackHandle {
            shard: k,
            ..self.clone()
        }
    }

    /// The shard this handle speaks to.
    fn link(&self) -> &ShardLink {
        &self.shards[self.shard]
    }

    /// That shard's task timers.
    pub(crate) fn timers(&self) -> &TimerQueue {
        &self.link().timers
    }

    /// A handle to the shard the next connection the application opens
    /// goes to: each in turn.
    pub(crate) fn for_new_connection(&self) -> StackHandle {
        let n = self.shards.len();
        if n <= 1 {
            return self.clone();
        }
        let k = self.next_shard.fetch_add(1, Ordering::Relaxed) % n;
        self.on_shard(k)
    }

    /// Handles to every shard, in order.
    pub(crate) fn all_shards(&self) -> impl Iterator<Item = StackHandle> + '_ {
        (0..self.shards.len()).map(|k| self.on_shard(k))
    }

    /// Every shard's counters, added up (for tasks).
    pub(crate) async fn stats_async(&self) -> io::Result<Stats> {
        let mut total = Stats::default();
        for shard in self.all_shards() {
            total.add(&shard.call_async(|reply| Command::Stats { reply }).await?);
        }
        Ok(total)
    }

    /// Every shard's TCP connections (for tasks).
    pub(crate) async fn tcp_connections_async(&self) -> io::Result<Vec<ConnInfo>> {
        let mut all = Vec::new();
        for shard in self.all_shards() {
            all.extend(
                shard
                    .call_async(|reply| Command::TcpConnections { reply })
                    .await?,
            );
        }
        Ok(all)
    }

    /// Every shard's record of its last connections' segments (empty
    /// unless [`Config::recent_connections`] is on), oldest first per
    /// shard.
    pub(crate) async fn recent_connections_async(&self) -> io::Result<Vec<RecentConnection>> {
        let mut all = Vec::new();
        for shard in self.all_shards() {
            all.extend(
                shard
                    .call_async(|reply| Command::RecentConnections { reply })
                    .await?,
            );
        }
        Ok(all)
    }

    /// Queues a command and wakes the runtime if it sleeps.
    pub(crate) fn send(&self, cmd: Command) -> io::Result<()> {
        let link = self.link();
        link.commands.send(cmd).map_err(|_| stack_gone())?;
        link.waker.wake();
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

    /// Whether `ip` is one of the stack's addresses, or unspecified (a
    /// wildcard to bind).
    pub(crate) fn may_bind(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => a.is_unspecified() || a == self.addr,
            IpAddr::V6(a) => a.is_unspecified() || self.addrs6.contains(&Some(a)),
        }
    }

    /// Wakes `waker` at `at` (see [`TimerQueue`]); the runtime is woken to
    /// look at the new deadline.
    pub(crate) fn timer(&self, at: std::time::Instant, waker: std::task::Waker) -> TimerKey {
        let key = self.link().timers.insert(at, waker);
        self.link().waker.wake();
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
    /// One runtime thread per shard.
    threads: Vec<JoinHandle<()>>,
    mtu: usize,
    offload: bool,
    /// The stack's MAC in TAP mode.
    mac: Option<crate::link::MacAddr>,
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
            tap: config.medium == Medium::Ethernet,
        };
        let queues = TunDevice::open_queues(&config.tun_name, &opts, config.queues.max(1))?;
        if queues
            .first()
            .is_some_and(|q| q.kernel_addresses().contains(&config.addr))
        {
            return Err(invalid_config(format!(
                "{} cannot be the stack's address: the kernel side of {} has it",
                config.addr, config.tun_name
            )));
        }
        let devices = queues
            .into_iter()
            .map(|q| Box::new(q) as Box<dyn Device>)
            .collect();
        Stack::with_devices(config, devices)
    }

    /// Starts the stack on any device (an in-memory link in tests). When
    /// `config.pcap` is set, the device is wrapped in a capture.
    pub fn with_device<D: Device + 'static>(config: Config, device: D) -> io::Result<Stack> {
        Stack::with_devices(config, vec![Box::new(device) as Box<dyn Device>])
    }

    /// Starts the stack with one shard per device (the queues of a
    /// multi-queue TUN): each shard is a thread with its own connection
    /// table that takes the packets its device receives, and hands a packet
    /// that belongs to another shard over to it. One capture file
    /// (`config.pcap`) records every shard's packets.
    pub fn with_devices(config: Config, devices: Vec<Box<dyn Device>>) -> io::Result<Stack> {
        config.validate().map_err(invalid_config)?;
        let Some(first) = devices.first() else {
            return Err(invalid_config("no device to run on".into()));
        };
        let mtu = first.mtu();
        if let Some(d) = devices.iter().find(|d| d.mtu() < 68) {
            return Err(invalid_config(format!(
                "the device's MTU {} is below IPv4's minimum of 68 bytes",
                d.mtu()
            )));
        }
        let ethernet = config.medium == Medium::Ethernet;
        if ethernet && devices.len() > 1 {
            return Err(invalid_config(
                "TAP mode runs one queue (the ARP cache is one table)".into(),
            ));
        }
        let link_type = if ethernet {
            LINKTYPE_ETHERNET
        } else {
            LINKTYPE_RAW
        };
        let pcap = match &config.pcap {
            Some(path) => Some(SharedPcap::create_with_link_type(path, link_type)?),
            None => None,
        };
        let seed = config.seed.unwrap_or_else(random_seed);
        let mac = ethernet.then(|| config.mac_or_random(seed.rotate_left(17)));
        // The MAC is fixed here, so every core derives the same IPv6
        // link-local address from it (`Config::link_local6`).
        let mut config = config;
        config.mac = mac.or(config.mac);
        let n = devices.len();
        let mut shards = Vec::with_capacity(n);
        for device in devices {
            // The capture sits between the stack and the fault injector, so
            // it records what the stack saw and sent (a dropped outgoing
            // packet is in the capture, followed by its retransmission).
            let device: Box<dyn Device> = if config.faults.is_empty() {
                device
            } else {
                Box::new(FaultInjector::new(device, config.faults.clone()))
            };
            let device: Box<dyn Device> = match &pcap {
                Some(p) => {
                    Box::new(Capture::new(device, p.writer()).segmented(config.pcap_segmented))
                }
                None => device,
            };
            // In TAP mode the link layer sits above both, so the capture
            // records frames (ARP included) and faults hit frames.
            let device: Box<dyn Device> = if let Some(mac) = mac {
                let mut link = crate::link::EthernetLink::new(
                    mac,
                    config.addr,
                    config.prefix_len,
                    config.neighbours,
                );
                if let Some((addr6, _)) = config.addr6 {
                    link = link
                        .with_ipv6(addr6, config.neighbours)
                        .with_dad(config.dad_transmits);
                    info!("tunstack: IPv6 link-local address {}", mac.link_local6());
                }
                info!("tunstack: TAP mode, MAC {mac}");
                Box::new(EthernetDevice::new(device, link))
            } else {
                device
            };
            // Unbounded: the runtime thread's own tasks send commands too,
            // and must never block on a full queue. What can pile up is
            // bounded elsewhere (one poke per stream at a time; UDP by bytes).
            let (tx, rx) = crossbeam_channel::unbounded();
            let link = ShardLink {
                commands: tx,
                waker: Arc::new(RuntimeWaker {
                    device: device.waker(),
                    sleeping: AtomicBool::new(false),
                }),
                timers: Arc::new(TimerQueue::default()),
            };
            shards.push((device, link, rx));
        }
        let links: Arc<[ShardLink]> = shards.iter().map(|(_, l, _)| l.clone()).collect();
        let handle = StackHandle {
            shard: 0,
            shards: links.clone(),
            next_shard: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            addr: config.addr,
            addrs6: [config.addr6.map(|(a, _)| a), config.link_local6()],
            broadcast: config.broadcast(),
            default_ttl: config.ttl.max(1),
        };
        let offload = shards.iter().all(|(d, _, _)| d.offload());
        let mut threads = Vec::with_capacity(n);
        for (k, (device, link, rx)) in shards.into_iter().enumerate() {
            // Each shard its own generators (IP IDs, ports, ISN secret).
            let shard_seed = seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut iface = Interface::new(&config, mtu, shard_seed);
            iface.set_offload(device.offload());
            // A pcapng capture gets the core's notes on each packet.
            let notes = pcap.as_ref().is_some_and(SharedPcap::is_pcapng);
            iface.set_notes(notes);
            iface.set_shard(k, n);
            let runtime = Runtime {
                device,
                iface,
                commands: rx,
                executor: Executor::new(ReadyQueue::new(link.waker.clone())),
                waker: link.waker,
                timers: link.timers,
                udp_sinks: HashMap::new(),
                tcp: tcp::TcpGlue::new(config.keepalive_all),
                rx_batch: config.rx_batch.max(1),
                busy_poll: config.busy_poll,
                udp_recv_buffer: config.udp_recv_buffer,
                shard: k,
                links: links.clone(),
                shard_stats: ShardStats::default(),
                notes,
                clock: Clock::new(),
                recent: (config.recent_connections > 0).then(|| {
                    RecentConnections::new(config.recent_connections, k as u64 + 1, n as u64)
                }),
                link_layer: ethernet,
            };
            let name = if n == 1 {
                "tunstack-runtime".to_owned()
            } else {
                format!("tunstack-shard-{k}")
            };
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || runtime.run());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Stop the shards already running before failing.
                    drop(Stack {
                        handle,
                        threads,
                        mtu,
                        offload,
                        mac,
                    });
                    return Err(e);
                }
            }
        }
        info!(
            "tunstack up: {} (mtu {mtu}, offload {}{})",
            config.addr,
            if offload { "on" } else { "off" },
            if n > 1 {
                format!(", {n} queues")
            } else {
                String::new()
            }
        );
        Ok(Stack {
            handle,
            threads,
            mtu,
            offload,
            mac,
        })
    }

    /// The stack's IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.handle.addr
    }

    /// The stack's IPv6 address (`Config::addr6`), if it has one.
    pub fn addr6(&self) -> Option<Ipv6Addr> {
        self.handle.addrs6[0]
    }

    /// Whether the device took segmentation and checksum offload
    /// ([`crate::Config::offload`]).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// The stack's MAC in TAP mode ([`crate::Medium::Ethernet`]); `None` on
    /// a TUN.
    pub fn mac(&self) -> Option<crate::link::MacAddr> {
        self.mac
    }

    /// The device MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// The TTL of the packets the stack sends unless a socket sets its own.
    pub fn default_ttl(&self) -> u8 {
        self.handle.default_ttl
    }

    /// How many shards (device queues, runtime threads) the stack runs.
    pub fn queues(&self) -> usize {
        self.handle.shard_count()
    }

    /// A snapshot of the counters (every shard's, added up).
    pub fn stats(&self) -> io::Result<Stats> {
        let mut total: Option<Stats> = None;
        for shard in self.handle.all_shards() {
            let s = shard.call(|reply| Command::Stats { reply })?;
            match &mut total {
                Some(t) => t.add(&s),
                None => total = Some(s),
            }
        }
        total.ok_or_else(stack_gone)
    }

    /// A snapshot of every TCP connection (state, queues, RTT,
    /// retransmits), like `ss -tni`, on every shard.
    pub fn tcp_connections(&self) -> io::Result<Vec<ConnInfo>> {
        let mut all = Vec::new();
        for shard in self.handle.all_shards() {
            all.extend(shard.call(|reply| Command::TcpConnections { reply })?);
        }
        Ok(all)
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
        for shard in self.handle.all_shards() {
            let _ = shard.send(Command::Shutdown);
        }
        // Dropped by a task on a runtime thread itself: it stops after
        // this task; joining would wait for ourselves.
        if on_runtime() {
            return;
        }
        for t in self.threads.drain(..) {
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
    /// This runtime's shard, and how to reach every shard.
    shard: usize,
    links: Arc<[ShardLink]>,
    shard_stats: ShardStats,
    /// The core takes notes on packets for a pcapng capture.
    notes: bool,
    /// The last connections' segments, for the status page's ladders.
    recent: Option<RecentConnections>,
    clock: Clock,
    /// The device has a link layer (TAP mode) that may hand back packets
    /// whose next hop never answered.
    link_layer: bool,
}

impl Runtime {
    fn run(mut self) {
        executor::enter_runtime();
        let clock = self.clock;
        let mut buf = vec![0u8; RX_BUFFER];
        let mut last_work = std::time::Instant::now();
        loop {
            let mut busy = false;
            if self.notes {
                self.iface
                    .set_wall_clock(clock.now(), std::time::SystemTime::now());
            }
            // A batch of packets: the core takes them all in, and each
            // connection they touched is dispatched once, at the flush.
            for _ in 0..self.rx_batch {
                match self.device.recv_with(&mut buf) {
                    Ok(Some(r)) => {
                        busy = true;
                        self.shard_stats.packets_read += 1;
                        let packet = &buf[r.start..r.start + r.len];
                        if self.links.len() > 1 {
                            let iface = &self.iface;
                            let k = shard::owner(packet, self.shard, self.links.len(), |port| {
                                iface.tcp_listening_on(port)
                            });
                            if k != self.shard {
                                self.hand_over(k, packet, r.meta);
                                continue;
                            }
                        }
                        let now = clock.now();
                        self.iface.receive_with(now, packet, r.meta);
                        if let Some(recent) = &mut self.recent {
                            recent.record(Duration::from_micros(now.total_micros()), packet);
                        }
                        if self.notes {
                            if let Some(note) = self.iface.take_received_note() {
                                self.device.note_received(&note);
                            }
                        }
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
            // Packets whose next hop never answered ARP (TAP mode only: on
            // a TUN this is the one branch the link layer costs).
            if self.link_layer {
                while let Some(packet) = self.device.pop_unreachable() {
                    self.iface.next_hop_unreachable(now, &packet);
                }
            }
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
            // without sleeping saves the wake-up. Each turn yields the CPU
            // (as Linux's busy poll stops at need_resched): a peer on this
            // CPU, the very thread that will send that packet, runs at
            // once instead of after the whole window (a same-CPU p99 of
            // 58 µs with a pure spin against 15 µs without busy polling).
            if last_work.elapsed() < self.busy_poll {
                std::thread::yield_now();
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
            Command::RecentConnections { reply } => {
                reply.send(
                    self.recent
                        .as_ref()
                        .map(RecentConnections::snapshot)
                        .unwrap_or_default(),
                );
            }
            Command::Stats { reply } => {
                let mut stats = self.iface.stats();
                stats.device = self.device.counters();
                if let Some(link) = stats.device.link {
                    for reason in crate::stats::DropReason::LINK {
                        stats.drop_n(reason, link.dropped(reason));
                    }
                }
                stats.shards = vec![self.shard_stats];
                reply.send(stats);
            }
            Command::Spawn { task } => self.executor.spawn(task),
            Command::Packet { bytes, meta } => {
                self.iface.receive_with(now, &bytes, meta);
                if let Some(recent) = &mut self.recent {
                    recent.record(Duration::from_micros(now.total_micros()), &bytes);
                }
                // Another shard's capture recorded it: the note is lost.
                let _ = self.iface.take_received_note();
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

    /// Hands a packet this shard received over to shard `k`, which owns it.
    fn hand_over(&mut self, k: usize, packet: &[u8], meta: RxMeta) {
        let Some(link) = self.links.get(k) else {
            return;
        };
        self.shard_stats.handed_over += 1;
        let cmd = Command::Packet {
            bytes: packet.to_vec(),
            meta,
        };
        if link.commands.send(cmd).is_ok() {
            link.waker.wake();
        }
    }

    /// Writes every pending packet to the device.
    fn flush(&mut self) {
        // The record's time, once per flush (it is off by default).
        let recent_time = self
            .recent
            .as_ref()
            .map(|_| Duration::from_micros(self.clock.now().total_micros()));
        while let Some(packet) = self.iface.pop_transmit() {
            if let (Some(recent), Some(t)) = (&mut self.recent, recent_time) {
                recent.record(t, &packet);
            }
            // Non-zero only while notes are on (a pcapng capture).
            let note = if packet.note() != 0 {
                self.iface.take_transmit_note(&packet)
            } else {
                None
            };
            let sent = match note {
                Some(note) => self.device.send_noted(&packet, packet.meta(), &note),
                None => self.device.send_with(&packet, packet.meta()),
            };
            if let Err(e) = sent {
                warn!("tunstack: device write failed: {e}");
            }
            self.iface.recycle(packet);
        }
    }
}
