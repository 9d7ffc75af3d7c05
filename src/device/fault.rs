//! Fault injection: a middleware device that drops, delays, duplicates and
//! reorders the packets of any [`Device`], each way.
//!
//! Two kinds of faults:
//! - **Chosen** ones, so a capture can be made on purpose: "drop the 5th
//!   packet the stack sends" produces exactly one retransmission, and a
//!   delay on received packets makes both ends' FINs cross for a
//!   simultaneous close.
//! - A **seeded, netem-like path** per direction ([`path`]): random loss,
//!   delay with jitter, reordering and duplication, the same for the same
//!   seed and the same packets. `tunstack relay` puts the same model
//!   between two kernels, so they talk over exactly the path the stack gets.
//!
//! Dropped packets are never seen by the stack (inbound) or the link
//! (outbound), and a capture wrapped *inside* the injector records what the
//! stack actually sent.
//!
//! The injector reads the clock itself (`Instant::now()`) and passes it to
//! the model. Outgoing packets held for their delay go out from whichever
//! call comes first once they are due: `send_with`, `recv_with`, or `wait`,
//! which sleeps no longer than the next due packet (either way) and sends
//! what is due when it wakes. The runtime calls `recv_with` after every
//! `wait`, so a delayed packet leaves on time even when nothing else
//! happens.

pub mod path;

use std::collections::BTreeSet;
use std::io;
use std::time::{Duration, Instant};

use path::{FaultyPath, PathFaults};

use super::{Device, Received, RxMeta, TxMeta, Waker};

/// Which faults to inject. "rx" is toward the stack (what it receives),
/// "tx" away from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Outgoing packets to drop, by 1-based position (1 = the first packet
    /// the stack sends).
    pub drop_tx: BTreeSet<u64>,
    /// Incoming packets to drop, by 1-based position.
    pub drop_rx: BTreeSet<u64>,
    /// Hold every incoming packet this long before the stack sees it.
    pub rx_delay: Duration,
    /// Hold every outgoing packet this long before the link gets it.
    pub tx_delay: Duration,
    /// Vary each packet's delay uniformly within `delay ± jitter`, each way,
    /// keeping the order (see [`path`]).
    pub jitter: Duration,
    /// Lose each incoming packet at random with this probability, in
    /// parts per million (10,000 = 1 %).
    pub rx_loss_ppm: u32,
    /// Lose each outgoing packet at random with this probability, in
    /// parts per million.
    pub tx_loss_ppm: u32,
    /// Send a packet ahead of the ones held for their delay with this
    /// probability, each way, in parts per million.
    pub reorder_ppm: u32,
    /// Send a packet twice with this probability, each way, in parts per
    /// million.
    pub duplicate_ppm: u32,
    /// Seed of the random faults: the same seed makes the same decisions
    /// for the same traffic.
    pub seed: u64,
}

impl FaultConfig {
    /// True when no fault is configured.
    pub fn is_empty(&self) -> bool {
        self.drop_tx.is_empty()
            && self.drop_rx.is_empty()
            && self.rx_path() == PathFaults::default()
            && self.tx_path() == PathFaults::default()
    }

    /// The faults of the incoming direction.
    pub fn rx_path(&self) -> PathFaults {
        PathFaults {
            delay: self.rx_delay,
            jitter: self.jitter,
            loss_ppm: self.rx_loss_ppm,
            duplicate_ppm: self.duplicate_ppm,
            reorder_ppm: self.reorder_ppm,
        }
    }

    /// The faults of the outgoing direction.
    pub fn tx_path(&self) -> PathFaults {
        PathFaults {
            delay: self.tx_delay,
            loss_ppm: self.tx_loss_ppm,
            ..self.rx_path()
        }
    }
}

