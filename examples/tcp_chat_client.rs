//! The tutorial's TCP chat client (`tcp_client.py`), on tunstack.
//!
//! Connects to `--server` (10.0.0.1:8888, the kernel side of the TUN), then
//! loops: read a line from stdin, send it, print the server's reply. Sending
//! or receiving `bye` ends the conversation, and the client closes (the
//! four-way close). The end of stdin counts as typing `bye`, so the client
//! is scriptable: `printf 'hello\nbye\n' | tcp_chat_client ...`.
//!
//! Messages go out bare, one `send` each, as the tutorial's Python programs
//! expect (its server compares `data == 'bye'`); `--newline` ends each with
//! `\n` instead, for line-based servers such as `nc -l`.
//!
//! ```text
//! tcp_chat_client --tun tun0 --addr 10.0.0.2 --server 10.0.0.1:8888
//! ```

mod common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::{read_line, split_messages, wait_for_closes, StackArgs};
use tunstack::TcpStream;

/// The tutorial's TCP chat client, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// The chat server to connect to.
    #[arg(long, default_value = "10.0.0.1:8888")]
    server: SocketAddr,
    /// End each message with a newline (for line-based servers).
    #[arg(long)]
    newline: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    let stream = TcpStream::connect_timeout(&stack, &args.server, Duration::from_secs(10))?;
    stream.set_nodelay(true)?;
    println!("connected to {} from {}", args.server, stream.local_addr()?);
    let result = chat(&stream, args.newline);
    drop(stream);
    wait_for_closes(&stack, Duration::from_secs(3));
    result
}

fn chat(stream: &TcpStream, newline: bool) -> io::Result<()> {
    let mut reader = stream;
    let mut writer = stream;
    let mut buf = [0u8; 1024];
    loop {
        let line = read_line("> ").unwrap_or_else(|| "bye".to_string());
        if line.is_empty() {
            continue;
        }
        let framed = if newline {
            format!("{line}\n")
        } else {
            line.clone()
        };
        writer.write_all(framed.as_bytes())?;
        if line == "bye" {
            return Ok(());
        }
        let n = reader.read(&mut buf)?;
        if n == 0 {
            println!("the server closed the connection");
            return Ok(());
        }
        for msg in split_messages(&buf[..n]).0 {
            println!("{msg}");
            if msg == "bye" {
                return Ok(());
            }
        }
    }
}
