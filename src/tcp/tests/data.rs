//! Data transfer: both directions, reassembly, ACK policy, Nagle, windows.

use super::*;
use crate::tcp::TcpError;

const P: u32 = PEER_ISS + 1;

#[test]
fn data_flows_both_ways() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(10), hdr("PA", P, snd), b"hello");
    assert!(drain(&mut l).is_empty(), "ACK is delayed");
    assert_eq!(events(&mut l), vec![TcpEvent::Readable(id)]);
    let mut buf = [0u8; 16];
    assert_eq!(l.recv(ms(10), id, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(l.recv(ms(10), id, &mut buf), Err(TcpError::WouldBlock));
    assert_eq!(l.send(ms(11), id, b"world"), Ok(5));
    let o = one(&mut l);
    check(&o, "PA", snd, P + 5);
    assert_eq!(o.data, b"world");
    // Receiver SWS avoidance: the right edge has not moved by an MSS, so the
    // window shrinks by what was consumed.
    assert_eq!(o.h.window, 8192 - 5);
    assert_eq!(l.info(id).unwrap().send_queue, 5);
    inject(&mut l, ms(20), hdr("A", P + 5, snd + 5), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.info(id).unwrap().send_queue, 0);
    assert_eq!(l.poll_at(), None, "no timers left");
}

#[test]
fn out_of_order_data_is_held_then_delivered_when_the_gap_fills() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("PA", P + 5, snd), b"world");
    let dup = one(&mut l);
    check(&dup, "A", snd, P);
    assert_eq!(dup.h.window, 8192);
    assert!(events(&mut l).is_empty());
    let mut buf = [0u8; 16];
    assert_eq!(l.recv(ms(0), id, &mut buf), Err(TcpError::WouldBlock));
    inject(&mut l, ms(1), hdr("PA", P, snd), b"hello");
    let ack = one(&mut l);
    check(&ack, "A", snd, P + 10);
    assert_eq!(ack.h.window, 8192 - 10);
    assert_eq!(l.recv(ms(1), id, &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"helloworld");
}

#[test]
fn overlapping_and_duplicate_segments_are_trimmed() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("PA", P, snd), b"abc");
    inject(&mut l, ms(0), hdr("PA", P + 1, snd), b"bcde");
    // A pure duplicate is unacceptable: answered with an ACK.
    inject(&mut l, ms(0), hdr("PA", P, snd), b"ab");
    check(&one(&mut l), "A", snd, P + 5);
    let mut buf = [0u8; 16];
    assert_eq!(l.recv(ms(0), id, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"abcde");
}

#[test]
fn data_beyond_the_window_is_cut_off() {
    let (mut l, id, snd) = server();
    let big = vec![7u8; 9000];
    inject(&mut l, ms(0), hdr("PA", P, snd), &big);
    let o = one(&mut l);
    check(&o, "A", snd, P + 8192);
    assert_eq!(o.h.window, 0);
    assert_eq!(l.info(id).unwrap().recv_queue, 8192);
}

#[test]
fn delayed_ack_fires_after_the_timeout() {
    let (mut l, _id, snd) = server();
    inject(&mut l, ms(0), hdr("PA", P, snd), &[1; 100]);
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.poll_at(), Some(ms(40)), "the default delayed-ACK timeout");
    assert!(tick(&mut l, ms(39)).is_empty());
    let o = tick(&mut l, ms(40));
    assert_eq!(o.len(), 1);
    check(&o[0], "A", snd, P + 100);
    assert_eq!(o[0].h.window, 8192 - 100);
}

#[test]
fn every_second_full_sized_segment_is_acked_at_once() {
    let (mut l, _id, snd) = server();
    inject(&mut l, ms(0), hdr("A", P, snd), &[1; 1460]);
    assert!(drain(&mut l).is_empty());
    inject(&mut l, ms(1), hdr("A", P + 1460, snd), &[2; 1460]);
    check(&one(&mut l), "A", snd, P + 2920);
    assert_eq!(l.poll_at(), None, "delayed-ACK timer cancelled");
}