/// Counters of what the injector did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Outgoing packets dropped (chosen, or lost at random).
    pub tx_dropped: u64,
    /// Incoming packets dropped (chosen, or lost at random).
    pub rx_dropped: u64,
    /// Outgoing packets sent twice.
    pub tx_duplicated: u64,
    /// Incoming packets delivered twice.
    pub rx_duplicated: u64,
    /// Outgoing packets sent ahead of earlier ones.
    pub tx_reordered: u64,
    /// Incoming packets delivered ahead of earlier ones.
    pub rx_reordered: u64,
    /// Outgoing packets dropped because the delay queue was full.
    pub tx_overflowed: u64,
    /// Incoming packets dropped because the delay queue was full (the
    /// injector stops reading before that, so the kernel's queue fills
    /// instead; only duplicates can overflow).
    pub rx_overflowed: u64,
}

impl FaultStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &FaultStats) {
        self.tx_dropped += other.tx_dropped;
        self.rx_dropped += other.rx_dropped;
        self.tx_duplicated += other.tx_duplicated;
        self.rx_duplicated += other.rx_duplicated;
        self.tx_reordered += other.tx_reordered;
        self.rx_reordered += other.rx_reordered;
        self.tx_overflowed += other.tx_overflowed;
        self.rx_overflowed += other.rx_overflowed;
    }
}

impl std::fmt::Display for FaultStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dropped {} in / {} out, duplicated {} / {}, reordered {} / {}, queue overflows {} / {}",
            self.rx_dropped,
            self.tx_dropped,
            self.rx_duplicated,
            self.tx_duplicated,
            self.rx_reordered,
            self.tx_reordered,
            self.rx_overflowed,
            self.tx_overflowed
        )
    }
}

/// A device that injects faults into another device's traffic.
#[derive(Debug)]
pub struct FaultInjector<D: Device> {
    inner: D,
    drop_tx: BTreeSet<u64>,
    drop_rx: BTreeSet<u64>,
    tx_count: u64,
    rx_count: u64,
    /// Chosen drops, beside the paths' own counters.
    tx_chosen: u64,
    rx_chosen: u64,
    rx: FaultyPath<RxMeta>,
    tx: FaultyPath<TxMeta>,
}

impl<D: Device> FaultInjector<D> {
    /// Wraps `inner` with the faults in `config`.
    pub fn new(inner: D, config: FaultConfig) -> FaultInjector<D> {
        FaultInjector {
            inner,
            tx_count: 0,
            rx_count: 0,
            tx_chosen: 0,
            rx_chosen: 0,
            // One generator per direction, so one direction's decisions do
            // not depend on how its packets interleave with the other's.
            rx: FaultyPath::new(config.rx_path(), config.seed),
            tx: FaultyPath::new(config.tx_path(), config.seed ^ 0x5851_f42d_4c95_7f2d),
            drop_tx: config.drop_tx,
            drop_rx: config.drop_rx,
        }
    }

