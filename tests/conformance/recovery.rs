//! Loss recovery with SACK, the sender's side (RFC 6675, RFC 2018 §3):
//! the scoreboard, IsLost, the pipe, NextSeg's order, and no
//! retransmission of SACKed data after a timeout.

use tunstack::tcp::congestion::Algorithm;
use tunstack::tcp::TcpConfig;

use crate::bench::*;

/// A connection with SACK agreed, MSS 1000, NewReno (so the numbers are
/// RFC 5681's), and ten segments in flight (the initial window).
fn ten_in_flight(total: usize) -> (Bench, Vec<Out>) {
    ten_in_flight_with(cfg(), total)
}

/// [`ten_in_flight`] on `config` (NewReno set, unpaced: the window and each
/// retransmission leave at the event that lets them, and these tests
/// count what each event lets out; pacing has its own tests in `pacing`).
pub fn ten_in_flight_with(config: TcpConfig, total: usize) -> (Bench, Vec<Out>) {
    let mut b = Bench::with(TcpConfig {
        congestion: Algorithm::NewReno,
        pacing: false,
        ..config
    });
    b.handshake_passive_with(seg!(SYN, mss = 1000, sack_perm = true), 10);
    b.app_send(&vec![7u8; total]);
    let segs = b.take_all();
    assert_eq!(segs.len(), 10, "IW10");
    assert!(segs.iter().all(|s| s.data.len() == 1000));
    (b, segs)
}

/// The ACK the receiver sends while missing `hole`, holding `blocks`.
pub fn sack_ack(hole: &Out, blocks: &[(u32, u32)]) -> In {
    seg!(ACK, ack = hole.seq, sack = blocks)
}

/// RFC 6675 §5: a single ACK whose SACK blocks cover three segments past
/// the cumulative point makes that segment lost (IsLost, §4): it is
/// retransmitted at once, without waiting for three duplicate ACKs, and
/// nothing the peer SACKed is sent again. ssthresh is halved once; the
/// full ACK ends recovery with cwnd = ssthresh.
#[test]
fn rfc_6675_three_sacked_segments_make_the_hole_lost() {
    let (mut b, s) = ten_in_flight(10_000);
    b.send(sack_ack(&s[0], &[(s[1].seq, s[3].end())]));
    let r = b.expect(|o| o.seq == s[0].seq && o.data.len() == 1000);
    assert_eq!(r.data, s[0].data);
    let i = b.info();
    assert!(i.recovering);
    assert_eq!((i.ssthresh, i.cwnd), (5000, 5000));
    assert_eq!(i.sacked, 3000);
    // Pipe: the retransmission (1000) and the six segments past the block
    // (6000) fill cwnd: nothing more goes.
    b.expect_nothing();
    b.send(seg!(ACK, ack = s[9].end()));
    let i = b.info();
    assert!(!i.recovering);
    assert_eq!((i.cwnd, i.sacked), (5000, 0));
}

/// RFC 6675 §5 (C) and NextSeg (1), (2): two holes are repaired in the
/// same round trip, as the blocks above each make it lost, and new data
/// follows while the pipe allows; SACKed data is never resent.
#[test]
fn rfc_6675_two_holes_are_repaired_in_one_round_trip() {
    let (mut b, s) = ten_in_flight(20_000);
    // The ACKs come a round trip (10 ms) after the data, as on a real
    // path: at a zero RTT a retransmission sent at the instant of the
    // newest delivery would be due at once by RACK's clock (RFC 8985
    // §6.2 step 5, with the zero reordering window of recovery).
    b.advance_by(std::time::Duration::from_millis(10));
    let mut sent = Vec::new();
    // Segments 1-3 arrive: the third ACK makes segment 0 lost.
    for k in 1..=3 {
        b.send(sack_ack(&s[0], &[(s[1].seq, s[k].end())]));
        sent.extend(b.take_all());
    }
    // Segments 5-9 arrive (4 is lost too).
    for k in 5..=9 {
        let blocks = [(s[5].seq, s[k].end()), (s[1].seq, s[3].end())];
        b.send(sack_ack(&s[0], &blocks));
        sent.extend(b.take_all());
    }
    let resent: Vec<u32> = sent
        .iter()
        .filter(|o| seq_lt(o.seq, s[9].end()))
        .map(|o| o.seq)
        .collect();
    assert_eq!(
        resent,
        [s[0].seq, s[4].seq],
        "holes resent, SACKed data not: {sent:?}"
    );
    let new: Vec<&Out> = sent.iter().filter(|o| !seq_lt(o.seq, s[9].end())).collect();
    assert!(!new.is_empty(), "new data follows while the pipe allows");
    assert_eq!(new[0].seq, s[9].end());
}

