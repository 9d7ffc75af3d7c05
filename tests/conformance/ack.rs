//! Generating ACKs: delayed ACKs under half a second (MUST-40, SHLD-18/19),
//! immediate ACKs for out-of-order data (MAY-13, RFC 5681 §4.2),
//! aggregation (MUST-58, MUST-59) and piggybacking (RFC 9293 §3.10.7.4).

use tunstack::tcp::TcpConfig;

use crate::bench::*;

/// MUST-40, SHLD-18: a lone small segment is acknowledged after the
/// delayed-ACK timeout (40 ms by default, as Linux), always under 0.5 s.
#[test]
fn must_40_delayed_ack_is_sent_within_half_a_second() {
    assert!(TcpConfig::default().delayed_ack < ms(500));
    let mut b = Bench::new();
    b.handshake_passive();
    b.peer_data(b"ping");
    let t = b.now;
    let rcv = b.peer_seq;
    b.expect_nothing();
    let a = b.wait_for_segment(1000);
    assert!(a.is("A") && a.ack_no == rcv, "{a:?}");
    assert_eq!(a.at - t, ms(40));
    assert!(a.at - t < ms(500));
}

/// SHLD-19: every second full-sized segment is acknowledged at once.
#[test]
fn every_second_full_sized_segment_is_acknowledged_at_once() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.peer_data(&[1u8; 1460]);
    b.expect_nothing();
    b.peer_data(&[2u8; 1460]);
    let rcv = b.peer_seq;
    b.expect(|s| s.is("A") && s.ack_no == rcv);
}

/// SHLD-19, RFC 5681 §4.2: "full-sized" is what the peer sends. With a
/// large MSS (MTU 65535) a sender that opens with smaller segments (Linux
/// sends two of 32,767 bytes) gets its ACK after the second, not after the
/// delayed-ACK timer, with its window spent meanwhile.
#[test]
fn shld_19_full_sized_is_measured_on_the_peers_segments() {
    let mut b = Bench::with(TcpConfig {
        mtu: 65535,
        recv_buffer: 256 * 1024,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, mss = 65495), 0);
    b.peer_data(&[1u8; 32767]);
    b.expect_nothing();
    b.peer_data(&[2u8; 32767]);
    let rcv = b.peer_seq;
    b.expect(|s| s.is("A") && s.ack_no == rcv);
}

/// MAY-13, RFC 5681 §4.2: a segment above a gap is acknowledged at once
/// (a duplicate ACK of RCV.NXT), and so is the segment filling the gap.
#[test]
fn out_of_order_data_and_gap_fills_are_acknowledged_at_once() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv + 100, data = [2u8; 100]));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    b.expect(|s| s.is("A") && s.ack_no == rcv + 200);
    assert_eq!(b.app_recv(1000).unwrap().len(), 200);
}

/// MUST-58: ACKs are aggregated: three small segments arriving together are
/// covered by one ACK.
#[test]
fn must_58_acks_are_aggregated() {
    let mut b = Bench::new();
    b.handshake_passive();
    for part in [b"one", b"two", b"six"] {
        b.peer_data(part);
    }
    let rcv = b.peer_seq;
    b.expect_nothing();
    b.advance(500);
    let acks = b.take_all();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].ack_no, rcv);
}

/// MUST-59: a batch of queued segments is processed before the ACKs reach
/// the wire (the layer only queues output; the runtime sends it after the
/// batch), and the last ACK covers the whole batch. Caveat: the layer does
/// not coalesce the ACKs queued within one batch — four full-sized segments
/// yield two ACKs (every second segment), the first one already stale.
#[test]
fn must_59_queued_segments_are_all_processed_before_acking() {
    let mut b = Bench::new();
    b.handshake_passive();
    for i in 0..4u8 {
        b.peer_data(&[i; 1460]);
    }
    let rcv = b.peer_seq;
    let acks = b.take_all();
    assert!(acks.len() <= 2, "{acks:?}");
    assert_eq!(acks.last().map(|a| a.ack_no), Some(rcv));
}

/// RFC 9293 §3.10.7.4 (seventh step): the ACK rides on outgoing data when
/// there is some, and no separate ACK follows.
#[test]
fn ack_is_piggybacked_on_data() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.peer_data(b"request");
    let rcv = b.peer_seq;
    b.advance(30); // within the 40 ms delayed-ACK timeout
    b.app_send(b"response");
    b.expect(|s| s.is("PA") && s.ack_no == rcv && s.data == b"response");
    b.advance(1000);
    let rest = b.take_all();
    assert!(
        rest.iter().all(|s| !s.data.is_empty()),
        "lone ACK: {rest:?}"
    );
}
