//! tunstack's tokio sockets (`--features tokio`): tokio's own I/O helpers
//! and tasks over two tunstack stacks back to back on an in-memory link.
#![cfg(feature = "tokio")]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tunstack::device::memory;
use tunstack::tokio::{TcpListener, TcpStream};
use tunstack::{Config, Stack};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// An echo server written the tokio way: `tokio::io::copy` between the
/// halves of each accepted stream, one task per connection.
async fn echo_server(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let (mut r, mut w) = stream.into_split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

#[test]
fn fifty_concurrent_clients_get_a_megabyte_each_echoed_through_tokio_io_copy() {
    let (server, client) = pair();
    let rt = runtime();
    rt.block_on(async {
        let listener = TcpListener::bind(server.handle(), "0.0.0.0:7")
            .await
            .expect("bind");
        tokio::spawn(echo_server(listener));
        let mut clients = Vec::new();
        for c in 0..50u32 {
            let handle = client.handle().clone();
            clients.push(tokio::spawn(async move {
                let addr = SocketAddr::V4(SocketAddrV4::new(SERVER, 7));
                let stream = TcpStream::connect(&handle, addr).await?;
                let data: Vec<u8> = (0..1_000_000u32).map(|i| (i ^ c) as u8).collect();
                let (mut r, mut w) = stream.into_split();
                let expected = data.clone();
                let writer = tokio::spawn(async move {
                    w.write_all(&data).await?;
                    w.shutdown().await
                });
                let mut back = Vec::with_capacity(expected.len());
                r.read_to_end(&mut back).await?;
                writer.await.map_err(std::io::Error::other)??;
                Ok::<bool, std::io::Error>(back == expected)
            }));
        }
        for (i, c) in clients.into_iter().enumerate() {
            let ok = tokio::time::timeout(Duration::from_secs(60), c)
                .await
                .expect("client finished in time")
                .expect("client task")
                .expect("client I/O");
            assert!(ok, "client {i}: echoed bytes differ");
        }
    });
}

#[test]
fn split_halves_read_and_write_concurrently_and_shutdown_sends_eof() {
    let (server, client) = pair();
    let rt = runtime();
    rt.block_on(async {
        let listener = TcpListener::bind(server.handle(), "0.0.0.0:9000")
            .await
            .expect("bind");
        let accept = tokio::spawn(async move { listener.accept().await });
        let addr = SocketAddr::V4(SocketAddrV4::new(SERVER, 9000));
        let mut c = TcpStream::connect(client.handle(), addr)
            .await
            .expect("connect");
        let (mut s, peer) = accept.await.expect("task").expect("accept");
        assert_eq!(peer.ip(), CLIENT);
        let (mut cr, mut cw) = c.split();
        cw.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.expect("server read");
        assert_eq!(&got, b"ping");
        s.write_all(b"pong").await.expect("server write");
        cr.read_exact(&mut got).await.expect("client read");
        assert_eq!(&got, b"pong");
        cw.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).await.expect("EOF"), 0);
    });
}

#[test]
fn udp_datagrams_are_awaited_peeked_and_connected() {
    use tunstack::tokio::UdpSocket;
    let (server, client) = pair();
    let rt = runtime();
    rt.block_on(async {
        let s = UdpSocket::bind(server.handle(), "0.0.0.0:9999")
            .await
            .expect("bind");
        let c = UdpSocket::bind(client.handle(), "0.0.0.0:0")
            .await
            .expect("bind");
        let server_addr = SocketAddr::V4(SocketAddrV4::new(SERVER, 9999));
        // A receive that waits, then the datagram that wakes it.
        let recv = tokio::spawn(async move {
            let mut buf = [0u8; 32];
            let (n, from) = s.peek_from(&mut buf).await?;
            assert_eq!(&buf[..n], b"first");
            let (n2, from2) = s.recv_from(&mut buf).await?;
            assert_eq!((n2, from2), (n, from), "the peeked datagram is still there");
            s.send_to(b"reply", from).await?;
            Ok::<SocketAddr, std::io::Error>(from)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.send_to(b"first", server_addr).await.expect("send");
        let from = recv.await.expect("task").expect("server");
        assert_eq!(from.port(), c.local_addr().expect("local").port());
        assert_eq!(from.ip(), CLIENT);
        c.connect(server_addr).await.expect("connect");
        let mut buf = [0u8; 32];
        let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf))
            .await
            .expect("reply in time")
            .expect("recv");
        assert_eq!(&buf[..n], b"reply");
    });
}
