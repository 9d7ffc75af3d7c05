//! Initial sequence numbers: clock-driven (MUST-8), with a secret-keyed
//! per-connection offset not computable from outside (MUST-9), as RFC 6528
//! §3 specifies: `ISN = M + F(localip, localport, remoteip, remoteport,
//! secretkey)` with `M` a 4 µs timer.

use std::net::SocketAddrV4;

use crate::bench::*;

/// The stack's ISN for a SYN from `PEER_IP:sport` at the bench's time; the
/// half-open connection is then reset away so the tuple can be reused.
fn passive_isn(b: &mut Bench, sport: u16) -> u32 {
    b.send(seg!(SYN, sport = sport, seq = PEER_ISS, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    b.send(seg!(RST, sport = sport, seq = PEER_ISS + 1));
    b.expect_nothing();
    sa.seq
}

/// MUST-8, RFC 6528 §3: for one 4-tuple the ISN advances with a clock
/// ticking every 4 µs (1 ms later: +250; 1 s later: +250 000).
#[test]
fn must_8_isn_is_driven_by_a_4us_clock() {
    let mut b = Bench::new();
    b.listen_backlog(PORT, 256);
    let a = passive_isn(&mut b, 40000);
    b.advance(1);
    let c = passive_isn(&mut b, 40000);
    b.advance(1000);
    let d = passive_isn(&mut b, 40000);
    assert_eq!(c.wrapping_sub(a), 250);
    assert_eq!(d.wrapping_sub(c), 250_000);
}

/// MUST-9, RFC 6528 §3: at one instant, ISNs of different 4-tuples are not a
/// counter or any simple function of the port: they are all distinct, the
/// steps between neighbouring ports vary, they spread over the whole
/// sequence space, and every bit is set about half of the time.
#[test]
fn must_9_isns_of_different_tuples_are_unpredictable() {
    let mut b = Bench::new();
    b.listen_backlog(PORT, 256);
    let isns: Vec<u32> = (40000..40128).map(|p| passive_isn(&mut b, p)).collect();
    let mut sorted = isns.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), isns.len(), "ISNs collide");
    let steps: Vec<u32> = isns.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    assert!(steps.iter().any(|&s| s != steps[0]), "constant step");
    assert!(
        steps.iter().filter(|&&s| s < 65536).count() < 4,
        "small steps: a counter"
    );
    assert!(
        sorted[sorted.len() - 1] - sorted[0] > 1 << 31,
        "not spread out"
    );
    for bit in 0..32 {
        let ones = isns.iter().filter(|&&i| i & (1 << bit) != 0).count();
        assert!(
            (32..=96).contains(&ones),
            "bit {bit} set in {ones}/128 ISNs"
        );
    }
}

/// MUST-9, RFC 6528 §3: F() depends on the secret key, so knowing the ISNs
/// a host used for other connections (even neighbouring ports, at the same
/// instant) does not tell an attacker the ISN of this one: with another
/// key, both the ISN and the offset between two tuples change.
#[test]
fn must_9_isn_offsets_depend_on_the_secret_key() {
    let mut b1 = Bench::new();
    let mut b2 = Bench::with_secret(cfg(), *b"another-secret!!");
    b1.listen(PORT);
    b2.listen(PORT);
    let (a1, c1) = (passive_isn(&mut b1, 40000), passive_isn(&mut b1, 40001));
    let (a2, c2) = (passive_isn(&mut b2, 40000), passive_isn(&mut b2, 40001));
    assert_ne!(a1, a2);
    assert_ne!(c1.wrapping_sub(a1), c2.wrapping_sub(a2));
}

/// MUST-8/9 for active opens: connections to different peers opened at the
/// same instant get unrelated ISNs.
#[test]
fn must_9_active_open_isns_differ_per_tuple() {
    let mut b = Bench::new();
    let mut isns = Vec::new();
    for port in 1..=16u16 {
        let remote = SocketAddrV4::new(PEER_IP, port);
        b.tcp
            .connect(b.now, SocketAddrV4::new(US_IP, 0), remote)
            .expect("connect");
        isns.push(b.expect(|s| s.is("S")).seq);
    }
    let steps: Vec<u32> = isns.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    assert!(steps.iter().all(|&s| s != 0));
    assert!(steps.iter().any(|&s| s != steps[0]), "{isns:?}");
}
