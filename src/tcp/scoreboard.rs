//! The data sender's SACK scoreboard (RFC 2018 §3) and the questions RFC
//! 6675 §4 asks of it: `IsLost`, the bytes still in the network (`SetPipe`)
//! and the holes `NextSeg` walks.
//!
//! The scoreboard holds the sequence ranges the peer reported holding above
//! SND.UNA, sorted and merged. It never holds more than [`MAX_RANGES`]: a
//! peer that reports more holes loses the highest ones from the board,
//! which only makes the sender resend data the peer already has.

use super::seq::SeqNum;

/// RFC 6675 §2 DupThresh: the segments (or duplicate ACKs) past a hole
/// that make it lost.
pub(crate) const DUP_THRESH: u32 = 3;

/// Most ranges kept: bounded memory whatever the peer reports.
pub(crate) const MAX_RANGES: usize = 64;

/// SACKed ranges `[start, end)` above SND.UNA, ascending and disjoint.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scoreboard {
    ranges: Vec<(SeqNum, SeqNum)>,
    /// Bytes in `ranges`.
    sacked: u32,
}

impl Scoreboard {
    /// Nothing SACKed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Forgets everything (the peer may have reneged: RFC 2018 §8).
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.sacked = 0;
    }

    /// The SACKed ranges, ascending.
    pub fn ranges(&self) -> &[(SeqNum, SeqNum)] {
        &self.ranges
    }

    /// Bytes SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// Takes in an ACK with cumulative point `una` for data sent up to
    /// `max` and its SACK `blocks`; returns the bytes newly SACKed. Blocks
    /// not wholly inside `(una, max]` are left out: a D-SACK block below
    /// `una` (RFC 2883 §4) and anything the peer cannot hold.
    pub fn on_ack(&mut self, una: SeqNum, max: SeqNum, blocks: &[(u32, u32)]) -> u32 {
        self.advance(una);
        let before = self.sacked;
        for &(left, right) in blocks {
            let (left, right) = (SeqNum(left), SeqNum(right));
            if left <= una || right > max || right <= left {
                continue;
            }
            self.insert(left, right);
        }
        self.sacked.saturating_sub(before)
    }

    /// Drops what the cumulative ACK `una` covers.
    fn advance(&mut self, una: SeqNum) {
        let covered = self.ranges.iter().take_while(|r| r.1 <= una).count();
        self.ranges.drain(..covered);
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < una {
                first.0 = una;
            }
        }
        self.recount();
    }

    /// Adds `[left, right)`, merging with what it touches.
    fn insert(&mut self, mut left: SeqNum, mut right: SeqNum) {
        let first = self.ranges.iter().position(|r| r.1 >= left);
        let Some(first) = first else {
            self.ranges.push((left, right));
            self.bound();
            return;
        };
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].0 <= right {
            left = left.min(self.ranges[last].0);
            right = right.max(self.ranges[last].1);
            last += 1;
        }
        self.ranges.splice(first..last, [(left, right)]);
        self.bound();
    }

    fn bound(&mut self) {
        self.ranges.truncate(MAX_RANGES);
        self.recount();
    }

    fn recount(&mut self) {
        self.sacked = self.ranges.iter().map(|&(s, e)| e - s).sum();
    }

    /// The end of the SACKed range holding `seq`, if it is SACKed.
    pub fn sacked_at(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges
            .iter()
            .find(|&&(s, e)| s <= seq && seq < e)
            .map(|r| r.1)
    }

    /// Where the next SACKed range above `seq` starts, if any.
    pub fn next_sacked(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges.iter().find(|r| r.0 > seq).map(|r| r.0)
    }

    /// Bytes SACKed below `seq` (and above SND.UNA).
    pub fn sacked_below(&self, seq: SeqNum) -> u32 {
        self.ranges
            .iter()
            .take_while(|r| r.0 < seq)
            .map(|&(s, e)| e.min(seq) - s)
            .sum()
    }

    /// RFC 6675 §4 IsLost(seq): DupThresh discontiguous SACKed ranges, or
    /// more than (DupThresh - 1) × SMSS SACKed bytes, lie above `seq`.
    pub fn is_lost(&self, seq: SeqNum, mss: u32) -> bool {
        let above = self.ranges.iter().filter(|r| r.0 > seq);
        let (n, bytes) = above.fold((0u32, 0u32), |(n, b), &(s, e)| (n + 1, b + (e - s)));
        n >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss
    }

    /// RFC 6675 §4 SetPipe: the bytes between `una` and `max` still in the
    /// network. An unSACKed byte counts once unless it is lost (IsLost, or
    /// `lost` says so of its hole: RACK's verdict), and once more if it was
    /// retransmitted (below `high_rxt`), unless RACK found that
    /// retransmission lost too (RFC 8985 §6.2; Linux's `tcp_mark_skb_lost`
    /// takes it out of `retrans_out`).
    ///
    /// One pass over the holes and ranges: `lost` is asked about each
    /// hole's first byte in ascending order, and IsLost's count of the
    /// ranges above a hole comes from those passed so far (the sender asks
    /// for pipe for every segment it sends in recovery, with hundreds of
    /// holes at a few per cent of loss).
    pub fn pipe(
        &self,
        (una, max, high_rxt): (SeqNum, SeqNum, SeqNum),
        mss: u32,
        mut lost: impl FnMut(SeqNum) -> bool,
    ) -> u32 {
        let total_n = self.ranges.len() as u32;
        let total_bytes: u32 = self.ranges.iter().map(|&(s, e)| e - s).sum();
        let (mut passed, mut passed_n, mut passed_bytes) = (0, 0u32, 0u32);
        let mut pipe = 0;
        let mut cursor = una;
        for hole in self.holes_from(una, max) {
            let (start, end) = hole;
            debug_assert!(start >= cursor);
            cursor = end;
            // IsLost(start): the ranges starting above `start`.
            while let Some(&(s, e)) = self.ranges.get(passed).filter(|r| r.0 <= start) {
                passed += 1;
                passed_n += 1;
                passed_bytes += e - s;
            }
            let (n, bytes) = (total_n - passed_n, total_bytes - passed_bytes);
            let sack_lost = n >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss;
            debug_assert_eq!(sack_lost, self.is_lost(start, mss));
            let rack_lost = lost(start);
            if !sack_lost && !rack_lost {
                pipe += end - start;
            }
            if high_rxt > start && !rack_lost {
                pipe += high_rxt.min(end) - start;
            }
        }
        pipe
    }

    /// The unSACKed holes `[start, end)` between `from` and `max`, in
    /// order (the last one runs up to `max`).
    pub fn holes_from(
        &self,
        from: SeqNum,
        max: SeqNum,
    ) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let mut cursor = from;
        let mut ranges = self.ranges.iter();
        std::iter::from_fn(move || loop {
            if cursor >= max {
                return None;
            }
            match ranges.next() {
                Some(&(_, e)) if e <= cursor => continue,
                Some(&(s, e)) if s <= cursor => cursor = e,
                Some(&(s, e)) => {
                    let hole = (cursor, s.min(max));
                    cursor = e;
                    return Some(hole);
                }
                None => {
                    let hole = (cursor, max);
                    cursor = max;
                    return Some(hole);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 100;

    fn board(una: u32, max: u32, blocks: &[(u32, u32)]) -> Scoreboard {
        let mut b = Scoreboard::default();
        b.on_ack(SeqNum(una), SeqNum(max), blocks);
        b
    }

    #[test]
    fn blocks_merge_and_the_cumulative_ack_trims_them() {
        let mut b = board(1000, 2000, &[(1200, 1300), (1500, 1600)]);
        assert_eq!(b.sacked_bytes(), 200);
        // Touching and overlapping blocks merge into one.
        assert_eq!(b.on_ack(SeqNum(1000), SeqNum(2000), &[(1300, 1500)]), 200);
        assert_eq!(b.ranges, [(SeqNum(1200), SeqNum(1600))]);
        // A repeated block adds nothing.
        assert_eq!(b.on_ack(SeqNum(1000), SeqNum(2000), &[(1250, 1350)]), 0);
        assert_eq!(b.sacked_at(SeqNum(1599)), Some(SeqNum(1600)));
        assert_eq!(b.sacked_at(SeqNum(1600)), None);
        // The cumulative ACK moves into the range.
        b.on_ack(SeqNum(1400), SeqNum(2000), &[]);
        assert_eq!(b.ranges, [(SeqNum(1400), SeqNum(1600))]);
        b.on_ack(SeqNum(1600), SeqNum(2000), &[]);
        assert!(b.is_empty());
    }

    #[test]
    fn dsack_and_impossible_blocks_are_left_out() {
        // RFC 2883: a D-SACK block below SND.UNA; blocks beyond SND.MAX,
        // inverted, empty.
        let b = board(
            1000,
            2000,
            &[(500, 600), (1900, 2100), (1500, 1400), (1500, 1500)],
        );
        assert!(b.is_empty());
        // Wrapping sequence numbers.
        let b = board(u32::MAX - 100, 200, &[(u32::MAX - 50, 50)]);
        assert_eq!(b.sacked_bytes(), 101);
    }

    #[test]
    fn the_board_is_bounded() {
        let mut b = Scoreboard::default();
        for i in 0..1000u32 {
            let s = 1000 + 20 * i;
            b.on_ack(SeqNum(1000), SeqNum(100_000), &[(s + 10, s + 20)]);
        }
        assert_eq!(b.ranges.len(), MAX_RANGES);
        assert_eq!(b.sacked_bytes(), 10 * MAX_RANGES as u32);
    }

    #[test]
    fn is_lost_follows_dupthresh() {
        // One segment SACKed above: not lost; three: lost (bytes rule).
        let b = board(1000, 2000, &[(1100, 1200)]);
        assert!(!b.is_lost(SeqNum(1000), MSS));
        let b = board(1000, 2000, &[(1100, 1400)]);
        assert!(b.is_lost(SeqNum(1000), MSS));
        assert!(!b.is_lost(SeqNum(1400), MSS));
        // Three small discontiguous ranges: lost (count rule).
        let b = board(1000, 2000, &[(1100, 1110), (1200, 1210), (1300, 1310)]);
        assert!(b.is_lost(SeqNum(1000), MSS));
        assert!(!b.is_lost(SeqNum(1150), MSS));
    }

    #[test]
    fn holes_and_pipe() {
        // una 1000, sent to 2000; SACKed 1100-1400 and 1600-1700.
        let b = board(1000, 2000, &[(1100, 1400), (1600, 1700)]);
        let holes: Vec<_> = b.holes_from(SeqNum(1000), SeqNum(2000)).collect();
        assert_eq!(
            holes,
            [
                (SeqNum(1000), SeqNum(1100)),
                (SeqNum(1400), SeqNum(1600)),
                (SeqNum(1700), SeqNum(2000))
            ]
        );
        let from: Vec<_> = b.holes_from(SeqNum(1450), SeqNum(2000)).collect();
        assert_eq!(from[0], (SeqNum(1450), SeqNum(1600)));
        // Hole 1000-1100 is lost (400 bytes SACKed above): not in the pipe;
        // 1400-1600 is not (100 above): 200; 1700-2000: 300.
        let none = |_| false;
        let span = |rxt| (SeqNum(1000), SeqNum(2000), SeqNum(rxt));
        assert_eq!(b.pipe(span(1000), MSS, none), 500);
        // Once 1000-1100 is retransmitted it counts again.
        assert_eq!(b.pipe(span(1100), MSS, none), 600);
        // RACK deems 1400-1600 lost: out of the pipe.
        assert_eq!(b.pipe(span(1100), MSS, |s| s == SeqNum(1400)), 400);
        // Nothing SACKed: the pipe is the flight.
        let e = Scoreboard::default();
        assert_eq!(e.pipe(span(1000), MSS, none), 1000);
        assert_eq!(b.sacked_below(SeqNum(1650)), 350);
        assert_eq!(b.next_sacked(SeqNum(1000)), Some(SeqNum(1100)));
        assert_eq!(b.next_sacked(SeqNum(1100)), Some(SeqNum(1600)));
        assert_eq!(b.next_sacked(SeqNum(1600)), None);
    }
}
