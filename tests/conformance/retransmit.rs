//! Retransmission: the RFC 6298 RTO with Karn's algorithm (MUST-18),
//! exponential backoff, slow start and the loss window (MUST-19), the R1/R2
//! thresholds (MUST-20, MUST-21) and SYN retransmission (MUST-22, MUST-23).
//! RFC 9293 §3.8.1-3.

use tunstack::tcp::{State, TcpConfig, TcpError, TcpEvent};

use tunstack::tcp::congestion::Algorithm;

use crate::bench::*;

/// MUST-18, MUST-22 (RFC 6298 §2.1, §5.5): a SYN is first retransmitted
/// after the initial RTO of 1 s, then with the timeout doubled each time;
/// after the configured retries `connect` fails with `TimedOut`.
#[test]
fn must_22_syn_retransmission_backs_off_then_reports_timed_out() {
    let mut b = Bench::with(TcpConfig {
        syn_retries: 3,
        ..cfg()
    });
    let id = b.connect(5000);
    let syn = b.expect(|s| s.is("S"));
    let mut times = Vec::new();
    for _ in 0..3 {
        let r = b.wait_for_segment(100_000);
        assert!(
            r.is("S") && r.seq == syn.seq && r.mss == Some(1460),
            "{r:?}"
        );
        times.push(r.at.total_millis());
    }
    assert_eq!(times, [1000, 3000, 7000]);
    b.advance(7_999);
    assert_eq!(b.state(), Some(State::SynSent));
    b.advance(1);
    b.expect_nothing();
    assert_eq!(
        b.events(),
        vec![TcpEvent::Closed(id, Some(TcpError::TimedOut))]
    );
}

/// MUST-23: R2 for a SYN must let retransmissions go on for at least three
/// minutes. The default `syn_retries` is 7 (255 s), not Linux's 6 (127 s).
#[test]
fn must_23_syn_is_retried_for_at_least_three_minutes() {
    let mut b = Bench::with(TcpConfig::default());
    b.connect(5000);
    b.expect(|s| s.is("S"));
    b.advance(180_000);
    assert_eq!(b.state(), Some(State::SynSent), "gave up before 3 minutes");
}

/// MUST-18 (RFC 6298 §2.2): the first RTT sample R sets SRTT = R,
/// RTTVAR = R/2, RTO = SRTT + 4·RTTVAR; data is retransmitted exactly then,
/// and again after twice that (§5.5).
#[test]
fn must_18_first_rtt_sample_sets_the_rto() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 1460), 100);
    let i = b.info();
    assert_eq!((i.srtt, i.rttvar, i.rto), (Some(ms(100)), ms(50), ms(300)));
    b.app_send(&[1u8; 100]);
    let d = b.expect(|s| s.data.len() == 100);
    let r1 = b.wait_for_segment(10_000);
    assert_eq!((r1.seq, r1.data.len()), (d.seq, 100));
    assert_eq!(r1.at - d.at, ms(300));
    let r2 = b.wait_for_segment(10_000);
    assert_eq!(r2.at - r1.at, ms(600));
}

/// MUST-18, Karn's algorithm (RFC 6298 §3, §5.7): the ACK of a
/// retransmitted segment gives no RTT sample, and the backed-off RTO is
/// kept for the next segment; a segment acknowledged without
/// retransmission gives a sample again and the RTO is recomputed.
#[test]
fn must_18_karn_no_sample_from_retransmissions_and_backoff_kept() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 1460), 100);
    b.app_send(&[1u8; 100]);
    b.expect(|s| s.data.len() == 100);
    b.wait_for_segment(1000); // retransmitted at +300 ms
    b.advance(50);
    b.peer_ack();
    let i = b.info();
    assert_eq!(i.srtt, Some(ms(100)), "no sample from the ambiguous ACK");
    assert_eq!(i.rto, ms(600), "backed-off RTO kept");
    // The next segment runs on the backed-off RTO...
    b.app_send(&[2u8; 100]);
    b.expect(|s| s.data.len() == 100);
    b.advance(50);
    b.peer_ack();
    // ...and its clean ACK is sampled: SRTT = 7/8·100 + 1/8·50,
    // RTTVAR = 3/4·50 + 1/4·|100 - 50|, RTO = SRTT + 4·RTTVAR.
    let i = b.info();
    assert_eq!(i.srtt, Some(ms(100) * 7 / 8 + ms(50) / 8));
    assert_eq!(i.rttvar, ms(50));
    assert_eq!(i.rto, ms(100) * 7 / 8 + ms(50) / 8 + ms(200));
}

