//! Retransmission (RFC 6298), fast retransmit (RFC 5681), keepalive.

use super::*;
use crate::tcp::congestion::Algorithm;
use crate::tcp::{KeepaliveConfig, TcpError};

const P: u32 = PEER_ISS + 1;

#[test]
fn retransmission_backs_off_and_karn_skips_retransmitted_samples() {
    let (mut l, id, snd) = server();
    // The handshake measured an RTT of 0: RTO is the 200 ms minimum.
    assert_eq!(l.info(id).unwrap().rto, d_ms(200));
    l.send(ms(0), id, b"x").unwrap();
    check(&one(&mut l), "PA", snd, P);
    assert_eq!(l.poll_at(), Some(ms(200)));
    assert!(tick(&mut l, ms(199)).is_empty());
    let r1 = tick(&mut l, ms(200));
    check(&r1[0], "PA", snd, P);
    assert_eq!(r1[0].data, b"x");
    // Backoff doubles: next at 200 + 400.
    assert_eq!(l.poll_at(), Some(ms(600)));
    check(&tick(&mut l, ms(600))[0], "PA", snd, P);
    assert_eq!(l.poll_at(), Some(ms(1400)));
    let info = l.info(id).unwrap();
    assert_eq!(
        (info.retransmits, info.backoff, info.rto),
        (2, 2, d_ms(800))
    );
    // The ACK of a retransmitted segment gives no RTT sample (Karn) ...
    inject(&mut l, ms(1000), hdr("A", P, snd + 1), b"");
    let info = l.info(id).unwrap();
    assert_eq!(info.srtt, Some(Duration::ZERO));
    assert_eq!(info.backoff, 0);
    assert_eq!(l.poll_at(), None);
    // ... but the next fresh segment does, and collapses the backoff.
    l.send(ms(1000), id, b"y").unwrap();
    drain(&mut l);
    inject(&mut l, ms(1080), hdr("A", P, snd + 2), b"");
    let info = l.info(id).unwrap();
    assert_eq!(info.srtt, Some(d_ms(10)), "7/8*0 + 1/8*80");
    assert_eq!(info.rto, d_ms(200));
}

#[test]
fn r2_exceeded_aborts_with_timed_out() {
    let config = TcpConfig {
        retries2: 3,
        ..cfg()
    };
    let (mut l, _, id, snd) = server_with(config);
    l.send(ms(0), id, b"x").unwrap();
    drain(&mut l);
    let mut t = 0;
    for gap in [200, 400, 800] {
        t += gap;
        check(&tick(&mut l, ms(t))[0], "PA", snd, P);
    }
    t += 1600;
    assert_eq!(l.poll_at(), Some(ms(t)));
    assert!(tick(&mut l, ms(t)).is_empty(), "no RST on timeout");
    assert_eq!(state(&l, id), Some(State::Closed));
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::Closed(id, Some(TcpError::TimedOut))]
    );
    assert_eq!(l.stats().timeouts, 1);
    let mut buf = [0u8; 1];
    assert_eq!(l.recv(ms(t), id, &mut buf), Err(TcpError::TimedOut));
    assert_eq!(TcpError::TimedOut.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit() {
    let (mut l, _, id, snd) = server_with(TcpConfig {
        congestion: Algorithm::NewReno,
        ..cfg()
    });
    l.send(ms(0), id, &[5; 4380]).unwrap();
    assert_eq!(drain(&mut l).len(), 3);
    // The first segment is lost; the other two produce duplicate ACKs.
    for _ in 0..2 {
        inject(&mut l, ms(5), hdr("A", P, snd), b"");
    }
    assert!(drain(&mut l).is_empty());
    inject(&mut l, ms(5), hdr("A", P, snd), b"");
    let r = one(&mut l);
    check(&r, "A", snd, P);
    assert_eq!(r.data.len(), 1460);
    let info = l.info(id).unwrap();
    assert_eq!(info.ssthresh, 2920, "max(flight/2, 2*MSS)");
    assert_eq!(
        info.cwnd, 2920,
        "cwnd = ssthresh; the inflation is kept apart"
    );
    assert!(info.recovering);
    assert_eq!(info.retransmits, 1);
    // The full ACK ends recovery: cwnd deflates to ssthresh.
    inject(&mut l, ms(10), hdr("A", P, snd + 4380), b"");
    assert_eq!(l.info(id).unwrap().cwnd, 2920);
    assert!(!l.info(id).unwrap().recovering);
}

#[test]
fn duplicate_acks_with_data_or_window_change_do_not_count() {
    let (mut l, id, snd) = server();
    l.send(ms(0), id, &[5; 4380]).unwrap();
    drain(&mut l);
    let mut h = hdr("A", P, snd);
    for w in [100, 200, 300] {
        h.window = w;
        inject(&mut l, ms(1), h, b"");
    }
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.info(id).unwrap().retransmits, 0);
}

#[test]
fn keepalive_probes_then_aborts_after_count() {
    let (mut l, id, snd) = server();
    assert_eq!(l.poll_at(), None, "keepalive off by default (MUST-24)");
    let k = KeepaliveConfig {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        count: 3,
    };
    l.set_keepalive(ms(0), id, Some(k)).unwrap();
    assert_eq!(l.poll_at(), Some(ms(10_000)));
    // First probe <SEQ=SND.NXT-1>, no data; the peer answers.
    check(&tick(&mut l, ms(10_000))[0], "A", snd - 1, P);
    inject(&mut l, ms(10_001), hdr("A", P, snd), b"");
    assert!(drain(&mut l).is_empty());
    assert_eq!(
        l.poll_at(),
        Some(ms(20_001)),
        "an answer restarts the idle time"
    );
    // Now the peer goes silent: 3 probes 2 s apart, then RST + TimedOut.
    let mut t = 20_001;
    for _ in 0..3 {
        let v = tick(&mut l, ms(t));
        assert_eq!(v.len(), 1);
        check(&v[0], "A", snd - 1, P);
        assert!(v[0].data.is_empty());
        t += 2000;
    }
    check(&tick(&mut l, ms(t))[0], "RA", snd, P);
    assert_eq!(
        events(&mut l),
        vec![TcpEvent::Closed(id, Some(TcpError::TimedOut))]
    );
}

#[test]
fn poll_at_reports_the_earliest_deadline_across_connections() {
    let (mut l, id, _snd) = server();
    let other = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 9), 80));
    l.connect(ms(0), SocketAddr::from((US.ip(), 0)), other)
        .unwrap();
    l.send(ms(0), id, b"x").unwrap();
    drain(&mut l);
    assert_eq!(l.poll_at(), Some(ms(200)));
    tick(&mut l, ms(200));
    assert_eq!(l.poll_at(), Some(ms(600)));
}
