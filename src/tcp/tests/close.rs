//! Closing: active, passive, simultaneous; TIME-WAIT; FIN-WAIT-2 timeout;
//! RST on close with unread data; abort.

use super::*;
use crate::tcp::TcpError;

const P: u32 = PEER_ISS + 1;

/// MSL of 100 ms: TIME-WAIT lasts 200 ms.
fn short() -> TcpConfig {
    TcpConfig {
        msl: d_ms(100),
        fin_wait2_timeout: d_ms(5000),
        ..cfg()
    }
}

#[test]
fn active_close_walks_fin_wait_1_fin_wait_2_time_wait_closed() {
    let (mut l, _, id, snd) = server_with(short());
    l.close(ms(0), id).unwrap();
    check(&one(&mut l), "FA", snd, P);
    assert_eq!(state(&l, id), Some(State::FinWait1));
    inject(&mut l, ms(10), hdr("A", P, snd + 1), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(state(&l, id), Some(State::FinWait2));
    inject(&mut l, ms(20), hdr("FA", P, snd + 1), b"");
    check(&one(&mut l), "A", snd + 1, P + 1);
    assert_eq!(state(&l, id), Some(State::TimeWait));
    // 2×MSL.
    assert_eq!(l.poll_at(), Some(ms(220)));
    assert!(tick(&mut l, ms(219)).is_empty());
    assert_eq!(state(&l, id), Some(State::TimeWait));
    assert!(tick(&mut l, ms(220)).is_empty());
    assert!(l.connections().is_empty(), "forgotten once CLOSED");
    assert!(
        events(&mut l).is_empty(),
        "the handle was released: no events"
    );
}

#[test]
fn default_time_wait_is_sixty_seconds() {
    let (mut l, id, snd) = server();
    l.close(ms(0), id).unwrap();
    inject(&mut l, ms(0), hdr("FA", P, snd + 1), b"");
    drain(&mut l);
    assert_eq!(state(&l, id), Some(State::TimeWait));
    assert_eq!(l.poll_at(), Some(Instant::from_secs(60)));
}

#[test]
fn time_wait_reacks_a_retransmitted_fin_and_restarts_its_timer() {
    let (mut l, _, id, snd) = server_with(short());
    l.close(ms(0), id).unwrap();
    inject(&mut l, ms(0), hdr("A", P, snd + 1), b"");
    inject(&mut l, ms(10), hdr("FA", P, snd + 1), b"");
    drain(&mut l);
    assert_eq!(l.poll_at(), Some(ms(210)));
    // Our ACK was lost; the peer retransmits its FIN.
    inject(&mut l, ms(150), hdr("FA", P, snd + 1), b"");
    check(&one(&mut l), "A", snd + 1, P + 1);
    assert_eq!(l.poll_at(), Some(ms(350)));
    assert!(tick(&mut l, ms(349)).is_empty());
    assert_eq!(state(&l, id), Some(State::TimeWait));
    tick(&mut l, ms(350));
    assert!(l.connections().is_empty());
}

#[test]
fn passive_close_walks_close_wait_last_ack_closed() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("FA", P, snd), b"");
    check(&one(&mut l), "A", snd, P + 1);
    assert_eq!(state(&l, id), Some(State::CloseWait));
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::PeerClosed(id), TcpEvent::Readable(id)]
    );
    l.shutdown_write(ms(1), id).unwrap();
    check(&one(&mut l), "FA", snd, P + 1);
    assert_eq!(state(&l, id), Some(State::LastAck));
    inject(&mut l, ms(2), hdr("A", P + 1, snd + 1), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(state(&l, id), Some(State::Closed));
    assert_eq!(events(&mut l), vec![TcpEvent::Closed(id, None)]);
    let mut buf = [0u8; 1];
    assert_eq!(l.recv(ms(2), id, &mut buf), Ok(0));
    l.close(ms(3), id).unwrap();
    assert!(l.connections().is_empty());
    assert_eq!(l.close(ms(3), id), Err(TcpError::NotConnected));
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let (mut l, _, id, snd) = server_with(short());
    l.close(ms(0), id).unwrap();
    check(&one(&mut l), "FA", snd, P);
    // The peer's FIN crosses ours (it has not seen our FIN yet).
    inject(&mut l, ms(1), hdr("FA", P, snd), b"");
    check(&one(&mut l), "A", snd + 1, P + 1);
    assert_eq!(state(&l, id), Some(State::Closing));
    inject(&mut l, ms(2), hdr("A", P + 1, snd + 1), b"");
    assert_eq!(state(&l, id), Some(State::TimeWait));
    assert_eq!(l.poll_at(), Some(ms(202)));
}