/// MUST-18 (Karn) on the handshake: when the SYN-ACK had to be
/// retransmitted, the ACK completing the handshake is not sampled.
#[test]
fn must_18_karn_applies_to_the_syn_ack() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460));
    b.expect(|s| s.is("SA"));
    let r = b.wait_for_segment(2000);
    assert!(r.is("SA") && r.at.total_millis() == 1000);
    b.advance(30);
    b.send(seg!(ACK));
    b.conn = Some(b.tcp.accept(b.listener.unwrap()).unwrap());
    assert_eq!(b.info().srtt, None);
}

/// MUST-19 (RFC 6298 §5.5, §2.5): successive timeouts of one segment double
/// the RTO up to the 120 s ceiling.
#[test]
fn must_19_rto_backs_off_exponentially_up_to_the_maximum() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 1460), 100);
    b.app_send(&[1u8; 100]);
    let d = b.expect(|s| s.data.len() == 100);
    let mut last = d.at;
    let mut gaps = Vec::new();
    for _ in 0..12 {
        let r = b.wait_for_segment(200_000);
        assert_eq!(r.seq, d.seq);
        gaps.push((r.at - last).as_millis());
        last = r.at;
    }
    assert_eq!(
        gaps,
        [300, 600, 1200, 2400, 4800, 9600, 19_200, 38_400, 76_800, 120_000, 120_000, 120_000]
    );
}

/// MUST-19 (RFC 5681 §3.1): slow start — the initial window is
/// min(10·MSS, max(2·MSS, 14600)) (RFC 6928 §2), each ACK of a full
/// segment opens the window by one MSS (two new segments out per ACK); a
/// timeout collapses the window to one segment (NewReno: ssthresh =
/// max(FlightSize/2, 2·MSS)).
#[test]
fn must_19_slow_start_and_the_loss_window() {
    let mut b = Bench::with(TcpConfig {
        congestion: Algorithm::NewReno,
        send_buffer: 64 * 1024,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, mss = 1000), 0);
    b.app_send(&[1u8; 30_000]);
    let first = b.take_all();
    assert_eq!(first.len(), 10, "initial window: 10 segments of 1000");
    assert_eq!(b.info().cwnd, 10_000);
    b.send(seg!(ACK, ack = first[0].end()));
    let burst = b.take_all();
    assert_eq!(
        burst.len(),
        2,
        "one ACK in slow start lets two segments out"
    );
    assert_eq!(b.info().cwnd, 11_000);
    // Nothing more is acknowledged: the RTO fires.
    let flight = 11_000;
    let r = b.wait_for_segment(10_000);
    assert_eq!((r.seq, r.data.len()), (first[1].seq, 1000));
    b.expect_nothing();
    let i = b.info();
    assert_eq!((i.cwnd, i.ssthresh), (1000, flight / 2));
}

/// MUST-20 (R2), RFC 9293 §3.8.3: after R2 retransmissions of the same
/// segment (here `retries2` = 3) the next timeout closes the connection
/// with `TimedOut`; nothing more is sent. R1 (`retries1` = 2) is passed
/// without closing.
#[test]
fn must_20_r2_retransmissions_close_the_connection() {
    let mut b = Bench::with(TcpConfig {
        retries1: 2,
        retries2: 3,
        ..cfg()
    });
    let id = b.handshake_passive();
    b.app_send(b"hello");
    let d = b.expect(|s| s.data == b"hello");
    let mut at = Vec::new();
    for _ in 0..3 {
        let r = b.wait_for_segment(10_000);
        assert_eq!(r.seq, d.seq);
        at.push((r.at - d.at).as_millis());
    }
    assert_eq!(at, [200, 600, 1400]);
    assert_eq!(b.state(), Some(State::Established), "past R1, still open");
    b.advance(1599);
    assert_eq!(b.state(), Some(State::Established));
    b.advance(1);
    b.expect_nothing();
    assert_eq!(
        b.events(),
        vec![TcpEvent::Closed(id, Some(TcpError::TimedOut))]
    );
    assert_eq!(b.stats().timeouts, 1);
}

/// A passive half-open connection whose SYN-ACK is never acknowledged is
/// dropped after `synack_retries` retransmissions, without telling anyone
/// (the application never saw it).
#[test]
fn unacknowledged_syn_ack_is_retried_then_dropped() {
    let mut b = Bench::with(TcpConfig {
        synack_retries: 2,
        ..cfg()
    });
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    let r: Vec<u64> = (0..2)
        .map(|_| b.wait_for_segment(10_000))
        .inspect(|r| assert!(r.is("SA") && r.seq == sa.seq))
        .map(|r| r.at.total_millis())
        .collect();
    assert_eq!(r, [1000, 3000]);
    b.advance(4000);
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
    assert!(b.events().is_empty());
}
