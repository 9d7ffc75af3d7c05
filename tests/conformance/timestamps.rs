//! Timestamps (RFC 7323): negotiated on the SYNs (§3.2), carried by every
//! segment after, echoing TS.Recent (§4.3); an RTT sample from every ACK,
//! retransmitted data included (§4.1); PAWS (§5).

use std::time::Duration;

use tunstack::tcp::{TcpConfig, TcpError, TcpEvent};

use crate::bench::*;

/// A passive open with a peer that uses timestamps (its clock starts at
/// 5000) and SACK, 10 ms round trip.
fn ts_bench() -> Bench {
    let mut b = Bench::new();
    b.peer_ts = Some(5000);
    b.handshake_passive_with(seg!(SYN, mss = 1460, sack_perm = true), 10);
    b
}

/// RFC 7323 §3.2: a SYN offers timestamps (TSecr zero); a SYN-ACK carries
/// them, echoing the SYN's TSval, only when the SYN did; configured off,
/// neither.
#[test]
fn rfc_7323_3_2_timestamps_are_answered_only_when_offered() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = 100, mss = 1460, ts = (777, 0)));
    let sa = b.expect(|s| s.is("SA"));
    assert_eq!(sa.ts.map(|t| t.1), Some(777), "the SYN-ACK echoes the SYN");
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = 100, mss = 1460));
    assert_eq!(b.expect(|s| s.is("SA")).ts, None);
    let mut b = Bench::new();
    b.connect(40_000);
    let syn = b.expect(|s| s.is("S"));
    assert_eq!(syn.ts.map(|t| t.1), Some(0), "an active open offers them");
    let mut b = Bench::with(TcpConfig {
        timestamps: false,
        ..cfg()
    });
    b.listen(PORT);
    b.send(seg!(SYN, seq = 100, mss = 1460, ts = (777, 0)));
    assert_eq!(b.expect(|s| s.is("SA")).ts, None);
    b.connect(40_001);
    assert_eq!(b.expect(|s| s.is("S")).ts, None);
}

/// RFC 7323 §3.2 on an active open: the SYN-ACK's timestamps agree them;
/// the handshake's ACK echoes its TSval, and `info()` says so.
#[test]
fn rfc_7323_3_2_an_active_open_agrees_on_the_syn_ack() {
    let mut b = Bench::new();
    b.peer_ts = Some(70_000);
    b.handshake_active(40_000, 20);
    assert!(b.info().timestamps);
    b.app_send(b"hi");
    let d = b.expect(|s| s.data == b"hi");
    let (_, ecr) = d.ts.expect("data carries timestamps");
    assert_eq!(ecr, 70_000 + 20, "TSecr is the SYN-ACK's TSval");
}

/// RFC 7323 §3.2, §4.3: once agreed every segment carries timestamps; the
/// echo is TS.Recent, which only a segment covering Last.ACK.sent updates
/// (an out-of-order one does not, the one filling the hole does). Data
/// leaves room for the option (RFC 9293 §3.7.1), and TSval follows the
/// millisecond clock.
#[test]
fn rfc_7323_4_3_every_segment_echoes_ts_recent() {
    let mut b = ts_bench();
    assert!(b.info().timestamps);
    let rcv = b.peer_seq;
    let ecr = b.stack_tsval;
    b.send(seg!(
        ACK | PSH,
        seq = rcv,
        data = [1u8; 100],
        ts = (9000, ecr)
    ));
    let a = b.wait_for_segment(300);
    assert_eq!((a.ack_no, a.ts.map(|t| t.1)), (rcv + 100, Some(9000)));
    b.send(seg!(
        ACK | PSH,
        seq = rcv + 200,
        data = [3u8; 100],
        ts = (9500, ecr)
    ));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 100);
    assert_eq!(a.ts.map(|t| t.1), Some(9000), "out of order: no update");
    b.send(seg!(
        ACK | PSH,
        seq = rcv + 100,
        data = [2u8; 100],
        ts = (9600, ecr)
    ));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 300);
    assert_eq!(a.ts.map(|t| t.1), Some(9600), "the hole's filler updates");
    let (t0, val0) = (b.now, a.ts.map_or(0, |t| t.0));
    b.advance(1234);
    b.app_send(&[7u8; 3000]);
    let segs = b.take_all();
    assert!(segs.len() >= 2, "{segs:?}");
    for s in &segs {
        let (val, ecr) = s.ts.expect("every segment carries timestamps");
        assert_eq!(ecr, 9600);
        assert_eq!(
            val.wrapping_sub(val0) as u64,
            (b.now - t0).as_millis() as u64
        );
        assert!(s.data.len() + s.opts.len() <= 1460, "{s:?}");
    }
    assert_eq!(segs[0].data.len(), 1448, "MSS 1460 less 12 bytes of option");
}