    /// What was injected so far.
    pub fn stats(&self) -> FaultStats {
        let (rx, tx) = (self.rx.counters(), self.tx.counters());
        FaultStats {
            tx_dropped: self.tx_chosen + tx.lost,
            rx_dropped: self.rx_chosen + rx.lost,
            tx_duplicated: tx.duplicated,
            rx_duplicated: rx.duplicated,
            tx_reordered: tx.reordered,
            rx_reordered: rx.reordered,
            tx_overflowed: tx.overflowed,
            rx_overflowed: rx.overflowed,
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// When the next held packet (either way) is due.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.rx.next_due(), self.tx.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends the outgoing packets due at `now`.
    fn flush_tx(&mut self, now: Instant) -> io::Result<()> {
        while let Some((packet, meta)) = self.tx.pop_due(now) {
            self.inner.send_with(&packet, meta)?;
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
        buf.copy_within(r.start..r.start + r.len, 0);
        if r.meta.checksum_trusted {
            crate::wire::gso::complete_checksum(&mut buf[..r.len]);
        }
        Ok(Some(r.len))
    }

    /// The next packet whose delay is over, with what the inner device
    /// said about it. Reads everything the inner device has ready (until
    /// the delay queue is full), so each packet's delay starts when it
    /// arrives.
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let now = Instant::now();
        self.flush_tx(now)?;
        loop {
            if let Some((packet, meta)) = self.rx.pop_due(now) {
                let n = packet.len().min(buf.len());
                buf[..n].copy_from_slice(&packet[..n]);
                return Ok(Some(Received {
                    start: 0,
                    len: n,
                    meta,
                }));
            }
            if self.rx.is_full() {
                // The rest waits in the inner device's queue.
                return Ok(None);
            }
            let Some(r) = self.inner.recv_with(buf)? else {
                return Ok(None);
            };
            self.rx_count += 1;
            if self.drop_rx.contains(&self.rx_count) {
                self.rx_chosen += 1;
                log::info!("fault: dropped incoming packet #{}", self.rx_count);
                continue;
            }
            let fate = self.rx.decide(now);
            if fate.copies == 0 {
                log::trace!("fault: lost incoming packet #{}", self.rx_count);
                continue;
            }
            let packet = &buf[r.start..r.start + r.len];
            if fate.due <= now && self.rx.is_empty() {
                // Due now with nothing ahead of it: straight through.
                self.rx.hold(fate.due, fate.copies - 1, packet, r.meta);
                return Ok(Some(r));
            }
            self.rx.hold(fate.due, fate.copies, packet, r.meta);
        }
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.send_with(packet, TxMeta::default())
    }

    /// Counts (a super-segment is one packet here), drops, duplicates or
    /// holds as configured, else passes the packet on with its metadata.
    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        let now = Instant::now();
        self.flush_tx(now)?;
        self.tx_count += 1;
        if self.drop_tx.contains(&self.tx_count) {
            self.tx_chosen += 1;
            log::info!("fault: dropped outgoing packet #{}", self.tx_count);
            return Ok(());
        }
        let fate = self.tx.decide(now);
        if fate.copies == 0 {
            log::trace!("fault: lost outgoing packet #{}", self.tx_count);
            return Ok(());
        }
        if fate.due <= now && self.tx.is_empty() {
            for _ in 0..fate.copies {
                self.inner.send_with(packet, meta)?;
            }
            return Ok(());
        }
        self.tx.hold(fate.due, fate.copies, packet, meta);
        Ok(())
    }

    fn offload(&self) -> bool {
        self.inner.offload()
    }

    /// Sleeps no longer than the next held packet (either way) needs, and
    /// sends the outgoing ones due by then.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        self.flush_tx(now)?;
        let timeout = match self.next_due() {
            Some(due) => {
                let left = due.saturating_duration_since(now);
                if left.is_zero() {
                    return Ok(());
                }
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
        };
        self.inner.wait(timeout)?;
        self.flush_tx(Instant::now())
    }

    fn waker(&self) -> Waker {
        self.inner.waker()
    }

    fn counters(&self) -> super::DeviceCounters {
        let mut counters = self.inner.counters();
        counters.faults = Some(self.stats());
        counters
    }
}
#[cfg(test)]
mod tests {
    use super::path::MAX_HELD;
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
                rx_dropped: 1,
                ..FaultStats::default()
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

    #[test]
    fn random_loss_of_incoming_packets_is_seeded_too() {
        let run = |seed| {
            let (a, peer) = memory::link_with_capacity(1500, 20_000);
            let mut dev = FaultInjector::new(
                a,
                FaultConfig {
                    rx_loss_ppm: 50_000,
                    seed,
                    ..FaultConfig::default()
                },
            );
            for i in 0..10_000u32 {
                peer.send_packet(i.to_be_bytes().to_vec());
            }
            let mut buf = vec![0u8; 65_536];
            let mut got = Vec::new();
            while let Some(n) = dev.recv(&mut buf).unwrap() {
                got.push(buf[..n].to_vec());
            }
            (got, dev.stats().rx_dropped)
        };
        let (first, lost) = run(7);
        assert!((400..=600).contains(&lost), "lost {lost} of 10,000 at 5 %");
        assert_eq!(first.len() as u64 + lost, 10_000);
        assert_eq!(run(7).0, first);
        assert_ne!(run(8).0, first);
    }

