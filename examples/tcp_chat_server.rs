//! The tutorial's TCP chat server (`tcp_server.py`), on tunstack.
//!
//! Listens on `--port` (8888), accepts one client at a time and chats:
//! each message from the client is printed, and answered with a line typed
//! here. Either side ends the conversation by sending `bye`; the server then
//! closes the connection (the four-way close) and waits for the next client
//! (`--once`: exits instead).
//!
//! A `bye` from the client is answered with `bye`, unless the client closes
//! its side right after sending it (as the tutorial's client does): data
//! sent to a closed socket only draws a RST, which would spoil the clean
//! four-way close.
//!
//! Scripting: with `--auto-reply` every message is answered `echo: <msg>`.
//! Without it, replies are read from stdin (a terminal or a pipe); when
//! stdin ends, the server switches to auto-reply.
//!
//! Framing follows the peer: the tutorial's client sends each message bare
//! (one `send` per message, no newline) and gets bare replies; a line-based
//! client such as `nc` sends `msg\n` and gets `reply\n`.
//!
//! ```text
//! tcp_chat_server --tun tun0 --addr 10.0.0.2 --port 8888 --auto-reply
//! ```

mod common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::{read_line, split_messages, wait_for_closes, StackArgs};
use tunstack::{TcpListener, TcpStream};

/// The tutorial's TCP chat server, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Port to listen on.
    #[arg(long, default_value_t = 8888)]
    port: u16,
    /// Answer every message with `echo: <msg>` (and `bye` with `bye`)
    /// instead of reading replies from stdin.
    #[arg(long)]
    auto_reply: bool,
    /// Exit after the first conversation.
    #[arg(long)]
    once: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_chat_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let listener = TcpListener::bind(&stack, ("0.0.0.0", args.port))?;
    println!("waiting for a connection on {}:{}", stack.addr(), args.port);
    let mut auto_reply = args.auto_reply;
    loop {
        let (stream, peer) = listener.accept()?;
        println!("connected by {peer}");
        match converse(&stream, peer, &mut auto_reply) {
            Ok(()) => println!("conversation with {peer} over"),
            Err(e) => println!("conversation with {peer} failed: {e}"),
        }
        drop(stream);
        if args.once {
            break;
        }
    }
    drop(listener);
    wait_for_closes(&stack, Duration::from_secs(3));
    Ok(())
}

/// Chats with one client until either side says `bye` or the client closes.
fn converse(stream: &TcpStream, peer: SocketAddr, auto_reply: &mut bool) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = stream;
    let mut writer = stream;
    let mut buf = [0u8; 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            println!("{peer} closed the connection");
            return Ok(());
        }
        let (messages, newline) = split_messages(&buf[..n]);
        for msg in messages {
            println!("{peer}: {msg}");
            if msg == "bye" && peer_has_closed(stream)? {
                // The tutorial's client closes right after its `bye`;
                // a reply would only draw a RST from its kernel.
                return Ok(());
            }
            let reply = if msg == "bye" {
                "bye".to_string()
            } else {
                reply_to(&msg, auto_reply)
            };
            let framed = if newline {
                format!("{reply}\n")
            } else {
                reply.clone()
            };
            writer.write_all(framed.as_bytes())?;
            if reply == "bye" {
                return Ok(());
            }
        }
    }
}

/// Whether the peer's FIN follows at once (within 100 ms) what it sent.
fn peer_has_closed(stream: &TcpStream) -> io::Result<bool> {
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut reader = stream;
    let closed = matches!(reader.read(&mut [0u8; 64]), Ok(0));
    stream.set_read_timeout(None)?;
    Ok(closed)
}

/// The reply to `msg`: typed on stdin, or `echo: <msg>` in auto-reply mode
/// (which stdin running out switches on).
fn reply_to(msg: &str, auto_reply: &mut bool) -> String {
    if !*auto_reply {
        match read_line("reply> ") {
            Some(line) => return line,
            None => {
                eprintln!("(stdin ended: replying automatically from now on)");
                *auto_reply = true;
            }
        }
    }
    format!("echo: {msg}")
}
