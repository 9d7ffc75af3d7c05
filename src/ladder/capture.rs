//! Reading capture files: classic pcap and pcapng, down to the TCP
//! segments over IPv4 and IPv6 that the ladder draws.
//!
//! Both formats are parsed here by hand rather than with the `pcap-file`
//! crate: the ladder needs four pcapng blocks (SHB, IDB, EPB, SPB) and the
//! classic header, about as much code as the glue to a crate would be, and a
//! parser of our own lets every length be checked against the bytes that are
//! there, so a truncated or hostile file gives an error that names the file
//! offset and what was wrong, never a panic, with no new dependency. Writing
//! pcapng (issue 14, part 2) may still pick the crate.
//!
//! Link types: `LINKTYPE_RAW` (101, and the old 12 and 14), `LINKTYPE_IPV4`
//! (228), `LINKTYPE_IPV6` (229), Ethernet (1, with 802.1Q/802.1ad tags
//! skipped), Linux cooked capture SLL (113) and SLL2 (276). Packets that
//! are not TCP over IPv4 or IPv6 (ARP, UDP, fragments, IPv6 with extension
//! headers, headers cut short by the snaplen) are skipped, not errors: a
//! capture from a busy interface holds many.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{IpNumber, Ipv4HeaderSlice, TcpHeaderSlice};

use crate::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpOptionsRepr};

/// Why a capture file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    /// Byte offset in the file where the problem is.
    pub offset: usize,
    /// What was wrong there.
    pub what: String,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for CaptureError {}

impl From<CaptureError> for std::io::Error {
    fn from(e: CaptureError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

fn err(offset: usize, what: impl Into<String>) -> CaptureError {
    CaptureError {
        offset,
        what: what.into(),
    }
}

/// One record of a capture: when, on which link type, and the bytes stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Frame number, 1-based, as Wireshark counts them.
    pub frame: usize,
    /// Timestamp since the Unix epoch.
    pub time: Duration,
    /// The link type of the interface the packet was captured on.
    pub linktype: u32,
    /// The stored bytes (possibly cut short by the snaplen).
    pub data: &'a [u8],
}

/// A TCP segment over IPv4 or IPv6, as the ladder needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpPacket {
    /// Frame number in the capture, 1-based.
    pub frame: usize,
    /// Timestamp since the Unix epoch.
    pub time: Duration,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The TCP header.
    pub header: TcpHeaderRepr,
    /// Data bytes, from the IP total length (not what the snaplen kept).
    pub payload_len: u32,
}

impl TcpPacket {
    /// Sequence space the segment occupies: data plus SYN and FIN.
    pub fn seg_len(&self) -> u32 {
        self.payload_len + u32::from(self.header.flags.syn) + u32::from(self.header.flags.fin)
    }
}

const PCAP_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_NANOS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;

/// Byte order of the file being read.
#[derive(Clone, Copy)]
struct Endian {
    big: bool,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let v: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let v: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        })
    }
}

/// Reads every record of a classic pcap or a pcapng file.
pub fn read_records(bytes: &[u8]) -> Result<Vec<Record<'_>>, CaptureError> {
    let magic = bytes.get(..4).ok_or_else(|| {
        err(
            0,
            format!("{} bytes: too short for a capture file", bytes.len()),
        )
    })?;
    let le = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
    let be = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
    match (le, be) {
        (PCAPNG_SHB, _) => read_pcapng(bytes),
        (PCAP_MICROS | PCAP_NANOS, _) => read_pcap(bytes, Endian { big: false }, le),
        (_, PCAP_MICROS | PCAP_NANOS) => read_pcap(bytes, Endian { big: true }, be),
        _ => Err(err(
            0,
            format!("magic {magic:02x?} is neither pcap nor pcapng"),
        )),
    }
}