    /// Sends 1, 2 through a 50 ms outgoing delay; checks that neither
    /// leaves before its own send time plus the delay, and that `wait`
    /// (nothing else happening) lets both out on time. (Each packet is
    /// due 50 ms after its own send: the second a little after the first.)
    #[test]
    fn a_delayed_outgoing_packet_leaves_at_its_time_even_if_nothing_else_happens() {
        let (a, peer) = memory::link(1500);
        let delay = Duration::from_millis(50);
        let mut dev = FaultInjector::new(
            a,
            FaultConfig {
                tx_delay: delay,
                ..FaultConfig::default()
            },
        );
        let start = Instant::now();
        dev.send(&[1]).unwrap();
        let second = Instant::now();
        dev.send(&[2]).unwrap();
        assert_eq!(peer.try_recv_packet(), None, "held back at first");
        assert!(dev.next_due().is_some_and(|t| t >= start + delay));
        let earliest = [start + delay, second + delay];
        let mut sent: Vec<Vec<u8>> = Vec::new();
        // The caller's own timeout is longer: the injector wakes itself. A
        // spurious early return is allowed; an early packet is not.
        while sent.len() < 2 && start.elapsed() < Duration::from_secs(1) {
            dev.wait(Some(Duration::from_secs(5))).unwrap();
            while let Some(p) = peer.try_recv_packet() {
                let now = Instant::now();
                let k = sent.len();
                assert!(now >= earliest[k], "packet {} sent before its time", k + 1);
                sent.push(p);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(1), "woke on time");
        assert_eq!(sent, vec![vec![1], vec![2]]);
    }

    #[test]
    fn duplication_delivers_copies_each_way() {
        let (a, peer) = memory::link(1500);
        let mut dev = FaultInjector::new(
            a,
            FaultConfig {
                duplicate_ppm: 1_000_000,
                ..FaultConfig::default()
            },
        );
        dev.send(&[1]).unwrap();
        dev.send(&[2]).unwrap();
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| peer.try_recv_packet()).collect();
        assert_eq!(sent, vec![vec![1], vec![1], vec![2], vec![2]]);
        peer.send_packet(vec![3]);
        peer.send_packet(vec![4]);
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        while let Some(n) = dev.recv(&mut buf).unwrap() {
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, vec![vec![3], vec![3], vec![4], vec![4]]);
        let s = dev.stats();
        assert_eq!((s.tx_duplicated, s.rx_duplicated), (2, 2));
    }

    #[test]
    fn reordering_lets_some_outgoing_packets_overtake() {
        let (a, peer) = memory::link(1500);
        let mut dev = FaultInjector::new(
            a,
            FaultConfig {
                tx_delay: Duration::from_millis(20),
                reorder_ppm: 300_000,
                seed: 2,
                ..FaultConfig::default()
            },
        );
        for i in 0..40u8 {
            dev.send(&[i]).unwrap();
        }
        let start = Instant::now();
        let mut sent = Vec::new();
        while sent.len() < 40 && start.elapsed() < Duration::from_secs(5) {
            dev.wait(Some(Duration::from_secs(1))).unwrap();
            sent.extend(std::iter::from_fn(|| peer.try_recv_packet()).map(|p| p[0]));
        }
        let mut sorted = sent.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<u8>>(), "all sent once");
        assert_ne!(sent, sorted, "not in order");
        assert!(dev.stats().tx_reordered > 0);
    }

    #[test]
    fn a_full_delay_queue_bounds_memory_each_way() {
        let n = MAX_HELD + 10;
        let (a, peer) = memory::link_with_capacity(1500, n);
        let mut dev = FaultInjector::new(
            a,
            FaultConfig {
                rx_delay: Duration::from_secs(60),
                tx_delay: Duration::from_secs(60),
                ..FaultConfig::default()
            },
        );
        for _ in 0..n {
            dev.send(&[0; 64]).unwrap();
            peer.send_packet(vec![0; 64]);
        }
        let mut buf = [0u8; 128];
        assert_eq!(dev.recv(&mut buf).unwrap(), None);
        assert_eq!((dev.tx.len(), dev.rx.len()), (MAX_HELD, MAX_HELD));
        assert_eq!(dev.stats().tx_overflowed, 10, "dropped beyond the bound");
        assert_eq!(dev.stats().rx_overflowed, 0, "left in the link's queue");
        assert_eq!(dev.rx_count, MAX_HELD as u64, "the rest left in the link");
        assert_eq!(peer.try_recv_packet(), None);
    }
}
