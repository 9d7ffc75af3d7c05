//! The `tunstack` command: runs the stack on a TUN device with its built-in services.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use tunstack::device::fault::FaultConfig;
use tunstack::tcp::{ConnInfo, KeepaliveConfig};
use tunstack::{services, Config, Stack, TcpStream};

/// A userspace TCP/IP stack over a Linux TUN device.
///
/// Quick start (as root, in a network namespace of your own):
///   ip tuntap add dev tun0 mode tun
///   ip addr add 10.0.0.1/24 dev tun0 && ip link set tun0 up
///   tunstack run --tun tun0 --addr 10.0.0.2 --pcap /tmp/demo.pcapng
/// then, from another shell in the same namespace:
///   ping 10.0.0.2
///   curl http://10.0.0.2/                       # status page, live connections, ladders
///   echo hello | nc -q1 10.0.0.2 7               # TCP echo
///   echo hello | nc -u -w1 10.0.0.2 7          # UDP echo
///   printf '%H:%M:%S' | nc -u -w1 10.0.0.2 9000  # UDP time
///
/// Logging: RUST_LOG=debug shows every dropped packet and why.
#[derive(Parser, Debug)]
#[command(name = "tunstack", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run the stack on a TUN device with its services until interrupted
    /// (Ctrl-C / SIGTERM). Type `ss`, `stats` or `help` + Enter for live tables.
    Run(RunArgs),
    /// Connect from the stack to a TCP server, like `nc`: standard input goes
    /// to the server, its replies to standard output.
    Connect(ConnectArgs),
    /// Forward IP packets between two TUN devices through the same fault
    /// injection as `run` (same flags, same seed, same decisions): --a
    /// takes the kernel's place, --b the stack's, so packets from --a to
    /// --b meet the "incoming" faults. Both devices are opened with offload
    /// off (created if missing) and may then be moved to other namespaces
    /// (`ip link set NAME netns NS`); prints "ready" once both are open,
    /// runs until interrupted.
    Relay(RelayArgs),
    /// Draw each TCP connection of a pcap/pcapng capture as a ladder
    /// diagram: one arrow per segment, each side's TCP state beside its line.
    Ladder(tunstack::ladder::LadderArgs),
}

