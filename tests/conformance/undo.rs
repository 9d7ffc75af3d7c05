//! Spurious retransmissions undone: Eifel detection with timestamps (RFC
//! 3522), D-SACK detection (RFC 3708), and the response (RFC 4015): the
//! congestion window and threshold restored, recovery ended, and after a
//! timeout new data instead of what the peer holds.

use tunstack::tcp::congestion::Algorithm;
use tunstack::tcp::TcpConfig;

use crate::bench::*;
use crate::recovery::sack_ack;

/// Ten segments in flight (MSS 1000, 988 bytes of data beside the
/// timestamps) to a peer that uses timestamps (its clock from 5000), and
/// SACK if `sack`; NewReno, unpaced (as `recovery::ten_in_flight_with`);
/// `total` bytes queued; then 5 ms pass.
fn ten_in_flight_with_ts(total: usize) -> (Bench, Vec<Out>) {
    ten_in_flight_ts(total, true)
}

fn ten_in_flight_ts(total: usize, sack: bool) -> (Bench, Vec<Out>) {
    let mut b = Bench::with(TcpConfig {
        congestion: Algorithm::NewReno,
        pacing: false,
        ..cfg()
    });
    b.peer_ts = Some(5000);
    b.handshake_passive_with(seg!(SYN, mss = 1000, sack_perm = sack), 10);
    b.app_send(&vec![7u8; total]);
    let segs = b.take_all();
    assert_eq!(segs.len(), 10, "IW10");
    b.advance(5);
    (b, segs)
}

/// The TSval a segment of ours carried.
fn tsval(o: &Out) -> u32 {
    o.ts.expect("timestamps were agreed").0
}

/// RFC 3522 §3.2 (Eifel detection) with RFC 4015's response: a segment
/// only reordered is fast-retransmitted; the first ACK to cover it echoes
/// the original's TSval, older than the retransmission's, so the recovery
/// was spurious: cwnd and ssthresh come back and recovery ends.
#[test]
fn rfc_3522_an_ack_echoing_the_original_undoes_a_fast_retransmit() {
    let (mut b, s) = ten_in_flight_with_ts(10_000);
    let before = b.info();
    b.send(sack_ack(&s[0], &[(s[1].seq, s[3].end())]));
    let r = b.expect(|o| o.seq == s[0].seq && o.data == s[0].data);
    assert!(
        tsval(&r) > tsval(&s[0]),
        "the retransmission is stamped later"
    );
    let i = b.info();
    assert!(i.recovering);
    assert!(
        i.cwnd < before.cwnd && i.ssthresh < before.ssthresh,
        "{i:?}"
    );
    // The original arrives after all: everything is acknowledged with the
    // echo of its TSval.
    let ts = (b.peer_tsval(5000), tsval(&s[0]));
    b.send(seg!(ACK, ack = s[9].end(), ts = ts));
    let i = b.info();
    assert!(!i.recovering);
    assert_eq!((i.ssthresh, i.cwnd), (before.ssthresh, before.cwnd));
    assert_eq!(b.stats().spurious_undone, 1);
}

/// RFC 3522 §3.2: the same recovery, but the ACK echoes the
/// retransmission's TSval (the original was lost): nothing is undone.
#[test]
fn rfc_3522_an_ack_echoing_the_retransmission_keeps_the_reduction() {
    let (mut b, s) = ten_in_flight_with_ts(10_000);
    let before = b.info();
    b.send(sack_ack(&s[0], &[(s[1].seq, s[3].end())]));
    let r = b.expect(|o| o.seq == s[0].seq && o.data == s[0].data);
    let reduced = b.info().ssthresh;
    assert!(reduced < before.ssthresh);
    b.advance(5);
    let ts = (b.peer_tsval(5000), tsval(&r));
    b.send(seg!(ACK, ack = s[9].end(), ts = ts));
    let i = b.info();
    assert!(!i.recovering);
    assert_eq!(
        (i.ssthresh, i.cwnd),
        (reduced, reduced),
        "RFC 6582 §3.2 step 3"
    );
    assert_eq!(b.stats().spurious_undone, 0);
}

