//! Opening: passive, active, simultaneous; options; SYN/SYN-ACK
//! retransmission; listener queues; closed ports.

use super::*;
use crate::tcp::{TcpError, TcpStats};

#[test]
fn passive_open_answers_syn_with_syn_ack_then_establishes() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let lid = l.listen(US, 4).unwrap();
    let mut syn = hdr("S", PEER_ISS, 0);
    syn.options.mss = Some(1200);
    inject(&mut l, ms(0), syn, b"");
    let sa = one(&mut l);
    check(&sa, "SA", sa.h.seq, PEER_ISS + 1);
    assert_eq!(sa.h.options.mss, Some(1460), "MSS = mtu - 40");
    assert_eq!(sa.h.options.window_scale, None, "not offered by the peer");
    assert_eq!(sa.h.window, 8192);
    let c = l.connections();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].state, State::SynReceived);
    assert_eq!(l.accept(lid), Err(TcpError::WouldBlock));
    inject(&mut l, ms(1), hdr("A", PEER_ISS + 1, sa.h.seq + 1), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(events(&mut l), vec![TcpEvent::Acceptable(lid)]);
    let id = l.accept(lid).unwrap();
    let info = l.info(id).unwrap();
    assert_eq!(info.state, State::Established);
    assert_eq!(info.mss, 1200, "peer's MSS honoured");
    assert_eq!((info.local, info.remote), (US, THEM));
}

#[test]
fn missing_mss_option_means_536() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    l.listen(US, 4).unwrap();
    inject(&mut l, ms(0), hdr("S", PEER_ISS, 0), b"");
    let sa = one(&mut l);
    assert_eq!(l.connections()[0].mss, 536);
    let _ = sa;
}

#[test]
fn active_open_sends_syn_and_establishes_on_syn_ack() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let id = l.connect(ms(0), US, THEM).unwrap();
    let syn = one(&mut l);
    check(&syn, "S", syn.h.seq, 0);
    assert_eq!(syn.h.options.mss, Some(1460));
    assert_eq!(state(&l, id), Some(State::SynSent));
    let iss = syn.h.seq;
    let mut sa = hdr("SA", 5000, iss + 1);
    sa.options.mss = Some(1000);
    inject(&mut l, ms(10), sa, b"");
    check(&one(&mut l), "A", iss + 1, 5001);
    assert_eq!(state(&l, id), Some(State::Established));
    assert_eq!(events(&mut l), vec![TcpEvent::Connected(id)]);
    let info = l.info(id).unwrap();
    assert_eq!(info.mss, 1000);
    assert_eq!(info.srtt, Some(d_ms(10)));
}

#[test]
fn connect_with_port_zero_picks_an_ephemeral_port() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let a = l
        .connect(ms(0), SocketAddr::from((US.ip(), 0)), THEM)
        .unwrap();
    let b = l
        .connect(ms(0), SocketAddr::from((US.ip(), 0)), THEM)
        .unwrap();
    let (pa, pb) = (
        l.info(a).unwrap().local.port(),
        l.info(b).unwrap().local.port(),
    );
    assert!(pa >= 32768 && pb >= 32768 && pa != pb);
    assert_eq!(
        l.connect(ms(0), l.info(a).unwrap().local, THEM),
        Err(TcpError::AddrInUse)
    );
}

#[test]
fn simultaneous_open_goes_through_syn_rcvd() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let id = l.connect(ms(0), US, THEM).unwrap();
    let iss = one(&mut l).h.seq;
    // The peer's SYN crosses ours.
    inject(&mut l, ms(5), hdr("S", PEER_ISS, 0), b"");
    check(&one(&mut l), "SA", iss, PEER_ISS + 1);
    assert_eq!(state(&l, id), Some(State::SynReceived));
    // The peer's SYN-ACK (answering our SYN) completes the open.
    inject(&mut l, ms(6), hdr("SA", PEER_ISS, iss + 1), b"");
    check(&one(&mut l), "A", iss + 1, PEER_ISS + 1);
    assert_eq!(state(&l, id), Some(State::Established));
    assert_eq!(events(&mut l), vec![TcpEvent::Connected(id)]);
}

