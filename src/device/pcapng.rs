//! Packet capture files in the pcapng format, with a comment per packet.
//!
//! [`PcapngWriter`] writes a Section Header Block, one Interface
//! Description Block (link type [`LINKTYPE_RAW`] unless told otherwise,
//! microsecond timestamps, the default), then one Enhanced Packet Block
//! per packet, carrying the packet's direction (`epb_flags`: inbound or
//! outbound, as the stack saw it) and, when there is one, a comment
//! (`opt_comment`): what the stack did with the packet, which Wireshark
//! shows as the packet's comment (`frame.comment`). All fields are
//! little-endian; readers tell the byte order from the section header.
//!
//! As with [`super::pcap::PcapWriter`], each block goes out in one
//! `write_all` followed by a flush, so a process killed mid-run leaves a
//! file whose complete blocks are all readable, and several writers can
//! share a file ([`super::pcap::SharedPcap`]).
//!
//! Written by hand rather than with the `pcap-file` crate: the three
//! blocks take a few dozen lines, each block is built in a reused buffer
//! and written at once (the crate writes field by field and builds an
//! options vector per packet), and `tunstack ladder` reads them with its
//! own reader (`src/ladder/capture.rs`).

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use super::pcap::LINKTYPE_RAW;
use super::pcap::PCAP_SNAPLEN;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const EPB_FLAGS: u16 = 2;
/// Longest comment written, bytes (a longer one is cut at a character
/// boundary).
const COMMENT_MAX: usize = 4096;

/// Which way a packet went, as the stack sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by the stack.
    Inbound,
    /// Sent by the stack.
    Outbound,
}

/// Writes packets to `W` as a pcapng capture with per-packet comments.
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    w: W,
    /// The block being written, reused so steady state does not allocate.
    block: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and an interface of link type
    /// [`LINKTYPE_RAW`] (bare IP packets) to `w`.
    pub fn new(w: W) -> io::Result<Self> {
        Self::with_link_type(w, LINKTYPE_RAW)
    }

    /// Writes the section header and an interface of link type
    /// `linktype` (e.g. 1 for Ethernet) to `w`.
    pub fn with_link_type(mut w: W, linktype: u32) -> io::Result<Self> {
        let mut head = Vec::with_capacity(48);
        // Section Header Block: no options, section length unknown (-1).
        head.extend_from_slice(&SHB.to_le_bytes());
        head.extend_from_slice(&28u32.to_le_bytes());
        head.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        head.extend_from_slice(&1u16.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&u64::MAX.to_le_bytes());
        head.extend_from_slice(&28u32.to_le_bytes());
        // Interface Description Block: microsecond timestamps (the default).
        head.extend_from_slice(&IDB.to_le_bytes());
        head.extend_from_slice(&20u32.to_le_bytes());
        // The link type field is 16 bits; larger values are not link types.
        head.extend_from_slice(&(linktype as u16).to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        head.extend_from_slice(&20u32.to_le_bytes());
        w.write_all(&head)?;
        w.flush()?;
        Ok(PcapngWriter {
            w,
            block: Vec::new(),
        })
    }

    /// Appends one packet captured at `ts`, going `dir`, with `comment`
    /// (none if empty), then flushes the writer. Packets longer than the
    /// snaplen are cut to it; the block keeps the original length.
    pub fn write_packet(
        &mut self,
        ts: SystemTime,
        packet: &[u8],
        dir: Direction,
        comment: &str,
    ) -> io::Result<()> {
        let micros = ts
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_micros();
        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
        let stored = &packet[..packet.len().min(PCAP_SNAPLEN as usize)];
        let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let comment = cut(comment, COMMENT_MAX);

        let b = &mut self.block;
        b.clear();
        b.extend_from_slice(&EPB.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // total length, below
        b.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        b.extend_from_slice(&((micros >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(micros as u32).to_le_bytes());
        // `stored` is at most PCAP_SNAPLEN bytes, so it fits a u32.
        b.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        b.extend_from_slice(&orig_len.to_le_bytes());
        b.extend_from_slice(stored);
        pad(b);
        if !comment.is_empty() {
            option(b, OPT_COMMENT, comment.as_bytes());
        }
        let flags: u32 = match dir {
            Direction::Inbound => 1,
            Direction::Outbound => 2,
        };
        option(b, EPB_FLAGS, &flags.to_le_bytes());
        option(b, OPT_END, &[]);
        let total = (b.len() + 4) as u32;
        b.extend_from_slice(&total.to_le_bytes());
        b[4..8].copy_from_slice(&total.to_le_bytes());
        self.w.write_all(b)?;
        self.w.flush()
    }

    /// A writer of blocks into `w`, whose headers are written already.
    pub(crate) fn headless(w: W) -> Self {
        PcapngWriter {
            w,
            block: Vec::new(),
        }
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.w
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Appends an option: code, length, value padded to 4 bytes.
fn option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    // Values are at most COMMENT_MAX bytes.
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    pad(b);
}

fn pad(b: &mut Vec<u8>) {
    while b.len() % 4 != 0 {
        b.push(0);
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::capture::read_records;

    #[test]
    fn blocks_are_well_formed_and_the_ladder_reader_reads_them() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        let t0 = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000);
        w.write_packet(
            t0,
            &[0x45, 1, 2],
            Direction::Inbound,
            "SYN-RCVD -> ESTABLISHED",
        )
        .unwrap();
        w.write_packet(
            t0 + Duration::from_millis(1),
            &[0x45; 8],
            Direction::Outbound,
            "",
        )
        .unwrap();
        let bytes = w.into_inner();
        assert_eq!(&bytes[0..4], &SHB.to_le_bytes());
        // Every block's trailing length equals its leading one.
        let mut at = 0;
        let mut blocks = 0;
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let tail = u32::from_le_bytes(bytes[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(tail as usize, len);
            at += len;
            blocks += 1;
        }
        assert_eq!((at, blocks), (bytes.len(), 4));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("SYN-RCVD -> ESTABLISHED"));

        let records = read_records(&bytes).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data, &[0x45, 1, 2]);
        assert_eq!(records[0].linktype, LINKTYPE_RAW);
        assert_eq!(records[0].time, Duration::new(1_700_000_000, 123_456_000));
        assert_eq!(records[1].data, &[0x45; 8]);
    }

    #[test]
    fn link_type_is_a_parameter() {
        let w = PcapngWriter::with_link_type(Vec::new(), 1).unwrap();
        let bytes = w.into_inner();
        // IDB after the 28-byte SHB: type, length, then the link type.
        assert_eq!(u16::from_le_bytes([bytes[36], bytes[37]]), 1);
    }

    #[test]
    fn long_comments_are_cut_at_a_character_boundary() {
        let long = "é".repeat(COMMENT_MAX);
        assert!(cut(&long, COMMENT_MAX).len() <= COMMENT_MAX);
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.write_packet(UNIX_EPOCH, &[0x45], Direction::Inbound, &long)
            .unwrap();
        assert_eq!(read_records(&w.into_inner()).unwrap().len(), 1);
    }
}
