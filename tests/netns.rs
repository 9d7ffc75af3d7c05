//! End-to-end tests against the real kernel: each test runs the `tunstack`
//! binary on a TUN device in a private network namespace and talks to it with
//! the kernel's own clients (`ping`, python sockets), then checks what came
//! back, the stack's exit counters and its pcap (with `tshark`).
//!
//! The TCP tests run `curl`, python3 programs (`tests/netns/tcp_tool.py`, the
//! tutorial's `examples/python/tcp_client.py`), `tunstack connect` and the
//! `tcp_chat_server` example, and read the state transitions the stack logs
//! at debug level.
//!
//! Needs root, `ip`, `/dev/net/tun`, `ping`, `python3`, `curl` and `tshark`; without
//! them each test prints `SKIPPED ...` and passes, unless
//! `TUNSTACK_REQUIRE_NETNS=1` (as in CI) turns the skip into a failure.
//! `sudo scripts/test.sh` installs the tools and runs these tests.

/// Programs on the tokio sockets (axum, a tokio echo server).
#[cfg(feature = "tokio")]
#[path = "netns/async_apps.rs"]
mod async_apps;
/// IPv6 with ICMPv6 and, on a TAP, neighbour discovery.
#[path = "netns/ipv6.rs"]
mod ipv6;
mod support;
/// TAP mode: Ethernet and ARP.
#[path = "netns/tap.rs"]
mod tap;
/// The TCP tests.
#[path = "netns/tcp.rs"]
mod tcp;
/// Teaching: pcapng captures that explain themselves, the ladder of a
/// kernel-to-kernel capture.
#[path = "netns/teach.rs"]
mod teach;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{has_shape, run_with_timeout, tshark, TestNet, SEND_MALFORMED};

const ECHO_PORT: u16 = 7;
const TIME_PORT: u16 = 9000;
/// A UDP port the stack serves nothing on.
const CLOSED_PORT: u16 = 9999;

/// A printable message of exactly `len` bytes.
fn message(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| char::from(b'a' + ((i + usize::from(seed)) % 26) as u8))
        .collect()
}

#[test]
fn ping_gets_every_reply_with_no_loss() {
    let Some(net) = TestNet::start(&["ping"]) else {
        return;
    };
    let (summary, out) = net.ping(5, 56);
    assert_eq!(
        (summary.transmitted, summary.received, summary.loss.as_str()),
        (5, 5, "0%"),
        "ping:\n{}",
        out.stdout
    );
    assert!(
        out.status.success(),
        "ping exited {}:\n{}",
        out.status,
        out.stdout
    );
    // Every reply carries the request's 56 data bytes (64 with the ICMP header).
    let replies = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("64 bytes from 10.0.0.2: icmp_seq="))
        .count();
    assert_eq!(replies, 5, "ping:\n{}", out.stdout);
}

