//! UDP: the port table (sans-IO).
//!
//! The table maps local ports to sockets and decides which socket, if any,
//! receives a datagram. Queues live with the socket handles; this module
//! holds only protocol state.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Identifies a UDP socket inside the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u32);

/// Linux's default `ip_local_port_range`.
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// Why a bind or connect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// The port is taken.
    AddrInUse,
    /// The address is not one of ours.
    AddrNotAvailable,
    /// No ephemeral port is free.
    NoEphemeralPort,
    /// Connecting to port 0 or an unspecified address.
    InvalidRemote,
    /// No such socket.
    NotFound,
    /// No way to that address: IPv6 on a stack without an IPv6 address,
    /// or a family the socket's bound address cannot send from.
    NoRoute,
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpError::AddrInUse => "address in use",
            UdpError::AddrNotAvailable => "address not available: not this stack's address",
            UdpError::NoEphemeralPort => "no free ephemeral port",
            UdpError::InvalidRemote => "invalid remote address",
            UdpError::NotFound => "no such socket",
            UdpError::NoRoute => "network unreachable: no address of that family to send from",
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    local: SocketAddr,
    remote: Option<SocketAddr>,
}

/// The UDP sockets of one stack.
#[derive(Debug)]
pub struct UdpTable {
    addr: Ipv4Addr,
    /// Our IPv6 addresses (none without IPv6).
    addrs6: Vec<Ipv6Addr>,
    sockets: HashMap<SocketId, Entry>,
    ports: HashMap<u16, SocketId>,
    next_id: u32,
    next_ephemeral: u16,
}

impl UdpTable {
    /// An empty table for a stack at `addr`; `port_seed` picks where the
    /// ephemeral search starts.
    pub fn new(addr: Ipv4Addr, port_seed: u64) -> UdpTable {
        let span = u64::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        UdpTable {
            addr,
            addrs6: Vec::new(),
            sockets: HashMap::new(),
            ports: HashMap::new(),
            next_id: 1,
            next_ephemeral: EPHEMERAL_PORTS.start() + (port_seed % span) as u16,
        }
    }

    /// Gives the table the stack's IPv6 addresses, which sockets may bind.
    pub fn set_addrs6(&mut self, addrs: impl IntoIterator<Item = Ipv6Addr>) {
        self.addrs6 = addrs.into_iter().collect();
    }

    /// Binds `local` (an unspecified address or ours, of either family;
    /// port 0 for an ephemeral one). A port holds one socket for both
    /// families: `[::]` takes datagrams of both (dual-stack, Linux's
    /// default `bindv6only=0`), `0.0.0.0` or an IPv4 address only IPv4's,
    /// an IPv6 address only IPv6's.
    pub fn bind(&mut self, local: SocketAddr) -> Result<(SocketId, SocketAddr), UdpError> {
        let ours = match local.ip() {
            IpAddr::V4(a) => a.is_unspecified() || a == self.addr,
            IpAddr::V6(a) => a.is_unspecified() || self.addrs6.contains(&a),
        };
        if !ours {
            return Err(UdpError::AddrNotAvailable);
        }
        let port = if local.port() == 0 {
            self.ephemeral_port()?
        } else if self.ports.contains_key(&local.port()) {
            return Err(UdpError::AddrInUse);
        } else {
            local.port()
        };
        let id = SocketId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let local = SocketAddr::new(local.ip(), port);
        self.sockets.insert(
            id,
            Entry {
                local,
                remote: None,
            },
        );
        self.ports.insert(port, id);
        Ok((id, local))
    }

    fn ephemeral_port(&mut self) -> Result<u16, UdpError> {
        let span = usize::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port >= *EPHEMERAL_PORTS.end() {
                *EPHEMERAL_PORTS.start()
            } else {
                port + 1
            };
            if !self.ports.contains_key(&port) {
                return Ok(port);
            }
        }
        Err(UdpError::NoEphemeralPort)
    }

    /// Sets the socket's peer: it then receives only from `remote`.
    pub fn connect(&mut self, id: SocketId, remote: SocketAddr) -> Result<(), UdpError> {
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(UdpError::InvalidRemote);
        }
        let entry = self.sockets.get_mut(&id).ok_or(UdpError::NotFound)?;
        entry.remote = Some(remote);
        Ok(())
    }

    /// Removes the socket and frees its port.
    pub fn close(&mut self, id: SocketId) {
        if let Some(e) = self.sockets.remove(&id) {
            self.ports.remove(&e.local.port());
        }
    }

    /// The socket's local address.
    pub fn local_addr(&self, id: SocketId) -> Option<SocketAddr> {
        self.sockets.get(&id).map(|e| e.local)
    }

    /// The socket's peer, if connected.
    pub fn remote(&self, id: SocketId) -> Option<SocketAddr> {
        self.sockets.get(&id).and_then(|e| e.remote)
    }

    /// Which socket receives a datagram from `src` to local port `dst_port`:
    /// the port's socket, unless it is connected to someone else.
    pub fn lookup(&self, src: SocketAddr, dst_port: u16) -> Option<SocketId> {
        let id = *self.ports.get(&dst_port)?;
        let entry = self.sockets.get(&id)?;
        // A socket of one family hears only its family, but `[::]` both.
        let hears = match entry.local.ip() {
            IpAddr::V4(_) => src.is_ipv4(),
            IpAddr::V6(a) => a.is_unspecified() || src.is_ipv6(),
        };
        if !hears {
            return None;
        }
        match entry.remote {
            Some(remote) if remote != src => None,
            _ => Some(id),
        }
    }

    /// Number of open sockets.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True when no socket is open.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    #[test]
    fn a_bound_port_is_in_use_until_closed() {
        let mut t = UdpTable::new(US, 0);
        let (id, _) = t.bind(sa(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        assert_eq!(t.bind(sa(US, 7)).unwrap_err(), UdpError::AddrInUse);
        t.close(id);
        assert!(t.bind(sa(US, 7)).is_ok());
    }

    #[test]
    fn foreign_addresses_cannot_be_bound() {
        let mut t = UdpTable::new(US, 0);
        assert_eq!(
            t.bind(sa(Ipv4Addr::new(10, 0, 0, 9), 7)).unwrap_err(),
            UdpError::AddrNotAvailable
        );
    }

    #[test]
    fn ephemeral_ports_are_distinct_and_in_range_and_run_out() {
        let mut t = UdpTable::new(US, 12345);
        let span = usize::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..span {
            let (_, local) = t.bind(sa(US, 0)).unwrap();
            assert!(EPHEMERAL_PORTS.contains(&local.port()));
            assert!(seen.insert(local.port()));
        }
        assert_eq!(t.bind(sa(US, 0)).unwrap_err(), UdpError::NoEphemeralPort);
    }

    #[test]
    fn a_connected_socket_receives_only_from_its_peer() {
        let mut t = UdpTable::new(US, 0);
        let (id, _) = t.bind(sa(US, 5000)).unwrap();
        let peer = sa(Ipv4Addr::new(10, 0, 0, 1), 9000);
        assert_eq!(t.lookup(sa(Ipv4Addr::new(10, 0, 0, 3), 1), 5000), Some(id));
        t.connect(id, peer).unwrap();
        assert_eq!(t.lookup(peer, 5000), Some(id));
        assert_eq!(t.lookup(sa(Ipv4Addr::new(10, 0, 0, 3), 1), 5000), None);
        assert_eq!(t.lookup(peer, 5001), None);
        assert_eq!(
            t.connect(id, sa(US, 0)).unwrap_err(),
            UdpError::InvalidRemote
        );
    }
}
