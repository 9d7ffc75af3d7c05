//! The tutorial's UDP time server (`time_server.py`), on tunstack.
//!
//! Each datagram is a strftime format; the reply is the local time in it.
//! An empty request means `%Y-%m-%d %X`. A format that cannot be rendered
//! gets an `error: ...` reply. Runs until interrupted.
//!
//! ```text
//! time_server --tun tun0 --addr 10.0.0.2 --port 9000
//! ```

mod common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use common::StackArgs;
use tunstack::services::format_time;
use tunstack::UdpSocket;

/// The tutorial's UDP time server, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Port to listen on.
    #[arg(long, default_value_t = 9000)]
    port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("time_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let socket = UdpSocket::bind(&stack, ("0.0.0.0", args.port))?;
    println!("time server on {}:{}", stack.addr(), args.port);
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let request = String::from_utf8_lossy(&buf[..n]);
        let reply = format_time(&request, chrono::Local::now());
        println!("{from} asked {:?}: {reply}", request.trim());
        socket.send_to(reply.as_bytes(), from)?;
    }
}