#[test]
fn ping_of_8000_bytes_is_fragmented_both_ways_with_no_loss() {
    let Some(mut net) = TestNet::start(&["ping", "tshark"]) else {
        return;
    };
    let (summary, out) = net.ping(3, 8000);
    assert_eq!(
        (summary.transmitted, summary.received, summary.loss.as_str()),
        (3, 3, "0%"),
        "ping:\n{}",
        out.stdout
    );
    let replies = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("8008 bytes from 10.0.0.2:"))
        .count();
    assert_eq!(
        replies, 3,
        "every reply must be whole (8008 bytes):\n{}",
        out.stdout
    );

    let stopped = net.stop();
    assert!(
        stopped.status.success(),
        "tunstack exited {}",
        stopped.status
    );
    assert_eq!(
        stopped.counter("ip:", "reassembled"),
        3,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("ip:", "fragmented"),
        3,
        "{}",
        stopped.stdout
    );

    // An 8008-byte ICMP message needs at least 6 fragments at MTU 1500
    // (1480 data bytes each), in each direction.
    let frags = tshark(
        &net.pcap_path(),
        &[
            "-Y",
            "ip.flags.mf==1 || ip.frag_offset>0",
            "-T",
            "fields",
            "-e",
            "ip.src",
        ],
    );
    let from_kernel = frags
        .stdout
        .lines()
        .filter(|l| l.trim() == "10.0.0.1")
        .count();
    let from_stack = frags
        .stdout
        .lines()
        .filter(|l| l.trim() == "10.0.0.2")
        .count();
    assert!(
        from_kernel >= 18,
        "expected >= 18 fragments from the kernel, got {from_kernel}:\n{}",
        frags.stdout
    );
    assert!(
        from_stack >= 18,
        "expected >= 18 fragments from the stack, got {from_stack}:\n{}",
        frags.stdout
    );
    // No fragment the stack sent is larger than the MTU.
    let oversized = tshark(
        &net.pcap_path(),
        &["-Y", "ip.src==10.0.0.2 && frame.len > 1500"],
    );
    assert_eq!(
        oversized.stdout.trim(),
        "",
        "the stack sent packets over the MTU"
    );
    // tshark reassembles the stack's fragments into the 3 echo replies.
    let echo_replies = tshark(
        &net.pcap_path(),
        &[
            "-Y",
            "icmp.type==0 && ip.src==10.0.0.2",
            "-T",
            "fields",
            "-e",
            "icmp.seq",
        ],
    );
    assert_eq!(
        echo_replies.stdout.lines().count(),
        3,
        "reassembled echo replies:\n{}",
        echo_replies.stdout
    );
}

#[test]
fn udp_echo_returns_each_message_exactly_including_fragmented_ones() {
    let Some(mut net) = TestNet::start(&["python3"]) else {
        return;
    };
    let big = message(1400, 1);
    let huge = message(8000, 2);
    let messages = ["hello", "tunstack says hi", "x", &big, &huge, "last one"];
    let out = net
        .udp_client(&[], ECHO_PORT, &messages)
        .expect_success("udp_client.py");
    let replies: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        replies.len(),
        messages.len(),
        "one reply per message:\n{}",
        out.stdout
    );
    for (sent, got) in messages.iter().zip(&replies) {
        assert!(
            sent == got,
            "echo differs: sent {} bytes, got {} bytes back",
            sent.len(),
            got.len()
        );
    }
    let stopped = net.stop();
    assert_eq!(
        stopped.counter("udp:", "datagrams in"),
        messages.len() as u64,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("udp:", "out"),
        messages.len() as u64,
        "{}",
        stopped.stdout
    );
    // The 8000-byte datagram arrived in fragments and went back in fragments.
    assert_eq!(
        stopped.counter("ip:", "reassembled"),
        1,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("ip:", "fragmented"),
        1,
        "{}",
        stopped.stdout
    );
}

/// Seconds since the epoch of a local time `YYYY-MM-DD HH:MM:SS`, via `date`.
fn local_time_to_epoch(local: &str) -> i64 {
    let out = run_with_timeout(
        std::process::Command::new("date").args(["-d", local, "+%s"]),
        Duration::from_secs(5),
    )
    .expect_success("date -d");
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("date printed {:?}: {e}", out.stdout))
}

#[test]
fn udp_time_replies_with_the_local_time_in_the_requested_format() {
    let Some(net) = TestNet::start(&["python3"]) else {
        return;
    };
    let out = net
        .udp_client(&[], TIME_PORT, &["%Y-%m-%d %X", "", "%H:%M"])
        .expect_success("udp_client.py");
    let replies: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(replies.len(), 3, "one reply per request:\n{}", out.stdout);

    let (explicit, default, hour_minute) = (replies[0], replies[1], replies[2]);
    assert!(
        has_shape(explicit, "9999-99-99 99:99:99"),
        "'%Y-%m-%d %X' gave {explicit:?}"
    );
    assert!(
        has_shape(default, "9999-99-99 99:99:99"),
        "an empty request gave {default:?}"
    );
    assert!(
        has_shape(hour_minute, "99:99"),
        "'%H:%M' gave {hour_minute:?}"
    );

    // Same machine, same local time zone: the replies are within minutes of our clock.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for reply in [explicit, default] {
        let skew = (local_time_to_epoch(reply) - now).abs();
        assert!(
            skew <= 180,
            "reply {reply:?} is {skew}s away from the test's clock"
        );
    }
}

