//! Hostile traffic against the real stack binary on a TUN device in a
//! private network namespace (see `tests/support`): a SYN flood from a
//! phantom peer while real kernel clients connect, nmap's TCP scans, and
//! hostile IPv4 (TTL 0, overlapping fragments, fragments that never
//! complete). Every load is bounded in count and in time and stops by
//! itself; the packet crafters live in `tests/hostile/`.
//!
//! Each test checks real outcomes: what the clients got, the stack's exit
//! counters, its memory (`VmRSS` / `VmHWM` from `/proc/PID/status`), its
//! connection table (`ss` typed on its standard input), that it stops
//! cleanly on SIGINT, and that tshark finds nothing malformed among the
//! packets it sent.
//!
//! Needs root, `ip`, `/dev/net/tun`, `python3`, `tshark`, `ping` and `nmap`;
//! without them each test prints `SKIPPED ...` and passes, unless
//! `TUNSTACK_REQUIRE_NETNS=1` turns the skip into a failure. The tests here
//! run one at a time (a flood takes both cores of a small machine), and
//! they use the debug build of the stack with debug logging on, which is
//! what sets the flood rate the stack keeps up with (about 10,000 SYNs a
//! second on a busy 2-core machine).
//!
//! The stack survives floods faster than it can process thanks to SYN
//! cookies (RFC 4987 §3.6: a full SYN queue costs a flood its state, not
//! real clients their handshakes) and receive buffers allocated only when
//! data arrives (a half-open connection costs no buffer).

mod support;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use support::{tshark, Output, Stopped, TestNet, STACK_ADDR};

const SYN_FLOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/syn_flood.py");
const ECHO_CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/echo_clients.py");
const SEND_HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/send_hostile.py");

const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;
/// The listen backlog of the stack's services (the socket API's default,
/// Linux's somaxconn): the most half-open connections one listener holds.
const BACKLOG: usize = 4096;
/// The stack's resident memory must stay under this, in KiB.
const RSS_LIMIT_KB: u64 = 64 * 1024;
/// Incomplete datagrams the stack's reassembler holds at once
/// (`ReassemblyConfig::default().max_datagrams`).
const MAX_REASSEMBLIES: u64 = 256;

/// The tests here run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A field of `/proc/PID/status` in KiB, e.g. `VmRSS` or `VmHWM` (its peak).
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn stack_pid(net: &TestNet) -> u32 {
    net.stack_pid()
        .unwrap_or_else(|| panic!("the stack is not running\n{}", net.diagnostics()))
}

