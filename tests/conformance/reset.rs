//! RST processing in every state (RFC 9293 §3.5.3, §3.10.7.3-4) with the
//! RFC 5961 hardening: RSTs (§3), SYNs in synchronized states (§4), the ACK
//! range check (§5) and the challenge-ACK rate limit (§7).

use tunstack::tcp::{State, TcpConfig, TcpError, TcpEvent};

use crate::bench::*;

/// The synchronized states a bench can reach, with the error a RST with the
/// exact sequence number reports (RFC 9293 §3.10.7.4, second step: "reset"
/// for ESTABLISHED .. CLOSE-WAIT, silence for CLOSING, LAST-ACK, TIME-WAIT).
const SYNCHRONIZED: [(State, Option<TcpError>); 7] = [
    (State::Established, Some(TcpError::ConnectionReset)),
    (State::FinWait1, Some(TcpError::ConnectionReset)),
    (State::FinWait2, Some(TcpError::ConnectionReset)),
    (State::CloseWait, Some(TcpError::ConnectionReset)),
    (State::Closing, None),
    (State::LastAck, None),
    (State::TimeWait, None),
];

/// RFC 9293 §3.10.7.3: in SYN-SENT a RST without ACK is dropped.
#[test]
fn rst_without_ack_in_syn_sent_is_ignored() {
    let mut b = Bench::new();
    b.connect(5000);
    b.expect(|s| s.is("S"));
    b.send(seg!(RST, seq = 0));
    b.send(seg!(RST, seq = PEER_ISS));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::SynSent));
}

/// RFC 9293 §3.10.7.3, MUST-12: a RST whose ACK acknowledges our SYN refuses
/// the connection, and the application is told so.
#[test]
fn rst_acking_our_syn_in_syn_sent_refuses_the_connection() {
    let mut b = Bench::new();
    let id = b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.send(seg!(RST | ACK, seq = 0, ack = iss.wrapping_add(1)));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Closed));
    assert_eq!(
        b.events(),
        vec![TcpEvent::Closed(id, Some(TcpError::ConnectionRefused))]
    );
    assert_eq!(b.app_recv(10), Err(TcpError::ConnectionRefused));
}

/// RFC 9293 §3.10.7.3: a RST with an unacceptable ACK in SYN-SENT is
/// dropped (and, being a RST, not answered).
#[test]
fn rst_with_a_wrong_ack_in_syn_sent_is_dropped() {
    let mut b = Bench::new();
    b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.send(seg!(RST | ACK, seq = 0, ack = iss.wrapping_add(5)));
    b.send(seg!(RST | ACK, seq = 0, ack = iss));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::SynSent));
}

/// RFC 5961 §3.2 as applied to SYN-RECEIVED by RFC 9293 §3.10.7.4: an
/// in-window RST that is not exactly RCV.NXT draws a challenge ACK and the
/// half-open connection survives; an out-of-window RST is dropped. (The
/// exact RST is `open.rs`' MUST-11 tests.)
#[test]
fn rfc_5961_inexact_rst_in_syn_rcvd_draws_a_challenge_ack() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = PEER_ISS));
    let iss = b.expect(|s| s.is("SA")).seq;
    b.send(seg!(RST, seq = PEER_ISS + 50));
    b.expect(|s| s.is("A") && s.seq == iss.wrapping_add(1) && s.ack_no == PEER_ISS + 1);
    b.send(seg!(RST, seq = PEER_ISS + 100_000));
    b.expect_nothing();
    assert_eq!(b.tcp.connections()[0].state, State::SynReceived);
}

/// RFC 5961 §3.2 (2), RFC 9293 §3.10.7.4, MUST-12: a RST with SEG.SEQ ==
/// RCV.NXT closes every synchronized state; ESTABLISHED, FIN-WAIT-1/2 and
/// CLOSE-WAIT report `ConnectionReset`, CLOSING, LAST-ACK and TIME-WAIT just
/// close. Nothing is sent in reply.
#[test]
fn rfc_5961_exact_rst_closes_every_synchronized_state() {
    for (state, err) in SYNCHRONIZED {
        let mut b = Bench::reach(state);
        let id = b.id();
        b.send(seg!(RST, seq = b.peer_seq));
        b.expect_nothing();
        assert_eq!(b.state(), Some(State::Closed), "from {state}");
        assert_eq!(b.events(), vec![TcpEvent::Closed(id, err)], "from {state}");
        if let Some(e) = err {
            assert_eq!(b.app_recv(10), Err(e), "from {state}");
        }
    }
}