#[derive(clap::Args, Debug)]
struct DeviceArgs {
    /// TUN device to attach to; created if it does not exist.
    #[arg(long, default_value = "tun0", value_name = "NAME")]
    tun: String,
    /// TAP mode: attach to (or create) TAP device NAME instead of a TUN.
    /// The stack then speaks Ethernet II and ARP, with its own MAC
    /// (--mac), and --pcap records Ethernet frames. One queue, offload off.
    #[arg(long, value_name = "NAME", conflicts_with = "tun")]
    tap: Option<String>,
    /// The stack's MAC in TAP mode (default: a random locally
    /// administered address), e.g. 02:00:00:00:00:02.
    #[arg(long, value_name = "MAC", requires = "tap")]
    mac: Option<tunstack::config::MacAddr>,
    /// The stack's own IPv4 address (the kernel side must route to it).
    #[arg(long, default_value = "10.0.0.2", value_name = "IPV4")]
    addr: Ipv4Addr,
    /// The stack's own IPv6 address and its link's prefix length, e.g.
    /// fd00::2/64 (default: IPv6 off). The stack answers ping -6, serves
    /// TCP and UDP over IPv6 (the services listen on [::], both
    /// families) and, with --tap, neighbour discovery on it and on a
    /// link-local address from the MAC (modified EUI-64).
    #[arg(long, value_name = "IPV6/PREFIX", value_parser = parse_cidr6)]
    addr6: Option<(std::net::Ipv6Addr, u8)>,
    /// With --tap and --addr6: duplicate address detection probes per
    /// address before it is used (RFC 4862, a second apart; 0: at once).
    #[arg(long, default_value_t = 1, value_name = "N", requires = "addr6")]
    dad_transmits: u32,
    /// Set the device MTU (default: keep the device's, 1500 for a new one).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(68..))]
    mtu: Option<u16>,
    /// Record every packet in and out to this capture file (open it in
    /// Wireshark): classic pcap, or, if the name ends in .pcapng, pcapng
    /// with a comment per packet saying what the stack did with it.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// With --pcap and offload, record each TCP super-segment as the
    /// segments it stands for (the wire's view) instead of whole.
    #[arg(long)]
    pcap_segmented: bool,
    /// TCP segmentation and checksum offload on the TUN: the kernel and
    /// the stack hand each other super-segments of up to 64 KiB (auto: on
    /// where the kernel accepts it; the environment variable
    /// TUNSTACK_OFFLOAD=on|off overrides auto).
    #[arg(long, default_value = "auto", value_name = "on|off|auto")]
    offload: tunstack::Offload,
    /// Queues of the TUN, one shard (a thread with its own connection
    /// table) each; above 1 the interface must be multi-queue (`ip tuntap
    /// add ... multi_queue`, or let tunstack create it).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    queues: u16,
    /// Also address the kernel side of the TUN (e.g. 10.0.0.1/24) and bring it up.
    #[arg(long, value_name = "IPV4/PREFIX", value_parser = parse_cidr)]
    host_addr: Option<(Ipv4Addr, u8)>,
    /// The TUN's queue toward the stack, in packets (`txqueuelen`; the
    /// kernel's default is 500, too shallow for a burst of clients); 0
    /// leaves the device's own. What overflows it shows in `stats` as
    /// "kernel dropped ... on the way to the stack".
    #[arg(long, default_value_t = tunstack::config::DEFAULT_TX_QUEUE_LEN, value_name = "PACKETS")]
    txqueuelen: u32,
    /// Maximum segment lifetime in milliseconds; TIME-WAIT lasts twice this
    /// (default 30000: a 60 s TIME-WAIT, like Linux).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    msl_ms: u64,
    /// Keepalive on every TCP connection: idle and interval in
    /// milliseconds, and the probe count, e.g. 2000,1000,3 (default: off).
    #[arg(long, value_name = "IDLE_MS,INTERVAL_MS,COUNT", value_parser = parse_keepalive)]
    keepalive: Option<KeepaliveConfig>,
    #[command(flatten)]
    faults: FaultArgs,
    /// Turn selective acknowledgements (RFC 2018) off: neither offer nor
    /// accept them.
    #[arg(long)]
    no_sack: bool,
    /// Turn the timestamps option (RFC 7323: RTT measurement on every ACK,
    /// PAWS) off: neither offer nor accept it.
    #[arg(long)]
    no_timestamps: bool,
    /// Turn RACK-TLP (RFC 8985: time-based loss detection, tail loss
    /// probes) off; loss recovery then uses RFC 6675's DupThresh only.
    #[arg(long)]
    no_rack: bool,
    /// Send each round trip's data in one burst with reno and cubic
    /// instead of pacing it (bbr always paces), as Linux does without the
    /// fq qdisc.
    #[arg(long)]
    no_pacing: bool,
    /// Congestion control of new connections: cubic (the default, RFC
    /// 9438 with HyStart++), reno (NewReno, RFC 5681 and RFC 6582) or bbr
    /// (draft-ietf-ccwg-bbr, BBRv3, which paces).
    #[arg(long, default_value = "cubic", value_name = "ALG")]
    congestion: tunstack::tcp::congestion::Algorithm,
    /// After work, keep polling this many microseconds before sleeping
    /// (like SO_BUSY_POLL: lower latency, some CPU while busy; 0: off).
    #[arg(long, default_value_t = 50, value_name = "US")]
    busy_poll_us: u64,
}

/// Fault injection, a seeded netem-like path each way ("in": toward the
/// stack, or from --a to --b in a relay; "out": the other way).
#[derive(clap::Args, Debug)]
struct FaultArgs {
    /// Fault injection: drop the Nth outgoing packets (1-based,
    /// comma-separated), e.g. to capture a retransmission.
    #[arg(long, value_name = "N,N,...", value_parser = parse_list)]
    drop_tx: Option<BTreeSet<u64>>,
    /// Fault injection: drop the Nth incoming packets (1-based).
    #[arg(long, value_name = "N,N,...", value_parser = parse_list)]
    drop_rx: Option<BTreeSet<u64>>,
    /// Fault injection: lose this percentage of the packets each way, at
    /// random (seeded by --fault-seed), e.g. 1 or 0.5.
    #[arg(long, default_value_t = 0.0, value_name = "PCT", value_parser = parse_percent)]
    loss: f64,
    /// Fault injection: lose this percentage of the incoming packets
    /// (instead of --loss).
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    rx_loss: Option<f64>,
    /// Fault injection: lose this percentage of the outgoing packets
    /// (instead of --loss).
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    tx_loss: Option<f64>,
    /// Fault injection: hold every packet this many milliseconds, each way.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    delay_ms: u64,
    /// Fault injection: hold every incoming packet this many milliseconds
    /// (instead of --delay-ms).
    #[arg(long, value_name = "MS")]
    rx_delay_ms: Option<u64>,
    /// Fault injection: hold every outgoing packet this many milliseconds
    /// (instead of --delay-ms).
    #[arg(long, value_name = "MS")]
    tx_delay_ms: Option<u64>,
    /// Fault injection: vary each packet's delay uniformly by up to this
    /// many milliseconds either way; packets keep their order.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    jitter_ms: u64,
    /// Fault injection: send this percentage of the packets at once,
    /// ahead of those held for their delay, each way.
    #[arg(long, default_value_t = 0.0, value_name = "PCT", value_parser = parse_percent)]
    reorder: f64,
    /// Fault injection: send this percentage of the packets twice, each way.
    #[arg(long, default_value_t = 0.0, value_name = "PCT", value_parser = parse_percent)]
    duplicate: f64,
    /// Seed of the random faults: the same seed makes the same decisions
    /// for the same packets.
    #[arg(long, default_value_t = 1, value_name = "N")]
    fault_seed: u64,
}

