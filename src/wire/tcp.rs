//! TCP segments on the wire: parsing (with checksum verification and
//! tolerant option parsing) and building (with checksum).
//!
//! The fixed header is read and written with `etherparse`; options are walked
//! here, because a receiver must skip options it does not know (RFC 9293
//! §3.1, MUST-6) and survive illegal option lengths (MUST-7), while
//! `etherparse`'s iterator stops at the first unknown kind.

use etherparse::TcpHeaderSlice;

use super::checksum::pseudo_header_sum_ip;
use std::fmt;
use std::net::IpAddr;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMP: u8 = 8;
}

/// The control bits this stack acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// Synchronize sequence numbers.
    pub syn: bool,
    /// The acknowledgment field is significant.
    pub ack: bool,
    /// No more data from the sender.
    pub fin: bool,
    /// Reset the connection.
    pub rst: bool,
    /// Push function.
    pub psh: bool,
    /// The urgent pointer is significant.
    pub urg: bool,
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.syn, "S"),
            (self.fin, "F"),
            (self.rst, "R"),
            (self.psh, "P"),
            (self.ack, "."),
            (self.urg, "U"),
        ];
        for (on, n) in names {
            if on {
                f.write_str(n)?;
            }
        }
        Ok(())
    }
}

/// Up to four SACK blocks (RFC 2018 §3): `[left, right)` sequence ranges
/// the receiver holds beyond its cumulative ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlocks {
    blocks: [(u32, u32); 4],
    len: u8,
}

impl SackBlocks {
    /// Most blocks an option carries (40 bytes of option space, RFC 2018 §3).
    pub const MAX: usize = 4;

    /// Appends a block; false when four are there already.
    pub fn push(&mut self, left: u32, right: u32) -> bool {
        let Some(slot) = self.blocks.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = (left, right);
        self.len += 1;
        true
    }

    /// The blocks, in the order they go on the wire.
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[..usize::from(self.len)]
    }

    /// No block.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The options this stack understands; others are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptionsRepr {
    /// Maximum segment size (RFC 9293 §3.7.1).
    pub mss: Option<u16>,
    /// Window scale shift (RFC 7323 §2).
    pub window_scale: Option<u8>,
    /// SACK permitted (RFC 2018 §2), on SYNs.
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3).
    pub sack: SackBlocks,
    /// Timestamps option (RFC 7323 §3): TSval and TSecr.
    pub timestamp: Option<(u32, u32)>,
}

impl TcpOptionsRepr {
    /// Parses an options area. Unknown kinds are skipped by their length
    /// (MUST-6); an illegal length (< 2 or past the end) ends parsing and
    /// keeps what was read so far (MUST-7); a known option with the wrong
    /// length is ignored.
    pub fn parse(mut opts: &[u8]) -> TcpOptionsRepr {
        let mut out = TcpOptionsRepr::default();
        while let Some(&k) = opts.first() {
            match k {
                kind::END => break,
                kind::NOP => {
                    opts = opts.get(1..).unwrap_or(&[]);
                    continue;
                }
                _ => {}
            }
            let len = match opts.get(1) {
                Some(&l) if l >= 2 && usize::from(l) <= opts.len() => usize::from(l),
                _ => break, // MUST-7: illegal length, stop without failing the segment
            };
            let body = opts.get(2..len).unwrap_or(&[]);
            match (k, body.len()) {
                (kind::MSS, 2) => out.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                (kind::WINDOW_SCALE, 1) => out.window_scale = Some(body[0]),
                (kind::SACK_PERMITTED, 0) => out.sack_permitted = true,
                // RFC 2018 §3: 8 bytes per block, at most four.
                (kind::SACK, n) if n > 0 && n % 8 == 0 && n <= 32 => {
                    for b in body.chunks_exact(8) {
                        let left = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                        out.sack.push(left, right);
                    }
                }
                (kind::TIMESTAMP, 8) => {
                    let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    out.timestamp = Some((v, e));
                }
                _ => {} // MUST-6: unknown (or malformed known) option, ignored
            }
            opts = opts.get(len..).unwrap_or(&[]);
        }
        out
    }

