//! The tutorial's UDP server (`udp_server.py`), on tunstack.
//!
//! Binds `--port` (9999) and answers every datagram with the same bytes,
//! printing who sent what; `--upper` answers with the text uppercased
//! instead. Runs until interrupted.
//!
//! ```text
//! udp_server --tun tun0 --addr 10.0.0.2 --port 9999
//! ```

mod common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use common::StackArgs;
use tunstack::UdpSocket;

/// The tutorial's UDP echo server, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Port to listen on.
    #[arg(long, default_value_t = 9999)]
    port: u16,
    /// Reply with the message uppercased instead of as-is.
    #[arg(long)]
    upper: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let socket = UdpSocket::bind(&stack, ("0.0.0.0", args.port))?;
    println!("udp server on {}:{}", stack.addr(), args.port);
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let text = String::from_utf8_lossy(&buf[..n]);
        println!("received from {from}: {}", text.trim_end());
        if args.upper {
            socket.send_to(text.to_uppercase().as_bytes(), from)?;
        } else {
            socket.send_to(&buf[..n], from)?;
        }
    }
}