fn rss_kb(net: &TestNet, field: &str) -> u64 {
    let pid = stack_pid(net);
    proc_status_kb(pid, field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Packets the kernel dropped on their way to the stack because the TUN's
/// queue was full (tun0's TX dropped counter: the stack fell behind).
fn tun_tx_dropped(net: &TestNet) -> u64 {
    let out = net
        .exec(
            &["cat", "/sys/class/net/tun0/statistics/tx_dropped"],
            Duration::from_secs(5),
        )
        .expect_success("reading tun0's tx_dropped");
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("tx_dropped {:?}: {e}", out.stdout))
}

/// The stack's connection table (`ss`), one row a connection.
fn connection_table(net: &mut TestNet) -> Vec<String> {
    let before = net.stack_stdout().len();
    // `help` right after: its one line ends the table.
    net.send_to_stack("ss");
    net.send_to_stack("help");
    net.wait_for_stdout(
        before,
        |l| l.starts_with("commands:"),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| panic!("no answer to `ss` + `help`\n{}", net.diagnostics()));
    net.stack_stdout()[before..]
        .iter()
        .skip_while(|l| !l.starts_with("State "))
        .skip(1)
        .take_while(|l| !l.starts_with("commands:"))
        .filter(|l| !l.starts_with("(no connections)"))
        .cloned()
        .collect()
}

/// The stack's `ip: N packets in, M out, ...` counter M, live (`stats`).
fn packets_out_so_far(net: &mut TestNet) -> u64 {
    let before = net.stack_stdout().len();
    net.send_to_stack("stats");
    let line = net
        .wait_for_stdout(before, |l| l.starts_with("ip:"), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no answer to `stats`\n{}", net.diagnostics()));
    line.split(',')
        .map(str::trim)
        .find_map(|item| item.strip_suffix(" out")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `N out` in {line:?}"))
}

/// Stops the stack and keeps what it printed from `tunstack: stopped` on:
/// its exit counters, not those a `stats` command printed earlier.
fn stop(net: &mut TestNet) -> Stopped {
    let stopped = net.stop();
    let lines: Vec<&str> = stopped.stdout.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("tunstack: stopped"))
        .unwrap_or_else(|| panic!("no `tunstack: stopped` line:\n{}", stopped.stdout));
    Stopped {
        status: stopped.status,
        stdout: lines[from..].join("\n"),
    }
}

/// What `echo_clients.py` reported: `ok K/N failed F connect-ms ...`.
#[derive(Debug)]
struct Clients {
    ok: u64,
    total: u64,
    summary: String,
    failures: String,
}

impl Clients {
    fn parse(out: &Output) -> Clients {
        let summary = out
            .stdout
            .lines()
            .find(|l| l.starts_with("ok "))
            .unwrap_or_else(|| {
                panic!(
                    "no summary from echo_clients.py:\n{}\n{}",
                    out.stdout, out.stderr
                )
            })
            .to_string();
        let (ok, total) = summary
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.split_once('/'))
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .unwrap_or_else(|| panic!("cannot parse {summary:?}"));
        Clients {
            ok,
            total,
            summary,
            failures: out.stderr.clone(),
        }
    }

    fn percent(&self) -> f64 {
        100.0 * self.ok as f64 / self.total.max(1) as f64
    }
}

/// Runs `echo_clients.py` in the foreground.
fn echo_clients(net: &TestNet, total: u32) -> Clients {
    let total = total.to_string();
    let out = net
        .exec(
            &[
                "python3",
                ECHO_CLIENTS,
                STACK_ADDR,
                &ECHO_PORT.to_string(),
                "--total",
                &total,
                "--parallel",
                "4",
                "--timeout",
                "4",
            ],
            Duration::from_secs(60),
        )
        .expect_success("echo_clients.py");
    Clients::parse(&out)
}

/// What one SYN flood with clients connecting through it showed.
#[derive(Debug)]
struct Flood {
    /// SYNs the flooder wrote to tun0.
    sent: u64,
    /// Of those, dropped by the kernel because tun0's queue was full.
    queue_dropped: u64,
    summary: String,
    /// The real clients during the flood.
    during: Clients,
    /// The real clients after it.
    after: Clients,
    /// VmRSS before the flood and the largest seen while it ran, and VmHWM at the end (KiB).
    rss_before: u64,
    rss_max: u64,
    hwm: u64,
    /// The connection table, taken halfway through the flood.
    table: Vec<String>,
    stopped: Stopped,
    took: Duration,
}

/// Floods `ports` from the phantom peer at `rate` SYNs a second (0: as
/// fast as python can) for `seconds`, at most 200,000 SYNs, while
/// `clients` real kernel clients connect to the echo port, spread over
/// the flood; then runs 50 more clients and stops the stack.
fn flood_with_clients(
    net: &mut TestNet,
    ports: &str,
    rate: u32,
    seconds: u32,
    clients: u32,
) -> Flood {
    let started = Instant::now();
    let rss_before = rss_kb(net, "VmRSS");
    let dropped_before = tun_tx_dropped(net);
    let (rate_s, seconds_s) = (rate.to_string(), seconds.to_string());
    let flood = net.spawn_background(
        &[
            "python3",
            SYN_FLOOD,
            "tun0",
            ports,
            "--count",
            "200000",
            "--seconds",
            &seconds_s,
            "--rate",
            &rate_s,
        ],
        "flooding",
    );
    // The clients keep coming for all but the last 2 s of the flood.
    let (total_s, spread_s) = (clients.to_string(), seconds.saturating_sub(2).to_string());
    let during = net.spawn_background(
        &[
            "python3",
            ECHO_CLIENTS,
            STACK_ADDR,
            &ECHO_PORT.to_string(),
            "--total",
            &total_s,
            "--parallel",
            "4",
            "--seconds",
            &spread_s,
            "--timeout",
            "4",
        ],
        "clients started",
    );
    // Sample the stack's memory every 100 ms, and take its connection
    // table halfway through.
    let flood_ends = Instant::now() + Duration::from_secs(u64::from(seconds));
    let halfway = Instant::now() + Duration::from_secs(u64::from(seconds)) / 2;
    let mut rss_max = rss_before;
    let mut table = None;
    while Instant::now() < flood_ends {
        rss_max = rss_max.max(rss_kb(net, "VmRSS"));
        if table.is_none() && Instant::now() >= halfway {
            table = Some(connection_table(net));
        }
        thread::sleep(Duration::from_millis(100));
    }
    let table = table.unwrap_or_else(|| connection_table(net));
    let flood_out = flood
        .wait(Duration::from_secs(30))
        .expect_success("syn_flood.py");
    let during = Clients::parse(&during.wait(Duration::from_secs(60)));
    let queue_dropped = tun_tx_dropped(net) - dropped_before;
    let summary = flood_out
        .stdout
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no summary from syn_flood.py:\n{}", flood_out.stdout))
        .to_string();
    let sent = summary
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {summary:?}"));
    let after = echo_clients(net, 50);
    let hwm = rss_kb(net, "VmHWM");
    let stopped = stop(net);
    Flood {
        sent,
        queue_dropped,
        summary,
        during,
        after,
        rss_before,
        rss_max,
        hwm,
        table,
        stopped,
        took: started.elapsed(),
    }
}

impl Flood {
    fn report(&self) -> String {
        format!(
            "flood: {} ({} dropped by the full TUN queue); real clients during the flood: {} ({:.1} %), after: {}; \
             VmRSS {} KiB before, max {} KiB during, VmHWM {} KiB; {} connections in `ss` halfway; took {:.1?}",
            self.summary,
            self.queue_dropped,
            self.during.summary,
            self.during.percent(),
            self.after.summary,
            self.rss_before,
            self.rss_max,
            self.hwm,
            self.table.len(),
            self.took
        )
    }

    /// The flood reached the stack, the stack stayed within its bounds and
    /// served every client after it, and stopped cleanly.
    fn assert_bounded(&self, listeners: usize) {
        let report = self.report();
        let s = &self.stopped;
        assert!(
            s.status.success(),
            "tunstack exited {}:\n{}",
            s.status,
            s.stdout
        );
        // Every SYN the stack got past a full SYN queue was answered with a
        // SYN cookie (or dropped); allow a little for the random source
        // ports that hit a live half-open connection instead.
        let delivered = self.sent - self.queue_dropped;
        let past_the_queue = delivered.saturating_sub((BACKLOG * listeners) as u64);
        let turned = s.counter("tcp:", "SYN cookies sent") + s.counter("tcp:", "SYNs dropped");
        assert!(
            turned * 10 >= past_the_queue * 9,
            "{delivered} flood SYNs reached the stack but only {turned} got cookies or were dropped\n{report}\n{}",
            s.stdout
        );
        assert!(
            self.rss_max < RSS_LIMIT_KB && self.hwm < RSS_LIMIT_KB,
            "the stack's memory grew past {RSS_LIMIT_KB} KiB\n{report}"
        );
        let half_open = self
            .table
            .iter()
            .filter(|r| r.starts_with("SYN-RCVD"))
            .count();
        assert!(
            half_open <= BACKLOG * listeners,
            "{half_open} half-open connections, backlog {BACKLOG} x {listeners}\n{report}\n{}",
            self.table.join("\n")
        );
        // The flood filled the SYN queue (so the bound was really tested),
        // and nothing else piled up: a few real clients at most.
        assert!(
            half_open >= BACKLOG / 2,
            "only {half_open} half-open connections halfway through the flood\n{report}"
        );
        assert!(
            self.table.len() <= BACKLOG * listeners + 16,
            "{} connections in the table\n{report}\n{}",
            self.table.len(),
            self.table.join("\n")
        );
        assert_eq!(
            self.after.ok, self.after.total,
            "clients after the flood failed:\n{}\n{report}",
            self.after.failures
        );
    }
}

/// tshark finds no malformed packet, expert error or bad checksum among the
/// packets the stack sent; returns how many it sent (at least `min`).
fn assert_stack_sent_nothing_malformed(pcap: &Path, min: usize) -> usize {
    let checks = [
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ];
    let mut args = checks.to_vec();
    args.extend([
        "-Y",
        "ip.src == 10.0.0.2",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "frame.number",
        "-e",
        "_ws.malformed",
        "-e",
        "_ws.expert.severity",
        "-e",
        "ip.checksum.status",
        "-e",
        "tcp.checksum.status",
        "-e",
        "udp.checksum.status",
        "-e",
        "icmp.checksum.status",
        "-e",
        "_ws.expert.message",
    ]);
    let out = tshark(pcap, &args);
    /// Wireshark's PI_ERROR severity (warnings and notes are TCP analysis).
    const EXPERT_ERROR: u64 = 0x0080_0000;
    let mut problems = Vec::new();
    let mut sent = 0;
    for line in out.stdout.lines() {
        sent += 1;
        let f: Vec<&str> = line.splitn(8, '|').collect();
        let [frame, malformed, severity, ip, tcp, udp, icmp, message] = f[..] else {
            problems.push(format!("unexpected tshark line {line:?}"));
            continue;
        };
        let worst = severity
            .split(',')
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        // ICMP errors quote the offending packet, whose checksums tshark
        // checks too: any status that is not Good (1) counts.
        let bad_checksum = [ip, tcp, udp, icmp]
            .iter()
            .any(|s| s.split(',').any(|v| !v.is_empty() && v != "1"));
        if !malformed.is_empty() || worst >= EXPERT_ERROR || bad_checksum {
            problems.push(format!(
                "frame {frame}: {message} (checksum status ip {ip:?} tcp {tcp:?} udp {udp:?} icmp {icmp:?})"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "tshark flags {} packets the stack sent, in {}:\n{}",
        problems.len(),
        pcap.display(),
        problems.join("\n")
    );
    assert!(
        sent >= min,
        "expected at least {min} packets from the stack in {}, found {sent}",
        pcap.display()
    );
    sent
}

#[test]
fn syn_flood_the_stack_keeps_up_with_locks_out_no_real_client() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    // 4,000 SYNs a second for 8 s (32,000): the 4096-entry SYN queue is
    // full after a second, and from then on every SYN is answered with a
    // cookie, while 300 real clients connect, 4 at a time. The debug build
    // keeps up (no queue drops on tun0).
    let flood = flood_with_clients(&mut net, "7", 4000, 8, 300);
    eprintln!("{}", flood.report());
    flood.assert_bounded(1);
    assert!(
        flood.sent >= 16_000,
        "the flooder fell short: {}",
        flood.summary
    );
    assert!(
        flood.during.ok * 100 >= flood.during.total * 99,
        "only {:.1} % of the real clients got through the flood (need 99 %):\n{}\n{}",
        flood.during.percent(),
        flood.during.failures,
        flood.report()
    );
    assert_stack_sent_nothing_malformed(&net.pcap_path(), 16_000);
}

#[test]
fn syn_flood_faster_than_the_stack_leaves_memory_and_the_table_bounded() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    // 25,000 SYNs a second for 6 s (150,000): more than the debug build
    // handles, so tun0's queue overflows. What must hold anyway: memory and
    // the table stay bounded, the stack serves everyone once it is over,
    // and it stops cleanly. How many clients get through during such a
    // flood is reported, and asserted by the ignored test below.
    let flood = flood_with_clients(&mut net, "7", 25_000, 6, 300);
    eprintln!("{}", flood.report());
    flood.assert_bounded(1);
    assert_stack_sent_nothing_malformed(&net.pcap_path(), 10_000);
}

/// A flood faster than the stack queues hundreds of SYNs in front of a real
/// client's ACK (tun0's queue holds 500). When the SYN queue evicted its
/// oldest half-open connection to make room, 4 to 33 % of the real clients
/// were reset; with SYN cookies (RFC 4987 §3.6) a full SYN queue answers
/// with a cookie and keeps no state, and the client's ACK opens the
/// connection whenever it comes.
#[test]
fn syn_flood_faster_than_the_stack_locks_out_no_real_client() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    let flood = flood_with_clients(&mut net, "7", 25_000, 6, 300);
    eprintln!("{}", flood.report());
    assert!(
        flood.during.ok * 100 >= flood.during.total * 99,
        "only {:.1} % of the real clients got through the flood (need 99 %):\n{}\n{}",
        flood.during.percent(),
        flood.during.failures,
        flood.report()
    );
}

/// A flood at the three TCP services (echo, discard, HTTP) fills three SYN
/// queues. When each half-open connection allocated its 256 KiB receive
/// buffer at the SYN, that held 3 x 128 x 256 KiB = 96 MiB resident; the
/// buffer is now allocated when data arrives.
#[test]
fn syn_flood_at_every_listener_keeps_memory_under_64_mb() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["python3", "tshark"]) else {
        return;
    };
    let flood = flood_with_clients(&mut net, "7,9,80", 6000, 4, 50);
    eprintln!("{}", flood.report());
    flood.assert_bounded(3);
}

