//! The benchmark client of `scripts/bench.sh`: one client, on kernel
//! sockets, for every rival (tunstack, smoltcp, the kernel itself).
//!
//! Each subcommand measures one figure against the three services that
//! every rival serves (TCP echo on 7, discard on 9, the bulk source on
//! 5001) and prints exactly one JSON line on standard output:
//!
//! ```text
//! bench_client send 10.0.0.2:9 --bytes N           # Gbit/s, client -> peer
//! bench_client recv 10.0.0.2:5001 --bytes N        # Gbit/s, peer -> client
//! bench_client send 10.0.0.2:9 --bytes N --streams 4   # aggregate of 4 connections
//! bench_client rr 10.0.0.2:7 --size 64 --count K   # request/response p50/p99 (µs)
//! bench_client crr 10.0.0.2:9 --duration 2 --concurrency 50   # connections/s
//! bench_client hold 10.0.0.2:7 --count 10000 --inflight 250   # idle connections
//! bench_client wait 10.0.0.2:9 --timeout 10        # until the peer accepts
//! bench_client rr '[fd00::2]:7' --count K          # any of them over IPv6
//! ```
//!
//! Errors go to standard error (which connection, which step, what the
//! socket said) with a non-zero exit status. Nothing waits forever: every
//! socket has read and write timeouts (`--idle-timeout`) and every
//! subcommand an overall deadline (`--timeout`).

use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// Write and read size of the bulk tests.
const CHUNK: usize = 256 * 1024;
/// The bulk source's pattern: byte i of a response is `i % PERIOD`.
const PERIOD: u64 = 251;
/// Bytes each held connection sends (and expects back).
const HOLD_PING: usize = 16;

#[derive(Parser, Debug)]
#[command(name = "bench_client", about = "Benchmark client for scripts/bench.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone, Copy)]
struct Timeouts {
    /// Give up on the whole subcommand after SECS seconds.
    #[arg(long, default_value_t = 120.0, value_name = "SECS")]
    timeout: f64,
    /// Give up on a socket that makes no progress (connect, read or write)
    /// for SECS seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    idle_timeout: f64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect, write --bytes in 256 KiB chunks, shut down the write side
    /// and read until the peer closes; Gbit/s from connect to EOF.
    Send {
        addr: SocketAddr,
        #[arg(long)]
        bytes: u64,
        /// Parallel connections, each sending --bytes / N; Gbit/s is the
        /// aggregate, from the first connect to the last EOF.
        #[arg(long, default_value_t = 1)]
        streams: u64,
        #[command(flatten)]
        t: Timeouts,
    },
    /// Connect, ask the bulk source for --bytes ("N\n"), read until EOF and
    /// check the count and the i % 251 pattern; Gbit/s from connect to EOF.
    Recv {
        addr: SocketAddr,
        #[arg(long)]
        bytes: u64,
        /// Parallel connections, each receiving --bytes / N (aggregate
        /// Gbit/s).
        #[arg(long, default_value_t = 1)]
        streams: u64,
        #[command(flatten)]
        t: Timeouts,
    },
    /// Request/response on one connection (TCP_NODELAY): --warmup untimed
    /// exchanges, then --count timed ones of --size bytes; p50/p99 in µs.
    Rr {
        addr: SocketAddr,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 200)]
        warmup: u64,
        #[command(flatten)]
        t: Timeouts,
    },
    /// Connect/close rate: --concurrency workers each loop on connect,
    /// shutdown(Write), read until EOF, close, for --duration seconds or
    /// --max-connections, whichever comes first.
    Crr {
        addr: SocketAddr,
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        duration: f64,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Stop after this many connections. Each leaves a TIME-WAIT
        /// connection holding a local port for 60 s; once Linux has handed
        /// out the even half of ip_local_port_range (32,256 ports with
        /// 1024-65535), every connect() searches the whole range and the
        /// rate collapses: the client would be measured, not the peer.
        #[arg(long, default_value_t = 30_000)]
        max_connections: u64,
        #[command(flatten)]
        t: Timeouts,
    },
    /// Open --count connections (at most --inflight handshakes at once),
    /// send 16 bytes on each and read the echo, print the count
    /// established, then hold them until a line (or EOF) on standard input,
    /// or --hold-secs, whichever comes first; then close them all.
    Hold {
        addr: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 250)]
        inflight: usize,
        #[arg(long, default_value_t = 300.0, value_name = "SECS")]
        hold_secs: f64,
        #[command(flatten)]
        t: Timeouts,
    },
    /// Retry connecting (connect, shutdown(Write), read until EOF) until the
    /// peer accepts, or fail after --timeout seconds.
    Wait {
        addr: SocketAddr,
        #[arg(long, default_value_t = 15.0, value_name = "SECS")]
        timeout: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send {
            addr,
            bytes,
            streams,
            t,
        } => parallel("send", addr, bytes, streams, t, send),
        Command::Recv {
            addr,
            bytes,
            streams,
            t,
        } => parallel("recv", addr, bytes, streams, t, recv),
        Command::Rr {
            addr,
            size,
            count,
            warmup,
            t,
        } => rr(addr, size, count, warmup, t),
        Command::Crr {
            addr,
            duration,
            concurrency,
            max_connections,
            t,
        } => crr(addr, duration, concurrency, max_connections, t),
        Command::Hold {
            addr,
            count,
            inflight,
            hold_secs,
            t,
        } => hold(addr, count, inflight, hold_secs, t),
        Command::Wait { addr, timeout } => wait(addr, timeout),
    };
    match result {
        Ok(json) => {
            if !json.is_empty() {
                println!("{json}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_client: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.001))
}

/// Describes a socket error, naming timeouts as such.
fn describe(e: &io::Error, idle: Duration) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("timed out (no progress for {:.1} s)", idle.as_secs_f64())
        }
        _ if e.raw_os_error() == Some(EADDRNOTAVAIL) => format!(
            "{e}: no local port left (TIME-WAIT connections hold them: \
             widen net.ipv4.ip_local_port_range or lower --max-connections)"
        ),
        _ => e.to_string(),
    }
}

