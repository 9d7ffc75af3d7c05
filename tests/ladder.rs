//! `tunstack ladder`: the ladders of the reference captures in pcaps/, the
//! states each side goes through, the marks, the SVG's well-formedness,
//! pcapng and other link types, and hostile files; and the live view, the
//! HTTP status page's ladders of recent connections.
//!
//! Golden files live in tests/golden/ladder/; after a deliberate change to
//! the drawing, `TUNSTACK_BLESS=1 cargo test --test ladder` rewrites them
//! (read the diff before committing it).

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tunstack::ladder::capture::{read_records, TcpPacket};
use tunstack::ladder::{
    connections, svg, tcp_packets, text, Connection, Dir, Ladder, Mark, Row, RowKind, Side, State,
    State::*,
};
use tunstack::wire::tcp::{TcpFlags, TcpHeaderRepr};

const CAPTURES: [&str; 7] = [
    "handshake-data-close-kernel-closes-first",
    "handshake-data-close-tunstack-closes-first",
    "simultaneous-close",
    "retransmission-after-drop",
    "keepalive-probes",
    "zero-window-probing",
    "rst-to-closed-port",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A reference capture as the stack wrote it: pcapng, with comments.
fn capture_ng(name: &str) -> Vec<u8> {
    std::fs::read(root().join("pcaps").join(format!("{name}.pcapng"))).unwrap()
}

/// A reference capture rewritten as classic pcap (little-endian, raw IP,
/// microseconds, as `--pcap FILE.pcap` writes): the form the byte-level
/// tests below cut, concatenate and relink.
fn capture(name: &str) -> Vec<u8> {
    let ng = capture_ng(name);
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for r in read_records(&ng).unwrap() {
        assert_eq!(r.linktype, 101, "{name}: raw IP");
        let len = r.data.len() as u32;
        out.extend_from_slice(&(r.time.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&r.time.subsec_micros().to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(r.data);
    }
    out
}

fn ladders_of(bytes: &[u8]) -> Vec<Ladder> {
    connections(tcp_packets(bytes).unwrap())
        .iter()
        .map(Connection::ladder)
        .collect()
}

/// The one connection of a reference capture.
fn ladder(name: &str) -> Ladder {
    let mut all = ladders_of(&capture(name));
    assert_eq!(all.len(), 1, "{name}: one connection");
    all.remove(0)
}

fn text_of(bytes: &[u8]) -> String {
    let numbered: Vec<(usize, Ladder)> = ladders_of(bytes)
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .collect();
    text::render_all(&numbered)
}

fn frames_marked(l: &Ladder, want: impl Fn(&Mark) -> bool) -> Vec<usize> {
    l.marks()
        .into_iter()
        .filter(|(_, m)| want(m))
        .map(|(f, _)| f)
        .collect()
}

#[test]
fn reference_captures_match_their_golden_ladders() {
    let bless = std::env::var_os("TUNSTACK_BLESS").is_some();
    let dir = root().join("tests/golden/ladder");
    let mut failures = Vec::new();
    for name in CAPTURES {
        let got = text_of(&capture_ng(name));
        for line in got.lines() {
            assert!(
                line.chars().count() <= 100,
                "{name}: line wider than 100 columns: {line:?}"
            );
        }
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (TUNSTACK_BLESS=1 writes it)", path.display()));
        if got != want {
            failures.push(format!("{name}:\n--- golden\n{want}\n--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kernel_closes_first_active_closer_goes_through_fin_wait_and_time_wait() {
    let l = ladder("handshake-data-close-kernel-closes-first");
    assert_eq!(
        l.endpoints[0].to_string(),
        "10.0.0.1:36326",
        "the SYN's sender is on the left"
    );
    assert_eq!(
        l.states(Side::Left),
        [Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]
    );
    assert_eq!(
        l.states(Side::Right),
        [Listen, SynReceived, Established, CloseWait, LastAck, Closed]
    );
    assert_eq!(l.end_notes().len(), 1);
    assert!(l.end_notes()[0].contains("10.0.0.1:36326 in TIME-WAIT"));
}

#[test]
fn tunstack_closes_first_server_ends_in_time_wait() {
    let l = ladder("handshake-data-close-tunstack-closes-first");
    assert_eq!(
        l.states(Side::Left),
        [Closed, SynSent, Established, CloseWait, LastAck, Closed]
    );
    // Its FIN is ACKed by the peer's FIN+ACK: FIN-WAIT-2 and TIME-WAIT in one segment.
    assert_eq!(
        l.states(Side::Right),
        [
            Listen,
            SynReceived,
            Established,
            FinWait1,
            FinWait2,
            TimeWait
        ]
    );
    assert_eq!(l.last, [Closed, TimeWait]);
}

#[test]
fn crossing_fins_take_both_sides_through_closing() {
    let l = ladder("simultaneous-close");
    let both = [Established, FinWait1, Closing, TimeWait];
    assert_eq!(l.states(Side::Left)[2..], both);
    assert_eq!(l.states(Side::Right)[2..], both);
    let marked = frames_marked(&l, |m| *m == Mark::SimultaneousClose);
    // Each side notices once: tunstack when the kernel's FIN (frame 7)
    // arrives, the kernel when tunstack's (frame 5) does, after it sent its own.
    assert_eq!(marked, [7, 5]);
    let arrival = l
        .rows
        .iter()
        .find(|r| matches!(r.kind, RowKind::Arrival { .. }))
        .expect("the kernel's late arrival of frame 5 is drawn");
    assert_eq!(
        arrival.kind,
        RowKind::Arrival {
            side: Side::Right,
            frame: 5,
            flags: "FIN+ACK".into()
        }
    );
}

#[test]
fn dropped_segment_is_fast_retransmitted_after_duplicate_acks() {
    let l = ladder("retransmission-after-drop");
    // The stack's 4th packet out (frame 7: SYN-ACK, then data in frames 5,
    // 6, 7) was dropped on its way; the kernel SACKs what came after it
    // and repeats its ACK (frames 19-22; 17 and 18 only grew the window),
    // and the stack sends it again without waiting for the RTO.
    assert_eq!(frames_marked(&l, |m| *m == Mark::Retransmission), [23]);
    assert_eq!(
        frames_marked(&l, |m| matches!(m, Mark::DupAck(_))),
        [19, 20, 21, 22]
    );
    assert!(l.marks().contains(&(20, Mark::DupAck(2))));
    let packets =
        &connections(tcp_packets(&capture("retransmission-after-drop")).unwrap())[0].packets;
    assert_eq!(
        packets[6].header.seq, packets[22].header.seq,
        "the same data again"
    );
    // No RTO wait: no gap is drawn.
    assert!(!l.rows.iter().any(|r| matches!(r.kind, RowKind::Gap(_))));
    assert_eq!(l.states(Side::Right)[3..], [FinWait1, FinWait2, TimeWait]);
}

#[test]
fn keepalive_probes_and_their_acks_are_marked() {
    let l = ladder("keepalive-probes");
    assert_eq!(
        frames_marked(&l, |m| *m == Mark::KeepaliveProbe),
        [7, 9, 11]
    );
    assert_eq!(frames_marked(&l, |m| *m == Mark::KeepaliveAck), [8, 10, 12]);
    assert!(frames_marked(&l, |m| *m == Mark::Retransmission).is_empty());
    assert!(frames_marked(&l, |m| matches!(m, Mark::DupAck(_))).is_empty());
    let text = text_of(&capture("keepalive-probes"));
    assert_eq!(text.matches("... 1.001 s ...").count(), 3, "{text}");
}

#[test]
fn zero_window_probes_are_marked_not_retransmissions() {
    let l = ladder("zero-window-probing");
    assert_eq!(
        frames_marked(&l, |m| *m == Mark::ZeroWindowProbe),
        [11, 13, 15]
    );
    assert_eq!(
        frames_marked(&l, |m| *m == Mark::ZeroWindowProbeAck),
        [12, 14, 16]
    );
    assert_eq!(
        frames_marked(&l, |m| *m == Mark::ZeroWindow),
        [10, 12, 14, 16]
    );
    assert_eq!(frames_marked(&l, |m| *m == Mark::WindowUpdate), [17]);
    assert!(frames_marked(&l, |m| *m == Mark::Retransmission).is_empty());
}

#[test]
fn rst_to_a_closed_port_refuses_the_connection() {
    let l = ladder("rst-to-closed-port");
    assert_eq!(l.states(Side::Left), [Closed, SynSent, Closed]);
    assert_eq!(l.states(Side::Right), [Closed], "nothing listened");
    assert_eq!(l.marks(), [(2, Mark::Refused)]);
}

/// A synthetic segment from `src` to `dst`.
fn seg(frame: usize, src: &str, dst: &str, flags: &str, seq: u32, ack: u32) -> TcpPacket {
    let (src, dst): (SocketAddrV4, SocketAddrV4) = (src.parse().unwrap(), dst.parse().unwrap());
    TcpPacket {
        frame,
        time: Duration::from_millis(frame as u64),
        src: src.into(),
        dst: dst.into(),
        header: TcpHeaderRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq,
            ack,
            flags: TcpFlags {
                syn: flags.contains('S'),
                ack: flags.contains('.'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
                ..TcpFlags::default()
            },
            window: 1000,
            ..TcpHeaderRepr::default()
        },
        payload_len: 0,
    }
}

#[test]
fn simultaneous_open_goes_through_syn_rcvd_on_both_sides() {
    let (a, b) = ("10.0.0.1:1000", "10.0.0.2:2000");
    // RFC 9293 figure 8: the SYNs cross, each side answers with SYN+ACK.
    let packets = vec![
        seg(1, a, b, "S", 100, 0),
        seg(2, b, a, "S", 300, 0),
        seg(3, a, b, "S.", 100, 301),
        seg(4, b, a, "S.", 300, 101),
    ];
    let l = connections(packets)[0].ladder();
    assert_eq!(l.initial, [Closed, Closed]);
    assert_eq!(
        l.states(Side::Left),
        [Closed, SynSent, SynReceived, Established]
    );
    assert_eq!(
        l.states(Side::Right),
        [Closed, SynSent, SynReceived, Established]
    );
    assert_eq!(
        l.marks()
            .iter()
            .filter(|(_, m)| *m == Mark::SimultaneousOpen)
            .count(),
        2
    );
}

#[test]
fn rst_in_established_closes_both_sides() {
    let (a, b) = ("10.0.0.1:1000", "10.0.0.2:2000");
    let packets = vec![
        seg(1, a, b, "S", 100, 0),
        seg(2, b, a, "S.", 300, 101),
        seg(3, a, b, ".", 101, 301),
        seg(4, b, a, "R.", 301, 101),
    ];
    let l = connections(packets)[0].ladder();
    assert_eq!(l.last, [Closed, Closed]);
    assert_eq!(l.marks(), [(4, Mark::Reset)]);
}

// ---- SVG ----

/// A small XML well-formedness check: tags nest and close, attribute
/// values are quoted, `<` and `&` appear in text only as markup or one of
/// the five predefined entities. Returns the root element's name.
fn check_xml(doc: &str) -> Result<String, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut root = None;
    let mut rest = doc;
    if let Some(after) = rest.strip_prefix("<?xml") {
        let end = after.find("?>").ok_or("unterminated XML declaration")?;
        rest = &after[end + 2..];
    }
    let check_text = |t: &str| -> Result<(), String> {
        let mut parts = t.split('&');
        parts.next();
        for p in parts {
            let entity = p.split(';').next().unwrap_or("");
            if !["amp", "lt", "gt", "quot", "apos"].contains(&entity) || !p.contains(';') {
                return Err(format!("bad entity near &{}", &p[..p.len().min(10)]));
            }
        }
        if t.contains('>') {
            return Err(format!("raw > in text: {t:?}"));
        }
        Ok(())
    };
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        check_text(text)?;
        let gt = rest[lt..].find('>').ok_or("unterminated tag")? + lt;
        let tag = &rest[lt + 1..gt];
        if tag.contains('<') {
            return Err(format!("< inside a tag: {tag:?}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else {
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("bad element name {name:?}"));
            }
            // Attributes: name="value" pairs, values without < or raw &.
            let mut attrs = tag[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or(format!("attribute without value: {attrs:?}"))?;
                let value = attrs[eq + 1..].trim_start();
                let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'');
                let quote = quote.ok_or(format!("unquoted attribute: {attrs:?}"))?;
                let end = value[1..].find(quote).ok_or("unterminated attribute")? + 1;
                check_text(&value[1..end].replace('>', ""))?;
                attrs = value[end + 1..].trim_start();
            }
            if stack.is_empty() {
                if root.is_some() {
                    return Err("two root elements".into());
                }
                root = Some(name.clone());
            }
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[gt + 1..];
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements: {stack:?}"));
    }
    if !rest.trim().is_empty() {
        return Err("text after the root".into());
    }
    root.ok_or_else(|| "no root element".into())
}

#[test]
fn the_xml_check_rejects_what_is_not_xml() {
    assert!(check_xml("<a><b/></a>").is_ok());
    assert!(check_xml("<a><b></a>").is_err());
    assert!(check_xml("<a>x & y</a>").is_err());
    assert!(check_xml("<a>x < y</a>").is_err());
    assert!(check_xml("<a x=1/>").is_err());
    assert!(check_xml("<a/><b/>").is_err());
    assert!(check_xml("<a>&lt;&amp;</a>").is_ok());
}

#[test]
fn svg_of_every_reference_capture_is_well_formed_with_a_size() {
    for name in CAPTURES {
        let doc = svg::render(&ladder(name));
        assert_eq!(check_xml(&doc), Ok("svg".to_string()), "{name}");
        let open = &doc[doc.find("<svg").unwrap()..];
        let open = &open[..open.find('>').unwrap()];
        for attr in [
            "xmlns=\"http://www.w3.org/2000/svg\"",
            "width=",
            "height=",
            "viewBox=",
        ] {
            assert!(open.contains(attr), "{name}: <svg> lacks {attr}");
        }
        // Every state change is written in the picture.
        for state in ladder(name).states(Side::Right) {
            assert!(doc.contains(state.name()), "{name}: {state} missing");
        }
    }
}

#[test]
fn svg_escapes_markup_in_labels() {
    let a: SocketAddrV4 = "10.0.0.1:1".parse().unwrap();
    let l = Ladder {
        endpoints: [a.into(), a.into()],
        initial: [State::Closed, State::Listen],
        rows: vec![Row {
            kind: RowKind::Segment {
                frame: 1,
                time: Duration::ZERO,
                dir: Dir::LeftToRight,
                label: "<script>alert('&')</script> \"x\"".into(),
                options: "a<b & c>d".into(),
            },
            states: [vec![State::SynSent], vec![]],
            marks: vec![Mark::Retransmission],
        }],
        last: [State::SynSent, State::Listen],
        duration: Duration::ZERO,
    };
    let doc = svg::render(&l);
    assert_eq!(check_xml(&doc), Ok("svg".to_string()), "{doc}");
    assert!(doc.contains("&lt;script&gt;alert(&apos;&amp;&apos;)&lt;/script&gt;"));
    assert!(!doc.contains("<script"));
}

// ---- pcapng and other link types ----

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

/// A pcapng block: type, length, body (padded to 4 bytes), length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = 12 + body.len() as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&le32(kind));
    b.extend_from_slice(&le32(len));
    b.extend_from_slice(&body);
    b.extend_from_slice(&le32(len));
    b
}

/// Rewrites a classic pcap as pcapng: an SHB, an IDB with `linktype` and
/// nanosecond timestamps (if_tsresol 9), and one EPB per record with
/// `prefix` in front of each packet. A statistics block is thrown in to be
/// skipped.
fn to_pcapng(pcap: &[u8], linktype: u16, prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&le32(0x1a2b_3c4d));
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
    out.extend(block(0x0a0d_0d0a, &shb));
    let mut idb = Vec::new();
    idb.extend_from_slice(&linktype.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&le32(0));
    idb.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&[9, 0, 0, 0]);
    idb.extend_from_slice(&[0; 4]); // opt_endofopt
    out.extend(block(1, &idb));
    out.extend(block(5, &[0; 12])); // interface statistics: skipped
    for r in read_records(pcap).unwrap() {
        let ns = r.time.as_nanos() as u64;
        let mut data = prefix.to_vec();
        data.extend_from_slice(r.data);
        let mut epb = Vec::new();
        epb.extend_from_slice(&le32(0));
        epb.extend_from_slice(&le32((ns >> 32) as u32));
        epb.extend_from_slice(&le32(ns as u32));
        epb.extend_from_slice(&le32(data.len() as u32));
        epb.extend_from_slice(&le32(data.len() as u32));
        epb.extend_from_slice(&data);
        out.extend(block(6, &epb));
    }
    out
}

/// Rewrites a classic raw-IP pcap with another link type and `prefix`
/// before each packet (and big-endian, to exercise the other byte order).
fn relink_pcap(pcap: &[u8], linktype: u32, prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_be_bytes());
    out.extend_from_slice(&[0, 2, 0, 4]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_be_bytes());
    out.extend_from_slice(&linktype.to_be_bytes());
    for r in read_records(pcap).unwrap() {
        let len = (prefix.len() + r.data.len()) as u32;
        out.extend_from_slice(&(r.time.as_secs() as u32).to_be_bytes());
        out.extend_from_slice(&r.time.subsec_micros().to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(prefix);
        out.extend_from_slice(r.data);
    }
    out
}

const ETHERNET: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];

fn sll() -> Vec<u8> {
    let mut h = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    h.extend_from_slice(&[0x08, 0x00]);
    h
}

fn sll2() -> Vec<u8> {
    let mut h = vec![0x08, 0x00, 0, 0];
    h.extend_from_slice(&le32(1)); // interface index
    h.extend_from_slice(&[0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    h
}

#[test]
fn pcapng_gives_the_same_ladder_as_the_pcap() {
    for name in [
        "handshake-data-close-kernel-closes-first",
        "zero-window-probing",
    ] {
        let pcap = capture(name);
        let want = text_of(&pcap);
        // The stack's own pcapng (comments, directions) and its pcap copy.
        assert_eq!(text_of(&capture_ng(name)), want, "{name}.pcapng");
        let ng = to_pcapng(&pcap, 101, &[]);
        assert_eq!(text_of(&ng), want, "{name} as pcapng");
        assert_eq!(ladders_of(&ng), ladders_of(&pcap));
    }
}

#[test]
fn ethernet_sll_and_sll2_captures_give_the_same_ladder() {
    let pcap = capture("simultaneous-close");
    let want = ladders_of(&pcap);
    let mut vlan = ETHERNET[..12].to_vec();
    vlan.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
    let variants = [
        ("ethernet pcap", relink_pcap(&pcap, 1, &ETHERNET)),
        ("802.1Q ethernet pcap", relink_pcap(&pcap, 1, &vlan)),
        ("SLL pcap", relink_pcap(&pcap, 113, &sll())),
        ("SLL2 pcap", relink_pcap(&pcap, 276, &sll2())),
        ("raw (12) big-endian pcap", relink_pcap(&pcap, 12, &[])),
        ("ethernet pcapng", to_pcapng(&pcap, 1, &ETHERNET)),
        ("SLL2 pcapng", to_pcapng(&pcap, 276, &sll2())),
    ];
    for (what, bytes) in variants {
        assert_eq!(ladders_of(&bytes), want, "{what}");
    }
}

/// `pcap` (raw IPv4) with every packet rewritten as IPv6, the TCP segment
/// unchanged: 10.0.0.N becomes fd00::N.
fn as_ipv6(pcap: &[u8]) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    for r in read_records(pcap).unwrap() {
        let ihl = usize::from(r.data[0] & 0x0f) * 4;
        let tcp = &r.data[ihl..];
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        p.extend_from_slice(&[6, 64]);
        for at in [12, 16] {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = r.data[at + 3];
            p.extend_from_slice(&a);
        }
        p.extend_from_slice(tcp);
        let len = (p.len() as u32).to_le_bytes();
        out.extend_from_slice(&(r.time.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&r.time.subsec_micros().to_le_bytes());
        out.extend_from_slice(&len);
        out.extend_from_slice(&len);
        out.extend_from_slice(&p);
    }
    out
}

#[test]
fn an_ipv6_capture_gives_the_ladder_of_the_same_segments_over_ipv4() {
    let pcap = capture("handshake-data-close-kernel-closes-first");
    // The same text but for the addresses (and the spaces that centre
    // the longer IPv6 names over their columns).
    let words = |t: String| -> Vec<String> {
        let t = t
            .replace("[fd00::1]", "10.0.0.1")
            .replace("[fd00::2]", "10.0.0.2");
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let v6 = as_ipv6(&pcap);
    assert_eq!(&v6[..4], &pcap[..4], "a little-endian classic pcap");
    let got = text_of(&v6);
    assert!(got.contains("[fd00::1]:36326"), "{got}");
    assert_eq!(words(got), words(text_of(&pcap)));
    // The same over Ethernet with EtherType 0x86dd.
    let mut eth = ETHERNET.to_vec();
    eth[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(ladders_of(&relink_pcap(&v6, 1, &eth)), ladders_of(&v6));
    assert!(!ladders_of(&v6).is_empty());
}

#[test]
fn ipv6_and_non_tcp_packets_are_skipped() {
    let pcap = capture("rst-to-closed-port");
    let mut ipv6 = ETHERNET.to_vec();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let with_ipv6 = relink_pcap(&pcap, 1, &ipv6);
    assert!(tcp_packets(&with_ipv6).unwrap().is_empty());
    let mut arp = ETHERNET.to_vec();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(tcp_packets(&relink_pcap(&pcap, 1, &arp))
        .unwrap()
        .is_empty());
}

// ---- connections ----

/// Both captures' records in one file.
fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    out.extend_from_slice(&b[24..]);
    out
}

#[test]
fn two_connections_in_a_file_are_drawn_apart_and_chosen_with_conn() {
    let both = concat(
        &capture("rst-to-closed-port"),
        &capture("handshake-data-close-kernel-closes-first"),
    );
    let ladders = ladders_of(&both);
    assert_eq!(ladders.len(), 2);
    assert_eq!(ladders[0], ladder("rst-to-closed-port"));
    assert_eq!(ladders[1].endpoints[0].to_string(), "10.0.0.1:36326");

    let dir = std::env::temp_dir().join(format!("tunstack-ladder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("both.pcap");
    std::fs::write(&file, &both).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tunstack"))
            .arg("ladder")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, all, _) = run(&[]);
    assert!(ok);
    // The clients' ports, as the reference captures have them.
    let (first, second_client) = (ladders[0].endpoints[0], ladders[1].endpoints[0]);
    assert!(all.contains(&format!("connection 1: {first} -> 10.0.0.2:1")));
    assert!(all.contains(&format!("connection 2: {second_client} -> 10.0.0.2:7")));
    let (ok, second, _) = run(&["--conn", "2"]);
    assert!(ok);
    assert!(second.starts_with(&format!("connection 2: {second_client}")));
    assert!(!second.contains(&first.to_string()));
    let (ok, by_endpoint, _) = run(&["--conn", "10.0.0.2:7"]);
    assert!(ok);
    assert_eq!(by_endpoint, second);
    let (ok, _, err) = run(&["--conn", "3"]);
    assert!(!ok);
    assert!(err.contains("2 TCP connection"), "{err}");
    let svg_path = dir.join("out.svg");
    let (ok, _, _) = run(&["--conn", "1", "--svg", svg_path.to_str().unwrap()]);
    assert!(ok);
    let doc = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(check_xml(&doc), Ok("svg".to_string()));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- hostile input ----

/// Offsets where a record ends in a classic pcap: a file cut there is
/// still whole.
fn record_ends(pcap: &[u8]) -> Vec<usize> {
    let mut ends = vec![24];
    let mut at = 24;
    while at < pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        ends.push(at);
    }
    ends
}

#[test]
fn truncated_pcap_at_every_length_is_an_error_or_fewer_records_never_a_panic() {
    let pcap = capture("handshake-data-close-kernel-closes-first");
    let ends = record_ends(&pcap);
    assert_eq!(*ends.last().unwrap(), pcap.len());
    for n in 0..pcap.len() {
        let cut = &pcap[..n];
        let result = tcp_packets(cut);
        if ends.contains(&n) {
            let whole = ends.iter().position(|e| *e == n).unwrap();
            assert_eq!(result.map(|p| p.len()), Ok(whole), "cut at {n}");
            // And the ladder of a cut conversation draws.
            let _ = text_of(cut);
        } else {
            let e = result.expect_err(&format!("cut at {n} must fail"));
            assert!(e.offset <= n, "cut at {n}: error offset {}", e.offset);
        }
    }
}

#[test]
fn truncated_pcapng_at_every_length_never_panics() {
    let ng = to_pcapng(&capture("rst-to-closed-port"), 1, &ETHERNET);
    assert!(tcp_packets(&ng).is_ok());
    let mut ok = 0;
    for n in 0..ng.len() {
        if tcp_packets(&ng[..n]).is_ok() {
            ok += 1;
        }
    }
    // Only the cuts at block boundaries read: after the SHB, the IDB, the
    // statistics block and the first of the two EPBs.
    assert_eq!(ok, 4);
}

#[test]
fn garbage_and_wrong_magic_are_errors() {
    let e = tcp_packets(b"GIF89a not a capture").unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("neither pcap nor pcapng"), "{e}");
    assert!(tcp_packets(&[]).is_err());

    // Deterministic pseudo-random bytes, bare and behind each magic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    let magics: [&[u8]; 4] = [
        &[],
        &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        &[0xa1, 0xb2, 0x3c, 0x4d],
    ];
    for round in 0..400 {
        let len = round % 97;
        let mut bytes = magics[round % 4].to_vec();
        bytes.extend((0..len).map(|_| next()));
        // Must return, whatever it returns, and any ladder must draw.
        if let Ok(packets) = tcp_packets(&bytes) {
            for c in connections(packets) {
                let l = c.ladder();
                let _ = text::render(&l);
                let _ = svg::render(&l);
            }
        }
    }

    // Mutations of a real capture: every byte flipped in turn.
    let pcap = capture("rst-to-closed-port");
    for i in 0..pcap.len() {
        let mut bad = pcap.clone();
        bad[i] ^= 0xff;
        if let Ok(packets) = tcp_packets(&bad) {
            for c in connections(packets) {
                let _ = text::render(&c.ladder());
            }
        }
    }
}

#[test]
fn pcapng_with_a_lying_block_length_names_the_offset() {
    let mut ng = to_pcapng(&capture("rst-to-closed-port"), 101, &[]);
    let shb_len = u32::from_le_bytes(ng[4..8].try_into().unwrap()) as usize;
    // The IDB says it is longer than the file.
    ng[shb_len + 4..shb_len + 8].copy_from_slice(&le32(1 << 20));
    let e = tcp_packets(&ng).unwrap_err();
    assert_eq!(e.offset, shb_len + 4, "{e}");
    assert!(e.to_string().contains("left in the file"), "{e}");
}

#[test]
fn cli_reports_a_bad_file_and_fails() {
    let dir = std::env::temp_dir().join(format!("tunstack-ladder-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.pcap");
    let mut pcap = capture("rst-to-closed-port");
    pcap.truncate(pcap.len() - 3);
    std::fs::write(&file, &pcap).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tunstack"))
        .arg("ladder")
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.pcap: at byte"), "{err}");
    assert!(err.contains("frame 2"), "{err}");
}

// ---- the live view: the HTTP status page's ladders ----

/// One `GET path` with `Connection: close` on a new connection from
/// `client` to the HTTP service at 10.0.0.2:80: (status line, body).
fn http_get(client: &tunstack::Stack, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = tunstack::TcpStream::connect(client, "10.0.0.2:80").expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("reads the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn status_page_links_each_recent_connection_to_its_ladder_served_as_svg() {
    use std::net::Ipv4Addr;
    let (a, b) = tunstack::device::memory::link(1500);
    let server = tunstack::Stack::with_device(
        tunstack::Config {
            seed: Some(1),
            recent_connections: 4,
            ..tunstack::Config::default()
        },
        a,
    )
    .unwrap();
    let client = tunstack::Stack::with_device(
        tunstack::Config {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            seed: Some(2),
            ..tunstack::Config::default()
        },
        b,
    )
    .unwrap();
    tunstack::services::http::serve(&server, 80).unwrap();

    let (status, _) = http_get(&client, "/bytes/3000");
    assert!(status.ends_with("200 OK"), "{status}");
    // Give the first connection's close time to finish on both sides.
    std::thread::sleep(Duration::from_millis(300));
    let (status, page) = http_get(&client, "/");
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(page.contains("<a href=\"/ladder/1\">#1</a>"), "{page}");

    let (status, html) = http_get(&client, "/ladder/1");
    assert!(status.ends_with("200 OK"), "{status}");
    assert!(html.contains("<img src=\"/ladder/1.svg\""), "{html}");
    // The text drawing: the handshake and the server's close first.
    for state in [
        "SYN-SENT",
        "SYN-RCVD",
        "ESTABLISHED",
        "FIN-WAIT-1",
        "LAST-ACK",
    ] {
        assert!(html.contains(state), "no {state} in:\n{html}");
    }

    let (status, svg) = http_get(&client, "/ladder/1.svg");
    assert!(status.ends_with("200 OK"), "{status}");
    assert_eq!(check_xml(&svg), Ok("svg".to_string()), "{svg}");
    assert!(svg.contains("ESTABLISHED"));

    // Only four are kept: after four more, the first is gone.
    for _ in 0..4 {
        http_get(&client, "/bytes/1");
    }
    let (status, _) = http_get(&client, "/ladder/1.svg");
    assert!(status.contains(" 404 "), "{status}");
    let (status, _) = http_get(&client, "/ladder/nonsense");
    assert!(status.contains(" 404 "), "{status}");
}
