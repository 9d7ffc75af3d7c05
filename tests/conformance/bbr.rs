//! BBR (draft-ietf-ccwg-bbr, BBRv3) at the segment level: it paces what it
//! sends (§5.6.2), keeps cwnd on a loss rather than cutting it (§5.6.4.4),
//! and reports its model as `ss -ti` does.

use tunstack::tcp::congestion::Algorithm;
use tunstack::tcp::TcpConfig;

use crate::bench::*;
use crate::recovery::sack_ack;

/// A BBR (or `algorithm`) connection with SACK, MSS 1000 and a 10 ms
/// handshake RTT, with `total` bytes queued.
fn connection(algorithm: Algorithm, total: usize) -> Bench {
    let mut b = Bench::with(TcpConfig {
        congestion: algorithm,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, mss = 1000, sack_perm = true), 10);
    b.app_send(&vec![7u8; total]);
    b
}

/// Every segment sent within `ms` milliseconds, waiting in 100 µs steps.
pub fn sent_within(b: &mut Bench, ms: u64) -> Vec<Out> {
    let mut out = b.take_all();
    for _ in 0..ms * 10 {
        b.advance_by(std::time::Duration::from_micros(100));
        out.extend(b.take_all());
    }
    out
}

/// draft-ietf-ccwg-bbr §5.6.2 (InitPacingRate, C.next_send_time): the
/// initial window is paced at 2.77 × IW / SRTT, here 2.77 × 10,000 B /
/// 10 ms, one 1000-byte segment every 361 µs, a send quantum (§5.6.3,
/// 2,770 bytes) ahead at most. CUBIC without pacing sends the same window
/// at once (with pacing, `pacing::*` covers it).
#[test]
fn bbr_paces_the_initial_window_where_unpaced_cubic_bursts_it() {
    let mut b = connection(Algorithm::Bbr, 10_000);
    let segs = sent_within(&mut b, 10);
    let bytes: usize = segs.iter().map(|s| s.data.len()).sum();
    assert_eq!(bytes, 10_000, "the whole initial window goes");
    let first = segs[0].at;
    let spread = segs[segs.len() - 1].at - first;
    assert!(
        spread >= ms(2) && spread <= ms(4),
        "10 segments at 361 µs each, 3 of them ahead: {spread:?}"
    );
    let burst = segs.iter().filter(|s| s.at == first).count();
    assert!(burst <= 4, "{burst} segments at once");
    assert!(b
        .info()
        .pacing_rate
        .is_some_and(|r| r > 2_700_000 && r < 2_800_000));

    let mut c = Bench::with(TcpConfig {
        congestion: Algorithm::Cubic,
        pacing: false,
        ..cfg()
    });
    c.handshake_passive_with(seg!(SYN, mss = 1000, sack_perm = true), 10);
    c.app_send(&[7u8; 10_000]);
    let segs = sent_within(&mut c, 10);
    assert_eq!(segs.len(), 10);
    assert!(
        segs.iter().all(|s| s.at == segs[0].at),
        "CUBIC without pacing sends its window at once"
    );
    assert_eq!(c.info().pacing_rate, None);
}

/// draft-ietf-ccwg-bbr §5.6.4.4 (OnEnterFastRecovery): a loss does not cut
/// cwnd (BBR's model bounds it instead), where CUBIC's multiplicative
/// decrease (RFC 9438 §4.6) takes it to 0.7 × cwnd.
#[test]
fn bbr_keeps_cwnd_on_entering_recovery() {
    for (algorithm, keeps) in [(Algorithm::Bbr, true), (Algorithm::Cubic, false)] {
        let mut b = connection(algorithm, 40_000);
        let s = sent_within(&mut b, 10);
        let before = b.info().cwnd;
        // Segments 1-3 arrive, 0 is lost: recovery.
        b.send(sack_ack(&s[0], &[(s[1].seq, s[3].end())]));
        let i = b.info();
        assert!(i.recovering, "{algorithm}");
        if keeps {
            assert!(i.cwnd >= before, "{algorithm}: {} < {before}", i.cwnd);
        } else {
            assert!(i.cwnd < before, "{algorithm}: {} >= {before}", i.cwnd);
        }
    }
}

