//! The neighbour cache: which link address each on-link neighbour has,
//! and the packets waiting for an answer.
//!
//! Generic over the protocol address, so ARP (IPv4) uses it today and
//! neighbour discovery (IPv6) can use it later. Sans-IO: every call takes
//! `now`; what to send is returned as [`Action`]s, and [`NeighbourCache::poll_at`]
//! says when to call [`NeighbourCache::poll`] next.
//!
//! Life of an entry (close to Linux's INCOMPLETE, REACHABLE, STALE/PROBE
//! and FAILED states):
//! - a packet for an unknown neighbour creates an *incomplete* entry: a
//!   broadcast request goes out, the packet waits (at most
//!   [`NeighbourConfig::queue_len`] per neighbour: RFC 1122 §2.3.2.2 asks
//!   to keep at least the latest, so the oldest is dropped), and the
//!   request is repeated every [`NeighbourConfig::retransmit`] up to
//!   [`NeighbourConfig::max_probes`] times (RFC 1122 §2.3.2.1 bounds the
//!   rate of requests per destination); then the entry fails and its
//!   waiting packets are handed back as unreachable;
//! - an answer makes it *reachable* for [`NeighbourConfig::reachable`]
//!   (RFC 1122 §2.3.2.1: cache entries time out, so a neighbour that
//!   changed its address is found again);
//! - used after that, it is kept in use while a unicast request re-checks
//!   it (*probe*; RFC 1122 §2.3.2.1 (4), "Unicast Poll"); no answer after
//!   the same number of tries removes it;
//! - the cache holds at most [`NeighbourConfig::capacity`] entries: a new
//!   one evicts the least recently confirmed entry that is not incomplete
//!   (or, if all are, the oldest incomplete one).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use super::ethernet::MacAddr;
use crate::time::Instant;

/// The cache's limits and timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourConfig {
    /// Most entries kept.
    pub capacity: usize,
    /// How long an answer is trusted before the entry is re-checked.
    pub reachable: Duration,
    /// Time between two requests for the same neighbour.
    pub retransmit: Duration,
    /// Requests sent before giving up on a neighbour.
    pub max_probes: u32,
    /// Packets kept per unresolved neighbour.
    pub queue_len: usize,
}

impl Default for NeighbourConfig {
    /// Linux's defaults: 30 s reachable, 1 s between requests, 3 tries,
    /// and a few packets waiting.
    fn default() -> NeighbourConfig {
        NeighbourConfig {
            capacity: 256,
            reachable: Duration::from_secs(30),
            retransmit: Duration::from_secs(1),
            max_probes: 3,
            queue_len: 3,
        }
    }
}

/// What the cache asks the link layer to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<A> {
    /// Send a request for `A`: broadcast when `to` is `None`, else unicast
    /// to the address the entry holds (a re-check).
    Solicit {
        /// The neighbour whose link address is wanted.
        addr: A,
        /// Where to send the request.
        to: Option<MacAddr>,
    },
    /// Send these packets, which waited for `A`, to `mac`.
    Release {
        /// The neighbour's link address.
        mac: MacAddr,
        /// The waiting packets, oldest first.
        packets: Vec<Vec<u8>>,
    },
    /// `A` did not answer: these waiting packets cannot be delivered.
    Unreachable {
        /// The neighbour that did not answer.
        addr: A,
        /// The packets that waited for it.
        packets: Vec<Vec<u8>>,
    },
}

/// Where an outgoing packet stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Send it to this address now.
    Known(MacAddr),
    /// It waits for an answer (the cache keeps it).
    Queued,
    /// It waits, and the oldest packet waiting was dropped to make room.
    QueuedDroppedOldest,
}

#[derive(Debug)]
enum State {
    /// Asked, no answer yet.
    Incomplete {
        probes: u32,
        next: Instant,
        queue: VecDeque<Vec<u8>>,
    },
    /// Answered at `confirmed`.
    Reachable { mac: MacAddr, confirmed: Instant },
    /// Used after its answer aged; being re-checked with unicast requests.
    Probe {
        mac: MacAddr,
        probes: u32,
        next: Instant,
        confirmed: Instant,
    },
}

