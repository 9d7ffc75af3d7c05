//! Teaching (issue 14): a pcapng capture whose packet comments say what the
//! stack did with each packet, read back with tshark.

use std::time::Duration;

use crate::support::{run_with_timeout, tshark_fields, TestNet, STACK_ADDR, TUNSTACK};
use crate::tcp::tcp_tool;

/// Every packet comment of a capture, in frame order, with its frame's
/// source address.
fn comments(pcap: &std::path::Path) -> Vec<(String, String)> {
    tshark_fields(pcap, "frame.comment", &["ip.src", "frame.comment"])
        .into_iter()
        .map(|mut row| {
            let comment = row.pop().unwrap_or_default();
            let src = row.pop().unwrap_or_default();
            (src, comment)
        })
        .collect()
}

/// Panics unless each of `want` is found in some comment, in this order
/// (each after the previous one's frame, or in the same one).
fn assert_in_order(all: &[(String, String)], want: &[&str]) {
    let mut at = 0;
    for w in want {
        match all[at..].iter().position(|(_, c)| c.contains(w)) {
            Some(i) => at += i,
            None => panic!("no comment {w:?} at or after comment {at} in:\n{all:#?}"),
        }
    }
}

#[test]
fn pcapng_comments_name_the_state_transitions_of_a_real_connection() {
    let Some(mut net) = TestNet::start_pcapng(&["python3", "tshark"], &["--msl-ms", "300"]) else {
        return;
    };
    // The kernel closes first: the stack goes CLOSE-WAIT, LAST-ACK.
    tcp_tool(
        &net,
        &["chat", STACK_ADDR, "7", "hello", "bye"],
        Duration::from_secs(10),
    )
    .expect_success("tcp_tool.py chat");
    // HTTP with `Connection: close`: the stack closes first.
    tcp_tool(
        &net,
        &["http", STACK_ADDR, "80", "/bytes/100"],
        Duration::from_secs(10),
    )
    .expect_success("tcp_tool.py http");
    // Let TIME-WAIT (2 x 300 ms) run out before stopping.
    std::thread::sleep(Duration::from_millis(800));
    net.stop();
    let pcap = net.pcap_path();
    let all = comments(&pcap);
    assert_in_order(
        &all,
        &[
            // Echo: passive open, the kernel's FIN, ours, its ACK.
            "LISTEN -> SYN-RCVD",
            "SYN-RCVD -> ESTABLISHED",
            "ESTABLISHED -> CLOSE-WAIT",
            "CLOSE-WAIT -> LAST-ACK",
            "LAST-ACK -> CLOSED",
            // HTTP: the stack's FIN first.
            "LISTEN -> SYN-RCVD",
            "SYN-RCVD -> ESTABLISHED",
            "ESTABLISHED -> FIN-WAIT-1",
            "-> TIME-WAIT",
            "TIME-WAIT until ",
        ],
    );
    // Each note sits on the packet that caused it: a received one for
    // what the peer's segments did, the stack's own FIN for its close.
    let on = |c: &str| -> Vec<&str> {
        all.iter()
            .filter(|(_, text)| text.contains(c))
            .map(|(src, _)| src.as_str())
            .collect()
    };
    assert_eq!(on("LISTEN -> SYN-RCVD"), ["10.0.0.1", "10.0.0.1"]);
    assert_eq!(on("CLOSE-WAIT -> LAST-ACK"), [STACK_ADDR]);
    assert_eq!(on("ESTABLISHED -> FIN-WAIT-1"), [STACK_ADDR]);
    // Directions are recorded: inbound from the kernel, outbound from us.
    let dirs = tshark_fields(&pcap, "tcp", &["ip.src", "frame.packet_flags_direction"]);
    assert!(!dirs.is_empty());
    for row in &dirs {
        let want = if row[0] == STACK_ADDR { 2 } else { 1 };
        let got = row
            .get(1)
            .and_then(|d| u32::from_str_radix(d.trim_start_matches("0x"), 16).ok());
        assert_eq!(got, Some(want), "{row:?}");
    }
    // The ladder reads the pcapng capture: both connections, both closes.
    let mut cmd = std::process::Command::new(TUNSTACK);
    cmd.arg("ladder").arg(&pcap);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30)).expect_success("tunstack ladder");
    assert!(out.stdout.contains("connection 2:"), "{}", out.stdout);
    assert!(out.stdout.contains("LAST-ACK"), "{}", out.stdout);
    assert!(out.stdout.contains("FIN-WAIT-2"), "{}", out.stdout);
}