/// BBR's model in `ConnInfo` and in the `ss -ti` words: its state, the
/// bandwidth it measured, min_rtt, and the pacing rate.
#[test]
fn bbr_reports_its_model_like_ss() {
    let mut b = connection(Algorithm::Bbr, 30_000);
    // Three round trips of 10 ms, each ACKing what the last one sent.
    for _ in 0..3 {
        let s = sent_within(&mut b, 10);
        if let Some(last) = s.last() {
            b.send(seg!(ACK, ack = last.end()));
        }
    }
    let i = b.info();
    let bbr = i.bbr.expect("BBR runs");
    assert!(bbr.bw > 0, "{bbr:?}");
    let rtt = bbr.min_rtt.expect("min_rtt measured");
    assert!(rtt <= ms(10), "the bench ACKs within 10 ms: {rtt:?}");
    let ss = i.ss_options();
    assert!(
        ss.contains(" bbr bbr:(bw:") || ss.contains("bbr:(bw:"),
        "{ss}"
    );
    assert!(ss.contains("mode:startup"), "{ss}");
    assert!(ss.contains("pacing_rate "), "{ss}");
}

/// Linux's BBR (`bbr_set_cwnd_to_recover_or_restore`) looks at the
/// recovery state once an ACK has been through loss detection, and acts on
/// its change since the last ACK: the first round of a recovery conserves
/// packets (cwnd = in flight + delivered). An ACK that ends one recovery
/// and finds the next loss begins the next recovery at once: to BBR that is
/// no change, and cwnd is not cut to what happens to be in flight (at a
/// few per cent of random loss, recoveries follow each other all the time,
/// and each cut held the sender below what it had measured).
#[test]
fn bbr1_a_recovery_begun_by_the_ack_that_ends_the_last_is_not_a_new_one() {
    let mut b = connection(Algorithm::Bbr1, 400_000);
    let s = sent_within(&mut b, 10);
    assert_eq!(s.len(), 10, "IW10");
    // Segment 0 is lost, 1-9 arrive: recovery, up to segment 9.
    for k in 3..10 {
        b.send(sack_ack(&s[0], &[(s[1].seq, s[k].end())]));
    }
    assert!(b.info().recovering);
    let t = sent_within(&mut b, 10);
    assert_eq!(t[0].seq, s[0].seq, "the hole is resent");
    let new: Vec<&Out> = t.iter().filter(|o| o.seq != s[0].seq).collect();
    assert!(new.len() >= 5, "new data follows: {}", new.len());
    // The resent segment and the first new one arrive, the second new one
    // is lost, three more arrive: one ACK ends the recovery and begins
    // the next.
    let before = b.info().cwnd;
    b.send(sack_ack(new[1], &[(new[2].seq, new[4].end())]));
    assert!(b.info().recovering, "the next recovery began");
    // The next ACK delivers one more segment: no packet conservation
    // (which would set cwnd to the few segments in flight).
    b.send(sack_ack(new[1], &[(new[2].seq, new[5].end())]));
    let after = b.info().cwnd;
    assert!(after >= before, "cwnd {after} < {before} before");
}

/// tunstack's addition to BBRv1's full-pipe test (Linux's
/// `bbr_check_full_bw_reached` skips application-limited rounds): a round
/// whose sending the peer's window held back does not count toward
/// Startup's plateau, for the sender did not try to fill the pipe. The
/// window shows in `ss -ti`'s rwnd_limited.
#[test]
fn bbr1_stays_in_startup_while_the_peers_window_holds_it_back() {
    let mut b = connection(Algorithm::Bbr1, 64_000);
    b.peer_win = 8000;
    // Six round trips of 10 ms after the first: the peer acknowledges
    // what arrived and keeps offering 8,000 bytes, so the bandwidth stays
    // flat. (Linux's test ends Startup after three such rounds.)
    let first = sent_within(&mut b, 10);
    b.send(seg!(ACK, ack = first[first.len() - 1].end()));
    for round in 0..6 {
        let s = sent_within(&mut b, 10);
        let bytes: usize = s.iter().map(|o| o.data.len()).sum();
        assert_eq!(bytes, 8000, "round {round}: the window's worth");
        b.send(seg!(ACK, ack = s[s.len() - 1].end()));
    }
    let i = b.info();
    let mode = i.bbr.map(|m| m.mode.name());
    assert_eq!(mode, Some("startup"), "{}", i.ss_options());
    assert!(
        i.send_times.rwnd_limited > std::time::Duration::ZERO,
        "{}",
        i.ss_options()
    );
}
