//! smoltcp 0.14 as the other end of the link: a tiny [`Device`] over the
//! simulated wire and the [`Host`] calls over smoltcp TCP sockets. Over
//! Ethernet the device is `Medium::Ethernet` and smoltcp does ARP and
//! neighbour discovery itself.
//!
//! smoltcp has no listen backlog: a server gets one listening socket per
//! expected connection (each on its own port, see
//! `scenario::Pairing::server_port`), and "accepting" means noticing that
//! one of them has become synchronized. Its sockets also have no separate handle to
//! release: "close" is a FIN, and the socket winds down on its own (TIME-WAIT
//! is a fixed 10 s in smoltcp).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use smoltcp::iface::{Config as SmolConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp::{RecvError, Socket, SocketBuffer, State};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use tunstack::link::ethernet::HEADER_LEN;
use tunstack::link::MacAddr;
use tunstack::time::Instant;

use super::host::{Handle, Host, Io, Wake};

fn smol_time(t: Instant) -> SmolInstant {
    SmolInstant::from_micros(t.total_micros() as i64)
}

/// The simulated wire as smoltcp sees it: packets (or frames) in, packets
/// (or frames) out.
#[derive(Debug)]
pub struct SimDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    medium: Medium,
    /// smoltcp's `max_transmission_unit`: the IP MTU, or over Ethernet the
    /// largest frame, its header included.
    mtu: usize,
}

pub struct SimRx(Vec<u8>);
pub struct SimTx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for SimRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for SimTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for SimDevice {
    type RxToken<'a> = SimRx;
    type TxToken<'a> = SimTx<'a>;

    fn receive(&mut self, _now: SmolInstant) -> Option<(SimRx, SimTx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((SimRx(p), SimTx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<SimTx<'_>> {
        Some(SimTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// smoltcp socket tunables for one run.
#[derive(Debug, Clone, Copy)]
pub struct SmolParams {
    /// Receive buffer per socket, bytes.
    pub rx_buffer: usize,
    /// Send buffer per socket, bytes.
    pub tx_buffer: usize,
    /// Nagle's algorithm.
    pub nagle: bool,
    /// Delayed-ACK timeout (`None`: ACK at once).
    pub ack_delay_ms: Option<u64>,
    /// Keep-alive interval (smoltcp has no abort timeout unless asked: with
    /// keep-alive a peer that forgot the connection answers with RST); 0:
    /// off.
    pub keepalive_ms: u64,
}

#[derive(Debug)]
struct Sock {
    handle: SocketHandle,
    listening: bool,
    handed_out: bool,
}

/// smoltcp on the simulated link.
pub struct SmolHost {
    iface: Interface,
    dev: SimDevice,
    sockets: SocketSet<'static>,
    socks: Vec<Sock>,
    params: SmolParams,
    activity: bool,
    stopped: bool,
    port_base: u16,
}

impl SmolHost {
    /// A smoltcp interface with address `addr`/`prefix` (of either family)
    /// on a link of `mtu` bytes (the IP MTU), over Ethernet with `mac`.
    pub fn new(
        addr: IpAddr,
        prefix: u8,
        mtu: usize,
        mac: Option<MacAddr>,
        seed: u64,
        params: SmolParams,
    ) -> SmolHost {
        let (medium, hardware, mtu) = match mac {
            None => (Medium::Ip, HardwareAddress::Ip, mtu),
            // smoltcp's MTU for Ethernet counts the header (not the FCS).
            Some(m) => (
                Medium::Ethernet,
                HardwareAddress::Ethernet(EthernetAddress(m.0)),
                mtu + HEADER_LEN,
            ),
        };
        let mut dev = SimDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
            medium,
            mtu,
        };
        let mut config = SmolConfig::new(hardware);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut dev, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs
                .push(IpCidr::new(IpAddress::from(addr), prefix))
                .expect("room for one address");
        });
        SmolHost {
            iface,
            dev,
            sockets: SocketSet::new(vec![]),
            socks: Vec::new(),
            params,
            activity: false,
            stopped: false,
            port_base: 49152 + (seed % 8192) as u16,
        }
    }

    fn new_socket(&mut self, nodelay: bool) -> Socket<'static> {
        let p = self.params;
        let mut s = Socket::new(
            SocketBuffer::new(vec![0u8; p.rx_buffer]),
            SocketBuffer::new(vec![0u8; p.tx_buffer]),
        );
        s.set_nagle_enabled(p.nagle && !nodelay);
        s.set_ack_delay(p.ack_delay_ms.map(SmolDuration::from_millis));
        if p.keepalive_ms > 0 {
            s.set_keep_alive(Some(SmolDuration::from_millis(p.keepalive_ms)));
        }
        s
    }

    fn sock(&mut self, h: Handle) -> &mut Socket<'static> {
        let handle = self.socks[h as usize].handle;
        self.sockets.get_mut::<Socket>(handle)
    }

