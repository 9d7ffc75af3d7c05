//! RST handling and the RFC 5961 checks; unacceptable segments.

use super::*;
use crate::tcp::TcpError;

const P: u32 = PEER_ISS + 1;

#[test]
fn exact_rst_resets_the_connection() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("R", P, 0), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(state(&l, id), Some(State::Closed));
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::Closed(id, Some(TcpError::ConnectionReset))]
    );
    let mut buf = [0u8; 4];
    assert_eq!(l.recv(ms(0), id, &mut buf), Err(TcpError::ConnectionReset));
    assert_eq!(l.send(ms(0), id, b"x"), Err(TcpError::ConnectionReset));
    let _ = snd;
}

#[test]
fn in_window_rst_that_is_not_exact_draws_a_challenge_ack() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("R", P + 100, 0), b"");
    check(&one(&mut l), "A", snd, P);
    assert_eq!(state(&l, id), Some(State::Established));
    assert_eq!(l.stats().challenge_acks, 1);
}

#[test]
fn out_of_window_rst_is_ignored() {
    let (mut l, id, _snd) = server();
    inject(&mut l, ms(0), hdr("R", P + 100_000, 0), b"");
    inject(&mut l, ms(0), hdr("R", P - 1, 0), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(state(&l, id), Some(State::Established));
}

#[test]
fn syn_in_established_draws_a_challenge_ack() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("S", P + 10, 0), b"");
    check(&one(&mut l), "A", snd, P);
    // Even a SYN outside the window gets an ACK (unacceptable segment), once
    // the per-connection limit allows another.
    inject(&mut l, ms(500), hdr("S", 5, 0), b"");
    check(&one(&mut l), "A", snd, P);
    assert_eq!(state(&l, id), Some(State::Established));
}

#[test]
fn challenge_acks_are_rate_limited() {
    let config = TcpConfig {
        challenge_ack_limit: 2,
        // The layer-wide limit alone (the per-connection one is tested below).
        oow_ack_interval: std::time::Duration::ZERO,
        ..cfg()
    };
    let (mut l, _, _id, snd) = server_with(config);
    for _ in 0..10 {
        inject(&mut l, ms(0), hdr("R", P + 1, 0), b"");
    }
    // This second's budget is random in [limit/2, 1.5 x limit] = [1, 3].
    let sent = drain(&mut l).len() as u64;
    assert!((1..=3).contains(&sent), "{sent} challenge ACKs");
    assert_eq!(l.stats().challenge_acks_limited, 10 - sent);
    inject(&mut l, ms(1000), hdr("S", P + 1, 0), b"");
    check(&one(&mut l), "A", snd, P);
}

#[test]
fn challenge_acks_are_also_limited_per_connection() {
    // Forged SYNs and RSTs with a live 4-tuple: one answer per 500 ms per
    // connection (Linux's tcp_invalid_ratelimit inside tcp_send_challenge_ack),
    // so the connection is no reflector even under the layer-wide budget.
    let (mut l, id, snd) = server();
    for i in 0..100 {
        let flags = if i % 2 == 0 { "R" } else { "S" };
        inject(&mut l, ms(i), hdr(flags, P + 1, 0), b"");
    }
    check(&one(&mut l), "A", snd, P);
    assert_eq!(l.stats().challenge_acks, 1);
    assert_eq!(l.stats().oow_acks_limited, 99);
    inject(&mut l, ms(600), hdr("S", P + 1, 0), b"");
    check(&one(&mut l), "A", snd, P);
    assert_eq!(state(&l, id), Some(State::Established));
}

#[test]
fn the_challenge_ack_budget_varies_from_second_to_second() {
    // CVE-2016-5696: a fixed budget lets an off-path attacker count it.
    let config = TcpConfig {
        challenge_ack_limit: 100,
        oow_ack_interval: std::time::Duration::ZERO,
        ..cfg()
    };
    let (mut l, _, _id, _) = server_with(config);
    let mut budgets = std::collections::BTreeSet::new();
    for second in 0..10u64 {
        for _ in 0..200 {
            inject(&mut l, ms(second * 1000), hdr("R", P + 1, 0), b"");
        }
        let sent = drain(&mut l).len();
        assert!((50..=150).contains(&sent), "second {second}: {sent}");
        budgets.insert(sent);
    }
    assert!(
        budgets.len() > 1,
        "the same budget every second: {budgets:?}"
    );
}

#[test]
fn unacceptable_segments_get_an_ack_not_silence() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("PA", P + 50_000, snd), b"far");
    check(&one(&mut l), "A", snd, P);
    inject(&mut l, ms(0), hdr("PA", P - 10, snd), b"old");
    check(&one(&mut l), "A", snd, P);
    assert_eq!(l.info(id).unwrap().recv_queue, 0);
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("PA", P, snd + 10), b"data");
    check(&one(&mut l), "A", snd, P);
    assert_eq!(l.info(id).unwrap().recv_queue, 0, "segment dropped");
}

#[test]
fn ack_far_below_snd_una_draws_a_challenge_ack() {
    let (mut l, id, snd) = server();
    // RFC 5961 §5: older than SND.UNA - MAX.SND.WND (8192).
    inject(&mut l, ms(0), hdr("PA", P, snd.wrapping_sub(9000)), b"data");
    check(&one(&mut l), "A", snd, P);
    assert_eq!(l.info(id).unwrap().recv_queue, 0);
}

#[test]
fn rst_in_syn_rcvd_returns_the_listener_to_listen() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let lid = l.listen(US, 4).unwrap();
    inject(&mut l, ms(0), hdr("S", PEER_ISS, 0), b"");
    drain(&mut l);
    inject(&mut l, ms(1), hdr("R", PEER_ISS + 1, 0), b"");
    assert!(drain(&mut l).is_empty());
    assert!(l.connections().is_empty());
    assert_eq!(l.listeners(), vec![(lid, US, 0, 0)]);
    assert!(events(&mut l).is_empty());
}

#[test]
fn bad_ack_in_syn_rcvd_gets_a_reset() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    l.listen(US, 4).unwrap();
    inject(&mut l, ms(0), hdr("S", PEER_ISS, 0), b"");
    let iss = one(&mut l).h.seq;
    inject(&mut l, ms(1), hdr("A", PEER_ISS + 1, iss + 7), b"");
    check(&one(&mut l), "R", iss + 7, 0);
    assert_eq!(l.connections()[0].state, State::SynReceived);
}

#[test]
fn rst_in_time_wait_closes_quietly() {
    let (mut l, id, snd) = server();
    l.close(ms(0), id).unwrap();
    inject(&mut l, ms(0), hdr("FA", P, snd + 1), b"");
    drain(&mut l);
    inject(&mut l, ms(1), hdr("R", P + 1, 0), b"");
    assert!(drain(&mut l).is_empty());
    assert!(l.connections().is_empty());
}