#[test]
fn nagle_coalesces_small_writes_until_the_ack() {
    let (mut l, id, snd) = server();
    l.send(ms(0), id, b"a").unwrap();
    check(&one(&mut l), "PA", snd, P);
    l.send(ms(1), id, b"b").unwrap();
    l.send(ms(2), id, b"c").unwrap();
    assert!(
        drain(&mut l).is_empty(),
        "Nagle holds small data while data is in flight"
    );
    inject(&mut l, ms(10), hdr("A", P, snd + 1), b"");
    let o = one(&mut l);
    check(&o, "PA", snd + 1, P);
    assert_eq!(o.data, b"bc");
}

#[test]
fn nodelay_sends_small_writes_immediately() {
    let (mut l, id, snd) = server();
    l.set_nodelay(ms(0), id, true).unwrap();
    l.send(ms(0), id, b"a").unwrap();
    l.send(ms(1), id, b"b").unwrap();
    let v = drain(&mut l);
    assert_eq!(v.len(), 2);
    check(&v[0], "PA", snd, P);
    check(&v[1], "PA", snd + 1, P);
}

#[test]
fn large_writes_are_cut_into_mss_segments_within_cwnd() {
    let (mut l, _, id, snd) = server_with(TcpConfig {
        send_buffer: 64 * 1024,
        ..cfg()
    });
    // The peer's window is no limit here.
    let mut wide = hdr("A", P, snd);
    wide.window = 65_535;
    inject(&mut l, ms(0), wide, b"");
    assert_eq!(l.send(ms(0), id, &[9; 30_000]), Ok(30_000));
    let v = drain(&mut l);
    // RFC 6928 §2 initial window: min(10*MSS, max(2*MSS, 14600)) = 14600,
    // ten segments.
    assert_eq!(
        v.iter().map(|o| o.data.len()).collect::<Vec<_>>(),
        [1460; 10]
    );
    assert_eq!(v[9].h.seq, snd + 9 * 1460);
    // An ACK of two segments in slow start opens cwnd by two (RFC 3465
    // §2.2, L = 2*SMSS): four segments go out.
    let mut ack = hdr("A", P, snd + 2920);
    ack.window = 65_535;
    inject(&mut l, ms(10), ack, b"");
    let v = drain(&mut l);
    assert_eq!(
        v.iter().map(|o| o.data.len()).collect::<Vec<_>>(),
        [1460; 4]
    );
    assert_eq!(v[0].h.seq, snd + 14_600);
    assert_eq!(l.info(id).unwrap().cwnd, 14_600 + 2920);
}

#[test]
fn a_full_send_buffer_takes_part_of_a_write_and_nagle_holds_the_tail() {
    let (mut l, id, snd) = server();
    assert_eq!(
        l.send(ms(0), id, &[9; 10_000]),
        Ok(8192),
        "partial when the buffer is full"
    );
    let v = drain(&mut l);
    assert_eq!(
        v.iter().map(|o| o.data.len()).collect::<Vec<_>>(),
        [1460; 5]
    );
    assert_eq!(l.send(ms(0), id, b"x"), Ok(0));
    inject(&mut l, ms(10), hdr("A", P, snd + 2920), b"");
    assert_eq!(events(&mut l), vec![TcpEvent::Writable(id)]);
    // The 892-byte tail waits (Nagle) while data is in flight, then goes
    // once everything is acknowledged.
    assert!(drain(&mut l).is_empty());
    inject(&mut l, ms(20), hdr("A", P, snd + 5 * 1460), b"");
    let o = one(&mut l);
    assert_eq!((o.h.seq, o.data.len()), (snd + 5 * 1460, 892));
}

