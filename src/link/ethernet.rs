//! Ethernet II frames: the 14-byte header, read and written by hand (three
//! fixed fields; no options, no allocation).

use std::fmt;
use std::str::FromStr;

/// Length of an Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6 (served with `Config::addr6`; else dropped and counted).
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A 48-bit Ethernet (MAC) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`, every station on the link.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, "unknown" in an ARP request's target field.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// A random locally administered unicast address (the second-lowest bit
    /// of the first octet set, the lowest clear: IEEE 802 §8.2), from `seed`.
    pub fn random_local(seed: u64) -> MacAddr {
        let b = seed.to_le_bytes();
        MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]])
    }

    /// Group address (multicast or broadcast): the lowest bit of the first
    /// octet.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The broadcast address.
    pub fn is_broadcast(self) -> bool {
        self == MacAddr::BROADCAST
    }

    /// A unicast address other than all zeros: one a station can have.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != MacAddr::ZERO
    }

    /// The link-local IPv6 address of this MAC: fe80::/64 and the modified
    /// EUI-64 interface identifier (RFC 4291 Appendix A: ff:fe in the
    /// middle, the universal/local bit inverted; RFC 4862 §5.3).
    pub fn link_local6(self) -> std::net::Ipv6Addr {
        let m = self.0;
        std::net::Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }

    /// The group address an IPv6 multicast address maps to: 33:33 and its
    /// low 32 bits (RFC 2464 §7).
    pub fn ipv6_multicast(addr: std::net::Ipv6Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// The group address an IPv4 multicast address maps to: 01:00:5e and
    /// its low 23 bits (RFC 1112 §6.4).
    pub fn ipv4_multicast(addr: std::net::Ipv4Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    /// Six hex octets separated by `:` or `-`.
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let part = parts
                .next()
                .ok_or_else(|| format!("{s:?}: expected six octets like 02:00:00:00:00:01"))?;
            if part.is_empty() || part.len() > 2 {
                return Err(format!("{s:?}: {part:?} is not a hex octet"));
            }
            *o = u8::from_str_radix(part, 16)
                .map_err(|_| format!("{s:?}: {part:?} is not a hex octet"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?}: more than six octets"));
        }
        Ok(MacAddr(out))
    }
}

/// The header of an Ethernet II frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// EtherType (a value below 0x0600 is an IEEE 802.3 length instead).
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Reads the header at the front of `frame`; `None` if the frame is
    /// shorter than one (a runt).
    pub fn parse(frame: &[u8]) -> Option<EthernetHeader> {
        let h: &[u8; HEADER_LEN] = frame.get(..HEADER_LEN)?.try_into().ok()?;
        let mac =
            |at: usize| MacAddr([h[at], h[at + 1], h[at + 2], h[at + 3], h[at + 4], h[at + 5]]);
        Some(EthernetHeader {
            dst: mac(0),
            src: mac(6),
            ethertype: u16::from_be_bytes([h[12], h[13]]),
        })
    }

    /// The header's 14 bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..6].copy_from_slice(&self.dst.0);
        h[6..12].copy_from_slice(&self.src.0);
        h[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_agrees_with_etherparse() {
        let h = EthernetHeader {
            dst: MacAddr::BROADCAST,
            src: MacAddr([0x02, 1, 2, 3, 4, 5]),
            ethertype: ETHERTYPE_ARP,
        };
        let bytes = h.to_bytes();
        assert_eq!(EthernetHeader::parse(&bytes), Some(h));
        let (theirs, _) = etherparse::Ethernet2Header::from_slice(&bytes).expect("parses");
        assert_eq!(theirs.source, h.src.0);
        assert_eq!(theirs.destination, h.dst.0);
        assert_eq!(theirs.ether_type, etherparse::EtherType::ARP);
        assert_eq!(EthernetHeader::parse(&bytes[..13]), None);
    }

    #[test]
    fn random_local_addresses_are_unicast_and_locally_administered() {
        for seed in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let m = MacAddr::random_local(seed);
            assert!(m.is_unicast(), "{m}");
            assert_eq!(m.0[0] & 0x02, 0x02, "{m}");
        }
    }

    #[test]
    fn mac_addresses_parse_and_print() {
        let m: MacAddr = "02:AB:cd:00:01:ff".parse().expect("parses");
        assert_eq!(m.to_string(), "02:ab:cd:00:01:ff");
        assert_eq!("02-ab-cd-00-01-ff".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "02:ab:cd:00:01",
            "02:ab:cd:00:01:ff:00",
            "02:ab:cd:00:01:xyz",
            "2::::::",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?}");
        }
        assert_eq!(
            MacAddr::ipv4_multicast("224.1.130.5".parse().expect("addr")),
            MacAddr([0x01, 0, 0x5e, 0x01, 0x82, 0x05])
        );
    }
}
