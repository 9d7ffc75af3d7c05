//! RACK-TLP (RFC 8985): losses found by time (§6), the tail loss probe
//! (§7). The connections are those of `recovery.rs`: SACK agreed, MSS
//! 1000, NewReno, a 10 ms round trip, ten segments sent at 10 ms.

use tunstack::tcp::TcpConfig;
use tunstack::time::Instant;

use crate::bench::*;
use crate::recovery::{sack_ack, ten_in_flight_with};

fn at_ms(micros_times_1000: u64) -> Instant {
    Instant::from_micros(micros_times_1000)
}

/// RFC 8985 §6.2: one SACKed segment past a hole (which RFC 6675's
/// DupThresh would not call lost) makes the hole lost once it has been out
/// RACK.rtt + reo_wnd (min_RTT / 4); the reordering timer (§6.3) fires
/// then and the hole is resent.
#[test]
fn rfc_8985_one_sacked_segment_past_a_hole_makes_it_lost_in_time() {
    let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
    b.advance(10);
    b.send(sack_ack(&s[0], &[(s[1].seq, s[1].end())]));
    b.expect_nothing();
    let r = b.wait_for_segment(100);
    assert_eq!((r.seq, r.data.len()), (s[0].seq, 1000));
    // Sent at 10 ms, RACK.rtt 10 ms, reo_wnd 10 / 4 ms.
    assert_eq!(r.at, at_ms(22_500));
    assert!(b.info().recovering);
    assert_eq!(b.stats().rack_lost, 1);
    // Without RACK nothing happens before the RTO.
    let (mut b, s) = ten_in_flight_with(
        TcpConfig {
            rack: false,
            ..cfg()
        },
        10_000,
    );
    b.advance(10);
    b.send(sack_ack(&s[0], &[(s[1].seq, s[1].end())]));
    let r = b.wait_for_segment(1000);
    assert!(r.at >= at_ms(200_000), "RTO, at {:?}", r.at);
}

/// RFC 8985 §7: with the last two segments lost and nothing new to send,
/// a probe (the last segment again) goes out two SRTTs after the ACK
/// (§7.2), well before the RTO; its SACK lets RACK find the other lost
/// segment at once.
#[test]
fn rfc_8985_a_lost_tail_is_probed_after_two_round_trips() {
    let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
    b.advance(10);
    b.send(seg!(ACK, ack = s[8].seq));
    b.expect_nothing();
    let probe = b.wait_for_segment(1000);
    assert_eq!(probe.seq, s[9].seq, "the last segment, resent");
    let srtt = b.info().srtt.expect("srtt");
    assert_eq!(probe.at, at_ms(20_000) + srtt * 2);
    assert_eq!(b.stats().tlp_probes, 1);
    b.advance(10);
    b.send(sack_ack(&s[8], &[(s[9].seq, s[9].end())]));
    let r = b.expect(|o| o.seq == s[8].seq);
    assert_eq!(r.data, s[8].data);
    assert!(r.at < at_ms(100_000));
}

/// RFC 8985 §7.3: the probe is new data when there is some and the peer's
/// window takes it, even with cwnd full.
#[test]
fn rfc_8985_the_probe_is_new_data_when_there_is_some() {
    let (mut b, s) = ten_in_flight_with(cfg(), 20_000);
    let probe = b.wait_for_segment(1000);
    assert_eq!(probe.seq, s[9].end(), "new data");
    assert_eq!(probe.at, at_ms(10_000) + b.info().srtt.expect("srtt") * 2);
}

/// RFC 8985 §7.4: a probe that resent the lost last segment, acknowledged
/// without a D-SACK, repaired a loss: cwnd is reduced as by fast recovery
/// (NewReno: halved, from the window before the ACK). A D-SACK for it
/// shows it was not needed: no reduction.
#[test]
fn rfc_8985_7_4_a_probe_that_repaired_a_loss_reduces_cwnd() {
    for dsack in [false, true] {
        let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
        b.advance(10);
        b.send(seg!(ACK, ack = s[9].seq));
        let cwnd = b.info().cwnd;
        let probe = b.wait_for_segment(1000);
        assert_eq!(probe.seq, s[9].seq);
        b.advance(10);
        if dsack {
            b.send(seg!(
                ACK,
                ack = s[9].end(),
                sack = &[(s[9].seq, s[9].end())]
            ));
            // No reduction; the ACK's 1000 new bytes grow cwnd in slow
            // start (RFC 7661 §4.3: 9,000 of 10,000 were in use).
            assert_eq!(b.info().cwnd, cwnd + 1000, "the probe was spurious");
        } else {
            b.send(seg!(ACK, ack = s[9].end()));
            assert_eq!(b.info().cwnd, cwnd / 2, "the probe repaired a loss");
        }
    }
}

