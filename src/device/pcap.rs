//! Packet capture files in the classic libpcap format.
//!
//! [`PcapWriter`] writes what Wireshark and tcpdump read: a 24-byte global
//! header (magic `0xa1b2c3d4`, microsecond timestamps, version 2.4, snaplen
//! 262,144, link type `LINKTYPE_RAW` = 101 so each record is a bare IP
//! packet), then one 16-byte record header plus the packet per record. All
//! fields are little-endian; readers tell the byte order from the magic.
//!
//! Each record goes out in one `write_all` followed by a flush, so a process
//! killed mid-run leaves a file whose complete records are all readable.
//!
//! [`read_pcap`] is a small, strict reader for tests.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The classic pcap magic number, microsecond timestamps.
pub const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Format version written: 2.4.
pub const PCAP_VERSION: (u16, u16) = (2, 4);
/// Largest number of bytes stored per packet.
pub const PCAP_SNAPLEN: u32 = 262_144;
/// `LINKTYPE_RAW`: each record is a raw IPv4 or IPv6 packet.
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_ETHERNET`: each record is an Ethernet frame (TAP mode).
pub const LINKTYPE_ETHERNET: u32 = 1;

const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Writes packets to `W` as a classic pcap capture.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    w: W,
    /// The record being written, reused so steady state does not allocate.
    record: Vec<u8>,
}

impl PcapWriter<File> {
    /// Creates (or truncates) the file at `path` and writes the pcap header.
    pub fn create(path: impl AsRef<Path>) -> io::Result<PcapWriter<File>> {
        PcapWriter::new(File::create(path)?)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes the pcap global header to `w` and returns a writer for records
    /// of raw IP packets ([`LINKTYPE_RAW`]).
    pub fn new(w: W) -> io::Result<Self> {
        PcapWriter::with_link_type(w, LINKTYPE_RAW)
    }

    /// [`PcapWriter::new`] for records of `link_type` (e.g.
    /// [`LINKTYPE_ETHERNET`]).
    pub fn with_link_type(mut w: W, link_type: u32) -> io::Result<Self> {
        let mut header = [0u8; GLOBAL_HEADER_LEN];
        header[0..4].copy_from_slice(&PCAP_MAGIC_MICROS.to_le_bytes());
        header[4..6].copy_from_slice(&PCAP_VERSION.0.to_le_bytes());
        header[6..8].copy_from_slice(&PCAP_VERSION.1.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        header[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&link_type.to_le_bytes());
        w.write_all(&header)?;
        w.flush()?;
        Ok(PcapWriter {
            w,
            record: Vec::new(),
        })
    }

    /// Appends one packet captured at `ts`, then flushes the writer.
    ///
    /// Packets longer than the snaplen are cut to it; the record keeps the
    /// original length. Times before 1970 are written as 0.
    pub fn write_packet(&mut self, ts: SystemTime, packet: &[u8]) -> io::Result<()> {
        let since_epoch = ts.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = u32::try_from(since_epoch.as_secs()).unwrap_or(u32::MAX);
        let micros = since_epoch.subsec_micros();
        let stored = &packet[..packet.len().min(PCAP_SNAPLEN as usize)];
        let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);

        self.record.clear();
        self.record.extend_from_slice(&secs.to_le_bytes());
        self.record.extend_from_slice(&micros.to_le_bytes());
        // `stored` is at most PCAP_SNAPLEN bytes, so it fits a u32.
        self.record
            .extend_from_slice(&(stored.len() as u32).to_le_bytes());
        self.record.extend_from_slice(&orig_len.to_le_bytes());
        self.record.extend_from_slice(stored);
        self.w.write_all(&self.record)?;
        self.w.flush()
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

/// One capture file that several captures write to (one per shard of a
/// multi-queue stack): the header once, then each record whole under a
/// lock, so records never interleave.
#[derive(Debug, Clone)]
pub struct SharedPcap {
    file: Arc<Mutex<File>>,
    pcapng: bool,
}

impl SharedPcap {
    /// Creates (or truncates) the file at `path` and writes the header:
    /// pcapng with a comment per packet if the name ends in `.pcapng`,
    /// classic pcap otherwise; link type [`LINKTYPE_RAW`] (raw IP records).
    pub fn create(path: impl AsRef<Path>) -> io::Result<SharedPcap> {
        SharedPcap::create_with_link_type(path, LINKTYPE_RAW)
    }

    /// [`SharedPcap::create`] for records of `link_type`.
    pub fn create_with_link_type(path: impl AsRef<Path>, link_type: u32) -> io::Result<SharedPcap> {
        let path = path.as_ref();
        let described = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("creating capture file {}: {e}", path.display()),
            )
        };
        let pcapng = is_pcapng_path(path);
        let file = File::create(path).map_err(described)?;
        let file = if pcapng {
            super::pcapng::PcapngWriter::with_link_type(file, link_type)
                .map_err(described)?
                .into_inner()
        } else {
            PcapWriter::with_link_type(file, link_type)
                .map_err(described)?
                .into_inner()
        };
        Ok(SharedPcap {
            file: Arc::new(Mutex::new(file)),
            pcapng,
        })
    }

    /// Whether the file is pcapng (it takes the stack's notes as comments).
    pub fn is_pcapng(&self) -> bool {
        self.pcapng
    }

    /// A writer of records into the file (its header is written already).
    pub fn writer(&self) -> super::capture::CaptureWriter<SharedFile> {
        let w = SharedFile(self.file.clone());
        if self.pcapng {
            super::capture::CaptureWriter::Pcapng(super::pcapng::PcapngWriter::headless(w))
        } else {
            super::capture::CaptureWriter::Pcap(PcapWriter {
                w,
                record: Vec::new(),
            })
        }
    }
}

/// Whether a capture file named `path` is to be pcapng: its extension is
/// `.pcapng` (any case).
pub fn is_pcapng_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"))
}

/// A file shared by several writers; each `write_all` is one locked write.
#[derive(Debug, Clone)]
pub struct SharedFile(Arc<Mutex<File>>);

impl SharedFile {
    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.lock().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// Parses a whole classic pcap capture of link type [`LINKTYPE_RAW`] with
/// microsecond timestamps (either byte order), returning each record's
/// timestamp (since the Unix epoch) and stored bytes.
///
/// Fails with `InvalidData` on a wrong magic, version or link type, or a
/// record that is truncated or longer than the snaplen.
pub fn read_pcap(bytes: &[u8]) -> io::Result<Vec<(Duration, Vec<u8>)>> {
    fn invalid(msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, msg)
    }

    let header = bytes
        .get(..GLOBAL_HEADER_LEN)
        .ok_or_else(|| invalid(format!("pcap: {} bytes, no global header", bytes.len())))?;
    let magic_bytes: [u8; 4] = [header[0], header[1], header[2], header[3]];
    let big_endian = if u32::from_le_bytes(magic_bytes) == PCAP_MAGIC_MICROS {
        false
    } else if u32::from_be_bytes(magic_bytes) == PCAP_MAGIC_MICROS {
        true
    } else {
        return Err(invalid(format!("pcap: bad magic {magic_bytes:02x?}")));
    };
    let u16_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1]];
        if big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    };
    let u32_at = |b: &[u8], at: usize| {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    };

    let version = (u16_at(header, 4), u16_at(header, 6));
    if version != PCAP_VERSION {
        return Err(invalid(format!(
            "pcap: version {}.{}, expected 2.4",
            version.0, version.1
        )));
    }
    let snaplen = u32_at(header, 16);
    let linktype = u32_at(header, 20);
    if linktype != LINKTYPE_RAW {
        return Err(invalid(format!(
            "pcap: link type {linktype}, expected {LINKTYPE_RAW} (raw IP)"
        )));
    }

    let mut records = Vec::new();
    let mut rest = &bytes[GLOBAL_HEADER_LEN..];
    while !rest.is_empty() {
        let index = records.len();
        let rec = rest
            .get(..RECORD_HEADER_LEN)
            .ok_or_else(|| invalid(format!("pcap: record {index}: truncated header")))?;
        let secs = u32_at(rec, 0);
        let micros = u32_at(rec, 4);
        let incl_len = u32_at(rec, 8);
        let orig_len = u32_at(rec, 12);
        if micros >= 1_000_000 {
            return Err(invalid(format!(
                "pcap: record {index}: {micros} microseconds"
            )));
        }
        if incl_len > snaplen || incl_len > orig_len {
            return Err(invalid(format!(
                "pcap: record {index}: incl_len {incl_len} (orig_len {orig_len}, snaplen {snaplen})"
            )));
        }
        let end = RECORD_HEADER_LEN + incl_len as usize;
        let data = rest
            .get(RECORD_HEADER_LEN..end)
            .ok_or_else(|| invalid(format!("pcap: record {index}: truncated data")))?;
        let ts = Duration::new(u64::from(secs), micros * 1000);
        records.push((ts, data.to_vec()));
        rest = &rest[end..];
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    fn packets() -> [Vec<u8>; 3] {
        [
            vec![0x45, 0, 0, 20, 1, 2, 3, 4],
            vec![0x45; 60],
            (0..=255u8).collect(),
        ]
    }

    #[test]
    fn three_packets_round_trip_with_exact_bytes_and_header_fields() {
        let times = [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000),
            UNIX_EPOCH + Duration::new(1_700_000_001, 0),
            UNIX_EPOCH + Duration::new(1_700_000_002, 999_999_000),
        ];
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for (ts, p) in times.iter().zip(packets().iter()) {
            w.write_packet(*ts, p).unwrap();
        }
        let bytes = w.into_inner();

        // Global header.
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(le32(&bytes, 16), 262_144);
        assert_eq!(le32(&bytes, 20), 101);

        // Record headers, walked by hand.
        let mut at = GLOBAL_HEADER_LEN;
        for (ts, p) in times.iter().zip(packets().iter()) {
            let since = ts.duration_since(UNIX_EPOCH).unwrap();
            assert_eq!(u64::from(le32(&bytes, at)), since.as_secs());
            assert_eq!(le32(&bytes, at + 4), since.subsec_micros());
            assert_eq!(le32(&bytes, at + 8) as usize, p.len(), "incl_len");
            assert_eq!(le32(&bytes, at + 12) as usize, p.len(), "orig_len");
            assert_eq!(&bytes[at + 16..at + 16 + p.len()], &p[..]);
            at += 16 + p.len();
        }
        assert_eq!(at, bytes.len());

        // And through the reader.
        let records = read_pcap(&bytes).unwrap();
        let expected: Vec<(Duration, Vec<u8>)> = times
            .iter()
            .map(|t| t.duration_since(UNIX_EPOCH).unwrap())
            .zip(packets())
            .collect();
        assert_eq!(records, expected);
    }

    #[test]
    fn packet_over_snaplen_is_cut_and_keeps_its_original_length() {
        let big = vec![7u8; PCAP_SNAPLEN as usize + 10];
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(UNIX_EPOCH, &big).unwrap();
        let bytes = w.into_inner();
        assert_eq!(le32(&bytes, 24 + 8), PCAP_SNAPLEN);
        assert_eq!(le32(&bytes, 24 + 12) as usize, big.len());
        let records = read_pcap(&bytes).unwrap();
        assert_eq!(records[0].1.len(), PCAP_SNAPLEN as usize);
    }

    #[test]
    fn each_record_is_one_write_then_a_flush() {
        #[derive(Default)]
        struct Log(Vec<&'static str>);
        impl Write for Log {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.push("write");
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                self.0.push("flush");
                Ok(())
            }
        }
        let mut w = PcapWriter::new(Log::default()).unwrap();
        w.write_packet(UNIX_EPOCH, &[0x45; 40]).unwrap();
        w.write_packet(UNIX_EPOCH, &[0x45; 20]).unwrap();
        assert_eq!(
            w.get_ref().0,
            ["write", "flush", "write", "flush", "write", "flush"]
        );
    }

    #[test]
    fn big_endian_capture_is_read() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&PCAP_MAGIC_MICROS.to_be_bytes());
        bytes.extend_from_slice(&[0, 2, 0, 4]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&PCAP_SNAPLEN.to_be_bytes());
        bytes.extend_from_slice(&LINKTYPE_RAW.to_be_bytes());
        bytes.extend_from_slice(&5u32.to_be_bytes());
        bytes.extend_from_slice(&6u32.to_be_bytes());
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(&[0xab, 0xcd]);
        assert_eq!(
            read_pcap(&bytes).unwrap(),
            vec![(Duration::new(5, 6000), vec![0xab, 0xcd])]
        );
    }

    #[test]
    fn reader_rejects_bad_magic_linktype_and_truncation() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(UNIX_EPOCH, &[0x45; 20]).unwrap();
        let good = w.into_inner();
        assert!(read_pcap(&good).is_ok());

        let mut bad_magic = good.clone();
        bad_magic[0] = 0x4d; // the nanosecond magic's low byte
        assert!(read_pcap(&bad_magic).is_err());

        let mut ethernet = good.clone();
        ethernet[20] = 1; // LINKTYPE_ETHERNET
        assert!(read_pcap(&ethernet).is_err());

        assert!(read_pcap(&good[..good.len() - 1]).is_err());
        assert!(read_pcap(&good[..GLOBAL_HEADER_LEN + 5]).is_err());
        assert!(read_pcap(&good[..10]).is_err());
    }

    #[test]
    fn create_writes_a_readable_file() {
        let path =
            std::env::temp_dir().join(format!("tunstack-pcap-test-{}.pcap", std::process::id()));
        let mut w = PcapWriter::create(&path).unwrap();
        w.write_packet(UNIX_EPOCH + Duration::from_secs(1), &[0x45, 1])
            .unwrap();
        // No drop, no explicit flush: the record is already on disk.
        let bytes = std::fs::read(&path).unwrap();
        drop(w);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            read_pcap(&bytes).unwrap(),
            vec![(Duration::from_secs(1), vec![0x45, 1])]
        );
    }

    #[test]
    fn the_link_type_is_written_in_the_header() {
        let w = PcapWriter::with_link_type(Vec::new(), LINKTYPE_ETHERNET).unwrap();
        assert_eq!(le32(w.get_ref(), 20), LINKTYPE_ETHERNET);
        let w = PcapWriter::new(Vec::new()).unwrap();
        assert_eq!(le32(w.get_ref(), 20), LINKTYPE_RAW);
    }
}
