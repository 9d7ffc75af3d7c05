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
/// Two holes (s0, s5) are resent in one recovery; s0 only came late, and
/// the ACK echoing its original undoes that recovery. s5 was lost: a new
/// recovery begins at once and resends it, while the first copy of s5 is
/// still on its way. The ACK that copy draws echoes its TSval, older than
/// the new retransmission's: it must not pass for the original (Linux
/// compares with `retrans_stamp`, the first retransmission outstanding).
/// Without that, every recovery that began with data an earlier one had
/// resent was undone: 220 false undos in one 20 MiB BBR transfer at 5 %
/// loss.
#[test]
fn rfc_3522_an_echo_of_an_earlier_retransmission_is_not_the_original() {
    let (mut b, s) = ten_in_flight_with_ts(10_000);
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
    b.advance(5);
    // s0's original arrives: the ACK echoes it, the recovery was spurious.
    let ts = (b.peer_tsval(5000), tsval(&s[0]));
    b.send(seg!(
        ACK,
        ack = s[5].seq,
        sack = &[(s[6].seq, s[9].end())],
        ts = ts
    ));
    assert_eq!(b.stats().spurious_undone, 1);
    // s5 is lost all the same: a new recovery, with its own reduction.
    let again = b.take_all();
    let i = b.info();
    assert!(i.recovering, "{again:?}");
    let reduced = i.ssthresh;
    assert!(reduced < before.ssthresh);
    b.advance(5);
    // The first copy of s5 arrives: its echo is the earlier
    // retransmission's, not the original's.
    let ts = (b.peer_tsval(5000), tsval(&r5));
    b.send(seg!(ACK, ack = s[9].end(), ts = ts));
    let i = b.info();
    assert!(!i.recovering);
    assert_eq!(b.stats().spurious_undone, 1, "the second recovery stands");
    assert_eq!(i.ssthresh, reduced);
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
