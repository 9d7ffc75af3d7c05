//! Tests of the HTTP service: two stacks back to back on an in-memory link.
use super::*;
use crate::device::memory;
use crate::Config;
use crate::TcpStream;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};

const SERVER: &str = "10.0.0.2:80";

/// Two stacks back to back on an in-memory link: the server (10.0.0.2,
/// serving HTTP on port 80) and a client (10.0.0.1).
fn stacks() -> (Stack, Stack) {
    let (a, b) = memory::link(1500);
    let server = Stack::with_device(
        Config {
            seed: Some(1),
            ..Config::default()
        },
        a,
    )
    .expect("server stack starts");
    let client = Stack::with_device(
        Config {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            seed: Some(2),
            ..Config::default()
        },
        b,
    )
    .expect("client stack starts");
    serve(&server, 80).expect("http service starts");
    (server, client)
}

fn connect(client: &Stack) -> TcpStream {
    let s = TcpStream::connect(client, SERVER).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A response as the client read it.
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response; the body by its Content-Length unless `head_only`.
fn read_response(s: &mut TcpStream, head_only: bool) -> Response {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("reads the head"), 1, "EOF in head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("ASCII head");
    let status = head[9..12].parse().expect("a status code");
    let mut r = Response {
        status,
        head,
        body: Vec::new(),
    };
    if !head_only {
        let len: usize = r
            .header("content-length")
            .expect("Content-Length")
            .parse()
            .unwrap();
        r.body = vec![0; len];
        s.read_exact(&mut r.body).expect("reads the body");
    }
    r
}

/// Sends `raw`, reads one response, then expects the server to close.
fn exchange_and_close(client: &Stack, raw: &[u8], head_only: bool) -> Response {
    let mut s = connect(client);
    s.write_all(raw).unwrap();
    let r = read_response(&mut s, head_only);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("server closes cleanly");
    assert!(rest.is_empty(), "nothing after the response: {rest:?}");
    r
}

#[test]
fn root_page_names_the_stack_and_shows_the_clients_own_connection_established() {
    let (_server, client) = stacks();
    let mut s = connect(&client);
    let me = s.local_addr().unwrap().to_string();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("server")
        .is_some_and(|v| v.starts_with("tunstack/")));
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("tunstack"));
    let row = page
        .lines()
        .find(|l| l.starts_with("<tr>") && l.contains(&format!("<td>{me}</td>")))
        .unwrap_or_else(|| panic!("a row for {me} in\n{page}"));
    assert!(row.contains("<td>ESTABLISHED</td>"), "{row}");
    assert!(row.contains("<td>10.0.0.2:80</td>"), "{row}");
    assert!(page.contains("<pre>ip:"), "counters shown");
}

#[test]
fn bytes_n_returns_exactly_n_bytes_of_the_pattern() {
    let (_server, client) = stacks();
    let r = exchange_and_close(
        &client,
        b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body.len(), 100_000);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern_byte(i as u64)));
}

#[test]
fn head_bytes_has_the_length_and_no_body() {
    let (_server, client) = stacks();
    let r = exchange_and_close(
        &client,
        b"HEAD /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        true,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10"));
}

