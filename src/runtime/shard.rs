//! Which shard a packet belongs to, in a stack with several (one per queue
//! of a multi-queue TUN).
//!
//! The kernel picks the queue of each packet it sends the stack by a hash of
//! its flow, and remembers the queue each flow was last written on (the TUN
//! driver's "automq" flow table): the segments of a connection the stack
//! accepted come back on the queue its SYN came in on, and those of a
//! connection it opened on the queue its SYN went out on. Entries of that
//! table age out after a few idle seconds, and some packets carry no flow
//! the table knows, so each shard checks where a packet belongs before
//! taking it, by rules the shards share:
//!
//! - TCP to an ephemeral port: the shard whose share of the ephemeral ports
//!   it is ([`crate::tcp::ephemeral_port_owner`]), unless this shard
//!   listens on that port;
//! - UDP and IP fragments: shard 0, where UDP sockets live and datagrams
//!   are reassembled; IPv6 likewise, but for TCP right behind the fixed
//!   header, which goes as over IPv4;
//! - ICMP errors: as the TCP or UDP packet they quote would go (ICMPv6
//!   errors about such TCP too); echo requests and everything else: the
//!   shard that received them.
//!
//! A packet that belongs elsewhere is handed over to its shard.

use crate::tcp::ephemeral_port_owner;

/// ICMP types that quote the packet they are about (RFC 792).
const ICMP_ERRORS: [u8; 5] = [3, 4, 5, 11, 12];

/// The shard of `n` that `packet` belongs to, as seen by shard `me`;
/// `listening(port)` says whether `me` listens on a TCP port.
pub(crate) fn owner(packet: &[u8], me: usize, n: usize, listening: impl Fn(u16) -> bool) -> usize {
    if n <= 1 {
        return me;
    }
    // IPv6 (its fragments above all, which must meet in one reassembler)
    // lives on shard 0, as UDP does; but TCP with no extension header is
    // routed as over IPv4.
    if packet.first().is_some_and(|b| b >> 4 == 6) {
        return ipv6_owner(packet, me, n, listening);
    }
    let Some(ip) = Ipv4View::new(packet) else {
        return me;
    };
    if ip.fragment {
        return 0;
    }
    match ip.protocol {
        17 => 0,
        6 => match ip.port_at(2) {
            Some(port) if !listening(port) => ephemeral_port_owner(port, n).unwrap_or(me),
            _ => me,
        },
        1 => {
            let body = &packet[ip.header_len..];
            if !body.first().is_some_and(|t| ICMP_ERRORS.contains(t)) {
                return me;
            }
            // The quoted packet went from us: our port is its source port.
            let Some(quoted) = body.get(8..).and_then(Ipv4View::new) else {
                return me;
            };
            match quoted.protocol {
                17 => 0,
                6 => quoted
                    .port_at(0)
                    .and_then(|port| ephemeral_port_owner(port, n))
                    .unwrap_or(me),
                _ => me,
            }
        }
        _ => me,
    }
}