impl FaultArgs {
    fn config(&self) -> FaultConfig {
        let ppm = |pct: f64| (pct * 10_000.0).round() as u32;
        let ms = Duration::from_millis;
        FaultConfig {
            drop_tx: self.drop_tx.clone().unwrap_or_default(),
            drop_rx: self.drop_rx.clone().unwrap_or_default(),
            rx_delay: ms(self.rx_delay_ms.unwrap_or(self.delay_ms)),
            tx_delay: ms(self.tx_delay_ms.unwrap_or(self.delay_ms)),
            jitter: ms(self.jitter_ms),
            rx_loss_ppm: ppm(self.rx_loss.unwrap_or(self.loss)),
            tx_loss_ppm: ppm(self.tx_loss.unwrap_or(self.loss)),
            reorder_ppm: ppm(self.reorder),
            duplicate_ppm: ppm(self.duplicate),
            seed: self.fault_seed,
        }
    }
}

impl DeviceArgs {
    /// The TAP's name in TAP mode, else the TUN's.
    fn device_name(&self) -> &str {
        self.tap.as_deref().unwrap_or(&self.tun)
    }

    fn config(&self) -> Config {
        let mut config = Config {
            addr: self.addr,
            addr6: self.addr6,
            dad_transmits: self.dad_transmits,
            tun_name: self.device_name().to_owned(),
            medium: if self.tap.is_some() {
                tunstack::Medium::Ethernet
            } else {
                tunstack::Medium::Ip
            },
            mac: self.mac,
            mtu: self.mtu,
            host_addr: self.host_addr,
            tx_queue_len: (self.txqueuelen > 0).then_some(self.txqueuelen),
            pcap: self.pcap.clone(),
            pcap_segmented: self.pcap_segmented,
            offload: self.offload,
            queues: usize::from(self.queues),
            prefix_len: self.host_addr.map(|(_, p)| p).unwrap_or(24),
            ..Config::default()
        };
        config.tcp.msl = Duration::from_millis(self.msl_ms);
        config.busy_poll = Duration::from_micros(self.busy_poll_us);
        config.keepalive_all = self.keepalive;
        config.faults = self.faults.config();
        config.tcp.sack = !self.no_sack;
        config.tcp.timestamps = !self.no_timestamps;
        config.tcp.rack = !self.no_rack;
        config.tcp.pacing = !self.no_pacing;
        config.tcp.congestion = self.congestion;
        config
    }
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// UDP echo port (0 disables the service).
    #[arg(long, default_value_t = 7, value_name = "PORT")]
    udp_echo_port: u16,
    /// TCP echo port (0 disables the service).
    #[arg(long, default_value_t = 7, value_name = "PORT")]
    tcp_echo_port: u16,
    /// TCP discard port (0 disables the service).
    #[arg(long, default_value_t = 9, value_name = "PORT")]
    tcp_discard_port: u16,
    /// TCP bulk source port: send a decimal byte count and a newline, get
    /// that many bytes back (0 disables the service).
    #[arg(long, default_value_t = 5001, value_name = "PORT")]
    tcp_source_port: u16,
    /// HTTP/1.1 port: a status page with the live connection table at `/`
    /// and N bytes at `/bytes/N` (0 disables the service).
    #[arg(long, default_value_t = 80, value_name = "PORT")]
    http_port: u16,
    /// UDP time service port (0 disables the service).
    #[arg(long, default_value_t = 9000, value_name = "PORT")]
    udp_time_port: u16,
    /// Keepalive on the built-in TCP services' connections, so peers that
    /// vanished are reaped: idle and interval in milliseconds and the probe
    /// count, or `off`. `--keepalive`, when given, applies instead.
    #[arg(long, default_value = "60000,10000,6", value_name = "IDLE_MS,INTERVAL_MS,COUNT|off", value_parser = parse_optional_keepalive)]
    service_keepalive: OptionalKeepalive,
    /// HTTP: seconds a connection may idle between requests, or a client
    /// take none of a response, before it is closed (a response under way
    /// is reset, so the client sees it cut short).
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    http_idle_timeout: u64,
    /// Print the counters every SECS seconds (0: only at exit).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    stats_interval: u64,
    /// Keep the segment headers of the last N TCP connections (per queue)
    /// for their ladder diagrams on the HTTP status page, /ladder/ID (0:
    /// off; always off without the HTTP service).
    #[arg(long, default_value_t = 16, value_name = "N")]
    recent_connections: usize,
}

