//! TAP mode against the kernel: the stack on a TAP device `tap0` speaks
//! Ethernet II and ARP. ping and curl from the kernel side, `ip neigh`, a
//! python3 raw-socket ARP request, `tunstack connect` resolving the
//! kernel's MAC itself (and failing fast on a silent address), and tshark
//! on the Ethernet capture.

use std::time::{Duration, Instant};

use crate::support::{tshark, tshark_fields, TestNet, STACK_ADDR, TCP_TOOL, TUNSTACK};

/// The MAC the tests give the stack (`--mac`).
const STACK_MAC: &str = "02:00:00:00:00:02";
const ARP_REQUEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/arp_request.py");

fn start() -> Option<TestNet> {
    TestNet::start_tap(
        &["ping", "curl", "python3", "tshark"],
        &["--mac", STACK_MAC],
    )
}

#[test]
fn tap_ping_works_and_ip_neigh_shows_the_stacks_mac() {
    let Some(mut net) = start() else {
        return;
    };
    let (summary, out) = net.ping(5, 56);
    assert_eq!(
        (summary.transmitted, summary.received),
        (5, 5),
        "ping over TAP:\n{}{}",
        out.stdout,
        out.stderr
    );
    let neigh = net
        .exec(
            &["ip", "neigh", "show", "dev", "tap0"],
            Duration::from_secs(5),
        )
        .expect_success("ip neigh");
    let line = neigh
        .stdout
        .lines()
        .find(|l| l.starts_with("10.0.0.2 "))
        .unwrap_or_else(|| panic!("no neighbour entry for the stack:\n{}", neigh.stdout));
    assert!(
        line.contains(&format!("lladdr {STACK_MAC}")),
        "the kernel holds another MAC for the stack: {line}"
    );
    assert!(
        ["REACHABLE", "STALE", "DELAY"]
            .iter()
            .any(|s| line.contains(s)),
        "neighbour state: {line}"
    );
    let stopped = net.stop();
    assert!(
        stopped.counter("link:", "ARP replies out") >= 1,
        "{}",
        stopped.stdout
    );
    assert_eq!(stopped.counter("icmp:", "echo replies"), 5);

    // The capture is Ethernet: ARP and the pings in Ethernet frames.
    let pcap = net.pcap_path();
    let protocols: Vec<String> = tshark_fields(&pcap, "frame", &["frame.protocols"])
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect();
    assert!(
        protocols.iter().any(|p| p == "eth:ethertype:arp"),
        "no ARP in the capture: {protocols:?}"
    );
    assert!(
        protocols.iter().any(|p| p == "eth:ethertype:ip:icmp:data"),
        "no ping in Ethernet frames: {protocols:?}"
    );
    assert!(
        protocols.iter().all(|p| p.starts_with("eth:")),
        "{protocols:?}"
    );
    // The announcement (RFC 5227 §2.3) and the reply to the kernel.
    let arp = tshark(&pcap, &["-Y", "arp"]).stdout;
    assert!(arp.contains("ARP Announcement for 10.0.0.2"), "{arp}");
    assert!(
        arp.contains(&format!("10.0.0.2 is at {STACK_MAC}")),
        "{arp}"
    );
    let bad = tshark(
        &pcap,
        &["-Y", "_ws.malformed || _ws.expert.severity >= error"],
    )
    .stdout;
    assert!(bad.trim().is_empty(), "tshark finds errors:\n{bad}");
}

#[test]
fn tap_curl_of_the_http_service_works() {
    let Some(mut net) = start() else {
        return;
    };
    const SIZE: usize = 1_000_000;
    let body = net.dir.join("bytes.bin");
    let body_s = body.to_string_lossy();
    let url = format!("http://{STACK_ADDR}/bytes/{SIZE}");
    let out = net
        .exec(
            &[
                "curl",
                "-sS",
                "-m",
                "20",
                "-o",
                &body_s,
                "-w",
                "%{http_code}",
                &url,
            ],
            Duration::from_secs(25),
        )
        .expect_success("curl over TAP");
    assert_eq!(out.stdout, "200");
    let got = std::fs::read(&body).unwrap_or_default();
    assert_eq!(got.len(), SIZE);
    // Byte i is i mod 251.
    if let Some(i) = got
        .iter()
        .enumerate()
        .position(|(i, b)| usize::from(*b) != i % 251)
    {
        panic!("byte {i} differs");
    }
    let stopped = net.stop();
    assert_eq!(
        stopped.drop_count("eth-not-for-us"),
        0,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.drop_count("neigh-queue-full"),
        0,
        "{}",
        stopped.stdout
    );
}

