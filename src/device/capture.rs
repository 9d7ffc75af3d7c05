//! Capture middleware: records every packet a device carries to a pcap or
//! pcapng file.
//!
//! [`Capture`] wraps any [`Device`] and behaves exactly like it, writing
//! each packet received (after a successful `recv`) and each packet sent
//! (before `send`) to a [`CaptureWriter`], stamped with the wall-clock
//! time. With pcapng, the stack's notes on a packet
//! ([`Device::note_received`], [`Device::send_noted`]; see
//! [`crate::notes`]) become its comment: a received packet is held until
//! the stack has handled it and said what it did (it is written at the
//! next call on the device at the latest), so records stay in order.
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
use super::pcapng::{Direction, PcapngWriter};
use super::{Device, Received, RxMeta, TxMeta, Waker};
use crate::wire::gso;

/// The file format a [`Capture`] writes.
#[derive(Debug)]
pub enum CaptureWriter<W: Write> {
    /// Classic pcap: packets only.
    Pcap(PcapWriter<W>),
    /// pcapng: packets with their direction and the stack's notes as
    /// comments.
    Pcapng(PcapngWriter<W>),
}

impl<W: Write> From<PcapWriter<W>> for CaptureWriter<W> {
    fn from(w: PcapWriter<W>) -> Self {
        CaptureWriter::Pcap(w)
    }
}

impl<W: Write> From<PcapngWriter<W>> for CaptureWriter<W> {
    fn from(w: PcapngWriter<W>) -> Self {
        CaptureWriter::Pcapng(w)
    }
}

impl<W: Write> CaptureWriter<W> {
    /// Whether the format keeps a comment per packet.
    pub fn takes_notes(&self) -> bool {
        matches!(self, CaptureWriter::Pcapng(_))
    }

    /// Appends one packet (the comment is lost in classic pcap).
    pub fn write_packet(
        &mut self,
        ts: SystemTime,
        packet: &[u8],
        dir: Direction,
        comment: &str,
    ) -> io::Result<()> {
        match self {
            CaptureWriter::Pcap(w) => w.write_packet(ts, packet),
            CaptureWriter::Pcapng(w) => w.write_packet(ts, packet, dir, comment),
        }
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        match self {
            CaptureWriter::Pcap(w) => w.into_inner(),
            CaptureWriter::Pcapng(w) => w.into_inner(),
        }
    }
}

/// Writes the records, holding a received packet back until the stack's
/// note on it arrives (pcapng only).
#[derive(Debug)]
struct Recorder<W: Write> {
    /// `None` once a write has failed and capturing has stopped.
    writer: Option<CaptureWriter<W>>,
    /// The last packet received and its time, waiting for its note.
    held: Option<(SystemTime, Vec<u8>)>,
    /// With `held`, the other pieces of a super-segment, written after it.
    held_pieces: Vec<Vec<u8>>,
    /// Spare storage for `held`.
    spare: Vec<u8>,
}

impl<W: Write> Recorder<W> {
    fn write(&mut self, ts: SystemTime, packet: &[u8], dir: Direction, comment: &str) {
        if let Some(writer) = &mut self.writer {
            if let Err(e) = writer.write_packet(ts, packet, dir, comment) {
                log::warn!("packet capture failed, no longer capturing: {e}");
                self.writer = None;
            }
        }
    }

    /// Writes the held received packet with `comment`, and the rest of
    /// a held super-segment's pieces after it.
    fn release(&mut self, comment: &str) {
        let Some((ts, packet)) = self.held.take() else {
            return;
        };
        self.write(ts, &packet, Direction::Inbound, comment);
        self.spare = packet;
        for p in std::mem::take(&mut self.held_pieces) {
            self.write(ts, &p, Direction::Inbound, "");
        }
    }

    /// Records the pieces of a received super-segment: with pcapng, held
    /// for the note, which goes on the first.
    fn received_pieces(&mut self, mut pieces: Vec<Vec<u8>>) {
        self.release("");
        let now = SystemTime::now();
        if self.writer.as_ref().is_some_and(CaptureWriter::takes_notes) && !pieces.is_empty() {
            let first = pieces.remove(0);
            self.held = Some((now, first));
            self.held_pieces = pieces;
            return;
        }
        for p in &pieces {
            self.write(now, p, Direction::Inbound, "");
        }
    }