#[test]
fn syn_is_retransmitted_with_backoff_then_connect_times_out() {
    let mut l = TcpLayer::new(
        TcpConfig {
            syn_retries: 3,
            ..cfg()
        },
        [1; 16],
    );
    let id = l.connect(ms(0), US, THEM).unwrap();
    let iss = one(&mut l).h.seq;
    // RTO 1 s, then 2 s, 4 s (RFC 6298 §5.5).
    let mut t = 0;
    for gap in [1000, 2000, 4000] {
        assert!(tick(&mut l, ms(t + gap - 1)).is_empty());
        t += gap;
        assert_eq!(l.poll_at(), Some(ms(t)));
        check(&one_of(tick(&mut l, ms(t))), "S", iss, 0);
    }
    // After the last retry's 8 s timeout: give up.
    assert!(tick(&mut l, ms(t + 7999)).is_empty());
    assert!(tick(&mut l, ms(t + 8000)).is_empty());
    assert_eq!(state(&l, id), Some(State::Closed));
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::Closed(id, Some(TcpError::TimedOut))]
    );
    assert_eq!(l.send(ms(t + 8000), id, b"x"), Err(TcpError::TimedOut));
    l.close(ms(t + 8000), id).unwrap();
    assert!(l.connections().is_empty());
}

#[track_caller]
pub(super) fn one_of(mut v: Vec<Out>) -> Out {
    assert_eq!(v.len(), 1, "expected one segment: {v:?}");
    v.remove(0)
}

#[test]
fn rst_answering_syn_refuses_the_connection() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let id = l.connect(ms(0), US, THEM).unwrap();
    let iss = one(&mut l).h.seq;
    // RST without ACK is ignored in SYN-SENT.
    inject(&mut l, ms(1), hdr("R", 0, 0), b"");
    assert_eq!(state(&l, id), Some(State::SynSent));
    // An ACK for something else draws <SEQ=SEG.ACK><CTL=RST>.
    inject(&mut l, ms(1), hdr("A", 7, iss + 100), b"");
    check(&one(&mut l), "R", iss + 100, 0);
    inject(&mut l, ms(2), hdr("RA", 0, iss + 1), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::Closed(id, Some(TcpError::ConnectionRefused))]
    );
    let mut buf = [0u8; 4];
    assert_eq!(
        l.recv(ms(2), id, &mut buf),
        Err(TcpError::ConnectionRefused)
    );
}

#[test]
fn syn_ack_is_retransmitted_then_the_half_open_connection_dropped() {
    let mut l = TcpLayer::new(
        TcpConfig {
            synack_retries: 2,
            ..cfg()
        },
        [1; 16],
    );
    let lid = l.listen(US, 4).unwrap();
    inject(&mut l, ms(0), hdr("S", PEER_ISS, 0), b"");
    let iss = one(&mut l).h.seq;
    check(&one_of(tick(&mut l, ms(1000))), "SA", iss, PEER_ISS + 1);
    // A retransmitted SYN from the peer gets the SYN-ACK again at once.
    inject(&mut l, ms(1500), hdr("S", PEER_ISS, 0), b"");
    check(&one(&mut l), "SA", iss, PEER_ISS + 1);
    check(&one_of(tick(&mut l, ms(3000))), "SA", iss, PEER_ISS + 1);
    assert!(tick(&mut l, ms(7000)).is_empty());
    assert!(l.connections().is_empty());
    assert_eq!(l.listeners()[0].2, 0, "SYN queue emptied");
    assert!(events(&mut l).is_empty());
    let _ = lid;
}

