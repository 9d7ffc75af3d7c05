//! The kernel rival of `scripts/bench.sh`: the same three services as
//! `tunstack run` (TCP echo on 7, discard on 9, the bulk source on 5001),
//! served on kernel sockets by an event-driven server: one thread, a tokio
//! current-thread runtime (epoll), one task per connection.
//!
//! ```text
//! bench_kernel_server [--addr 10.0.0.2] [--echo-port 7] [--discard-port 9] [--source-port 5001]
//! bench_kernel_server --addr fd00::2           # the same over IPv6
//! ```
//!
//! The bulk source: the client sends an ASCII decimal byte count and "\n";
//! the server sends that many bytes (byte i = i % 251) and closes.
//! Prints "bench_kernel_server: ready ..." once listening; runs until killed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Period of the bulk source's pattern.
const PERIOD: usize = 251;
/// Longest request line the source accepts.
const MAX_REQUEST: usize = 32;
/// Write size of the source.
const SOURCE_CHUNK: usize = 256 * 1024;
/// Read size of discard.
const DISCARD_CHUNK: usize = 256 * 1024;
/// Read size of echo (the same as tunstack's echo).
const ECHO_CHUNK: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "bench_kernel_server",
    about = "Kernel-TCP echo/discard/source server for scripts/bench.sh"
)]
struct Args {
    /// Address to listen on, IPv4 or IPv6 (e.g. 10.0.0.2 or fd00::2).
    #[arg(long, default_value = "0.0.0.0")]
    addr: IpAddr,
    /// TCP echo port (0 disables it).
    #[arg(long, default_value_t = 7)]
    echo_port: u16,
    /// TCP discard port (0 disables it).
    #[arg(long, default_value_t = 9)]
    discard_port: u16,
    /// TCP bulk source port (0 disables it).
    #[arg(long, default_value_t = 5001)]
    source_port: u16,
    /// listen() backlog (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
}

#[derive(Clone, Copy, Debug)]
enum Service {
    Echo,
    Discard,
    Source,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_kernel_server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_kernel_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn serve(args: Args) -> io::Result<()> {
    // The source's pattern, one period longer than a chunk so a chunk can
    // start at any phase; shared by every source connection.
    let pattern: Rc<[u8]> = (0..SOURCE_CHUNK + PERIOD)
        .map(|i| (i % PERIOD) as u8)
        .collect();
    let mut ports = Vec::new();
    for (port, service) in [
        (args.echo_port, Service::Echo),
        (args.discard_port, Service::Discard),
        (args.source_port, Service::Source),
    ] {
        if port == 0 {
            continue;
        }
        let addr = SocketAddr::new(args.addr, port);
        let listener = listen(addr, args.backlog)
            .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
        ports.push(format!("{service:?} {port}").to_lowercase());
        let pattern = pattern.clone();
        tokio::task::spawn_local(accept_loop(listener, service, pattern));
    }
    println!(
        "bench_kernel_server: ready on {}: {}",
        args.addr,
        ports.join(", ")
    );
    std::future::pending::<()>().await;
    Ok(())
}

async fn accept_loop(listener: TcpListener, service: Service, pattern: Rc<[u8]>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let pattern = pattern.clone();
                tokio::task::spawn_local(async move {
                    // A connection's error (a reset, say) ends that connection only.
                    let _ = match service {
                        Service::Echo => echo(stream).await,
                        Service::Discard => discard(stream).await,
                        Service::Source => source(stream, &pattern).await,
                    };
                });
            }
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                eprintln!("bench_kernel_server: accept ({service:?}): {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; ECHO_CHUNK];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return s.shutdown().await;
        }
        s.write_all(&buf[..n]).await?;
    }
}

async fn discard(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; DISCARD_CHUNK];
    while s.read(&mut buf).await? != 0 {}
    s.shutdown().await
}

async fn source(mut s: TcpStream, pattern: &[u8]) -> io::Result<()> {
    let mut line = Vec::with_capacity(MAX_REQUEST);
    let mut buf = [0u8; MAX_REQUEST];
    let count: u64 = loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            let parsed = std::str::from_utf8(&line[..end])
                .ok()
                .and_then(|l| l.trim().parse().ok());
            match parsed {
                Some(count) => break count,
                None => return s.shutdown().await,
            }
        }
        if line.len() >= MAX_REQUEST {
            return s.shutdown().await;
        }
    };
    let mut sent = 0u64;
    while sent < count {
        let start = (sent % PERIOD as u64) as usize;
        let n = (count - sent).min(SOURCE_CHUNK as u64) as usize;
        s.write_all(&pattern[start..start + n]).await?;
        sent += n as u64;
    }
    s.shutdown().await
}