#[test]
fn window_update_is_sent_once_reading_opens_an_mss() {
    let (mut l, id, snd) = server();
    let mut seq = P;
    for chunk in [1460usize, 1460, 1460, 1460, 1460, 892] {
        inject(&mut l, ms(0), hdr("A", seq, snd), &vec![0u8; chunk]);
        seq += chunk as u32;
    }
    let acks = drain(&mut l);
    assert_eq!(acks.len(), 1, "one ACK for the segments taken in together");
    check(&acks[0], "A", snd, P + 8192);
    assert_eq!(acks[0].h.window, 0);
    let mut buf = vec![0u8; 1400];
    l.recv(ms(1), id, &mut buf[..100]).unwrap();
    assert!(
        drain(&mut l).is_empty(),
        "100 bytes is below the SWS threshold"
    );
    l.recv(ms(1), id, &mut buf[..1400]).unwrap();
    let upd = one(&mut l);
    check(&upd, "A", snd, P + 8192);
    assert_eq!(upd.h.window, 1500);
}

#[test]
fn zero_window_is_probed_indefinitely_with_backoff() {
    let config = TcpConfig {
        retries2: 3,
        max_rto: d_ms(4000),
        ..cfg()
    };
    let (mut l, _, id, snd) = server_with(config);
    let mut zero = hdr("A", P, snd);
    zero.window = 0;
    inject(&mut l, ms(0), zero, b"");
    l.send(ms(0), id, b"hello").unwrap();
    assert!(drain(&mut l).is_empty());
    // RTO is 200 ms (handshake RTT ~0): probes at 200, 600, 1400, 3000,
    // 6200, then every 4 s (max RTO), long past R2.
    let mut t = 0;
    for gap in [200, 400, 800, 1600, 3200, 4000, 4000, 4000] {
        t += gap;
        assert_eq!(l.poll_at(), Some(ms(t)));
        let v = tick(&mut l, ms(t));
        assert_eq!(v.len(), 1);
        check(&v[0], "A", snd, P);
        assert_eq!(v[0].data, b"h");
        inject(&mut l, ms(t), zero, b"");
        assert!(drain(&mut l).is_empty());
    }
    assert_eq!(state(&l, id), Some(State::Established));
    // The window opens: everything goes out.
    inject(&mut l, ms(t + 1), hdr("A", P, snd), b"");
    let o = one(&mut l);
    check(&o, "PA", snd, P);
    assert_eq!(o.data, b"hello");
}

#[test]
fn a_probe_byte_accepted_by_the_peer_advances_snd_una() {
    let (mut l, id, snd) = server();
    let mut zero = hdr("A", P, snd);
    zero.window = 0;
    inject(&mut l, ms(0), zero, b"");
    l.send(ms(0), id, b"hello").unwrap();
    let v = tick(&mut l, ms(200));
    assert_eq!(v[0].data, b"h");
    // The peer took the byte and opened its window.
    inject(&mut l, ms(210), hdr("A", P, snd + 1), b"");
    let o = one(&mut l);
    check(&o, "PA", snd + 1, P);
    assert_eq!(o.data, b"ello");
}

#[test]
fn half_close_lets_data_flow_toward_the_side_that_sent_fin() {
    let (mut l, id, snd) = server();
    inject(&mut l, ms(0), hdr("FA", P, snd), b"");
    check(&one(&mut l), "A", snd, P + 1);
    assert_eq!(state(&l, id), Some(State::CloseWait));
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::PeerClosed(id), TcpEvent::Readable(id)]
    );
    let mut buf = [0u8; 4];
    assert_eq!(l.recv(ms(0), id, &mut buf), Ok(0), "EOF");
    l.send(ms(1), id, b"late").unwrap();
    let o = one(&mut l);
    check(&o, "PA", snd, P + 1);
    assert_eq!(o.data, b"late");
    inject(&mut l, ms(2), hdr("A", P + 1, snd + 4), b"");
    assert!(drain(&mut l).is_empty());
}