/// RFC 6675 NextSeg (3), RACK off: with no new data to send, an unSACKed
/// segment that is not yet deemed lost (here the last one) is
/// retransmitted in recovery, rather than left to the retransmission timer.
/// With RACK (the default) only what is marked lost is resent, as Linux
/// does: rule (3) would resend data still on its way.
#[test]
fn rfc_6675_with_nothing_new_the_tail_is_resent_in_recovery() {
    let config = TcpConfig {
        rack: false,
        ..cfg()
    };
    let (mut b, s) = ten_in_flight_with(config, 10_000);
    b.send(sack_ack(&s[0], &[(s[1].seq, s[8].end())]));
    let first = b.expect(|o| o.seq == s[0].seq);
    assert_eq!(first.data.len(), 1000);
    let tail = b.expect(|o| o.seq == s[9].seq);
    assert_eq!(tail.data, s[9].data);
    b.expect_nothing();

    let (mut b, s) = ten_in_flight(10_000);
    b.send(sack_ack(&s[0], &[(s[1].seq, s[8].end())]));
    b.expect(|o| o.seq == s[0].seq);
    b.expect_nothing();
}

/// RFC 6675 §5.1 / RFC 2018 §3: after a retransmission timeout the
/// sender goes back to SND.UNA but does not resend what the peer SACKed.
/// (RACK off: it would resend the hole after a quarter RTT, see
/// `rack::rfc_8985_one_sacked_segment_past_a_hole_makes_it_lost_in_time`.)
#[test]
fn rfc_6675_after_a_timeout_sacked_data_is_not_resent() {
    let (mut b, s) = ten_in_flight_with(
        TcpConfig {
            rack: false,
            ..cfg()
        },
        10_000,
    );
    // 0 and 1 are lost; 2-3 arrive: not enough to deem anything lost.
    b.send(sack_ack(&s[0], &[(s[2].seq, s[3].end())]));
    b.expect_nothing();
    let r = b.wait_for_segment(2000);
    assert_eq!(
        (r.seq, r.data.len()),
        (s[0].seq, 1000),
        "the RTO resends the head"
    );
    b.send(seg!(ACK, ack = s[1].seq, sack = &[(s[2].seq, s[3].end())]));
    let again: Vec<u32> = b.take_all().iter().map(|o| o.seq).collect();
    assert_eq!(again, [s[1].seq, s[4].seq], "2 and 3 are skipped");
}

/// RFC 2883 / RFC 6675: a D-SACK block (below the cumulative ACK) is not
/// taken as SACKed data and starts no recovery.
#[test]
fn rfc_6675_a_dsack_block_is_not_on_the_scoreboard() {
    let (mut b, s) = ten_in_flight(10_000);
    for _ in 0..3 {
        b.send(seg!(ACK, ack = s[5].seq, sack = &[(s[1].seq, s[2].end())]));
    }
    let i = b.info();
    assert_eq!((i.sacked, i.recovering), (0, false));
}

/// RFC 2018 §2: without SACK agreed, blocks in ACKs are ignored (three
/// duplicate ACKs still start NewReno recovery, RFC 6582).
#[test]
fn rfc_2018_blocks_are_ignored_unless_sack_was_agreed() {
    let mut b = Bench::with(TcpConfig {
        congestion: Algorithm::NewReno,
        pacing: false,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, mss = 1000), 10);
    b.app_send(&[7u8; 10_000]);
    let s = b.take_all();
    b.send(sack_ack(&s[0], &[(s[1].seq, s[3].end())]));
    b.expect_nothing();
    assert_eq!(b.info().sacked, 0);
    b.send(sack_ack(&s[0], &[(s[1].seq, s[4].end())]));
    b.send(sack_ack(&s[0], &[(s[1].seq, s[5].end())]));
    b.expect(|o| o.seq == s[0].seq);
    assert!(b.info().recovering);
}

/// Send buffer autotuning (as Linux's `tcp_sndbuf_expand`): when the
/// buffer limits the sender, it grows to twice the congestion window as
/// slow start opens it, up to `send_buffer_max`; an explicit size
/// (`SO_SNDBUF`) stops it, and so does a round trip under a millisecond
/// (where the initial buffer suffices and a larger one costs cache).
#[test]
fn the_send_buffer_grows_with_the_congestion_window() {
    for (explicit, rtt_ms) in [(false, 10), (true, 10), (false, 0)] {
        let mut b = Bench::with(TcpConfig {
            send_buffer: 16 * 1024,
            send_buffer_max: 256 * 1024,
            window_scaling: true,
            ..cfg()
        });
        // The peer's window (65535 << 7) is no limit.
        b.handshake_passive_with(seg!(SYN, mss = 1000, ws = 7), rtt_ms);
        if explicit {
            b.tcp
                .set_option(
                    b.now,
                    b.id(),
                    tunstack::tcp::TcpOption::SendBuffer(16 * 1024),
                )
                .expect("option");
        }
        for _ in 0..16 {
            b.app_send(&[1u8; 256 * 1024]);
            let flight = b.take_all();
            b.advance(rtt_ms);
            for s in flight {
                b.send(seg!(ACK, ack = s.end())); // one ACK a segment
            }
        }
        let i = b.info();
        if explicit || rtt_ms == 0 {
            assert_eq!(i.send_buffer, 16 * 1024);
        } else {
            assert!(i.cwnd > 128 * 1024, "cwnd {}", i.cwnd);
            assert_eq!(i.send_buffer, 256 * 1024, "2 x cwnd, capped");
        }
    }
}

