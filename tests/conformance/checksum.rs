//! Checksums: generated over the pseudo-header (MUST-2), verified on input
//! (MUST-3). RFC 9293 §3.1.

use std::net::Ipv4Addr;

use tunstack::tcp::State;

use crate::bench::*;

/// MUST-2: the sender generates the checksum over the IPv4 pseudo-header and
/// the whole segment. The bench's own implementation verifies every segment
/// in every test; here we also check that the same bytes do *not* verify
/// for another destination (the pseudo-header is really covered) and that
/// odd-length segments are padded correctly.
#[test]
fn must_2_generated_checksum_covers_pseudo_header_and_segment() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    assert_eq!(tcp_checksum(US_IP, PEER_IP, &sa.raw), 0);
    assert_ne!(tcp_checksum(US_IP, Ipv4Addr::new(10, 0, 0, 9), &sa.raw), 0);
    assert_ne!(tcp_checksum(PEER_IP, US_IP, &sa.raw[..sa.raw.len() - 1]), 0);
    b.send(seg!(ACK));
    b.conn = Some(b.tcp.accept(b.listener.unwrap()).unwrap());
    // Odd payload length: the last byte is padded with zero for the sum.
    b.app_send(b"abc");
    let d = b.expect(|s| s.is("PA") && s.data == b"abc");
    assert_eq!(d.raw.len() % 2, 1);
    assert_eq!(tcp_checksum(US_IP, PEER_IP, &d.raw), 0);
}

/// MUST-3: a SYN whose checksum does not verify is dropped silently — no
/// SYN-ACK, no RST, no half-open connection — and counted.
#[test]
fn must_3_syn_with_bad_checksum_is_dropped_silently() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460, bad_checksum = true));
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
    assert_eq!(b.stats().bad_checksum, 1);
    // The same SYN with a good checksum is answered.
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460));
    b.expect(|s| s.is("SA") && s.ack_no == PEER_ISS + 1);
}

/// MUST-3: the check covers the pseudo-header: a segment whose checksum is
/// right for another destination address (a misrouted segment) is dropped.
#[test]
fn must_3_checksum_for_another_pseudo_header_is_rejected() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(
        SYN,
        mss = 1460,
        checksum_dst = Ipv4Addr::new(10, 0, 0, 3)
    ));
    b.expect_nothing();
    assert_eq!(b.stats().bad_checksum, 1);
    // Nor does a closed port answer a corrupted segment with a RST.
    b.send(seg!(SYN, dport = 9, bad_checksum = true));
    b.expect_nothing();
}

/// MUST-3: corrupted data on an established connection is neither delivered
/// nor acknowledged; the retransmission with a good checksum is. Odd-length
/// data verifies with the zero pad.
#[test]
fn must_3_corrupted_data_is_dropped_and_not_acknowledged() {
    let mut b = Bench::new();
    b.handshake_passive();
    let seq = b.peer_seq;
    b.send(seg!(
        ACK | PSH,
        seq = seq,
        data = b"hello",
        bad_checksum = true
    ));
    b.advance(1000);
    b.expect_nothing();
    assert_eq!(b.info().recv_queue, 0);
    b.send(seg!(ACK | PSH, seq = seq, data = b"hello"));
    b.advance(500);
    b.expect(|s| s.is("A") && s.ack_no == seq + 5);
    assert_eq!(b.app_recv(100).unwrap(), b"hello");
}

/// MUST-3: a RST with a bad checksum cannot reset a connection, even with
/// the exact sequence number.
#[test]
fn must_3_corrupted_rst_does_not_reset() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.send(seg!(RST, seq = b.peer_seq, bad_checksum = true));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Established));
    assert_eq!(b.stats().bad_checksum, 1);
}
