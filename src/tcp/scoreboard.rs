//! The data sender's SACK scoreboard (RFC 2018 §3) and the questions RFC
//! 6675 §4 asks of it: `IsLost`, the bytes still in the network (`SetPipe`)
//! and the holes `NextSeg` walks.
//!
//! The scoreboard holds the sequence ranges the peer reported holding above
//! SND.UNA, sorted and merged. It never holds more than [`MAX_RANGES`], as
//! many as a full send buffer can have (every other segment lost): a peer
//! that reports more holes loses the highest ones from the board, which
//! only makes the sender resend data the peer already has. Lookups are
//! binary searches; the byte count is kept as ranges come and go.

use super::seq::SeqNum;

/// RFC 6675 §2 DupThresh: the segments (or duplicate ACKs) past a hole
/// that make it lost.
pub(crate) const DUP_THRESH: u32 = 3;

/// Most ranges kept: bounded memory (16 KiB) whatever the peer reports.
/// A 4 MiB send buffer (the default most) of 1448-byte segments with every
/// other one lost has 1,448 ranges; at 5 % loss it has about 150. A board
/// that forgets ranges the peer reported once (the peer repeats only its
/// newest three or four blocks, RFC 2018 §4) turns them into holes with
/// SACKed data above: IsLost and RACK call them lost, and they are resent.
pub(crate) const MAX_RANGES: usize = 2048;

