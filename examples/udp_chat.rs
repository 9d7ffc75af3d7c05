//! The tutorial's QQ-style UDP chat (`udp_chat.py`), on tunstack.
//!
//! Two peers, each bound to a port, each sending to the other. Two threads,
//! as in the tutorial: one reads lines from stdin and sends them to
//! `--peer`, the other prints whatever arrives. Sending or receiving `bye`
//! ends the chat. When stdin ends (a script), the program stops sending but
//! keeps printing until the peer says `bye` (or Ctrl-C).
//!
//! ```text
//! udp_chat --tun tun0 --addr 10.0.0.2 --port 9001 --peer 10.0.0.1:9002
//! ```

mod common;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::{read_line, StackArgs};
use tunstack::UdpSocket;

/// The tutorial's two-way UDP chat, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Local port.
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// The other peer.
    #[arg(long, default_value = "10.0.0.1:9002")]
    peer: SocketAddr,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp_chat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let socket = Arc::new(UdpSocket::bind(&stack, ("0.0.0.0", args.port))?);
    println!(
        "chatting on {}:{} with {} (type bye to end)",
        stack.addr(),
        args.port,
        args.peer
    );
    let done = Arc::new(AtomicBool::new(false));

    // The sending thread.
    let sender = {
        let socket = socket.clone();
        let done = done.clone();
        let peer = args.peer;
        std::thread::spawn(move || -> io::Result<()> {
            while let Some(line) = read_line("") {
                if done.load(Ordering::Acquire) {
                    break;
                }
                socket.send_to(line.as_bytes(), peer)?;
                if line == "bye" {
                    done.store(true, Ordering::Release);
                    break;
                }
            }
            Ok(())
        })
    };

    // The receiving side, on this thread; it polls `done` between reads.
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = vec![0u8; 65_536];
    while !done.load(Ordering::Acquire) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                println!("{from}: {msg}");
                if msg.trim_end() == "bye" {
                    done.store(true, Ordering::Release);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    println!("chat over");
    // The sender may be blocked reading stdin; only wait for it if it finished.
    if sender.is_finished() {
        if let Ok(result) = sender.join() {
            result?;
        }
    }
    Ok(())
}
