//! Capture middleware: records every packet a device carries to a pcap file.
//!
//! [`Capture`] wraps any [`Device`] and behaves exactly like it, writing
//! each packet received (after a successful `recv`) and each packet sent
//! (before `send`) to a [`PcapWriter`], stamped with the wall-clock time.
//!
//! With offload, what crosses the device is recorded as it crosses: TCP
//! super-segments whole, as tcpdump shows them on a TSO interface, but with
//! their checksums completed (the device leaves them partial), so Wireshark
//! finds them valid. [`Capture::segmented`] records instead the segments a
//! super-segment stands for, as they would be on a wire.
//!
//! Capture is a debugging aid, so it must never take the stack down: the
//! first write error is logged once with `log::warn!` and capturing stops,
//! while packets keep flowing through the inner device.

use std::fs::File;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use super::pcap::PcapWriter;
use super::{Device, Received, RxMeta, TxMeta, Waker};
use crate::wire::gso;

/// A [`Device`] that records every packet through `inner` to a pcap writer.
#[derive(Debug)]
pub struct Capture<D: Device, W: Write + Send = File> {
    inner: D,
    /// `None` once a write has failed and capturing has stopped.
    writer: Option<PcapWriter<W>>,
    /// Record the segments a super-segment stands for.
    segmented: bool,
    /// A copy of a packet whose checksum is completed for the record.
    scratch: Vec<u8>,
}

impl<D: Device, W: Write + Send> Capture<D, W> {
    /// Wraps `inner`, recording its packets to `writer`.
    pub fn new(inner: D, writer: PcapWriter<W>) -> Self {
        Capture {
            inner,
            writer: Some(writer),
            segmented: false,
            scratch: Vec::new(),
        }
    }

    /// With `on`, a TCP super-segment (offload) is recorded as the segments
    /// the device cuts it into, each with its own headers and checksums:
    /// the wire's view, for teaching captures. Off by default.
    pub fn segmented(mut self, on: bool) -> Self {
        self.segmented = on;
        self
    }

    /// The wrapped device.
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Whether packets are still being recorded (false after a write error).
    pub fn is_capturing(&self) -> bool {
        self.writer.is_some()
    }

    /// Unwraps into the device and, if capturing had not stopped, the writer.
    pub fn into_parts(self) -> (D, Option<PcapWriter<W>>) {
        (self.inner, self.writer)
    }

    fn record(&mut self, packet: &[u8]) {
        if let Some(writer) = &mut self.writer {
            if let Err(e) = writer.write_packet(SystemTime::now(), packet) {
                log::warn!("packet capture failed, no longer capturing: {e}");
                self.writer = None;
            }
        }
    }

    /// Records a packet with offload metadata: the checksum completed if
    /// it is partial, a super-segment cut if asked.
    fn record_with(&mut self, packet: &[u8], gso_size: u16, partial: bool) {
        if self.writer.is_none() {
            return;
        }
        if self.segmented && gso_size > 0 {
            let mut pieces = Vec::new();
            gso::segment(packet, gso_size, &mut |p| pieces.push(p.to_vec()));
            for p in pieces {
                self.record(&p);
            }
        } else if partial {
            let mut copy = std::mem::take(&mut self.scratch);
            copy.clear();
            copy.extend_from_slice(packet);
            gso::complete_checksum(&mut copy);
            self.record(&copy);
            self.scratch = copy;
        } else {
            self.record(packet);
        }
    }
}

impl<D: Device, W: Write + Send> Device for Capture<D, W> {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let received = self.inner.recv(buf)?;
        if let Some(len) = received {
            self.record(&buf[..len]);
        }
        Ok(received)
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.record(packet);
        self.inner.send(packet)
    }

    fn offload(&self) -> bool {
        self.inner.offload()
    }

    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let received = self.inner.recv_with(buf)?;
        if let Some(r) = received {
            let RxMeta {
                checksum_trusted,
                gso_size,
            } = r.meta;
            self.record_with(&buf[r.start..r.start + r.len], gso_size, checksum_trusted);
        }
        Ok(received)
    }

    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        self.record_with(packet, meta.gso_size, meta.checksum_partial);
        self.inner.send_with(packet, meta)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
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
    use crate::device::memory::{link, MemoryDevice};
    use crate::device::pcap::read_pcap;
    use std::time::{Instant, UNIX_EPOCH};

    fn recv_one<D: Device>(dev: &mut D) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_535];
        dev.recv(&mut buf).unwrap().map(|n| buf[..n].to_vec())
    }

    #[test]
    fn both_directions_are_recorded_in_order() {
        let (stack_end, test_end) = link(1500);
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let mut dev = Capture::new(stack_end, PcapWriter::new(Vec::new()).unwrap());

        test_end.send_packet(vec![0x45, 1]);
        assert_eq!(recv_one(&mut dev), Some(vec![0x45, 1]));
        dev.send(&[0x45, 2]).unwrap();
        assert_eq!(test_end.try_recv_packet(), Some(vec![0x45, 2]));
        test_end.send_packet(vec![0x45, 3]);
        assert_eq!(recv_one(&mut dev), Some(vec![0x45, 3]));
        // An empty recv records nothing.
        assert_eq!(recv_one(&mut dev), None);

        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (_, writer) = dev.into_parts();
        let records = read_pcap(&writer.unwrap().into_inner()).unwrap();
        let packets: Vec<_> = records.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(packets, [vec![0x45, 1], vec![0x45, 2], vec![0x45, 3]]);
        for window in records.windows(2) {
            assert!(window[0].0 <= window[1].0, "timestamps out of order");
        }
        // pcap keeps microseconds: compare at that resolution.
        let micros = |d: Duration| d.as_micros();
        assert!(micros(records[0].0) >= micros(before));
        assert!(micros(records[2].0) <= micros(after));
    }

    #[test]
    fn capture_delegates_mtu_wait_and_waker() {
        let (stack_end, _test_end) = link(1234);
        let mut dev = Capture::new(stack_end, PcapWriter::new(Vec::new()).unwrap());
        assert_eq!(dev.mtu(), 1234);
        dev.waker().wake();
        let long = Duration::from_secs(30);
        let start = Instant::now();
        dev.wait(Some(long)).unwrap();
        assert!(
            start.elapsed() < long,
            "wake did not reach the inner device"
        );
    }

    /// A writer that accepts the pcap header, then fails every write.
    struct FailAfterHeader {
        writes: usize,
    }

    impl Write for FailAfterHeader {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            if self.writes == 1 {
                Ok(buf.len())
            } else {
                Err(io::Error::other("disk full"))
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_error_stops_capturing_but_packets_still_flow() {
        let (stack_end, test_end): (MemoryDevice, MemoryDevice) = link(1500);
        let writer = PcapWriter::new(FailAfterHeader { writes: 0 }).unwrap();
        let mut dev = Capture::new(stack_end, writer);
        assert!(dev.is_capturing());

        dev.send(&[0x45, 1]).unwrap();
        assert!(!dev.is_capturing());
        dev.send(&[0x45, 2]).unwrap();
        test_end.send_packet(vec![0x45, 3]);
        assert_eq!(recv_one(&mut dev), Some(vec![0x45, 3]));

        assert_eq!(test_end.try_recv_packet(), Some(vec![0x45, 1]));
        assert_eq!(test_end.try_recv_packet(), Some(vec![0x45, 2]));
        let (_, writer) = dev.into_parts();
        assert!(writer.is_none());
    }
}
