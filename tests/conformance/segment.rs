//! Segments on the scripted peer's side of the wire, built and parsed by
//! the bench's own code (independent of `tunstack::wire`): [`In`] and the
//! [`seg!`] macro for what the peer sends, [`Out`] for what the stack sent,
//! and the Internet checksum over the IPv4 pseudo-header.
//!
//! [`Out::parse`] enforces the invariants every generated segment must meet:
//! the checksum verifies (MUST-2), reserved bits are zero (RFC 9293 §3.1),
//! every option but EOL and NOP has a sane length (MUST-68), bytes after EOL
//! are zero (MUST-69), and the MSS option rides only on SYNs (MUST-65).

#![allow(dead_code)] // Not every test module uses every helper.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use tunstack::time::Instant;

/// The stack's IP address.
pub const US_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The port the stack listens on in most tests.
pub const PORT: u16 = 7;
/// The stack's socket in most tests.
pub const US: SocketAddrV4 = SocketAddrV4::new(US_IP, PORT);
/// The scripted peer's IP address.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The scripted peer's socket.
pub const PEER: SocketAddrV4 = SocketAddrV4::new(PEER_IP, 40000);
/// The peer's initial sequence number in the scripted handshakes.
pub const PEER_ISS: u32 = 100_000;

/// Control bits, as on the wire.
pub mod bits {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

// ---------------------------------------------------------------------------
// Checksum

/// The TCP checksum of `seg` (checksum field included as it is) sent from
/// `src` to `dst`: the ones' complement of the ones' complement sum of the
/// IPv4 pseudo-header and the segment (RFC 9293 §3.1). A segment carrying a
/// correct checksum yields 0.
pub fn tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut words = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
        }
    };
    words(&src.octets());
    words(&dst.octets());
    words(&[0, 6]);
    words(&(seg.len() as u16).to_be_bytes());
    words(seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---------------------------------------------------------------------------
// Segments the peer sends

/// A segment for the peer to send, built with [`seg!`]; fields left `None`
/// take the bench's defaults when sent.
#[derive(Clone, Debug, Default)]
pub struct In {
    pub flags: u8,
    pub reserved: u8,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub win: Option<u16>,
    pub urp: u16,
    pub opts: Vec<u8>,
    pub data: Vec<u8>,
    pub src: Option<SocketAddrV4>,
    pub dst: Option<SocketAddrV4>,
    pub bad_checksum: bool,
    /// Compute the checksum as if the segment were sent to this address.
    pub checksum_dst: Option<Ipv4Addr>,
    /// Override the data offset (in 32-bit words).
    pub doff: Option<u8>,
    /// Timestamps (TSval, TSecr), added to the options when sent; on a
    /// bench with [`crate::bench::Bench::peer_ts`] on, filled in unless
    /// `no_ts`.
    pub ts: Option<(u32, u32)>,
    /// Send without timestamps even on a bench that adds them.
    pub no_ts: bool,
}

impl In {
    pub fn new() -> In {
        In::default()
    }
    /// Sets one control bit by name (`SYN`, `ACK`, ..., or `NONE`).
    pub fn flag(mut self, name: &str) -> In {
        self.flags |= match name {
            "FIN" => bits::FIN,
            "SYN" => bits::SYN,
            "RST" => bits::RST,
            "PSH" => bits::PSH,
            "ACK" => bits::ACK,
            "URG" => bits::URG,
            "ECE" => bits::ECE,
            "CWR" => bits::CWR,
            "NONE" => 0,
            other => panic!("unknown flag {other}"),
        };
        self
    }
    pub fn seq(mut self, v: u32) -> In {
        self.seq = Some(v);
        self
    }
    pub fn ack(mut self, v: u32) -> In {
        self.ack = Some(v);
        self
    }
    pub fn win(mut self, v: u16) -> In {
        self.win = Some(v);
        self
    }
    pub fn urp(mut self, v: u16) -> In {
        self.urp = v;
        self
    }
    /// Appends an MSS option (kind 2, length 4).
    pub fn mss(mut self, v: u16) -> In {
        self.opts.extend_from_slice(&[2, 4]);
        self.opts.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends NOP + window scale (kind 3, length 3).
    pub fn ws(mut self, shift: u8) -> In {
        self.opts.extend_from_slice(&[1, 3, 3, shift]);
        self
    }
    /// Appends NOP, NOP, SACK-permitted (kind 4, length 2; RFC 2018 §2).
    pub fn sack_perm(mut self, on: bool) -> In {
        if on {
            self.opts.extend_from_slice(&[1, 1, 4, 2]);
        }
        self
    }
    /// NOP, NOP, timestamps (kind 8, length 10; RFC 7323 §3): `(TSval,
    /// TSecr)`.
    pub fn ts(mut self, v: (u32, u32)) -> In {
        self.ts = Some(v);
        self
    }
    /// Appends NOP, NOP and a SACK option with `blocks` (RFC 2018 §3).
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> In {
        self.opts
            .extend_from_slice(&[1, 1, 5, 2 + 8 * blocks.len() as u8]);
        for (left, right) in blocks {
            self.opts.extend_from_slice(&left.to_be_bytes());
            self.opts.extend_from_slice(&right.to_be_bytes());
        }
        self
    }
    /// No timestamps, even on a bench that adds them.
    pub fn no_ts(mut self, on: bool) -> In {
        self.no_ts = on;
        self
    }
    /// Appends raw option bytes (padded with zeros to a word boundary).
    pub fn opts(mut self, raw: &[u8]) -> In {
        self.opts.extend_from_slice(raw);
        self
    }
    pub fn data(mut self, d: impl AsRef<[u8]>) -> In {
        self.data = d.as_ref().to_vec();
        self
    }
    pub fn src(mut self, a: SocketAddrV4) -> In {
        self.src = Some(a);
        self
    }
    pub fn dst(mut self, a: SocketAddrV4) -> In {
        self.dst = Some(a);
        self
    }
    /// Source port (keeps the default source IP).
    pub fn sport(mut self, p: u16) -> In {
        let ip = self.src.map_or(PEER_IP, |a| *a.ip());
        self.src = Some(SocketAddrV4::new(ip, p));
        self
    }
    /// Destination port (keeps the destination IP, [`US_IP`] by default).
    pub fn dport(mut self, p: u16) -> In {
        let ip = self.dst.map_or(US_IP, |a| *a.ip());
        self.dst = Some(SocketAddrV4::new(ip, p));
        self
    }
    pub fn bad_checksum(mut self, on: bool) -> In {
        self.bad_checksum = on;
        self
    }
    pub fn checksum_dst(mut self, ip: Ipv4Addr) -> In {
        self.checksum_dst = Some(ip);
        self
    }
    pub fn doff(mut self, words: u8) -> In {
        self.doff = Some(words);
        self
    }
    pub fn reserved(mut self, r: u8) -> In {
        self.reserved = r & 0x0f;
        self
    }

    /// Sequence space the segment occupies.
    pub fn seg_len(&self) -> u32 {
        self.data.len() as u32
            + u32::from(self.flags & bits::SYN != 0)
            + u32::from(self.flags & bits::FIN != 0)
    }

    /// Serialises the segment (every `None` must have been filled in).
    pub fn encode(&self, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
        let mut opts = self.opts.clone();
        if let Some((val, ecr)) = self.ts.filter(|_| !self.no_ts) {
            opts.extend_from_slice(&[1, 1, 8, 10]);
            opts.extend_from_slice(&val.to_be_bytes());
            opts.extend_from_slice(&ecr.to_be_bytes());
        }
        while opts.len() % 4 != 0 {
            opts.push(0); // MUST-69: padding is zeros
        }
        let doff = self.doff.unwrap_or(5 + (opts.len() / 4) as u8);
        let mut b = Vec::with_capacity(20 + opts.len() + self.data.len());
        b.extend_from_slice(&src.port().to_be_bytes());
        b.extend_from_slice(&dst.port().to_be_bytes());
        b.extend_from_slice(&self.seq.unwrap_or(0).to_be_bytes());
        b.extend_from_slice(&self.ack.unwrap_or(0).to_be_bytes());
        b.push((doff << 4) | self.reserved);
        b.push(self.flags);
        b.extend_from_slice(&self.win.unwrap_or(0).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.urp.to_be_bytes());
        b.extend_from_slice(&opts);
        b.extend_from_slice(&self.data);
        let cdst = self.checksum_dst.unwrap_or(*dst.ip());
        let mut sum = tcp_checksum(*src.ip(), cdst, &b);
        if self.bad_checksum {
            sum ^= 0x5555;
        }
        b[16..18].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// Builds an [`In`]: control bits joined by `|`, then `field = value`
/// pairs naming [`In`]'s builder methods.
///
/// `seg!(SYN, seq = 100, win = 1000, mss = 1460)`,
/// `seg!(ACK | PSH, data = b"hello")`, `seg!(NONE, seq = 5)`.
macro_rules! seg {
    ($($flag:ident)|+ $(, $field:ident = $val:expr)* $(,)?) => {{
        let s = $crate::segment::In::new();
        $( let s = s.flag(stringify!($flag)); )+
        $( let s = s.$field($val); )*
        s
    }};
}

// ---------------------------------------------------------------------------
// Segments the stack sends

/// A segment the stack sent, parsed by the bench.
#[derive(Clone, PartialEq, Eq)]
pub struct Out {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub ack_no: u32,
    pub flags: u8,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub urg: bool,
    pub win: u16,
    pub urp: u16,
    /// The raw options area (with padding).
    pub opts: Vec<u8>,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    /// SACK-permitted (RFC 2018 §2).
    pub sack_perm: bool,
    /// SACK blocks, as sent (RFC 2018 §3).
    pub sack: Vec<(u32, u32)>,
    /// Timestamps (TSval, TSecr), RFC 7323 §3.
    pub ts: Option<(u32, u32)>,
    pub data: Vec<u8>,
    /// When the stack sent it.
    pub at: Instant,
    /// The segment as sent.
    pub raw: Vec<u8>,
}

impl Out {
    /// Parses `bytes` sent from `src` to `dst`, asserting the invariants
    /// listed in the module docs.
    #[track_caller]
    pub fn parse(src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8], at: Instant) -> Out {
        assert!(bytes.len() >= 20, "segment shorter than a header");
        // MUST-2: the sender generates the checksum, over the pseudo-header.
        assert_eq!(
            tcp_checksum(src, dst, bytes),
            0,
            "MUST-2: checksum of {bytes:02x?} does not verify"
        );
        let doff = usize::from(bytes[12] >> 4) * 4;
        assert!(doff >= 20 && doff <= bytes.len(), "bad data offset");
        // RFC 9293 §3.1: reserved bits "must be zero in generated segments".
        assert_eq!(bytes[12] & 0x0f, 0, "reserved bits set");
        let flags = bytes[13];
        let opts = bytes[20..doff].to_vec();
        let Options {
            mss,
            wscale,
            sack_perm,
            sack,
            ts,
        } = walk_options(&opts, flags & bits::SYN != 0);
        let be32 =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let be16 = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        Out {
            src: SocketAddrV4::new(src, be16(0)),
            dst: SocketAddrV4::new(dst, be16(2)),
            seq: be32(4),
            ack_no: be32(8),
            flags,
            syn: flags & bits::SYN != 0,
            ack: flags & bits::ACK != 0,
            fin: flags & bits::FIN != 0,
            rst: flags & bits::RST != 0,
            psh: flags & bits::PSH != 0,
            urg: flags & bits::URG != 0,
            win: be16(14),
            urp: be16(18),
            opts,
            mss,
            wscale,
            sack_perm,
            sack,
            ts,
            data: bytes[doff..].to_vec(),
            at,
            raw: bytes.to_vec(),
        }
    }

    /// The control bits as letters in the order `S F R P A U` (e.g. `"SA"`,
    /// `"FA"`, `"R"`, `"PA"`).
    pub fn flag_str(&self) -> String {
        let mut s = String::new();
        for (on, c) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, 'A'),
            (self.urg, 'U'),
        ] {
            if on {
                s.push(c);
            }
        }
        if self.flags & (bits::ECE | bits::CWR) != 0 {
            s.push('E');
        }
        s
    }

    /// Exactly these control bits (see [`Out::flag_str`]).
    pub fn is(&self, flags: &str) -> bool {
        self.flag_str() == flags
    }

    /// Sequence space the segment occupies.
    pub fn seg_len(&self) -> u32 {
        self.data.len() as u32 + u32::from(self.syn) + u32::from(self.fin)
    }

    /// The sequence number after this segment.
    pub fn end(&self) -> u32 {
        self.seq.wrapping_add(self.seg_len())
    }
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "@{:?} [{}] seq={} ack={} win={} len={}",
            self.at,
            self.flag_str(),
            self.seq,
            self.ack_no,
            self.win,
            self.data.len()
        )?;
        if let Some(m) = self.mss {
            write!(f, " mss={m}")?;
        }
        if let Some(w) = self.wscale {
            write!(f, " ws={w}")?;
        }
        Ok(())
    }
}

