//! ICMPv4 messages (RFC 792): the ones the stack reads and writes.

use super::checksum;
use crate::stats::DropReason;

/// ICMP type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// ICMP type: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// ICMP type: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// ICMP type: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;

/// Type: source quench (deprecated, RFC 6633: ignored).
pub const SOURCE_QUENCH: u8 = 4;

/// Type: parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;

/// Code (destination unreachable): fragmentation needed and DF set; the
/// next-hop MTU is in the low 16 bits of the rest of the header (RFC 1191 §4).
pub const CODE_FRAGMENTATION_NEEDED: u8 = 4;
/// Destination-unreachable code: protocol unreachable.
pub const CODE_PROTOCOL_UNREACHABLE: u8 = 2;
/// Destination-unreachable code: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Time-exceeded code: fragment reassembly time exceeded.
pub const CODE_REASSEMBLY_EXCEEDED: u8 = 1;

/// A checksum-verified ICMP message.
#[derive(Debug, Clone, Copy)]
pub struct IcmpMessage<'a> {
    bytes: &'a [u8],
}

impl<'a> IcmpMessage<'a> {
    /// Validates the length and the checksum (RFC 792: over the whole message).
    pub fn parse(bytes: &'a [u8]) -> Result<IcmpMessage<'a>, DropReason> {
        if bytes.len() < 8 {
            return Err(DropReason::IcmpTruncated);
        }
        if !checksum::verifies(0, bytes) {
            return Err(DropReason::IcmpBadChecksum);
        }
        Ok(IcmpMessage { bytes })
    }

    /// The type field.
    pub fn kind(&self) -> u8 {
        self.bytes[0]
    }

    /// The code field.
    pub fn code(&self) -> u8 {
        self.bytes[1]
    }

    /// The second 32-bit word ("rest of header"): identifier and sequence for echo.
    pub fn rest_of_header(&self) -> [u8; 4] {
        [self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]]
    }

    /// Everything after the 8-byte header.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[8..]
    }
}

/// The start of the datagram an ICMP error quotes (RFC 792: its IP header
/// and at least 64 bits of its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted<'a> {
    /// The quoted datagram's source (us, for errors about what we sent).
    pub src: std::net::Ipv4Addr,
    /// The quoted datagram's destination.
    pub dst: std::net::Ipv4Addr,
    /// Its protocol number.
    pub protocol: u8,
    /// The quoted transport bytes (at least 8).
    pub transport: &'a [u8],
}

impl<'a> IcmpMessage<'a> {
    /// The datagram an error message quotes, if the quote is well formed. The
    /// quoted header's checksum is not checked: routers may have changed it.
    pub fn quoted(&self) -> Option<Quoted<'a>> {
        let body = self.body();
        let ihl = usize::from(body.first()? & 0x0f) * 4;
        if body.first()? >> 4 != 4 || ihl < 20 || body.len() < ihl + 8 {
            return None;
        }
        Some(Quoted {
            src: std::net::Ipv4Addr::new(body[12], body[13], body[14], body[15]),
            dst: std::net::Ipv4Addr::new(body[16], body[17], body[18], body[19]),
            protocol: body[9],
            transport: &body[ihl..],
        })
    }
}

/// Writes an ICMP message (type, code, rest-of-header, body) with its
/// checksum into `out`, replacing its contents.
pub fn write(out: &mut Vec<u8>, kind: u8, code: u8, rest: [u8; 4], body: &[u8]) {
    out.clear();
    out.extend_from_slice(&[kind, code, 0, 0]);
    out.extend_from_slice(&rest);
    out.extend_from_slice(body);
    let c = checksum::checksum(out);
    out[2..4].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_messages_parse_back_and_corruption_is_caught() {
        let mut buf = Vec::new();
        write(&mut buf, ECHO_REPLY, 0, [0, 1, 0, 2], b"abc");
        let m = IcmpMessage::parse(&buf).unwrap();
        assert_eq!(
            (m.kind(), m.code(), m.rest_of_header(), m.body()),
            (0, 0, [0, 1, 0, 2], &b"abc"[..])
        );
        buf[9] ^= 0x40;
        assert_eq!(
            IcmpMessage::parse(&buf).unwrap_err(),
            DropReason::IcmpBadChecksum
        );
        assert_eq!(
            IcmpMessage::parse(&buf[..7]).unwrap_err(),
            DropReason::IcmpTruncated
        );
    }
}
