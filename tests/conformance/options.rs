//! TCP options: the mandatory set (MUST-4), options on any segment (MUST-5),
//! unknown options (MUST-6), illegal lengths (MUST-7), alignment (MUST-64),
//! and what the stack itself sends (MUST-65, MUST-67..69); the MSS rules
//! (MUST-14..16). RFC 9293 §3.1, §3.2, §3.7.1.

use tunstack::tcp::TcpConfig;

use crate::bench::*;

/// MUST-4, MUST-14: the stack sends an MSS option on its SYN and SYN-ACK.
#[test]
fn must_4_must_14_syn_and_syn_ack_carry_an_mss_option() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460));
    b.expect(|s| s.is("SA") && s.mss == Some(1460));
    b.connect(5000);
    b.expect(|s| s.is("S") && s.mss == Some(1460));
}

/// MUST-67: the MSS announced is at most MMS_R - 20, i.e. the MTU minus the
/// fixed IPv4 and TCP headers.
#[test]
fn must_67_announced_mss_is_the_mtu_minus_40() {
    for mtu in [576usize, 1280, 1500, 9000] {
        let mut b = Bench::with(TcpConfig { mtu, ..cfg() });
        b.listen(PORT);
        b.send(seg!(SYN, mss = 1460));
        let sa = b.expect(|s| s.is("SA"));
        assert_eq!(sa.mss, Some((mtu - 40) as u16), "mtu {mtu}");
    }
}

/// MUST-14: the peer's MSS option bounds the segments the stack sends.
#[test]
fn must_14_peer_mss_bounds_segment_size() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 100), 0);
    assert_eq!(b.info().mss, 100);
    b.app_send(&[7u8; 1000]);
    let segs = b.take_all();
    assert!(!segs.is_empty());
    assert!(segs.iter().all(|s| s.data.len() == 100), "{segs:?}");
}

/// MUST-15: without an MSS option the send MSS is 536 (IPv4).
#[test]
fn must_15_missing_mss_option_means_536() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN), 0);
    assert_eq!(b.info().mss, 536);
    b.app_send(&[7u8; 2000]);
    let segs = b.take_all();
    assert_eq!(segs[0].data.len(), 536);
    assert!(segs.iter().all(|s| s.data.len() <= 536), "{segs:?}");
}

/// MUST-16: the effective send MSS is the smaller of the peer's MSS and what
/// our own MTU allows.
#[test]
fn must_16_effective_mss_is_the_smaller_of_peer_mss_and_mtu() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 9000), 0);
    assert_eq!(b.info().mss, 1460);
    b.app_send(&[7u8; 4000]);
    let segs = b.take_all();
    assert_eq!(segs[0].data.len(), 1460, "{segs:?}");
    assert!(segs.iter().all(|s| s.data.len() <= 1460));
}

/// MUST-6: unknown options (with a length field) are skipped without error;
/// the MSS after them is honoured.
#[test]
fn must_6_unknown_options_are_ignored() {
    let mut b = Bench::new();
    // NOP, experimental kind 254 (len 6), kind 99 (len 2), MSS 1000.
    let syn = seg!(
        SYN,
        opts = &[1, 254, 6, 0xf9, 0x89, 0, 0, 99, 2],
        mss = 1000
    );
    b.handshake_passive_with(syn, 0);
    assert_eq!(b.info().mss, 1000);
    assert_eq!(b.stats().malformed, 0);
}

/// MUST-64: options need not start on a word boundary.
#[test]
fn must_64_options_need_not_be_word_aligned() {
    let mut b = Bench::new();
    // kind 253 (len 3) puts the MSS option at offset 3.
    let syn = seg!(SYN, opts = &[253, 3, 0xaa, 2, 4, 0x01, 0xf4]);
    b.handshake_passive_with(syn, 0);
    assert_eq!(b.info().mss, 500);
}

