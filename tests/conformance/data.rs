//! Sending and receiving data: Nagle and its switch (MUST-17, SHLD-7), no
//! indefinite buffering and PSH on the last segment (MUST-60, MUST-61),
//! urgent data (MUST-30..33, not implemented: see what happens), sequence
//! numbers modulo 2^32, reserved bits, and half-closed connections.

use tunstack::tcp::State;

use crate::bench::*;

/// MUST-17, SHLD-7: with data in flight, Nagle holds a small write until
/// the ACK; `set_nodelay(true)` releases it at once and sends later small
/// writes immediately.
#[test]
fn must_17_nagle_can_be_disabled_per_connection() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.app_send(b"first");
    b.expect(|s| s.data == b"first");
    b.app_send(b"second");
    b.expect_nothing();
    b.app_nodelay(true);
    b.expect(|s| s.data == b"second");
    b.app_send(b"third");
    b.expect(|s| s.data == b"third");
}

/// MUST-60: data held back by Nagle is not buffered indefinitely: the ACK
/// of what is in flight releases it.
#[test]
fn must_60_held_data_goes_out_on_the_ack() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.app_send(b"first");
    b.expect(|s| s.data == b"first");
    b.app_send(b"second");
    b.app_send(b"third");
    b.expect_nothing();
    b.peer_ack();
    b.expect(|s| s.data == b"secondthird" && s.psh);
}

/// MUST-61: the PSH bit is set on the segment that empties the send queue,
/// and only there.
#[test]
fn must_61_psh_is_set_on_the_last_buffered_segment() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 1000), 0);
    b.app_nodelay(true);
    b.app_send(&[1u8; 2500]);
    let segs = b.take_all();
    let shape: Vec<(usize, bool)> = segs.iter().map(|s| (s.data.len(), s.psh)).collect();
    assert_eq!(shape, [(1000, false), (1000, false), (500, true)]);
}

/// MUST-30, MUST-32, MUST-33, RFC 6093: urgent data is delivered in line,
/// in stream order; the urgent pointer (the octet *following* the urgent
/// data) tells the application how much of what it reads is urgent.
#[test]
fn must_30_32_33_urgent_data_is_delivered_in_line_and_its_end_reported() {
    let mut b = Bench::new();
    b.handshake_passive();
    let id = b.id();
    assert_eq!(b.tcp.urgent_remaining(id), 0);
    b.send(seg!(ACK | PSH | URG, urp = 3, data = b"!!!normal"));
    assert_eq!(b.tcp.urgent_remaining(id), 3, "three urgent octets");
    assert_eq!(b.app_recv(2).unwrap(), b"!!");
    assert_eq!(b.tcp.urgent_remaining(id), 1);
    b.peer_data(b" more");
    assert_eq!(b.app_recv(100).unwrap(), b"!normal more");
    assert_eq!(b.tcp.urgent_remaining(id), 0);
    // A pointer that points backwards never moves RCV.UP back.
    b.send(seg!(ACK | URG, urp = 1, data = b"x"));
    assert_eq!(b.tcp.urgent_remaining(id), 1);
    b.app_send(b"reply");
    b.expect(|s| !s.urg && s.urp == 0);
}

/// MUST-30, MUST-31, MUST-62: we send urgent data: the segments carrying it
/// have URG set and their pointer at the octet following the last urgent
/// octet; a sequence of urgent data longer than 65,535 octets points as far
/// as the field allows until the end is in reach.
#[test]
fn must_30_31_62_urgent_data_we_send_is_marked() {
    let mut b = Bench::new();
    b.handshake_passive();
    let snd = b.stack_seq;
    b.app_nodelay(true);
    let id = b.id();
    b.tcp.send_urgent(b.now, id, b"!").expect("send_urgent");
    let s = b.expect(|s| s.urg && s.seq == snd);
    assert_eq!(s.urp, 1, "points past the one urgent octet");
    b.send(seg!(ACK, ack = snd + 1));
    b.app_send(b"plain");
    b.expect(|s| !s.urg && s.data == b"plain");
}

/// MUST-66: the urgent pointer is processed even when our window is zero.
#[test]
fn must_66_urg_is_processed_with_a_zero_window() {
    let mut b = Bench::new();
    b.handshake_passive();
    let id = b.id();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, data = vec![0u8; 8192]));
    b.take_all();
    b.send(seg!(ACK | URG, seq = rcv + 8192, urp = 5));
    assert_eq!(b.tcp.urgent_remaining(id), 8192 + 5);
}

