//! Closing: TIME-WAIT for 2×MSL with re-ACKed FINs (MUST-13), reopening
//! from TIME-WAIT (MAY-2 and its conditions), FIN retransmission in CLOSING
//! and LAST-ACK, and telling the application how the connection ended
//! (MUST-12). RFC 9293 §3.6, §3.10.7.4.

use tunstack::tcp::{State, TcpConfig, TcpError, TcpEvent};

use crate::bench::*;

/// MUST-13: an active close lingers in TIME-WAIT for 2×MSL (MSL 30 s by
/// default, so 60 s as on Linux), then the connection is deleted.
#[test]
fn must_13_time_wait_lasts_two_msl() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.app_close();
    let fin = b.expect(|s| s.is("FA"));
    b.peer_ack();
    assert_eq!(b.state(), Some(State::FinWait2));
    b.send(seg!(FIN | ACK));
    let rcv = b.peer_seq;
    b.expect(|s| s.is("A") && s.seq == fin.seq.wrapping_add(1) && s.ack_no == rcv);
    assert_eq!(b.state(), Some(State::TimeWait));
    let t0 = b.now;
    assert_eq!(b.next_deadline(), Some(t0 + secs(60)));
    b.advance(59_999);
    assert_eq!(b.state(), Some(State::TimeWait));
    b.advance(1);
    assert_eq!(b.state(), None, "TIME-WAIT over: the connection is gone");
    b.expect_nothing();
}

/// MUST-13: the MSL is configurable; TIME-WAIT follows it.
#[test]
fn must_13_time_wait_follows_the_configured_msl() {
    let mut b = Bench::with(TcpConfig {
        msl: secs(5),
        ..cfg()
    });
    b.handshake_passive();
    b.app_shutdown();
    b.expect(|s| s.is("FA"));
    b.peer_ack();
    b.send(seg!(FIN | ACK));
    b.expect(|s| s.is("A"));
    b.advance(9_999);
    assert_eq!(b.state(), Some(State::TimeWait));
    b.advance(1);
    assert_eq!(b.state(), Some(State::Closed));
}

/// MUST-13, RFC 9293 §3.10.7.4: a retransmitted FIN in TIME-WAIT (our ACK
/// was lost) is acknowledged again and restarts the 2×MSL timer.
#[test]
fn must_13_retransmitted_fin_in_time_wait_is_reacked_and_restarts_2msl() {
    let mut b = Bench::reach(State::TimeWait);
    let id = b.id();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    let t0 = b.now;
    b.advance(30_000);
    b.send(seg!(FIN | ACK, seq = rcv - 1));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.next_deadline(), Some(t0 + secs(90)));
    b.advance(59_999);
    assert_eq!(b.state(), Some(State::TimeWait));
    b.advance(1);
    assert_eq!(b.state(), Some(State::Closed));
    assert_eq!(b.events(), vec![TcpEvent::Closed(id, None)]);
}

/// RFC 9293 §3.10.7.4: other segments reaching TIME-WAIT (old data, an old
/// SYN) are answered with an ACK of RCV.NXT and change nothing.
#[test]
fn time_wait_acks_old_segments() {
    let mut b = Bench::reach(State::TimeWait);
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    b.send(seg!(ACK | PSH, seq = rcv - 5, data = b"stale"));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    b.send(seg!(SYN, seq = PEER_ISS));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.state(), Some(State::TimeWait));
}

/// MAY-2 (RFC 9293 §3.6.1, RFC 6191): with a listener on the port, a SYN
/// above RCV.NXT reopens the connection from TIME-WAIT.
#[test]
fn may_2_higher_syn_reopens_time_wait() {
    let mut b = Bench::reach(State::TimeWait);
    b.advance(1000);
    let syn = b.peer_seq + 100_000;
    b.send(seg!(SYN, seq = syn, mss = 1460));
    b.expect(|s| s.is("SA") && s.ack_no == syn + 1);
}

