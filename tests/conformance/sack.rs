//! Selective acknowledgements, the receiver's side (RFC 2018): SACK is
//! negotiated on the SYNs (§2) and, once agreed, every ACK sent while data
//! is held out of order reports it, the block holding the latest segment
//! first (§3, §4).

use crate::bench::*;

/// A passive open whose SYN offers SACK.
fn sack_bench() -> Bench {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 1460, sack_perm = true), 0);
    b
}

/// RFC 2018 §2: SACK-permitted goes in a SYN; a SYN-ACK carries it only
/// when the SYN did; never on other segments (checked on every segment by
/// the bench).
#[test]
fn rfc_2018_sack_permitted_is_answered_only_when_offered() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = 100, mss = 1460, sack_perm = true));
    assert!(b.expect(|s| s.is("SA")).sack_perm);
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = 100, mss = 1460));
    assert!(!b.expect(|s| s.is("SA")).sack_perm);
    // An active open offers it.
    let mut b = Bench::new();
    b.connect(40_000);
    assert!(b.expect(|s| s.is("S")).sack_perm);
}

/// RFC 2018 §3, §4: each ACK sent while data is held out of order carries
/// SACK blocks for it, the block with the most recently received segment
/// first, then the most recently reported ones; blocks go away as the
/// holes fill.
#[test]
fn rfc_2018_out_of_order_data_is_reported_latest_block_first() {
    let mut b = sack_bench();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv + 100, data = [2u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(a.sack, [(rcv + 100, rcv + 200)]);
    assert!(b.info().sack, "info() shows SACK, as ss -ti does");
    b.send(seg!(ACK | PSH, seq = rcv + 300, data = [4u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(a.sack, [(rcv + 300, rcv + 400), (rcv + 100, rcv + 200)]);
    // A segment that extends the older block puts it first again.
    b.send(seg!(ACK | PSH, seq = rcv + 200, data = [3u8; 50]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert_eq!(a.sack, [(rcv + 100, rcv + 250), (rcv + 300, rcv + 400)]);
    // Filling the first hole: the cumulative ACK moves, one block is left.
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 250);
    assert_eq!(a.sack, [(rcv + 300, rcv + 400)]);
    b.send(seg!(ACK | PSH, seq = rcv + 250, data = [3u8; 50]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 400);
    assert!(a.sack.is_empty(), "{:?}", a.sack);
    assert_eq!(b.app_recv(1000).unwrap().len(), 400);
}

/// RFC 2018 §3: at most four blocks fit (no timestamps); with more holes
/// the latest ones are reported.
#[test]
fn rfc_2018_at_most_four_blocks_the_latest_ones() {
    let mut b = sack_bench();
    let rcv = b.peer_seq;
    for i in 1..=6u32 {
        b.send(seg!(ACK | PSH, seq = rcv + 200 * i, data = [i as u8; 100]));
        let a = b.expect(|s| s.is("A") && s.ack_no == rcv);
        assert_eq!(a.sack.len(), (i as usize).min(4));
        assert_eq!(a.sack[0], (rcv + 200 * i, rcv + 200 * i + 100));
    }
}

/// RFC 2018 §2: without SACK-permitted on the peer's SYN, no SACK blocks,
/// only the duplicate ACK (RFC 5681 §4.2).
#[test]
fn rfc_2018_no_blocks_unless_negotiated() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv + 100, data = [2u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv);
    assert!(a.sack.is_empty());
    assert!(!b.info().sack);
}

/// RFC 2018 §3 with RFC 9293 §3.7.1: a data segment that carries SACK
/// blocks carries that much less data, so header, options and data still
/// fit the MSS the peer announced (payload + options ≤ MSS).
#[test]
fn rfc_2018_data_segments_with_blocks_still_fit_the_mss() {
    let mut b = sack_bench();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv + 100, data = [2u8; 100]));
    b.expect(|s| s.is("A") && s.sack.len() == 1);
    b.app_nodelay(true);
    b.app_send(&[7u8; 4000]);
    let sent = b.take_all();
    assert!(!sent.is_empty());
    for s in &sent {
        assert_eq!(s.sack, [(rcv + 100, rcv + 200)], "{s:?}");
        assert!(
            s.data.len() + s.opts.len() <= 1460,
            "{} bytes of data and {} of options over MSS 1460",
            s.data.len(),
            s.opts.len()
        );
    }
    assert_eq!(sent[0].data.len(), 1460 - 12);
}

/// RFC 2883 §4 (D-SACK): a segment wholly below RCV.NXT is answered with
/// an ACK whose first SACK block reports the duplicate, once.
#[test]
fn rfc_2883_an_old_duplicate_is_reported_in_a_dsack_block() {
    let mut b = sack_bench();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    b.advance(200); // the delayed ACK
    b.expect(|s| s.is("A") && s.ack_no == rcv + 100 && s.sack.is_empty());
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 100);
    assert_eq!(a.sack, [(rcv, rcv + 100)]);
    // Reported once: the next ACK has no block.
    b.send(seg!(ACK | PSH, seq = rcv + 100, data = [2u8; 10]));
    b.advance(200);
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 110);
    assert!(a.sack.is_empty(), "{:?}", a.sack);
}

/// RFC 2883 §4: a segment partly below RCV.NXT: the repeated part is
/// reported; a repeat of data held out of order: the D-SACK block, then
/// the block that holds it (RFC 2883 §4.2).
#[test]
fn rfc_2883_partial_and_out_of_order_duplicates_are_reported() {
    let mut b = sack_bench();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    b.send(seg!(ACK | PSH, seq = rcv + 50, data = [1u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 150);
    assert_eq!(a.sack, [(rcv + 50, rcv + 100)]);
    b.send(seg!(ACK | PSH, seq = rcv + 300, data = [3u8; 100]));
    b.expect(|s| s.is("A") && s.sack == [(rcv + 300, rcv + 400)]);
    b.send(seg!(ACK | PSH, seq = rcv + 300, data = [3u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 150);
    assert_eq!(a.sack, [(rcv + 300, rcv + 400), (rcv + 300, rcv + 400)]);
}

/// RFC 2883 §4: no D-SACK without SACK.
#[test]
fn rfc_2883_no_dsack_unless_sack_was_negotiated() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = b.peer_seq;
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    b.advance(200);
    b.expect(|s| s.is("A") && s.ack_no == rcv + 100);
    b.send(seg!(ACK | PSH, seq = rcv, data = [1u8; 100]));
    let a = b.expect(|s| s.is("A") && s.ack_no == rcv + 100);
    assert!(a.sack.is_empty());
}