    /// Records a received packet: held for its note with pcapng.
    fn received(&mut self, packet: &[u8], complete_checksum: bool) {
        self.release("");
        let hold = self.writer.as_ref().is_some_and(CaptureWriter::takes_notes);
        if !hold && !complete_checksum {
            self.write(SystemTime::now(), packet, Direction::Inbound, "");
            return;
        }
        let mut copy = std::mem::take(&mut self.spare);
        copy.clear();
        copy.extend_from_slice(packet);
        if complete_checksum {
            gso::complete_checksum(&mut copy);
        }
        if hold {
            self.held = Some((SystemTime::now(), copy));
        } else {
            self.write(SystemTime::now(), &copy, Direction::Inbound, "");
            self.spare = copy;
        }
    }

    fn into_writer(mut self) -> Option<CaptureWriter<W>> {
        self.release("");
        self.writer.take()
    }
}

impl<W: Write> Drop for Recorder<W> {
    fn drop(&mut self) {
        self.release("");
    }
}

/// A [`Device`] that records every packet through `inner` to a capture
/// writer.
#[derive(Debug)]
pub struct Capture<D: Device, W: Write + Send = File> {
    inner: D,
    rec: Recorder<W>,
    /// Record the segments a super-segment stands for.
    segmented: bool,
    /// A copy of a packet whose checksum is completed for the record.
    scratch: Vec<u8>,
}

impl<D: Device, W: Write + Send> Capture<D, W> {
    /// Wraps `inner`, recording its packets to `writer` (a
    /// [`PcapWriter`], a [`PcapngWriter`] or a [`CaptureWriter`]).
    pub fn new(inner: D, writer: impl Into<CaptureWriter<W>>) -> Self {
        Capture {
            inner,
            rec: Recorder {
                writer: Some(writer.into()),
                held: None,
                held_pieces: Vec::new(),
                spare: Vec::new(),
            },
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
        self.rec.writer.is_some()
    }

    /// Unwraps into the device and, if capturing had not stopped, the writer.
    pub fn into_parts(self) -> (D, Option<CaptureWriter<W>>) {
        (self.inner, self.rec.into_writer())
    }

    /// Records a packet sent, with offload metadata: the checksum
    /// completed if it is partial, a super-segment cut if asked. The note
    /// goes with the first (or only) record.
    fn record_sent(&mut self, packet: &[u8], gso_size: u16, partial: bool, note: &str) {
        self.rec.release("");
        if self.rec.writer.is_none() {
            return;
        }
        let now = SystemTime::now();
        if self.segmented && gso_size > 0 {
            let mut pieces = Vec::new();
            gso::segment(packet, gso_size, &mut |p| pieces.push(p.to_vec()));
            for (i, p) in pieces.iter().enumerate() {
                let note = if i == 0 { note } else { "" };
                self.rec.write(now, p, Direction::Outbound, note);
            }
        } else if partial {
            let mut copy = std::mem::take(&mut self.scratch);
            copy.clear();
            copy.extend_from_slice(packet);
            gso::complete_checksum(&mut copy);
            self.rec.write(now, &copy, Direction::Outbound, note);
            self.scratch = copy;
        } else {
            self.rec.write(now, packet, Direction::Outbound, note);
        }
    }

    /// Records a packet received, with offload metadata.
    fn record_received(&mut self, packet: &[u8], gso_size: u16, partial: bool) {
        if self.rec.writer.is_none() {
            return;
        }
        if self.segmented && gso_size > 0 {
            let mut pieces = Vec::new();
            gso::segment(packet, gso_size, &mut |p| pieces.push(p.to_vec()));
            self.rec.received_pieces(pieces);
        } else {
            self.rec.received(packet, partial);
        }
    }
}

impl<D: Device, W: Write + Send> Device for Capture<D, W> {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.rec.release("");
        let received = self.inner.recv(buf)?;
        if let Some(len) = received {
            self.record_received(&buf[..len], 0, false);
        }
        Ok(received)
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.record_sent(packet, 0, false, "");
        self.inner.send(packet)
    }