    /// Writes the options into `buf`, padded with NOPs to whole words as
    /// Linux lays them out (MSS; NOP, window scale; NOP, NOP, SACK-permitted;
    /// NOP, NOP, timestamps; NOP, NOP, SACK blocks), and returns their
    /// length. Blocks that would not fit in the 40 bytes are left out
    /// (RFC 2018 §3: with timestamps, three fit).
    pub fn write(&self, buf: &mut [u8; 40]) -> usize {
        let mut n = 0;
        let mut put = |bytes: &[u8], n: &mut usize| {
            if let Some(dst) = buf.get_mut(*n..*n + bytes.len()) {
                dst.copy_from_slice(bytes);
                *n += bytes.len();
            }
        };
        if let Some(mss) = self.mss {
            let [a, b] = mss.to_be_bytes();
            put(&[kind::MSS, 4, a, b], &mut n);
        }
        if let Some(ws) = self.window_scale {
            put(&[kind::NOP, kind::WINDOW_SCALE, 3, ws], &mut n);
        }
        if self.sack_permitted {
            put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2], &mut n);
        }
        if let Some((val, ecr)) = self.timestamp {
            put(&[kind::NOP, kind::NOP, kind::TIMESTAMP, 10], &mut n);
            put(&val.to_be_bytes(), &mut n);
            put(&ecr.to_be_bytes(), &mut n);
        }
        let room = (40 - n).saturating_sub(4) / 8;
        let blocks = self.sack.as_slice();
        let blocks = &blocks[..blocks.len().min(room)];
        if !blocks.is_empty() {
            put(
                &[kind::NOP, kind::NOP, kind::SACK, 2 + 8 * blocks.len() as u8],
                &mut n,
            );
            for (left, right) in blocks {
                put(&left.to_be_bytes(), &mut n);
                put(&right.to_be_bytes(), &mut n);
            }
        }
        n
    }

    fn is_empty(&self) -> bool {
        *self == TcpOptionsRepr::default()
    }
}

/// A TCP header in host terms (everything but the payload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpHeaderRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Window field, unscaled as on the wire.
    pub window: u16,
    /// Urgent pointer (ignored by this stack).
    pub urgent: u16,
    /// Options.
    pub options: TcpOptionsRepr,
}

/// A parsed segment: header and a view of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// The header.
    pub header: TcpHeaderRepr,
    /// The data.
    pub payload: &'a [u8],
}

/// Why a segment was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpParseError {
    /// Shorter than its header, or a data offset below 5.
    Malformed,
    /// Checksum over the pseudo-header and segment does not verify (MUST-2/3).
    BadChecksum,
    /// Source or destination port 0.
    BadPort,
}

impl fmt::Display for TcpParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpParseError::Malformed => "malformed TCP header",
            TcpParseError::BadChecksum => "bad TCP checksum",
            TcpParseError::BadPort => "TCP port 0",
        })
    }
}

impl std::error::Error for TcpParseError {}

/// The Internet checksum over the pseudo-header (IPv4's, RFC 9293 §3.1,
/// or IPv6's, RFC 8200 §8.1) and `parts`. Returns the folded one's-complement sum, not inverted.
fn pseudo_sum(src: IpAddr, dst: IpAddr, parts: &[&[u8]]) -> u16 {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut c = pseudo_header_sum_ip(src, dst, 6, total);
    for part in parts {
        c.add(part);
    }
    c.sum()
}

impl<'a> TcpSegment<'a> {
    /// Parses `bytes` (a whole TCP segment) received from `src` to `dst`,
    /// verifying the checksum first (MUST-2/3). Never panics.
    pub fn parse(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &'a [u8],
    ) -> Result<Self, TcpParseError> {
        Self::parse_with(src.into(), dst.into(), bytes, true)
    }