/// RFC 9293 §3.4: sequence arithmetic is modulo 2^32: a connection whose
/// sequence numbers wrap delivers its data intact.
#[test]
fn sequence_numbers_wrap_around() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, seq = u32::MAX - 50, mss = 1460), 0);
    let data: Vec<u8> = (0..200u8).collect();
    b.peer_data(&data);
    b.advance(500);
    b.expect(|s| s.is("A") && s.ack_no == (u32::MAX - 50).wrapping_add(201));
    assert_eq!(b.app_recv(1000).unwrap(), data);
}

/// RFC 9293 §3.1: reserved bits "must be ignored in received segments"; the
/// ECN bits of a SYN are ignored too (no ECN is negotiated), and the stack's
/// own reserved bits are zero (checked on every segment by the bench).
#[test]
fn reserved_and_ecn_bits_are_ignored_on_input() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN | ECE | CWR, mss = 1460, reserved = 0xf));
    b.expect(|s| s.is("SA"));
    b.send(seg!(ACK, reserved = 0xf));
    b.conn = Some(b.tcp.accept(b.listener.unwrap()).unwrap());
    b.send(seg!(ACK | PSH | CWR, data = b"bits", reserved = 0x5));
    assert_eq!(b.app_recv(10).unwrap(), b"bits");
}

/// RFC 9293 §3.6, §3.6.1: CLOSE means "no more to send": after our FIN the
/// peer may keep sending and we keep receiving (full-duplex close; tunstack
/// does not implement MAY-1's half-duplex close on `shutdown_write`).
#[test]
fn half_closed_connection_keeps_receiving() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.app_shutdown();
    b.expect(|s| s.is("FA"));
    b.peer_ack();
    assert_eq!(b.state(), Some(State::FinWait2));
    b.peer_data(b"late data");
    assert_eq!(b.app_recv(100).unwrap(), b"late data");
}

/// SHLD-31: a segment above a gap is held for later. tunstack holds its
/// data but not its FIN: once the gap is filled the data is acknowledged,
/// the FIN is not, and the peer's retransmitted FIN closes the stream (one
/// extra round trip; no data lost).
#[test]
fn fin_above_a_gap_is_taken_on_its_retransmission() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | FIN, seq = rcv + 5, data = b"world"));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    b.send(seg!(ACK, seq = rcv, data = b"hello"));
    b.expect(|s| s.is("A") && s.ack_no == rcv + 10);
    assert_eq!(b.state(), Some(State::Established));
    b.send(seg!(ACK | FIN, seq = rcv + 10));
    b.expect(|s| s.is("A") && s.ack_no == rcv + 11);
    assert_eq!(b.state(), Some(State::CloseWait));
    assert_eq!(b.app_recv(100).unwrap(), b"helloworld");
}

/// MUST-31: a sequence of urgent data of any length: 100,000 urgent octets
/// point 65,535 ahead (the field's most) until the end is in reach, then at
/// the octet after the last one.
#[test]
fn must_31_urgent_data_longer_than_the_pointer_field() {
    let mut b = Bench::with(tunstack::tcp::TcpConfig {
        send_buffer: 200_000,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, seq = PEER_ISS, mss = 1460, win = 65535), 0);
    let snd = b.stack_seq;
    let id = b.id();
    b.tcp
        .send_urgent(b.now, id, &vec![1u8; 100_000])
        .expect("send_urgent");
    let first = b.expect(|s| s.urg && s.seq == snd);
    assert_eq!(first.urp, 65535);
    // Acknowledge everything as it comes: every segment is urgent, and
    // those within 65,535 of the end point at the octet after it.
    let mut near_end = 0;
    let mut acked = first.seq.wrapping_add(first.data.len() as u32);
    for _ in 0..200 {
        b.send(seg!(ACK, ack = acked, win = 65535));
        let segs = b.take_all();
        if segs.is_empty() {
            break;
        }
        for s in &segs {
            let to_end = snd.wrapping_add(100_000).wrapping_sub(s.seq);
            assert!(s.urg, "{s:?}");
            assert_eq!(u32::from(s.urp), to_end.min(65535));
            near_end += usize::from(to_end <= 65535);
            acked = s.seq.wrapping_add(s.data.len() as u32);
        }
    }
    assert!(near_end > 0, "no segment came within 65,535 of the end");
}
