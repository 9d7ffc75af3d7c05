//! One end of the simulated link: a stack and the socket calls the
//! application model makes on it. [`TunHost`] drives tunstack's sans-IO
//! [`Interface`] directly (over Ethernet, behind an [`EthernetLink`], as a
//! TAP's runtime does); `smol::SmolHost` drives smoltcp the same way.

use std::net::{IpAddr, SocketAddr};

use tunstack::iface::{Event, Interface};
use tunstack::link::EthernetLink;
use tunstack::stats::DropReason;
use tunstack::tcp::{ConnId, KeepaliveConfig, ListenerId, TcpError, TcpEvent};
use tunstack::time::Instant;
use tunstack::{Config, Medium};

/// A connection handle, as the host understands it.
pub type Handle = u64;

/// The outcome of a socket call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Io {
    /// `n` bytes moved (0 from `send`: the buffer is full).
    Done(usize),
    /// End of stream (`recv` only).
    Eof,
    /// Nothing to do now; an event (or the next poll) will say when.
    WouldBlock,
    /// The connection was reset by the peer.
    Reset,
    /// Any other error, described.
    Failed(String),
}

/// Why the application should look at a connection again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something happened on this connection.
    Conn(Handle),
    /// A connection is waiting to be accepted.
    Accept,
    /// Something happened somewhere (hosts without per-connection events).
    All,
}

/// A stack on the simulated link.
pub trait Host {
    /// Starts accepting `count` connections on `ip` (the unspecified
    /// address: any of the host's): tunstack on one listener on `port`,
    /// smoltcp on one socket on each of `port..port + count`.
    fn listen(&mut self, ip: IpAddr, port: u16, count: usize);
    /// Stops accepting connections.
    fn stop_listening(&mut self, now: Instant);
    /// Opens a connection to `remote`; returns its handle and local port.
    fn connect(
        &mut self,
        now: Instant,
        conn: usize,
        remote: SocketAddr,
        nodelay: bool,
    ) -> Result<(Handle, u16), String>;
    /// The next accepted connection: its handle and the peer's port.
    fn accept(&mut self, now: Instant, nodelay: &dyn Fn(u16) -> bool) -> Option<(Handle, u16)>;
    /// Queues data.
    fn send(&mut self, now: Instant, h: Handle, data: &[u8]) -> Io;
    /// Reads data.
    fn recv(&mut self, now: Instant, h: Handle, buf: &mut [u8]) -> Io;
    /// Half-close: FIN after the queued data.
    fn shutdown(&mut self, now: Instant, h: Handle) -> Io;
    /// Releases the handle (a full close; tunstack resets if data is left
    /// unread).
    fn close(&mut self, now: Instant, h: Handle) -> Io;
    /// Resets the connection and releases the handle.
    fn abort(&mut self, now: Instant, h: Handle);
    /// Hands over a packet (over Ethernet, a frame) from the link.
    fn deliver(&mut self, now: Instant, packet: &[u8]);
    /// Runs due timers and handles delivered packets.
    fn poll(&mut self, now: Instant);
    /// When `poll` next has work.
    fn poll_at(&mut self, now: Instant) -> Option<Instant>;
    /// Moves the packets (over Ethernet, frames) to transmit into `out`.
    fn drain(&mut self, now: Instant, out: &mut Vec<Vec<u8>>);
    /// Moves pending wake-ups into `out`.
    fn wakeups(&mut self, out: &mut Vec<Wake>);
    /// Checks memory bounds (queues within buffers, table size).
    fn check_bounds(&mut self, max_conns: usize) -> Result<(), String>;
    /// No connection is left (TIME-WAIT included).
    fn is_quiet(&mut self) -> bool;
    /// Every connection's state, for a stall report.
    fn dump(&mut self) -> String;
    /// After the run: the stack accepted exactly the clean packets delivered
    /// (`clean`) out of `total` delivered — no corrupted one got through.
    /// Over Ethernet both count only frames that carry TCP (ARP and
    /// neighbour discovery stay in the link layer).
    fn check_counters(&self, total: u64, clean: u64) -> Result<(), String>;
}

/// tunstack's sans-IO core.
pub struct TunHost {
    iface: Interface,
    /// Over Ethernet ([`Medium::Ethernet`]), its link layer: frames in and
    /// out, ARP and neighbour discovery.
    link: Option<EthernetLink>,
    /// The stack's addresses, for messages.
    name: String,
    listener: Option<ListenerId>,
    keepalive: KeepaliveConfig,
    send_buffer: usize,
    recv_buffer: usize,
    reassembly_max: usize,
}