#[test]
fn a_full_syn_queue_answers_with_syn_cookies_and_keeps_its_half_open_connections() {
    let mut l = TcpLayer::new(
        TcpConfig {
            window_scaling: true,
            ..cfg()
        },
        [1; 16],
    );
    let lid = l.listen(US, 2).unwrap();
    let mut iss = Vec::new();
    for port in 1..=3u16 {
        let mut h = hdr("S", PEER_ISS, 0);
        h.src_port = port;
        h.options.mss = Some(1460);
        h.options.window_scale = Some(7);
        inject(&mut l, ms(0), h, b"");
        let out = one(&mut l);
        assert_eq!(out.flags(), "SA", "every SYN is answered");
        iss.push(out.h.seq);
        if port == 3 {
            // RFC 4987 §3.6: the cookie SYN-ACK keeps no state and cannot
            // carry window scaling; it still announces our MSS.
            assert_eq!(out.h.options.window_scale, None);
            assert_eq!(out.h.options.mss, Some(1460));
        }
    }
    assert_eq!(l.stats().syn_cookies_sent, 1);
    assert_eq!(
        l.listeners(),
        vec![(lid, US, 2, 0)],
        "no state for the cookie"
    );
    assert_eq!(l.connections().len(), 2);
    // The first half-open connection is still there: its ACK completes it.
    let mut h = hdr("A", PEER_ISS + 1, iss[0] + 1);
    h.src_port = 1;
    inject(&mut l, ms(1), h, b"");
    assert!(drain(&mut l).is_empty());
    // The cookie comes back with data: the connection is created established.
    let mut h = hdr("PA", PEER_ISS + 1, iss[2] + 1);
    h.src_port = 3;
    inject(&mut l, ms(2), h, b"hello");
    assert_eq!(l.stats().syn_cookies_accepted, 1);
    assert_eq!(l.listeners(), vec![(lid, US, 1, 2)]);
    let first = l.accept(lid).unwrap();
    let cookie = l.accept(lid).unwrap();
    assert_eq!(l.info(first).map(|i| i.remote.port()), Some(1));
    let info = l.info(cookie).unwrap();
    assert_eq!(
        (info.remote.port(), info.state, info.mss),
        (3, State::Established, 1460)
    );
    let mut buf = [0u8; 16];
    assert_eq!(l.recv(ms(2), cookie, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    // A forged ACK (wrong cookie) gets the listener's RST.
    let mut h = hdr("A", PEER_ISS + 1, iss[2].wrapping_add(77));
    h.src_port = 4;
    inject(&mut l, ms(3), h, b"");
    check(&one(&mut l), "R", iss[2].wrapping_add(77), 0);
    assert_eq!(l.stats().syn_cookies_accepted, 1);
}

/// Issue 10: a valid cookie ACK that meets a full accept queue was reset,
/// so a client whose handshake had completed got ECONNRESET. Like Linux
/// (`tcp_abort_on_overflow = 0`) it is dropped and counted; the client's
/// retransmission opens the connection once the application accepted.
#[test]
fn a_cookie_ack_meeting_a_full_accept_queue_is_dropped_not_reset() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let lid = l.listen(US, 1).unwrap();
    let mut iss = Vec::new();
    for port in 1..=2u16 {
        let mut h = hdr("S", PEER_ISS, 0);
        h.src_port = port;
        inject(&mut l, ms(0), h, b"");
        iss.push(one(&mut l).h.seq);
    }
    assert_eq!(l.stats().syn_cookies_sent, 1);
    // The half-open connection completes and fills the accept queue.
    let mut h = hdr("A", PEER_ISS + 1, iss[0] + 1);
    h.src_port = 1;
    inject(&mut l, ms(1), h, b"");
    assert_eq!(l.listeners(), vec![(lid, US, 0, 1)]);
    // The cookie's ACK, with data, finds no room: dropped, no RST.
    let mut h = hdr("PA", PEER_ISS + 1, iss[1] + 1);
    h.src_port = 2;
    inject(&mut l, ms(2), h, b"hi");
    assert!(drain(&mut l).is_empty(), "no RST for a full accept queue");
    assert_eq!(l.stats().listen_overflow, 1);
    assert_eq!(l.stats().resets_sent, 0);
    // The application accepts; the client's retransmission gets in.
    l.accept(lid).unwrap();
    inject(&mut l, ms(300), h, b"hi");
    assert_eq!(l.stats().syn_cookies_accepted, 1);
    let id = l.accept(lid).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(l.recv(ms(300), id, &mut buf), Ok(2));
}

#[test]
fn syn_cookies_are_not_accepted_when_none_were_sent() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    l.listen(US, 4).unwrap();
    // Even a correctly made cookie is refused if the listener never used
    // cookies: forged ACKs must not open connections.
    let cookies = crate::tcp::cookie::SynCookies::new([1; 16]);
    let (cookie, _) = cookies.make(ms(0), US, THEM, crate::tcp::SeqNum(PEER_ISS), 1460);
    inject(
        &mut l,
        ms(0),
        hdr("A", PEER_ISS + 1, cookie.get().wrapping_add(1)),
        b"",
    );
    check(&one(&mut l), "R", cookie.get().wrapping_add(1), 0);
    assert!(l.connections().is_empty());
}