/// RFC 5961 §3.2 (3): an in-window RST that is not exactly RCV.NXT draws a
/// challenge ACK `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` in every
/// synchronized state, and changes nothing.
#[test]
fn rfc_5961_inexact_in_window_rst_draws_a_challenge_ack() {
    for (state, _) in SYNCHRONIZED {
        // Every answer, not the per-connection rate limit (tested below).
        let mut b = Bench::reach_with(state, no_oow_limit());
        let (snd, rcv) = (b.stack_seq, b.peer_seq);
        b.send(seg!(RST, seq = rcv + 1));
        b.send(seg!(RST | ACK, seq = rcv + 4000));
        for _ in 0..2 {
            let c = b.expect(|s| s.is("A"));
            assert_eq!((c.seq, c.ack_no), (snd, rcv), "in {state}");
        }
        b.expect_nothing();
        assert_eq!(b.state(), Some(state));
        assert!(b.events().is_empty(), "in {state}");
    }
}

/// RFC 5961 §3.2 (1): a RST outside the receive window is dropped silently
/// in every synchronized state.
#[test]
fn rfc_5961_out_of_window_rst_is_dropped_silently() {
    for (state, _) in SYNCHRONIZED {
        let mut b = Bench::reach(state);
        let rcv = b.peer_seq;
        b.send(seg!(RST, seq = rcv - 1));
        b.send(seg!(RST, seq = rcv + 8192 + 1));
        b.send(seg!(RST, seq = rcv.wrapping_add(1 << 31)));
        b.expect_nothing();
        assert_eq!(b.state(), Some(state));
    }
}

/// SHLD-2: a RST may carry data (diagnostic text); it still resets.
#[test]
fn rst_carrying_data_still_resets() {
    let mut b = Bench::reach(State::Established);
    b.send(seg!(
        RST | ACK,
        seq = b.peer_seq,
        data = b"diagnostic: go away"
    ));
    assert_eq!(b.state(), Some(State::Closed));
}

/// RFC 1337 and TIME-WAIT: RFC 9293 §3.10.7.4 says a RST in TIME-WAIT
/// deletes the TCB; RFC 1337 (informational) recommends ignoring it, to
/// avoid "TIME-WAIT assassination". tunstack follows RFC 9293, hardened by
/// RFC 5961: only a RST with exactly RCV.NXT ends TIME-WAIT early (a blind
/// attacker must guess it; an in-window guess only draws a challenge ACK).
/// Rationale: the same choice as Linux (`tcp_rfc1337` = 0), and the RST is
/// usually the peer's answer to our ACK of its retransmitted FIN after it
/// has forgotten the connection, so nothing is lost by closing.
#[test]
fn rfc_1337_exact_rst_ends_time_wait_inexact_draws_a_challenge_ack() {
    let mut b = Bench::reach(State::TimeWait);
    let rcv = b.peer_seq;
    b.send(seg!(RST, seq = rcv + 10));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(b.state(), Some(State::TimeWait));
    b.send(seg!(RST, seq = rcv));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Closed));
}

/// RFC 5961 §4.2, RFC 9293 §3.10.7.4 (fourth step): a SYN in a synchronized
/// state, in window or not, draws a challenge ACK and is dropped; the
/// connection is unaffected. (TIME-WAIT, where a higher SYN may reopen the
/// connection, is in `close.rs`.)
#[test]
fn rfc_5961_syn_in_a_synchronized_state_draws_a_challenge_ack() {
    for (state, _) in SYNCHRONIZED {
        if state == State::TimeWait {
            continue;
        }
        let mut b = Bench::reach_with(state, no_oow_limit());
        let (snd, rcv) = (b.stack_seq, b.peer_seq);
        b.send(seg!(SYN, seq = rcv + 10, mss = 1460));
        b.send(seg!(SYN, seq = rcv.wrapping_sub(5000)));
        b.send(seg!(SYN | ACK, seq = rcv, ack = snd));
        for _ in 0..3 {
            let c = b.expect(|s| s.is("A"));
            assert_eq!((c.seq, c.ack_no), (snd, rcv), "in {state}");
        }
        b.expect_nothing();
        assert_eq!(b.state(), Some(state));
        assert!(b.events().is_empty());
    }
}

