//! Keep-alives, RFC 9293 §3.8.4: per-connection and off by default
//! (MUST-24, MUST-25), only after an idle interval (MUST-26) that is
//! configurable (MUST-27) and two hours by default (MUST-28), tolerant of
//! lost probes (MUST-29).

use tunstack::tcp::{KeepaliveConfig, State, TcpConfig, TcpError, TcpEvent};

use crate::bench::*;

fn ka() -> KeepaliveConfig {
    KeepaliveConfig {
        idle: secs(10),
        interval: secs(2),
        count: 3,
    }
}

fn enable(b: &mut Bench, k: Option<KeepaliveConfig>) {
    b.tcp
        .set_keepalive(b.now, b.id(), k)
        .expect("set_keepalive");
}

/// A keep-alive probe: `<SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>`, no data
/// (SHLD-12).
fn is_probe(s: &Out, snd: u32, rcv: u32) -> bool {
    s.is("A") && s.seq == snd.wrapping_sub(1) && s.ack_no == rcv && s.data.is_empty()
}

/// MUST-24, MUST-25: keep-alives are off unless the application asks, and
/// can be switched on and off per connection.
#[test]
fn must_24_25_keepalive_is_off_by_default_and_switchable() {
    let mut b = Bench::new();
    b.handshake_passive();
    assert_eq!(b.next_deadline(), None, "no timer at all when idle");
    b.advance(3 * 3600 * 1000);
    b.expect_nothing();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    let t0 = b.now;
    enable(&mut b, Some(ka()));
    let p = b.wait_for_segment(20_000);
    assert!(is_probe(&p, snd, rcv), "{p:?}");
    assert_eq!(p.at - t0, secs(10));
    enable(&mut b, None);
    b.advance(3600 * 1000);
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Established));
}

/// MUST-26, MUST-27: a probe goes out only after the configured idle time
/// with nothing received; any segment from the peer restarts the clock.
#[test]
fn must_26_27_probe_only_after_the_configured_idle_time() {
    let mut b = Bench::new();
    b.handshake_passive();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    let t0 = b.now;
    enable(&mut b, Some(ka()));
    b.advance(5000);
    b.peer_ack();
    b.advance(9999);
    b.expect_nothing();
    let p = b.wait_for_segment(1000);
    assert!(is_probe(&p, snd, rcv));
    assert_eq!(p.at - t0, secs(15));
}

/// MUST-26: no keep-alive while sent data is outstanding (the
/// retransmission timer is in charge).
#[test]
fn must_26_no_probe_while_data_is_outstanding() {
    let mut b = Bench::with(TcpConfig {
        retries2: 100,
        ..cfg()
    });
    b.handshake_passive();
    enable(&mut b, Some(ka()));
    b.app_send(b"unacknowledged");
    b.advance(60_000);
    let segs = b.take_all();
    assert!(segs.len() > 3);
    assert!(segs.iter().all(|s| s.data == b"unacknowledged"), "{segs:?}");
}

/// MUST-28: the default idle interval is no less than two hours.
#[test]
fn must_28_default_idle_is_two_hours() {
    assert!(KeepaliveConfig::default().idle >= secs(7200));
    let mut b = Bench::new();
    b.handshake_passive();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    enable(&mut b, Some(KeepaliveConfig::default()));
    b.advance(7_199_999);
    b.expect_nothing();
    let p = b.wait_for_segment(1);
    assert!(is_probe(&p, snd, rcv));
    assert_eq!(p.at.total_millis(), 7_200_000);
}

/// MUST-29: one unanswered probe does not kill the connection: probes repeat
/// every interval, an answer resets the count, and only `count` probes in a
/// row without answer end it (with a RST and `TimedOut`).
#[test]
fn must_29_lost_probes_are_tolerated_up_to_the_count() {
    let mut b = Bench::new();
    let id = b.handshake_passive();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    enable(&mut b, Some(ka()));
    // First probe lost; the second is answered.
    let p1 = b.wait_for_segment(20_000);
    let p2 = b.wait_for_segment(20_000);
    assert!(is_probe(&p1, snd, rcv) && is_probe(&p2, snd, rcv));
    assert_eq!(p2.at - p1.at, secs(2));
    b.peer_ack();
    let t = b.now;
    // Then three in a row go unanswered: the connection is dropped.
    let times: Vec<u64> = (0..3)
        .map(|_| b.wait_for_segment(20_000))
        .inspect(|p| assert!(is_probe(p, snd, rcv)))
        .map(|p| (p.at - t).as_millis() as u64)
        .collect();
    assert_eq!(times, [10_000, 12_000, 14_000]);
    assert_eq!(b.state(), Some(State::Established));
    let rst = b.wait_for_segment(20_000);
    assert!(rst.is("RA") && rst.seq == snd, "{rst:?}");
    assert_eq!((rst.at - t).as_millis(), 16_000);
    assert_eq!(
        b.events(),
        vec![TcpEvent::Closed(id, Some(TcpError::TimedOut))]
    );
}

/// RFC 9293 §3.8.4: the peer's keep-alive probes (SEG.SEQ = RCV.NXT-1, with
/// or without one garbage octet, MAY-6) are answered with an ACK and
/// deliver nothing.
#[test]
fn peer_keepalive_probes_are_answered() {
    let mut b = Bench::new();
    b.handshake_passive();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    b.send(seg!(ACK, seq = rcv - 1));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    b.send(seg!(ACK, seq = rcv - 1, data = [0u8]));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.info().recv_queue, 0);
}
