//! An axum web application served over tunstack (`--features tokio`):
//! axum and hyper run unchanged on tunstack's tokio sockets, through a
//! small `axum::serve::Listener` adapter.
//!
//! ```sh
//! cargo run --release --features tokio --example axum_server -- --tun tun0 --port 8080
//! # from the kernel side:
//! curl http://10.0.0.2:8080/            # a greeting
//! curl http://10.0.0.2:8080/bytes/1000  # 1000 bytes of the i % 251 pattern
//! curl -d 'hello' http://10.0.0.2:8080/echo
//! ```

use std::net::{Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use tunstack::tokio::{TcpListener, TcpStream};
use tunstack::{Config, Stack};

/// axum on tunstack.
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
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// The largest body `/bytes/N` serves.
const MAX_BYTES: usize = 64 << 20;

/// tunstack's listener as an `axum::serve::Listener`.
struct Listener(TcpListener);

impl axum::serve::Listener for Listener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok(conn) => return conn,
                // Only a stopped stack fails here; axum retries forever, so
                // back off instead of spinning.
                Err(e) => {
                    log::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

async fn bytes(Path(n): Path<usize>) -> Result<Vec<u8>, (StatusCode, &'static str)> {
    if n > MAX_BYTES {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "at most 64 MiB\n"));
    }
    Ok((0..n).map(|i| (i % 251) as u8).collect())
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum on tunstack\n" }))
        .route("/bytes/{n}", get(bytes))
        .route("/echo", post(|body: Bytes| async move { body }))
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("axum_server: {e}");
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
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(stack.handle(), ("0.0.0.0", args.port)).await?;
        println!("axum on http://{}:{}/", stack.addr(), args.port);
        axum::serve(Listener(listener), app()).await
    })
}