fn read_pcap(bytes: &[u8], e: Endian, magic: u32) -> Result<Vec<Record<'_>>, CaptureError> {
    const HEADER: usize = 24;
    const RECORD: usize = 16;
    let short = || err(bytes.len(), "pcap: file ends inside the 24-byte header");
    let major = e.u16(bytes, 4).ok_or_else(short)?;
    let linktype = e.u32(bytes, 20).ok_or_else(short)?;
    if major != 2 {
        return Err(err(4, format!("pcap: version {major}, expected 2")));
    }
    // The upper bits of the link type field hold FCS information.
    let linktype = linktype & 0x0fff_ffff;
    let nanos = magic == PCAP_NANOS;
    let mut records = Vec::new();
    let mut at = HEADER;
    while at < bytes.len() {
        let frame = records.len() + 1;
        let field = |i: usize| {
            e.u32(bytes, at + i).ok_or_else(|| {
                err(
                    at,
                    format!("pcap: frame {frame}: file ends inside the record header"),
                )
            })
        };
        let (secs, frac, incl_len) = (field(0)?, field(4)?, field(8)?);
        let sub = if nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        if sub >= 1_000_000_000 {
            return Err(err(
                at + 4,
                format!("pcap: frame {frame}: sub-second field {frac} out of range"),
            ));
        }
        let start = at + RECORD;
        let data = usize::try_from(incl_len)
            .ok()
            .and_then(|n| bytes.get(start..start.checked_add(n)?))
            .ok_or_else(|| {
                err(
                    at + 8,
                    format!(
                        "pcap: frame {frame}: {incl_len} bytes of packet, {} left in the file",
                        bytes.len() - start.min(bytes.len())
                    ),
                )
            })?;
        records.push(Record {
            frame,
            time: Duration::new(u64::from(secs), sub),
            linktype,
            data,
        });
        at = start + data.len();
    }
    Ok(records)
}

/// One pcapng interface: its link type and timestamp unit.
#[derive(Clone, Copy)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
}

