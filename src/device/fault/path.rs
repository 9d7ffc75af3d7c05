//! One direction of a faulty path: a seeded, netem-like model that decides
//! each packet's fate (lost, duplicated, delayed, sent ahead of the others)
//! and holds it until it is due.
//!
//! Sans-IO: the caller passes `now` in and moves the bytes; the model never
//! reads a clock, so a test drives it with made-up instants.
//!
//! The choices, beside Linux's netem:
//! - **Loss** first: a lost packet is neither duplicated nor delayed.
//! - **Duplication**: a surviving packet is sent twice, the copy right
//!   after the original (same due time).
//! - **Delay and jitter**: each packet is held `delay ± jitter` (uniform),
//!   but never released before a packet that came earlier: jitter changes
//!   the spacing, not the order, as netem does when it is given a rate (and
//!   as a real link does). Reordering is its own fault.
//! - **Reordering**: with its probability a packet skips the delay (due at
//!   once), overtaking those held, as netem's `reorder` does. It needs a
//!   delay to overtake anything.
//! - **Bounded**: at most [`MAX_HELD`] packets and [`MAX_HELD_BYTES`]
//!   bytes are held; beyond that a packet is refused (the caller drops it,
//!   or leaves it in the kernel's queue) and counted.
//!
//! Decisions use one xorshift64* generator per direction, drawn in a fixed
//! order per packet, so the same seed makes the same decisions for the
//! same sequence of packets, whatever the timing.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Most packets held at once in one direction.
pub const MAX_HELD: usize = 4096;
/// Most bytes held at once in one direction (4096 full 64 KiB
/// super-segments would be 256 MiB).
pub const MAX_HELD_BYTES: usize = 16 << 20;

/// The faults of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathFaults {
    /// Base delay of every packet.
    pub delay: Duration,
    /// Each packet's delay varies uniformly within `delay ± jitter`
    /// (never below zero), order kept.
    pub jitter: Duration,
    /// Probability of losing a packet, in parts per million.
    pub loss_ppm: u32,
    /// Probability of sending a packet twice, in parts per million.
    pub duplicate_ppm: u32,
    /// Probability of a packet skipping the delay, in parts per million.
    pub reorder_ppm: u32,
}

/// What the model decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// How many copies go out: 0 (lost), 1, or 2 (duplicated).
    pub copies: usize,
    /// When they are due.
    pub due: Instant,
}

/// What one direction did, beside the packets it let through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// Packets lost at random.
    pub lost: u64,
    /// Packets sent twice.
    pub duplicated: u64,
    /// Packets that skipped the delay while others were held.
    pub reordered: u64,
    /// Packets (or copies) refused because the queue was full.
    pub overflowed: u64,
}

/// A packet held until it is due. Ordered by due time, then arrival.
#[derive(Debug)]
struct Held<M> {
    due: Instant,
    seq: u64,
    packet: Vec<u8>,
    meta: M,
}

impl<M> PartialEq for Held<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<M> Eq for Held<M> {}
impl<M> PartialOrd for Held<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Held<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// One direction of a faulty path; `M` is what travels with each packet
/// (the device's metadata).
#[derive(Debug)]
pub struct FaultyPath<M> {
    faults: PathFaults,
    /// xorshift64* state.
    rng: u64,
    held: BinaryHeap<Reverse<Held<M>>>,
    held_bytes: usize,
    seq: u64,
    /// The due time of the latest in-order packet: jitter never lets a
    /// later one out before it.
    last_due: Option<Instant>,
    counters: PathCounters,
}