/// MUST-5: options are accepted on any segment, not only on SYNs (here a
/// timestamp and an unknown option on a data segment).
#[test]
fn must_5_options_are_accepted_on_any_segment() {
    let mut b = Bench::new();
    b.handshake_passive();
    let opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 254, 4, 0xab, 0xcd];
    b.send(seg!(ACK | PSH, opts = &opts, data = b"data"));
    let want = b.peer_seq;
    b.advance(500);
    b.expect(|s| s.is("A") && s.ack_no == want);
    assert_eq!(b.app_recv(100).unwrap(), b"data");
}

/// MUST-7: an option with length zero does not hang or crash the parser.
/// tunstack's choice: stop parsing options there and keep what came before
/// (RFC 9293 suggests a reset; either is allowed). The SYN is answered and
/// the MSS before the bad option is used.
#[test]
fn must_7_zero_option_length_is_survived() {
    let mut b = Bench::new();
    let syn = seg!(SYN, mss = 1000, opts = &[99, 0], mss = 100);
    b.handshake_passive_with(syn, 0);
    assert_eq!(
        b.info().mss,
        1000,
        "options after the illegal one are ignored"
    );
    // And on a data segment: the data is still delivered.
    b.send(seg!(ACK | PSH, opts = &[1, 2, 0, 5, 5], data = b"ok"));
    assert_eq!(b.app_recv(10).unwrap(), b"ok");
}

/// MUST-7: an option length running past the header (and a length of one)
/// is survived the same way.
#[test]
fn must_7_option_length_past_the_header_is_survived() {
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, opts = &[2, 40, 5, 5]), 0);
    assert_eq!(b.info().mss, 536, "the truncated MSS is not used");
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, opts = &[1, 1, 3, 1]), 0);
    assert_eq!(b.info().mss, 536);
    // A kind byte with no room for its length at the very end.
    let mut b = Bench::new();
    b.handshake_passive_with(seg!(SYN, mss = 800, opts = &[1, 1, 1, 2]), 0);
    assert_eq!(b.info().mss, 800);
}

/// A data offset below 5 words or past the end of the segment is a
/// malformed header: dropped and counted, never answered (RFC 9293 §3.1).
#[test]
fn malformed_data_offset_is_dropped() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460, doff = 4));
    b.send(seg!(SYN, mss = 1460, doff = 15));
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
    assert_eq!(b.stats().malformed, 2);
}

/// MUST-65, MUST-68, MUST-69: the stack's options are well formed (every
/// option but EOL/NOP has a length, padding is zero) and MSS appears only on
/// SYNs — checked by the bench on every segment; here over a whole
/// connection with window scaling on, so the SYN-ACK carries two options.
#[test]
fn must_65_68_69_generated_options_are_well_formed() {
    let config = TcpConfig {
        window_scaling: true,
        recv_buffer: 256 * 1024,
        ..cfg()
    };
    let mut b = Bench::with(config);
    b.handshake_passive_with(seg!(SYN, mss = 1460, ws = 7), 0);
    b.app_send(&[1u8; 3000]);
    b.peer_data(b"x");
    b.app_shutdown();
    b.advance(1000);
    let segs = b.take_all();
    assert!(
        segs.iter().all(|s| s.mss.is_none() && s.opts.is_empty()),
        "{segs:?}"
    );
    // The SYN-ACK: MSS, then NOP + window scale (RFC 7323), exactly.
    let mut b = Bench::with(TcpConfig {
        window_scaling: true,
        recv_buffer: 256 * 1024,
        recv_buffer_max: 0, // no autotuning: the shift covers 256 KiB
        ..cfg()
    });
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460, ws = 7));
    let sa = b.expect(|s| s.is("SA"));
    assert_eq!(sa.opts, [2, 4, 0x05, 0xb4, 1, 3, 3, 3]);
    assert_eq!(sa.wscale, Some(3));
    // RFC 7323 §1.3: no window scale on the SYN-ACK unless the SYN had one.
    b.send(seg!(SYN, sport = 40001, mss = 1460));
    b.expect(|s| s.is("SA") && s.opts == [2, 4, 0x05, 0xb4]);
}
