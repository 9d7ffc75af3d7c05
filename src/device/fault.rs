//! Fault injection: a middleware device that drops chosen packets and
//! delays the rest, wrapping any [`Device`].
//!
//! Faults are deterministic so a capture can be made on purpose: "drop the
//! 5th packet the stack sends" produces exactly one retransmission, and a
//! delay on received packets makes both ends' FINs cross for a
//! simultaneous close. Dropped packets are never seen by the stack (inbound)
//! or the link (outbound), and a capture wrapped *inside* the injector
//! records what the stack actually sent.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use super::{Device, Received, RxMeta, TxMeta, Waker};

/// Which faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Outgoing packets to drop, by 1-based position (1 = the first packet
    /// the stack sends).
    pub drop_tx: BTreeSet<u64>,
    /// Incoming packets to drop, by 1-based position.
    pub drop_rx: BTreeSet<u64>,
    /// Hold every incoming packet this long before the stack sees it.
    pub rx_delay: Duration,
    /// Lose each incoming packet at random with this probability, in
    /// parts per million (10,000 = 1 %).
    pub rx_loss_ppm: u32,
    /// Lose each outgoing packet at random with this probability, in
    /// parts per million.
    pub tx_loss_ppm: u32,
    /// Seed of the random losses: the same seed loses the same packets of
    /// the same traffic.
    pub seed: u64,
}

impl FaultConfig {
    /// True when no fault is configured.
    pub fn is_empty(&self) -> bool {
        self.drop_tx.is_empty()
            && self.drop_rx.is_empty()
            && self.rx_delay.is_zero()
            && self.rx_loss_ppm == 0
            && self.tx_loss_ppm == 0
    }
}

/// Counters of what the injector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Outgoing packets dropped.
    pub tx_dropped: u64,
    /// Incoming packets dropped.
    pub rx_dropped: u64,
}

/// Most packets held for delay at once; beyond this, packets are dropped
/// (a real queue overflows too) so memory stays bounded.
const MAX_DELAYED: usize = 4096;

/// A device that injects faults into another device's traffic.
#[derive(Debug)]
pub struct FaultInjector<D: Device> {
    inner: D,
    config: FaultConfig,
    tx_count: u64,
    rx_count: u64,
    delayed: VecDeque<(Instant, Vec<u8>, RxMeta)>,
    stats: FaultStats,
    /// xorshift64* state for the random losses.
    rng: u64,
}

impl<D: Device> FaultInjector<D> {
    /// Wraps `inner` with the faults in `config`.
    pub fn new(inner: D, config: FaultConfig) -> FaultInjector<D> {
        FaultInjector {
            inner,
            tx_count: 0,
            rx_count: 0,
            rng: (config.seed ^ 0x9e37_79b9_7f4a_7c15) | 1,
            delayed: VecDeque::new(),
            stats: FaultStats::default(),
            config,
        }
    }

    /// True with probability `ppm` in a million.
    fn lose(&mut self, ppm: u32) -> bool {
        if ppm == 0 {
            return false;
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 1_000_000 < u64::from(ppm)
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// Pulls packets from the inner device into the delay queue (or drops
    /// them); returns whether anything arrived.
    fn fill(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 65_536 + crate::wire::gso::VNET_HDR_LEN];
        while self.delayed.len() < MAX_DELAYED {
            let Some(r) = self.inner.recv_with(&mut buf)? else {
                break;
            };
            self.rx_count += 1;
            if self.config.drop_rx.contains(&self.rx_count) {
                self.stats.rx_dropped += 1;
                log::info!("fault: dropped incoming packet #{}", self.rx_count);
                continue;
            }
            if self.lose(self.config.rx_loss_ppm) {
                self.stats.rx_dropped += 1;
                log::trace!("fault: lost incoming packet #{}", self.rx_count);
                continue;
            }
            let due = Instant::now() + self.config.rx_delay;
            let packet = buf[r.start..r.start + r.len].to_vec();
            self.delayed.push_back((due, packet, r.meta));
        }
        Ok(())
    }
}

impl<D: Device> Device for FaultInjector<D> {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(r) = self.recv_with(buf)? else {
            return Ok(None);
        };
        if r.meta.checksum_trusted {
            crate::wire::gso::complete_checksum(&mut buf[..r.len]);
        }
        Ok(Some(r.len))
    }