/// A kernel-to-kernel TCP connection on the namespace's loopback: the
/// client connects to 127.0.0.1:5000, sends `hello`, reads the echo and
/// closes first; the server closes 300 ms after it read the end of stream
/// (its ACK of the client's FIN goes alone, before its own FIN).
const KERNEL_PAIR: &str = r#"
import socket, threading, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 5000))
srv.listen(1)
def serve():
    c, _ = srv.accept()
    while True:
        d = c.recv(100)
        if not d:
            break
        c.sendall(d)
    time.sleep(0.3)
    c.close()
t = threading.Thread(target=serve)
t.start()
cl = socket.create_connection(("127.0.0.1", 5000))
cl.sendall(b"hello")
assert cl.recv(100) == b"hello"
cl.close()
t.join()
print("done")
"#;

#[test]
fn ladder_of_a_kernel_to_kernel_capture_shows_both_sides_states() {
    use tunstack::ladder::{connections, tcp_packets, Side, State::*};
    // No stack: the namespace's loopback, the kernel on both ends, and
    // dumpcap (tshark's capture tool; tcpdump is not installed here).
    let Some(net) = TestNet::new(&["python3", "dumpcap"]) else {
        return;
    };
    let pcap = net.dir.join("kernel.pcapng");
    let path = pcap.to_string_lossy().into_owned();
    // dumpcap says `Capturing on 'Loopback: lo'` on stderr once it
    // captures; it stops by itself after 4 s and closes the file.
    let capture = net.spawn_background(
        &[
            "sh",
            "-c",
            "exec dumpcap -q -i lo -a duration:4 -w \"$0\" 2>&1",
            &path,
        ],
        "Capturing on",
    );
    net.exec(&["python3", "-c", KERNEL_PAIR], Duration::from_secs(10))
        .expect_success("the kernel client and server");
    capture.wait(Duration::from_secs(15));

    let bytes = std::fs::read(&pcap).expect("dumpcap wrote the capture");
    let conns = connections(tcp_packets(&bytes).expect("the ladder reads dumpcap's pcapng"));
    let conn = conns
        .iter()
        .find(|c| c.packets.iter().any(|p| p.dst.port() == 5000))
        .unwrap_or_else(|| panic!("no connection to port 5000 among {}", conns.len()));
    let l = conn.ladder();
    assert_eq!(l.endpoints[1].port(), 5000, "the client is on the left");
    assert_eq!(
        l.states(Side::Left),
        [Closed, SynSent, Established, FinWait1, FinWait2, TimeWait]
    );
    assert_eq!(
        l.states(Side::Right),
        [Listen, SynReceived, Established, CloseWait, LastAck, Closed]
    );

    // And as a user runs it.
    let mut cmd = std::process::Command::new(TUNSTACK);
    cmd.arg("ladder")
        .arg(&pcap)
        .arg("--conn")
        .arg("127.0.0.1:5000");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30)).expect_success("tunstack ladder");
    let client = l.endpoints[0];
    let want = format!("final states: {client} TIME-WAIT, 127.0.0.1:5000 CLOSED");
    assert!(out.stdout.contains(&want), "{}", out.stdout);
    for state in [
        "SYN-SENT",
        "SYN-RCVD",
        "CLOSE-WAIT",
        "LAST-ACK",
        "FIN-WAIT-2",
    ] {
        assert!(out.stdout.contains(state), "no {state}:\n{}", out.stdout);
    }
}