/// A segment in the nmap capture.
#[derive(Debug)]
struct Seg {
    frame: u64,
    from_stack: bool,
    sport: u16,
    dport: u16,
    flags: u16,
    seq: u32,
    ack: u32,
    len: u32,
}

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const RST: u16 = 0x04;
const ACK: u16 = 0x10;

fn tcp_segments(pcap: &Path) -> Vec<Seg> {
    let out = tshark(
        pcap,
        &[
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "ip.src",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
            "-e",
            "tcp.seq_raw",
            "-e",
            "tcp.ack_raw",
            "-e",
            "tcp.len",
        ],
    );
    out.stdout
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let parse = |i: usize| -> u64 {
                let v = f.get(i).copied().unwrap_or_default().trim();
                let n = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => v.parse().ok(),
                };
                n.unwrap_or_else(|| panic!("field {i} of tshark line {line:?}"))
            };
            Seg {
                frame: parse(0),
                from_stack: f.get(1) == Some(&STACK_ADDR),
                sport: parse(2) as u16,
                dport: parse(3) as u16,
                flags: parse(4) as u16,
                seq: parse(5) as u32,
                ack: parse(6) as u32,
                len: parse(7) as u32,
            }
        })
        .collect()
}

/// nmap's verdict per port from its greppable output (`-oG -`).
fn nmap_ports(stdout: &str) -> Vec<(u16, String)> {
    let line = stdout
        .lines()
        .find(|l| l.contains("Ports: "))
        .unwrap_or_else(|| panic!("no Ports line in nmap's output:\n{stdout}"));
    let ports = line.split("Ports: ").nth(1).unwrap_or_default();
    let mut v: Vec<(u16, String)> = ports
        .split(", ")
        .filter_map(|p| {
            let mut f = p.split('/');
            Some((f.next()?.trim().parse().ok()?, f.next()?.to_string()))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn nmap_scans_get_the_answers_rfc_9293_prescribes() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["nmap", "tshark"]) else {
        return;
    };
    // (scan, nmap's source port for it, verdicts for ports 1, 2, 7, 80).
    // SYN and connect scans: open listeners, closed elsewhere. FIN, Xmas
    // (FIN+PSH+URG) and NULL probes carry neither SYN, ACK nor RST: a LISTEN
    // port drops them (RFC 9293 §3.10.7.2), so nmap cannot tell it from a
    // filter ("open|filtered"), while a closed port resets (§3.10.7.1).
    // ACK and Maimon (FIN+ACK) probes are reset by every port, LISTEN
    // included, so the ACK scan calls them all "unfiltered" and Maimon all
    // "closed". -sT goes through the kernel's connect(), which ignores -g.
    let open_filtered = "open|filtered";
    let scans: [(&str, u16, [&str; 4]); 7] = [
        ("-sS", 41001, ["closed", "closed", "open", "open"]),
        ("-sT", 41002, ["closed", "closed", "open", "open"]),
        (
            "-sF",
            41003,
            ["closed", "closed", open_filtered, open_filtered],
        ),
        (
            "-sX",
            41004,
            ["closed", "closed", open_filtered, open_filtered],
        ),
        (
            "-sN",
            41005,
            ["closed", "closed", open_filtered, open_filtered],
        ),
        (
            "-sA",
            41006,
            ["unfiltered", "unfiltered", "unfiltered", "unfiltered"],
        ),
        ("-sM", 41007, ["closed", "closed", "closed", "closed"]),
    ];
    let started = Instant::now();
    let mut results = Vec::new();
    for (scan, sport, expected) in scans {
        let t = Instant::now();
        let sport_s = sport.to_string();
        let out = net
            .exec(
                &[
                    "nmap", "-n", "-Pn", "-e", "tun0", "-T4", "-g", &sport_s, "-p", "1,2,7,80",
                    scan, "-oG", "-", STACK_ADDR,
                ],
                Duration::from_secs(60),
            )
            .expect_success(&format!("nmap {scan}"));
        let got = nmap_ports(&out.stdout);
        let want: Vec<(u16, String)> = [1, 2, ECHO_PORT, HTTP_PORT]
            .into_iter()
            .zip(expected.map(String::from))
            .collect();
        assert_eq!(got, want, "nmap {scan}:\n{}", out.stdout);
        results.push(format!("{scan} {:.1?}", t.elapsed()));
    }
    eprintln!(
        "nmap scans as RFC 9293 prescribes: {} (total {:.1?})",
        results.join(", "),
        started.elapsed()
    );
    let stopped = stop(&mut net);
    assert!(
        stopped.status.success(),
        "tunstack exited {}:\n{}",
        stopped.status,
        stopped.stdout
    );

    // Every probe of the raw scans (sent from the -g ports), and the SYNs of
    // the connect scan, got exactly the answer RFC 9293 prescribes, checked
    // segment by segment. An answer is what the stack sent back on the
    // probe's connection before nmap's next segment on it.
    let pcap = net.pcap_path();
    let segs = tcp_segments(&pcap);
    let raw_ports: Vec<u16> = scans.iter().map(|s| s.1).collect();
    let mut checked = 0;
    let mut problems = Vec::new();
    for (i, p) in segs.iter().enumerate() {
        let is_probe = !p.from_stack && (raw_ports.contains(&p.sport) || p.flags == SYN);
        if !is_probe {
            continue;
        }
        let answers: Vec<&Seg> = segs[i + 1..]
            .iter()
            .take_while(|s| s.from_stack || (s.sport, s.dport) != (p.sport, p.dport))
            .filter(|s| s.from_stack && (s.sport, s.dport) == (p.dport, p.sport))
            .collect();
        let listening = p.dport == ECHO_PORT || p.dport == HTTP_PORT;
        let seg_len = p.len + u32::from(p.flags & SYN != 0) + u32::from(p.flags & FIN != 0);
        // (flags, seq, ack) expected, None for silence; seq None: any.
        let expected: Option<(u16, Option<u32>, u32)> = if p.flags & RST != 0 {
            None // §3.10.7.1 / .2: a RST is never answered
        } else if p.flags & ACK != 0 {
            Some((RST, Some(p.ack), 0)) // <SEQ=SEG.ACK><CTL=RST>
        } else if !listening {
            Some((RST | ACK, Some(0), p.seq.wrapping_add(seg_len))) // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        } else if p.flags & SYN != 0 {
            Some((SYN | ACK, None, p.seq.wrapping_add(1))) // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>
        } else {
            None // LISTEN, no SYN, ACK or RST: dropped
        };
        let ok = match (expected, answers.as_slice()) {
            (None, []) => true,
            (Some((flags, seq, ack)), [a]) => {
                a.flags == flags && seq.is_none_or(|s| a.seq == s) && a.ack == ack && a.len == 0
            }
            _ => false,
        };
        checked += 1;
        if !ok {
            problems.push(format!(
                "probe frame {} {}->{} flags {:#05x} seq {} ack {}: expected {expected:?}, got {:?}",
                p.frame, p.sport, p.dport, p.flags, p.seq, p.ack, answers
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "answers that differ from RFC 9293 §3.10.7:\n{}",
        problems.join("\n")
    );
    // 7 scans x 4 ports, plus the retransmitted unanswered probes.
    assert!(checked >= 28, "only {checked} probes in the capture");
    let closed_resets = segs
        .iter()
        .filter(|s| s.from_stack && s.flags == RST | ACK && (s.sport == 1 || s.sport == 2))
        .count();
    // sS, sT, sF, sX, sN: 2 closed ports each.
    assert!(
        closed_resets >= 10,
        "{closed_resets} RST/ACKs from the closed ports in {}",
        pcap.display()
    );
    assert_eq!(
        stopped.counter("tcp:", "bad checksums"),
        0,
        "{}",
        stopped.stdout
    );
    assert_stack_sent_nothing_malformed(&pcap, 20);
}

/// Runs `send_hostile.py tun0 ARGS...`; returns the packets it sent.
fn send_hostile(net: &TestNet, args: &[&str], timeout: Duration) -> u64 {
    let mut argv = vec!["python3", SEND_HOSTILE, "tun0"];
    argv.extend_from_slice(args);
    let out = net.exec(&argv, timeout).expect_success("send_hostile.py");
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("sent "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Ping and a few TCP echo clients still get through.
fn assert_still_serving(net: &TestNet) {
    let (summary, out) = net.ping(3, 56);
    assert_eq!(
        (summary.received, summary.loss.as_str()),
        (3, "0%"),
        "ping:\n{}",
        out.stdout
    );
    let clients = echo_clients(net, 5);
    assert_eq!(
        clients.ok, 5,
        "TCP echo: {}\n{}",
        clients.summary, clients.failures
    );
}

#[test]
fn ttl_zero_and_overlapping_fragments_are_dropped_counted_and_never_answered() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["ping", "python3", "tshark"]) else {
        return;
    };
    // 20 each of an ICMP echo request, a UDP echo datagram and a TCP SYN
    // to the echo port, all with TTL 0.
    let ttl0 = send_hostile(&net, &["ttl0", "20"], Duration::from_secs(10));
    assert_eq!(ttl0, 60);
    // Three fragmented echo requests with an overlap that, tolerated,
    // would complete them.
    let overlap = send_hostile(&net, &["overlap"], Duration::from_secs(10));
    assert_eq!(overlap, 7);
    // Give the stack a moment, then check it sent nothing in answer.
    thread::sleep(Duration::from_millis(300));
    let quiet = packets_out_so_far(&mut net);
    assert_still_serving(&net);
    let stopped = stop(&mut net);
    assert!(
        stopped.status.success(),
        "tunstack exited {}:\n{}",
        stopped.status,
        stopped.stdout
    );
    assert_eq!(stopped.drop_count("ip-ttl-zero"), 60, "{}", stopped.stdout);
    assert_eq!(stopped.drop_count("frag-overlap"), 3, "{}", stopped.stdout);
    assert_eq!(
        quiet, 0,
        "the stack sent {quiet} packets in answer to TTL 0 packets or overlapping fragments"
    );
    // Only the 3 pings were answered, and nothing reached UDP or TCP but
    // the echo clients' segments.
    assert_eq!(
        stopped.counter("icmp:", "echo replies"),
        3,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("udp:", "datagrams in"),
        0,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("ip:", "reassembled"),
        0,
        "{}",
        stopped.stdout
    );
    let pcap = net.pcap_path();
    let answered = tshark(
        &pcap,
        &[
            "-Y",
            "ip.src == 10.0.0.2 && (icmp.ident == 0x7770 || icmp.ident == 0x0f0f)",
        ],
    );
    assert_eq!(
        answered.stdout.trim(),
        "",
        "the stack answered hostile packets"
    );
    assert_stack_sent_nothing_malformed(&pcap, 3);
}

#[test]
fn endless_fragments_are_bounded_and_the_stack_keeps_serving() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start(&["ping", "python3", "tshark"]) else {
        return;
    };
    let rss_before = rss_kb(&net, "VmRSS");
    let dropped_before = tun_tx_dropped(&net);
    // One datagram in 129 fragments: past the 128 a datagram may have.
    let too_many = send_hostile(&net, &["too-many", "129"], Duration::from_secs(10));
    // 5,000 first fragments of distinct datagrams that never complete,
    // 2,000 a second (2.5 s).
    let started = Instant::now();
    let endless = send_hostile(
        &net,
        &["endless", "5000", "--rate", "2000"],
        Duration::from_secs(20),
    );
    let took = started.elapsed();
    thread::sleep(Duration::from_millis(300));
    let queue_dropped = tun_tx_dropped(&net) - dropped_before;
    let rss_after = rss_kb(&net, "VmRSS");
    let hwm = rss_kb(&net, "VmHWM");
    assert_still_serving(&net);
    // Fragmented traffic from a real sender still gets through: new
    // datagrams evict the flood's old incomplete ones instead of being
    // refused until the 30 s reassembly timeout.
    let (summary, out) = net.ping(3, 8000);
    assert_eq!(
        (summary.received, summary.loss.as_str()),
        (3, "0%"),
        "8000-byte ping right after the fragment flood:\n{}",
        out.stdout
    );
    let stopped = stop(&mut net);
    eprintln!(
        "{too_many} fragments of one datagram, then {endless} endless first fragments in {took:.1?} \
         ({queue_dropped} dropped by the full TUN queue); VmRSS {rss_before} KiB before, \
         {rss_after} KiB after, VmHWM {hwm} KiB"
    );
    assert!(
        stopped.status.success(),
        "tunstack exited {}:\n{}",
        stopped.status,
        stopped.stdout
    );
    assert_eq!(stopped.drop_count("frag-too-many"), 1, "{}", stopped.stdout);
    // The reassembler holds 256 incomplete datagrams; each newer one evicts
    // an old one (its 30 s timeout does not run out during the test), and
    // nothing is refused. The first 8000-byte ping evicted one more, then
    // completed and left its slot to the next two.
    let delivered = endless - queue_dropped;
    assert_eq!(
        stopped.drop_count("frag-evicted"),
        delivered - MAX_REASSEMBLIES + 1,
        "{delivered} first fragments reached the stack\n{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.drop_count("frag-no-memory"),
        0,
        "{}",
        stopped.stdout
    );
    assert_eq!(
        stopped.counter("ip:", "reassembled"),
        3,
        "only the three 8000-byte pings are reassembled\n{}",
        stopped.stdout
    );
    assert!(
        hwm < RSS_LIMIT_KB && rss_after < rss_before + 16 * 1024,
        "memory: VmRSS {rss_before} KiB before, {rss_after} KiB after, VmHWM {hwm} KiB"
    );
    // Nothing answered the fragments: the only ICMP the stack sent were the
    // 3 echo replies.
    let pcap = net.pcap_path();
    let to_phantom = tshark(&pcap, &["-Y", "ip.dst == 10.0.0.3"]);
    assert_eq!(
        to_phantom.stdout.trim(),
        "",
        "the stack answered the fragments"
    );
    assert_stack_sent_nothing_malformed(&pcap, 3);
}

/// nmap's scans over IPv6 (`nmap -6`) get the verdicts they get over IPv4:
/// the same RFC 9293 §3.10.7 answers, from the TCP core that now serves
/// both families.
#[test]
fn nmap_6_scans_get_the_answers_rfc_9293_prescribes_over_ipv6() {
    let _one = one_at_a_time();
    let Some(mut net) = TestNet::start_ipv6(&["nmap", "tshark"], "tun0", &[]) else {
        return;
    };
    let open_filtered = "open|filtered";
    let scans: [(&str, [&str; 3]); 5] = [
        ("-sS", ["closed", "open", "open"]),
        ("-sT", ["closed", "open", "open"]),
        ("-sF", ["closed", open_filtered, open_filtered]),
        ("-sA", ["unfiltered", "unfiltered", "unfiltered"]),
        ("-sM", ["closed", "closed", "closed"]),
    ];
    for (scan, expected) in scans {
        let out = net
            .exec(
                &[
                    "nmap",
                    "-6",
                    "-n",
                    "-Pn",
                    "-e",
                    "tun0",
                    "-T4",
                    "-p",
                    "1,7,80",
                    scan,
                    "-oG",
                    "-",
                    support::STACK_ADDR6,
                ],
                Duration::from_secs(60),
            )
            .expect_success(&format!("nmap -6 {scan}"));
        let got = nmap_ports(&out.stdout);
        let want: Vec<(u16, String)> = [1, ECHO_PORT, HTTP_PORT]
            .into_iter()
            .zip(expected.map(String::from))
            .collect();
        assert_eq!(got, want, "nmap -6 {scan}:\n{}", out.stdout);
    }
    let stopped = stop(&mut net);
    assert!(
        stopped.status.success(),
        "tunstack exited {}:\n{}",
        stopped.status,
        stopped.stdout
    );
    let bad = tshark(
        &net.pcap_path(),
        &["-Y", "_ws.malformed || _ws.expert.severity >= error"],
    )
    .stdout;
    assert!(bad.trim().is_empty(), "tshark finds errors:\n{bad}");
}