#[derive(clap::Args, Debug)]
struct ConnectArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// The server, e.g. 10.0.0.1:5000.
    #[arg(value_name = "IPV4:PORT")]
    server: SocketAddr,
    /// Give up connecting after SECS seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

#[derive(clap::Args, Debug)]
struct RelayArgs {
    /// The TUN device on the kernel's side.
    #[arg(long, value_name = "NAME")]
    a: String,
    /// The TUN device in the stack's place.
    #[arg(long, value_name = "NAME")]
    b: String,
    /// Each device's queue toward the relay, in packets (0: the device's own).
    #[arg(long, default_value_t = tunstack::config::DEFAULT_TX_QUEUE_LEN, value_name = "PACKETS")]
    txqueuelen: u32,
    #[command(flatten)]
    faults: FaultArgs,
}

fn parse_keepalive(s: &str) -> Result<KeepaliveConfig, String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [idle, interval, count] = parts[..] else {
        return Err("expected IDLE_MS,INTERVAL_MS,COUNT, e.g. 2000,1000,3".into());
    };
    let num = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    let (idle, interval, count) = (num(idle)?, num(interval)?, num(count)?);
    if idle == 0 || interval == 0 || count == 0 || count > u64::from(u32::MAX) {
        return Err("keepalive idle, interval and count must be positive".into());
    }
    Ok(KeepaliveConfig {
        idle: Duration::from_millis(idle),
        interval: Duration::from_millis(interval),
        count: count as u32,
    })
}

/// A keepalive setting that may be `off`.
#[derive(Debug, Clone, Copy)]
struct OptionalKeepalive(Option<KeepaliveConfig>);

fn parse_optional_keepalive(s: &str) -> Result<OptionalKeepalive, String> {
    if s.trim() == "off" {
        return Ok(OptionalKeepalive(None));
    }
    parse_keepalive(s).map(|k| OptionalKeepalive(Some(k)))
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v}: a percentage from 0 to 100"))
    }
}

fn parse_list(s: &str) -> Result<BTreeSet<u64>, String> {
    s.split(',')
        .map(|v| match v.trim().parse::<u64>() {
            Ok(0) => Err("packet numbers start at 1".to_string()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("{v:?}: {e}")),
        })
        .collect()
}