/// RFC 8985 §6.2 step 4: after a D-SACK (the peer got a segment twice), the
/// reordering window is two quarters of min_RTT: a hole past which one
/// segment was SACKed is resent 5 ms later than it would have been.
#[test]
fn rfc_8985_a_dsack_widens_the_reordering_window() {
    for dsack in [false, true] {
        let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
        b.advance(10);
        if dsack {
            // Segments 0-2 acknowledged, and segment 0 reported twice.
            b.send(seg!(ACK, ack = s[3].seq, sack = &[(s[0].seq, s[0].end())]));
        } else {
            b.send(seg!(ACK, ack = s[3].seq));
        }
        b.send(sack_ack(&s[3], &[(s[4].seq, s[4].end())]));
        let r = b.wait_for_segment(100);
        assert_eq!(r.seq, s[3].seq);
        // Sent at 10 ms, RACK.rtt 10 ms, reo_wnd 2.5 ms or 5 ms.
        let want = if dsack { 25_000 } else { 22_500 };
        assert_eq!(r.at, at_ms(want), "D-SACK seen: {dsack}");
    }
}

/// RFC 8985 §6.2 step 4: in recovery, while no reordering has been seen,
/// the reordering window is zero (as Linux's `tcp_rack_reo_wnd`): a hole
/// past which one segment was SACKed is lost as soon as RACK.rtt has
/// passed, so it is resent with the ACK that shows it, not min_RTT / 4
/// later. Once an original segment arrived below a later one (step 3:
/// reordering seen), the quarter of min_RTT is back.
#[test]
fn rfc_8985_in_recovery_without_reordering_the_window_is_zero() {
    for reordered in [false, true] {
        let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
        b.advance(10);
        if reordered {
            // Segment 2 arrives before segment 1.
            b.send(seg!(ACK, ack = s[1].seq, sack = &[(s[2].seq, s[2].end())]));
        }
        b.send(seg!(ACK, ack = s[3].seq));
        // Segment 3 is lost, 4-6 arrive: recovery (DupThresh), 3 resent.
        b.send(sack_ack(&s[3], &[(s[4].seq, s[6].end())]));
        let r = b.expect(|o| o.seq == s[3].seq);
        assert_eq!(r.at, at_ms(20_000));
        assert!(b.info().recovering);
        // Segment 7 is lost and 8 arrives: one segment past the hole.
        b.send(sack_ack(
            &s[3],
            &[(s[8].seq, s[8].end()), (s[4].seq, s[6].end())],
        ));
        let r = b.wait_for_segment(100);
        assert_eq!(r.seq, s[7].seq, "reordered: {reordered}");
        // Sent at 10 ms, RACK.rtt 10 ms; reo_wnd 0, or 10 / 4 ms.
        let want = if reordered { 22_500 } else { 20_000 };
        assert_eq!(r.at, at_ms(want), "reordered: {reordered}");
    }
}

/// RFC 8985 §6.2: a retransmission is lost too when a segment sent after
/// it is delivered and it is not (RACK compares transmission times, the
/// retransmission's own). It is resent again, although it lies below
/// RFC 6675's HighRxt, long before the RTO would repair it.
#[test]
fn rfc_8985_a_lost_retransmission_is_resent_again_before_the_rto() {
    let (mut b, s) = ten_in_flight_with(cfg(), 30_000);
    b.advance(10);
    // Segments 1-3 arrive: 0 is lost (DupThresh) and resent at once.
    for k in 1..=3 {
        b.send(sack_ack(&s[0], &[(s[1].seq, s[k].end())]));
    }
    let sent = b.take_all();
    let first = sent
        .iter()
        .find(|o| o.seq == s[0].seq)
        .expect("the fast retransmission")
        .clone();
    // The rest of the flight arrives; the retransmission does not. The
    // pipe drains and new data goes out after the retransmission.
    for k in 4..=9 {
        b.send(sack_ack(&s[0], &[(s[1].seq, s[k].end())]));
    }
    let new = b.take_all();
    let after: Vec<&Out> = new.iter().filter(|o| !seq_lt(o.seq, s[9].end())).collect();
    assert!(
        !after.is_empty(),
        "new data after the retransmission: {new:?}"
    );
    // That new data arrives 10 ms later, the retransmission still not.
    b.advance(10);
    let end = after[after.len() - 1].end();
    b.send(sack_ack(&s[0], &[(s[1].seq, end)]));
    let mut again = b.wait_for_segment(100);
    while again.seq != s[0].seq {
        again = b.wait_for_segment(100); // new data may go first
    }
    assert!(
        again.at < first.at + ms(100),
        "well before the 200 ms RTO: {:?} after the first",
        again.at - first.at
    );
}