/// Walks an options area the stack generated: every option but EOL/NOP has
/// a length of at least 2 that fits (MUST-68), everything after EOL is zero
/// (MUST-69), and MSS only appears on SYNs (MUST-65).
/// The options the bench reads from a segment the stack sent.
struct Options {
    mss: Option<u16>,
    wscale: Option<u8>,
    sack_perm: bool,
    sack: Vec<(u32, u32)>,
    ts: Option<(u32, u32)>,
}

fn walk_options(opts: &[u8], syn: bool) -> Options {
    let (mut mss, mut ws) = (None, None);
    let (mut sack_perm, mut sack, mut ts) = (false, Vec::new(), None);
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => {
                assert!(
                    opts[i..].iter().all(|&b| b == 0),
                    "MUST-69: non-zero padding after EOL in {opts:?}"
                );
                break;
            }
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).expect("MUST-68: option without length"));
                assert!(
                    len >= 2 && i + len <= opts.len(),
                    "MUST-68: bad option length in {opts:?}"
                );
                match (kind, len) {
                    (2, 4) => {
                        assert!(syn, "MUST-65: MSS option on a non-SYN segment");
                        mss = Some(u16::from_be_bytes([opts[i + 2], opts[i + 3]]));
                    }
                    (3, 3) => ws = Some(opts[i + 2]),
                    (4, 2) => {
                        assert!(syn, "RFC 2018 §2: SACK-permitted on a non-SYN segment");
                        sack_perm = true;
                    }
                    (8, 10) => {
                        let be = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
                        ts = Some((be(&opts[i + 2..]), be(&opts[i + 6..])));
                    }
                    (5, _) => {
                        assert!(
                            (len - 2) % 8 == 0 && (10..=34).contains(&len),
                            "RFC 2018 §3: SACK option of length {len}"
                        );
                        for b in opts[i + 2..i + len].chunks_exact(8) {
                            let be = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
                            sack.push((be(&b[..4]), be(&b[4..])));
                        }
                    }
                    _ => {}
                }
                i += len;
            }
        }
    }
    Options {
        mss,
        wscale: ws,
        sack_perm,
        sack,
        ts,
    }
}