fn parse_cidr6(s: &str) -> Result<(std::net::Ipv6Addr, u8), String> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected IPV6/PREFIX, e.g. fd00::2/64"))?;
    let ip = ip
        .parse()
        .map_err(|e| format!("bad IPv6 address {ip:?}: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|e| format!("bad prefix {prefix:?}: {e}"))?;
    if prefix == 0 || prefix > 128 {
        return Err(format!("prefix {prefix}: between 1 and 128"));
    }
    Ok((ip, prefix))
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or("expected IPV4/PREFIX, e.g. 10.0.0.1/24")?;
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("bad address {ip:?}: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|e| format!("bad prefix {prefix:?}: {e}"))?;
    if prefix > 32 {
        return Err(format!("prefix {prefix} is longer than 32"));
    }
    Ok((ip, prefix))
}

/// A service's port as the start-up line shows it: `:7`, or `off` for a
/// service turned off with port 0.
fn port_or_off(port: u16) -> String {
    if port == 0 {
        "off".to_string()
    } else {
        format!(":{port}")
    }
}

/// glibc's malloc settings for the stack: one arena, and freed memory above
/// 128 KiB at the heap's top returned to the OS. With glibc's defaults the
/// runtime thread's arena kept 52.8 MiB after 10,000 connections closed;
/// with these, 18.4 MiB (docs/RELIABILITY.md). glibc reads them only at
/// start-up, from the environment.
const MALLOC_TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.trim_threshold=131072";

/// Re-executes the binary with [`MALLOC_TUNABLES`] unless the environment
/// already sets `GLIBC_TUNABLES` (then the user's choice stands). Returns
/// only if that is so, or if the re-exec failed.
fn with_malloc_tunables() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", MALLOC_TUNABLES)
        .exec();
    eprintln!("tunstack: re-executing with GLIBC_TUNABLES failed ({err}); going on without");
}

fn main() -> ExitCode {
    with_malloc_tunables();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Run(args) => run(args),
        Commands::Connect(args) => connect(args),
        Commands::Relay(args) => relay(args),
        Commands::Ladder(args) => tunstack::ladder::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tunstack: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> std::io::Result<()> {
    let mut config = args.device.config();
    if args.http_port != 0 {
        config.recent_connections = args.recent_connections;
    }
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .map_err(std::io::Error::other)?;

    let service_opts = services::ServiceOptions {
        keepalive: args.device.keepalive.or(args.service_keepalive.0),
        // A vanished peer with data in flight is given up within the same
        // bound as an idle one: keepalive's idle + interval x count.
        user_timeout: args
            .device
            .keepalive
            .or(args.service_keepalive.0)
            .map(|k| k.idle + k.interval * k.count),
        http_idle_timeout: Duration::from_secs(args.http_idle_timeout),
    };
    let stack = Stack::new(config)?;
    let mut services = Vec::new();
    if args.udp_echo_port != 0 {
        services.push(services::udp_echo(&stack, args.udp_echo_port)?);
    }
    if args.tcp_echo_port != 0 {
        services::tcp_echo_with(&stack, args.tcp_echo_port, &service_opts)?;
    }
    if args.tcp_discard_port != 0 {
        services::tcp_discard_with(&stack, args.tcp_discard_port, &service_opts)?;
    }
    if args.tcp_source_port != 0 {
        services::tcp_source_with(&stack, args.tcp_source_port, &service_opts)?;
    }
    if args.http_port != 0 {
        services::http::serve_with(&stack, args.http_port, &service_opts)?;
    }
    if args.udp_time_port != 0 {
        services.push(services::udp_time(&stack, args.udp_time_port)?);
    }
    println!(
        "tunstack: {} up on {} ({}mtu {}, offload {}{}); http {}, tcp echo {}, tcp discard {}, tcp source {}, udp echo {}, udp time {}{}",
        match args.device.addr6 {
            Some((a6, _)) => format!("{} and {a6}", stack.addr()),
            None => stack.addr().to_string(),
        },
        args.device.device_name(),
        stack
            .mac()
            .map_or_else(String::new, |mac| format!("TAP, MAC {mac}, ")),
        stack.mtu(),
        if stack.offload() { "on" } else { "off" },
        if stack.queues() > 1 {
            format!(", {} queues", stack.queues())
        } else {
            String::new()
        },
        port_or_off(args.http_port),
        port_or_off(args.tcp_echo_port),
        port_or_off(args.tcp_discard_port),
        port_or_off(args.tcp_source_port),
        port_or_off(args.udp_echo_port),
        port_or_off(args.udp_time_port),
        args.device
            .pcap
            .as_ref()
            .map(|p| format!("; capturing to {}", p.display()))
            .unwrap_or_default()
    );
    let tick = if args.stats_interval == 0 {
        crossbeam_channel::never()
    } else {
        crossbeam_channel::tick(Duration::from_secs(args.stats_interval))
    };
    let mut lines = stdin_lines();
    loop {
        crossbeam_channel::select! {
            recv(stop_rx) -> _ => break,
            recv(tick) -> _ => {
                if let Ok(s) = stack.stats() {
                    println!("{s}");
                }
            }
            recv(lines) -> line => match line.as_deref().map(str::trim) {
                Ok("ss") => match stack.tcp_connections() {
                    Ok(conns) => print!("{}", connection_table(&conns)),
                    Err(e) => eprintln!("tunstack: {e}"),
                },
                Ok("stats") => match stack.stats() {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("tunstack: {e}"),
                },
                Ok("") => {}
                Ok(_) => println!("commands: ss (TCP connections), stats (counters), help"),
                // Standard input closed: keep running until a signal.
                Err(_) => lines = crossbeam_channel::never(),
            },
        }
    }
    let stats = stack.stats()?;
    drop(stack);
    for s in services {
        let _ = s.join();
    }
    println!("tunstack: stopped\n{stats}");
    Ok(())
}

/// Lines typed on standard input, read on a thread of their own. The
/// channel disconnects at end of input.
fn stdin_lines() -> crossbeam_channel::Receiver<String> {
    let (tx, rx) = crossbeam_channel::bounded(16);
    let spawned = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    if spawned.is_err() {
        return crossbeam_channel::never();
    }
    rx
}

/// Formats connections like `ss -tni`.
fn connection_table(conns: &[ConnInfo]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<12} {:>7} {:>7} {:<21} {:<21} {:>14} {:>8} {:>8} {:>10} {:>7} {:>8} {}\n",
        "State",
        "Recv-Q",
        "Send-Q",
        "Local",
        "Peer",
        "rtt/var(ms)",
        "rto(ms)",
        "cwnd",
        "ssthresh",
        "retrans",
        "rcvbuf",
        "options"
    );
    for c in conns {
        let rtt = c
            .srtt
            .map(|s| format!("{:.1}/{:.1}", ms(s), ms(c.rttvar)))
            .unwrap_or_else(|| "-".into());
        let ssthresh = if c.ssthresh == u32::MAX {
            "-".to_string()
        } else {
            c.ssthresh.to_string()
        };
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>7} {:<21} {:<21} {:>14} {:>8.0} {:>8} {:>10} {:>7} {:>8} {}",
            c.state.to_string(),
            c.recv_queue,
            c.send_queue,
            c.local.to_string(),
            c.remote.to_string(),
            rtt,
            ms(c.rto),
            c.cwnd,
            ssthresh,
            c.retransmits,
            c.recv_buffer,
            c.ss_options()
        );
    }
    if conns.is_empty() {
        out.push_str("(no connections)\n");
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn connect(args: ConnectArgs) -> std::io::Result<()> {
    let stack = Stack::new(args.device.config())?;
    let server = args.server;
    let stream =
        TcpStream::connect_timeout(&stack, &server, Duration::from_secs(args.timeout.max(1)))?;
    eprintln!("tunstack: connected {} -> {server}", stream.local_addr()?);
    std::thread::scope(|scope| -> std::io::Result<()> {
        let reader = scope.spawn(|| -> std::io::Result<()> {
            let mut out = std::io::stdout().lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = (&stream).read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
        });
        let mut input = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            (&stream).write_all(&buf[..n])?;
        }
        // End of input: send FIN, keep reading until the server closes.
        stream.shutdown(std::net::Shutdown::Write)?;
        reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("reader thread panicked")))
    })?;
    drop(stream);
    // Let the close finish before the stack goes away with the process.
    stack.linger(Duration::from_secs(2));
    Ok(())
}