impl TunHost {
    /// A stack with `config` on a link of `mtu` bytes (the IP MTU; over
    /// Ethernet, `config.medium`, frames are 14 bytes longer).
    pub fn new(config: &Config, mtu: usize, seed: u64, keepalive: KeepaliveConfig) -> TunHost {
        // As the runtime sets up TAP mode (`Stack::with_devices`).
        let link = (config.medium == Medium::Ethernet).then(|| {
            let mac = config.mac_or_random(seed);
            let link = EthernetLink::new(mac, config.addr, config.prefix_len, config.neighbours);
            match config.addr6 {
                Some((addr6, _)) => link
                    .with_ipv6(addr6, config.neighbours)
                    .with_dad(config.dad_transmits),
                None => link,
            }
        });
        TunHost {
            iface: Interface::new(config, mtu, seed),
            link,
            name: match config.addr6 {
                Some((a6, _)) => format!("{} / {a6}", config.addr),
                None => config.addr.to_string(),
            },
            listener: None,
            keepalive,
            // Send buffer autotuning may grow it with cwnd up to its maximum.
            send_buffer: config.tcp.send_buffer.max(config.tcp.send_buffer_max),
            // Autotuning may grow a receive buffer up to its maximum.
            recv_buffer: if config.tcp.autotune() {
                config.tcp.recv_buffer_max
            } else {
                config.tcp.recv_buffer
            },
            reassembly_max: config.reassembly.max_bytes,
        }
    }

    fn setup(&mut self, now: Instant, id: ConnId, nodelay: bool) -> Result<(), String> {
        self.iface
            .tcp_set_keepalive(now, id, Some(self.keepalive))
            .map_err(|e| format!("set_keepalive: {e:?}"))?;
        self.iface
            .tcp_set_nodelay(now, id, nodelay)
            .map_err(|e| format!("set_nodelay: {e:?}"))
    }
}

impl TunHost {
    /// Tells the interface about packets whose neighbour never answered
    /// (as the runtime does with `Device::pop_unreachable`).
    fn report_unreachable(&mut self, now: Instant) {
        if let Some(link) = &mut self.link {
            while let Some(p) = link.pop_unreachable() {
                self.iface.next_hop_unreachable(now, &p);
            }
        }
    }
}

fn io_error(e: TcpError) -> Io {
    match e {
        TcpError::WouldBlock => Io::WouldBlock,
        TcpError::ConnectionReset => Io::Reset,
        e => Io::Failed(format!("{e:?}")),
    }
}

impl Host for TunHost {
    fn listen(&mut self, ip: IpAddr, port: u16, count: usize) {
        // `[::]` is dual-stack, as on Linux without IPV6_V6ONLY.
        let local = SocketAddr::new(ip, port);
        let id = self.iface.tcp_listen(local, count);
        self.listener = Some(id.unwrap_or_else(|e| panic!("listen on {local}: {e:?}")));
    }

    fn stop_listening(&mut self, _now: Instant) {
        if let Some(l) = self.listener.take() {
            let _ = self.iface.tcp_close_listener(l);
        }
    }

    fn connect(
        &mut self,
        now: Instant,
        _conn: usize,
        remote: SocketAddr,
        nodelay: bool,
    ) -> Result<(Handle, u16), String> {
        let (id, local) = self
            .iface
            .tcp_connect(now, remote)
            .map_err(|e| format!("connect: {e:?}"))?;
        self.setup(now, id, nodelay)?;
        Ok((id.0, local.port()))
    }

    fn accept(&mut self, now: Instant, nodelay: &dyn Fn(u16) -> bool) -> Option<(Handle, u16)> {
        let l = self.listener?;
        let id = self.iface.tcp_accept(l).ok()?;
        let port = self.iface.tcp_info(id).map_or(0, |i| i.remote.port());
        // A connection already reset in the queue cannot take options.
        let _ = self.setup(now, id, nodelay(port));
        Some((id.0, port))
    }

    fn send(&mut self, now: Instant, h: Handle, data: &[u8]) -> Io {
        match self.iface.tcp_send(now, ConnId(h), data) {
            Ok(n) => Io::Done(n),
            Err(e) => io_error(e),
        }
    }

    fn recv(&mut self, now: Instant, h: Handle, buf: &mut [u8]) -> Io {
        match self.iface.tcp_recv(now, ConnId(h), buf) {
            Ok(0) => Io::Eof,
            Ok(n) => Io::Done(n),
            Err(e) => io_error(e),
        }
    }

    fn shutdown(&mut self, now: Instant, h: Handle) -> Io {
        match self.iface.tcp_shutdown_write(now, ConnId(h)) {
            Ok(()) => Io::Done(0),
            Err(e) => io_error(e),
        }
    }

    fn close(&mut self, now: Instant, h: Handle) -> Io {
        match self.iface.tcp_close(now, ConnId(h)) {
            Ok(()) => Io::Done(0),
            Err(e) => io_error(e),
        }
    }

    fn abort(&mut self, _now: Instant, h: Handle) {
        let _ = self.iface.tcp_abort(ConnId(h));
    }

    fn deliver(&mut self, now: Instant, packet: &[u8]) {
        let Some(link) = &mut self.link else {
            self.iface.receive(now, packet);
            return;
        };
        // ARP and neighbour discovery stay in the link (answers go out
        // with the next `drain`); the IP packet of the frame goes up.
        if let Some(ip) = link.receive(now, packet).and_then(|r| packet.get(r)) {
            self.iface.receive(now, ip);
        }
    }

    fn poll(&mut self, now: Instant) {
        if let Some(link) = &mut self.link {
            if link.poll_at().is_some_and(|t| t <= now) {
                link.poll(now);
            }
        }
        self.report_unreachable(now);
        if self.iface.poll_at().is_some_and(|t| t <= now) {
            self.iface.poll(now);
        }
    }

