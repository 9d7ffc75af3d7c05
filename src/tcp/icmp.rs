//! ICMP errors about segments a connection sent (RFC 9293 §3.9.2.2,
//! MUST-54..56; RFC 1122 §4.2.3.9; RFC 5927; path-MTU discovery, RFC 1191).
//!
//! - A quoted sequence number outside SND.UNA..SND.MAX is ignored: a blind
//!   attacker cannot know it (RFC 5927 §4.1).
//! - Hard errors (protocol and port unreachable) abort a connection attempt
//!   in SYN-SENT with `ConnectionRefused`; in a synchronized state they are
//!   treated as soft (RFC 5927 §5.2).
//! - Soft errors (network and host unreachable, time exceeded, parameter
//!   problem) never abort (MUST-56); the last one is what the application
//!   sees if the connection finally times out (SHLD-25), instead of a bare
//!   `TimedOut`.
//! - Source Quench is ignored (RFC 6633).
//! - Our own link layer's "no neighbour answered" (TAP mode) fails a
//!   connection attempt with `HostUnreachable`, as on Linux; later it is a
//!   soft error.
//! - Fragmentation Needed lowers the connection's MSS to fit the next-hop
//!   MTU it reports (never below a floor) and resends what is in flight.

use crate::time::Instant;

use super::api::TcpError;
use super::conn::{Conn, Ctx};
use super::seq::SeqNum;
use super::state::State;

/// Smallest path MTU a Fragmentation Needed message can make us use (as
/// Linux's `min_pmtu`): a forged message cannot shrink segments to nothing.
pub const MIN_PMTU: u16 = 552;
/// IPv6's minimum link MTU (RFC 8200 §5): a Packet Too Big reporting less
/// is taken as this (RFC 8201 §4).
pub const MIN_MTU6: u16 = 1280;

/// What an ICMP error says about a segment we sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Protocol or port unreachable.
    Hard,
    /// Network unreachable.
    NetUnreachable,
    /// Host unreachable (or any other unreachable code but the above).
    HostUnreachable,
    /// Time exceeded or parameter problem: the path is bad for now.
    Transient,
    /// Fragmentation needed and DF set, with the next-hop MTU (0 if the
    /// router did not say).
    FragmentationNeeded(u16),
    /// Not from the network: our own link layer found no neighbour at the
    /// destination (ARP never answered, TAP mode).
    NeighbourUnreachable,
}

impl Conn {
    /// Handles an ICMP error whose quote carries sequence number `seq`.
    /// Returns false when it was ignored (out of window, or nothing to do).
    pub fn on_icmp(
        &mut self,
        now: Instant,
        seq: SeqNum,
        err: IcmpError,
        link_mtu: usize,
        cx: &mut Ctx<'_>,
    ) -> bool {
        // RFC 5927 §4.1: only about data in flight.
        let in_flight = seq >= self.snd.una && seq < self.snd.max.max(self.snd.una + 1);
        if !in_flight || matches!(self.state, State::Closed | State::Listen | State::TimeWait) {
            return false;
        }
        match err {
            IcmpError::Hard if self.state == State::SynSent => {
                // RFC 1122 §4.2.3.9: protocol or port unreachable SHOULD
                // abort the connection attempt.
                log::debug!(
                    "{} -> {} ICMP unreachable: connection refused",
                    self.remote,
                    self.local
                );
                self.terminate(Some(TcpError::ConnectionRefused), cx);
            }
            IcmpError::NeighbourUnreachable if self.state == State::SynSent => {
                // Not a message a stranger can forge: our own ARP found no
                // one at the address. Like Linux (EHOSTUNREACH on a failed
                // neighbour), the attempt fails at once instead of after
                // every SYN retry.
                log::debug!(
                    "{} -> {} no ARP answer: host unreachable",
                    self.remote,
                    self.local
                );
                self.terminate(Some(TcpError::HostUnreachable), cx);
            }
            IcmpError::Hard | IcmpError::HostUnreachable | IcmpError::NeighbourUnreachable => {
                self.soft_error = Some(TcpError::HostUnreachable);
            }
            IcmpError::NetUnreachable => self.soft_error = Some(TcpError::NetworkUnreachable),
            IcmpError::Transient => self.soft_error = Some(TcpError::HostUnreachable),
            IcmpError::FragmentationNeeded(mtu) => {
                return self.lower_mss(now, mtu, link_mtu, cx);
            }
        }
        true
    }

    /// RFC 1191 §6.3: use the smaller MTU the path reports and resend.
    fn lower_mss(&mut self, now: Instant, mtu: u16, link_mtu: usize, cx: &mut Ctx<'_>) -> bool {
        // A message without the next-hop MTU (RFC 1191 §5) or a silly one:
        // drop to the floor; never below it, never above what we use.
        // RFC 8201 §4 over IPv6: a reported MTU below the minimum link
        // MTU of 1280 (RFC 8200 §5) is taken as 1280; the headers are 20
        // bytes longer.
        let (min, headers) = if self.local.is_ipv6() {
            (MIN_MTU6, 60)
        } else {
            (MIN_PMTU, 40)
        };
        let floor = min.min(u16::try_from(link_mtu).unwrap_or(u16::MAX));
        let mtu = if mtu < 68 { floor } else { mtu.max(floor) };
        let mss = u32::from(mtu).saturating_sub(headers).max(8);
        if mss >= self.snd.mss {
            return false;
        }
        log::debug!(
            "{} -> {} path MTU {mtu}: MSS {} -> {mss}",
            self.remote,
            self.local,
            self.snd.mss
        );
        self.snd.mss = mss;
        self.cc.set_mss(mss);
        cx.out.stats.pmtu_reductions += 1;
        // The segments in flight were too big: send them again, smaller
        // (a retransmission, but not a congestion signal).
        if self.state.is_synchronized() && self.flight() > 0 {
            self.snd.nxt = self.snd.una;
            self.rtt_probe = None;
            self.dispatch(now, cx);
        }
        true
    }
}