/// Linux's errno for "Cannot assign requested address".
const EADDRNOTAVAIL: i32 = 99;

/// Connects with a timeout and sets read/write timeouts on the stream.
fn connect(addr: SocketAddr, idle: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, idle)?;
    s.set_read_timeout(Some(idle))?;
    s.set_write_timeout(Some(idle))?;
    Ok(s)
}

fn check_deadline(deadline: Instant, what: impl FnOnce() -> String) -> Result<()> {
    if Instant::now() > deadline {
        Err(format!("{}: overall --timeout exceeded", what()))
    } else {
        Ok(())
    }
}

/// Reads until EOF, returning the number of bytes read.
fn read_to_eof(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::other("overall --timeout exceeded"));
        }
        match s.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn gbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9
}

/// Runs `run` (send or recv) on `streams` connections at once, each with
/// its share of `bytes`; one stream is `run` itself. The aggregate Gbit/s
/// counts from the start to the last stream's end.
fn parallel(
    test: &str,
    addr: SocketAddr,
    bytes: u64,
    streams: u64,
    t: Timeouts,
    run: fn(SocketAddr, u64, Timeouts) -> Result<String>,
) -> Result<String> {
    if streams <= 1 {
        return run(addr, bytes, t);
    }
    let each = bytes / streams;
    let start = Instant::now();
    let workers: Vec<_> = (0..streams)
        .map(|_| std::thread::spawn(move || run(addr, each, t)))
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        w.join()
            .map_err(|_| format!("{test} stream {i} panicked"))?
            .map_err(|e| format!("{test} stream {i} of {streams}: {e}"))?;
    }
    let elapsed = start.elapsed();
    let total = each * streams;
    Ok(format!(
        r#"{{"test":"{test}","addr":"{addr}","streams":{streams},"bytes":{total},"secs":{:.6},"gbps":{:.4}}}"#,
        elapsed.as_secs_f64(),
        gbps(total, elapsed)
    ))
}