/// RFC 7323 §5.3 R1 (PAWS): an in-window segment whose TSval is older
/// than TS.Recent is dropped and answered with an ACK; §5.5: once
/// TS.Recent is 24 days old, an older timestamp is accepted again.
#[test]
fn rfc_7323_5_3_paws_drops_an_old_timestamp_until_24_days_idle() {
    let mut b = ts_bench();
    let rcv = b.peer_seq;
    let ecr = b.stack_tsval;
    b.send(seg!(
        ACK | PSH,
        seq = rcv,
        data = [1u8; 100],
        ts = (9000, ecr)
    ));
    b.wait_for_segment(300);
    b.send(seg!(
        ACK | PSH,
        seq = rcv + 100,
        data = [2u8; 100],
        ts = (8000, ecr)
    ));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 100);
    assert_eq!(a.ts.map(|t| t.1), Some(9000));
    assert_eq!(b.stats().paws_rejected, 1);
    assert_eq!(
        b.app_recv(1000).expect("data").len(),
        100,
        "old data dropped"
    );
    b.advance_by(Duration::from_secs(25 * 24 * 3600));
    b.send(seg!(
        ACK | PSH,
        seq = rcv + 100,
        data = [2u8; 100],
        ts = (8000, ecr)
    ));
    let a = b.wait_for_segment(300);
    assert_eq!((a.ack_no, a.ts.map(|t| t.1)), (rcv + 200, Some(8000)));
    assert_eq!(b.stats().paws_rejected, 1);
}

/// RFC 7323 §3.2: once agreed, a non-RST segment without timestamps is
/// dropped silently; the connection is not aborted, and a RST without
/// them still resets it.
#[test]
fn rfc_7323_3_2_a_segment_without_timestamps_is_dropped_but_a_rst_is_not() {
    let mut b = ts_bench();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100], no_ts = true));
    b.advance(500);
    b.expect_nothing();
    assert_eq!(b.stats().ts_missing, 1);
    assert_eq!(b.app_recv(100), Err(TcpError::WouldBlock));
    b.send(seg!(RST, seq = rcv, no_ts = true));
    assert!(
        b.events()
            .contains(&TcpEvent::Closed(b.id(), Some(TcpError::ConnectionReset))),
        "the RST was honoured"
    );
}

/// RFC 7323 §4.1 (RTTM): the ACK of a retransmission gives an RTT sample
/// through its echo, which Karn's rule (RFC 6298 §3) denies a sender
/// without timestamps.
#[test]
fn rfc_7323_4_1_retransmitted_data_is_timed_by_its_echo() {
    for ts in [true, false] {
        let mut b = Bench::new();
        if ts {
            b.peer_ts = Some(5000);
        }
        b.handshake_passive_with(seg!(SYN, mss = 1460), 10);
        let before = b.info().srtt.expect("the handshake was timed");
        b.app_send(&[1u8; 100]);
        let first = b.expect(|s| s.data.len() == 100);
        let again = b.wait_for_segment(2000);
        assert_eq!(again.seq, first.seq, "retransmitted after the RTO");
        b.advance(100);
        b.send(seg!(ACK)); // echoes the retransmission's TSval
        let after = b.info().srtt.expect("srtt");
        if ts {
            // 7/8 × 10 ms + 1/8 × 100 ms (RFC 6298 §2.3).
            assert_eq!(after, Duration::from_micros(21_250));
        } else {
            assert_eq!(after, before, "Karn: no sample without timestamps");
        }
    }
}

/// RFC 2018 §3: beside the timestamps option, three SACK blocks fit.
#[test]
fn rfc_2018_beside_timestamps_three_sack_blocks_fit() {
    let mut b = ts_bench();
    let rcv = b.peer_seq;
    for i in 1..=5u32 {
        b.send(seg!(ACK | PSH, seq = rcv + 200 * i, data = [i as u8; 100]));
        let a = b.expect(|s| s.is("A") && s.ack_no == rcv);
        assert!(a.ts.is_some());
        assert_eq!(a.sack.len(), (i as usize).min(3));
        assert_eq!(a.sack[0], (rcv + 200 * i, rcv + 200 * i + 100));
    }
}