/// RFC 3522 §2: RetransmitTS is the TSval of the first retransmission.
/// Two holes (s0, s5) are resent in one recovery, and new data follows;
/// s0 only came late, and the ACK echoing its original undoes that
/// recovery. The same ACK SACKs new data sent after s5's retransmission,
/// so RACK finds that retransmission lost (RFC 8985 §6.2): a new recovery
/// begins at once and resends s5 a second time. The first retransmission
/// was only late: the ACK it draws echoes its TSval, older than the new
/// retransmission's, and it must not pass for the original (Linux compares
/// with `retrans_stamp`, the first retransmission outstanding). Without
/// that, every recovery that began with data an earlier one had resent was
/// undone: 220 false undos in one 20 MiB BBR transfer at 5 % loss.
#[test]
fn rfc_3522_an_echo_of_an_earlier_retransmission_is_not_the_original() {
    let (mut b, s) = ten_in_flight_with_ts(20_000);
    let before = b.info();
    b.send(sack_ack(
        &s[0],
        &[(s[1].seq, s[5].seq), (s[6].seq, s[9].end())],
    ));
    let first = b.take_all();
    let r5 = first
        .iter()
        .find(|o| o.seq == s[5].seq)
        .expect("the second hole is resent in the same recovery")
        .clone();
    assert!(first.iter().any(|o| o.seq == s[0].seq), "{first:?}");
    let new = first
        .iter()
        .find(|o| o.seq == s[9].end())
        .expect("new data follows in the same recovery")
        .clone();
    b.advance(5);
    // s0's original arrives: the ACK echoes it, the recovery was spurious.
    // It also SACKs the new segment, sent after s5's retransmission.
    let ts = (b.peer_tsval(5000), tsval(&s[0]));
    b.send(seg!(
        ACK,
        ack = s[5].seq,
        sack = &[(new.seq, new.end()), (s[6].seq, s[9].end())],
        ts = ts
    ));
    assert_eq!(b.stats().spurious_undone, 1);
    // s5's retransmission is lost by RACK's clock: a new recovery, with
    // its own reduction, resends it.
    let again = b.take_all();
    let i = b.info();
    assert!(i.recovering, "{again:?}");
    assert!(again.iter().any(|o| o.seq == s[5].seq), "{again:?}");
    let reduced = i.ssthresh;
    assert!(reduced < before.ssthresh);
    b.advance(5);
    // The first retransmission of s5 arrives after all: its echo is that
    // retransmission's, not the original's.
    let ts = (b.peer_tsval(5000), tsval(&r5));
    let max = first
        .iter()
        .chain(&again)
        .map(|o| o.end())
        .fold(s[9].end(), |m, e| if seq_lt(m, e) { e } else { m });
    b.send(seg!(ACK, ack = max, ts = ts));
    let i = b.info();
    assert!(!i.recovering);
    assert_eq!(b.stats().spurious_undone, 1, "the second recovery stands");
    assert_eq!(i.ssthresh, reduced);
}

/// With RACK, a hole whose retransmission from the last recovery is still
/// on its way is not resent when that recovery ends, and starts no new
/// one (as Linux, which skips data marked `TCPCB_SACKED_RETRANS` and, with
/// RACK, enters recovery only on data marked lost). Here s10, new data of
/// the first recovery, is lost and resent in it; the ACK that ends that
/// recovery shows three segments SACKed above s10 (RFC 6675's IsLost
/// would call it lost) but none that left after its retransmission long
/// enough ago for RACK to call that lost. s10 is sent twice in all, not
/// three times, and the window is cut once.
#[test]
fn a_hole_resent_in_the_last_recovery_is_not_resent_again() {
    let (mut b, s) = ten_in_flight_with_ts(30_000);
    // s2 arrives before s1: the path reorders, and RACK keeps a
    // reordering window (min_RTT / 4) even in recovery. The ACKs let new
    // data out.
    b.send(seg!(ACK, ack = s[1].seq, sack = &[(s[2].seq, s[2].end())]));
    b.send(seg!(ACK, ack = s[3].seq));
    let early = b.take_all();
    let point = early
        .iter()
        .map(|o| o.end())
        .fold(s[9].end(), |m, e| if seq_lt(m, e) { e } else { m });
    // s3 is lost, everything else arrives: recovery (its point is what
    // was sent so far), s3 resent, and new data as the pipe allows; s10
    // is the first of it, above the recovery point.
    b.send(sack_ack(&s[3], &[(s[4].seq, point)]));
    let mut out = b.take_all();
    let s10 = out
        .iter()
        .find(|o| o.seq == point)
        .expect("new data in recovery")
        .clone();
    let after: Vec<Out> = out
        .iter()
        .filter(|o| seq_lt(s10.seq, o.seq))
        .cloned()
        .collect();
    assert!(after.len() >= 2, "two more new segments: {out:?}");
    b.advance(5);
    // s10 is lost, the two after it arrive; RACK finds s10 lost once the
    // reordering window has passed, and it is resent.
    b.send(sack_ack(
        &s[3],
        &[(after[0].seq, after[1].end()), (s[4].seq, point)],
    ));
    out.extend(b.take_all());
    b.advance(3);
    out.extend(b.take_all());
    let cut = b.info().ssthresh;
    assert_eq!(
        out.iter().filter(|o| o.seq == s10.seq).count(),
        2,
        "s10 resent once in the first recovery: {out:?}"
    );
    // Everything sent above s10 so far.
    let top = out
        .iter()
        .filter(|o| seq_lt(s10.seq, o.seq))
        .map(|o| o.end())
        .fold(s10.end(), |m, e| if seq_lt(m, e) { e } else { m });
    assert!(
        top - s10.end() > 2 * 988,
        "more than two segments above s10: {out:?}"
    );
    b.advance(5);
    // s3's retransmission and all above s10 arrive: the recovery point is
    // reached while s10's retransmission is still on its way.
    b.send(sack_ack(&s10, &[(after[0].seq, top)]));
    let last = b.take_all();
    assert!(
        !last.iter().any(|o| o.seq == s10.seq),
        "s10's retransmission is still out: not sent a third time: {last:?}"
    );
    let i = b.info();
    assert!(!i.recovering, "no new recovery for it");
    assert_eq!(i.ssthresh, cut, "the window was cut once");
}

