//! Programs written on tunstack's tokio sockets (`--features tokio`),
//! served over the TUN and driven by the kernel's clients: axum (on hyper)
//! with curl, and a tokio echo server with 50 concurrent python3 clients.

use std::time::Duration;

use super::support::{example_path, TestNet, STACK_ADDR};
use super::tcp::{assert_clean_tcp_capture, echo_clients, sha256_file};

const AXUM_PORT: &str = "8080";
/// Port 7 (RFC 862), so tshark dissects the payload as echo data.
const TOKIO_ECHO_PORT: &str = "7";

#[test]
fn curl_talks_to_an_axum_app_served_over_tunstack() {
    let Some(mut net) = TestNet::start_program(
        &["curl", "tshark"],
        &example_path("axum_server"),
        &[],
        &["--port", AXUM_PORT],
        |line| line.starts_with("axum on http://"),
    ) else {
        return;
    };
    let base = format!("http://{STACK_ADDR}:{AXUM_PORT}");
    let curl = |args: &[&str]| {
        let mut argv = vec!["curl", "-sS", "--max-time", "20"];
        argv.extend_from_slice(args);
        net.exec(&argv, Duration::from_secs(30))
    };
    let hello = curl(&[&format!("{base}/")]).expect_success("curl /");
    assert_eq!(hello.stdout, "hello from axum on tunstack\n");

    // A 2 MB body, byte i = i % 251, checked by hash.
    let body = net.dir.join("bytes");
    curl(&[
        "-o",
        &body.to_string_lossy(),
        &format!("{base}/bytes/2000000"),
    ])
    .expect_success("curl /bytes/2000000");
    let expected = net.dir.join("expected");
    let pattern: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&expected, &pattern).expect("writing the expected body");
    assert_eq!(
        sha256_file(&body),
        sha256_file(&expected),
        "SHA-256 of /bytes/2000000"
    );

    // A 300 KB upload comes back as it went.
    let upload = net.dir.join("upload");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&upload, &data).expect("writing the upload");
    let echoed = net.dir.join("echoed");
    curl(&[
        "--data-binary",
        &format!("@{}", upload.display()),
        "-o",
        &echoed.to_string_lossy(),
        &format!("{base}/echo"),
    ])
    .expect_success("curl --data-binary /echo");
    assert_eq!(
        sha256_file(&echoed),
        sha256_file(&upload),
        "the echoed upload"
    );

    // The example has no signal handler: SIGINT ends it; the capture is
    // flushed packet by packet.
    let _ = net.stop();
    assert_clean_tcp_capture(&net.pcap_path(), 2_000_000 / 1460);
}

#[test]
fn a_tokio_echo_server_returns_a_megabyte_to_each_of_fifty_clients() {
    let Some(mut net) = TestNet::start_program(
        &["python3", "tshark"],
        &example_path("tokio_echo"),
        &[],
        &["--port", TOKIO_ECHO_PORT],
        |line| line.starts_with("tokio echo on "),
    ) else {
        return;
    };
    echo_clients(
        &net,
        TOKIO_ECHO_PORT,
        1_000_000,
        50,
        Duration::from_secs(120),
    );
    let _ = net.stop();
    assert_clean_tcp_capture(&net.pcap_path(), 50 * 2 * 685);
}