    fn offload(&self) -> bool {
        self.inner.offload()
    }

    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.rec.release("");
        let received = self.inner.recv_with(buf)?;
        if let Some(r) = received {
            let RxMeta {
                checksum_trusted,
                gso_size,
            } = r.meta;
            self.record_received(&buf[r.start..r.start + r.len], gso_size, checksum_trusted);
        }
        Ok(received)
    }

    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        self.record_sent(packet, meta.gso_size, meta.checksum_partial, "");
        self.inner.send_with(packet, meta)
    }

    fn note_received(&mut self, note: &str) {
        self.rec.release(note);
    }

    fn send_noted(&mut self, packet: &[u8], meta: TxMeta, note: &str) -> io::Result<()> {
        self.record_sent(packet, meta.gso_size, meta.checksum_partial, note);
        self.inner.send_with(packet, meta)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.rec.release("");
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

    /// Each Enhanced Packet Block of a pcapng file: (packet, direction
    /// flags, comment).
    fn epbs(bytes: &[u8]) -> Vec<(Vec<u8>, u32, String)> {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (kind, len) = (u32_at(at), u32_at(at + 4) as usize);
            if kind == 6 {
                let cap = u32_at(at + 20) as usize;
                let data = bytes[at + 28..at + 28 + cap].to_vec();
                let mut opt = at + 28 + cap.div_ceil(4) * 4;
                let (mut flags, mut comment) = (0, String::new());
                while opt < at + len - 4 {
                    let code = u16::from_le_bytes([bytes[opt], bytes[opt + 1]]);
                    let olen = usize::from(u16::from_le_bytes([bytes[opt + 2], bytes[opt + 3]]));
                    let value = &bytes[opt + 4..opt + 4 + olen];
                    match code {
                        0 => break,
                        1 => comment = String::from_utf8(value.to_vec()).unwrap(),
                        2 => flags = u32::from_le_bytes(value.try_into().unwrap()),
                        _ => {}
                    }
                    opt += 4 + olen.div_ceil(4) * 4;
                }
                out.push((data, flags, comment));
            }
            at += len;
        }
        out
    }

    #[test]
    fn pcapng_holds_a_received_packet_for_its_note_and_keeps_the_order() {
        let (stack_end, test_end) = link(1500);
        let writer = crate::device::pcapng::PcapngWriter::new(Vec::new()).unwrap();
        let mut dev = Capture::new(stack_end, writer);
        let mut buf = vec![0u8; 65_535];

        test_end.send_packet(vec![0x45, 1]);
        assert!(dev.recv_with(&mut buf).unwrap().is_some());
        dev.note_received("LISTEN -> SYN-RCVD");
        dev.send_noted(
            &[0x45, 2],
            TxMeta::default(),
            "retransmission 1, RTO 200 ms",
        )
        .unwrap();
        // A packet without a note is written when the device is next used.
        test_end.send_packet(vec![0x45, 3]);
        assert!(dev.recv_with(&mut buf).unwrap().is_some());
        dev.send(&[0x45, 4]).unwrap();
        // One held at the end is written by into_parts (or drop).
        test_end.send_packet(vec![0x45, 5]);
        assert!(dev.recv_with(&mut buf).unwrap().is_some());
        let (_, writer) = dev.into_parts();
        let got = epbs(&writer.unwrap().into_inner());
        let want: Vec<(Vec<u8>, u32, String)> = vec![
            (vec![0x45, 1], 1, "LISTEN -> SYN-RCVD".into()),
            (vec![0x45, 2], 2, "retransmission 1, RTO 200 ms".into()),
            (vec![0x45, 3], 1, String::new()),
            (vec![0x45, 4], 2, String::new()),
            (vec![0x45, 5], 1, String::new()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn classic_pcap_ignores_notes() {
        let (stack_end, test_end) = link(1500);
        let mut dev = Capture::new(stack_end, PcapWriter::new(Vec::new()).unwrap());
        test_end.send_packet(vec![0x45, 1]);
        assert_eq!(recv_one(&mut dev), Some(vec![0x45, 1]));
        dev.note_received("ignored");
        dev.send_noted(&[0x45, 2], TxMeta::default(), "ignored")
            .unwrap();
        let (_, writer) = dev.into_parts();
        let records = read_pcap(&writer.unwrap().into_inner()).unwrap();
        assert_eq!(records.len(), 2);
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
