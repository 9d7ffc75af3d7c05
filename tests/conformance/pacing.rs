//! Pacing of the window-based algorithms (NewReno, CUBIC) and cwnd growth
//! while something other than cwnd holds the sender back (RFC 7661 §4.3).
//! BBR's own pacing is in `bbr.rs`.

use tunstack::tcp::congestion::Algorithm;
use tunstack::tcp::TcpConfig;

use crate::bbr::sent_within;
use crate::bench::*;

/// A connection (MSS 1000, SACK, a 10 ms handshake RTT) on `config`, with
/// `total` bytes queued.
fn connection(config: TcpConfig, total: usize) -> Bench {
    let mut b = Bench::with(config);
    b.handshake_passive_with(seg!(SYN, mss = 1000, sack_perm = true), 10);
    b.app_send(&vec![7u8; total]);
    b
}

/// Linux under fq (`tcp_update_pacing_rate`): CUBIC in slow start paces
/// at 2 × cwnd / SRTT, here 2 × 10,000 B / 10 ms = 2 MB/s (2 bytes a
/// microsecond), running one quantum (a millisecond at the rate, two
/// segments) ahead of its schedule. Without offload: three segments at
/// once, then one every 500 µs; with offload (`TUNSTACK_OFFLOAD=on`) the
/// quantum leaves as one super-segment: two quanta at once, then one a
/// millisecond. Either way no more than 4,000 bytes plus 2 bytes per
/// microsecond have left at any instant, and the window is out by 4 ms.
#[test]
fn cubic_paces_its_initial_window_at_twice_cwnd_per_rtt() {
    let mut b = connection(cfg(), 10_000);
    let segs = sent_within(&mut b, 10);
    assert_eq!(segs.len(), 10, "the whole initial window goes");
    let first = segs[0].at;
    let burst = segs.iter().filter(|s| s.at == first).count();
    assert!(
        (3..=4).contains(&burst),
        "a segment (or quantum) and a quantum ahead: {burst}"
    );
    let mut sent = 0u64;
    for s in &segs {
        sent += s.data.len() as u64;
        let us = (s.at - first).as_micros() as u64;
        assert!(sent <= 4_000 + 2 * us, "{sent} bytes out after {us} µs");
    }
    let last = segs[segs.len() - 1].at - first;
    assert!(last >= ms(3) && last <= ms(4), "{last:?}");
    assert_eq!(b.info().pacing_rate, Some(2_000_000));
}

/// The same connection with pacing off sends its initial window at once
/// (Linux without fq), and reports no pacing rate.
#[test]
fn without_pacing_cubic_sends_its_window_at_once() {
    let mut b = connection(
        TcpConfig {
            pacing: false,
            ..cfg()
        },
        10_000,
    );
    let segs = b.take_all();
    assert_eq!(segs.len(), 10);
    assert_eq!(b.info().pacing_rate, None);
}

/// RFC 7661 §4.3 (as Linux's `tcp_is_cwnd_limited`): in slow start cwnd
/// grows while it is under twice the most that was in flight in the last
/// round trip, even when the peer's window, not cwnd, held the sender
/// back. Here the peer offers 8,000 bytes against a cwnd of 10,000: cwnd
/// grows by each acknowledged segment up to 16,000 and no further. A
/// sender that grew cwnd only when cwnd was the limit would stay at 10,000
/// and, once the receiver opened its window (Linux's does as the data
/// rate grows), would need a round trip more for every doubling.
#[test]
fn rfc_7661_slow_start_grows_cwnd_to_twice_the_flight_the_peer_allowed() {
    let mut b = Bench::with(TcpConfig {
        congestion: Algorithm::NewReno,
        pacing: false,
        ..cfg()
    });
    b.handshake_passive_with(seg!(SYN, mss = 1000, sack_perm = true), 10);
    b.send(seg!(ACK, win = 8000));
    b.expect_nothing();
    b.app_send(&[7u8; 60_000]);
    let mut flight = b.take_all();
    assert_eq!(flight.len(), 8, "the peer's window allows 8,000 bytes");
    assert_eq!(b.info().cwnd, 10_000);
    b.advance(10);
    let mut cwnds = Vec::new();
    for _ in 0..16 {
        let s = flight.remove(0);
        b.send(seg!(ACK, ack = s.end(), win = 8000));
        flight.extend(b.take_all());
        cwnds.push(b.info().cwnd);
    }
    assert_eq!(
        &cwnds[..7],
        [11_000, 12_000, 13_000, 14_000, 15_000, 16_000, 16_000],
        "one segment per ACK up to 2 x 8,000"
    );
    assert!(cwnds.iter().all(|&c| c <= 16_000), "{cwnds:?}");
}

/// Pacing holds segments back without stopping slow start: with CUBIC
/// paced, a round trip in which every segment of the initial window is
/// acknowledged doubles cwnd to 20,000, as it does unpaced (the sender was
/// held by the pacing timer, not by cwnd, when the ACKs came).
#[test]
fn a_paced_sender_still_doubles_cwnd_each_round_trip_in_slow_start() {
    for pacing in [true, false] {
        let mut b = connection(TcpConfig { pacing, ..cfg() }, 200_000);
        let first = sent_within(&mut b, 10);
        assert_eq!(first.len(), 10, "pacing {pacing}: IW10");
        for s in &first {
            b.send(seg!(ACK, ack = s.end()));
        }
        assert_eq!(b.info().cwnd, 20_000, "pacing {pacing}");
    }
}
