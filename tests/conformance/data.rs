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

/// MUST-30..33 (urgent data) are not implemented: tunstack never sends URG
/// and ignores the urgent pointer it receives. This checks the fallback is
/// harmless: urgent data is delivered in line, in order, with no loss.
#[test]
fn urgent_data_is_delivered_in_line() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.send(seg!(ACK | PSH | URG, urp = 3, data = b"!!!normal"));
    b.peer_data(b" more");
    assert_eq!(b.app_recv(100).unwrap(), b"!!!normal more");
    b.app_send(b"reply");
    b.expect(|s| !s.urg && s.urp == 0);
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
