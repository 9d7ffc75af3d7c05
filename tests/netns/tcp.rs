//! TCP against the kernel: curl and python3 clients of the stack's services,
//! `tunstack connect` against a python3 server, the tutorial's chat client
//! against the `tcp_chat_server` example, keepalive, TIME-WAIT, the state
//! transitions the stack logs at debug level, and RST for a closed port.
//! Every capture is checked with tshark (checksums verified).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    example_path, run_with_timeout, tshark, tshark_fields, Output, Stopped, TestNet, STACK_ADDR,
    TCP_TOOL, TUNSTACK,
};

/// TCP echo (RFC 862) on the stack.
const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;
/// A TCP port the stack has no listener on.
const CLOSED_TCP_PORT: u16 = 1;
/// The tutorial's chat client, run against the `tcp_chat_server` example.
const TUTORIAL_TCP_CLIENT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/tcp_client.py");

/// Runs `tcp_tool.py ARGS...` inside the namespace.
pub(super) fn tcp_tool(net: &TestNet, args: &[&str], timeout: Duration) -> Output {
    let mut argv = vec!["python3", TCP_TOOL];
    argv.extend_from_slice(args);
    net.exec(&argv, timeout)
}

/// Runs `tcp_tool.py echo` against the stack's `port` with `clients`
/// concurrent clients of `size` bytes each, and checks that every client
/// got its bytes back.
pub(super) fn echo_clients(
    net: &TestNet,
    port: &str,
    size: usize,
    clients: usize,
    timeout: Duration,
) {
    let (size_s, clients_s) = (size.to_string(), clients.to_string());
    let out = tcp_tool(
        net,
        &[
            "echo",
            STACK_ADDR,
            port,
            "--size",
            &size_s,
            "--clients",
            &clients_s,
        ],
        timeout,
    )
    .expect_success("tcp_tool.py echo");
    let want = format!("{clients}/{clients} clients got their {size} bytes back");
    assert!(out.stdout.contains(&want), "{}", out.stdout);
}

/// [`echo_clients`] on the echo port (30 s at most), then stops the stack
/// and checks it stopped cleanly; returns how it stopped.
fn echo_then_stop(net: &mut TestNet, size: usize, clients: usize) -> Stopped {
    echo_clients(
        net,
        &ECHO_PORT.to_string(),
        size,
        clients,
        Duration::from_secs(30),
    );
    let stopped = net.stop();
    assert_stopped_cleanly(&stopped);
    stopped
}

/// The port in a `local port N` line that tcp_tool.py prints.
fn local_port(stdout: &str) -> u16 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("local port "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `local port N` line in:\n{stdout}"))
}

/// The state transitions the stack logged for one connection, in order, as
/// `FROM -> TO`. The stack names a connection `REMOTE -> LOCAL`, e.g.
/// `10.0.0.1:40000 -> 10.0.0.2:7 SYN-RCVD -> ESTABLISHED`.
fn transitions(log: &str, conn: &str) -> Vec<String> {
    let prefix = format!("{conn} ");
    log.lines()
        .filter_map(|l| l.split_once("] ").map(|(_, msg)| msg))
        .filter_map(|msg| msg.strip_prefix(&prefix))
        .filter(|rest| rest.contains(" -> "))
        .map(str::to_string)
        .collect()
}

