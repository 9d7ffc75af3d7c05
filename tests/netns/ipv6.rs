//! IPv6 at the network layer against the kernel (`--addr6 fd00::2/64`):
//! `ping -6` on a TUN and on a TAP (where the kernel first resolves the
//! stack with neighbour discovery), `ip -6 neigh`, the link-local address
//! from the MAC, TCP and UDP over IPv6 (python3 AF_INET6 clients, `curl
//! -6`), and tshark on the captures.

use std::time::Duration;

use crate::support::{tshark, tshark_fields, TestNet, STACK_ADDR6, UDP_CLIENT};
use crate::tcp::{assert_stopped_cleanly, sha256_file, tcp_tool};

/// The MAC the TAP tests give the stack, and the link-local address
/// that follows from it (modified EUI-64).
const STACK_MAC: &str = "02:00:00:00:00:02";
const STACK_LINK_LOCAL: &str = "fe80::ff:fe00:2";

/// The `frame.protocols` of every packet in a capture.
fn protocols(net: &TestNet) -> Vec<String> {
    tshark_fields(&net.pcap_path(), "frame", &["frame.protocols"])
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect()
}

/// Waits until duplicate address detection has made both of the stack's
/// addresses usable on the TAP (RFC 4862: about a second after start).
fn wait_for_dad(net: &TestNet) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let done = |addr: &str| format!("{addr}: duplicate address detection done");
    loop {
        let log = net.log();
        if [STACK_ADDR6, STACK_LINK_LOCAL]
            .iter()
            .all(|a| log.contains(&done(a)))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "DAD did not finish:\n{}",
            net.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_clean_capture(net: &TestNet) {
    let bad = tshark(
        &net.pcap_path(),
        &["-Y", "_ws.malformed || _ws.expert.severity >= error"],
    )
    .stdout;
    assert!(bad.trim().is_empty(), "tshark finds errors:\n{bad}");
}

#[test]
fn ipv6_ping_on_tun_gets_every_reply_up_to_the_mtu() {
    let Some(mut net) = TestNet::start_ipv6(&["ping", "tshark"], "tun0", &[]) else {
        return;
    };
    let (summary, out) = net.ping6(3, 56, STACK_ADDR6);
    assert_eq!(
        (summary.transmitted, summary.received),
        (3, 3),
        "ping -6:\n{}{}",
        out.stdout,
        out.stderr
    );
    let replies = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("64 bytes from fd00::2: icmp_seq="))
        .count();
    assert_eq!(replies, 3, "{}", out.stdout);
    // 40 + 8 + 1452 = 1500: a reply that fills the MTU.
    let (summary, out) = net.ping6(2, 1452, STACK_ADDR6);
    assert_eq!(
        (summary.transmitted, summary.received),
        (2, 2),
        "{}",
        out.stdout
    );
    let stopped = net.stop();
    assert!(
        stopped.status.success(),
        "tunstack exited {}",
        stopped.status
    );
    assert_eq!(
        stopped.counter("icmp6:", "echo replies"),
        5,
        "{}",
        stopped.stdout
    );
    // Bare IPv6 packets (LINKTYPE_RAW) that tshark reads as ICMPv6.
    let protocols = protocols(&net);
    let pings = protocols
        .iter()
        .filter(|p| *p == "raw:ipv6:icmpv6:data")
        .count();
    assert_eq!(pings, 10, "{protocols:?}");
    let replies = tshark_fields(
        &net.pcap_path(),
        "icmpv6.type == 129 && ipv6.src == fd00::2 && ipv6.dst == fd00::1",
        &["icmpv6.checksum.status"],
    );
    assert_eq!(replies.len(), 5);
    assert!(
        replies.iter().all(|r| r.first().is_some_and(|s| s == "1")),
        "tshark finds bad ICMPv6 checksums: {replies:?}"
    );
    assert_clean_capture(&net);
}

#[test]
fn ipv6_ping_of_8000_bytes_is_fragmented_both_ways() {
    let Some(mut net) = TestNet::start_ipv6(&["ping", "tshark"], "tun0", &[]) else {
        return;
    };
    let (summary, out) = net.ping6(3, 8000, STACK_ADDR6);
    assert_eq!(
        (summary.transmitted, summary.received),
        (3, 3),
        "ping -6 -s 8000:\n{}{}",
        out.stdout,
        out.stderr
    );
    let whole = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("8008 bytes from fd00::2:"))
        .count();
    assert_eq!(whole, 3, "every reply must be whole:\n{}", out.stdout);
    let stopped = net.stop();
    assert_eq!(
        stopped.counter("ip6:", "reassembled"),
        3,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("ip6:", "fragmented"),
        3,
        "{}",
        stopped.stdout
    );
    // An 8008-byte message needs 6 fragments at MTU 1500 (1448 bytes of
    // it each), each way.
    for src in ["fd00::1", "fd00::2"] {
        let frags = tshark_fields(
            &net.pcap_path(),
            &format!("ipv6.src == {src} && ipv6.nxt == 44"),
            &["frame.len"],
        );
        assert_eq!(frags.len(), 18, "fragments from {src}: {frags:?}");
        assert!(frags
            .iter()
            .all(|r| r[0].parse::<usize>().is_ok_and(|n| n <= 1500)));
    }
    assert_clean_capture(&net);
}