#[test]
fn tap_a_raw_arp_request_gets_the_stacks_reply() {
    let Some(net) = start() else {
        return;
    };
    let out = net
        .exec(
            &["python3", ARP_REQUEST, "tap0", "10.0.0.1", STACK_ADDR],
            Duration::from_secs(10),
        )
        .expect_success("python3 ARP request");
    assert!(
        out.stdout
            .starts_with(&format!("reply from {STACK_ADDR} at {STACK_MAC} to ")),
        "{}",
        out.stdout
    );
    // No reply for an address that is not the stack's.
    let other = net.exec(
        &["python3", ARP_REQUEST, "tap0", "10.0.0.1", "10.0.0.3"],
        Duration::from_secs(10),
    );
    assert!(!other.status.success(), "{}", other.stdout);
}

#[test]
fn tap_connect_resolves_the_kernels_mac_and_talks_tcp() {
    let Some(net) = TestNet::new_tap(&["python3", "tshark"]) else {
        return;
    };
    let server = net.spawn_background(
        &["python3", TCP_TOOL, "serve", "5000", "--upper"],
        "listening",
    );
    let pcap = net.dir.join("connect.pcap");
    let pcap_s = pcap.to_string_lossy();
    let out = net
        .exec_with_input(
            &[
                TUNSTACK,
                "connect",
                "--tap",
                "tap0",
                "--addr",
                STACK_ADDR,
                "--pcap",
                &pcap_s,
                "--msl-ms",
                "500",
                "--timeout",
                "5",
                "10.0.0.1:5000",
            ],
            &[("RUST_LOG", "debug")],
            b"hello over ethernet\n",
            Duration::from_secs(20),
        )
        .expect_success("tunstack connect --tap");
    assert_eq!(out.stdout, "HELLO OVER ETHERNET\n", "{}", out.stderr);
    server.wait(Duration::from_secs(10));
    // The stack asked for the kernel's MAC before its SYN.
    let rows = tshark_fields(
        &pcap,
        "arp.opcode == 1 && arp.src.proto_ipv4 == 10.0.0.2 && arp.dst.proto_ipv4 == 10.0.0.1",
        &["frame.number"],
    );
    assert!(
        !rows.is_empty(),
        "no ARP request from the stack for 10.0.0.1"
    );
    let replies = tshark_fields(
        &pcap,
        "arp.opcode == 2 && arp.src.proto_ipv4 == 10.0.0.1",
        &["frame.number"],
    );
    assert!(!replies.is_empty(), "no ARP reply from the kernel");
    let syn = tshark_fields(
        &pcap,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["frame.number"],
    );
    let first = |rows: &[Vec<String>]| -> u64 {
        rows.first()
            .and_then(|r| r.first())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    assert!(
        first(&replies) < first(&syn),
        "the SYN left before the ARP reply came"
    );
}

#[test]
fn tap_connect_to_a_silent_address_fails_with_host_unreachable() {
    let Some(net) = TestNet::new_tap(&["python3"]) else {
        return;
    };
    let started = Instant::now();
    let out = net.exec_with_input(
        &[
            TUNSTACK,
            "connect",
            "--tap",
            "tap0",
            "--addr",
            STACK_ADDR,
            "--timeout",
            "30",
            "10.0.0.3:80",
        ],
        &[],
        b"",
        Duration::from_secs(40),
    );
    let took = started.elapsed();
    assert!(
        !out.status.success(),
        "connected to nobody?\n{}",
        out.stderr
    );
    assert!(
        out.stderr.to_lowercase().contains("unreachable"),
        "expected host unreachable:\n{}",
        out.stderr
    );
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: not the ARP failure"
    );
}