#[test]
fn unknown_path_is_404() {
    let (_server, client) = stacks();
    let r = exchange_and_close(
        &client,
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        false,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn other_methods_are_405_with_allow() {
    let (_server, client) = stacks();
    let r = exchange_and_close(
        &client,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        false,
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn garbage_gets_400_and_the_connection_closed() {
    let (_server, client) = stacks();
    let r = exchange_and_close(&client, b"\x00\xffhello there\r\n\r\n", false);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn bad_or_huge_n_is_400() {
    let (_server, client) = stacks();
    let mut s = connect(&client);
    for path in ["/bytes/abc", "/bytes/", "/bytes/10737418241", "/bytes/-1"] {
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).status, 400, "{path}");
    }
    // 10 GiB itself is accepted (HEAD, so nothing is sent).
    s.write_all(b"HEAD /bytes/10737418240 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(r.header("content-length"), Some("10737418240"));
}

#[test]
fn head_over_16_kib_is_400() {
    let (_server, client) = stacks();
    let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    raw.resize(MAX_HEAD + 10, b'a');
    raw.extend_from_slice(b"\r\n\r\n");
    let r = exchange_and_close(&client, &raw, false);
    assert_eq!(r.status, 400);
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let (_server, client) = stacks();
    let mut s = connect(&client);
    s.write_all(b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let first = read_response(&mut s, false);
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &[0u8, 1, 2][..])
    );
    assert_eq!(first.header("connection"), None);
    // The second request pipelined with a third that closes.
    s.write_all(
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s, false).status, 404);
    let third = read_response(&mut s, false);
    assert_eq!((third.status, third.body.as_slice()), (200, &[0u8][..]));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn http10_closes_unless_keep_alive_is_asked_for() {
    let (_server, client) = stacks();
    let r = exchange_and_close(&client, b"GET /bytes/2 HTTP/1.0\r\n\r\n", false);
    assert_eq!(r.header("connection"), Some("close"));
    let mut s = connect(&client);
    for _ in 0..2 {
        s.write_all(b"GET /bytes/2 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

fn parse(raw: &str) -> Result<Request, BadRequest> {
    parse_head(raw.as_bytes())
}

#[test]
fn parser_reads_paths_versions_and_connection_options() {
    let r = parse("GET http://h:80/bytes/5?x=1 HTTP/1.1\r\nHOST: h\r\n\r\n").unwrap();
    assert_eq!(
        (r.path.as_str(), r.keep_alive, r.http10),
        ("/bytes/5", true, false)
    );
    let r = parse("HEAD / HTTP/1.1\nHost: h\nConnection: foo, close\n\n").unwrap();
    assert!(!r.keep_alive);
    let r = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
    assert!(r.http10 && !r.keep_alive);
    let r = parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 7, 7\r\n\r\n").unwrap();
    assert_eq!(r.content_length, 7);
}

#[test]
fn parser_rejects_what_rfc_9112_says_to_reject() {
    for raw in [
        "GET / HTTP/1.1\r\n\r\n",                                    // no Host
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",              // two Hosts
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",                        // two spaces
        "GET / HTTP/1.1 x\r\nHost: h\r\n\r\n",                       // extra part
        "GET / HTTX/1.1\r\nHost: h\r\n\r\n",                         // version
        "GET nope HTTP/1.1\r\nHost: h\r\n\r\n",                      // target
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",                        // space before colon
        "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",              // obs-fold
        "GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n",             // no colon
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n", // conflicting
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", // control char
    ] {
        assert_eq!(parse(raw).map_err(|e| e.status), Err(400), "{raw:?}");
    }
    assert_eq!(
        parse("GET / HTTP/2.0\r\n\r\n").map_err(|e| e.status),
        Err(505)
    );
    let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(parse(chunked).map_err(|e| e.status), Err(501));
}

#[test]
fn parser_never_panics_on_arbitrary_bytes() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"GET /HTP1.0\r\n:, \x00\xffabc0123456789-HostContent-Length";
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| {
                let r = x.rotate_left(i as u32 * 5);
                if r % 4 == 0 {
                    r as u8
                } else {
                    alphabet[(r as usize >> 3) % alphabet.len()]
                }
            })
            .collect();
        let _ = parse_head(&bytes);
        let _ = head_end(&bytes, (x % 8) as usize);
        let _ = request_path(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn escape_covers_the_html_specials() {
    assert_eq!(
        escape("<a href=\"x\">&'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
    );
}

#[test]
fn pattern_repeats_every_251_bytes() {
    assert_eq!(pattern_byte(0), 0);
    assert_eq!(pattern_byte(250), 250);
    assert_eq!(pattern_byte(251), 0);
    assert_eq!(pattern_byte(10 << 30), ((10u64 << 30) % 251) as u8);
    let _: SocketAddr = SERVER.parse().unwrap();
}

/// Issue 10: a client that stops reading a response for the idle timeout
/// gets it reset (RST), not ended with a FIN that would look like a
/// complete body; the service counts it.
#[test]
fn a_response_the_client_stops_reading_is_reset_not_truncated_silently() {
    let (a, b) = memory::link(1500);
    let server = Stack::with_device(Config::default(), a).expect("server");
    let client = Stack::with_device(
        Config {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            ..Config::default()
        },
        b,
    )
    .expect("client");
    let opts = ServiceOptions {
        http_idle_timeout: Duration::from_millis(300),
        ..ServiceOptions::default()
    };
    serve_with(&server, 8080, &opts).expect("http");
    let before = COUNTERS.stalled_aborts.load(Ordering::Relaxed);
    let mut s = TcpStream::connect(&client, "10.0.0.2:8080").expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /bytes/100000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Read a little, then stop.
    let mut first = [0u8; 1000];
    s.read_exact(&mut first).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut total = first.len();
    let mut buf = vec![0u8; 1 << 16];
    let err = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("a clean end of stream after {total} bytes: a silent truncation"),
            Ok(n) => total += n,
            Err(e) => break e,
        }
    };
    assert_eq!(
        err.kind(),
        io::ErrorKind::ConnectionReset,
        "after {total} bytes"
    );
    assert!(total < 100_000_000);
    assert!(COUNTERS.stalled_aborts.load(Ordering::Relaxed) > before);
}