/// Runs `udp_client.py OPTS fd00::2 PORT MESSAGES...` in the namespace.
fn udp6(net: &TestNet, opts: &[&str], port: u16, messages: &[&str]) -> crate::support::Output {
    let port = port.to_string();
    let mut argv = vec!["python3", UDP_CLIENT];
    argv.extend_from_slice(opts);
    argv.extend_from_slice(&[STACK_ADDR6, &port]);
    argv.extend_from_slice(messages);
    net.exec(&argv, Duration::from_secs(20))
}

#[test]
fn ipv6_tcp_python_clients_get_their_bytes_echoed_and_a_closed_port_is_reset() {
    let Some(mut net) = TestNet::start_ipv6(&["python3", "tshark"], "tun0", &[]) else {
        return;
    };
    // Four AF_INET6 clients at once, 300 kB each, through the echo service.
    let out = tcp_tool(
        &net,
        &[
            "echo",
            STACK_ADDR6,
            "7",
            "--size",
            "300000",
            "--clients",
            "4",
        ],
        Duration::from_secs(60),
    )
    .expect_success("tcp_tool.py echo over IPv6");
    assert!(
        out.stdout
            .contains("4/4 clients got their 300000 bytes back"),
        "{}",
        out.stdout
    );
    // A port no one listens on: RST, so ConnectionRefusedError (exit 2).
    let refused = tcp_tool(
        &net,
        &["refused", STACK_ADDR6, "1"],
        Duration::from_secs(20),
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert_stopped_cleanly(&net.stop());
    // The capture: TCP over IPv6 both ways, with SACK and timestamps
    // agreed, every checksum good.
    let syns = tshark_fields(
        &net.pcap_path(),
        "ipv6 && tcp.flags.syn == 1 && tcp.flags.ack == 1",
        &[
            "ipv6.src",
            "tcp.options.sack_perm",
            "tcp.options.timestamp.tsval",
            "tcp.options.mss_val",
        ],
    );
    assert!(!syns.is_empty(), "no SYN-ACK over IPv6 in the capture");
    for row in &syns {
        assert_eq!(row[0], STACK_ADDR6, "{row:?}");
        assert!(
            !row[1].is_empty() && !row[2].is_empty(),
            "no SACK-permitted or timestamp: {row:?}"
        );
        assert_eq!(
            row[3], "1440",
            "MSS for a 1500-byte link less 60 bytes: {row:?}"
        );
    }
    assert_clean_capture(&net);
}

#[test]
fn curl_6_gets_the_status_page_and_10_mb_with_the_right_sha256() {
    let Some(mut net) = TestNet::start_ipv6(&["curl", "tshark"], "tun0", &[]) else {
        return;
    };
    let page = net
        .exec(
            &[
                "curl",
                "-6",
                "-sS",
                "-m",
                "10",
                &format!("http://[{STACK_ADDR6}]/"),
            ],
            Duration::from_secs(15),
        )
        .expect_success("curl -6 /");
    assert!(
        page.stdout.contains("tunstack"),
        "status page:\n{}",
        page.stdout
    );
    // The page lists the connection it is served on, by its IPv6 address.
    assert!(
        page.stdout.contains("fd00::1"),
        "no IPv6 peer in the page:\n{}",
        page.stdout
    );
    const SIZE: usize = 10_000_000;
    let body = net.dir.join("bytes6.bin");
    let body_s = body.to_string_lossy().to_string();
    let out = net
        .exec(
            &[
                "curl",
                "-6",
                "-sS",
                "-m",
                "30",
                "-o",
                &body_s,
                "-w",
                "%{http_code}",
                &format!("http://[{STACK_ADDR6}]/bytes/{SIZE}"),
            ],
            Duration::from_secs(35),
        )
        .expect_success("curl -6 /bytes/10000000");
    assert_eq!(out.stdout, "200");
    let expected: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let expected_path = net.dir.join("expected6.bin");
    std::fs::write(&expected_path, &expected).unwrap_or_else(|e| panic!("writing: {e}"));
    assert_eq!(
        std::fs::metadata(&body).map(|m| m.len()).unwrap_or(0),
        SIZE as u64,
        "bytes received"
    );
    assert_eq!(
        sha256_file(&body),
        sha256_file(&expected_path),
        "SHA-256 of the body"
    );
    assert_stopped_cleanly(&net.stop());
    assert_clean_capture(&net);
}

#[test]
fn ipv6_udp_python_client_gets_echo_and_time_and_a_closed_port_refuses() {
    let Some(mut net) = TestNet::start_ipv6(&["python3", "tshark"], "tun0", &[]) else {
        return;
    };
    let echo = udp6(&net, &[], 7, &["hello", "over IPv6"]).expect_success("udp echo over IPv6");
    assert_eq!(
        echo.stdout.lines().collect::<Vec<_>>(),
        ["hello", "over IPv6"]
    );
    // The tutorial's time server answers a strftime format.
    let time = udp6(&net, &[], 9000, &["%Y"]).expect_success("udp time over IPv6");
    let year = time.stdout.trim();
    assert!(
        year.len() == 4 && year.chars().all(|c| c.is_ascii_digit()),
        "{year:?}"
    );
    // A connected socket hears ICMPv6 Port Unreachable (exit 2).
    let refused = udp6(&net, &["--connect"], 9, &["anyone?"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert_stopped_cleanly(&net.stop());
    // RFC 4443 §3.1: Destination Unreachable, code 4 (port unreachable).
    let unreachable = tshark_fields(&net.pcap_path(), "icmpv6.type == 1", &["icmpv6.code"]);
    assert!(unreachable.iter().any(|r| r == &["4"]), "{unreachable:?}");
    assert_clean_capture(&net);
}

#[test]
fn an_unknown_next_header_still_gets_a_parameter_problem() {
    let Some(mut net) = TestNet::start_ipv6(&["python3", "tshark"], "tun0", &[]) else {
        return;
    };
    // Protocol 253 (for experiments, RFC 3692), which the stack does not
    // speak, from a raw socket.
    let script = "import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 253)
s.sendto(bytes(20), ('fd00::2', 0))
";
    net.exec(&["python3", "-c", script], Duration::from_secs(10))
        .expect_success("raw protocol 253 over IPv6");
    std::thread::sleep(Duration::from_millis(300));
    let stopped = net.stop();
    assert!(
        stopped.drop_count("ipv6-unknown-next-header") >= 1,
        "{}",
        stopped.stdout
    );
    // RFC 4443 §3.4: code 1, pointing at the Next Header field (6).
    let problems = tshark_fields(
        &net.pcap_path(),
        "icmpv6.type == 4",
        &["icmpv6.code", "icmpv6.pointer"],
    );
    assert!(
        problems.iter().any(|r| r == &["1", "6"]),
        "no Parameter Problem code 1 pointer 6: {problems:?}"
    );
    assert_clean_capture(&net);
}

#[test]
fn tap_ipv6_ping_resolves_the_stack_by_neighbour_discovery() {
    let Some(mut net) = TestNet::start_ipv6(
        &["ping", "python3", "tshark"],
        "tap0",
        &["--mac", STACK_MAC],
    ) else {
        return;
    };
    wait_for_dad(&net);
    let (summary, out) = net.ping6(3, 56, STACK_ADDR6);
    assert_eq!(
        (summary.transmitted, summary.received),
        (3, 3),
        "ping -6 over TAP:\n{}{}",
        out.stdout,
        out.stderr
    );
    // The link-local address from the MAC answers too.
    let target = format!("{STACK_LINK_LOCAL}%tap0");
    let (summary, out) = net.ping6(2, 56, &target);
    assert_eq!(
        (summary.transmitted, summary.received),
        (2, 2),
        "{}",
        out.stdout
    );
    // Fragmented both ways, in Ethernet frames.
    let (summary, out) = net.ping6(1, 8000, STACK_ADDR6);
    assert_eq!(
        (summary.transmitted, summary.received),
        (1, 1),
        "{}",
        out.stdout
    );
    // TCP over IPv6 in Ethernet frames, to the global address and to the
    // link-local one (the stack answers from the address the SYN named).
    for host in [STACK_ADDR6, target.as_str()] {
        let out = tcp_tool(
            &net,
            &["echo", host, "7", "--size", "100000", "--clients", "2"],
            Duration::from_secs(30),
        )
        .expect_success("tcp_tool.py echo over IPv6 on a TAP");
        assert!(
            out.stdout
                .contains("2/2 clients got their 100000 bytes back"),
            "{host}: {}",
            out.stdout
        );
    }
    let neigh = net
        .exec(
            &["ip", "-6", "neigh", "show", "dev", "tap0"],
            Duration::from_secs(5),
        )
        .expect_success("ip -6 neigh");
    for addr in [STACK_ADDR6, STACK_LINK_LOCAL] {
        let line = neigh
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{addr} ")))
            .unwrap_or_else(|| panic!("no neighbour entry for {addr}:\n{}", neigh.stdout));
        assert!(
            line.contains(&format!("lladdr {STACK_MAC}")),
            "the kernel holds another MAC for {addr}: {line}"
        );
    }
    let stopped = net.stop();
    assert!(
        stopped.status.success(),
        "tunstack exited {}",
        stopped.status
    );
    assert_eq!(
        stopped.counter("icmp6:", "echo replies"),
        6,
        "{}",
        stopped.stdout
    );
    assert_eq!(stopped.counter("ip6:", "fragmented"), 1);
    assert!(
        stopped.counter("link:", "NA out") >= 2,
        "{}",
        stopped.stdout
    );
    assert_eq!(stopped.drop_count("nd-invalid"), 0, "{}", stopped.stdout);

    let protocols = protocols(&net);
    assert!(
        protocols
            .iter()
            .any(|p| p == "eth:ethertype:ipv6:icmpv6:data"),
        "no ping -6 in Ethernet frames: {protocols:?}"
    );
    // The stack's advertisements: solicited, with its MAC.
    let adverts = tshark_fields(
        &net.pcap_path(),
        "icmpv6.type == 136 && eth.src == 02:00:00:00:00:02",
        &[
            "ipv6.hlim",
            "icmpv6.nd.na.flag.s",
            "icmpv6.opt.linkaddr",
            "icmpv6.nd.na.target_address",
        ],
    );
    assert!(
        adverts
            .iter()
            .any(|r| r[0] == "255" && r[1] == "1" && r[2] == STACK_MAC && r[3] == STACK_ADDR6),
        "no solicited advertisement for fd00::2: {adverts:?}"
    );
    // Duplicate address detection probed both addresses first (RFC 4862
    // §5.4.2): from ::, to their solicited-node groups, with no link-layer
    // address option.
    let probes = tshark_fields(
        &net.pcap_path(),
        "icmpv6.type == 135 && ipv6.src == :: && eth.src == 02:00:00:00:00:02",
        &[
            "icmpv6.nd.ns.target_address",
            "icmpv6.opt.linkaddr",
            "ipv6.dst",
        ],
    );
    for target in [STACK_ADDR6, STACK_LINK_LOCAL] {
        assert!(
            probes
                .iter()
                .any(|r| r[0] == target && r[1].is_empty() && r[2] == "ff02::1:ff00:2"),
            "no DAD probe for {target}: {probes:?}"
        );
    }
    assert_clean_capture(&net);
}

#[test]
fn tap_dad_finds_an_address_the_kernel_holds_and_does_not_use_it() {
    let Some(mut net) = TestNet::new_ipv6(&["tshark"], "tap0") else {
        return;
    };
    // fd00::1 is the kernel's: it answers the stack's probe.
    net.start_stack(&["--addr6", "fd00::1/64", "--mac", STACK_MAC]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !net.log().contains("fd00::1 is in use by another node") {
        assert!(
            std::time::Instant::now() < deadline,
            "no duplicate found:\n{}",
            net.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped = net.stop();
    assert!(
        stopped.counter("link:", "conflicts") >= 1,
        "{}",
        stopped.stdout
    );
    // The kernel's advertisement, and nothing from the stack for fd00::1.
    let answers = tshark_fields(
        &net.pcap_path(),
        "icmpv6.type == 136 && icmpv6.nd.na.target_address == fd00::1",
        &["eth.src"],
    );
    assert!(!answers.is_empty(), "the kernel did not answer the probe");
    assert!(
        answers.iter().all(|r| r[0] != STACK_MAC),
        "the stack advertised the duplicate: {answers:?}"
    );
}

#[test]
fn without_addr6_ipv6_is_dropped_as_before() {
    let Some(mut net) = TestNet::new_ipv6(&["ping"], "tun0") else {
        return;
    };
    net.start_stack(&[]);
    let (summary, _) = net.ping6(1, 56, STACK_ADDR6);
    assert_eq!(summary.received, 0);
    let stopped = net.stop();
    assert!(stopped.drop_count("ip-not-ipv4") >= 1, "{}", stopped.stdout);
    assert!(!stopped.stdout.contains("icmp6:"), "{}", stopped.stdout);
}
