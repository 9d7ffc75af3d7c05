//! Shared helpers for the network-namespace integration tests.
//!
//! [`TestNet`] is the guard every test starts from: it creates a private
//! network namespace `tunstack-test-<pid>-<n>`, a TUN device `tun0` inside it
//! with the kernel side at 10.0.0.1/24, and runs the `tunstack` binary on it
//! (the stack is 10.0.0.2) with a pcap in a temporary directory. Its `Drop`
//! stops the stack (SIGINT, then SIGKILL after a grace period), waits for it
//! and deletes the namespace, so a panicking test leaves nothing behind.
//! Nothing here touches the root namespace.
//!
//! Skip rule: when namespaces cannot be created here (not root, no `ip`, no
//! `/dev/net/tun`) or a client tool is missing, [`TestNet::start`] prints why
//! and returns `None`; the test then returns early. With
//! `TUNSTACK_REQUIRE_NETNS=1` it panics instead. `TUNSTACK_NETNS_FORCE_SKIP=1`
//! simulates an unusable machine (to check the skip path itself).
//!
//! The stack process is `tunstack run` by default; [`TestNet::start_program`]
//! runs another program that takes the same device flags (an example such as
//! `tcp_chat_server`), and [`TestNet::new`] sets up the namespace with no
//! stack at all, for tests that run `tunstack connect` in the foreground
//! ([`TestNet::exec_with_input`]). Kernel-side servers run in the background
//! under a [`Background`] guard.

#![allow(dead_code)] // Not every test binary uses every helper.

mod process;

pub use process::{run_with_timeout, try_run_with_input, try_run_with_timeout, Background, Output};

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The stack's address inside every test namespace.
pub const STACK_ADDR: &str = "10.0.0.2";
/// The kernel side of the TUN.
pub const HOST_CIDR: &str = "10.0.0.1/24";
/// The stack's IPv6 address, as `--addr6` takes it.
pub const STACK_ADDR6_CIDR: &str = "fd00::2/64";
/// The stack's IPv6 address.
pub const STACK_ADDR6: &str = "fd00::2";
/// The kernel side's IPv6 address.
pub const HOST_CIDR6: &str = "fd00::1/64";

/// How long the stack may take to print its "up on" line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the stack may take to exit after SIGINT before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The python clients shipped with the tests.
pub const UDP_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/udp_client.py");
pub const SEND_MALFORMED: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/send_malformed.py");
pub const TCP_TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/tcp_tool.py");
/// The `tunstack` binary under test.
pub const TUNSTACK: &str = env!("CARGO_BIN_EXE_tunstack");

/// An example program, built by `cargo test --all-targets` (or `cargo build
/// --examples`) next to the `tunstack` binary: `target/<profile>/examples/`.
pub fn example_path(name: &str) -> PathBuf {
    Path::new(TUNSTACK)
        .parent()
        .map(|dir| dir.join("examples").join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Whether a line the stack printed says it is up (`tunstack run`).
pub fn run_is_ready(line: &str) -> bool {
    line.starts_with("tunstack: ") && line.contains(" up on ")
}

/// Serializes `ip netns add`/`del`: concurrent first uses of /run/netns race
/// in some iproute2 versions, and the cost is a few milliseconds.
static NETNS_LOCK: Mutex<()> = Mutex::new(());
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// What the stack printed when it was stopped with SIGINT.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub stdout: String,
}

impl Stopped {
    /// The value of a drop counter line such as `  ip-bad-checksum        1`
    /// (0 when the stack did not list it: it lists non-zero reasons only).
    pub fn drop_count(&self, reason: &str) -> u64 {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("  "))
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                match (parts.next(), parts.next()) {
                    (Some(name), Some(n)) if name == reason => n.parse().ok(),
                    _ => None,
                }
            })
            .next()
            .unwrap_or(0)
    }

    /// The number before `label` on the counter line that starts with `prefix`,
    /// e.g. `counter("icmp:", "echo replies")` on `icmp: 3 echo replies, ...`.
    pub fn counter(&self, prefix: &str, label: &str) -> u64 {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no {prefix:?} line in the stack's exit counters:\n{}",
                    self.stdout
                )
            });
        line[prefix.len()..]
            .split(',')
            .map(str::trim)
            .find_map(|item| item.strip_suffix(label).and_then(|n| n.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {label:?} counter in {line:?}"))
    }
}

