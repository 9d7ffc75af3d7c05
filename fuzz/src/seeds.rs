//! The seed corpus: a handful of valid inputs per target — ping, UDP,
//! fragments, SYNs with every option, handshakes, data, FIN, RST — from
//! which the fuzzer mutates.

use tunstack::wire::checksum;
use tunstack::wire::icmp;
use tunstack::wire::udp;

use super::ip::{ip_input_records, wrap, IpHarness, FIX_IP, FIX_TRANSPORT};

/// `ip_input` seeds recompute checksums, so that mutations of their headers
/// reach past IPv4 validation; the `ping` seed does not.
const FIX: u8 = FIX_IP | FIX_TRANSPORT;
use super::packets::*;
use super::*;

/// The seed corpus: `(target, file name, bytes)`. Written to
/// `fuzz/corpus/<target>/<name>` by `tests/properties.rs`
/// (`cargo test --test properties -- --ignored write_fuzz_seed_corpus`).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut v: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        v.push((target, name.to_string(), bytes));
    };
    let ping = icmp_message(
        icmp::ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 1],
        b"abcdefgh01234567",
    );
    let big_ping = icmp_message(
        icmp::ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 2],
        &(0..3000u32).map(|i| i as u8).collect::<Vec<_>>(),
    );
    let udp_echo = udp_datagram(US, 5353, UDP_ECHO_PORT, b"hello, echo");
    let udp_closed = udp_datagram(US, 5353, 9999, b"nobody home");
    let udp_connected = udp_datagram(US, UDP_REMOTE_PORT, UDP_CONNECTED_PORT, b"dns reply");
    let syn = raw_tcp_segment(PEER_PORT, TCP_PORT, 1000, 0, flag::SYN, 64240, &[], &[]);
    let syn_all = raw_tcp_segment(
        PEER_PORT,
        TCP_PORT,
        1000,
        0,
        flag::SYN,
        64240,
        &ALL_SYN_OPTIONS,
        &[],
    );
    let syn_closed = raw_tcp_segment(PEER_PORT, 81, 1000, 0, flag::SYN, 64240, &[], &[]);
    // An ICMP port unreachable quoting a datagram the connected socket sent.
    let sent = {
        let mut d = Vec::new();
        udp::write(
            &mut d,
            (US, UDP_CONNECTED_PORT),
            (PEER, UDP_REMOTE_PORT),
            b"query",
        );
        let mut p = ipv4_packet(US, PEER, udp::PROTOCOL, 9, 0, false, false, &d);
        p.truncate(28);
        p
    };
    let unreachable = icmp_message(
        icmp::DEST_UNREACHABLE,
        icmp::CODE_PORT_UNREACHABLE,
        [0; 4],
        &sent,
    );

    // ip_input: whole packets and fragment trains.
    let whole = |proto, payload: &[u8]| packet_to(US, proto, payload);
    add("ip_input", "ping", ip_input_records(0, &[whole(1, &ping)]));
    ethernet_seeds(&mut add, &ping);
    super::ip6::seeds(&mut add);
    add(
        "ip_input",
        "ping_fragmented",
        ip_input_records(FIX, &fragments_to(US, 1, 7, &big_ping, 1480)),
    );
    let mut shuffled = fragments_to(US, 1, 8, &big_ping, 512);
    shuffled.reverse();
    shuffled.push(shuffled[1].clone());
    add(
        "ip_input",
        "ping_fragments_reversed_dup",
        ip_input_records(FIX, &shuffled),
    );
    let mut lost = fragments_to(
        US,
        17,
        9,
        &udp_datagram(US, 1, UDP_ECHO_PORT, &[7; 600]),
        256,
    );
    lost.remove(1);
    add(
        "ip_input",
        "udp_fragment_lost",
        ip_input_records(FIX, &lost),
    );
    let mut overlap = fragments_to(US, 17, 10, &udp_echo, 8);
    overlap.insert(1, ipv4_packet(PEER, US, 17, 10, 0, true, false, &[0; 16]));
    let to_broadcast = udp_datagram(SUBNET_BROADCAST, 1, 9, &[7; 64]);
    add(
        "ip_input",
        "broadcast_fragment_lost",
        ip_input_records(
            FIX,
            &fragments_to(SUBNET_BROADCAST, 17, 11, &to_broadcast, 32)[..1],
        ),
    );
    add(
        "ip_input",
        "fragments_overlap",
        ip_input_records(FIX, &overlap),
    );
    add(
        "ip_input",
        "udp_echo",
        ip_input_records(FIX, &[whole(17, &udp_echo)]),
    );
    add(
        "ip_input",
        "udp_closed_port",
        ip_input_records(FIX, &[whole(17, &udp_closed)]),
    );
    add(
        "ip_input",
        "udp_broadcast",
        ip_input_records(FIX, &[packet_to(SUBNET_BROADCAST, 17, &udp_closed)]),
    );
    add(
        "ip_input",
        "icmp_unreachable",
        ip_input_records(FIX, &[whole(1, &unreachable)]),
    );
    add(
        "ip_input",
        "tcp_syn",
        ip_input_records(FIX, &[whole(6, &syn_all)]),
    );
    add(
        "ip_input",
        "tcp_syn_closed_port",
        ip_input_records(FIX, &[whole(6, &syn_closed)]),
    );
    add(
        "ip_input",
        "unknown_protocol",
        ip_input_records(FIX, &[whole(99, b"????????")]),
    );
    let mut opts = packet_to(US, 17, &udp_echo);
    // IHL 6 with a NOP option word.
    opts.splice(20..20, [1, 1, 1, 0]);
    opts[0] = 0x46;
    let total = opts.len() as u16;
    opts[2..4].copy_from_slice(&total.to_be_bytes());
    opts[10] = 0;
    opts[11] = 0;
    let c = checksum::checksum(&opts[..24]);
    opts[10..12].copy_from_slice(&c.to_be_bytes());
    add("ip_input", "ip_options", ip_input_records(FIX, &[opts]));
    add(
        "ip_input",
        "tcp_syn_plain",
        ip_input_records(FIX, &[whole(6, &syn)]),
    );
    // A whole connection over IP: the harness is deterministic, so the
    // stack's ISS is read off a dry run.
    {
        let mut h = IpHarness::new();
        h.receive(&whole(6, &syn));
        let synack = h.take_sent().into_iter().find(|(p, _)| *p == 6);
        let iss = synack.map_or(0, |(_, s)| u32::from_be_bytes([s[4], s[5], s[6], s[7]]));
        let ack = iss.wrapping_add(1);
        let seg = |seq, flags, payload: &[u8]| {
            whole(
                6,
                &raw_tcp_segment(PEER_PORT, TCP_PORT, seq, ack, flags, 64240, &[], payload),
            )
        };
        let request = b"GET / HTTP/1.0\r\n\r\n";
        add(
            "ip_input",
            "tcp_handshake_data_fin",
            ip_input_records(
                FIX,
                &[
                    whole(6, &syn),
                    seg(1001, flag::ACK, b""),
                    seg(1001, flag::ACK | flag::PSH, request),
                    seg(1001 + request.len() as u32, flag::ACK | flag::FIN, b""),
                ],
            ),
        );
    }
    add("ip_input", "empty", Vec::new());

    // icmp: [flags, frag_size, message].
    let icmp_seed = |flags: u8, frag: u8, msg: &[u8]| {
        let mut s = vec![flags, frag];
        s.extend_from_slice(msg);
        s
    };
    add("icmp", "ping", icmp_seed(0, 0, &ping));
    add(
        "icmp",
        "ping_fix_checksum",
        icmp_seed(wrap::FIX_CHECKSUM, 0, &ping),
    );
    add(
        "icmp",
        "ping_fragmented",
        icmp_seed(wrap::FRAGMENT, 2, &ping),
    );
    add("icmp", "ping_big", icmp_seed(0, 0, &big_ping));
    add(
        "icmp",
        "ping_broadcast",
        icmp_seed(wrap::BROADCAST, 0, &ping),
    );
    add("icmp", "port_unreachable", icmp_seed(0, 0, &unreachable));
    add(
        "icmp",
        "time_exceeded",
        icmp_seed(
            wrap::FIX_CHECKSUM,
            0,
            &icmp_message(icmp::TIME_EXCEEDED, 0, [0; 4], &sent),
        ),
    );
    add(
        "icmp",
        "echo_reply",
        icmp_seed(0, 0, &icmp_message(icmp::ECHO_REPLY, 0, [0, 1, 0, 1], b"x")),
    );
    add(
        "icmp",
        "timestamp_request",
        icmp_seed(0, 0, &icmp_message(13, 0, [0, 1, 0, 1], &[0; 12])),
    );

    // udp: [flags, frag_size, datagram].
    add("udp", "echo", icmp_seed(0, 0, &udp_echo));
    add(
        "udp",
        "echo_fix_checksum",
        icmp_seed(wrap::FIX_CHECKSUM, 0, &udp_echo),
    );
    add(
        "udp",
        "echo_zero_checksum",
        icmp_seed(wrap::ZERO_CHECKSUM, 0, &udp_echo),
    );
    add(
        "udp",
        "echo_fragmented",
        icmp_seed(wrap::FRAGMENT, 1, &udp_echo),
    );
    add(
        "udp",
        "echo_big_fragmented",
        icmp_seed(
            wrap::FRAGMENT,
            100,
            &udp_datagram(US, 5353, UDP_ECHO_PORT, &[0xab; 4000]),
        ),
    );
    add("udp", "closed_port", icmp_seed(0, 0, &udp_closed));
    add(
        "udp",
        "closed_port_broadcast",
        icmp_seed(wrap::BROADCAST | wrap::FIX_CHECKSUM, 0, &udp_closed),
    );
    add("udp", "connected", icmp_seed(0, 0, &udp_connected));
    add(
        "udp",
        "fix_length",
        icmp_seed(
            wrap::FIX_LENGTH | wrap::FIX_CHECKSUM,
            0,
            &udp_datagram(US, 5353, UDP_ECHO_PORT, b"length"),
        ),
    );

    // tcp_options: [options(40), payload].
    let opts40 = |o: &[u8]| {
        let mut v = o.to_vec();
        v.resize(40, 0);
        v
    };
    add("tcp_options", "none", Vec::new());
    add("tcp_options", "all_linux", opts40(&ALL_SYN_OPTIONS));
    add("tcp_options", "mss_1460", opts40(&[2, 4, 0x05, 0xb4]));
    add("tcp_options", "mss_0", opts40(&[2, 4, 0, 0]));
    add("tcp_options", "mss_1", opts40(&[2, 4, 0, 1]));
    add("tcp_options", "wscale_14", opts40(&[1, 3, 3, 14]));
    add("tcp_options", "wscale_255", opts40(&[1, 3, 3, 255]));
    add("tcp_options", "sack_perm", opts40(&[1, 1, 4, 2]));
    add(
        "tcp_options",
        "timestamps",
        opts40(&[1, 1, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0]),
    );
    add(
        "tcp_options",
        "unknown_kind",
        opts40(&[99, 4, 0, 0, 2, 4, 2, 0]),
    );
    add("tcp_options", "zero_length", opts40(&[2, 0, 3, 3, 7]));
    add("tcp_options", "length_past_end", opts40(&[1, 1, 1, 3, 200]));
    add("tcp_options", "all_nop", vec![1; 40]);
    add("tcp_options", "syn_with_data", {
        let mut v = opts40(&ALL_SYN_OPTIONS);
        v.extend_from_slice(b"data in the SYN");
        v
    });

    // tcb_listen: [config, ops...]. Segment op: [op, flags, modes, seq_d(2),
    // ack_d(2), ...]: modes 3 = SEQ at the stack's RCV.NXT, ACK (mode 3) at
    // its SND.NXT.
    let seg_op = |port_sel: u8, flags: u8, modes: u8| vec![port_sel << 6, flags, modes, 0, 0, 0, 0];
    let in_order = 0x3 | 0xc; // seq mode 3, ack mode 3
    let syn_op = |port_sel: u8| {
        // Absolute SEQ (mode 2) so each port gets its own ISS.
        let mut v = seg_op(port_sel, flag::SYN, 0x2 | 0xc | 0x20);
        v.extend_from_slice(&[0, 0, 0x10, port_sel]);
        v.push(20);
        v.extend_from_slice(&ALL_SYN_OPTIONS);
        v
    };
    let handshake = [syn_op(0), seg_op(0, flag::ACK, in_order)].concat();
    add("tcb_listen", "syn", [vec![0x01], syn_op(0)].concat());
    add(
        "tcb_listen",
        "handshake",
        [vec![0x01], handshake.clone()].concat(),
    );
    add(
        "tcb_listen",
        "handshake_accept_data_close",
        [
            vec![0x01],
            handshake.clone(),
            vec![7],
            {
                let mut v = seg_op(0, flag::ACK | flag::PSH, in_order | 0x40);
                v.push(100);
                v
            },
            vec![8, 0, 4],
            vec![9, 0],
            seg_op(0, flag::ACK | flag::FIN, in_order),
            vec![6, 200],
        ]
        .concat(),
    );
    add(
        "tcb_listen",
        "syn_flood",
        [
            vec![0x00],
            syn_op(0),
            syn_op(1),
            syn_op(2),
            syn_op(3),
            vec![6, 255],
        ]
        .concat(),
    );
    add(
        "tcb_listen",
        "synack_retransmit_timeout",
        [vec![0x01], syn_op(1), vec![6, 30, 6, 60, 6, 120]].concat(),
    );
    add(
        "tcb_listen",
        "rst_in_syn_received",
        [vec![0x01], syn_op(0), seg_op(0, flag::RST, in_order)].concat(),
    );
    add(
        "tcb_listen",
        "active_open",
        [
            // connect() to PEER:40000, then the peer's SYN-ACK (flag 0x40:
            // to the ephemeral port) with an absolute SEQ.
            vec![0x01, 10],
            seg_op(0, 0x40 | flag::SYN | flag::ACK, 0x2 | 0xc),
            vec![0, 0, 0x20, 0],
            vec![6, 100],
        ]
        .concat(),
    );
    add(
        "tcb_listen",
        "close_listener",
        [vec![0x01], handshake, vec![0xcf, 6, 50]].concat(),
    );

    // tcb_established: [config, irs(4), mss(2), wscale, window(2), ops...].
    let est = |config: u8, irs: u32, ops: &[u8]| {
        let mut v = vec![config];
        v.extend_from_slice(&irs.to_be_bytes());
        v.extend_from_slice(&1460u16.to_be_bytes());
        v.push(7);
        v.extend_from_slice(&65535u16.to_be_bytes());
        v.extend_from_slice(ops);
        v
    };
    add("tcb_established", "idle", est(0x01, 1000, &[]));
    add(
        "tcb_established",
        "data_both_ways",
        est(0x01, 1000, &[4, 200, 9, 255, 7, 100, 6, 0xff, 0xff, 10, 40]),
    );
    add(
        "tcb_established",
        "wrap_around",
        est(
            0x00,
            u32::MAX - 300,
            &[4, 255, 4, 255, 9, 255, 9, 255, 7, 255, 6, 0xff, 0xff],
        ),
    );
    add(
        "tcb_established",
        "out_of_order",
        est(
            0x03,
            5000,
            &[
                // seq mode 0 (RCV.NXT + 100), 100 bytes; then in-order 100.
                0,
                flag::ACK,
                0x40 | 0x0c,
                0,
                100,
                0,
                0,
                100,
                4,
                100,
                9,
                255,
                9,
                255,
            ],
        ),
    );
    add(
        "tcb_established",
        "bulk_send_retransmit",
        est(
            0x19,
            1000,
            &[0x47, 255, 0x47, 255, 11, 40, 11, 60, 6, 0x10, 0x00, 11, 100],
        ),
    );
    add(
        "tcb_established",
        "zero_window_probe",
        est(
            0x01,
            1000,
            &[7, 200, 6, 0, 0, 11, 50, 11, 80, 6, 0xff, 0xff],
        ),
    );
    add(
        "tcb_established",
        "peer_fin_then_close",
        est(0x01, 1000, &[0x24, 10, 9, 255, 9, 1, 13, 11, 100]),
    );
    add(
        "tcb_established",
        "active_close",
        est(0x01, 1000, &[7, 50, 12, 6, 0, 0, 0x24, 0, 11, 255]),
    );
    add("tcb_established", "abort", est(0x01, 1000, &[7, 50, 0x4d]));
    add(
        "tcb_established",
        "keepalive",
        est(0x01, 1000, &[0x2e, 1, 1, 2, 11, 100, 11, 100]),
    );
    add(
        "tcb_established",
        "rst",
        est(0x01, 1000, &[0, flag::RST, 0x0f, 0, 0, 0, 0]),
    );
    v
}