    /// The next packet whose delay is over, with what the inner device
    /// said about it.
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.fill()?;
        match self.delayed.front() {
            Some((due, _, _)) if *due <= Instant::now() => {}
            _ => return Ok(None),
        }
        let Some((_, packet, meta)) = self.delayed.pop_front() else {
            return Ok(None);
        };
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        Ok(Some(Received {
            start: 0,
            len: n,
            meta,
        }))
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.send_with(packet, TxMeta::default())
    }

    /// Counts (a super-segment is one packet here) and drops as
    /// configured, else passes the packet on with its metadata.
    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        self.tx_count += 1;
        if self.config.drop_tx.contains(&self.tx_count) {
            self.stats.tx_dropped += 1;
            log::info!("fault: dropped outgoing packet #{}", self.tx_count);
            return Ok(());
        }
        if self.lose(self.config.tx_loss_ppm) {
            self.stats.tx_dropped += 1;
            log::trace!("fault: lost outgoing packet #{}", self.tx_count);
            return Ok(());
        }
        self.inner.send_with(packet, meta)
    }

    fn offload(&self) -> bool {
        self.inner.offload()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.fill()?;
        // Wake for the next delayed packet, if it is due before the timeout.
        let timeout = match self.delayed.front() {
            Some((due, _, _)) => {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
        self.inner.wait(timeout)
    }

    fn waker(&self) -> Waker {
        self.inner.waker()
    }

    fn counters(&self) -> super::DeviceCounters {
        self.inner.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::memory;

    #[test]
    fn drops_exactly_the_chosen_packets_each_way() {
        let (a, peer) = memory::link(1500);
        let config = FaultConfig {
            drop_tx: [2, 4].into_iter().collect(),
            drop_rx: [1].into_iter().collect(),
            ..FaultConfig::default()
        };
        let mut dev = FaultInjector::new(a, config);
        for i in 1..=5u8 {
            dev.send(&[i]).unwrap();
        }
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| peer.try_recv_packet()).collect();
        assert_eq!(sent, vec![vec![1], vec![3], vec![5]]);
        for i in 1..=3u8 {
            peer.send_packet(vec![i]);
        }
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        while let Some(n) = dev.recv(&mut buf).unwrap() {
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, vec![vec![2], vec![3]]);
        assert_eq!(
            dev.stats(),
            FaultStats {
                tx_dropped: 2,
                rx_dropped: 1
            }
        );
    }

    #[test]
    fn random_loss_is_seeded_and_near_its_rate() {
        let run = |seed| {
            let (a, peer) = memory::link_with_capacity(1500, 20_000);
            let mut dev = FaultInjector::new(
                a,
                FaultConfig {
                    tx_loss_ppm: 50_000, // 5 %
                    seed,
                    ..FaultConfig::default()
                },
            );
            for i in 0..10_000u32 {
                dev.send(&i.to_be_bytes()).unwrap();
            }
            let sent: Vec<Vec<u8>> = std::iter::from_fn(|| peer.try_recv_packet()).collect();
            (sent, dev.stats().tx_dropped)
        };
        let (first, lost) = run(7);
        assert!((400..=600).contains(&lost), "lost {lost} of 10,000 at 5 %");
        assert_eq!(first.len() as u64 + lost, 10_000);
        assert_eq!(run(7).0, first, "the same seed loses the same packets");
        assert_ne!(run(8).0, first);
    }

    #[test]
    fn delayed_packets_arrive_in_order_after_the_delay() {
        let (a, peer) = memory::link(1500);
        let delay = Duration::from_millis(50);
        let mut dev = FaultInjector::new(
            a,
            FaultConfig {
                rx_delay: delay,
                ..FaultConfig::default()
            },
        );
        let start = Instant::now();
        peer.send_packet(vec![1]);
        peer.send_packet(vec![2]);
        let mut buf = [0u8; 16];
        assert_eq!(dev.recv(&mut buf).unwrap(), None, "held back at first");
        let mut got = Vec::new();
        while got.len() < 2 {
            dev.wait(Some(Duration::from_secs(5))).unwrap();
            while let Some(n) = dev.recv(&mut buf).unwrap() {
                got.push(buf[n - 1]);
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "delayed packets never arrived"
            );
        }
        assert!(start.elapsed() >= delay);
        assert_eq!(got, vec![1, 2]);
    }
}