/// The summary ping prints: `5 packets transmitted, 5 received, 0% packet loss`.
#[derive(Debug, PartialEq, Eq)]
pub struct PingSummary {
    pub transmitted: u32,
    pub received: u32,
    pub loss: String,
}

impl PingSummary {
    pub fn parse(stdout: &str) -> PingSummary {
        let line = stdout
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no summary line in ping's output:\n{stdout}"));
        let mut transmitted = None;
        let mut received = None;
        let mut loss = None;
        for item in line.split(',').map(str::trim) {
            let (n, rest) = item.split_once(' ').unwrap_or((item, ""));
            match rest {
                "packets transmitted" => transmitted = n.parse().ok(),
                "received" => received = n.parse().ok(),
                "packet loss" => loss = Some(n.to_string()),
                _ => {}
            }
        }
        match (transmitted, received, loss) {
            (Some(transmitted), Some(received), Some(loss)) => PingSummary {
                transmitted,
                received,
                loss,
            },
            _ => panic!("cannot parse ping summary {line:?}"),
        }
    }
}

/// Why network-namespace tests cannot run on this machine, if they cannot.
fn netns_unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            if std::env::var("TUNSTACK_NETNS_FORCE_SKIP").is_ok_and(|v| v == "1") {
                return Some("TUNSTACK_NETNS_FORCE_SKIP=1 is set".into());
            }
            match effective_uid() {
                Some(0) => {}
                Some(uid) => {
                    return Some(format!(
                        "not running as root (euid {uid}); run `sudo scripts/test.sh`"
                    ))
                }
                None => return Some("cannot read the effective uid from /proc/self/status".into()),
            }
            if !Path::new("/dev/net/tun").exists() {
                return Some("/dev/net/tun does not exist (no TUN support)".into());
            }
            if !have_tool("ip") {
                return Some("`ip` (iproute2) is not installed".into());
            }
            None
        })
        .clone()
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether `tool` is an executable file on `PATH`.
pub fn have_tool(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(tool))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Skips the calling test (prints why), or fails it under `TUNSTACK_REQUIRE_NETNS=1`.
fn skip(reason: &str) {
    let test = thread::current().name().unwrap_or("netns test").to_string();
    if std::env::var("TUNSTACK_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("{test}: TUNSTACK_REQUIRE_NETNS=1 but the test cannot run: {reason}");
    }
    // Straight to stderr, past the test harness's output capture, so a
    // skipped test is visible in a normal `cargo test` run.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// A private namespace with a TUN and a running stack. See the module docs.
pub struct TestNet {
    pub name: String,
    /// The device the stack runs on: `tun0`, or `tap0` in TAP mode.
    pub device: &'static str,
    /// Temporary directory holding the pcap and the stack's log.
    pub dir: PathBuf,
    child: Option<Child>,
    /// The stack's standard input (for its `ss` / `stats` commands).
    stdin: Option<ChildStdin>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    stdout_reader: Option<JoinHandle<()>>,
    /// The stack writes pcapng (`stack.pcapng`) instead of pcap.
    pcapng: bool,
    /// IPv6 is on in the namespace (see [`TestNet::new_ipv6`]).
    pub ipv6: bool,
}

impl TestNet {
    /// Sets up a namespace and starts the stack in it, or returns `None`
    /// (after printing why) when the test must be skipped. `tools` are the
    /// client programs the test needs besides `ip`.
    pub fn start(tools: &[&str]) -> Option<TestNet> {
        TestNet::start_with(tools, &[])
    }

    /// Like [`TestNet::start`], with extra arguments for `tunstack run`.
    pub fn start_with(tools: &[&str], extra_args: &[&str]) -> Option<TestNet> {
        let mut net = TestNet::new(tools)?;
        net.spawn_stack(Path::new(TUNSTACK), &["run"], extra_args, run_is_ready);
        Some(net)
    }

    /// Like [`TestNet::start_with`], with the capture written as pcapng
    /// (`stack.pcapng`: the stack's notes become packet comments).
    pub fn start_pcapng(tools: &[&str], extra_args: &[&str]) -> Option<TestNet> {
        let mut net = TestNet::new(tools)?;
        net.pcapng = true;
        net.spawn_stack(Path::new(TUNSTACK), &["run"], extra_args, run_is_ready);
        Some(net)
    }

    /// Like [`TestNet::start_with`] on a multi-queue tun0 (`ip tuntap add
    /// ... multi_queue`), for `tunstack run --queues N`.
    pub fn start_multi_queue(tools: &[&str], extra_args: &[&str]) -> Option<TestNet> {
        let mut net = TestNet::new(tools)?;
        let t = Duration::from_secs(5);
        net.exec(&["ip", "tuntap", "del", "dev", "tun0", "mode", "tun"], t)
            .expect_success("ip tuntap del");
        net.exec(
            &[
                "ip",
                "tuntap",
                "add",
                "dev",
                "tun0",
                "mode",
                "tun",
                "multi_queue",
            ],
            t,
        )
        .expect_success("ip tuntap add multi_queue");
        net.exec(&["ip", "addr", "add", HOST_CIDR, "dev", "tun0"], t)
            .expect_success("ip addr add");
        net.exec(&["ip", "link", "set", "tun0", "up"], t)
            .expect_success("ip link set tun0 up");
        net.spawn_stack(Path::new(TUNSTACK), &["run"], extra_args, run_is_ready);
        Some(net)
    }

    /// Like [`TestNet::start`], with another program as the stack: it is run
    /// as `program LEADING... --tun tun0 --addr 10.0.0.2 --pcap FILE EXTRA...`
    /// and is ready once a line of its standard output satisfies `ready`.
    /// Skips (or fails, under `TUNSTACK_REQUIRE_NETNS=1`) when `program`
    /// has not been built.
    pub fn start_program(
        tools: &[&str],
        program: &Path,
        leading: &[&str],
        extra_args: &[&str],
        ready: fn(&str) -> bool,
    ) -> Option<TestNet> {
        if !program.is_file() {
            skip(&format!(
                "{} has not been built (`cargo test --all-targets` or `cargo build --examples` builds it)",
                program.display()
            ));
            return None;
        }
        let mut net = TestNet::new(tools)?;
        net.spawn_stack(program, leading, extra_args, ready);
        Some(net)
    }

    /// Like [`TestNet::start_with`] in TAP mode: a TAP device `tap0`
    /// (kernel side 10.0.0.1/24) and `tunstack run --tap tap0`.
    pub fn start_tap(tools: &[&str], extra_args: &[&str]) -> Option<TestNet> {
        let mut net = TestNet::new_tap(tools)?;
        net.spawn_stack(Path::new(TUNSTACK), &["run"], extra_args, run_is_ready);
        Some(net)
    }

    /// Like [`TestNet::new`] with a TAP device `tap0` instead of `tun0`
    /// (for `tunstack connect --tap tap0`).
    pub fn new_tap(tools: &[&str]) -> Option<TestNet> {
        TestNet::new_on(tools, "tap0", false)
    }

    /// Sets up the namespace and tun0 without starting a stack, or returns
    /// `None` (after printing why) when the test must be skipped.
    pub fn new(tools: &[&str]) -> Option<TestNet> {
        TestNet::new_on(tools, "tun0", false)
    }

    /// Like [`TestNet::new`] on `device` (`tun0` or `tap0`) with IPv6 on
    /// in the namespace: the kernel side also has fd00::1/64, added with
    /// `nodad` (and duplicate address detection off for the link-local
    /// address), so both are usable at once, and sends no router
    /// solicitations.
    pub fn new_ipv6(tools: &[&str], device: &'static str) -> Option<TestNet> {
        TestNet::new_on(tools, device, true)
    }

    /// [`TestNet::new_ipv6`] with `tunstack run --addr6 fd00::2/64` and
    /// `extra_args` started on it.
    pub fn start_ipv6(
        tools: &[&str],
        device: &'static str,
        extra_args: &[&str],
    ) -> Option<TestNet> {
        let mut net = TestNet::new_ipv6(tools, device)?;
        let mut args = vec!["--addr6", STACK_ADDR6_CIDR];
        args.extend_from_slice(extra_args);
        net.spawn_stack(Path::new(TUNSTACK), &["run"], &args, run_is_ready);
        Some(net)
    }

    /// Starts `tunstack run` with `extra_args` on a namespace set up
    /// without a stack.
    pub fn start_stack(&mut self, extra_args: &[&str]) {
        self.spawn_stack(Path::new(TUNSTACK), &["run"], extra_args, run_is_ready);
    }

    fn new_on(tools: &[&str], device: &'static str, ipv6: bool) -> Option<TestNet> {
        if let Some(reason) = netns_unavailable() {
            skip(&reason);
            return None;
        }
        let missing: Vec<&str> = tools.iter().copied().filter(|t| !have_tool(t)).collect();
        if !missing.is_empty() {
            skip(&format!(
                "missing client tools: {} (run `sudo scripts/test.sh`, which installs them)",
                missing.join(", ")
            ));
            return None;
        }
        let name = format!(
            "tunstack-test-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        {
            let _lock = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let out = run_with_timeout(
                Command::new("ip").args(["netns", "add", &name]),
                Duration::from_secs(10),
            );
            if !out.status.success() {
                skip(&format!(
                    "cannot create a network namespace: `ip netns add {name}`: {}",
                    out.stderr.trim()
                ));
                return None;
            }
        }
        let dir = std::env::temp_dir().join(&name);
        // From here on the guard exists, so any panic below still cleans up.
        let net = TestNet {
            name,
            device,
            dir,
            child: None,
            stdin: None,
            stdout_lines: Arc::new(Mutex::new(Vec::new())),
            stdout_reader: None,
            pcapng: false,
            ipv6,
        };
        std::fs::create_dir_all(&net.dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", net.dir.display()));
        net.setup_link();
        Some(net)
    }

    fn setup_link(&self) {
        // IPv6 off inside the namespace, so the kernel's router solicitations
        // do not show up as drops in the counters the tests assert on;
        // for the IPv6 tests on, without DAD's wait or solicitations.
        let sysctls: &[&str] = if self.ipv6 {
            &[
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0",
            ]
        } else {
            &[
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]
        };
        for sysctl in sysctls {
            self.exec(&["sysctl", "-qw", sysctl], Duration::from_secs(5));
        }
        self.exec(&["ip", "link", "set", "lo", "up"], Duration::from_secs(5))
            .expect_success("ip link set lo up");
        let dev = self.device;
        let mode = if dev == "tap0" { "tap" } else { "tun" };
        self.exec(
            &["ip", "tuntap", "add", "dev", dev, "mode", mode],
            Duration::from_secs(5),
        )
        .expect_success("ip tuntap add");
        self.exec(
            &["ip", "addr", "add", HOST_CIDR, "dev", dev],
            Duration::from_secs(5),
        )
        .expect_success("ip addr add");
        if self.ipv6 {
            self.exec(
                &["ip", "-6", "addr", "add", HOST_CIDR6, "dev", dev, "nodad"],
                Duration::from_secs(5),
            )
            .expect_success("ip -6 addr add");
        }
        self.exec(&["ip", "link", "set", dev, "up"], Duration::from_secs(5))
            .expect_success("ip link set up");
    }

    fn spawn_stack(
        &mut self,
        program: &Path,
        leading: &[&str],
        extra_args: &[&str],
        ready: fn(&str) -> bool,
    ) {
        let log =
            File::create(self.log_path()).unwrap_or_else(|e| panic!("creating the stack log: {e}"));
        let pcap = self.pcap_path();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .arg(program)
            .args(leading)
            .args([self.device_flag(), self.device, "--addr", STACK_ADDR])
            .arg("--pcap")
            .arg(&pcap)
            .args(extra_args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // `ip netns exec` execs the program in place (no fork), so the child's
        // PID is the stack's own and signals reach it directly.
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        self.stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.child = Some(child);
        let lines = self.stdout_lines.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        self.stdout_reader = Some(thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let is_ready = ready(&line);
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                if is_ready {
                    let _ = ready_tx.send(());
                }
            }
        }));
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "the stack did not report ready within {READY_TIMEOUT:?}\n{}",
                    self.diagnostics()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed without the line: the stack exited.
                let status = self.child.as_mut().and_then(|c| c.wait().ok());
                panic!(
                    "the stack exited before it was ready ({status:?})\n{}",
                    self.diagnostics()
                )
            }
        }
        self.wait_for_link_up();
    }

    /// Waits until the kernel reports tun0 operationally up. Attaching a
    /// queue turns the carrier on, but the kernel activates the link in a
    /// deferred work item; until then it drops what it sends to the TUN
    /// (seen as a lost first ping on a busy machine, with tun0's TX dropped
    /// counter at 1). Operstate turns UP in the same step, just before.
    fn wait_for_link_up(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = run_with_timeout(
                Command::new("ip").args([
                    "-n",
                    &self.name,
                    "-o",
                    "link",
                    "show",
                    "dev",
                    self.device,
                ]),
                Duration::from_secs(5),
            );
            if out.stdout.contains(" state UP ") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} is not operationally up {READY_TIMEOUT:?} after the stack said it was ready:\n{}{}\n{}",
                    self.device,
                    out.stdout,
                    out.stderr,
                    self.diagnostics()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `--tun`, or `--tap` in TAP mode.
    pub fn device_flag(&self) -> &'static str {
        if self.device == "tap0" {
            "--tap"
        } else {
            "--tun"
        }
    }

    /// The stack's pcap.
    pub fn pcap_path(&self) -> PathBuf {
        self.dir.join(if self.pcapng {
            "stack.pcapng"
        } else {
            "stack.pcap"
        })
    }

    /// The stack's stderr (its `RUST_LOG=debug` log).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("stack.log")
    }

    /// Stdout and log of the stack so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        let stdout = self
            .stdout_lines
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        let mut log = String::new();
        if let Ok(mut f) = File::open(self.log_path()) {
            let _ = f.read_to_string(&mut log);
        }
        format!(
            "--- tunstack stdout ---\n{stdout}\n--- tunstack log ({}) ---\n{log}",
            self.log_path().display()
        )
    }

    /// Runs `argv` inside the namespace, killing it after `timeout`.
    pub fn exec(&self, argv: &[&str], timeout: Duration) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        run_with_timeout(&mut cmd, timeout)
    }

    /// Runs `argv` inside the namespace with `env` set and `input` on its
    /// standard input (then closed), killing it after `timeout`.
    pub fn exec_with_input(
        &self,
        argv: &[&str],
        env: &[(&str, &str)],
        input: &[u8],
        timeout: Duration,
    ) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        for (k, v) in env {
            cmd.env(k, v);
        }
        try_run_with_input(&mut cmd, input, timeout).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `argv` inside the namespace in the background and waits (up
    /// to 15 s) until a line of its standard output contains `ready`.
    pub fn spawn_background(&self, argv: &[&str], ready: &str) -> Background {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        Background::spawn(&mut cmd, ready, READY_TIMEOUT)
    }

    /// The stack's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Types `line` on the stack's standard input (`ss`, `stats`).
    pub fn send_to_stack(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("the stack's stdin is not open"));
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing {line:?} to the stack: {e}"));
    }

    /// The stack's process id while it runs (`ip netns exec` execs it in
    /// place), e.g. to read its memory use from `/proc/PID/status`.
    pub fn stack_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the stack printed on its standard output so far, one entry a line.
    pub fn stack_stdout(&self) -> Vec<String> {
        self.stdout_lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Waits until the stack prints a line satisfying `pred` after its first
    /// `skip` lines; returns that line, or `None` after `timeout`.
    pub fn wait_for_stdout(
        &self,
        skip: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stack_stdout().into_iter().skip(skip).find(|l| pred(l)) {
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the stack to exit by itself (a program that
    /// ends after one conversation); `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<Stopped> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) | Err(_) => return None,
            }
        };
        self.child = None;
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        Some(Stopped {
            status,
            stdout: self.stack_stdout().join("\n"),
        })
    }

    /// `ping` from the kernel side to the stack; returns its summary.
    pub fn ping(&self, count: u32, size: u32) -> (PingSummary, Output) {
        let count_s = count.to_string();
        let size_s = size.to_string();
        // -i 0.2: quick but paced; -W 2: per-reply wait; -w: hard deadline.
        let deadline = (count + 4).to_string();
        let out = self.exec(
            &[
                "ping", "-n", "-c", &count_s, "-s", &size_s, "-i", "0.2", "-W", "2", "-w",
                &deadline, STACK_ADDR,
            ],
            Duration::from_secs(u64::from(count) + 10),
        );
        (PingSummary::parse(&out.stdout), out)
    }

    /// `ping -6` from the kernel side to `target` (e.g. `fd00::2`, or
    /// `fe80::...%tap0`); returns its summary.
    pub fn ping6(&self, count: u32, size: u32, target: &str) -> (PingSummary, Output) {
        let count_s = count.to_string();
        let size_s = size.to_string();
        let deadline = (count + 4).to_string();
        let out = self.exec(
            &[
                "ping", "-6", "-n", "-c", &count_s, "-s", &size_s, "-i", "0.2", "-W", "2", "-w",
                &deadline, target,
            ],
            Duration::from_secs(u64::from(count) + 10),
        );
        (PingSummary::parse(&out.stdout), out)
    }

    /// Runs the python UDP client in the namespace: `udp_client.py [opts] 10.0.0.2 PORT MESSAGES...`.
    pub fn udp_client(&self, opts: &[&str], port: u16, messages: &[&str]) -> Output {
        let port = port.to_string();
        let mut argv = vec!["python3", UDP_CLIENT];
        argv.extend_from_slice(opts);
        argv.push(STACK_ADDR);
        argv.push(&port);
        argv.extend_from_slice(messages);
        self.exec(&argv, Duration::from_secs(20))
    }

    /// Stops the stack with SIGINT and returns what it printed (its counters).
    pub fn stop(&mut self) -> Stopped {
        let status = self
            .stop_child()
            .unwrap_or_else(|| panic!("tunstack was not running\n{}", self.diagnostics()));
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        let stdout = self
            .stdout_lines
            .lock()
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        Stopped { status, stdout }
    }

    /// SIGINT, wait up to [`STOP_GRACE`], then SIGKILL. Returns the exit status.
    fn stop_child(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        // Only our own child, by PID; `sh`'s builtin kill needs no procps.
        let pid = child.id().to_string();
        let _ = Command::new("sh")
            .args(["-c", "kill -INT \"$1\"", "sh", &pid])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = writeln!(
            std::io::stderr(),
            "tunstack (pid {pid}) ignored SIGINT for {STOP_GRACE:?}; killing it"
        );
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Nothing in here may panic: this runs while a failed test unwinds.
        let failed = thread::panicking();
        let _ = self.stop_child();
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        let link_stats = if failed {
            let mut cmd = Command::new("ip");
            cmd.args(["-n", &self.name, "-s", "link", "show", "dev", self.device]);
            match try_run_with_timeout(&mut cmd, Duration::from_secs(5)) {
                Ok(out) => out.stdout + &out.stderr,
                Err(e) => e,
            }
        } else {
            String::new()
        };
        {
            let _lock = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "del", &self.name]);
            let problem = match try_run_with_timeout(&mut cmd, Duration::from_secs(10)) {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(out.stderr.trim().to_string()),
                Err(e) => Some(e),
            };
            if let Some(problem) = problem {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: `ip netns del {}` failed: {problem}",
                    self.name
                );
            }
        }
        if failed {
            let _ = writeln!(
                std::io::stderr(),
                "test failed; kept the pcap and log in {}\n{}\n--- {} (kernel side) ---\n{link_stats}",
                self.dir.display(),
                self.diagnostics(),
                self.device
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs tshark on a capture (it needs no namespace: it only reads the file).
pub fn tshark(pcap: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(pcap).args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(30)).expect_success("tshark")
}

/// The `fields` of every packet of a capture that `filter` selects, as
/// tshark prints them (`-T fields`): one row per packet, one string per
/// field (empty when the packet lacks it).
pub fn tshark_fields(pcap: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-Y", filter, "-T", "fields"];
    for f in fields {
        args.extend(["-e", f]);
    }
    tshark(pcap, &args)
        .stdout
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Whether `s` has the shape of `pattern`, where `9` stands for any ASCII
/// digit and every other character for itself (`"99:99"` matches `"07:45"`).
pub fn has_shape(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| {
            if p == b'9' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}
