//! ARP packets for IPv4 over Ethernet (RFC 826): 28 bytes, read and written
//! by hand.

use std::net::Ipv4Addr;

use super::ethernet::MacAddr;

/// Length of an ARP packet for IPv4 over Ethernet.
pub const PACKET_LEN: usize = 28;
/// `ar$hrd` for Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// `ar$pro` for IPv4 (the EtherType).
const PTYPE_IPV4: u16 = 0x0800;

/// `ar$op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `ares_op$REQUEST` (1).
    Request,
    /// `ares_op$REPLY` (2).
    Reply,
}

/// Why an ARP packet was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than 28 bytes.
    Truncated,
    /// Not Ethernet/IPv4 (hardware or protocol type or length), or an
    /// operation other than request and reply (RFC 826 "Packet Reception":
    /// a type we do not speak is discarded).
    Unsupported,
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: Operation,
    /// `ar$sha`.
    pub sender_mac: MacAddr,
    /// `ar$spa`.
    pub sender_ip: Ipv4Addr,
    /// `ar$tha` (zeros in a request).
    pub target_mac: MacAddr,
    /// `ar$tpa`.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses the ARP packet at the front of `bytes` (trailing padding is
    /// ignored).
    pub fn parse(bytes: &[u8]) -> Result<ArpPacket, ArpError> {
        let b: &[u8; PACKET_LEN] = bytes
            .get(..PACKET_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(ArpError::Truncated)?;
        let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        // RFC 826 "Packet Reception": check ar$hrd, ar$pro (and the
        // lengths they imply); discard what we do not speak.
        if be16(0) != HTYPE_ETHERNET || be16(2) != PTYPE_IPV4 || b[4] != 6 || b[5] != 4 {
            return Err(ArpError::Unsupported);
        }
        let op = match be16(6) {
            1 => Operation::Request,
            2 => Operation::Reply,
            _ => return Err(ArpError::Unsupported),
        };
        let mac =
            |at: usize| MacAddr([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]]);
        let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
        Ok(ArpPacket {
            op,
            sender_mac: mac(8),
            sender_ip: ip(14),
            target_mac: mac(18),
            target_ip: ip(24),
        })
    }

    /// The packet's 28 bytes.
    pub fn to_bytes(&self) -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        let op: u16 = match self.op {
            Operation::Request => 1,
            Operation::Reply => 2,
        };
        b[6..8].copy_from_slice(&op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ArpPacket {
        ArpPacket {
            op: Operation::Request,
            sender_mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(10, 0, 0, 1),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn packet_round_trips_and_agrees_with_etherparse() {
        let p = request();
        let bytes = p.to_bytes();
        assert_eq!(ArpPacket::parse(&bytes), Ok(p));
        let theirs = etherparse::ArpPacketSlice::from_slice(&bytes).expect("parses");
        assert_eq!(theirs.operation(), etherparse::ArpOperation::REQUEST);
        assert_eq!(theirs.sender_hw_addr(), &p.sender_mac.0);
        assert_eq!(theirs.target_protocol_addr(), &[10, 0, 0, 2]);
    }

    #[test]
    fn short_foreign_and_unknown_operations_are_refused() {
        let good = request().to_bytes();
        assert_eq!(ArpPacket::parse(&good[..27]), Err(ArpError::Truncated));
        for (at, value) in [(1, 6u8), (3, 0xdd), (4, 8), (5, 16), (7, 3), (6, 1)] {
            let mut bad = good;
            bad[at] = value;
            assert_eq!(
                ArpPacket::parse(&bad),
                Err(ArpError::Unsupported),
                "byte {at}"
            );
        }
    }
}
