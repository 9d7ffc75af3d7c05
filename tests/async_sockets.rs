//! The async API ([`tunstack::aio`]) and the built-in services that run on
//! it, on two stacks back to back on an in-memory link: a server
//! (10.0.0.2) running the services as tasks on its own thread, and a
//! client (10.0.0.1) using the blocking API or tasks of its own.
//!
//! Every wait is bounded, so a failing test fails instead of hanging.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tunstack::device::memory;
use tunstack::services::{self, http::pattern_byte};
use tunstack::{aio, Config, Stack, TcpStream};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const WAIT: Duration = Duration::from_secs(10);

fn at(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER, port))
}

fn pair() -> (Stack, Stack) {
    let (a, b) = memory::link(1500);
    let cfg = |addr, seed| Config {
        addr,
        seed: Some(seed),
        ..Config::default()
    };
    (
        Stack::with_device(cfg(SERVER, 1), a).expect("server stack"),
        Stack::with_device(cfg(CLIENT, 2), b).expect("client stack"),
    )
}

fn connect(client: &Stack, port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(client, &at(port), WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Threads of this process, from /proc.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn the_echo_service_returns_a_megabyte_byte_for_byte() {
    let (server, client) = pair();
    services::tcp_echo(&server, 7).expect("echo");
    let s = connect(&client, 7);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut back = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            (&s).write_all(&data).expect("write");
            s.shutdown(Shutdown::Write).expect("shutdown");
        });
        (&s).read_to_end(&mut back).expect("read");
    });
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
}

#[test]
fn the_discard_service_takes_everything_and_closes_after_the_client() {
    let (server, client) = pair();
    services::tcp_discard(&server, 9).expect("discard");
    let mut s = connect(&client, 9);
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..32 {
        s.write_all(&chunk).expect("write");
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).expect("EOF"),
        0,
        "discard sends nothing"
    );
}

#[test]
fn the_source_service_sends_the_count_asked_for_in_the_pattern() {
    let (server, client) = pair();
    services::tcp_source(&server, 5001).expect("source");
    let mut s = connect(&client, 5001);
    s.write_all(b"3000000\n").expect("request");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read");
    assert_eq!(got.len(), 3_000_000);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern_byte(i as u64)));
    // A malformed request just closes.
    let mut bad = connect(&client, 5001);
    bad.write_all(b"many\n").expect("request");
    let mut none = Vec::new();
    assert_eq!(bad.read_to_end(&mut none).expect("EOF"), 0);
}

#[test]
fn hundreds_of_connections_cost_tasks_not_threads() {
    let (server, client) = pair();
    services::tcp_echo(&server, 7).expect("echo");
    let before = threads();
    let mut streams = Vec::new();
    for i in 0..300u32 {
        let mut s = connect(&client, 7);
        s.write_all(&i.to_be_bytes()).expect("write");
        let mut back = [0u8; 4];
        s.read_exact(&mut back).expect("echo");
        assert_eq!(u32::from_be_bytes(back), i);
        streams.push(s);
    }
    let during = threads();
    assert!(
        during <= before + 2,
        "300 echo connections took {} threads ({before} before)",
        during - before
    );
    let conns = server.tcp_connections().expect("connections");
    assert!(
        conns.len() >= 300,
        "{} connections on the server",
        conns.len()
    );
}

#[test]
fn an_async_client_task_connects_writes_reads_and_sees_end_of_stream() {
    let (server, client) = pair();
    services::tcp_echo(&server, 7).expect("echo");
    let (tx, rx) = mpsc::channel();
    let handle = client.handle().clone();
    client
        .spawn(async move {
            let result = async {
                let s = aio::TcpStream::connect(&handle, at(7)).await?;
                s.write_all(b"hello, tasks").await?;
                s.shutdown(Shutdown::Write)?;
                let mut got = Vec::new();
                let mut buf = [0u8; 5];
                loop {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                Ok::<_, std::io::Error>(got)
            }
            .await;
            let _ = tx.send(result);
        })
        .expect("spawn");
    let got = rx
        .recv_timeout(WAIT)
        .expect("the task finished")
        .expect("io");
    assert_eq!(got, b"hello, tasks");
}

#[test]
fn a_refused_async_connect_fails_with_connection_refused() {
    let (_server, client) = pair();
    let (tx, rx) = mpsc::channel();
    let handle = client.handle().clone();
    client
        .spawn(async move {
            let r = aio::TcpStream::connect(&handle, at(4444)).await;
            let _ = tx.send(r.map(|_| ()).map_err(|e| e.kind()));
        })
        .expect("spawn");
    assert_eq!(
        rx.recv_timeout(WAIT).expect("the task finished"),
        Err(ErrorKind::ConnectionRefused)
    );
}

#[test]
fn sleep_and_timeout_run_on_the_stacks_timers() {
    let (_server, client) = pair();
    let (tx, rx) = mpsc::channel();
    let handle = client.handle().clone();
    client
        .spawn(async move {
            let start = Instant::now();
            aio::sleep(&handle, Duration::from_millis(50)).await;
            let slept = start.elapsed();
            let never = std::future::pending::<()>();
            let timed_out = aio::timeout(&handle, Duration::from_millis(30), never).await;
            let _ = tx.send((slept, timed_out.map_err(|e| e.kind())));
        })
        .expect("spawn");
    let (slept, timed_out) = rx.recv_timeout(WAIT).expect("the task finished");
    assert!(slept >= Duration::from_millis(50), "slept {slept:?}");
    assert_eq!(timed_out, Err(ErrorKind::TimedOut));
}

#[test]
fn a_blocking_call_from_a_task_fails_instead_of_deadlocking_the_stack() {
    let (server, client) = pair();
    services::tcp_echo(&server, 7).expect("echo");
    let (tx, rx) = mpsc::channel();
    // The blocking API needs a `Stack`; a task only has the handle, so the
    // closest mistake is a blocking call through a handle-based API: the
    // stats call below goes through the same blocking path.
    let stack_for_task = std::sync::Arc::new(client);
    let s2 = stack_for_task.clone();
    stack_for_task
        .spawn(async move {
            let _ = tx.send(s2.stats().map(|_| ()).map_err(|e| e.kind()));
        })
        .expect("spawn");
    assert_eq!(
        rx.recv_timeout(WAIT).expect("the task finished"),
        Err(ErrorKind::WouldBlock)
    );
    // The stack still works.
    assert!(stack_for_task.stats().is_ok());
}