/// MAY-2 condition (1), RFC 9293 §3.6.1: a connection reopened from
/// TIME-WAIT must start above the largest sequence number the previous
/// incarnation used, or its old duplicates could be taken for new data.
#[test]
fn may_2_reopened_connection_isn_is_above_the_old_sequence_space() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.app_send(&[0u8; 1000]);
    b.expect(|s| s.data.len() == 1000);
    b.peer_ack();
    b.app_close();
    let fin = b.expect(|s| s.is("FA"));
    b.peer_ack();
    b.send(seg!(FIN | ACK));
    b.expect(|s| s.is("A"));
    assert_eq!(b.state(), Some(State::TimeWait));
    b.advance(1);
    let syn = b.peer_seq + 100_000;
    b.send(seg!(SYN, seq = syn, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    assert!(
        seq_lt(fin.seq, sa.seq),
        "new ISN {} is not above the old FIN at {}",
        sa.seq,
        fin.seq
    );
}

/// MAY-2 condition (2), RFC 9293 §3.6.1: if the SYN that reopened TIME-WAIT
/// turns out to be an old duplicate (the peer resets our SYN-ACK), the
/// connection must return to TIME-WAIT.
#[test]
fn may_2_old_duplicate_syn_returns_to_time_wait() {
    let mut b = Bench::reach(State::TimeWait);
    b.advance(1000);
    let syn = b.peer_seq + 100_000;
    b.send(seg!(SYN, seq = syn, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    b.send(seg!(RST, seq = sa.ack_no));
    let tw = b.tcp.connections();
    assert!(
        tw.iter()
            .any(|c| c.state == State::TimeWait && c.remote == PEER.into() && c.local == US.into()),
        "TIME-WAIT lost: {tw:?}"
    );
}

/// RFC 9293 §3.6 / §3.10.8: our FIN in LAST-ACK is retransmitted on the
/// RTO with backoff until acknowledged; the ACK then closes the connection
/// cleanly (MUST-12: reported as a normal close).
#[test]
fn fin_is_retransmitted_in_last_ack() {
    let mut b = Bench::reach(State::LastAck);
    let id = b.id();
    let fin = b.stack_seq.wrapping_sub(1);
    let t0 = b.now;
    let r1 = b.wait_for_segment(1000);
    assert!(r1.is("FA") && r1.seq == fin, "{r1:?}");
    assert_eq!(r1.at - t0, ms(200), "first RTO");
    let r2 = b.wait_for_segment(1000);
    assert!(r2.is("FA") && r2.seq == fin);
    assert_eq!(r2.at - r1.at, ms(400), "backed off");
    b.peer_ack();
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Closed));
    assert_eq!(b.events(), vec![TcpEvent::Closed(id, None)]);
}

/// RFC 9293 §3.6 (Figure 13): in CLOSING our FIN is retransmitted until
/// acknowledged; the ACK moves us to TIME-WAIT.
#[test]
fn fin_is_retransmitted_in_closing() {
    let mut b = Bench::reach(State::Closing);
    let fin = b.stack_seq.wrapping_sub(1);
    let t0 = b.now;
    let r1 = b.wait_for_segment(1000);
    assert!(
        r1.is("FA") && r1.seq == fin && r1.ack_no == b.peer_seq,
        "{r1:?}"
    );
    assert_eq!(r1.at - t0, ms(200));
    let r2 = b.wait_for_segment(1000);
    assert!(r2.is("FA") && r2.seq == fin);
    b.peer_ack();
    assert_eq!(b.state(), Some(State::TimeWait));
}

/// RFC 9293 §3.10.7.4 (eighth step) and Figure 5 note 2: a FIN that also
/// acknowledges our FIN takes FIN-WAIT-1 straight to TIME-WAIT.
#[test]
fn fin_acking_our_fin_goes_from_fin_wait_1_to_time_wait() {
    let mut b = Bench::reach(State::FinWait1);
    b.send(seg!(FIN | ACK));
    let rcv = b.peer_seq;
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(b.state(), Some(State::TimeWait));
}

/// RFC 9293 §3.10.7.4: the peer's retransmitted FIN in CLOSING and LAST-ACK
/// (our ACK was lost) is acknowledged again.
#[test]
fn retransmitted_peer_fin_is_reacked_in_closing_and_last_ack() {
    for state in [State::Closing, State::LastAck] {
        let mut b = Bench::reach(state);
        let (snd, rcv) = (b.stack_seq, b.peer_seq);
        b.send(seg!(FIN | ACK, seq = rcv - 1, ack = snd.wrapping_sub(1)));
        b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
        assert_eq!(b.state(), Some(state));
    }
}

/// MUST-12: the application learns whether the connection closed normally
/// (end of stream, then `Closed(None)`) or was aborted (`Closed` with
/// `ConnectionReset`, and reads fail).
#[test]
fn must_12_application_learns_normal_close_from_abort() {
    let mut b = Bench::new();
    let id = b.handshake_passive();
    b.send(seg!(FIN | ACK));
    b.expect(|s| s.is("A"));
    assert_eq!(
        b.events(),
        vec![TcpEvent::PeerClosed(id), TcpEvent::Readable(id)]
    );
    assert_eq!(b.app_recv(10).unwrap(), b"", "end of stream");
    b.app_shutdown();
    b.expect(|s| s.is("FA"));
    b.peer_ack();
    assert_eq!(b.events(), vec![TcpEvent::Closed(id, None)]);

    let mut b = Bench::new();
    let id = b.handshake_passive();
    b.send(seg!(RST, seq = b.peer_seq));
    assert_eq!(
        b.events(),
        vec![TcpEvent::Closed(id, Some(TcpError::ConnectionReset))]
    );
    assert_eq!(b.app_recv(10), Err(TcpError::ConnectionReset));
    assert_eq!(b.tcp.send(b.now, id, b"x"), Err(TcpError::ConnectionReset));
}

/// RFC 9293 §3.10.5: ABORT sends `<SEQ=SND.NXT><CTL=RST>` (tunstack adds
/// the ACK bit, as Linux does) and deletes the connection.
#[test]
fn abort_sends_a_rst_at_snd_nxt() {
    let mut b = Bench::reach(State::Established);
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    b.app_abort();
    b.expect(|s| s.is("RA") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.state(), None);
}