/// RFC 8985 §6.2 with RFC 6675 §4's SetPipe: a segment RACK marked lost
/// and then resent is in the network once (its retransmission), not twice
/// (as Linux counts it: `packets_out - sacked_out - lost_out +
/// retrans_out`). With the last of ten segments SACKed, RACK finds the
/// nine before it lost (one SACKed segment is not RFC 6675's DupThresh);
/// NewReno's recovery window of five segments then carries five
/// retransmissions. Counting each resent segment's original too, the pipe
/// would read the whole nine-segment hole as in flight after the first
/// retransmission and hold the other four back for a round trip.
#[test]
fn rfc_8985_a_segment_resent_after_rack_found_it_lost_counts_once_in_the_pipe() {
    let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
    b.advance(10);
    b.send(sack_ack(&s[0], &[(s[9].seq, s[9].end())]));
    b.expect_nothing();
    let first = b.wait_for_segment(100);
    assert_eq!(first.seq, s[0].seq);
    // RACK's doing (one SACKed segment is not DupThresh): one loss per
    // transmission record, which offload makes one super-segment.
    assert!(b.stats().rack_lost >= 1);
    let i = b.info();
    assert!(i.recovering);
    assert_eq!(i.cwnd, 5000);
    let mut resent = vec![first.seq];
    resent.extend(b.take_all().iter().map(|o| o.seq));
    let want: Vec<u32> = s[..5].iter().map(|o| o.seq).collect();
    assert_eq!(resent, want, "the five lowest lost segments, at once");
}

/// RFC 8985 §6.3: RACK goes on after a retransmission timeout. When a
/// segment the go-back-N resent is lost again (one resent after it
/// arrives, and it does not), it is resent at once, within cwnd, as Linux
/// resends marked segments in its Loss state; not at the next timeout,
/// which the backoff has doubled to 400 ms.
#[test]
fn rfc_8985_after_a_timeout_a_lost_retransmission_is_resent_before_the_next() {
    let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
    // Nothing is acknowledged: after the tail loss probe (the last
    // segment again), the timeout resends the head alone.
    let probe = b.wait_for_segment(2000);
    assert_eq!(probe.seq, s[9].seq, "the probe");
    let r = b.wait_for_segment(2000);
    assert_eq!(r.seq, s[0].seq, "the RTO resends the head");
    b.expect_nothing();
    // The head arrives: cwnd 2, and the go-back-N resends 1 and 2.
    b.advance(10);
    b.send(seg!(ACK, ack = s[1].seq));
    let go: Vec<u32> = b.take_all().iter().map(|o| o.seq).collect();
    assert_eq!(go, [s[1].seq, s[2].seq]);
    // 2 arrives, 1 does not. RACK finds 1 lost (reordering window zero
    // after a timeout) and it goes again now.
    b.advance(10);
    b.send(sack_ack(&s[1], &[(s[2].seq, s[2].end())]));
    let again: Vec<u32> = b.take_all().iter().map(|o| o.seq).collect();
    assert_eq!(again.first(), Some(&s[1].seq), "{again:?}");
    assert!(b.info().rto >= ms(400), "still backed off: no clean sample");
}

/// RFC 6298 §3 (Karn's algorithm) and §5.7: after a timeout, and without
/// timestamps, an ACK that SACKs a segment never retransmitted is a round
/// trip sample and collapses the backoff, as Linux's `sack_rtt_us` does
/// (the transmission record is RACK's). Before, only a newly timed
/// segment, acknowledged cumulatively, gave one: where retransmissions
/// kept getting lost, the RTO doubled up to its ceiling (a simulated
/// transfer at 5 % loss stalled for minutes).
#[test]
fn rfc_6298_a_sacked_original_after_a_timeout_collapses_the_backoff() {
    let (mut b, s) = ten_in_flight_with(cfg(), 10_000);
    let probe = b.wait_for_segment(2000);
    assert_eq!(probe.seq, s[9].seq, "the tail loss probe");
    let r = b.wait_for_segment(2000);
    assert_eq!(r.seq, s[0].seq, "the RTO resends the head");
    let backed_off = b.info().rto;
    assert!(backed_off >= ms(400), "{backed_off:?}");
    // Segment 5, sent before the timeout and never again, arrives.
    b.advance(5);
    b.send(sack_ack(&s[0], &[(s[5].seq, s[5].end())]));
    let rto = b.info().rto;
    assert!(rto < backed_off, "{rto:?}, backed off {backed_off:?}");
}