/// Longest the relay sleeps before it looks at the stop flag again.
const RELAY_TICK: Duration = Duration::from_millis(100);

fn relay(args: RelayArgs) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tunstack::device::relay::Relay;
    use tunstack::device::tun::{self, TunDevice, TunOptions};

    let opts = TunOptions {
        tx_queue_len: (args.txqueuelen > 0).then_some(args.txqueuelen),
        offload: tunstack::Offload::Off,
        ..TunOptions::default()
    };
    let a = TunDevice::open(&args.a, &opts)?;
    let b = TunDevice::open(&args.b, &opts)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(std::io::Error::other)?;
    let faults = args.faults.config();
    println!(
        "tunstack relay: {} <-> {} ready; {faults:?}",
        args.a, args.b
    );
    let mut relay = Relay::new(a, b, faults);
    while !stop.load(Ordering::Relaxed) {
        if relay.forward(256)? > 0 {
            continue;
        }
        let now = std::time::Instant::now();
        let timeout = relay.next_due().map_or(RELAY_TICK, |t| {
            t.saturating_duration_since(now).min(RELAY_TICK)
        });
        let (a, b) = relay.devices();
        tun::wait_either(a, b, Some(timeout))?;
    }
    let s = relay.stats();
    println!(
        "tunstack relay: stopped; {} packets {} -> {}, {} back; send errors {}\nfaults ({} -> {} is \"in\"): {}",
        s.a_to_b, args.a, args.b, s.b_to_a, s.send_errors, args.a, args.b, s.faults
    );
    Ok(())
}