    /// After `stop_listening`: close idle listeners, reset connections that
    /// were never accepted (as tunstack's `close_listener` does).
    fn reap(&mut self) {
        if !self.stopped {
            return;
        }
        for i in 0..self.socks.len() {
            if !self.socks[i].listening || self.socks[i].handed_out {
                continue;
            }
            let s = self.sockets.get_mut::<Socket>(self.socks[i].handle);
            match s.state() {
                State::Listen => s.close(),
                State::Closed | State::SynReceived => {}
                _ => s.abort(),
            }
        }
    }
}

fn synchronized(s: State) -> bool {
    !matches!(
        s,
        State::Closed | State::Listen | State::SynSent | State::SynReceived
    )
}

impl Host for SmolHost {
    fn listen(&mut self, ip: IpAddr, port: u16, count: usize) {
        for i in 0..count {
            let mut s = self.new_socket(false);
            let port = port + i as u16;
            // A port alone is any address of the interface.
            let listened = if ip.is_unspecified() {
                s.listen(port)
            } else {
                s.listen(SocketAddr::new(ip, port))
            };
            listened.expect("smoltcp listen");
            let handle = self.sockets.add(s);
            self.socks.push(Sock {
                handle,
                listening: true,
                handed_out: false,
            });
        }
    }

    fn stop_listening(&mut self, _now: Instant) {
        self.stopped = true;
        self.reap();
    }

    fn connect(
        &mut self,
        _now: Instant,
        conn: usize,
        remote: SocketAddr,
        nodelay: bool,
    ) -> Result<(Handle, u16), String> {
        let mut s = self.new_socket(nodelay);
        let port = self.port_base + conn as u16;
        s.connect(self.iface.context(), remote, port)
            .map_err(|e| format!("smoltcp connect: {e:?}"))?;
        let handle = self.sockets.add(s);
        self.socks.push(Sock {
            handle,
            listening: false,
            handed_out: true,
        });
        Ok(((self.socks.len() - 1) as Handle, port))
    }

    fn accept(&mut self, _now: Instant, nodelay: &dyn Fn(u16) -> bool) -> Option<(Handle, u16)> {
        if self.stopped {
            return None;
        }
        for i in 0..self.socks.len() {
            if !self.socks[i].listening || self.socks[i].handed_out {
                continue;
            }
            let s = self.sockets.get_mut::<Socket>(self.socks[i].handle);
            if !synchronized(s.state()) {
                continue;
            }
            let port = s.remote_endpoint().map_or(0, |e| e.port);
            if nodelay(port) {
                s.set_nagle_enabled(false);
            }
            self.socks[i].handed_out = true;
            return Some((i as Handle, port));
        }
        None
    }

    fn send(&mut self, _now: Instant, h: Handle, data: &[u8]) -> Io {
        let s = self.sock(h);
        match s.state() {
            State::SynSent | State::SynReceived => Io::WouldBlock,
            State::Established | State::CloseWait => match s.send_slice(data) {
                Ok(n) => Io::Done(n),
                Err(e) => Io::Failed(format!("smoltcp send: {e:?}")),
            },
            // We never send after our own abort: the peer reset us.
            State::Closed => Io::Reset,
            st => Io::Failed(format!("smoltcp send in {st}")),
        }
    }