#[test]
fn we_half_close_and_keep_receiving() {
    let (mut l, id, snd) = server();
    l.shutdown_write(ms(0), id).unwrap();
    check(&one(&mut l), "FA", snd, P);
    assert_eq!(l.send(ms(0), id, b"x"), Err(TcpError::BrokenPipe));
    inject(&mut l, ms(1), hdr("A", P, snd + 1), b"");
    assert_eq!(state(&l, id), Some(State::FinWait2));
    inject(&mut l, ms(2), hdr("PA", P, snd + 1), b"more");
    let mut buf = [0u8; 8];
    assert_eq!(l.recv(ms(3), id, &mut buf), Ok(4));
    assert_eq!(
        l.poll_at(),
        Some(ms(42)),
        "delayed ACK only; no FIN-WAIT-2 timer while the app holds the handle"
    );
}

#[test]
fn acks_still_get_in_while_our_window_is_zero() {
    let (mut l, id, snd) = server();
    l.set_nodelay(ms(0), id, true).unwrap();
    l.send(ms(0), id, b"ours").unwrap();
    drain(&mut l);
    inject(&mut l, ms(1), hdr("A", P, snd), &[0u8; 8192]);
    assert_eq!(one(&mut l).h.window, 0);
    // The peer sends more (beyond our zero window) and acknowledges "ours".
    inject(&mut l, ms(2), hdr("PA", P + 8192, snd + 4), b"more");
    let o = one(&mut l);
    check(&o, "A", snd + 4, P + 8192);
    assert_eq!(o.h.window, 0);
    let info = l.info(id).unwrap();
    assert_eq!((info.send_queue, info.recv_queue), (0, 8192));
    assert_eq!(l.poll_at(), None, "retransmission timer stopped");
}

#[test]
fn syn_from_a_broadcast_address_is_ignored() {
    let mut l = TcpLayer::new(cfg(), [1; 16]);
    l.listen(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 7)), 4)
        .unwrap();
    let mut bytes = Vec::new();
    hdr("S", 1, 0).emit(Ipv4Addr::BROADCAST, US.ip(), [b"", b""], &mut bytes);
    l.on_segment(ms(0), Ipv4Addr::BROADCAST, US.ip(), &bytes);
    assert!(drain(&mut l).is_empty());
    assert!(l.connections().is_empty());
}

#[test]
fn every_second_full_segment_is_acked_when_they_arrive_one_by_one() {
    let (mut l, _id, snd) = server();
    let mut seq = P;
    let mut acks = Vec::new();
    for _ in 0..4 {
        inject(&mut l, ms(0), hdr("A", seq, snd), &[1u8; 1460]);
        seq += 1460;
        acks.push(drain(&mut l).len());
    }
    assert_eq!(
        acks,
        vec![0, 1, 0, 1],
        "MUST-58: an ACK per two full segments"
    );
}

#[test]
fn out_of_order_segments_in_one_batch_each_get_a_duplicate_ack() {
    let (mut l, _id, snd) = server();
    // The first segment is lost; three later ones arrive in one batch.
    for k in 1..4u32 {
        inject(&mut l, ms(0), hdr("A", P + k * 1000, snd), &[2u8; 1000]);
    }
    let v = drain(&mut l);
    assert_eq!(
        v.len(),
        3,
        "RFC 5681 §4.2: one duplicate ACK per segment: {v:?}"
    );
    for o in &v {
        check(o, "A", snd, P);
    }
}