fn read_pcapng(bytes: &[u8]) -> Result<Vec<Record<'_>>, CaptureError> {
    let mut records = Vec::new();
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut e = Endian { big: false };
    let mut at = 0;
    while at < bytes.len() {
        let block_type_bytes = bytes
            .get(at..at + 4)
            .ok_or_else(|| err(at, "pcapng: file ends inside a block type"))?;
        let raw_type = u32::from_le_bytes([
            block_type_bytes[0],
            block_type_bytes[1],
            block_type_bytes[2],
            block_type_bytes[3],
        ]);
        if raw_type == PCAPNG_SHB {
            // A new section: its byte-order magic sets the endianness.
            let bom = bytes
                .get(at + 8..at + 12)
                .ok_or_else(|| err(at, "pcapng: file ends inside a section header"))?;
            let bom_le = u32::from_le_bytes([bom[0], bom[1], bom[2], bom[3]]);
            e = match bom_le {
                PCAPNG_BYTE_ORDER => Endian { big: false },
                _ if u32::from_be_bytes([bom[0], bom[1], bom[2], bom[3]]) == PCAPNG_BYTE_ORDER => {
                    Endian { big: true }
                }
                _ => return Err(err(at + 8, format!("pcapng: byte-order magic {bom:02x?}"))),
            };
            interfaces.clear();
        }
        let block_type = e
            .u32(bytes, at)
            .ok_or_else(|| err(at, "pcapng: file ends inside a block type"))?;
        let len = e
            .u32(bytes, at + 4)
            .ok_or_else(|| err(at, "pcapng: file ends inside a block length"))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < 12 || len % 4 != 0 {
            return Err(err(
                at + 4,
                format!("pcapng: block length {len} (must be a multiple of 4, at least 12)"),
            ));
        }
        let block = at
            .checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| {
                err(
                    at + 4,
                    format!(
                        "pcapng: block of {len} bytes, {} left in the file",
                        bytes.len() - at
                    ),
                )
            })?;
        if e.u32(block, len - 4) != Some(len as u32) {
            return Err(err(
                at + len - 4,
                "pcapng: trailing block length differs from the leading one",
            ));
        }
        let body = &block[8..len - 4];
        match block_type {
            // Interface Description Block.
            1 => {
                let linktype = e
                    .u16(body, 0)
                    .ok_or_else(|| err(at + 8, "pcapng: interface block too short"))?;
                let units_per_sec = if_tsresol(body.get(8..).unwrap_or(&[]), e)
                    .map_err(|what| err(at + 16, what))?;
                interfaces.push(Interface {
                    linktype: u32::from(linktype),
                    units_per_sec,
                });
            }
            // Enhanced Packet Block.
            6 => {
                let short = || err(at + 8, "pcapng: enhanced packet block too short");
                let id = e.u32(body, 0).ok_or_else(short)?;
                let hi = e.u32(body, 4).ok_or_else(short)?;
                let lo = e.u32(body, 8).ok_or_else(short)?;
                let cap = e.u32(body, 12).ok_or_else(short)?;
                let iface = usize::try_from(id)
                    .ok()
                    .and_then(|i| interfaces.get(i))
                    .ok_or_else(|| {
                        err(
                            at + 8,
                            format!("pcapng: packet on interface {id}, which was not described"),
                        )
                    })?;
                let data = usize::try_from(cap)
                    .ok()
                    .and_then(|n| body.get(20..20usize.checked_add(n)?))
                    .ok_or_else(|| {
                        err(
                            at + 20,
                            format!("pcapng: captured length {cap} runs past its block"),
                        )
                    })?;
                let ts = (u64::from(hi) << 32) | u64::from(lo);
                let per = iface.units_per_sec;
                let nanos = u128::from(ts % per) * 1_000_000_000 / u128::from(per);
                records.push(Record {
                    frame: records.len() + 1,
                    // nanos < 1e9, so the cast cannot truncate.
                    time: Duration::new(ts / per, nanos as u32),
                    linktype: iface.linktype,
                    data,
                });
            }
            // Simple Packet Block: interface 0, no timestamp.
            3 => {
                let orig = e
                    .u32(body, 0)
                    .ok_or_else(|| err(at + 8, "pcapng: simple packet block too short"))?;
                let iface = interfaces
                    .first()
                    .ok_or_else(|| err(at, "pcapng: simple packet block before any interface"))?;
                let rest = body.get(4..).unwrap_or(&[]);
                let n = rest.len().min(usize::try_from(orig).unwrap_or(usize::MAX));
                records.push(Record {
                    frame: records.len() + 1,
                    time: Duration::ZERO,
                    linktype: iface.linktype,
                    data: &rest[..n],
                });
            }
            // Section header (handled above), statistics, name resolution,
            // custom blocks...: nothing the ladder needs.
            _ => {}
        }
        at += len;
    }
    Ok(records)
}

/// The `if_tsresol` option (code 9) of an interface block: units per
/// second (default microseconds).
fn if_tsresol(mut opts: &[u8], e: Endian) -> Result<u64, String> {
    let mut units = 1_000_000;
    while let (Some(code), Some(len)) = (e.u16(opts, 0), e.u16(opts, 2)) {
        if code == 0 {
            break;
        }
        let len = usize::from(len);
        let value = opts
            .get(4..4 + len)
            .ok_or("pcapng: interface option runs past its block")?;
        if code == 9 {
            let r = *value.first().ok_or("pcapng: empty if_tsresol")?;
            let exp = u32::from(r & 0x7f);
            let base: u64 = if r & 0x80 == 0 { 10 } else { 2 };
            units = base
                .checked_pow(exp)
                .filter(|&u| u > 0)
                .ok_or_else(|| format!("pcapng: if_tsresol {r:#x} out of range"))?;
        }
        let padded = 4 + len.div_ceil(4) * 4;
        opts = opts.get(padded..).unwrap_or(&[]);
    }
    Ok(units)
}

