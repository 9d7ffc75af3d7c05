//! Deterministic random segments and calls: the core must never panic and
//! must keep its memory bounded, whatever arrives.

use super::*;

/// xorshift64*: tiny, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A random segment near the connection's sequence numbers (or anywhere).
fn random_segment(r: &mut Rng, near_seq: u32, near_ack: u32) -> Vec<u8> {
    let mut h = hdr("", 0, 0);
    let f = r.next();
    h.flags.syn = f & 1 != 0 && r.below(4) == 0;
    h.flags.ack = f & 2 != 0;
    h.flags.fin = f & 4 != 0 && r.below(3) == 0;
    h.flags.rst = f & 8 != 0 && r.below(4) == 0;
    h.flags.psh = f & 16 != 0;
    h.seq = match r.below(4) {
        0 => r.next() as u32,
        _ => near_seq
            .wrapping_add(r.below(20_000) as u32)
            .wrapping_sub(10_000),
    };
    h.ack = match r.below(4) {
        0 => r.next() as u32,
        _ => near_ack
            .wrapping_add(r.below(20_000) as u32)
            .wrapping_sub(10_000),
    };
    h.window = r.next() as u16;
    if r.below(3) == 0 {
        h.options.mss = Some(r.next() as u16);
        h.options.window_scale = Some(r.below(20) as u8);
    }
    let len = match r.below(3) {
        0 => 0,
        1 => r.below(100) as usize,
        _ => r.below(3000) as usize,
    };
    let payload: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
    let mut bytes = Vec::new();
    h.emit(THEM.ip(), US.ip(), [&payload, &[]], &mut bytes);
    if r.below(5) == 0 && bytes.len() >= 20 {
        // Scribble over the header (data offset, options) and fix the sum.
        let i = 12 + r.below(8) as usize;
        bytes[i] = r.next() as u8;
        fix_checksum(&mut bytes);
    }
    bytes
}

#[test]
fn random_segments_and_calls_never_panic() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    for round in 0..200 {
        let (mut l, id, snd) = server();
        l.listen(SocketAddr::from((US.ip(), 8)), 2).unwrap();
        let client = l.connect(ms(0), SocketAddr::from((US.ip(), 9)), THEM).ok();
        let mut now = 0u64;
        let mut buf = vec![0u8; 5000];
        for _ in 0..300 {
            now += r.below(300);
            match r.below(10) {
                0 => l.poll(ms(now)),
                1 => {
                    let _ = l.send(ms(now), id, &buf[..r.below(5000) as usize]);
                }
                2 => {
                    let _ = l.recv(ms(now), id, &mut buf);
                }
                3 if r.below(10) == 0 => {
                    let _ = l.shutdown_write(ms(now), id);
                }
                4 if r.below(20) == 0 => {
                    let _ = l.close(ms(now), id);
                }
                _ => {
                    let mut seg = random_segment(&mut r, PEER_ISS + 1, snd);
                    if r.below(4) == 0 {
                        seg[2..4].copy_from_slice(&[0, if r.below(2) == 0 { 8 } else { 9 }]);
                        fix_checksum(&mut seg);
                    }
                    l.on_segment(ms(now), THEM.ip(), US.ip(), &seg);
                }
            }
            drain(&mut l);
            events(&mut l);
            assert!(
                l.connections().len() <= 8,
                "round {round}: bounded by backlog"
            );
            // Bounded memory: the receive buffer as configured, the send
            // buffer at most as far as autotuning may grow it.
            let max_send = TcpConfig::default().send_buffer_max;
            for c in l.connections() {
                assert!(c.recv_queue <= 8192 && c.send_queue <= max_send);
                assert!(c.send_buffer <= max_send);
            }
        }
        let _ = client;
    }
}
