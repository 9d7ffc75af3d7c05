//! The tutorial's UDP time client (`time_client.py`), on tunstack.
//!
//! Reads strftime formats from stdin (an empty line asks for the default,
//! `%Y-%m-%d %X`), sends each to `--server` (10.0.0.1:9000) and prints the
//! time it answers. `bye`, `quit` or the end of stdin stops it.
//!
//! ```text
//! printf '%%H:%%M:%%S\n\n' | time_client --tun tun0 --addr 10.0.0.2 --server 10.0.0.1:9000
//! ```

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::{read_line, StackArgs};
use tunstack::UdpSocket;

/// The tutorial's UDP time client, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The time server.
    #[arg(long, default_value = "10.0.0.1:9000")]
    server: SocketAddr,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("time_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let socket = UdpSocket::bind(&stack, "0.0.0.0:0")?;
    socket.connect(args.server)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 2048];
    while let Some(format) = read_line("format (empty: %Y-%m-%d %X)> ") {
        if format == "bye" || format == "quit" {
            break;
        }
        socket.send(format.as_bytes())?;
        match socket.recv(&mut buf) {
            Ok(n) => println!("{}", String::from_utf8_lossy(&buf[..n])),
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