impl<M: Copy> FaultyPath<M> {
    /// A direction with `faults`, its decisions seeded by `seed`.
    pub fn new(faults: PathFaults, seed: u64) -> FaultyPath<M> {
        FaultyPath {
            faults,
            rng: (seed ^ 0x9e37_79b9_7f4a_7c15) | 1,
            held: BinaryHeap::new(),
            held_bytes: 0,
            seq: 0,
            last_due: None,
            counters: PathCounters::default(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `ppm` in a million (draws nothing at 0).
    fn chance(&mut self, ppm: u32) -> bool {
        ppm != 0 && self.next_u64() % 1_000_000 < u64::from(ppm)
    }

    /// Decides the fate of the packet arriving at `now`.
    pub fn decide(&mut self, now: Instant) -> Fate {
        let f = self.faults;
        if self.chance(f.loss_ppm) {
            self.counters.lost += 1;
            return Fate {
                copies: 0,
                due: now,
            };
        }
        let copies = if self.chance(f.duplicate_ppm) {
            self.counters.duplicated += 1;
            2
        } else {
            1
        };
        if self.chance(f.reorder_ppm) {
            // Skips the delay; overtakes whatever in-order packet is held.
            if self.last_due.is_some_and(|t| t > now) {
                self.counters.reordered += 1;
            }
            return Fate { copies, due: now };
        }
        let mut delay = f.delay;
        if !f.jitter.is_zero() {
            let j = f.jitter.as_micros().min(u128::from(u32::MAX)) as u64;
            let r = self.next_u64() % (2 * j + 1);
            delay = if r >= j {
                delay + Duration::from_micros(r - j)
            } else {
                delay.saturating_sub(Duration::from_micros(j - r))
            };
        }
        let due = (now + delay).max(self.last_due.unwrap_or(now));
        self.last_due = Some(due);
        Fate { copies, due }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// True when the queue takes no more.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD || self.held_bytes >= MAX_HELD_BYTES
    }

    /// Packets held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds `copies` copies of `packet` until `due`; a copy that does not
    /// fit is counted and dropped.
    pub fn hold(&mut self, due: Instant, copies: usize, packet: &[u8], meta: M) {
        for _ in 0..copies {
            if self.is_full() {
                self.counters.overflowed += 1;
                continue;
            }
            self.seq += 1;
            self.held_bytes += packet.len();
            self.held.push(Reverse(Held {
                due,
                seq: self.seq,
                packet: packet.to_vec(),
                meta,
            }));
        }
    }

    /// The next packet due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Vec<u8>, M)> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(h) = self.held.pop()?;
        self.held_bytes -= h.packet.len();
        Some((h.packet, h.meta))
    }

    /// When the next held packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.due)
    }

    /// What this direction did so far.
    pub fn counters(&self) -> PathCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US100: Duration = Duration::from_micros(100);

    /// Sends `n` packets (their index as bytes) `gap` apart from `t0`,
    /// taking out what is due as time goes: (index, due - arrival), in
    /// the order they came out.
    fn run(path: &mut FaultyPath<()>, t0: Instant, n: u32, gap: Duration) -> Vec<(u32, Duration)> {
        let mut arrivals = Vec::new();
        let mut out = Vec::new();
        let mut last = t0;
        let mut take = |path: &mut FaultyPath<()>, arrivals: &[Instant], now: Instant| {
            while let Some(due) = path.next_due().filter(|&t| t <= now) {
                assert!(due >= last, "released in due order");
                last = due;
                let (p, ()) = path.pop_due(now).expect("due");
                let i = u32::from_be_bytes(p[..4].try_into().unwrap());
                out.push((i, due - arrivals[i as usize]));
            }
        };
        for i in 0..n {
            let now = t0 + gap * i;
            arrivals.push(now);
            let fate = path.decide(now);
            path.hold(fate.due, fate.copies, &i.to_be_bytes(), ());
            take(path, &arrivals, now);
        }
        take(path, &arrivals, t0 + gap * n + Duration::from_secs(3600));
        out
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let faults = PathFaults {
            delay: 10 * MS,
            jitter: 3 * MS,
            loss_ppm: 50_000,
            duplicate_ppm: 50_000,
            reorder_ppm: 50_000,
        };
        let t0 = Instant::now();
        let go = |seed| {
            let mut p = FaultyPath::new(faults, seed);
            let out = run(&mut p, t0, 10_000, US100);
            (out, p.counters())
        };
        let (first, c) = go(7);
        assert_eq!(go(7), (first.clone(), c), "same seed, same fates");
        assert_ne!(go(8).0, first, "another seed, other fates");
        for (what, n) in [
            ("lost", c.lost),
            ("duplicated", c.duplicated),
            ("reordered", c.reordered),
        ] {
            assert!((350..=650).contains(&n), "{n} of 10,000 {what} at 5 %");
        }
        assert_eq!(first.len() as u64, 10_000 - c.lost + c.duplicated);
    }

    #[test]
    fn a_packet_is_not_due_before_its_delay() {
        let t0 = Instant::now();
        let mut p = FaultyPath::new(
            PathFaults {
                delay: 10 * MS,
                ..PathFaults::default()
            },
            1,
        );
        let fate = p.decide(t0);
        assert_eq!(
            fate,
            Fate {
                copies: 1,
                due: t0 + 10 * MS
            }
        );
        p.hold(fate.due, fate.copies, b"x", ());
        assert_eq!(p.pop_due(t0 + 10 * MS - Duration::from_nanos(1)), None);
        assert_eq!(p.next_due(), Some(t0 + 10 * MS));
        assert_eq!(p.pop_due(t0 + 10 * MS), Some((b"x".to_vec(), ())));
        assert!(p.is_empty());
    }

    #[test]
    fn jitter_varies_the_delay_but_keeps_the_order() {
        let faults = PathFaults {
            delay: 10 * MS,
            jitter: 5 * MS,
            ..PathFaults::default()
        };
        let mut p = FaultyPath::new(faults, 3);
        // Packets further apart than the jitter: their delays spread over
        // `delay ± jitter`.
        let out = run(&mut p, Instant::now(), 2_000, 20 * MS);
        let least = out.iter().map(|&(_, d)| d).min().unwrap();
        let most = out.iter().map(|&(_, d)| d).max().unwrap();
        assert!(least < 6 * MS, "some packets early: {least:?}");
        assert!(most > 14 * MS, "some late: {most:?}");
        assert!(most <= 15 * MS, "{most:?}");
        // Closer together than the jitter: still in order (which pulls
        // the delays toward `delay + jitter`).
        let mut p = FaultyPath::new(faults, 3);
        let out = run(&mut p, Instant::now(), 2_000, MS);
        let order: Vec<u32> = out.iter().map(|&(i, _)| i).collect();
        assert_eq!(order, (0..2_000).collect::<Vec<_>>(), "in order");
    }

    #[test]
    fn reordering_sends_some_packets_ahead_of_earlier_ones() {
        let mut p = FaultyPath::new(
            PathFaults {
                delay: 10 * MS,
                reorder_ppm: 100_000,
                ..PathFaults::default()
            },
            5,
        );
        let out = run(&mut p, Instant::now(), 1_000, US100);
        let order: Vec<u32> = out.iter().map(|&(i, _)| i).collect();
        let overtakers = order.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtakers > 0, "some packet came out before an earlier one");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1_000).collect::<Vec<_>>(), "none lost");
        let skipped: Vec<u32> = out
            .iter()
            .filter(|(_, d)| d.is_zero())
            .map(|&(i, _)| i)
            .collect();
        assert!(
            (60..=140).contains(&skipped.len()),
            "{} of 1,000 at 10 %",
            skipped.len()
        );
        // Each overtook a held packet, unless it was the very first.
        let overtook = skipped.iter().filter(|&&i| i > 0).count() as u64;
        assert_eq!(p.counters().reordered, overtook);
    }

    #[test]
    fn duplication_sends_a_copy_right_after_the_original() {
        let mut p = FaultyPath::new(
            PathFaults {
                duplicate_ppm: 1_000_000,
                ..PathFaults::default()
            },
            1,
        );
        let order: Vec<u32> = run(&mut p, Instant::now(), 3, US100)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(order, vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(p.counters().duplicated, 3);
    }

    #[test]
    fn the_queue_is_bounded() {
        let t0 = Instant::now();
        let mut p = FaultyPath::new(
            PathFaults {
                delay: 1000 * MS,
                ..PathFaults::default()
            },
            1,
        );
        for _ in 0..MAX_HELD + 10 {
            let fate = p.decide(t0);
            p.hold(fate.due, fate.copies, &[0; 100], ());
        }
        assert_eq!(p.len(), MAX_HELD);
        assert_eq!(p.counters().overflowed, 10);
        let big = vec![0u8; 65_535];
        let mut p = FaultyPath::new(PathFaults::default(), 1);
        for _ in 0..1000 {
            p.hold(t0, 1, &big, ());
        }
        assert!(p.len() < 1000 && p.len() * big.len() <= MAX_HELD_BYTES + big.len());
        assert_eq!(p.counters().overflowed as usize, 1000 - p.len());
    }
}