fn send(addr: SocketAddr, bytes: u64, t: Timeouts) -> Result<String> {
    let idle = secs(t.idle_timeout);
    let deadline = Instant::now() + secs(t.timeout);
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut s = connect(addr, idle)
        .map_err(|e| format!("send: connect to {addr}: {}", describe(&e, idle)))?;
    let mut sent = 0u64;
    while sent < bytes {
        check_deadline(deadline, || {
            format!("send to {addr}: after {sent} of {bytes} bytes")
        })?;
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        match s.write(&buf[..n]) {
            Ok(0) => {
                return Err(format!(
                    "send to {addr}: peer stopped accepting after {sent} of {bytes} bytes"
                ))
            }
            Ok(w) => sent += w as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "send to {addr}: write after {sent} of {bytes} bytes: {}",
                    describe(&e, idle)
                ))
            }
        }
    }
    let written = start.elapsed();
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("send to {addr}: shutdown(Write) after {sent} bytes: {e}"))?;
    let mut rbuf = [0u8; 4096];
    let extra = read_to_eof(&mut s, &mut rbuf, deadline).map_err(|e| {
        format!(
            "send to {addr}: waiting for the peer's close after {sent} bytes: {}",
            describe(&e, idle)
        )
    })?;
    let elapsed = start.elapsed();
    if extra != 0 {
        return Err(format!(
            "send to {addr}: the discard peer sent {extra} bytes back"
        ));
    }
    Ok(format!(
        r#"{{"test":"send","addr":"{addr}","bytes":{bytes},"secs":{:.6},"written_secs":{:.6},"gbps":{:.4}}}"#,
        elapsed.as_secs_f64(),
        written.as_secs_f64(),
        gbps(bytes, elapsed)
    ))
}

