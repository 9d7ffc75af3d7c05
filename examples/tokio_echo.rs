//! A TCP echo server written the tokio way, on tunstack's tokio sockets
//! (`--features tokio`): one tokio task per connection, `tokio::io::copy`
//! between the halves of the stream.
//!
//! ```sh
//! cargo run --release --features tokio --example tokio_echo -- --tun tun0 --port 7000
//! # from the kernel side:
//! echo hello | nc -q1 10.0.0.2 7000
//! ```

use std::net::Ipv4Addr;

use clap::Parser;
use tunstack::tokio::TcpListener;
use tunstack::{Config, Stack};

/// A tokio echo server on tunstack.
#[derive(Parser)]
struct Args {
    /// TUN device to attach to (created if missing).
    #[arg(long, default_value = "tun0")]
    tun: String,
    /// The stack's address.
    #[arg(long, default_value = "10.0.0.2")]
    addr: Ipv4Addr,
    /// Record every packet to this pcap file.
    #[arg(long)]
    pcap: Option<std::path::PathBuf>,
    /// Port to serve.
    #[arg(long, default_value_t = 7000)]
    port: u16,
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("tokio_echo: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let stack = Stack::new(Config {
        addr: args.addr,
        tun_name: args.tun.clone(),
        pcap: args.pcap.clone(),
        ..Config::default()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(stack.handle(), ("0.0.0.0", args.port)).await?;
        println!("tokio echo on {}:{}", stack.addr(), args.port);
        loop {
            let (stream, peer) = listener.accept().await?;
            log::debug!("connection from {peer}");
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                if let Err(e) = tokio::io::copy(&mut r, &mut w).await {
                    log::debug!("{peer}: {e}");
                }
            });
        }
    })
}