#[test]
fn full_accept_queue_holds_back_the_handshake() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    let lid = l.listen(US, 1).unwrap();
    inject(&mut l, ms(0), hdr("S", PEER_ISS, 0), b"");
    let iss = one(&mut l).h.seq;
    inject(&mut l, ms(0), hdr("A", PEER_ISS + 1, iss + 1), b"");
    assert_eq!(l.listeners(), vec![(lid, US, 0, 1)]);
    // Accept queue is full: a new SYN is dropped.
    let mut h = hdr("S", 1, 0);
    h.src_port = 999;
    inject(&mut l, ms(0), h, b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.stats().syn_dropped, 1);
    l.accept(lid).unwrap();
    inject(&mut l, ms(0), h, b"");
    assert_eq!(drain(&mut l).len(), 1);
}

#[test]
fn listener_can_rebind_while_old_connections_linger_in_time_wait() {
    let (mut l, lid, id, snd) = server_with(cfg());
    // Active close by us: FIN, ACK of FIN, peer FIN -> TIME-WAIT.
    l.close(ms(0), id).unwrap();
    check(&one(&mut l), "FA", snd, PEER_ISS + 1);
    inject(&mut l, ms(1), hdr("FA", PEER_ISS + 1, snd + 1), b"");
    check(&one(&mut l), "A", snd + 1, PEER_ISS + 2);
    assert_eq!(l.connections()[0].state, State::TimeWait);
    l.close_listener(lid).unwrap();
    assert_eq!(l.listen(US, 4).map(|_| ()), Ok(()));
    assert_eq!(l.listen(US, 4).map(|_| ()), Err(TcpError::AddrInUse));
    assert_eq!(
        l.listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 7)), 4)
            .map(|_| ()),
        Err(TcpError::AddrInUse)
    );
}

#[test]
fn new_syn_above_rcv_nxt_reopens_a_time_wait_connection() {
    let (mut l, _lid, id, snd) = server_with(cfg());
    l.close(ms(0), id).unwrap();
    drain(&mut l);
    inject(&mut l, ms(1), hdr("FA", PEER_ISS + 1, snd + 1), b"");
    drain(&mut l);
    inject(&mut l, ms(2), hdr("S", PEER_ISS + 100_000, 0), b"");
    let sa = one(&mut l);
    check(&sa, "SA", sa.h.seq, PEER_ISS + 100_001);
    let c = l.connections();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].state, State::SynReceived);
}

