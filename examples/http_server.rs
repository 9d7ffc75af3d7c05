//! tunstack's built-in HTTP/1.1 server ([`tunstack::services::http`]) on its
//! own: a status page with the live connection table at `/`, and
//! `/bytes/N` for N bytes of a test pattern (byte i is `i % 251`).
//!
//! ```text
//! http_server --tun tun0 --addr 10.0.0.2 --port 80
//! curl http://10.0.0.2/            # from the kernel side of the TUN
//! curl -o /dev/null http://10.0.0.2/bytes/100000000
//! ```

mod common;

use std::io;
use std::process::ExitCode;

use clap::Parser;
use common::StackArgs;
use tunstack::services::http;

/// The HTTP server, running on tunstack.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Port to listen on.
    #[arg(long, default_value_t = 80)]
    port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let stack = args.stack.start()?;
    http::serve(&stack, args.port)?;
    println!("http server on http://{}:{}/", stack.addr(), args.port);
    // The server runs as tasks on the stack's own thread until the process
    // is interrupted.
    loop {
        std::thread::park();
    }
}