/// RFC 2018 §3 and §4: the peer reports each SACK block only a few
/// times (its newest three or four), so the sender keeps every one it
/// was told of. A window of 400 or more segments with every other one lost
/// has 200 or more SACKed ranges; once the cumulative ACK fills the lower holes and new
/// data sent later is SACKed, the upper SACKed segments are still known
/// SACKed: only the holes are resent. (A board of 64 ranges forgot the
/// upper ones, and RACK then called them lost: at 5 % loss over a 4 MiB
/// window a third of all retransmissions were of data the peer held.)
#[test]
fn rfc_2018_a_window_with_hundreds_of_holes_resends_only_the_holes() {
    let mut b = Bench::with(TcpConfig {
        congestion: Algorithm::NewReno,
        pacing: false,
        send_buffer: 4 << 20,
        send_buffer_max: 4 << 20,
        window_scaling: true,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, mss = 1000, ws = 7, sack_perm = true), 10);
    b.app_send(&vec![5u8; 4 << 20]);
    // Slow start, every segment ACKed, until 400 or more are in flight.
    let mut f = b.take_all();
    while f.len() < 400 {
        b.advance(10);
        for s in &f {
            b.send(seg!(ACK, ack = s.end()));
        }
        f = b.take_all();
    }
    let n = f.len();
    b.advance(10);
    // The odd segments arrive, the even ones are lost: each ACK carries
    // the newest block first, then the two before it.
    let mut sent = Vec::new();
    for k in (1..n).step_by(2) {
        let blocks: Vec<(u32, u32)> = [k, k.wrapping_sub(2), k.wrapping_sub(4)]
            .into_iter()
            .filter(|&j| j < n)
            .map(|j| (f[j].seq, f[j].end()))
            .collect();
        b.send(sack_ack(&f[0], &blocks));
        sent.extend(b.take_all());
    }
    // The lower holes are filled: the cumulative ACK reaches an even
    // segment 140 below the top, and the newest segment sent since is
    // SACKed.
    b.advance(10);
    let newest = sent
        .iter()
        .filter(|o| !o.data.is_empty())
        .max_by_key(|o| o.seq.wrapping_sub(f[0].seq))
        .map(|o| (o.seq, o.end()))
        .expect("segments sent in recovery");
    assert!(
        !seq_lt(newest.0, f[n - 1].end()),
        "new data follows the window"
    );
    let cum = (n - 140) & !1;
    b.send(seg!(ACK, ack = f[cum].seq, sack = &[newest]));
    sent.extend(b.take_all());
    b.advance(30);
    sent.extend(b.take_all());
    let odd_resent: Vec<usize> = (1..n)
        .step_by(2)
        .filter(|&k| sent.iter().any(|o| o.seq == f[k].seq && !o.data.is_empty()))
        .collect();
    assert!(
        odd_resent.is_empty(),
        "SACKed segments resent: {odd_resent:?}"
    );
    let holes_resent = (cum..n)
        .step_by(2)
        .filter(|&k| sent.iter().any(|o| o.seq == f[k].seq))
        .count();
    assert!(holes_resent > 0, "the upper holes are repaired");
}

/// Send buffer autotuning provisions what Linux's `tcp_sndbuf_expand`
/// does: two congestion windows (room for fast recovery), three for BBR
/// (`bbr_sndbuf_expand`: it may slow-start even in recovery), and when the
/// buffer limits the sender it goes there at once. Grown by doublings it
/// lagged a round behind cwnd through slow start (BBR's Startup doubles
/// cwnd every round), and the sender waited on the buffer.
#[test]
fn the_send_buffer_grows_to_two_windows_three_for_bbr() {
    for (algorithm, windows) in [
        (Algorithm::NewReno, 2),
        (Algorithm::Cubic, 2),
        (Algorithm::Bbr1, 3),
        (Algorithm::Bbr, 3),
    ] {
        let mut b = Bench::with(TcpConfig {
            congestion: algorithm,
            send_buffer: 16 * 1024,
            send_buffer_max: 64 << 20,
            window_scaling: true,
            ..cfg()
        });
        b.handshake_passive_with(seg!(SYN, mss = 1000, ws = 7), 10);
        let mut grown = 0;
        for _ in 0..8 {
            b.app_send(&[1u8; 256 * 1024]);
            let flight = crate::bbr::sent_within(&mut b, 10);
            for s in flight {
                let before = b.info().send_buffer;
                b.send(seg!(ACK, ack = s.end())); // one ACK a segment
                let i = b.info();
                if i.send_buffer != before {
                    assert_eq!(i.send_buffer, windows * i.cwnd as usize, "{algorithm}");
                    grown += 1;
                }
            }
        }
        assert!(grown >= 2, "{algorithm}: grew {grown} times");
    }
}