#[test]
fn time_held_back_by_the_peers_window_is_counted_as_rwnd_limited() {
    let (mut l, id, snd) = server();
    let mut zero = hdr("A", P, snd);
    zero.window = 0;
    inject(&mut l, ms(0), zero, b"");
    l.send(ms(0), id, b"hello").unwrap();
    // The persist probe at 200 ms, answered with the window still shut.
    assert_eq!(tick(&mut l, ms(200))[0].data, b"h");
    inject(&mut l, ms(200), zero, b"");
    assert!(drain(&mut l).is_empty());
    // The window opens at 300 ms: the rest goes, and the receive window's
    // clock stops; the data is acknowledged at 310 ms.
    inject(&mut l, ms(300), hdr("A", P, snd), b"");
    assert_eq!(one(&mut l).data, b"hello");
    inject(&mut l, ms(310), hdr("A", P, snd + 5), b"");
    assert!(drain(&mut l).is_empty());
    let t = l.info(id).unwrap().send_times;
    assert_eq!(t.rwnd_limited, d_ms(300));
    assert_eq!(t.busy, d_ms(310));
    assert_eq!(t.sndbuf_limited, d_ms(0));
    // Idle now: no clock runs.
    inject(&mut l, ms(900), hdr("A", P, snd + 5), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.info(id).unwrap().send_times, t);
    assert_eq!(
        l.info(id).unwrap().ss_options(),
        "cubic busy:310ms rwnd_limited:300ms(96.8%)"
    );
}

#[test]
fn time_with_all_sent_and_a_writer_waiting_is_counted_as_sndbuf_limited() {
    let (mut l, id, snd) = server();
    // The whole buffer (8 KiB) goes at once: the window and cwnd take it
    // (Nagle would hold the last part back).
    l.set_nodelay(ms(0), id, true).unwrap();
    assert_eq!(l.send(ms(0), id, &[1; 8192]), Ok(8192));
    assert_eq!(
        drain(&mut l).iter().map(|o| o.data.len()).sum::<usize>(),
        8192
    );
    // A writer waits for room.
    let stream = l.stream(id).unwrap();
    stream.with(|st| st.register_writer(std::task::Waker::noop()));
    // The next time the connection runs it finds the buffer the limit.
    inject(&mut l, ms(5), hdr("A", P, snd), b"");
    assert!(drain(&mut l).is_empty());
    // Room for the writer: it is woken, and the clock stops; the rest is
    // acknowledged at 30 ms. (The segment that makes room carries data out
    // of order, so the connection answers it at once, while the wake-up is
    // still on its way.)
    inject(&mut l, ms(20), hdr("PA", P + 100, snd + 1000), b"x");
    check(&one(&mut l), "A", snd + 8192, P);
    inject(&mut l, ms(30), hdr("A", P, snd + 8192), b"");
    assert!(drain(&mut l).is_empty());
    let t = l.info(id).unwrap().send_times;
    assert_eq!(t.sndbuf_limited, d_ms(15));
    assert_eq!(t.busy, d_ms(30));
    assert_eq!(t.rwnd_limited, d_ms(0));
}

#[test]
fn the_busy_clock_stops_when_the_close_ends_in_time_wait() {
    let (mut l, id, snd) = server();
    l.send(ms(0), id, b"hello").unwrap();
    l.close(ms(0), id).unwrap();
    drain(&mut l);
    // One segment acknowledges the data and our FIN and carries the
    // peer's FIN: FIN-WAIT-1 to TIME-WAIT at once.
    inject(&mut l, ms(20), hdr("FA", P, snd + 6), b"");
    drain(&mut l);
    assert_eq!(state(&l, id), Some(State::TimeWait));
    inject(&mut l, ms(5000), hdr("A", P + 1, snd + 6), b"");
    drain(&mut l);
    assert_eq!(l.info(id).unwrap().send_times.busy, d_ms(20));
}

#[test]
fn the_busy_clock_stops_when_a_reset_ends_the_connection() {
    let (mut l, id, snd) = server();
    l.send(ms(0), id, b"hello").unwrap();
    drain(&mut l);
    // The peer resets with the data unacknowledged; the TCB stays for the
    // application to read its error.
    inject(&mut l, ms(10), hdr("R", P, snd), b"");
    drain(&mut l);
    assert_eq!(state(&l, id), Some(State::Closed));
    l.poll(ms(500));
    assert_eq!(l.info(id).unwrap().send_times.busy, d_ms(10));
}
