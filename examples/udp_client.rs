//! The tutorial's UDP client (`udp_client.py`), on tunstack.
//!
//! Reads lines from stdin and sends each as one datagram to `--server`
//! (10.0.0.1:9999), then prints the reply (or `(no reply)` after
//! `--timeout` seconds: UDP may lose either datagram). An empty line, `bye`
//! or the end of stdin stops it.
//!
//! ```text
//! printf 'hello\nworld\n' | udp_client --tun tun0 --addr 10.0.0.2 --server 10.0.0.1:9999
//! ```

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::{read_line, StackArgs};
use tunstack::UdpSocket;

/// The tutorial's UDP client, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The UDP server.
    #[arg(long, default_value = "10.0.0.1:9999")]
    server: SocketAddr,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let socket = UdpSocket::bind(&stack, "0.0.0.0:0")?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad --timeout"))?;
    socket.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; 65_536];
    while let Some(line) = read_line("> ") {
        if line.is_empty() || line == "bye" {
            break;
        }
        socket.send_to(line.as_bytes(), args.server)?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => println!("{from}: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                println!("(no reply)");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
