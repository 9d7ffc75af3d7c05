//! The `tunstack` command: runs the stack on a TUN device with its built-in services.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use tunstack::{services, Config, Stack};

/// A userspace TCP/IP stack over a Linux TUN device.
///
/// Quick start (as root, in a network namespace of your own):
///   ip tuntap add dev tun0 mode tun
///   ip addr add 10.0.0.1/24 dev tun0 && ip link set tun0 up
///   tunstack run --tun tun0 --addr 10.0.0.2 --pcap demo.pcap
/// then, from another shell in the same namespace:
///   ping 10.0.0.2
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
    /// Run the stack on a TUN device until interrupted (Ctrl-C / SIGTERM).
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// TUN device to attach to; created if it does not exist.
    #[arg(long, default_value = "tun0", value_name = "NAME")]
    tun: String,
    /// The stack's own IPv4 address (the kernel side must route to it).
    #[arg(long, default_value = "10.0.0.2", value_name = "IPV4")]
    addr: Ipv4Addr,
    /// Set the device MTU (default: keep the device's, 1500 for a new one).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(68..))]
    mtu: Option<u16>,
    /// Record every packet in and out to this pcap file (open it in Wireshark).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Also address the kernel side of the TUN (e.g. 10.0.0.1/24) and bring it up.
    #[arg(long, value_name = "IPV4/PREFIX", value_parser = parse_cidr)]
    host_addr: Option<(Ipv4Addr, u8)>,
    /// UDP echo port (0 disables the service).
    #[arg(long, default_value_t = 7, value_name = "PORT")]
    udp_echo_port: u16,
    /// TCP echo port (0 disables the service).
    #[arg(long, default_value_t = 7, value_name = "PORT")]
    tcp_echo_port: u16,
    /// TCP discard port (0 disables the service).
    #[arg(long, default_value_t = 9, value_name = "PORT")]
    tcp_discard_port: u16,
    /// UDP time service port (0 disables the service).
    #[arg(long, default_value_t = 9000, value_name = "PORT")]
    udp_time_port: u16,
    /// Print the counters every SECS seconds (0: only at exit).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    stats_interval: u64,
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Commands::Run(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tunstack: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(args: RunArgs) -> std::io::Result<()> {
    let config = Config {
        addr: args.addr,
        tun_name: args.tun.clone(),
        mtu: args.mtu,
        host_addr: args.host_addr,
        pcap: args.pcap.clone(),
        prefix_len: args.host_addr.map(|(_, p)| p).unwrap_or(24),
        ..Config::default()
    };
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })
    .map_err(std::io::Error::other)?;

    let stack = Stack::new(config)?;
    let mut services = Vec::new();
    if args.udp_echo_port != 0 {
        services.push(services::udp_echo(&stack, args.udp_echo_port)?);
    }
    if args.tcp_echo_port != 0 {
        services.push(services::tcp_echo(&stack, args.tcp_echo_port)?);
    }
    if args.tcp_discard_port != 0 {
        services.push(services::tcp_discard(&stack, args.tcp_discard_port)?);
    }
    if args.udp_time_port != 0 {
        services.push(services::udp_time(&stack, args.udp_time_port)?);
    }
    println!(
        "tunstack: {} up on {} (mtu {}); udp echo :{}, udp time :{}{}",
        stack.addr(),
        args.tun,
        stack.mtu(),
        args.udp_echo_port,
        args.udp_time_port,
        args.pcap
            .as_ref()
            .map(|p| format!("; capturing to {}", p.display()))
            .unwrap_or_default()
    );
    let tick = if args.stats_interval == 0 {
        crossbeam_channel::never()
    } else {
        crossbeam_channel::tick(Duration::from_secs(args.stats_interval))
    };
    loop {
        crossbeam_channel::select! {
            recv(stop_rx) -> _ => break,
            recv(tick) -> _ => {
                if let Ok(s) = stack.stats() {
                    println!("{s}");
                }
            }
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