/// RFC 3708 §3: without an Eifel verdict (the ACK echoes the
/// retransmission), a D-SACK for the one retransmitted segment says the
/// peer got it twice: the recovery was spurious after all and is undone.
/// A D-SACK for data the episode never resent changes nothing.
#[test]
fn rfc_3708_a_dsack_for_every_retransmission_undoes_the_recovery() {
    let (mut b, s) = ten_in_flight_with_ts(10_000);
    let before = b.info();
    b.send(sack_ack(&s[0], &[(s[1].seq, s[3].end())]));
    let r = b.expect(|o| o.seq == s[0].seq && o.data == s[0].data);
    b.advance(5);
    let ts = (b.peer_tsval(5000), tsval(&r));
    b.send(seg!(ACK, ack = s[9].end(), ts = ts));
    let reduced = b.info().cwnd;
    assert!(reduced < before.cwnd);
    // A duplicate of data before the episode: not a retransmission of it.
    let early = (s[0].seq.wrapping_sub(100), s[0].seq);
    b.send(seg!(ACK, ack = s[9].end(), sack = &[early]));
    assert_eq!((b.info().cwnd, b.stats().spurious_undone), (reduced, 0));
    // The D-SACK for the retransmitted segment (RFC 2883 §4: below the
    // cumulative ACK).
    b.send(seg!(
        ACK,
        ack = s[9].end(),
        sack = &[(s[0].seq, s[0].end())]
    ));
    let i = b.info();
    assert_eq!((i.ssthresh, i.cwnd), (before.ssthresh, before.cwnd));
    assert_eq!(b.stats().spurious_undone, 1);
}

/// RFC 3522 §3.2 after a retransmission timeout, with RFC 4015 §3 step
/// (6): the timer fired too soon; the first ACK (for half the flight)
/// echoes the original's TSval, so cwnd comes back and the sender goes on
/// with new data instead of resending the rest of the flight, which the
/// peer holds (go-back-N stops). Without SACK, so no tail loss probe
/// comes first.
#[test]
fn rfc_4015_a_spurious_timeout_resumes_with_new_data() {
    let (mut b, s) = ten_in_flight_ts(20_000, false);
    let before = b.info();
    // No ACK: the timer fires, the head goes again, cwnd is one segment.
    let r = b.wait_for_segment(5_000);
    assert_eq!(r.seq, s[0].seq, "the timeout resends the head");
    assert!(b.info().cwnd < before.cwnd);
    // The original flight's ACK for half of it arrives, echoing the
    // original TSval.
    let ts = (b.peer_tsval(5000), tsval(&s[4]));
    b.send(seg!(ACK, ack = s[4].end(), ts = ts));
    let i = b.info();
    assert_eq!((i.ssthresh, i.cwnd), (before.ssthresh, before.cwnd));
    assert_eq!(b.stats().spurious_undone, 1);
    // What follows is new data, past the ten segments, not s[5] again.
    let next = b.take_all();
    assert!(!next.is_empty(), "new data goes out");
    assert!(
        next.iter().all(|o| !seq_lt(o.seq, s[9].end())),
        "nothing the peer holds is resent: {next:?}"
    );
}

/// The same timeout, but the ACK echoes the retransmission (the head was
/// lost): nothing is undone, and go-back-N goes on from the ACK.
#[test]
fn rfc_3522_a_needed_timeout_keeps_its_loss_window() {
    let (mut b, s) = ten_in_flight_ts(20_000, false);
    let r = b.wait_for_segment(5_000);
    assert_eq!(r.seq, s[0].seq);
    let ts = (b.peer_tsval(5000), tsval(&r));
    b.send(seg!(ACK, ack = s[4].end(), ts = ts));
    assert_eq!(b.stats().spurious_undone, 0);
    let next = b.take_all();
    assert_eq!(
        next.first().map(|o| o.seq),
        Some(s[5].seq),
        "go-back-N: {next:?}"
    );
}
