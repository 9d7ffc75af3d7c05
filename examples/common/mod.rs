//! What every example shares: the flags that put a stack on a TUN device,
//! reading input lines, and waiting for TCP connections to finish closing.
//!
//! Each example uses a subset of these helpers.
#![allow(dead_code)]

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tunstack::tcp::state::State;
use tunstack::{Config, Stack};

/// Where the stack runs: `--tun tun0 --addr 10.0.0.2`, as in the
/// documented network plan (the kernel side of the TUN is 10.0.0.1/24).
#[derive(clap::Args, Debug)]
pub struct StackArgs {
    /// TUN device to attach to (created if it does not exist).
    #[arg(long, default_value = "tun0", value_name = "NAME")]
    pub tun: String,
    /// The stack's own IPv4 address.
    #[arg(long, default_value = "10.0.0.2", value_name = "IPV4")]
    pub addr: Ipv4Addr,
    /// Also give the kernel side of the TUN this address (e.g. 10.0.0.1/24)
    /// and bring it up.
    #[arg(long, value_name = "IPV4/PREFIX", value_parser = parse_cidr)]
    pub host_addr: Option<(Ipv4Addr, u8)>,
    /// Record every packet in and out to this pcap file (open it in Wireshark
    /// to watch the three-way handshake and the four-way close).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

impl StackArgs {
    /// Starts the stack on the TUN device. Logs go to stderr (`RUST_LOG`,
    /// default `warn`).
    pub fn start(&self) -> io::Result<Stack> {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
        let config = Config {
            addr: self.addr,
            tun_name: self.tun.clone(),
            host_addr: self.host_addr,
            prefix_len: self.host_addr.map_or(24, |(_, p)| p),
            pcap: self.pcap.clone(),
            ..Config::default()
        };
        let stack = Stack::new(config).map_err(|e| {
            io::Error::new(e.kind(), format!("starting tunstack on {}: {e}", self.tun))
        })?;
        eprintln!("tunstack: {} up on {}", stack.addr(), self.tun);
        Ok(stack)
    }
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or("expected IPV4/PREFIX, e.g. 10.0.0.1/24")?;
    let ip = ip.parse().map_err(|e| format!("bad address {ip:?}: {e}"))?;
    let prefix = prefix
        .parse()
        .ok()
        .filter(|&p: &u8| p <= 32)
        .ok_or(format!("bad prefix {prefix:?}"))?;
    Ok((ip, prefix))
}

/// Reads one line from stdin, without its line ending; `None` at end of
/// input. Shows `prompt` first when stdin is a terminal.
pub fn read_line(prompt: &str) -> Option<String> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        print!("{prompt}");
        let _ = io::stdout().flush();
    }
    let mut line = String::new();
    match stdin.lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// Splits what one `recv` returned into messages. The tutorial's Python
/// programs send each message bare (`s.send(msg.encode())`), so one read is
/// one message; a line-based peer (`nc`) sends `msg\n`, possibly several per
/// read. Returns the messages and whether the peer ends them with newlines
/// (so replies can be framed the same way).
pub fn split_messages(chunk: &[u8]) -> (Vec<String>, bool) {
    let text = String::from_utf8_lossy(chunk);
    if !text.contains('\n') {
        return (vec![text.into_owned()], false);
    }
    let lines = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (lines, true)
}

/// Waits (up to `limit`) until every TCP connection has finished its close
/// (or sits in TIME-WAIT), so the FIN exchange completes before the stack
/// goes away with the process.
pub fn wait_for_closes(stack: &Stack, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let open = stack.tcp_connections().map_or(0, |conns| {
            conns
                .iter()
                .filter(|c| !matches!(c.state, State::TimeWait | State::Closed))
                .count()
        });
        if open == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