/// What RACK says of the segment holding a byte (RFC 8985 §6.2), as
/// SetPipe asks it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RackVerdict {
    /// Its latest transmission is deemed lost.
    pub lost: bool,
    /// Some transmission of it was deemed lost (implied by `lost`), so its
    /// original is gone even once it has been resent.
    pub was_lost: bool,
}

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
        debug_assert_eq!(
            self.sacked,
            self.ranges.iter().map(|&(s, e)| e - s).sum::<u32>()
        );
        self.sacked.saturating_sub(before)
    }

    /// Drops what the cumulative ACK `una` covers.
    fn advance(&mut self, una: SeqNum) {
        let covered = self.ranges.partition_point(|r| r.1 <= una);
        let gone: u32 = self.ranges.drain(..covered).map(|(s, e)| e - s).sum();
        self.sacked -= gone;
        if let Some(first) = self.ranges.first_mut() {
            if first.0 < una {
                self.sacked -= una - first.0;
                first.0 = una;
            }
        }
    }

    /// Adds `[left, right)`, merging with what it touches.
    fn insert(&mut self, mut left: SeqNum, mut right: SeqNum) {
        // The first range that ends at or after `left` (touching merges).
        let first = self.ranges.partition_point(|r| r.1 < left);
        let mut last = first;
        let mut merged = 0;
        while last < self.ranges.len() && self.ranges[last].0 <= right {
            let (s, e) = self.ranges[last];
            merged += e - s;
            left = left.min(s);
            right = right.max(e);
            last += 1;
        }
        self.ranges.splice(first..last, [(left, right)]);
        self.sacked = self.sacked - merged + (right - left);
        if self.ranges.len() > MAX_RANGES {
            let gone: u32 = self.ranges.drain(MAX_RANGES..).map(|(s, e)| e - s).sum();
            self.sacked -= gone;
        }
    }

    /// The index of the first range that starts above `seq`.
    fn above(&self, seq: SeqNum) -> usize {
        self.ranges.partition_point(|r| r.0 <= seq)
    }

    /// The end of the SACKed range holding `seq`, if it is SACKed.
    pub fn sacked_at(&self, seq: SeqNum) -> Option<SeqNum> {
        let i = self.ranges.partition_point(|r| r.1 <= seq);
        self.ranges.get(i).filter(|r| r.0 <= seq).map(|r| r.1)
    }

    /// Where the next SACKed range above `seq` starts, if any.
    pub fn next_sacked(&self, seq: SeqNum) -> Option<SeqNum> {
        self.ranges.get(self.above(seq)).map(|r| r.0)
    }

    /// Bytes SACKed below `seq` (and above SND.UNA): all of them less
    /// those above (the sender asks at SND.NXT, near the top).
    pub fn sacked_below(&self, seq: SeqNum) -> u32 {
        let i = self.ranges.partition_point(|r| r.0 < seq);
        let mut above: u32 = self.ranges[i..].iter().map(|&(s, e)| e - s).sum();
        if let Some(&(_, e)) = i.checked_sub(1).and_then(|j| self.ranges.get(j)) {
            if e > seq {
                above += e - seq;
            }
        }
        self.sacked - above
    }

    /// RFC 6675 §4 IsLost(seq): DupThresh discontiguous SACKed ranges, or
    /// more than (DupThresh - 1) × SMSS SACKed bytes, lie above `seq`.
    pub fn is_lost(&self, seq: SeqNum, mss: u32) -> bool {
        let above = &self.ranges[self.above(seq)..];
        if above.len() >= DUP_THRESH as usize {
            return true;
        }
        let bytes: u32 = above.iter().map(|&(s, e)| e - s).sum();
        bytes > (DUP_THRESH - 1) * mss
    }

    /// RFC 6675 §4 SetPipe: the bytes between `una` and `max` still in the
    /// network. An unSACKed byte's original transmission counts unless it
    /// is lost: IsLost, or RACK deemed it (or a later transmission of it)
    /// lost; a retransmission (below `high_rxt`) counts once more unless
    /// RACK found it lost too (RFC 8985 §6.2). This is Linux's
    /// `packets_out - sacked_out - lost_out + retrans_out`: a segment RACK
    /// marked lost and resent is in the network once, not twice.
    ///
    /// `rack` is asked about each hole's first byte, and about the first
    /// byte past `high_rxt` in a hole resent in part, in ascending order.
    /// One pass over the holes and ranges: IsLost's count of the ranges
    /// above a hole comes from those passed so far (the sender asks for
    /// pipe for every segment it sends in recovery, with hundreds of
    /// holes at a few per cent of loss).
    pub fn pipe(
        &self,
        (una, max, high_rxt): (SeqNum, SeqNum, SeqNum),
        mss: u32,
        mut rack: impl FnMut(SeqNum) -> RackVerdict,
    ) -> u32 {
        let total_n = self.ranges.len() as u32;
        let total_bytes = self.sacked;
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
            // The part resent, `[start, resent)`, and the part sent once.
            let resent = high_rxt.clamp(start, end);
            if resent > start {
                let v = rack(start);
                if !sack_lost && !v.was_lost {
                    pipe += resent - start;
                }
                if !v.lost {
                    pipe += resent - start;
                }
            }
            if end > resent {
                let v = rack(resent);
                if !sack_lost && !v.lost {
                    pipe += end - resent;
                }
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
        let n = 3 * MAX_RANGES as u32;
        for i in 0..n {
            let s = 1000 + 20 * i;
            b.on_ack(SeqNum(1000), SeqNum(1000 + 20 * n), &[(s + 10, s + 20)]);
        }
        assert_eq!(b.ranges.len(), MAX_RANGES);
        assert_eq!(b.sacked_bytes(), 10 * MAX_RANGES as u32);
        // The highest went: the lowest are the ones the sender repairs next.
        assert_eq!(b.ranges[0], (SeqNum(1010), SeqNum(1020)));
    }

    #[test]
    fn a_full_send_buffer_with_every_other_segment_lost_keeps_every_range() {
        // 4 MiB of 1448-byte segments, the odd ones SACKed, three blocks an
        // ACK as a receiver with timestamps sends them (RFC 2018 §4: the
        // newest first, then the two reported last).
        let (mss, n) = (1448u32, (4 << 20) / 1448u32);
        let seg = |k: u32| (1000 + k * mss, 1000 + (k + 1) * mss);
        let max = SeqNum(seg(n).0);
        let mut b = Scoreboard::default();
        for k in (1..n).step_by(2) {
            let blocks: Vec<(u32, u32)> = (0..3)
                .filter_map(|j| k.checked_sub(2 * j))
                .filter(|k| k % 2 == 1)
                .map(seg)
                .collect();
            b.on_ack(SeqNum(1000), max, &blocks);
        }
        let ranges = n / 2;
        assert_eq!(b.ranges.len() as u32, ranges);
        assert_eq!(b.sacked_bytes(), ranges * mss);
        // Every SACKed segment is known SACKed; every hole is lost.
        for k in 0..n {
            let (start, end) = seg(k);
            let sacked = b.sacked_at(SeqNum(start));
            assert_eq!(sacked.is_some(), k % 2 == 1, "segment {k}");
            if k % 2 == 0 && k + 6 < n {
                assert!(b.is_lost(SeqNum(start), mss), "hole {k}");
                assert_eq!(b.next_sacked(SeqNum(start)), Some(SeqNum(end)));
            }
        }
        assert_eq!(b.sacked_below(max), ranges * mss);
        assert_eq!(b.sacked_below(SeqNum(seg(3).0 + 100)), mss + 100);
        // The cumulative ACK takes ranges off as the holes are filled.
        b.on_ack(SeqNum(seg(4).0), max, &[]);
        assert_eq!(b.sacked_bytes(), (ranges - 2) * mss);
        b.on_ack(SeqNum(seg(5).0 + 100), max, &[]);
        assert_eq!(b.sacked_bytes(), (ranges - 2) * mss - 100);
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
        let none = |_| RackVerdict::default();
        let span = |rxt| (SeqNum(1000), SeqNum(2000), SeqNum(rxt));
        assert_eq!(b.pipe(span(1000), MSS, none), 500);
        // Once 1000-1100 is retransmitted it counts again.
        assert_eq!(b.pipe(span(1100), MSS, none), 600);
        // RACK deems 1400-1600 lost: out of the pipe.
        let lost_at = |at: u32| {
            move |s| RackVerdict {
                lost: s == SeqNum(at),
                was_lost: s == SeqNum(at),
            }
        };
        assert_eq!(b.pipe(span(1100), MSS, lost_at(1400)), 400);
        // Resent after RACK deemed it lost, 1400-1600 is in the network
        // once (the retransmission), not twice; resent in part, the part
        // sent once counts by its own verdict.
        let resent_after_loss = |s| RackVerdict {
            lost: false,
            was_lost: s == SeqNum(1400),
        };
        assert_eq!(b.pipe(span(1600), MSS, resent_after_loss), 100 + 200 + 300);
        assert_eq!(
            b.pipe(span(1500), MSS, resent_after_loss),
            100 + 100 + 100 + 300
        );
        assert_eq!(
            b.pipe(span(1500), MSS, lost_at(1500)),
            100 + 100 + 100 + 300
        );
        // Nothing SACKed: the pipe is the flight.
        let e = Scoreboard::default();
        assert_eq!(e.pipe(span(1000), MSS, none), 1000);
        assert_eq!(b.sacked_below(SeqNum(1650)), 350);
        assert_eq!(b.next_sacked(SeqNum(1000)), Some(SeqNum(1100)));
        assert_eq!(b.next_sacked(SeqNum(1100)), Some(SeqNum(1600)));
        assert_eq!(b.next_sacked(SeqNum(1600)), None);
    }
}