#[test]
fn udp_to_a_closed_port_is_refused_with_icmp_port_unreachable() {
    let Some(mut net) = TestNet::start(&["python3"]) else {
        return;
    };
    let out = net.udp_client(
        &["--connect", "--timeout", "3"],
        CLOSED_PORT,
        &["anyone there?"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected ConnectionRefusedError (exit 2):\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("ConnectionRefusedError"),
        "stderr:\n{}",
        out.stderr
    );
    assert_eq!(out.stdout, "", "no reply expected");
    let stopped = net.stop();
    assert_eq!(
        stopped.counter("icmp:", "unreachables sent"),
        1,
        "{}",
        stopped.stdout
    );
    assert_eq!(stopped.drop_count("udp-no-socket"), 1, "{}", stopped.stdout);
}

#[test]
fn capture_of_ping_udp_and_fragments_has_no_malformed_packets_or_bad_checksums() {
    let Some(mut net) = TestNet::start(&["ping", "python3", "tshark"]) else {
        return;
    };
    let (summary, _) = net.ping(3, 56);
    assert_eq!(summary.received, 3);
    let huge = message(8000, 3);
    net.udp_client(&[], ECHO_PORT, &["short", &message(1400, 4), &huge])
        .expect_success("udp echo");
    net.udp_client(&[], TIME_PORT, &["%Y-%m-%d %X"])
        .expect_success("udp time");
    let refused = net.udp_client(&["--connect"], CLOSED_PORT, &["closed"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "closed port: {}",
        refused.stderr
    );
    let (summary, _) = net.ping(2, 8000);
    assert_eq!(summary.received, 2);
    let stopped = net.stop();
    assert!(
        stopped.status.success(),
        "tunstack exited {}",
        stopped.status
    );

    let pcap = net.pcap_path();
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    let all = tshark(&pcap, &["-T", "fields", "-e", "frame.number"]);
    let packets = all.stdout.lines().count();
    // 10 pings' worth of echo traffic, 5 UDP exchanges, fragments: well over 40.
    assert!(
        packets > 40,
        "expected a full capture, got {packets} packets"
    );

    let mut args = checks.to_vec();
    // A bad ICMP checksum is only a warning to Wireshark, so ask for it by name.
    let filter = "_ws.malformed || _ws.expert.severity >= error || ip.checksum.status == 0 || udp.checksum.status == 0 || icmp.checksum.status == 0";
    args.extend([
        "-Y",
        filter,
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    let bad = tshark(&pcap, &args);
    assert_eq!(
        bad.stdout.trim(),
        "",
        "tshark flags these packets (frame, message):\n{}",
        bad.stdout
    );

    // Checksums were really verified, not just skipped: every IPv4 header
    // checks out ("Good" is status 1) and so does every UDP datagram.
    for (field, layer) in [
        ("ip.checksum.status", "ip"),
        ("udp.checksum.status", "udp && !icmp"),
        ("icmp.checksum.status", "icmp"),
    ] {
        let mut args = checks.to_vec();
        args.extend(["-Y", layer, "-T", "fields", "-e", field]);
        let statuses = tshark(&pcap, &args);
        let values: Vec<&str> = statuses
            .stdout
            .lines()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .collect();
        assert!(!values.is_empty(), "no {field} values in the capture");
        assert!(
            values.iter().all(|v| *v == "1"),
            "{field} not all Good:\n{}",
            statuses.stdout
        );
    }
}

#[test]
fn malformed_packets_are_dropped_and_counted_and_the_stack_keeps_working() {
    let Some(mut net) = TestNet::start(&["ping", "python3"]) else {
        return;
    };
    // (packet crafted by send_malformed.py, the drop counter it must land in)
    let cases = [
        ("ip-bad-checksum", "ip-bad-checksum"),
        ("ip-total-length-past-end", "ip-bad-total-length"),
        ("ip-total-length-below-header", "ip-bad-total-length"),
        ("ip-ihl-below-5", "ip-bad-ihl"),
        ("ip-version-6", "ip-not-ipv4"),
        ("ip-truncated", "ip-truncated"),
        ("udp-header-truncated", "udp-bad-length"),
        ("udp-length-past-end", "udp-bad-length"),
        ("udp-bad-checksum", "udp-bad-checksum"),
        ("icmp-bad-checksum", "icmp-bad-checksum"),
        ("icmp-truncated", "icmp-truncated"),
    ];
    let mut argv = vec!["python3", SEND_MALFORMED, "tun0"];
    argv.extend(cases.iter().map(|(packet, _)| *packet));
    let sent = net
        .exec(&argv, Duration::from_secs(10))
        .expect_success("send_malformed.py");
    assert_eq!(sent.stdout.lines().count(), cases.len(), "{}", sent.stdout);

    // Still alive and answering.
    let (summary, out) = net.ping(3, 56);
    assert_eq!(
        (summary.received, summary.loss.as_str()),
        (3, "0%"),
        "ping after malformed input:\n{}",
        out.stdout
    );
    let echo = net
        .udp_client(&[], ECHO_PORT, &["still here"])
        .expect_success("udp echo");
    assert_eq!(echo.stdout.trim_end(), "still here");

    let stopped = net.stop();
    assert!(
        stopped.status.success(),
        "tunstack exited {} after SIGINT",
        stopped.status
    );
    for reason in [
        "ip-bad-checksum",
        "ip-bad-total-length",
        "ip-bad-ihl",
        "ip-not-ipv4",
        "ip-truncated",
        "udp-bad-length",
        "udp-bad-checksum",
        "icmp-bad-checksum",
        "icmp-truncated",
    ] {
        let expected = cases.iter().filter(|(_, r)| *r == reason).count() as u64;
        assert_eq!(
            stopped.drop_count(reason),
            expected,
            "counter {reason}:\n{}",
            stopped.stdout
        );
    }
    // None of them was answered: only the 3 pings and the one good datagram were.
    assert_eq!(
        stopped.counter("icmp:", "echo replies"),
        3,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("udp:", "datagrams in"),
        1,
        "{}",
        stopped.stdout
    );
}

/// Issue 9: an address a host cannot have is refused at start with a
/// message that says why, instead of a stack that half works.
#[test]
fn addresses_a_host_cannot_have_are_refused_at_start() {
    let Some(net) = TestNet::new(&[]) else {
        return;
    };
    for (addr, why) in [
        ("10.0.0.1", "the kernel side of tun0 has it"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("127.0.0.1", "loopback"),
        ("10.0.0.255", "broadcast"),
    ] {
        let out = net.exec(
            &[support::TUNSTACK, "run", "--tun", "tun0", "--addr", addr],
            Duration::from_secs(10),
        );
        assert!(!out.status.success(), "--addr {addr} was accepted");
        assert!(
            out.stderr.contains("cannot be the stack's address") && out.stderr.contains(why),
            "--addr {addr}: {}",
            out.stderr
        );
    }
}

/// Issue 9: with a tiny MTU (96: an MSS of 56) TCP still carries data; it
/// used to send 104-byte DF segments that IP dropped without a counter.
#[test]
fn tcp_works_at_a_tiny_mtu() {
    let Some(net) = TestNet::start_with(&["curl"], &["--mtu", "96"]) else {
        return;
    };
    let out = net
        .exec(
            &[
                "curl",
                "-sS",
                "--max-time",
                "20",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                "http://10.0.0.2/bytes/3000",
            ],
            Duration::from_secs(30),
        )
        .expect_success("curl at MTU 96");
    assert_eq!(out.stdout.trim(), "3000");
}
