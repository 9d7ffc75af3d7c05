//! A packet being built from the top down, in one reused buffer.
//!
//! TCP writes its segment after [`HEADROOM`] spare bytes; the IP layer
//! then writes its header into the space just before it (and a device
//! could prepend its own), so the payload is copied once, from the send
//! buffer into the packet, and never moved again.

use std::ops::Deref;

use super::gso::TxMeta;

/// Room kept in front of a transport segment for the headers below it: an
/// IPv6 header (40), an Ethernet header (14) and a virtio-net header (12)
/// fit.
pub const HEADROOM: usize = 80;

/// A packet: `buf[start..]`, with `start` bytes of room in front.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PacketBuf {
    buf: Vec<u8>,
    start: usize,
    meta: TxMeta,
    /// The id of the core's note on this packet (0: none), see
    /// [`crate::notes`]; it fits in what would be padding.
    note: u32,
}

impl PacketBuf {
    /// Reuses `buf` for a new packet with [`HEADROOM`] bytes in front;
    /// append the packet with [`PacketBuf::buf_mut`].
    pub fn with_headroom(mut buf: Vec<u8>) -> PacketBuf {
        buf.clear();
        buf.resize(HEADROOM, 0);
        PacketBuf {
            buf,
            start: HEADROOM,
            meta: TxMeta::default(),
            note: 0,
        }
    }

    /// A packet that is all of `buf` (no room in front).
    pub fn from_vec(buf: Vec<u8>) -> PacketBuf {
        PacketBuf {
            buf,
            start: 0,
            meta: TxMeta::default(),
            note: 0,
        }
    }

    /// The underlying buffer, to append the packet's bytes to.
    pub fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// What the device is asked to do with the packet (cut a TCP
    /// super-segment, complete a checksum); plain by default.
    pub fn meta(&self) -> TxMeta {
        self.meta
    }

    /// Sets [`PacketBuf::meta`].
    pub fn set_meta(&mut self, meta: TxMeta) {
        self.meta = meta;
    }

    /// The id under which the core keeps its note on this packet (0:
    /// none; see [`crate::notes`]).
    pub fn note(&self) -> u32 {
        self.note
    }

    /// Sets [`PacketBuf::note`].
    pub fn set_note(&mut self, id: u32) {
        self.note = id;
    }

    /// Room left in front.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Grows the packet at the front by `n` bytes and returns them to be
    /// written, or `None` if there is not that much room.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(n)?;
        self.start = start;
        Some(&mut self.buf[start..start + n])
    }

    /// The whole buffer, for reuse.
    pub fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

impl Deref for PacketBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl From<PacketBuf> for Vec<u8> {
    /// The packet's bytes alone.
    fn from(mut p: PacketBuf) -> Vec<u8> {
        p.buf.drain(..p.start);
        p.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_id_fits_in_what_was_padding() {
        // Vec (24) + start (8) + TxMeta (4) was padded to 40 bytes: the
        // note id takes the padding, so no packet grows.
        assert_eq!(std::mem::size_of::<TxMeta>(), 4);
        assert_eq!(std::mem::size_of::<PacketBuf>(), 40);
    }

    #[test]
    fn headers_are_prepended_in_place_within_the_headroom() {
        let mut p = PacketBuf::with_headroom(vec![9; 500]);
        assert!(p.is_empty());
        p.buf_mut().extend_from_slice(b"payload");
        p.prepend(3).expect("room").copy_from_slice(b"hdr");
        assert_eq!(&*p, b"hdrpayload");
        assert_eq!(p.headroom(), HEADROOM - 3);
        assert!(p.prepend(HEADROOM).is_none(), "no more room than there is");
        assert_eq!(Vec::from(p), b"hdrpayload");
    }
}