/// `ethernet` seeds: ARP then a ping, a resolution answered and one not,
/// a runt, and more neighbours than the cache holds.
fn ethernet_seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>), ping: &[u8]) {
    use super::link::{ARP_BROADCAST, IPV4_TO_US, PEER_MAC, RAW_FRAME, SEND_TO};
    use tunstack::link::arp::{ArpPacket, Operation};
    use tunstack::link::ethernet::MacAddr;
    fn record(kind: u8, wait: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind << 6 | (wait & 0x3f)];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }
    let arp = |op, target_ip| {
        ArpPacket {
            op,
            sender_mac: PEER_MAC,
            sender_ip: PEER,
            target_mac: MacAddr::ZERO,
            target_ip,
        }
        .to_bytes()
        .to_vec()
    };
    let ping = packet_to(US, 1, ping);
    add(
        "ethernet",
        "arp_then_ping",
        [
            record(ARP_BROADCAST, 0, &arp(Operation::Request, US)),
            record(IPV4_TO_US, 1, &ping),
        ]
        .concat(),
    );
    add(
        "ethernet",
        "resolved_then_silent",
        [
            record(SEND_TO, 0, &[1]),
            record(ARP_BROADCAST, 2, &arp(Operation::Reply, US)),
            record(SEND_TO, 0, &[3]),
            record(SEND_TO, 20, &[3]),
        ]
        .concat(),
    );
    add("ethernet", "runt", record(RAW_FRAME, 0, &[0xff; 10]));
    let many: Vec<u8> = (10..30u8).flat_map(|h| record(SEND_TO, 1, &[h])).collect();
    add("ethernet", "more_neighbours_than_the_cache", many);
}