/// A bounded cache of neighbours keyed by protocol address `A`.
#[derive(Debug)]
pub struct NeighbourCache<A> {
    config: NeighbourConfig,
    entries: HashMap<A, State>,
}

impl<A: Copy + Eq + Hash> NeighbourCache<A> {
    /// An empty cache.
    pub fn new(config: NeighbourConfig) -> NeighbourCache<A> {
        NeighbourCache {
            config,
            entries: HashMap::new(),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The link address held for `addr`, if answered (reachable or being
    /// re-checked).
    pub fn get(&self, addr: A) -> Option<MacAddr> {
        match self.entries.get(&addr)? {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(*mac),
            State::Incomplete { .. } => None,
        }
    }

    /// Whether `addr` has an entry (in any state).
    pub fn contains(&self, addr: A) -> bool {
        self.entries.contains_key(&addr)
    }

    /// Where a packet for `addr` goes. An unknown neighbour gets an entry
    /// and a broadcast request (pushed to `actions`), and `packet` waits;
    /// an aged entry starts a unicast re-check and is used meanwhile.
    pub fn resolve(
        &mut self,
        now: Instant,
        addr: A,
        packet: &[u8],
        actions: &mut Vec<Action<A>>,
    ) -> Resolution {
        let cfg = self.config;
        match self.entries.get_mut(&addr) {
            Some(State::Reachable { mac, confirmed }) => {
                let mac = *mac;
                // RFC 1122 §2.3.2.1: an entry times out; (4) "Unicast Poll"
                // re-checks it while it stays in use.
                if now.saturating_duration_since(*confirmed) >= cfg.reachable {
                    let confirmed = *confirmed;
                    self.entries.insert(
                        addr,
                        State::Probe {
                            mac,
                            probes: 1,
                            next: now + cfg.retransmit,
                            confirmed,
                        },
                    );
                    actions.push(Action::Solicit {
                        addr,
                        to: Some(mac),
                    });
                }
                Resolution::Known(mac)
            }
            Some(State::Probe { mac, .. }) => Resolution::Known(*mac),
            Some(State::Incomplete { queue, .. }) => {
                let mut dropped = false;
                // RFC 1122 §2.3.2.2: keep the latest; the oldest goes.
                while queue.len() >= cfg.queue_len.max(1) {
                    queue.pop_front();
                    dropped = true;
                }
                queue.push_back(packet.to_vec());
                if dropped {
                    Resolution::QueuedDroppedOldest
                } else {
                    Resolution::Queued
                }
            }
            None => {
                let mut evicted = Vec::new();
                self.make_room(&mut evicted);
                actions.extend(evicted);
                let mut queue = VecDeque::with_capacity(cfg.queue_len);
                queue.push_back(packet.to_vec());
                self.entries.insert(
                    addr,
                    State::Incomplete {
                        probes: 1,
                        next: now + cfg.retransmit,
                        queue,
                    },
                );
                actions.push(Action::Solicit { addr, to: None });
                Resolution::Queued
            }
        }
    }

    /// `addr` is at `mac` (an answer, or a request that named it). With
    /// `create` false only an existing entry is updated (RFC 826's merge
    /// flag); with `create` true a new one is made. Packets that waited
    /// for `addr` are released.
    pub fn confirm(
        &mut self,
        now: Instant,
        addr: A,
        mac: MacAddr,
        create: bool,
        actions: &mut Vec<Action<A>>,
    ) {
        if !create && !self.entries.contains_key(&addr) {
            return;
        }
        if !self.entries.contains_key(&addr) {
            let mut evicted = Vec::new();
            self.make_room(&mut evicted);
            actions.extend(evicted);
        }
        let previous = self.entries.insert(
            addr,
            State::Reachable {
                mac,
                confirmed: now,
            },
        );
        if let Some(State::Incomplete { queue, .. }) = previous {
            if !queue.is_empty() {
                actions.push(Action::Release {
                    mac,
                    packets: queue.into(),
                });
            }
        }
    }

    /// Sends the requests that are due and gives up on the neighbours
    /// that did not answer.
    pub fn poll(&mut self, now: Instant, actions: &mut Vec<Action<A>>) {
        let cfg = self.config;
        let mut failed = Vec::new();
        for (addr, state) in self.entries.iter_mut() {
            match state {
                State::Incomplete { probes, next, .. } if *next <= now => {
                    if *probes >= cfg.max_probes {
                        failed.push(*addr);
                    } else {
                        // RFC 1122 §2.3.2.1: at most one request per
                        // destination per `retransmit` (1 s recommended).
                        *probes += 1;
                        *next = now + cfg.retransmit;
                        actions.push(Action::Solicit {
                            addr: *addr,
                            to: None,
                        });
                    }
                }
                State::Probe {
                    mac, probes, next, ..
                } if *next <= now => {
                    if *probes >= cfg.max_probes {
                        failed.push(*addr);
                    } else {
                        *probes += 1;
                        *next = now + cfg.retransmit;
                        actions.push(Action::Solicit {
                            addr: *addr,
                            to: Some(*mac),
                        });
                    }
                }
                _ => {}
            }
        }
        for addr in failed {
            if let Some(State::Incomplete { queue, .. }) = self.entries.remove(&addr) {
                actions.push(Action::Unreachable {
                    addr,
                    packets: queue.into(),
                });
            }
        }
    }

    /// When [`NeighbourCache::poll`] has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|s| match s {
                State::Incomplete { next, .. } | State::Probe { next, .. } => Some(*next),
                State::Reachable { .. } => None,
            })
            .min()
    }