fn recv(addr: SocketAddr, bytes: u64, t: Timeouts) -> Result<String> {
    let idle = secs(t.idle_timeout);
    let deadline = Instant::now() + secs(t.timeout);
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut s = connect(addr, idle)
        .map_err(|e| format!("recv: connect to {addr}: {}", describe(&e, idle)))?;
    s.write_all(format!("{bytes}\n").as_bytes()).map_err(|e| {
        format!(
            "recv from {addr}: sending the request: {}",
            describe(&e, idle)
        )
    })?;
    let mut got = 0u64;
    loop {
        check_deadline(deadline, || {
            format!("recv from {addr}: after {got} of {bytes} bytes")
        })?;
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format!(
                    "recv from {addr}: read after {got} of {bytes} bytes: {}",
                    describe(&e, idle)
                ))
            }
        };
        // Spot-check the pattern: first, middle and last byte of each read.
        for i in [0, n / 2, n - 1] {
            let offset = got + i as u64;
            let want = (offset % PERIOD) as u8;
            if buf[i] != want {
                return Err(format!(
                    "recv from {addr}: byte {offset} is {} instead of {want} (i % {PERIOD})",
                    buf[i]
                ));
            }
        }
        got += n as u64;
        if got > bytes {
            return Err(format!(
                "recv from {addr}: got {got} bytes, more than the {bytes} asked for"
            ));
        }
    }
    let elapsed = start.elapsed();
    if got != bytes {
        return Err(format!(
            "recv from {addr}: EOF after {got} of {bytes} bytes"
        ));
    }
    Ok(format!(
        r#"{{"test":"recv","addr":"{addr}","bytes":{bytes},"secs":{:.6},"gbps":{:.4}}}"#,
        elapsed.as_secs_f64(),
        gbps(bytes, elapsed)
    ))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn rr(addr: SocketAddr, size: usize, count: u64, warmup: u64, t: Timeouts) -> Result<String> {
    if size == 0 || count == 0 {
        return Err("rr: --size and --count must be positive".into());
    }
    let idle = secs(t.idle_timeout);
    let deadline = Instant::now() + secs(t.timeout);
    let mut s = connect(addr, idle)
        .map_err(|e| format!("rr: connect to {addr}: {}", describe(&e, idle)))?;
    s.set_nodelay(true)
        .map_err(|e| format!("rr: TCP_NODELAY: {e}"))?;
    let request: Vec<u8> = (0..size as u64).map(|i| (i % PERIOD) as u8).collect();
    let mut response = vec![0u8; size];
    let mut samples = Vec::with_capacity(count as usize);
    for i in 0..warmup + count {
        if i % 256 == 0 {
            check_deadline(deadline, || format!("rr with {addr}: after {i} exchanges"))?;
        }
        let t0 = Instant::now();
        s.write_all(&request).map_err(|e| {
            format!(
                "rr with {addr}: exchange {i}: write: {}",
                describe(&e, idle)
            )
        })?;
        s.read_exact(&mut response)
            .map_err(|e| format!("rr with {addr}: exchange {i}: read: {}", describe(&e, idle)))?;
        let dt = t0.elapsed();
        if response != request {
            return Err(format!(
                "rr with {addr}: exchange {i}: the echo differs from the request"
            ));
        }
        if i >= warmup {
            samples.push(dt.as_nanos() as u64);
        }
    }
    // Close cleanly; the figure is already measured.
    let _ = s.shutdown(Shutdown::Write);
    let _ = read_to_eof(
        &mut s,
        &mut response,
        Instant::now() + Duration::from_secs(2),
    );
    samples.sort_unstable();
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    Ok(format!(
        r#"{{"test":"rr","addr":"{addr}","size":{size},"count":{count},"p50_us":{:.2},"p99_us":{:.2},"mean_us":{mean:.2},"min_us":{:.2},"max_us":{:.2}}}"#,
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples[0] as f64 / 1000.0,
        samples[samples.len() - 1] as f64 / 1000.0,
    ))
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn crr(
    addr: SocketAddr,
    duration: f64,
    concurrency: usize,
    max_connections: u64,
    t: Timeouts,
) -> Result<String> {
    if concurrency == 0 {
        return Err("crr: --concurrency must be positive".into());
    }
    let idle = secs(t.idle_timeout);
    // Connections started (against --max-connections) and completed.
    let started = AtomicU64::new(0);
    let completed = AtomicU64::new(0);
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let start = Instant::now();
    let stop = start + secs(duration);
    let hard_deadline = start + secs(t.timeout.max(duration + 1.0));
    std::thread::scope(|scope| {
        for worker in 0..concurrency {
            let (started, completed, errors) = (&started, &completed, &errors);
            let spawned = std::thread::Builder::new()
                .name(format!("crr-{worker}"))
                .spawn_scoped(scope, move || {
                    let mut buf = [0u8; 512];
                    let mut n = 0u64;
                    while Instant::now() < stop
                        && started.fetch_add(1, Ordering::Relaxed) < max_connections
                    {
                        let step = |stage: &str, e: io::Error| {
                            format!(
                                "crr to {addr}: worker {worker}, connection {n}: {stage}: {}",
                                describe(&e, idle)
                            )
                        };
                        let one = (|| -> Result<()> {
                            let mut s = connect(addr, idle).map_err(|e| step("connect", e))?;
                            s.shutdown(Shutdown::Write)
                                .map_err(|e| step("shutdown(Write)", e))?;
                            read_to_eof(&mut s, &mut buf, hard_deadline)
                                .map_err(|e| step("waiting for the peer's close", e))?;
                            Ok(())
                        })();
                        match one {
                            Ok(()) => {
                                n += 1;
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                errors.lock().unwrap().push(e);
                                return;
                            }
                        }
                    }
                });
            if let Err(e) = spawned {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("crr: cannot start worker {worker}: {e}"));
            }
        }
    });
    let elapsed = start.elapsed();
    let capped = started.load(Ordering::Relaxed) >= max_connections;
    let done = completed.load(Ordering::Relaxed);
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        let shown: Vec<&str> = errors.iter().take(5).map(String::as_str).collect();
        return Err(format!(
            "crr to {addr}: {} of {concurrency} workers failed ({done} connections completed); first errors:\n  {}",
            errors.len(),
            shown.join("\n  ")
        ));
    }
    if done == 0 {
        return Err(format!("crr to {addr}: no connection completed"));
    }
    Ok(format!(
        r#"{{"test":"crr","addr":"{addr}","concurrency":{concurrency},"connections":{done},"capped":{capped},"secs":{:.6},"cps":{:.1}}}"#,
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    ))
}

