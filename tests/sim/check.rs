//! The delivery checker: every byte an application reads must be the next
//! byte of the stream its peer sends — exactly once, in order.

use super::rng::fill;

/// Checks one direction of one connection as the receiving application
/// reads it.
#[derive(Debug)]
pub struct StreamChecker {
    key: u64,
    received: u64,
    expected: Vec<u8>,
}

impl StreamChecker {
    /// A checker for the stream with `key`.
    pub fn new(key: u64) -> StreamChecker {
        StreamChecker {
            key,
            received: 0,
            expected: Vec::new(),
        }
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Accepts the next bytes the application read; an error names the first
    /// byte that is not the next byte of the stream (a corrupted, lost,
    /// duplicated or reordered byte all show up this way).
    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        self.expected.resize(data.len(), 0);
        fill(self.key, self.received, &mut self.expected);
        if data != self.expected.as_slice() {
            let i = data
                .iter()
                .zip(&self.expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "stream byte {} wrong: got {:#04x}, expected {:#04x} (read of {} bytes at offset {})",
                self.received + i as u64,
                data[i],
                self.expected[i],
                data.len(),
                self.received
            ));
        }
        self.received += data.len() as u64;
        Ok(())
    }

    /// The stream ended (EOF): everything `sent` must have arrived.
    pub fn finish(&self, sent: u64) -> Result<(), String> {
        if self.received != sent {
            return Err(format!(
                "end of stream after {} bytes, but the peer sent {}",
                self.received, sent
            ));
        }
        Ok(())
    }

    /// The stream may have been cut short (a reset): what arrived must be a
    /// prefix of what was `sent`.
    pub fn prefix_of(&self, sent: u64) -> Result<(), String> {
        if self.received > sent {
            return Err(format!(
                "received {} bytes, but the peer only sent {}",
                self.received, sent
            ));
        }
        Ok(())
    }
}