/// Polls the stack's log until `conn` has logged `transition`; returns the
/// log, or panics with it after `timeout`.
fn wait_for_transition(net: &TestNet, conn: &str, transition: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = net.log();
        if transitions(&log, conn).iter().any(|t| t == transition) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{conn} did not log {transition:?} within {timeout:?}; its transitions: {:?}\n{}",
            transitions(&log, conn),
            net.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Panics unless every transition starts in the state the previous one
/// ended in.
fn assert_chained(path: &[String]) {
    for pair in path.windows(2) {
        let to = pair[0].split(" -> ").nth(1);
        let from = pair[1].split(" -> ").next();
        assert_eq!(to, from, "transitions do not chain: {path:?}");
    }
}

/// The HTTP service's `/bytes/N` body: byte i is i mod 251.
fn bytes_pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The SHA-256 of a file, by `sha256sum`.
pub(super) fn sha256_file(path: &Path) -> String {
    let out = run_with_timeout(
        std::process::Command::new("sha256sum").arg(path),
        Duration::from_secs(30),
    )
    .expect_success("sha256sum");
    out.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Number of frames in `pcap` that match the display `filter`.
fn count_frames(pcap: &Path, filter: &str) -> usize {
    tshark(pcap, &["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Checks a capture of TCP traffic with tshark, checksum validation on: no
/// malformed packet, no expert error (bad checksums are errors), and every
/// IPv4 header and TCP segment has a checksum tshark verified as good.
/// Returns the number of TCP segments, which must be at least `min_tcp`;
/// with offload a super-segment counts as the MSS-sized segments it stands
/// for (its length over 1460, the MSS at MTU 1500).
///
/// One exception, for the kernel's segments only: Linux now and then sends
/// a TCP checksum of 0xFFFF where 0x0000 is computed. Both are zero in
/// ones' complement and verify the same way (RFC 1624 §3; the stack accepts
/// them), but tshark marks them bad. The stack's own segments get no such
/// allowance.
pub(super) fn assert_clean_tcp_capture(pcap: &Path, min_tcp: usize) -> usize {
    /// Wireshark's PI_ERROR severity; PI_WARN (0x600000) and below are
    /// analysis notes such as retransmissions or zero windows.
    const EXPERT_ERROR: u64 = 0x0080_0000;
    let out = tshark(
        pcap,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.number",
            "-e",
            "ip.src",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-e",
            "tcp.checksum",
            "-e",
            "tcp.len",
            "-e",
            "_ws.expert.message",
        ],
    );
    let mut problems = Vec::new();
    let mut tcp = 0;
    for line in out.stdout.lines() {
        let f: Vec<&str> = line.splitn(9, '|').collect();
        let [frame, src, malformed, severity, ip_status, tcp_status, tcp_checksum, tcp_len, message] =
            f[..]
        else {
            problems.push(format!("unexpected tshark line {line:?}"));
            continue;
        };
        let kernel_negative_zero =
            src == "10.0.0.1" && tcp_status == "0" && tcp_checksum == "0xffff";
        let worst = severity
            .split(',')
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        if !malformed.is_empty() || (worst >= EXPERT_ERROR && !kernel_negative_zero) {
            problems.push(format!("frame {frame} from {src}: {message}"));
        }
        if ip_status != "1" {
            problems.push(format!(
                "frame {frame} from {src}: IPv4 checksum status {ip_status:?}"
            ));
        }
        if !tcp_status.is_empty() {
            tcp += tcp_len.parse::<usize>().unwrap_or(0).div_ceil(1460).max(1);
            if tcp_status != "1" && !kernel_negative_zero {
                problems.push(format!(
                    "frame {frame} from {src}: TCP checksum {tcp_checksum}, status {tcp_status:?}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "tshark flags {} packets in {}:\n{}",
        problems.len(),
        pcap.display(),
        problems.join("\n")
    );
    assert!(
        tcp >= min_tcp,
        "expected at least {min_tcp} TCP segments in {}, found {tcp}",
        pcap.display()
    );
    tcp
}

/// The stack stopped cleanly and rejected no segment for its checksum (the
/// kernel only sends good ones).
pub(super) fn assert_stopped_cleanly(stopped: &Stopped) {
    assert!(
        stopped.status.success(),
        "tunstack exited {}:\n{}",
        stopped.status,
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("tcp:", "bad checksums"),
        0,
        "{}",
        stopped.stdout
    );
}

#[test]
fn curl_gets_the_status_page_and_10_mb_with_the_right_sha256() {
    let Some(mut net) = TestNet::start(&["curl", "tshark"]) else {
        return;
    };
    let page = net.dir.join("page.html");
    let page_s = page.to_string_lossy();
    let url = format!("http://{STACK_ADDR}/");
    let out = net
        .exec(
            &[
                "curl",
                "-sS",
                "-m",
                "10",
                "-o",
                &page_s,
                "-w",
                "%{http_code}",
                &url,
            ],
            Duration::from_secs(15),
        )
        .expect_success("curl /");
    assert_eq!(out.stdout, "200", "curl / status");
    let html = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(html.contains("tunstack"), "status page:\n{html}");
    // The page lists the connection it is served on.
    assert!(
        html.contains("ESTABLISHED"),
        "no live connection in the page:\n{html}"
    );

    const SIZE: usize = 10_000_000;
    let body = net.dir.join("bytes.bin");
    let body_s = body.to_string_lossy();
    let url = format!("http://{STACK_ADDR}/bytes/{SIZE}");
    let started = Instant::now();
    let out = net
        .exec(
            &[
                "curl",
                "-sS",
                "-m",
                "30",
                "-o",
                &body_s,
                "-w",
                "%{http_code}",
                &url,
            ],
            Duration::from_secs(35),
        )
        .expect_success("curl /bytes/10000000");
    let took = started.elapsed();
    assert_eq!(out.stdout, "200", "curl /bytes status");
    let expected = bytes_pattern(SIZE);
    let expected_path = net.dir.join("expected.bin");
    std::fs::write(&expected_path, &expected).unwrap_or_else(|e| panic!("writing: {e}"));
    let got = std::fs::read(&body).unwrap_or_default();
    assert_eq!(got.len(), SIZE, "bytes received");
    if let Some(i) = got.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("byte {i} differs: got {}, expected {}", got[i], expected[i]);
    }
    assert_eq!(
        sha256_file(&body),
        sha256_file(&expected_path),
        "SHA-256 of the download"
    );
    eprintln!("10 MB over tunstack's TCP in {took:?}");

    let stopped = net.stop();
    assert_stopped_cleanly(&stopped);
    // 10 MB is ~6850 full segments from the stack alone.
    assert_clean_tcp_capture(&net.pcap_path(), 6850);
}

/// Echoes 1 MB through the stack started with `stack_args` and returns
/// the capture's frame lengths (each TCP frame's `tcp.len`) and the
/// stack's super-segment counts (in, out) from its final counters; `None`
/// when the test is skipped.
fn echo_1_mb_with(stack_args: &[&str]) -> Option<(Vec<usize>, (u64, u64), std::path::PathBuf)> {
    let mut net = TestNet::start_with(&["python3", "tshark"], stack_args)?;
    let stopped = echo_then_stop(&mut net, 1_000_000, 1);
    let line = stopped
        .stdout
        .lines()
        .find(|l| l.starts_with("offload: on"))
        .unwrap_or_else(|| panic!("no `offload: on` line in:\n{}", stopped.stdout));
    // "offload: on, N super-segments in, M out, K unsupported dropped"
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{line}");
    let pcap = net.pcap_path();
    assert_clean_tcp_capture(&pcap, 2 * 685);
    let lens = tshark(&pcap, &["-Y", "tcp", "-T", "fields", "-e", "tcp.len"])
        .stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    Some((lens, (numbers[0], numbers[1]), pcap))
}

/// Offload (issue 11): with `--offload on`, the kernel hands the stack TCP
/// super-segments and takes them from it, both counted; the capture holds
/// them whole (longer than the MSS), with checksums tshark verifies.
#[test]
fn with_offload_super_segments_cross_the_tun_both_ways() {
    let Some((lens, (seg_in, seg_out), pcap)) = echo_1_mb_with(&["--offload", "on"]) else {
        return; // skipped
    };
    assert!(
        seg_in > 0 && seg_out > 0,
        "super-segments in {seg_in}, out {seg_out}"
    );
    let longest = lens.iter().max().copied().unwrap_or(0);
    assert!(
        longest > 1460,
        "no super-segment in {} (longest TCP payload {longest})",
        pcap.display()
    );
}

/// With `--pcap-segmented`, the same traffic is recorded as the wire would
/// carry it: no segment longer than the MSS, every checksum good.
#[test]
fn with_offload_and_pcap_segmented_the_capture_shows_mss_sized_segments() {
    let Some((lens, (_, seg_out), pcap)) = echo_1_mb_with(&["--offload", "on", "--pcap-segmented"])
    else {
        return; // skipped
    };
    assert!(seg_out > 0, "the stack sent no super-segments");
    assert!(
        lens.iter().all(|&l| l <= 1460),
        "a segment longer than the MSS in {}: {:?}",
        pcap.display(),
        lens.iter()
            .filter(|&&l| l > 1460)
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// SACK (RFC 2018) with the kernel: with an incoming data packet lost
/// (`--drop-rx`), the stack's ACKs report the data it holds beyond the hole
/// in SACK blocks (tshark reads `tcp.options.sack_le` in segments from the
/// stack), and the echo still comes back byte-exact.
#[test]
fn a_lost_segment_is_reported_to_the_kernel_in_sack_blocks() {
    let Some(mut net) = TestNet::start_with(
        &["python3", "tshark"],
        &["--drop-rx", "6", "--offload", "off"],
    ) else {
        return;
    };
    echo_then_stop(&mut net, 1_000_000, 1);
    let pcap = net.pcap_path();
    assert_clean_tcp_capture(&pcap, 2 * 685);
    // The SYNs agreed on SACK, and the stack's ACKs carried blocks.
    let sack_perm = tshark(
        &pcap,
        &[
            "-Y",
            "tcp.flags.syn == 1 && tcp.options.sack_perm",
            "-T",
            "fields",
            "-e",
            "ip.src",
        ],
    );
    let offered: Vec<&str> = sack_perm.stdout.lines().collect();
    assert!(
        offered.contains(&"10.0.0.1") && offered.contains(&"10.0.0.2"),
        "SACK-permitted on the SYNs from: {offered:?}"
    );
    let blocks = tshark(
        &pcap,
        &[
            "-Y",
            "ip.src == 10.0.0.2 && tcp.options.sack_le",
            "-T",
            "fields",
            "-e",
            "tcp.options.sack_le",
        ],
    );
    assert!(
        blocks.stdout.lines().count() > 0,
        "no SACK blocks from the stack in {}",
        pcap.display()
    );
}

/// RFC 7323 with the kernel: both SYNs offer timestamps, and every segment
/// the stack sends after carries them (tshark reads `tsval` and `tsecr`),
/// its echoes being TSvals the kernel sent.
#[test]
fn timestamps_are_agreed_with_the_kernel_and_carried_by_every_segment() {
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    echo_then_stop(&mut net, 200_000, 1);
    let pcap = net.pcap_path();
    let ts = ["tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr"];
    let fields = |filter: &str| tshark_fields(&pcap, filter, &ts);
    let syns = fields("tcp.flags.syn == 1 && tcp.options.timestamp.tsval");
    assert_eq!(syns.len(), 2, "timestamps on both SYNs: {syns:?}");
    let ours = fields("ip.src == 10.0.0.2 && tcp.flags.reset == 0");
    // SYN-ACK, data (super-segments with offload), FIN at least.
    assert!(ours.len() >= 4, "{} segments from the stack", ours.len());
    let kernel_tsvals: std::collections::HashSet<String> = fields("ip.src == 10.0.0.1")
        .into_iter()
        .filter_map(|f| f.first().cloned())
        .collect();
    for f in &ours {
        assert!(
            f.len() == 2 && !f[0].is_empty(),
            "a segment from the stack without timestamps: {f:?} in {}",
            pcap.display()
        );
        assert!(
            kernel_tsvals.contains(&f[1]),
            "TSecr {} is no TSval the kernel sent",
            f[1]
        );
    }
}

#[test]
fn tcp_echo_of_1_mb_sent_and_received_at_once_is_byte_exact() {
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    echo_then_stop(&mut net, 1_000_000, 1);
    assert_clean_tcp_capture(&net.pcap_path(), 2 * 685);
}

#[test]
fn fifty_concurrent_tcp_echo_clients_all_get_their_bytes_back() {
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    echo_then_stop(&mut net, 20_000, 50);
    // Every client had its own connection, each with a full close.
    let closed = net
        .log()
        .lines()
        .filter(|l| l.ends_with(":7 LAST-ACK -> CLOSED"))
        .count();
    assert_eq!(closed, 50, "connections that closed cleanly");
    assert_clean_tcp_capture(&net.pcap_path(), 50 * 20);
}

/// Multi-queue (issue 11): `--queues 2` on a multi-queue TUN. Fifty echo
/// clients spread over both queues and all get their bytes back; ping
/// (with fragments), UDP echo and the status page work whichever queue
/// their packets take; the stack says how much each queue read; the one
/// capture all shards write is clean.
#[test]
fn with_two_queues_clients_are_served_on_both() {
    let Some(mut net) =
        TestNet::start_multi_queue(&["python3", "tshark", "ping", "curl"], &["--queues", "2"])
    else {
        return;
    };
    echo_clients(
        &net,
        &ECHO_PORT.to_string(),
        20_000,
        50,
        Duration::from_secs(30),
    );
    let (ping, out) = net.ping(3, 4000);
    assert_eq!(ping.received, 3, "ping -s 4000:\n{}", out.stdout);
    let udp = net
        .udp_client(&[], ECHO_PORT, &["over", "two queues"])
        .expect_success("udp_client.py");
    assert_eq!(
        udp.stdout.lines().collect::<Vec<_>>(),
        ["over", "two queues"]
    );
    let page = net
        .exec(
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://10.0.0.2/",
            ],
            Duration::from_secs(10),
        )
        .expect_success("curl");
    assert_eq!(page.stdout.trim(), "200");
    let stopped = net.stop();
    assert_stopped_cleanly(&stopped);
    let line = stopped
        .stdout
        .lines()
        .find(|l| l.starts_with("queues: 2"))
        .unwrap_or_else(|| panic!("no `queues: 2` line in:\n{}", stopped.stdout));
    // "queues: 2, packets read A/B, handed over to their shard X/Y"
    let read: Vec<u64> = line
        .split("packets read ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .map(|r| r.split('/').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    assert_eq!(read.len(), 2, "{line}");
    assert!(read.iter().all(|&n| n > 0), "a queue read nothing: {line}");
    assert_clean_tcp_capture(&net.pcap_path(), 50 * 20);
}

#[test]
fn tunstack_connect_exchanges_data_with_a_kernel_server_and_closes_first() {
    let Some(net) = TestNet::new(&["python3", "tshark"]) else {
        return;
    };
    let port = "5000";
    let server = net.spawn_background(
        &["python3", TCP_TOOL, "serve", port, "--upper"],
        "listening",
    );
    // 24 KB: several segments each way.
    let input: String = (0..1000)
        .map(|i| format!("line {i:04} from tunstack\n"))
        .collect();
    let pcap = net.dir.join("connect.pcap");
    let pcap_s = pcap.to_string_lossy();
    let server_addr = format!("10.0.0.1:{port}");
    let out = net
        .exec_with_input(
            &[
                TUNSTACK,
                "connect",
                "--tun",
                "tun0",
                "--addr",
                STACK_ADDR,
                "--pcap",
                &pcap_s,
                "--msl-ms",
                "500",
                "--timeout",
                "5",
                &server_addr,
            ],
            &[("RUST_LOG", "debug")],
            input.as_bytes(),
            Duration::from_secs(20),
        )
        .expect_success("tunstack connect");
    assert!(
        out.stdout == input.to_uppercase(),
        "the server's reply differs: sent {} bytes, got {} back:\n{}",
        input.len(),
        out.stdout.len(),
        out.stderr
    );
    let served = server.wait(Duration::from_secs(10));
    assert!(
        served
            .stdout
            .contains(&format!("received {} bytes", input.len())),
        "server: {}\n{}",
        served.stdout,
        served.stderr
    );

    // The active open and the active close, from the stack's own log. The
    // process exits once the connection is in TIME-WAIT.
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(&format!("{server_addr} -> {STACK_ADDR}:")))
        .unwrap_or_else(|| panic!("no transitions logged:\n{}", out.stderr));
    let conn = line
        .split_once("] ")
        .map(|(_, msg)| msg.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let path = transitions(&out.stderr, &conn);
    assert_chained(&path);
    assert_eq!(
        path.first().map(String::as_str),
        Some("CLOSED -> SYN-SENT"),
        "{path:?}"
    );
    assert!(
        path.iter().any(|t| t == "SYN-SENT -> ESTABLISHED"),
        "{path:?}"
    );
    assert!(
        path.iter().any(|t| t == "ESTABLISHED -> FIN-WAIT-1"),
        "the stack closes first: {path:?}"
    );
    assert!(
        path.last().is_some_and(|t| t.ends_with(" -> TIME-WAIT")),
        "the stack ends in TIME-WAIT: {path:?}"
    );
    // At least the full-sized data segments each way, the handshake and
    // both FINs (how many pure ACKs there are depends on batching).
    assert_clean_tcp_capture(&pcap, 2 * input.len().div_ceil(1460) + 5);
}

#[test]
fn tutorial_tcp_client_chats_with_the_tcp_chat_server_example() {
    let Some(mut net) = TestNet::start_program(
        &["python3", "tshark"],
        &example_path("tcp_chat_server"),
        &[],
        &["--port", "8888", "--auto-reply", "--once"],
        |line| line.starts_with("waiting for a connection on"),
    ) else {
        return;
    };
    let out = net
        .exec_with_input(
            &["python3", TUTORIAL_TCP_CLIENT, STACK_ADDR, "8888"],
            &[],
            b"hello\nhow are you\nbye\n",
            Duration::from_secs(15),
        )
        .expect_success("tcp_client.py");
    // input() prints its `> ` prompt on stdout too.
    let replies: Vec<&str> = out
        .stdout
        .split("> ")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    assert_eq!(
        replies,
        ["echo: hello", "echo: how are you"],
        "{}",
        out.stdout
    );
    let stopped = net
        .wait_for_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("tcp_chat_server --once did not exit\n{}", net.diagnostics()));
    assert!(
        stopped.status.success(),
        "tcp_chat_server exited {}:\n{}",
        stopped.status,
        stopped.stdout
    );
    for said in ["connected by 10.0.0.1:", "conversation with 10.0.0.1:"] {
        assert!(stopped.stdout.contains(said), "{}", stopped.stdout);
    }
    // The client said bye and closed first: a clean four-way close.
    let log = net.log();
    assert!(log.contains(":8888 LAST-ACK -> CLOSED"), "{log}");
    assert_clean_tcp_capture(&net.pcap_path(), 10);
}

#[test]
fn keepalive_probes_an_idle_connection_and_the_kernel_acks_them() {
    let Some(mut net) = TestNet::start_with(&["python3", "tshark"], &["--keepalive", "300,200,3"])
    else {
        return;
    };
    tcp_tool(
        &net,
        &["idle", STACK_ADDR, &ECHO_PORT.to_string(), "1.3"],
        Duration::from_secs(10),
    )
    .expect_success("tcp_tool.py idle");
    assert_stopped_cleanly(&net.stop());
    let pcap = net.pcap_path();
    let probes = count_frames(&pcap, "tcp.analysis.keep_alive && ip.src == 10.0.0.2");
    // Linux rate-limits its ACKs to out-of-window segments (such as a probe)
    // to one per 500 ms (tcp_invalid_ratelimit), so not every probe is ACKed.
    let acks = count_frames(&pcap, "tcp.analysis.keep_alive_ack && ip.src == 10.0.0.1");
    assert!(
        probes >= 2,
        "expected >= 2 keep-alive probes in 1.3 s idle, found {probes}"
    );
    assert!(acks >= 1, "no ACK to a keep-alive probe ({probes} probes)");
    assert_clean_tcp_capture(&pcap, 10);
}

#[test]
fn time_wait_lasts_twice_the_msl_when_the_stack_closes_first() {
    let Some(mut net) = TestNet::start_with(&["python3", "tshark"], &["--msl-ms", "500"]) else {
        return;
    };
    const TIME_WAIT: Duration = Duration::from_millis(1000);
    // HTTP/1.0 without keep-alive: the server closes first.
    let client = net.spawn_background(
        &[
            "python3",
            TCP_TOOL,
            "http",
            STACK_ADDR,
            &HTTP_PORT.to_string(),
            "/bytes/10",
            "--http10",
        ],
        "local port ",
    );
    let port = local_port(&client.stdout_so_far());
    let conn = format!("10.0.0.1:{port} -> {STACK_ADDR}:{HTTP_PORT}");
    // Poll the log (every 5 ms) for the start and the end of TIME-WAIT.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entered_at = loop {
        let path = transitions(&net.log(), &conn);
        if path.iter().any(|t| t.ends_with(" -> TIME-WAIT")) {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "no TIME-WAIT for {conn}: {path:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // Meanwhile the connection table shows it.
    let before = net.stack_stdout().len();
    net.send_to_stack("ss");
    let left_at = loop {
        if transitions(&net.log(), &conn)
            .iter()
            .any(|t| t == "TIME-WAIT -> CLOSED")
        {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "TIME-WAIT of {conn} never ended\n{}",
            net.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let lasted = left_at - entered_at;
    client
        .wait(Duration::from_secs(10))
        .expect_success("tcp_tool.py http");
    let row = net.wait_for_stdout(
        before,
        |l| l.starts_with("TIME-WAIT") && l.contains(&format!("10.0.0.1:{port}")),
        Duration::from_secs(5),
    );
    assert!(
        row.is_some(),
        "`ss` did not list the connection in TIME-WAIT:\n{}",
        net.stack_stdout()[before..].join("\n")
    );
    // The start is seen up to one poll (5 ms, more on a loaded machine)
    // late; the end is not seen early. Allow 50 ms: a TIME-WAIT of one MSL
    // (500 ms) still fails.
    assert!(
        lasted >= TIME_WAIT - Duration::from_millis(50),
        "TIME-WAIT lasted {lasted:?}, expected 2 x MSL = {TIME_WAIT:?}"
    );
    assert!(
        lasted < Duration::from_secs(3),
        "TIME-WAIT lasted {lasted:?}, expected about {TIME_WAIT:?}"
    );
    eprintln!("TIME-WAIT with --msl-ms 500 lasted {lasted:?}");
    assert_stopped_cleanly(&net.stop());
    assert_clean_tcp_capture(&net.pcap_path(), 8);
}

#[test]
fn debug_log_tells_the_story_of_a_connection_the_client_closes_first() {
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    let out = tcp_tool(
        &net,
        &[
            "chat",
            STACK_ADDR,
            &ECHO_PORT.to_string(),
            "hello",
            "tunstack",
        ],
        Duration::from_secs(10),
    )
    .expect_success("tcp_tool.py chat");
    let conn = format!(
        "10.0.0.1:{} -> {STACK_ADDR}:{ECHO_PORT}",
        local_port(&out.stdout)
    );
    let log = wait_for_transition(&net, &conn, "LAST-ACK -> CLOSED", Duration::from_secs(5));
    assert_eq!(
        transitions(&log, &conn),
        [
            "LISTEN -> SYN-RCVD",
            "SYN-RCVD -> ESTABLISHED",
            "ESTABLISHED -> CLOSE-WAIT",
            "CLOSE-WAIT -> LAST-ACK",
            "LAST-ACK -> CLOSED",
        ],
        "{log}"
    );
    assert_stopped_cleanly(&net.stop());
    assert_clean_tcp_capture(&net.pcap_path(), 10);
}

#[test]
fn debug_log_tells_the_story_of_a_connection_the_stack_closes_first() {
    let Some(mut net) = TestNet::start_with(&["python3", "tshark"], &["--msl-ms", "250"]) else {
        return;
    };
    let out = tcp_tool(
        &net,
        &[
            "http",
            STACK_ADDR,
            &HTTP_PORT.to_string(),
            "/bytes/100",
            "--http10",
        ],
        Duration::from_secs(10),
    )
    .expect_success("tcp_tool.py http");
    let conn = format!(
        "10.0.0.1:{} -> {STACK_ADDR}:{HTTP_PORT}",
        local_port(&out.stdout)
    );
    let log = wait_for_transition(&net, &conn, "TIME-WAIT -> CLOSED", Duration::from_secs(5));
    let path = transitions(&log, &conn);
    assert_chained(&path);
    assert_eq!(
        path[..3],
        [
            "LISTEN -> SYN-RCVD",
            "SYN-RCVD -> ESTABLISHED",
            "ESTABLISHED -> FIN-WAIT-1",
        ],
        "{log}"
    );
    assert!(
        path.iter().any(|t| t.ends_with(" -> TIME-WAIT")),
        "{path:?}"
    );
    assert_eq!(
        path.last().map(String::as_str),
        Some("TIME-WAIT -> CLOSED"),
        "{path:?}"
    );
    assert_stopped_cleanly(&net.stop());
    // SYN, SYN-ACK, ACK, request, response with FIN, the client's FIN and
    // our ACK at the least (the response may share segments).
    assert_clean_tcp_capture(&net.pcap_path(), 7);
}

#[test]
fn tcp_connect_to_a_closed_port_is_refused_with_a_rst() {
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    let out = tcp_tool(
        &net,
        &["refused", STACK_ADDR, &CLOSED_TCP_PORT.to_string()],
        Duration::from_secs(10),
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected ConnectionRefusedError (exit 2):\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("ConnectionRefusedError"),
        "{}",
        out.stderr
    );
    let stopped = net.stop();
    assert_stopped_cleanly(&stopped);
    assert_eq!(
        stopped.counter("tcp:", "resets sent"),
        1,
        "{}",
        stopped.stdout
    );
    let pcap = net.pcap_path();
    // RFC 9293 §3.10.7.1: a SYN to a closed port gets <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>.
    let rst = tshark(
        &pcap,
        &[
            "-Y",
            "tcp.flags.reset == 1",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.flags.ack",
            "-e",
            "tcp.seq_raw",
        ],
    );
    let rows: Vec<Vec<&str>> = rst
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 1, "RSTs in the capture:\n{}", rst.stdout);
    assert_eq!(
        rows[0][..3],
        [STACK_ADDR, "1", "1"],
        "RST from the stack's port 1 with ACK set:\n{}",
        rst.stdout
    );
    assert_eq!(rows[0][3], "0", "the RST's sequence number");
    assert_clean_tcp_capture(&pcap, 2);
}

/// `ss -ti`'s chronographs against the kernel: a client with a small
/// receive buffer that waits half a second before reading holds the
/// stack's sender at its window. Once everything sent is acknowledged, the
/// stack's debug log sums the connection up, and the wait shows as
/// `rwnd_limited`.
#[test]
fn a_receiver_that_waits_shows_as_rwnd_limited_in_the_senders_summary() {
    let Some(net) = TestNet::start(&["python3"]) else {
        return;
    };
    let out = tcp_tool(
        &net,
        &[
            "bytes",
            STACK_ADDR,
            &HTTP_PORT.to_string(),
            "1000000",
            "--rcvbuf",
            "4096",
            "--pause",
            "0.5",
        ],
        Duration::from_secs(20),
    )
    .expect_success("tcp_tool.py bytes");
    let conn = format!(
        "10.0.0.1:{} -> {STACK_ADDR}:{HTTP_PORT}",
        local_port(&out.stdout)
    );
    let wanted = format!("{conn} everything sent was acknowledged: ");
    let deadline = Instant::now() + Duration::from_secs(5);
    let summary = loop {
        let log = net.log();
        if let Some(line) = log.lines().find_map(|l| l.split_once(&wanted)) {
            break line.1.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no summary for {conn}:\n{}",
            net.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(summary.contains(" busy:"), "{summary}");
    assert!(summary.contains(" rwnd_limited:"), "{summary}");
}