    /// [`TcpSegment::parse`], verifying the checksum only if `verify`: a
    /// device with checksum offload says when the kernel built the segment
    /// on this host and left its checksum undone, or verified it already.
    pub fn parse_with(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &'a [u8],
        verify: bool,
    ) -> Result<Self, TcpParseError> {
        let (src, dst) = (src.into(), dst.into());
        let slice = TcpHeaderSlice::from_slice(bytes).map_err(|_| TcpParseError::Malformed)?;
        if bytes.len() > usize::from(u16::MAX) {
            return Err(TcpParseError::Malformed);
        }
        if verify && pseudo_sum(src, dst, &[bytes]) != 0xffff {
            return Err(TcpParseError::BadChecksum);
        }
        if slice.source_port() == 0 || slice.destination_port() == 0 {
            return Err(TcpParseError::BadPort);
        }
        let payload = bytes.get(slice.slice().len()..).unwrap_or(&[]);
        let header = TcpHeaderRepr {
            src_port: slice.source_port(),
            dst_port: slice.destination_port(),
            seq: slice.sequence_number(),
            ack: slice.acknowledgment_number(),
            flags: TcpFlags {
                syn: slice.syn(),
                ack: slice.ack(),
                fin: slice.fin(),
                rst: slice.rst(),
                psh: slice.psh(),
                urg: slice.urg(),
            },
            window: slice.window_size(),
            urgent: slice.urgent_pointer(),
            options: TcpOptionsRepr::parse(slice.options()),
        };
        Ok(TcpSegment { header, payload })
    }

    /// Sequence space the segment occupies: data plus SYN and FIN.
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.header.flags.syn)
            + u32::from(self.header.flags.fin)
    }
}

impl TcpHeaderRepr {
    /// Appends this header and `payload` (given in up to two pieces, as it
    /// comes out of a ring buffer) to `out`, with the checksum for a packet
    /// from `src` to `dst`. The payload must keep the segment under 64 KiB.
    pub fn emit(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        payload: [&[u8]; 2],
        out: &mut Vec<u8>,
    ) {
        self.emit_with(src, dst, payload, false, out);
    }

    /// Like [`TcpHeaderRepr::emit`], but with `partial` the checksum field
    /// gets only the pseudo-header sum (folded, not complemented), for a
    /// device that completes it (checksum offload: the virtio-net header's
    /// `NEEDS_CSUM`). The payload is then copied but never summed.
    pub fn emit_with(
        &self,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        payload: [&[u8]; 2],
        partial: bool,
        out: &mut Vec<u8>,
    ) {
        let (src, dst) = (src.into(), dst.into());
        let start = out.len();
        if self.options.is_empty() {
            self.write_plain_header(out);
        } else {
            self.write_header_with_options(out);
        }
        let header_len = out.len() - start;
        out.extend_from_slice(payload[0]);
        out.extend_from_slice(payload[1]);
        let mut c = pseudo_header_sum_ip(src, dst, 6, out.len() - start);
        let sum = if partial {
            c.sum()
        } else {
            c.add(&out[start..start + header_len]);
            c.add(payload[0]);
            c.add(payload[1]);
            c.finish()
        };
        out[start + 16..start + 18].copy_from_slice(&sum.to_be_bytes());
    }