#[test]
fn segments_to_closed_ports_get_rfc_9293_resets() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    // No ACK bit: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    inject(&mut l, ms(0), hdr("S", 100, 0), b"");
    check(&one(&mut l), "RA", 0, 101);
    inject(&mut l, ms(0), hdr("F", 100, 0), b"abc");
    check(&one(&mut l), "RA", 0, 104);
    // ACK bit: <SEQ=SEG.ACK><CTL=RST>.
    inject(&mut l, ms(0), hdr("PA", 100, 777), b"abc");
    check(&one(&mut l), "R", 777, 0);
    // Never answer a RST.
    inject(&mut l, ms(0), hdr("R", 100, 0), b"");
    inject(&mut l, ms(0), hdr("RA", 100, 5), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.stats().resets_sent, 3);
    // A listener answers a stray ACK with RST too.
    l.listen(US, 1).unwrap();
    inject(&mut l, ms(0), hdr("A", 100, 55), b"");
    check(&one(&mut l), "R", 55, 0);
}

#[test]
fn bad_checksum_and_malformed_segments_are_dropped_without_panic() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    l.listen(US, 4).unwrap();
    let mut bytes = Vec::new();
    hdr("S", 1, 0).emit(THEM.ip(), US.ip(), [b"", b""], &mut bytes);
    let mut bad = bytes.clone();
    bad[4] ^= 0xff;
    l.on_segment(ms(0), THEM.ip(), US.ip(), &bad);
    for n in 0..bytes.len() {
        l.on_segment(ms(0), THEM.ip(), US.ip(), &bytes[..n]);
    }
    // Data offset 15 with garbage options, checksum fixed up.
    let mut weird = hdr("S", 1, 0);
    weird.options.mss = Some(0);
    let mut w = Vec::new();
    weird.emit(THEM.ip(), US.ip(), [b"", b""], &mut w);
    l.on_segment(ms(0), THEM.ip(), US.ip(), &w);
    assert_eq!(drain(&mut l).len(), 1, "MSS 0 survives (clamped)");
    let st: TcpStats = l.stats();
    assert_eq!(st.bad_checksum, 1);
    assert!(st.malformed >= 1);
}

#[test]
fn illegal_option_lengths_are_survived() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    l.listen(US, 4).unwrap();
    // Build a SYN with raw options: unknown kind 99 len 4, then a zero-length option.
    let mut bytes = Vec::new();
    hdr("S", 1, 0).emit(THEM.ip(), US.ip(), [b"", b""], &mut bytes);
    bytes[12] = 8 << 4; // data offset 8: 12 option bytes
    bytes.splice(20..20, [99, 4, 0, 0, 2, 4, 0x02, 0x00, 7, 0, 1, 1]);
    fix_checksum(&mut bytes);
    l.on_segment(ms(0), THEM.ip(), US.ip(), &bytes);
    let sa = one(&mut l);
    assert!(sa.h.flags.syn && sa.h.flags.ack);
    assert_eq!(
        l.connections()[0].mss,
        512,
        "MSS after the unknown option was read"
    );
}

#[test]
fn window_scaling_is_negotiated_when_both_offer_it() {
    let config = TcpConfig {
        window_scaling: true,
        recv_buffer: 1 << 20,
        recv_buffer_max: 0, // no autotuning: the shift covers 1 MiB
        ..cfg()
    };
    let mut l = TcpLayer::new(config, [1; 16]);
    let lid = l.listen(US, 4).unwrap();
    let mut syn = hdr("S", PEER_ISS, 0);
    syn.options.window_scale = Some(2);
    inject(&mut l, ms(0), syn, b"");
    let sa = one(&mut l);
    assert_eq!(
        sa.h.options.window_scale,
        Some(5),
        "1 MiB needs a shift of 5"
    );
    assert_eq!(sa.h.window, 65535, "SYN windows are not scaled");
    let mut ack = hdr("A", PEER_ISS + 1, sa.h.seq + 1);
    ack.window = 1000;
    inject(&mut l, ms(0), ack, b"");
    let id = l.accept(lid).unwrap();
    assert_eq!(
        l.info(id).unwrap().snd_wnd,
        4000,
        "peer's window scaled by 2^2"
    );
    l.send(ms(0), id, b"hi").unwrap();
    let o = one(&mut l);
    assert_eq!(o.h.window, ((1u32 << 20) >> 5) as u16);
}
