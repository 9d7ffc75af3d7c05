//! Sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).
//!
//! `a < b` means "`a` comes before `b`" in the circular space, which is only
//! meaningful when the two are less than 2^31 apart; every comparison the
//! state machine makes is between numbers inside one window, so that holds.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A TCP sequence (or acknowledgment) number with wrapping arithmetic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// The raw 32-bit value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// `self` lies in the half-open range `[lo, hi)` (RFC 9293 §3.4).
    pub fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        self.0.wrapping_sub(lo.0) < hi.0.wrapping_sub(lo.0)
    }

    /// The later of the two numbers.
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self < other {
            other
        } else {
            self
        }
    }

    /// The earlier of the two numbers.
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self < other {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Circular ordering: `a < b` iff `(b - a) mod 2^32` is in `(0, 2^31)`.
/// Not a total order over all of u32; fine within one window.
impl Ord for SeqNum {
    fn cmp(&self, other: &Self) -> Ordering {
        let diff = self.0.wrapping_sub(other.0) as i32;
        diff.cmp(&0)
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

/// Distance from `rhs` forward to `self`, modulo 2^32. Callers only subtract
/// an earlier number from a later one (e.g. `snd.nxt - snd.una`).
impl Sub<SeqNum> for SeqNum {
    type Output = u32;
    fn sub(self, rhs: SeqNum) -> u32 {
        self.0.wrapping_sub(rhs.0)
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A record of the sequence space `[start, end)`, kept in a list sorted by
/// sequence number with no overlaps: RACK's transmission record
/// (`tcp/rack.rs`) and BBR's delivery-rate samples
/// (`tcp/congestion/rate.rs`).
pub(crate) trait SeqSpan: Copy {
    /// `[start, end)`.
    fn span(&self) -> (SeqNum, SeqNum);
    /// Sets `[start, end)`.
    fn set_span(&mut self, start: SeqNum, end: SeqNum);
}

/// Splits the record of `list` holding `at` (if one does, and `at` is not
/// its start) in two at `at`; the list stays sorted and disjoint.
pub(crate) fn split_span_at<T: SeqSpan>(list: &mut std::collections::VecDeque<T>, at: SeqNum) {
    let i = list.partition_point(|s| s.span().1 <= at);
    let Some(&record) = list.get(i) else {
        return;
    };
    let (start, end) = record.span();
    if start >= at {
        return;
    }
    let (mut left, mut right) = (record, record);
    left.set_span(start, at);
    right.set_span(at, end);
    list[i] = left;
    list.insert(i + 1, right);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap_around_zero() {
        let a = SeqNum(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.get(), 9);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b - a, 20);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn in_range_is_half_open_and_wraps() {
        let lo = SeqNum(u32::MAX - 1);
        let hi = lo + 4;
        assert!(lo.in_range(lo, hi));
        assert!((lo + 3).in_range(lo, hi));
        assert!(!hi.in_range(lo, hi));
        assert!(!(lo - 1).in_range(lo, hi));
        // An empty range holds nothing.
        assert!(!lo.in_range(lo, lo));
    }

    #[test]
    fn equal_numbers_are_equal() {
        assert_eq!(SeqNum(5).cmp(&SeqNum(5)), Ordering::Equal);
        assert!(SeqNum(5) <= SeqNum(5));
    }
}