    /// Evicts one entry if the cache is full: the least recently confirmed
    /// answered one, else the incomplete one asked the longest ago (its
    /// packets are reported unreachable).
    fn make_room(&mut self, actions: &mut Vec<Action<A>>) {
        if self.entries.len() < self.config.capacity.max(1) {
            return;
        }
        let answered = self
            .entries
            .iter()
            .filter_map(|(a, s)| match s {
                State::Reachable { confirmed, .. } | State::Probe { confirmed, .. } => {
                    Some((*confirmed, *a))
                }
                State::Incomplete { .. } => None,
            })
            .min_by_key(|(t, _)| *t)
            .map(|(_, a)| a);
        let victim = answered.or_else(|| {
            self.entries
                .iter()
                .filter_map(|(a, s)| match s {
                    State::Incomplete { next, .. } => Some((*next, *a)),
                    _ => None,
                })
                .min_by_key(|(t, _)| *t)
                .map(|(_, a)| a)
        });
        if let Some(addr) = victim {
            if let Some(State::Incomplete { queue, .. }) = self.entries.remove(&addr) {
                actions.push(Action::Unreachable {
                    addr,
                    packets: queue.into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn cache() -> NeighbourCache<Ipv4Addr> {
        NeighbourCache::new(NeighbourConfig::default())
    }

    #[test]
    fn unknown_neighbour_is_asked_and_its_packet_released_on_answer() {
        let mut c = cache();
        let mut acts = Vec::new();
        assert_eq!(c.resolve(at(0), PEER, b"p1", &mut acts), Resolution::Queued);
        assert_eq!(
            acts,
            vec![Action::Solicit {
                addr: PEER,
                to: None
            }]
        );
        acts.clear();
        assert_eq!(c.resolve(at(1), PEER, b"p2", &mut acts), Resolution::Queued);
        assert!(acts.is_empty(), "one request per neighbour, not per packet");
        c.confirm(at(5), PEER, MAC, false, &mut acts);
        assert_eq!(
            acts,
            vec![Action::Release {
                mac: MAC,
                packets: vec![b"p1".to_vec(), b"p2".to_vec()]
            }]
        );
        assert_eq!(
            c.resolve(at(6), PEER, b"p3", &mut Vec::new()),
            Resolution::Known(MAC)
        );
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn requests_are_retried_then_waiting_packets_are_unreachable() {
        let mut c = cache();
        let mut acts = Vec::new();
        c.resolve(at(0), PEER, b"syn", &mut acts);
        acts.clear();
        assert_eq!(c.poll_at(), Some(at(1000)));
        c.poll(at(999), &mut acts);
        assert!(acts.is_empty());
        c.poll(at(1000), &mut acts);
        c.poll(at(2000), &mut acts);
        assert_eq!(acts.len(), 2, "{acts:?}");
        assert!(acts.iter().all(|a| *a
            == Action::Solicit {
                addr: PEER,
                to: None
            }));
        acts.clear();
        c.poll(at(3000), &mut acts);
        assert_eq!(
            acts,
            vec![Action::Unreachable {
                addr: PEER,
                packets: vec![b"syn".to_vec()]
            }]
        );
        assert!(c.is_empty());
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn the_queue_per_neighbour_is_bounded_keeping_the_latest() {
        let mut c = cache();
        let mut acts = Vec::new();
        for i in 0..3u8 {
            assert_eq!(c.resolve(at(0), PEER, &[i], &mut acts), Resolution::Queued);
        }
        assert_eq!(
            c.resolve(at(0), PEER, &[3], &mut acts),
            Resolution::QueuedDroppedOldest
        );
        acts.clear();
        c.confirm(at(1), PEER, MAC, false, &mut acts);
        assert_eq!(
            acts,
            vec![Action::Release {
                mac: MAC,
                packets: vec![vec![1], vec![2], vec![3]]
            }]
        );
    }

    #[test]
    fn an_aged_entry_is_rechecked_by_unicast_and_removed_if_silent() {
        let mut c = cache();
        let mut acts = Vec::new();
        c.confirm(at(0), PEER, MAC, true, &mut acts);
        assert!(acts.is_empty());
        assert_eq!(
            c.resolve(at(29_999), PEER, b"x", &mut acts),
            Resolution::Known(MAC)
        );
        assert!(acts.is_empty(), "still fresh");
        assert_eq!(
            c.resolve(at(30_000), PEER, b"x", &mut acts),
            Resolution::Known(MAC)
        );
        assert_eq!(
            acts,
            vec![Action::Solicit {
                addr: PEER,
                to: Some(MAC)
            }]
        );
        acts.clear();
        c.poll(at(31_000), &mut acts);
        c.poll(at(32_000), &mut acts);
        assert_eq!(acts.len(), 2);
        acts.clear();
        c.poll(at(33_000), &mut acts);
        assert!(acts.is_empty(), "nothing was waiting: {acts:?}");
        assert!(!c.contains(PEER), "aged out");
        // An answer during the re-check keeps it.
        c.confirm(at(40_000), PEER, MAC, true, &mut acts);
        c.resolve(at(70_000), PEER, b"x", &mut acts);
        c.confirm(at(70_500), PEER, MAC, false, &mut acts);
        c.poll(at(80_000), &mut acts);
        assert_eq!(c.get(PEER), Some(MAC));
    }

    #[test]
    fn merge_only_updates_known_entries() {
        let mut c = cache();
        let mut acts = Vec::new();
        c.confirm(at(0), PEER, MAC, false, &mut acts);
        assert!(!c.contains(PEER));
        c.confirm(at(0), PEER, MAC, true, &mut acts);
        let moved = MacAddr([0x02, 0, 0, 0, 0, 9]);
        c.confirm(at(1), PEER, moved, false, &mut acts);
        assert_eq!(c.get(PEER), Some(moved));
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest_answer() {
        let mut c = NeighbourCache::new(NeighbourConfig {
            capacity: 4,
            ..NeighbourConfig::default()
        });
        let mut acts = Vec::new();
        for i in 0..4u8 {
            c.confirm(
                at(u64::from(i)),
                Ipv4Addr::new(10, 0, 0, 10 + i),
                MAC,
                true,
                &mut acts,
            );
        }
        c.resolve(at(10), Ipv4Addr::new(10, 0, 0, 50), b"p", &mut acts);
        assert_eq!(c.len(), 4);
        assert!(!c.contains(Ipv4Addr::new(10, 0, 0, 10)), "the oldest went");
        assert!(c.contains(Ipv4Addr::new(10, 0, 0, 50)));
        // All incomplete: the oldest request goes, its packets unreachable.
        let mut c = NeighbourCache::new(NeighbourConfig {
            capacity: 2,
            ..NeighbourConfig::default()
        });
        for i in 0..3u8 {
            acts.clear();
            c.resolve(
                at(u64::from(i)),
                Ipv4Addr::new(10, 0, 0, 20 + i),
                &[i],
                &mut acts,
            );
        }
        assert_eq!(c.len(), 2);
        assert!(acts.contains(&Action::Unreachable {
            addr: Ipv4Addr::new(10, 0, 0, 20),
            packets: vec![vec![0]]
        }));
    }
}