/// The IP packet (IPv4 or IPv6) inside a record, or `None` when the link
/// layer carries neither (ARP, an unknown link type, a header cut short).
pub fn ip_payload(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    const ETHERTYPE_IPV4: u16 = 0x0800;
    const ETHERTYPE_IPV6: u16 = 0x86dd;
    let be16 = |at: usize| Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?));
    let (ethertype, at) = match linktype {
        // Raw IP (101; 12 and 14 on some BSDs and old libpcaps), IPv4 only
        // (228), IPv6 only (229).
        12 | 14 | 101 => {
            return data
                .first()
                .filter(|b| matches!(*b >> 4, 4 | 6))
                .map(|_| data)
        }
        228 => return data.first().filter(|b| *b >> 4 == 4).map(|_| data),
        229 => return data.first().filter(|b| *b >> 4 == 6).map(|_| data),
        // Ethernet, with any 802.1Q / 802.1ad tags skipped.
        1 => {
            let mut at = 12;
            let mut ethertype = be16(at)?;
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                at += 4;
                ethertype = be16(at)?;
            }
            (ethertype, at + 2)
        }
        // Linux cooked capture v1: protocol at 14, 16-byte header.
        113 => (be16(14)?, 16),
        // Linux cooked capture v2: protocol at 0, 20-byte header.
        276 => (be16(0)?, 20),
        _ => return None,
    };
    // The version nibble must be the EtherType's.
    let version = match ethertype {
        ETHERTYPE_IPV4 => 4,
        ETHERTYPE_IPV6 => 6,
        _ => return None,
    };
    data.get(at..)
        .filter(|ip| ip.first().is_some_and(|b| b >> 4 == version))
}

/// The TCP segment of an IPv6 packet whose fixed header TCP follows
/// directly: its addresses and bytes (`None` for anything else).
fn ipv6_tcp(ip_bytes: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    let ip = etherparse::Ipv6HeaderSlice::from_slice(ip_bytes).ok()?;
    if ip.next_header() != IpNumber::TCP {
        return None;
    }
    let end = 40 + usize::from(ip.payload_length());
    let tcp = ip_bytes.get(40..end)?;
    Some((ip.source_addr().into(), ip.destination_addr().into(), tcp))
}

/// The TCP segment in a record, or `None` if there is none to draw.
pub fn tcp_packet(record: &Record<'_>) -> Option<TcpPacket> {
    let ip_bytes = ip_payload(record.linktype, record.data)?;
    let (src, dst, tcp_bytes, tcp_len): (IpAddr, IpAddr, &[u8], usize) =
        if ip_bytes.first()? >> 4 == 6 {
            let (src, dst, tcp) = ipv6_tcp(ip_bytes)?;
            (src, dst, tcp, tcp.len())
        } else {
            let ip = Ipv4HeaderSlice::from_slice(ip_bytes).ok()?;
            if ip.protocol() != IpNumber::TCP || ip.is_fragmenting_payload() {
                return None;
            }
            let ip_header_len = usize::from(ip.ihl()) * 4;
            let len = usize::from(ip.total_len()).checked_sub(ip_header_len)?;
            let (src, dst) = (ip.source_addr().into(), ip.destination_addr().into());
            (src, dst, ip_bytes.get(ip_header_len..)?, len)
        };
    let tcp = TcpHeaderSlice::from_slice(tcp_bytes).ok()?;
    let tcp_header_len = usize::from(tcp.data_offset()) * 4;
    let payload_len = tcp_len.checked_sub(tcp_header_len)?;
    Some(TcpPacket {
        frame: record.frame,
        time: record.time,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        header: TcpHeaderRepr {
            src_port: tcp.source_port(),
            dst_port: tcp.destination_port(),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: TcpFlags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
                psh: tcp.psh(),
                urg: tcp.urg(),
            },
            window: tcp.window_size(),
            urgent: tcp.urgent_pointer(),
            options: TcpOptionsRepr::parse(tcp.options()),
        },
        // A TCP segment fits the 16-bit IP total length.
        payload_len: payload_len as u32,
    })
}

/// Every TCP segment (over IPv4 or IPv6) of a capture file, in file order.
pub fn tcp_packets(bytes: &[u8]) -> Result<Vec<TcpPacket>, CaptureError> {
    Ok(read_records(bytes)?.iter().filter_map(tcp_packet).collect())
}