/// [`owner`] for an IPv6 packet.
fn ipv6_owner(packet: &[u8], me: usize, n: usize, listening: impl Fn(u16) -> bool) -> usize {
    /// The 16-bit field `at` bytes into `p`.
    fn field(p: &[u8], at: usize) -> Option<u16> {
        let b = p.get(at..at + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    const FIXED: usize = 40;
    match packet.get(6) {
        Some(6) => match field(packet, FIXED + 2) {
            Some(port) if !listening(port) => ephemeral_port_owner(port, n).unwrap_or(me),
            Some(_) => me,
            None => 0,
        },
        // ICMPv6 errors (types 1 to 4, RFC 4443 §2.1) quote the packet
        // after four bytes: TCP in it left from our port.
        Some(58) if packet.get(FIXED).is_some_and(|t| (1..=4).contains(t)) => {
            let quoted = FIXED + 8;
            match packet.get(quoted + 6) {
                Some(6) => field(packet, quoted + FIXED)
                    .and_then(|port| ephemeral_port_owner(port, n))
                    .unwrap_or(0),
                _ => 0,
            }
        }
        _ => 0,
    }
}

/// The fields of an IPv4 header the routing needs.
struct Ipv4View<'a> {
    bytes: &'a [u8],
    header_len: usize,
    protocol: u8,
    fragment: bool,
}

impl<'a> Ipv4View<'a> {
    fn new(bytes: &'a [u8]) -> Option<Ipv4View<'a>> {
        let first = *bytes.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 || bytes.len() < header_len {
            return None;
        }
        let flags_offset = u16::from_be_bytes([bytes[6], bytes[7]]);
        Some(Ipv4View {
            bytes,
            header_len,
            protocol: bytes[9],
            // More fragments, or an offset: part of a fragmented datagram.
            fragment: flags_offset & 0x3fff != 0,
        })
    }

    /// The 16-bit field `at` bytes into the transport header (a port).
    fn port_at(&self, at: usize) -> Option<u16> {
        let i = self.header_len + at;
        let b = self.bytes.get(i..i + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(protocol: u8, flags_offset: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    fn tcp_to(dst: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&80u16.to_be_bytes());
        t[2..4].copy_from_slice(&dst.to_be_bytes());
        t
    }

    #[test]
    fn tcp_to_an_ephemeral_port_goes_to_the_shard_that_owns_the_port() {
        let none = |_| false;
        for port in [40_000u16, 40_001, 40_002, 40_003] {
            let p = ipv4(6, 0, &tcp_to(port));
            assert_eq!(owner(&p, 0, 2, none), usize::from(port) % 2);
            assert_eq!(owner(&p, 1, 4, none), usize::from(port) % 4);
        }
        // A listening port (even in the ephemeral range) stays where it came.
        let p = ipv4(6, 0, &tcp_to(40_001));
        assert_eq!(owner(&p, 0, 2, |port| port == 40_001), 0);
        // A well-known port: the shard the kernel chose.
        let p = ipv4(6, 0, &tcp_to(80));
        assert_eq!(owner(&p, 1, 2, none), 1);
        // One shard: always itself.
        assert_eq!(owner(&ipv4(6, 0, &tcp_to(40_001)), 0, 1, none), 0);
    }

    #[test]
    fn udp_and_fragments_go_to_shard_0_echo_stays() {
        let none = |_| false;
        assert_eq!(owner(&ipv4(17, 0, &[0; 8]), 1, 2, none), 0);
        // More fragments set; and a later fragment (offset 185).
        assert_eq!(owner(&ipv4(6, 0x2000, &tcp_to(40_001)), 1, 2, none), 0);
        assert_eq!(owner(&ipv4(1, 185, &[8, 0, 0, 0]), 1, 2, none), 0);
        // Don't Fragment alone is not a fragment.
        assert_eq!(owner(&ipv4(6, 0x4000, &tcp_to(40_001)), 0, 2, none), 1);
        assert_eq!(owner(&ipv4(1, 0, &[8, 0, 0, 0, 0, 0, 0, 0]), 1, 2, none), 1);
    }

    #[test]
    fn icmp_errors_follow_the_packet_they_quote() {
        let none = |_| false;
        // Our segment from port 40001 to 80, quoted in a frag-needed error.
        let mut quoted = ipv4(6, 0x4000, &[0; 8]);
        quoted[20..22].copy_from_slice(&40_001u16.to_be_bytes());
        let mut body = vec![3, 4, 0, 0, 0, 0, 5, 0xdc];
        body.extend_from_slice(&quoted);
        assert_eq!(owner(&ipv4(1, 0, &body), 0, 2, none), 1);
        // Quoting UDP: shard 0.
        let mut body = vec![3, 3, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&ipv4(17, 0, &[0; 8]));
        assert_eq!(owner(&ipv4(1, 0, &body), 1, 2, none), 0);
    }

    fn ipv6(next: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
        p[6] = next;
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn ipv6_tcp_goes_as_ipv4_tcp_and_the_rest_to_shard_0() {
        let none = |_| false;
        for port in [40_000u16, 40_001, 40_002, 40_003] {
            assert_eq!(
                owner(&ipv6(6, &tcp_to(port)), 1, 4, none),
                usize::from(port) % 4
            );
        }
        // A listening port, or a well-known one: where it came.
        assert_eq!(owner(&ipv6(6, &tcp_to(40_001)), 0, 2, |p| p == 40_001), 0);
        assert_eq!(owner(&ipv6(6, &tcp_to(80)), 1, 2, none), 1);
        // UDP, fragments (44) and echo requests: shard 0.
        assert_eq!(owner(&ipv6(17, &[0; 8]), 1, 2, none), 0);
        assert_eq!(owner(&ipv6(44, &[6, 0, 0, 0, 0, 0, 0, 1]), 1, 2, none), 0);
        assert_eq!(owner(&ipv6(58, &[128, 0, 0, 0, 0, 0, 0, 0]), 1, 2, none), 0);
        // A Packet Too Big about our segment from port 40001.
        let mut quoted = ipv6(6, &[0; 8]);
        quoted[40..42].copy_from_slice(&40_001u16.to_be_bytes());
        let mut body = vec![2, 0, 0, 0, 0, 0, 5, 0xdc];
        body.extend_from_slice(&quoted);
        assert_eq!(owner(&ipv6(58, &body), 0, 2, none), 1);
    }

    #[test]
    fn garbage_stays_where_it_came_and_never_panics() {
        for len in 0..60 {
            let p: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(29) ^ 0x45)
                .collect();
            let k = owner(&p, 1, 3, |_| false);
            assert!(k < 3);
        }
        assert_eq!(owner(&[0x60; 40], 1, 2, |_| false), 0);
    }
}
