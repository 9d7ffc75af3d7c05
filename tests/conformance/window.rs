//! Windows: unsigned (MUST-1), robust against shrinking (MUST-34), zero
//! windows probed in the standard way and kept open indefinitely (MUST-35..37),
//! SWS avoidance on both sides (MUST-38, MUST-39), RST with a zero window
//! (MUST-66), and the acceptability test for segments outside the window
//! (RFC 9293 §3.4 Table 5, §3.10.7.4).

use tunstack::tcp::{State, TcpConfig};

use crate::bench::*;

/// MUST-1: the window field is unsigned: 65535 and 40000 (negative as i16)
/// are large windows, and data flows into them.
#[test]
fn must_1_window_is_treated_as_unsigned() {
    let mut b = Bench::new();
    b.handshake_passive();
    assert_eq!(b.info().snd_wnd, 65535);
    b.send(seg!(ACK, win = 40_000));
    assert_eq!(b.info().snd_wnd, 40_000);
    b.app_send(&[1u8; 3000]);
    let sent: usize = b.take_all().iter().map(|s| s.data.len()).sum();
    assert_eq!(
        sent, 2920,
        "two full segments out (the tail waits for Nagle)"
    );
}

/// MUST-36, MUST-37, SHLD-29, SHLD-30: a zero window is probed with one
/// byte, first after one RTO, then with exponentially growing intervals
/// (capped at the maximum RTO); as long as the peer answers, probing goes
/// on indefinitely — here 40 probes, far past R2 — and data flows as soon
/// as the window opens.
#[test]
fn must_36_37_zero_window_is_probed_indefinitely_with_backoff() {
    let mut b = Bench::new();
    b.handshake_passive();
    b.send(seg!(ACK, win = 0));
    let snd = b.stack_seq;
    b.app_send(&[9u8; 100]);
    b.expect_nothing();
    let mut last = b.now;
    let mut gaps = Vec::new();
    for _ in 0..40 {
        let p = b.wait_for_segment(200_000);
        assert!(p.ack && p.seq == snd && p.data.len() == 1, "{p:?}");
        gaps.push((p.at - last).as_millis());
        last = p.at;
        b.send(seg!(ACK, ack = snd, win = 0));
        b.expect_nothing();
    }
    assert_eq!(
        gaps[..11],
        [200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 102_400, 120_000]
    );
    assert!(gaps[11..].iter().all(|&g| g == 120_000));
    assert_eq!(b.state(), Some(State::Established));
    b.send(seg!(ACK, ack = snd, win = 65535));
    b.expect(|s| s.seq == snd && s.data.len() == 100);
}

/// MUST-35, MUST-37, SHLD-17: when the window shrinks to zero while data is
/// in flight, the sender must keep probing it in the standard way and must
/// not time the connection out while the peer answers (Linux: the RTO
/// retransmits the head of the queue as a probe and skips the R2 check
/// while the peer is heard from).
#[test]
fn must_35_window_shrunk_to_zero_with_data_in_flight_is_probed() {
    let mut b = Bench::new();
    b.handshake_passive();
    let snd = b.stack_seq;
    b.app_send(&[5u8; 1000]);
    b.expect(|s| s.data.len() == 1000);
    // The peer takes 200 bytes and closes its window: the right edge moves
    // left of data already sent.
    let una = snd.wrapping_add(200);
    b.send(seg!(ACK, ack = una, win = 0));
    for round in 0..20 {
        let Some(p) = b.try_wait_for_segment(130_000) else {
            panic!(
                "round {round}: no probe within 130 s, state {:?}, events {:?}",
                b.state(),
                b.events()
            );
        };
        assert!(p.seq == una && !p.data.is_empty(), "{p:?}");
        b.send(seg!(ACK, ack = una, win = 0));
    }
    assert_eq!(b.state(), Some(State::Established));
}