    fn recv(&mut self, _now: Instant, h: Handle, buf: &mut [u8]) -> Io {
        let s = self.sock(h);
        match s.recv_slice(buf) {
            Ok(0) => Io::WouldBlock,
            Ok(n) => Io::Done(n),
            Err(RecvError::Finished) => Io::Eof,
            Err(RecvError::InvalidState) => match s.state() {
                State::SynSent | State::SynReceived | State::Listen => Io::WouldBlock,
                State::Closed => Io::Reset,
                st => Io::Failed(format!("smoltcp recv in {st}")),
            },
        }
    }

    fn shutdown(&mut self, _now: Instant, h: Handle) -> Io {
        let s = self.sock(h);
        match s.state() {
            State::Closed => Io::Reset,
            // smoltcp's close in SYN-SENT deletes the connection (RFC 9293
            // allows that); wait until it is open.
            State::SynSent | State::SynReceived => Io::WouldBlock,
            _ => {
                s.close();
                Io::Done(0)
            }
        }
    }

    fn close(&mut self, _now: Instant, h: Handle) -> Io {
        // No handle to release: a FIN if not sent yet.
        let s = self.sock(h);
        match s.state() {
            State::Closed => Io::Done(0),
            State::SynSent | State::SynReceived => Io::WouldBlock,
            _ => {
                s.close();
                Io::Done(0)
            }
        }
    }

    fn abort(&mut self, _now: Instant, h: Handle) {
        self.sock(h).abort();
    }

    fn deliver(&mut self, _now: Instant, packet: &[u8]) {
        self.dev.rx.push_back(packet.to_vec());
    }

    fn poll(&mut self, now: Instant) {
        let due = self
            .iface
            .poll_at(smol_time(now), &self.sockets)
            .is_some_and(|t| t <= smol_time(now));
        if due || !self.dev.rx.is_empty() {
            self.iface
                .poll(smol_time(now), &mut self.dev, &mut self.sockets);
            self.activity = true;
            self.reap();
        }
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let t = self.iface.poll_at(smol_time(now), &self.sockets)?;
        // "Now" after a poll at `now` means "nothing more to do at `now`".
        let t = Instant::from_micros(t.total_micros().max(0) as u64);
        Some(t.max(now + std::time::Duration::from_micros(1)))
    }

    fn drain(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.iface
            .poll(smol_time(now), &mut self.dev, &mut self.sockets);
        out.append(&mut self.dev.tx);
    }

    fn wakeups(&mut self, out: &mut Vec<Wake>) {
        if std::mem::take(&mut self.activity) {
            out.push(Wake::All);
            out.push(Wake::Accept);
        }
    }

    fn check_bounds(&mut self, max_conns: usize) -> Result<(), String> {
        let busy = self
            .sockets
            .iter()
            .filter(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => {
                    !matches!(t.state(), State::Closed | State::Listen)
                }
                #[allow(unreachable_patterns)]
                _ => false,
            })
            .count();
        if busy > max_conns {
            return Err(format!("{busy} busy smoltcp sockets, at most {max_conns}"));
        }
        Ok(())
    }

    fn is_quiet(&mut self) -> bool {
        (0..self.socks.len() as Handle).all(|h| {
            let s = self.sock(h);
            s.state() == State::Closed && s.local_endpoint().is_none()
        })
    }

    fn dump(&mut self) -> String {
        let mut out = String::new();
        for h in 0..self.socks.len() as Handle {
            let listening = self.socks[h as usize].listening;
            let handed_out = self.socks[h as usize].handed_out;
            let s = self.sock(h);
            out.push_str(&format!(
                "    smoltcp socket {h}{}: {} local {:?} remote {:?} sendq {} recvq {}\n",
                if listening && !handed_out {
                    " (listener)"
                } else {
                    ""
                },
                s.state(),
                s.local_endpoint(),
                s.remote_endpoint(),
                s.send_queue(),
                s.recv_queue()
            ));
        }
        out
    }

    fn check_counters(&self, _total: u64, _clean: u64) -> Result<(), String> {
        // smoltcp keeps no counters to compare against.
        Ok(())
    }
}