/// RFC 5961 §7 leaves the rate limit to the implementation; like Linux
/// (`tcp_send_challenge_ack` checks `tcp_invalid_ratelimit` first) a
/// connection answers at most one challenge per 500 ms, so a flood of forged
/// SYNs and RSTs carrying its 4-tuple is not reflected.
#[test]
fn rfc_5961_challenge_acks_are_limited_per_connection() {
    let mut b = Bench::reach(State::Established);
    let rcv = b.peer_seq;
    for i in 0..50 {
        b.send(seg!(RST, seq = rcv + 1 + i));
        b.send(seg!(SYN, seq = rcv + 1 + i));
    }
    assert_eq!(b.take_all().len(), 1);
    assert_eq!(b.stats().oow_acks_limited, 99);
    b.advance(499);
    b.send(seg!(SYN, seq = rcv + 7));
    b.expect_nothing();
    b.advance(1);
    b.send(seg!(SYN, seq = rcv + 7));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(b.state(), Some(State::Established));
}

/// RFC 5961 §5.2: an ACK older than SND.UNA - MAX.SND.WND is not believable:
/// the segment (here carrying data) is dropped and a challenge ACK sent.
#[test]
fn rfc_5961_ack_too_old_is_dropped_with_a_challenge_ack() {
    let mut b = Bench::reach(State::Established);
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    // MAX.SND.WND is the peer's 65535.
    b.send(seg!(
        ACK | PSH,
        seq = rcv,
        ack = snd.wrapping_sub(70_000),
        data = b"inject"
    ));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.info().recv_queue, 0);
    assert_eq!(b.stats().challenge_acks, 1);
}

/// RFC 5961 §5.2: an old but believable ACK (within MAX.SND.WND below
/// SND.UNA) is a duplicate: the data it carries is accepted.
#[test]
fn rfc_5961_old_ack_within_max_snd_wnd_is_accepted() {
    let mut b = Bench::reach(State::Established);
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    b.send(seg!(
        ACK | PSH,
        seq = rcv,
        ack = snd.wrapping_sub(1000),
        data = b"fine"
    ));
    assert_eq!(b.app_recv(10).unwrap(), b"fine");
}

/// RFC 9293 §3.10.7.4 (fifth step), RFC 5961 §5.2: an ACK for data never
/// sent (SEG.ACK > SND.NXT) is answered with an ACK and the segment dropped.
#[test]
fn ack_of_unsent_data_is_acknowledged_and_dropped() {
    let mut b = Bench::reach(State::Established);
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    b.send(seg!(
        ACK | PSH,
        seq = rcv,
        ack = snd.wrapping_add(10),
        data = b"data"
    ));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.info().recv_queue, 0);
    assert_eq!(b.state(), Some(State::Established));
    // The same data with a sane ACK goes through.
    b.send(seg!(ACK | PSH, seq = rcv, ack = snd, data = b"data"));
    assert_eq!(b.app_recv(10).unwrap(), b"data");
}

/// RFC 5961 §7: challenge ACKs are rate limited, layer-wide; the budget
/// refills after a second. Each second's budget is random between half and
/// 1.5× the configured limit (here 3: 1 to 4), as Linux does, so that the
/// count is no side channel (CVE-2016-5696).
#[test]
fn rfc_5961_challenge_acks_are_rate_limited() {
    let mut b = Bench::with(TcpConfig {
        challenge_ack_limit: 3,
        // The layer-wide limit alone; the per-connection one is tested below.
        ..no_oow_limit()
    });
    b.handshake_passive();
    let rcv = b.peer_seq;
    for i in 0..10 {
        b.send(seg!(RST, seq = rcv + 1 + i));
    }
    let sent = b.take_all().len() as u64;
    assert!((1..=4).contains(&sent), "{sent} challenge ACKs");
    assert_eq!(b.stats().challenge_acks, sent);
    assert_eq!(b.stats().challenge_acks_limited, 10 - sent);
    b.advance(999);
    b.send(seg!(SYN, seq = rcv + 9));
    b.expect_nothing();
    b.advance(1);
    b.send(seg!(SYN, seq = rcv + 9));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(b.state(), Some(State::Established));
}

/// The test configuration without the per-connection limit on answers to
/// unacceptable segments and challenges (`oow_ack_interval`).
fn no_oow_limit() -> TcpConfig {
    TcpConfig {
        oow_ack_interval: std::time::Duration::ZERO,
        ..cfg()
    }
}