fn hold(
    addr: SocketAddr,
    count: u64,
    inflight: usize,
    hold_secs: f64,
    t: Timeouts,
) -> Result<String> {
    let idle = secs(t.idle_timeout);
    let deadline = Instant::now() + secs(t.timeout);
    let next = AtomicU64::new(0);
    let held: Mutex<Vec<TcpStream>> = Mutex::new(Vec::with_capacity(count as usize));
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let failed = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..inflight.max(1) {
            let (next, held, errors, failed) = (&next, &held, &errors, &failed);
            let spawned = std::thread::Builder::new()
                .name(format!("hold-{worker}"))
                .stack_size(64 * 1024)
                .spawn_scoped(scope, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || Instant::now() > deadline {
                        return;
                    }
                    let step = |stage: &str, e: io::Error| {
                        format!(
                            "hold {addr}: connection {i}: {stage}: {}",
                            describe(&e, idle)
                        )
                    };
                    let one = (|| -> Result<TcpStream> {
                        let mut s = connect(addr, idle).map_err(|e| step("connect", e))?;
                        let ping = [(i % PERIOD) as u8; HOLD_PING];
                        s.write_all(&ping).map_err(|e| step("write", e))?;
                        let mut echo = [0u8; HOLD_PING];
                        s.read_exact(&mut echo)
                            .map_err(|e| step("read the echo", e))?;
                        if echo != ping {
                            return Err(format!("hold {addr}: connection {i}: the echo differs"));
                        }
                        Ok(s)
                    })();
                    match one {
                        Ok(s) => held.lock().unwrap().push(s),
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut errors = errors.lock().unwrap();
                            if errors.len() < 5 {
                                errors.push(e);
                            }
                        }
                    }
                });
            if let Err(e) = spawned {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("hold: cannot start worker {worker}: {e}"));
                break;
            }
        }
    });
    let open_secs = start.elapsed().as_secs_f64();
    let held = held.into_inner().unwrap();
    let errors = errors.into_inner().unwrap();
    let established = held.len() as u64;
    for e in &errors {
        eprintln!("bench_client: {e}");
    }
    let not_tried = count - established - failed.load(Ordering::Relaxed);
    let first_error = errors.first().map(|e| json_str(e)).unwrap_or("null".into());
    println!(
        r#"{{"test":"hold","addr":"{addr}","requested":{count},"established":{established},"failed":{},"not_tried":{not_tried},"open_secs":{open_secs:.3},"first_error":{first_error}}}"#,
        failed.load(Ordering::Relaxed)
    );
    io::stdout()
        .flush()
        .map_err(|e| format!("hold: stdout: {e}"))?;
    // Hold until a line (or EOF) on standard input, or --hold-secs.
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut line = String::new();
            let _ = io::stdin().lock().read_line(&mut line);
            let _ = tx.send(());
        });
    let released_by = match rx.recv_timeout(secs(hold_secs)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => "stdin",
        Err(mpsc::RecvTimeoutError::Timeout) => "--hold-secs",
    };
    let held_for = start.elapsed().as_secs_f64() - open_secs;
    drop(held);
    if established == 0 {
        return Err(format!("hold {addr}: no connection established"));
    }
    eprintln!("bench_client: hold: released {established} connections after {held_for:.1} s (by {released_by})");
    // The result line was printed before the hold.
    Ok(String::new())
}

fn wait(addr: SocketAddr, timeout: f64) -> Result<String> {
    let start = Instant::now();
    let deadline = start + secs(timeout);
    let idle = Duration::from_millis(200);
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        let attempt = (|| -> io::Result<()> {
            let mut s = connect(addr, idle)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.shutdown(Shutdown::Write)?;
            let mut buf = [0u8; 512];
            read_to_eof(&mut s, &mut buf, deadline)?;
            Ok(())
        })();
        match attempt {
            Ok(()) => {
                return Ok(format!(
                    r#"{{"test":"wait","addr":"{addr}","secs":{:.3}}}"#,
                    start.elapsed().as_secs_f64()
                ))
            }
            Err(e) => last = describe(&e, idle),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "wait: {addr} did not accept a connection within {timeout} s (last error: {last})"
    ))
}