/// MUST-34, SHLD-15, SHLD-16: a window shrunk below what is in flight (the
/// usable window goes negative) is survived: no new data is sent, and the
/// timeout retransmits only what fits in the window.
#[test]
fn must_34_shrinking_window_is_survived() {
    let mut b = Bench::new();
    b.handshake_passive();
    let snd = b.stack_seq;
    b.app_send(&[5u8; 3000]);
    let lens: Vec<usize> = b.take_all().iter().map(|s| s.data.len()).collect();
    assert_eq!(lens, [1460, 1460]);
    b.send(seg!(ACK, ack = snd, win = 1000));
    b.app_send(&[6u8; 500]);
    b.expect_nothing();
    let r = b.wait_for_segment(1000);
    assert_eq!((r.seq, r.data.len()), (snd, 1000));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Established));
    b.send(seg!(ACK, ack = snd.wrapping_add(1000), win = 65535));
    b.expect(|s| s.seq == snd.wrapping_add(1000) && !s.data.is_empty());
}

/// MUST-38 (RFC 9293 §3.8.6.2.1): the sender does not send a small segment
/// into a small usable window; it sends when a full segment fits, when half
/// of the largest window seen fits, or when the override timeout fires.
#[test]
fn must_38_sender_avoids_silly_windows() {
    let mut b = Bench::new();
    b.peer_win = 2000;
    b.handshake_passive();
    let snd = b.stack_seq;
    b.app_send(&[3u8; 10_000]);
    b.expect(|s| s.seq == snd && s.data.len() == 1460);
    b.expect_nothing(); // 540 usable: less than an MSS and than 2000/2
    b.send(seg!(ACK, ack = snd.wrapping_add(1460), win = 600));
    b.expect_nothing();
    let t = b.now;
    let o = b.wait_for_segment(1000);
    assert_eq!((o.seq, o.data.len()), (snd.wrapping_add(1460), 600));
    assert!(
        o.at - t >= ms(100) && o.at - t <= ms(1000),
        "override timeout"
    );
    b.send(seg!(ACK, ack = snd.wrapping_add(2060), win = 1000));
    b.expect(|s| s.seq == snd.wrapping_add(2060) && s.data.len() == 1000);
}

/// Fills the stack's 8 KiB receive window without reading; returns RCV.NXT.
fn fill_window(b: &mut Bench) -> u32 {
    let rcv0 = b.peer_seq;
    for len in [1460usize, 1460, 1460, 1460, 1460, 892] {
        b.peer_data(&vec![1u8; len]);
    }
    b.advance(500);
    let last = b.take_all().pop().expect("ACKs");
    assert_eq!((last.ack_no, last.win), (rcv0 + 8192, 0));
    b.peer_seq
}

/// RFC 9293 §3.4 (Table 5), §3.8.6.1, MUST-66: with a zero receive window a
/// data segment (a zero-window probe) is not acceptable and is answered
/// with an ACK showing RCV.NXT and the zero window; the ACK it carries is
/// still processed; a RST at RCV.NXT is processed.
#[test]
fn must_66_zero_receive_window_still_processes_acks_and_rst() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = fill_window(&mut b);
    b.app_send(b"outbound");
    let d = b.expect(|s| s.data == b"outbound" && s.win == 0);
    b.send(seg!(ACK, seq = rcv, ack = d.end(), data = [7u8]));
    b.expect(|s| s.is("A") && s.ack_no == rcv && s.win == 0);
    assert_eq!(b.info().recv_queue, 8192);
    assert_eq!(b.info().send_queue, 0, "the ACK field was processed");
    b.send(seg!(RST, seq = rcv));
    assert_eq!(b.state(), Some(State::Closed));
}

/// MUST-39 (RFC 9293 §3.8.6.2.2): after a zero window the receiver does not
/// advertise small openings; it sends a window update once
/// min(RCV.BUFF/2, MSS) bytes are free.
#[test]
fn must_39_receiver_avoids_silly_windows() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = fill_window(&mut b);
    assert_eq!(b.app_recv(100).unwrap().len(), 100);
    b.advance(1000);
    b.expect_nothing();
    assert_eq!(b.app_recv(1400).unwrap().len(), 1400);
    b.expect(|s| s.is("A") && s.ack_no == rcv && s.win == 1500);
}

/// SHLD-14: the stack never shrinks its own window: while the application
/// does not read, the right edge (ACK + window) of every ACK stays put.
#[test]
fn our_window_is_never_shrunk() {
    let mut b = Bench::new();
    b.handshake_passive();
    let edge = b.peer_seq + 8192;
    for _ in 0..6 {
        b.peer_data(&[1u8; 1000]);
        b.advance(300);
    }
    let acks = b.take_all();
    assert_eq!(acks.len(), 6);
    assert!(
        acks.iter().all(|a| a.ack_no + u32::from(a.win) == edge),
        "{acks:?}"
    );
}