    /// The 20-byte header of a segment without options (checksum zero).
    fn write_plain_header(&self, out: &mut Vec<u8>) {
        let f = &self.flags;
        let flags = u8::from(f.fin)
            | u8::from(f.syn) << 1
            | u8::from(f.rst) << 2
            | u8::from(f.psh) << 3
            | u8::from(f.ack) << 4
            | u8::from(f.urg) << 5;
        let mut h = [0u8; 20];
        h[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        h[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        h[4..8].copy_from_slice(&self.seq.to_be_bytes());
        h[8..12].copy_from_slice(&self.ack.to_be_bytes());
        h[12] = 5 << 4;
        h[13] = flags;
        h[14..16].copy_from_slice(&self.window.to_be_bytes());
        h[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        out.extend_from_slice(&h);
    }

    /// The header with its options (checksum zero).
    fn write_header_with_options(&self, out: &mut Vec<u8>) {
        let mut opts = [0u8; 40];
        let len = self.options.write(&mut opts);
        let start = out.len();
        self.write_plain_header(out);
        out[start + 12] = ((5 + len / 4) as u8) << 4;
        out.extend_from_slice(&opts[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn syn() -> TcpHeaderRepr {
        TcpHeaderRepr {
            src_port: 40000,
            dst_port: 7,
            seq: 1000,
            ack: 0,
            flags: TcpFlags {
                syn: true,
                ..Default::default()
            },
            window: 64240,
            urgent: 0,
            options: TcpOptionsRepr {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some((1, 0)),
                ..Default::default()
            },
        }
    }

    #[test]
    fn sack_blocks_round_trip_and_bad_lengths_are_ignored() {
        let mut h = syn();
        h.flags = TcpFlags {
            ack: true,
            ..Default::default()
        };
        h.options = TcpOptionsRepr::default();
        for i in 0..4u32 {
            assert!(h.options.sack.push(1000 * i + 10, 1000 * i + 500));
        }
        assert!(!h.options.sack.push(1, 2), "a fifth block does not fit");
        let mut buf = Vec::new();
        h.emit(A, B, [&[], &[]], &mut buf);
        assert!(buf.len() <= 60, "header of {} bytes", buf.len());
        let seg = TcpSegment::parse(A, B, &buf).expect("parses");
        assert_eq!(seg.header.options.sack, h.options.sack);
        // A SACK option whose length is not 2 + 8n is ignored (MUST-6/7).
        let o = TcpOptionsRepr::parse(&[5, 6, 0, 0, 0, 1]);
        assert!(o.sack.is_empty());
        let o = TcpOptionsRepr::parse(&[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(o.sack.as_slice(), &[(1, 9)]);
    }

    #[test]
    fn emit_then_parse_round_trips_with_a_valid_checksum() {
        let mut buf = Vec::new();
        syn().emit(A, B, [b"hel", b"lo"], &mut buf);
        let seg = TcpSegment::parse(A, B, &buf).expect("parses");
        assert_eq!(seg.header, syn());
        assert_eq!(seg.payload, b"hello");
        assert_eq!(seg.seg_len(), 6);
        // etherparse agrees on the checksum.
        let slice = TcpHeaderSlice::from_slice(&buf).expect("header");
        let hl = slice.slice().len();
        assert_eq!(
            slice
                .calc_checksum_ipv4_raw(A.octets(), B.octets(), &buf[hl..])
                .ok(),
            Some(slice.checksum())
        );
    }

    #[test]
    fn bad_checksum_and_truncation_are_rejected() {
        let mut buf = Vec::new();
        syn().emit(A, B, [b"x", b""], &mut buf);
        // Wrong pseudo-header (different destination).
        assert_eq!(
            TcpSegment::parse(A, A, &buf),
            Err(TcpParseError::BadChecksum)
        );
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            TcpSegment::parse(A, B, &flipped),
            Err(TcpParseError::BadChecksum)
        );
        for n in 0..buf.len() - 1 {
            assert!(TcpSegment::parse(A, B, &buf[..n]).is_err());
        }
    }

    #[test]
    fn options_skip_unknown_kinds_and_survive_illegal_lengths() {
        // Unknown kind 99 (len 4), then MSS.
        let o = TcpOptionsRepr::parse(&[99, 4, 0, 0, 2, 4, 0x05, 0xb4]);
        assert_eq!(o.mss, Some(1460));
        // Zero length: parsing stops, no panic, no loop.
        let o = TcpOptionsRepr::parse(&[2, 4, 1, 0, 99, 0, 3, 3, 7]);
        assert_eq!(o.mss, Some(256));
        assert_eq!(o.window_scale, None);
        // Length past the end.
        assert_eq!(
            TcpOptionsRepr::parse(&[3, 200, 7]),
            TcpOptionsRepr::default()
        );
        // Known option with the wrong length is ignored.
        assert_eq!(TcpOptionsRepr::parse(&[2, 3, 5, 1, 1]).mss, None);
        // Every short prefix and every byte value parse without panicking.
        for b in 0..=255u8 {
            for len in 0..6 {
                let bytes = [b, len as u8, b, b, b, b];
                let _ = TcpOptionsRepr::parse(&bytes[..len]);
            }
        }
    }

    /// The header as etherparse writes it, options in the same order.
    fn etherparse_bytes(h: &TcpHeaderRepr) -> Vec<u8> {
        use etherparse::{TcpHeader, TcpOptionElement as E, TcpOptions};
        let mut t = TcpHeader::new(h.src_port, h.dst_port, h.seq, h.window);
        t.acknowledgment_number = h.ack;
        (t.syn, t.ack, t.fin, t.rst, t.psh, t.urg) = (
            h.flags.syn,
            h.flags.ack,
            h.flags.fin,
            h.flags.rst,
            h.flags.psh,
            h.flags.urg,
        );
        t.urgent_pointer = h.urgent;
        let o = &h.options;
        let mut v = Vec::new();
        if let Some(mss) = o.mss {
            v.push(E::MaximumSegmentSize(mss));
        }
        if let Some(ws) = o.window_scale {
            v.extend([E::Noop, E::WindowScale(ws)]);
        }
        if o.sack_permitted {
            v.extend([E::Noop, E::Noop, E::SelectiveAcknowledgementPermitted]);
        }
        if let Some((a, b)) = o.timestamp {
            v.extend([E::Noop, E::Noop, E::Timestamp(a, b)]);
        }
        if let [first, rest @ ..] = o.sack.as_slice() {
            let mut more = [None; 3];
            for (slot, b) in more.iter_mut().zip(rest) {
                *slot = Some(*b);
            }
            v.extend([E::Noop, E::Noop, E::SelectiveAcknowledgement(*first, more)]);
        }
        t.options = TcpOptions::try_from_elements(&v).expect("fits");
        t.checksum = 0;
        t.to_bytes().to_vec()
    }

    #[test]
    fn the_hand_written_header_matches_etherparse_for_every_flag_combination() {
        for bits in 0..64u8 {
            let mut h = TcpHeaderRepr {
                src_port: 40000,
                dst_port: 80,
                seq: 0x0102_0304,
                ack: 0xfffe_fdfc,
                flags: TcpFlags {
                    fin: bits & 1 != 0,
                    syn: bits & 2 != 0,
                    rst: bits & 4 != 0,
                    psh: bits & 8 != 0,
                    ack: bits & 16 != 0,
                    urg: bits & 32 != 0,
                },
                window: 0xabcd,
                urgent: 7,
                options: TcpOptionsRepr::default(),
            };
            let mut ours = Vec::new();
            h.write_plain_header(&mut ours);
            assert_eq!(ours, etherparse_bytes(&h), "flags {bits:#b}");
            h.options.timestamp = Some((0xdead_beef, bits.into()));
            let mut ours = Vec::new();
            h.write_header_with_options(&mut ours);
            assert_eq!(
                ours,
                etherparse_bytes(&h),
                "flags {bits:#b} with timestamps"
            );
        }
    }

    /// The options writer lays options out as etherparse does, for a SYN's
    /// full set and for an ACK's timestamps with SACK blocks; with
    /// timestamps only three blocks fit (RFC 2018 §3), without, four.
    #[test]
    fn options_are_written_as_etherparse_writes_them() {
        let s = syn();
        let mut ours = Vec::new();
        s.write_header_with_options(&mut ours);
        assert_eq!(ours, etherparse_bytes(&s));
        let mut a = syn();
        a.flags = TcpFlags {
            ack: true,
            ..Default::default()
        };
        a.options = TcpOptionsRepr {
            timestamp: Some((7, 9)),
            ..Default::default()
        };
        for i in 0..3u32 {
            a.options.sack.push(100 * i, 100 * i + 50);
        }
        let mut ours = Vec::new();
        a.write_header_with_options(&mut ours);
        assert_eq!(ours, etherparse_bytes(&a));
        assert_eq!(ours.len(), 60);
        a.options.sack.push(900, 950);
        let mut four = Vec::new();
        a.write_header_with_options(&mut four);
        assert_eq!(four, ours, "the fourth block is left out beside timestamps");
        let parsed = TcpOptionsRepr::parse(&four[20..]);
        assert_eq!(parsed.sack.as_slice().len(), 3);
        assert_eq!(parsed.timestamp, Some((7, 9)));
        a.options.timestamp = None;
        let mut no_ts = Vec::new();
        a.write_header_with_options(&mut no_ts);
        assert_eq!(no_ts, etherparse_bytes(&a));
        assert_eq!(TcpOptionsRepr::parse(&no_ts[20..]).sack.as_slice().len(), 4);
    }

    #[test]
    fn checksum_handles_odd_split_payloads() {
        let mut one = Vec::new();
        let mut two = Vec::new();
        let h = TcpHeaderRepr {
            flags: TcpFlags {
                ack: true,
                ..Default::default()
            },
            ..syn()
        };
        h.emit(A, B, [b"abcde", b""], &mut one);
        h.emit(A, B, [b"a", b"bcde"], &mut two);
        assert_eq!(one, two);
        assert!(TcpSegment::parse(A, B, &one).is_ok());
    }
}