#[test]
fn fin_ack_together_takes_fin_wait_1_straight_to_time_wait() {
    let (mut l, id, snd) = server();
    l.close(ms(0), id).unwrap();
    drain(&mut l);
    inject(&mut l, ms(1), hdr("FA", P, snd + 1), b"");
    check(&one(&mut l), "A", snd + 1, P + 1);
    assert_eq!(state(&l, id), Some(State::TimeWait));
}

#[test]
fn a_lost_fin_is_retransmitted() {
    let (mut l, id, snd) = server();
    l.send(ms(0), id, b"bye").unwrap();
    l.close(ms(0), id).unwrap();
    let v = drain(&mut l);
    assert_eq!(v.len(), 2);
    check(&v[0], "PA", snd, P);
    check(&v[1], "FA", snd + 3, P);
    // Data acknowledged, FIN lost.
    inject(&mut l, ms(5), hdr("A", P, snd + 3), b"");
    let r = tick(&mut l, ms(205));
    assert_eq!(r.len(), 1);
    check(&r[0], "FA", snd + 3, P);
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let (mut l, _, id, snd) = server_with(short());
    l.close(ms(0), id).unwrap();
    check(&one(&mut l), "FA", snd, P);
    inject(&mut l, ms(10), hdr("A", P, snd + 1), b"");
    assert_eq!(state(&l, id), Some(State::FinWait2));
    assert_eq!(l.poll_at(), Some(ms(5010)));
    assert!(tick(&mut l, ms(5009)).is_empty());
    tick(&mut l, ms(5010));
    assert!(l.connections().is_empty());
}

#[test]
fn closing_with_unread_data_sends_rst() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("PA", P, snd), b"unread");
    l.close(ms(1), id).unwrap();
    check(&one(&mut l), "RA", snd, P + 6);
    assert!(l.connections().is_empty());
    // The peer's next segment finds a closed port.
    inject(&mut l, ms(2), hdr("PA", P + 6, snd), b"more");
    check(&one(&mut l), "R", snd, 0);
}

#[test]
fn data_arriving_after_close_is_answered_with_rst() {
    let (mut l, id, snd) = server();
    l.close(ms(0), id).unwrap();
    check(&one(&mut l), "FA", snd, P);
    inject(&mut l, ms(1), hdr("PA", P, snd + 1), b"late");
    check(&one(&mut l), "RA", snd + 1, P);
    assert!(l.connections().is_empty());
}

#[test]
fn abort_sends_rst_and_forgets_the_connection() {
    let (mut l, id, snd) = server();
    l.abort(id).unwrap();
    check(&one(&mut l), "RA", snd, P);
    assert!(l.connections().is_empty());
    assert_eq!(l.send(ms(0), id, b"x"), Err(TcpError::NotConnected));
}

#[test]
fn close_in_syn_sent_just_deletes_the_connection() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let id = l.connect(ms(0), US, THEM).unwrap();
    drain(&mut l);
    l.close(ms(1), id).unwrap();
    assert!(drain(&mut l).is_empty());
    assert!(l.connections().is_empty());
    assert_eq!(l.poll_at(), None);
}