/// RFC 9293 §3.10.7.4 (first step): segments outside the receive window are
/// answered with `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>` and dropped; a
/// segment overlapping the left edge contributes only its new bytes, one
/// overlapping the right edge only what fits.
#[test]
fn segments_outside_the_window_are_acked_and_trimmed() {
    let mut b = Bench::new();
    b.handshake_passive();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    b.send(seg!(ACK | PSH, seq = rcv + 8192, data = b"future"));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    b.send(seg!(ACK | PSH, seq = rcv - 6, data = b"past!!"));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    b.send(seg!(ACK, seq = rcv + 9000));
    b.expect(|s| s.is("A") && s.seq == snd && s.ack_no == rcv);
    assert_eq!(b.info().recv_queue, 0);
    b.send(seg!(ACK | PSH, seq = rcv - 3, data = b"xyzabc"));
    assert_eq!(b.app_recv(100).unwrap(), b"abc");
    b.send(seg!(ACK | PSH, seq = rcv + 3, data = vec![1u8; 9000]));
    b.expect(|s| s.is("A") && s.ack_no == rcv + 3 + 8192 && s.win == 0);
    assert_eq!(b.info().recv_queue, 8192);
}

/// RFC 9293 §3.10.7.4 (first step), as an outside tester found missing: a
/// zero-length ACK whose sequence number is at (or beyond) the right edge of
/// the window is not acceptable and is answered, also right after two
/// unacceptable data segments. The one exactly at the edge (a peer that
/// filled our window sends its ACKs there) still has its ACK field
/// processed.
#[test]
fn a_pure_ack_at_or_beyond_the_right_edge_is_answered() {
    let mut b = Bench::new();
    b.handshake_passive();
    let (snd, rcv) = (b.stack_seq, b.peer_seq);
    let edge = rcv + 8192; // the bench's receive buffer
    b.send(seg!(ACK | PSH, seq = edge + 100, data = b"late"));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    b.send(seg!(ACK | PSH, seq = rcv - 10, data = b"old"));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    // Our data in flight; the peer's ACK of it sits exactly at our edge.
    b.app_send(b"hello");
    b.expect(|s| s.is("PA") && s.seq == snd);
    b.send(seg!(ACK, seq = edge, ack = snd + 5));
    b.expect(|s| s.is("A") && s.seq == snd + 5 && s.ack_no == rcv);
    assert_eq!(b.info().send_queue, 0, "its ACK field was processed");
}

/// Issue 10 (reflection): answers to out-of-window pure ACKs are limited
/// per connection to one per 500 ms (Linux `tcp_invalid_ratelimit`); the
/// first of a burst is answered, out-of-window data always is, and
/// keepalive probes (SEQ = RCV.NXT - 1) always are.
#[test]
fn answers_to_out_of_window_pure_acks_are_rate_limited_but_data_is_always_answered() {
    let mut b = Bench::new();
    b.handshake_passive();
    let rcv = b.peer_seq;
    for i in 0..10 {
        b.send(seg!(ACK, seq = rcv + 20_000 + i));
    }
    assert_eq!(b.take_all().len(), 1, "one answer for a burst of ten");
    assert_eq!(b.stats().oow_acks_limited, 9);
    for _ in 0..3 {
        b.send(seg!(ACK | PSH, seq = rcv + 20_000, data = b"x"));
        b.expect(|s| s.is("A") && s.ack_no == rcv);
    }
    b.send(seg!(ACK, seq = rcv - 1));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    b.advance(500);
    b.send(seg!(ACK, seq = rcv + 30_000));
    b.expect(|s| s.is("A") && s.ack_no == rcv);
}

/// Window scaling on, a 64 KiB receive buffer that may grow to 1 MiB.
fn autotuned() -> TcpConfig {
    TcpConfig {
        window_scaling: true,
        recv_buffer: 64 * 1024,
        recv_buffer_max: 1 << 20,
        ..cfg()
    }
}

