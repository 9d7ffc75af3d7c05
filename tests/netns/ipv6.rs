//! IPv6 at the network layer against the kernel (`--addr6 fd00::2/64`):
//! `ping -6` on a TUN and on a TAP (where the kernel first resolves the
//! stack with neighbour discovery), `ip -6 neigh`, the link-local address
//! from the MAC, tshark on the captures, and what is not served yet.

use std::time::Duration;

use crate::support::{tshark, tshark_fields, TestNet, STACK_ADDR6};

/// A python3 TCP client over IPv6 that says how its connect ended.
const CONNECT6: &str = "import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.settimeout(20)
try:
    s.connect(('fd00::2', 80))
    print('connected')
except OSError as e:
    print('failed', e.errno, e)
";

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

#[test]
fn ipv6_tcp_is_not_served_yet_and_says_so_with_a_parameter_problem() {
    let Some(mut net) = TestNet::start_ipv6(&["python3", "tshark"], "tun0", &[]) else {
        return;
    };
    // The kernel's connect fails at once (EPROTO, from the Parameter
    // Problem), not after its SYN retries.
    let started = std::time::Instant::now();
    let out = net.exec(&["python3", "-c", CONNECT6], Duration::from_secs(30));
    assert!(
        out.stdout.starts_with("failed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: {}",
        started.elapsed(),
        out.stdout
    );
    let stopped = net.stop();
    assert!(
        stopped.drop_count("ipv6-unknown-next-header") >= 1,
        "{}",
        stopped.stdout
    );
    assert!(stopped.counter("icmp6:", "errors sent") >= 1);
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
    let Some(mut net) = TestNet::start_ipv6(&["ping", "tshark"], "tap0", &["--mac", STACK_MAC])
    else {
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
