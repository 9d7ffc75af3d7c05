//! A relay: forwards IP packets between two devices through a
//! [`FaultInjector`], so two kernels can talk over the same faulty path
//! the stack gets (`tunstack relay`, `scripts/lossy.sh`).
//!
//! Side `a` takes the kernel's place in `tunstack run` and side `b` the
//! stack's: packets from `a` to `b` pass the injector's incoming ("rx")
//! faults, packets from `b` to `a` its outgoing ("tx") ones. With the same
//! [`FaultConfig`] and seed, a kernel at `b` meets the faults tunstack
//! would meet in its place.
//!
//! Packets are forwarded as plain packets: the devices must not hand out
//! super-segments (a TUN with offload off).

use std::io;
use std::time::Instant;

use super::fault::{FaultConfig, FaultInjector, FaultStats};
use super::{Device, TxMeta};

/// What a relay moved, and what its faults did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets taken from `a` and written to `b`, after the faults.
    pub a_to_b: u64,
    /// Packets taken from `b` and handed to the faults toward `a`.
    pub b_to_a: u64,
    /// Packets a device refused to send (not IP, or an error).
    pub send_errors: u64,
    /// The injector's counters ("rx": toward `b`, "tx": toward `a`).
    pub faults: FaultStats,
}

/// Two devices joined through a fault injector.
#[derive(Debug)]
pub struct Relay<A: Device, B: Device> {
    a: FaultInjector<A>,
    b: B,
    buf: Vec<u8>,
    stats: RelayStats,
}

impl<A: Device, B: Device> Relay<A, B> {
    /// Joins `a` and `b` with `faults` between them.
    pub fn new(a: A, b: B, faults: FaultConfig) -> Relay<A, B> {
        Relay {
            a: FaultInjector::new(a, faults),
            b,
            buf: vec![0u8; 65_536 + crate::wire::gso::VNET_HDR_LEN],
            stats: RelayStats::default(),
        }
    }

    /// Moves what is ready each way, at most `batch` packets each, and
    /// sends the delayed packets that are due; returns how many packets
    /// moved.
    pub fn forward(&mut self, batch: usize) -> io::Result<usize> {
        let mut moved = 0;
        for _ in 0..batch {
            let Some(r) = self.a.recv_with(&mut self.buf)? else {
                break;
            };
            let packet = &self.buf[r.start..r.start + r.len];
            if let Err(e) = self.b.send_with(packet, TxMeta::default()) {
                self.send_error(e);
            }
            self.stats.a_to_b += 1;
            moved += 1;
        }
        for _ in 0..batch {
            let Some(r) = self.b.recv_with(&mut self.buf)? else {
                break;
            };
            let packet = &self.buf[r.start..r.start + r.len];
            if let Err(e) = self.a.send_with(packet, TxMeta::default()) {
                self.send_error(e);
            }
            self.stats.b_to_a += 1;
            moved += 1;
        }
        Ok(moved)
    }

    fn send_error(&mut self, e: io::Error) {
        if self.stats.send_errors == 0 {
            log::warn!("relay: a packet could not be sent ({e}); further ones are counted only");
        }
        self.stats.send_errors += 1;
    }

    /// When the next delayed packet (either way) is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.a.next_due()
    }

    /// The two devices, to wait on.
    pub fn devices(&self) -> (&A, &B) {
        (self.a.inner(), &self.b)
    }

    /// What the relay moved so far.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            faults: self.a.stats(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::memory;
    use std::time::Duration;

    #[test]
    fn forwards_both_ways_through_the_faults() {
        let (a, kernel_a) = memory::link(1500);
        let (b, kernel_b) = memory::link(1500);
        let mut relay = Relay::new(
            a,
            b,
            FaultConfig {
                drop_rx: [2].into_iter().collect(),
                tx_delay: Duration::from_millis(20),
                ..FaultConfig::default()
            },
        );
        for i in 1..=3u8 {
            kernel_a.send_packet(vec![i]);
            kernel_b.send_packet(vec![10 + i]);
        }
        let start = Instant::now();
        relay.forward(64).unwrap();
        let to_b: Vec<Vec<u8>> = std::iter::from_fn(|| kernel_b.try_recv_packet()).collect();
        assert_eq!(to_b, vec![vec![1], vec![3]], "a -> b: the chosen drop");
        assert_eq!(kernel_a.try_recv_packet(), None, "b -> a: delayed");
        let due = relay.next_due().expect("held");
        assert!(due >= start + Duration::from_millis(20));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        relay.forward(64).unwrap();
        let to_a: Vec<Vec<u8>> = std::iter::from_fn(|| kernel_a.try_recv_packet()).collect();
        assert_eq!(to_a, vec![vec![11], vec![12], vec![13]]);
        let s = relay.stats();
        assert_eq!((s.a_to_b, s.b_to_a, s.faults.rx_dropped), (2, 3, 1));
    }
}