/// A peer that fills whatever window it is offered, round trip after round
/// trip (`rtt_ms` apart), while the application reads everything: the
/// window offered at the end, in bytes.
fn window_after_rounds(b: &mut Bench, rounds: usize, rtt_ms: u64) -> u32 {
    for _ in 0..rounds {
        let mut room = b.info().rcv_wnd as usize;
        while room > 0 {
            let n = room.min(1460);
            b.peer_data(&vec![9u8; n]);
            room -= n;
        }
        while b.app_recv(1 << 20).is_ok_and(|d| !d.is_empty()) {}
        b.advance(rtt_ms);
        b.take_all();
    }
    b.info().rcv_wnd
}

/// Receive-window autotuning (issue 12; Linux's `tcp_rcv_space_adjust`):
/// while the application reads each round trip's data, the window grows
/// past the initial buffer, up to `recv_buffer_max`; with window scaling
/// the SYN-ACK's shift already covers the maximum (RFC 7323 §2.3).
#[test]
fn the_receive_window_grows_while_the_application_keeps_up() {
    let mut b = Bench::with(autotuned());
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460, ws = 7));
    let sa = b.expect(|s| s.is("SA"));
    assert_eq!(sa.wscale, Some(5), "the shift covers 1 MiB");
    b.advance(10);
    b.send(seg!(ACK));
    let lid = b.listener.expect("listener");
    b.conn = Some(b.tcp.accept(lid).expect("accept"));
    let start = b.info().rcv_wnd;
    assert!(start <= 64 * 1024, "starts at the initial buffer: {start}");
    let end = window_after_rounds(&mut b, 20, 10);
    assert!(
        end > 256 * 1024 && end <= 1 << 20,
        "grew from {start} to {end}, within 1 MiB"
    );
    let info = b.info();
    assert!(info.recv_buffer > 256 * 1024, "{info:?}");
    assert_eq!(info.wscale, Some((7, 5)));
}

/// An explicit receive buffer size (`SO_RCVBUF`) turns autotuning off.
#[test]
fn an_explicit_receive_buffer_is_not_autotuned() {
    let mut b = Bench::with(autotuned());
    b.handshake_passive_with(seg!(SYN, mss = 1460, ws = 7), 10);
    let id = b.id();
    b.tcp
        .set_option(b.now, id, tunstack::tcp::TcpOption::RecvBuffer(64 * 1024))
        .expect("set");
    let end = window_after_rounds(&mut b, 20, 10);
    assert!(end <= 64 * 1024, "stayed at 64 KiB: {end}");
}

/// RFC 9293 §3.10.7.4 with Linux's `tcp_may_update_window`: an ACK that
/// advances SND.UNA updates the send window even when it rides on a
/// retransmission of the peer's (a SEG.SEQ older than SND.WL1). Otherwise
/// the old window would be counted from the new SND.UNA and the right edge
/// would move past what the peer offered (found by the simulation,
/// smoltcp-server seed 7858, where tunstack sent 20 bytes beyond it).
#[test]
fn an_ack_on_an_old_segment_that_advances_snd_una_updates_the_window() {
    let mut b = Bench::new();
    b.peer_win = 4000;
    b.handshake_passive();
    let snd = b.stack_seq;
    let old = b.peer_seq;
    // The peer's first segment is lost; its second arrives out of order
    // and sets SND.WL1 = old + 100.
    b.send(seg!(
        ACK | PSH,
        seq = old.wrapping_add(100),
        data = &[8u8; 100]
    ));
    b.take_all();
    b.app_send(&[5u8; 2920]);
    let lens: Vec<usize> = b.take_all().iter().map(|s| s.data.len()).collect();
    assert_eq!(lens, [1460, 1460]);
    // The peer resends the lost one; it acknowledges our first segment and
    // offers 500 bytes: the right edge is snd + 1960, below SND.NXT.
    b.send(seg!(
        ACK | PSH,
        seq = old,
        ack = snd.wrapping_add(1460),
        win = 500,
        data = &[7u8; 100]
    ));
    b.peer_seq = old.wrapping_add(200);
    assert_eq!(b.info().snd_wnd, 500);
    b.take_all(); // the hole's ACK
    b.app_send(&[6u8; 1460]);
    b.expect_nothing();
    // Once the window opens, the new data goes.
    b.send(seg!(ACK, ack = snd.wrapping_add(2920), win = 4000));
    b.expect(|s| s.seq == snd.wrapping_add(2920) && s.data.len() == 1460);
}