    fn poll_at(&mut self, _now: Instant) -> Option<Instant> {
        let link = self.link.as_ref().and_then(EthernetLink::poll_at);
        match (self.iface.poll_at(), link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        while let Some(p) = self.iface.pop_transmit() {
            match &mut self.link {
                None => out.push(p.into()),
                Some(link) => {
                    // Framed at once, or held until its neighbour answers.
                    link.send_ip(now, &p);
                    self.iface.recycle(p);
                }
            }
        }
        if let Some(link) = &mut self.link {
            while let Some(frame) = link.pop_frame() {
                out.push(frame);
            }
        }
        self.report_unreachable(now);
    }

    fn wakeups(&mut self, out: &mut Vec<Wake>) {
        while let Some(ev) = self.iface.pop_event() {
            let Event::Tcp(ev) = ev else { continue };
            out.push(match ev {
                TcpEvent::Acceptable(_) => Wake::Accept,
                TcpEvent::Connected(id)
                | TcpEvent::Readable(id)
                | TcpEvent::Writable(id)
                | TcpEvent::PeerClosed(id)
                | TcpEvent::Closed(id, _) => Wake::Conn(id.0),
            });
        }
    }

    fn check_bounds(&mut self, max_conns: usize) -> Result<(), String> {
        self.iface.tcp_check_timers()?;
        let conns = self.iface.tcp_connections();
        if conns.len() > max_conns {
            return Err(format!(
                "{} connections in the table, at most {max_conns} expected",
                conns.len()
            ));
        }
        for c in &conns {
            if c.send_queue > self.send_buffer || c.recv_queue > self.recv_buffer {
                return Err(format!(
                    "{} {}: send queue {} / recv queue {} exceed the buffers ({} / {})",
                    c.id, c.state, c.send_queue, c.recv_queue, self.send_buffer, self.recv_buffer
                ));
            }
        }
        let r = self.iface.reassembly_bytes();
        if r > self.reassembly_max {
            return Err(format!(
                "reassembly holds {r} bytes, limit {}",
                self.reassembly_max
            ));
        }
        Ok(())
    }

    fn is_quiet(&mut self) -> bool {
        self.iface.tcp_connections().is_empty()
    }

    fn dump(&mut self) -> String {
        let mut s = String::new();
        for c in self.iface.tcp_connections() {
            s.push_str(&format!(
                "    {} {} -> {} {}: sendq {} recvq {} snd_wnd {} rcv_wnd {} cwnd {} rto {:?} backoff {} rtx {} ssthresh {} rec {} pacing {:?} bbr {:?} srtt {:?}\n",
                c.id,
                c.local,
                c.remote,
                c.state,
                c.send_queue,
                c.recv_queue,
                c.snd_wnd,
                c.rcv_wnd,
                c.cwnd,
                c.rto,
                c.backoff,
                c.retransmits,
                c.ssthresh,
                c.recovering,
                c.pacing_rate,
                c.bbr,
                c.srtt
            ));
        }
        for (id, addr, syn, acc) in self.iface.tcp_listeners() {
            s.push_str(&format!(
                "    {id} {addr} LISTEN syn-queue {syn} accept-queue {acc}\n"
            ));
        }
        if let Some(t) = self.iface.poll_at() {
            s.push_str(&format!("    next timer at {t}\n"));
        }
        if let Some(link) = &self.link {
            s.push_str(&format!("    link {}: {}\n", link.mac(), link.stats()));
            if let Some(t) = link.poll_at() {
                s.push_str(&format!("    next link timer at {t}\n"));
            }
        }
        s
    }

    fn check_counters(&self, total: u64, clean: u64) -> Result<(), String> {
        let st = self.iface.stats();
        // Each packet counts once, as IPv4 or as IPv6 (by its version
        // nibble, corrupted or not).
        let packets_in = st.ip_packets_in + st.ip6_packets_in;
        // A TCP run never needs IP fragmentation: every segment is sized
        // to the MTU (RFC 9293 §3.7.1), so none is fragmented (over IPv6,
        // by its source) or dropped at output as too big for the link
        // (over IPv4, with DF set).
        let too_big = st.dropped(DropReason::OutputTooBig);
        if st.ip_fragmented + st.ip6_fragmented + too_big > 0 {
            return Err(format!(
                "stack {} built a packet larger than the MTU: {} IPv4 and {} IPv6 datagrams fragmented, {} dropped at output as too big\n{st}",
                self.name, st.ip_fragmented, st.ip6_fragmented, too_big
            ));
        }
        if packets_in != total || st.tcp.segments_in != clean {
            return Err(format!(
                "stack {} counted {} packets in ({} IPv4, {} IPv6) and {} TCP segments accepted, but the link delivered {} packets of which {} were clean (corrupted ones must all be dropped, clean ones all accepted)\n{st}",
                self.name, packets_in, st.ip_packets_in, st.ip6_packets_in, st.tcp.segments_in, total, clean
            ));
        }
        Ok(())
    }
}
