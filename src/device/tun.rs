//! A Linux TUN interface as a [`Device`] (or, with [`TunOptions::tap`], a
//! TAP interface, whose reads and writes are Ethernet frames).
//!
//! [`TunDevice::open`] attaches to a TUN interface by name, or creates it if
//! there is none. The fd is opened with `IFF_NO_PI` (each read or write is
//! one bare IP packet) and a single queue.
//!
//! With [`TunOptions::offload`] the fd also speaks the virtio-net header
//! (`IFF_VNET_HDR`) and offers the kernel checksum and TCP segmentation
//! offload (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`):
//! the kernel then hands the stack TCP super-segments of up to 64 KiB with
//! their checksums left undone, and takes the same from it, so one read or
//! write moves up to 44 segments' worth. Where the kernel refuses, the
//! device falls back to plain packets and says so once.
//!
//! Attaching leaves an existing interface as it was: its addresses, MTU and
//! up/down state change only when [`TunOptions`] asks. (`tun-rs`'s
//! `DeviceBuilder::new()` would bring the link up; we opt out with
//! `inherit_enable_state`. It also clears the device-wide offload mask, so a
//! device left in offload mode by an earlier user does not hand us GSO
//! aggregates.) An interface this call creates is brought up, since nothing
//! else can configure it before it exists; it still has no address unless
//! `host_addr` is given.
//!
//! The fd is non-blocking: [`Device::recv`] never blocks, and
//! [`Device::wait`] sleeps in `poll` on the fd and an interrupt pipe that the
//! [`Waker`] triggers.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Device, DeviceCounters, Offload, Received, RxMeta, TxMeta, Waker};
use crate::wire::gso::{self, VnetHdr, VNET_HDR_LEN};

/// `EIO`: writing to a TUN interface whose link is down.
const EIO: i32 = 5;
/// `ENODEV`: opening `/dev/net/tun` when no driver backs it.
const ENODEV: i32 = 19;
/// `EINVAL`: `TUNSETIFF` on an interface that is not a single-queue TUN.
const EINVAL: i32 = 22;

/// How [`TunDevice::open`] configures the interface. The default changes
/// nothing.
#[derive(Debug, Default, Clone)]
pub struct TunOptions {
    /// Set the interface MTU to this many bytes.
    pub mtu: Option<u16>,
    /// Add this address and prefix length to the kernel side of the
    /// interface (kept if already present) and bring the link up.
    pub host_addr: Option<(Ipv4Addr, u8)>,
    /// Set the interface's queue toward the stack to this many packets
    /// (`ip link set <name> txqueuelen N`). The kernel default is 500: a
    /// burst of many clients overflows it before the stack reads it, and
    /// what overflows is dropped (the `tx_dropped` count of the interface).
    pub tx_queue_len: Option<u32>,
    /// Speak the virtio-net header and take TCP segmentation and checksum
    /// offload ([`Offload::Auto`]: where the kernel accepts it).
    pub offload: Offload,
    /// Open a TAP interface (`IFF_TAP`, Ethernet frames) instead of a TUN
    /// (bare IP packets). Offload is then off, whatever `offload` says:
    /// the virtio-net header would sit in front of the Ethernet header,
    /// and the link layer ([`super::ethernet::EthernetDevice`]) does not
    /// take it.
    pub tap: bool,
}

/// A Linux TUN interface carrying bare IP packets.
pub struct TunDevice {
    dev: SyncDevice,
    name: String,
    mtu: usize,
    /// Readable while a wake is pending; `wait` polls it with the fd.
    wake_event: Arc<WakeFd>,
    dropped_on_send: u64,
    /// Set while sends fail because the link is down, so that is logged
    /// once per outage rather than once per packet.
    link_down: bool,
    /// The interface's `txqueuelen` once opened.
    queue_len: Option<u32>,
    /// The fd speaks the virtio-net header (offload on).
    vnet: bool,
    /// Super-segments read and written.
    gso_received: u64,
    gso_sent: u64,
    /// Offloaded packets of a kind the stack does not take (logged once).
    gso_unsupported: u64,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("dropped_on_send", &self.dropped_on_send)
            .finish_non_exhaustive()
    }
}

impl TunDevice {
    /// Attaches to the TUN interface `name`, creating it if it does not
    /// exist, and applies `opts`.
    ///
    /// Needs root or `CAP_NET_ADMIN` (or, for an existing persistent
    /// interface, being its owner). Errors name the interface and, for the
    /// common causes, say what to fix.
    pub fn open(name: &str, opts: &TunOptions) -> io::Result<TunDevice> {
        let mut queues = TunDevice::open_queues(name, opts, 1)?;
        queues
            .pop()
            .ok_or_else(|| open_error(name, io::Error::other("no queue opened")))
    }

    /// Attaches `queues` queues of the multi-queue TUN interface `name`
    /// (`IFF_MULTI_QUEUE`), creating it if it does not exist, and applies
    /// `opts`: one [`TunDevice`] per queue, for one shard each. The kernel
    /// spreads the packets it sends over the queues by flow. With one
    /// queue this is [`TunDevice::open`] (a single-queue interface).
    pub fn open_queues(name: &str, opts: &TunOptions, queues: usize) -> io::Result<Vec<TunDevice>> {
        let context = |e: io::Error| open_error(name, e);
        let existed = interface_exists(name);
        let multi_queue = queues > 1;

        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(name)
                .packet_information(false)
                .multi_queue(multi_queue)
                .layer(if opts.tap { Layer::L2 } else { Layer::L3 })
                .offload(offload)
                .inherit_enable_state()
                .build_sync()
        };
        let offload = if opts.tap {
            if opts.offload == Offload::On {
                log::warn!("TAP device {name}: offload is not supported in TAP mode; off");
            }
            Offload::Off
        } else {
            opts.offload.resolve()
        };
        let (dev, vnet) = if offload != Offload::Off {
            match build(true).and_then(|dev| tcp_offload_only(&dev).map(|()| dev)) {
                Ok(dev) => (dev, true),
                Err(e) if offload == Offload::On => {
                    return Err(context(io::Error::new(
                        e.kind(),
                        format!("turning offload on: {e}"),
                    )))
                }
                Err(e) => {
                    log::warn!(
                        "TUN device {name}: the kernel refused offload ({e}); \
                         using plain packets (one read or write per segment)"
                    );
                    (build(false).map_err(context)?, false)
                }
            }
        } else {
            (build(false).map_err(context)?, false)
        };

        if let Some(mtu) = opts.mtu {
            dev.set_mtu(mtu).map_err(|e| {
                context(io::Error::new(e.kind(), format!("setting MTU {mtu}: {e}")))
            })?;
        }
        if let Some((addr, prefix)) = opts.host_addr {
            match dev.add_address_v4(addr, prefix) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    log::debug!("{name}: {addr}/{prefix} already present");
                }
                Err(e) => {
                    return Err(context(io::Error::new(
                        e.kind(),
                        format!("adding address {addr}/{prefix}: {e}"),
                    )))
                }
            }
        }
        if let Some(len) = opts.tx_queue_len {
            dev.set_tx_queue_len(len).map_err(|e| {
                context(io::Error::new(
                    e.kind(),
                    format!("setting txqueuelen {len}: {e}"),
                ))
            })?;
        }
        if opts.host_addr.is_some() || !existed {
            dev.enabled(true).map_err(|e| {
                context(io::Error::new(
                    e.kind(),
                    format!("bringing the link up: {e}"),
                ))
            })?;
        }

        // Only IFF_UP matters here: IFF_RUNNING (carrier) appears a moment
        // after a queue is attached, so checking it would warn spuriously.
        if !admin_up(name).unwrap_or(true) {
            log::warn!(
                "TUN device {name} is down: packets sent will be dropped until \
                 `ip link set {name} up`"
            );
        } else if !wait_for_carrier(name, Duration::from_secs(1)) {
            log::warn!(
                "TUN device {name}: no carrier after attaching; the kernel may drop early packets"
            );
        }

        let mtu = dev
            .mtu()
            .map_err(|e| context(io::Error::new(e.kind(), format!("reading the MTU: {e}"))))?;
        let queue_len = dev.tx_queue_len().ok();
        log::info!(
            "{} {} device {name}, MTU {mtu}, txqueuelen {}, offload {}{}",
            if existed { "attached to" } else { "created" },
            if opts.tap { "TAP" } else { "TUN" },
            queue_len.map_or_else(|| "unknown".to_owned(), |q| q.to_string()),
            if vnet { "on (TSO, checksum)" } else { "off" },
            if multi_queue {
                format!(", {queues} queues")
            } else {
                String::new()
            }
        );
        let mut fds = Vec::with_capacity(queues);
        for _ in 1..queues {
            // Each clone is another fd attached as one more queue.
            let more = dev.try_clone().map_err(|e| {
                context(io::Error::new(
                    e.kind(),
                    format!("attaching queue {} of {queues}: {e}", fds.len() + 2),
                ))
            })?;
            fds.push(more);
        }
        fds.insert(0, dev);
        fds.into_iter()
            .map(|dev| {
                dev.set_nonblocking(true).map_err(context)?;
                Ok(TunDevice {
                    dev,
                    name: name.to_owned(),
                    mtu: usize::from(mtu),
                    wake_event: Arc::new(WakeFd::new().map_err(context)?),
                    dropped_on_send: 0,
                    link_down: false,
                    queue_len,
                    vnet,
                    gso_received: 0,
                    gso_sent: 0,
                    gso_unsupported: 0,
                })
            })
            .collect()
    }

    /// The IPv4 addresses the kernel side of the interface has.
    pub fn kernel_addresses(&self) -> Vec<Ipv4Addr> {
        match self.dev.addresses() {
            Ok(addrs) => addrs
                .into_iter()
                .filter_map(|a| match a {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect(),
            Err(e) => {
                log::debug!("{}: reading its addresses: {e}", self.name);
                Vec::new()
            }
        }
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Packets dropped by [`Device::send`] because the TUN queue was full
    /// or the link was down.
    pub fn dropped_on_send(&self) -> u64 {
        self.dropped_on_send
    }

    /// Writes the pieces as one packet, dropping it (counted) when the
    /// queue is full or the link down.
    fn write(&mut self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        let written = match parts {
            [one] => self.dev.send(one),
            _ => self.dev.send_vectored(parts),
        };
        match written {
            Ok(_) => {
                if self.link_down {
                    log::info!("TUN device {} is up again", self.name);
                    self.link_down = false;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.dropped_on_send += 1;
                log::trace!("{}: TUN queue full, packet dropped", self.name);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(EIO) => {
                self.dropped_on_send += 1;
                if !self.link_down {
                    log::warn!(
                        "TUN device {} is down: dropping packets sent to it",
                        self.name
                    );
                    self.link_down = true;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// What the virtio-net header `hdr` says about `packet`, or `None` to
    /// skip a packet the stack cannot take (counted, logged once).
    fn offloaded(&mut self, hdr: VnetHdr, packet: &mut [u8]) -> Option<RxMeta> {
        let Some(meta) = rx_meta(hdr, packet) else {
            return self.unsupported(hdr);
        };
        if meta.gso_size > 0 {
            self.gso_received += 1;
        }
        Some(meta)
    }

    fn unsupported(&mut self, hdr: VnetHdr) -> Option<RxMeta> {
        if self.gso_unsupported == 0 {
            log::warn!(
                "{}: dropping an offloaded packet of a kind tunstack does not take \
                 ({hdr:?}); further ones are counted only",
                self.name
            );
        }
        self.gso_unsupported += 1;
        None
    }
}

/// What the virtio-net header `hdr` says about `packet` as the stack takes
/// it: a checksum to trust, a TCP super-segment (IPv4 or IPv6), or `None`
/// for a kind it does not take. A partial checksum anywhere but in TCP or
/// UDP right after the IP header is completed here, where `hdr` says it
/// lies.
fn rx_meta(hdr: VnetHdr, packet: &mut [u8]) -> Option<RxMeta> {
    // TCP (6) or UDP (17) right after the IP header: IPv4's Protocol at
    // byte 9, or IPv6's Next Header at byte 6 (RFC 8200 §3; an extension
    // header there is neither, and its checksum is completed below).
    let tcp_or_udp = match packet.first().map(|b| b >> 4) {
        Some(4) => matches!(packet.get(9), Some(6 | 17)),
        Some(6) => matches!(packet.get(6), Some(6 | 17)),
        _ => false,
    };
    let mut meta = RxMeta::default();
    if hdr.flags & gso::F_NEEDS_CSUM != 0 {
        if tcp_or_udp {
            // Built on this host with its checksum left to the
            // "hardware": never crossed a wire, nothing to verify.
            meta.checksum_trusted = true;
        } else if !gso::complete_checksum_at(packet, hdr.csum_start, hdr.csum_offset) {
            return None;
        }
    } else if hdr.flags & gso::F_DATA_VALID != 0 {
        meta.checksum_trusted = true;
    }
    match hdr.gso_type & !gso::GSO_ECN {
        gso::GSO_NONE => {}
        // The kernel's TSO, for IPv4 and IPv6 alike (`TUN_F_TSO4 |
        // TUN_F_TSO6`): one packet whose IP length covers the whole
        // payload, handed on whole.
        gso::GSO_TCPV4 | gso::GSO_TCPV6 if hdr.gso_size > 0 => {
            meta.gso_size = hdr.gso_size;
        }
        _ => return None,
    }
    Some(meta)
}

/// Sleeps until `a` or `b` has a packet to read, or `timeout` passes
/// (`None`: no limit); spurious returns are allowed, and the devices'
/// [`Waker`]s are not watched. For a program that moves packets between two
/// interfaces on one thread (`tunstack relay`).
pub fn wait_either(a: &TunDevice, b: &TunDevice, timeout: Option<Duration>) -> io::Result<()> {
    let mut fds = [a, b].map(|d| libc::pollfd {
        fd: d.dev.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    ppoll(&mut fds, timeout)
}

/// `ppoll` on `fds` for at most `timeout` (`None`: no limit), to the
/// nanosecond the kernel's timer slack allows. An interrupted call counts
/// as a (spurious) return.
#[allow(unsafe_code)]
fn ppoll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a slice of initialised pollfds, valid and exclusively
    // ours for the call, and its length is passed with it; `ts_ptr` is null
    // or points at `ts`, alive for the call; a null signal mask leaves the
    // thread's mask as it is.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// A Linux eventfd: [`WakeFd::trigger`] makes it readable until
/// [`WakeFd::drain`], from any thread. The device's [`Waker`] rings it
/// to end a `wait` early.
struct WakeFd(OwnedFd);

impl WakeFd {
    #[allow(unsafe_code)]
    fn new() -> io::Result<WakeFd> {
        // SAFETY: eventfd takes two integers and touches no memory of ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor eventfd just opened for us and
        // nothing else owns it.
        Ok(WakeFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Adds one to the counter: the fd turns readable.
    #[allow(unsafe_code)]
    fn trigger(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, alive for the call, to the
        // eventfd we own.
        let rc = unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
        // WouldBlock: the counter is at its maximum, the fd readable anyway.
        would_block_is_done(rc)
    }

    /// Reads the counter back to zero: the fd is no longer readable.
    #[allow(unsafe_code)]
    fn drain(&self) -> io::Result<()> {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`, alive and ours for
        // the call, from the eventfd we own.
        let rc = unsafe { libc::read(self.fd(), (&mut count as *mut u64).cast(), 8) };
        // WouldBlock: nothing was pending (another wait drained it first).
        would_block_is_done(rc)
    }
}

/// The result of an eventfd `read` or `write` that returned `rc`: an
/// error, except `EAGAIN`, which leaves the eventfd as the caller wanted.
fn would_block_is_done(rc: isize) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
    }
    Ok(())
}

/// Offers the kernel checksum and TCP segmentation offload only: tun-rs
/// also turns on UDP segmentation (`TUN_F_USO4/6`) where the kernel has it,
/// and tunstack does not take UDP super-datagrams.
#[allow(unsafe_code)]
fn tcp_offload_only(dev: &SyncDevice) -> io::Result<()> {
    let flags = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    // SAFETY: the fd is the open TUN descriptor `dev` owns, alive for the
    // call; TUNSETOFFLOAD takes its argument by value and touches no
    // memory of ours.
    let rc = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(flags),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Device for TunDevice {
    /// The interface MTU, as read (or set) by [`TunDevice::open`].
    fn mtu(&self) -> usize {
        self.mtu
    }

    /// Reads one packet. Anything the kernel sends is returned, not only
    /// IPv4 (e.g. IPv6 router solicitations): the IP layer drops and counts
    /// what it does not handle. With offload on, the packet is moved to the
    /// front of `buf` with its checksum completed (a super-segment comes
    /// whole); [`Device::recv_with`] avoids both.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(r) = self.recv_with(buf)? else {
            return Ok(None);
        };
        if r.start > 0 {
            buf.copy_within(r.start..r.start + r.len, 0);
            if r.meta.checksum_trusted {
                gso::complete_checksum(&mut buf[..r.len]);
            }
        }
        Ok(Some(r.len))
    }

    /// Reads one packet; with offload on, reads the virtio-net header in
    /// front of it and says what it holds.
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        loop {
            let n = match self.dev.recv(buf) {
                Ok(n) => n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            if !self.vnet {
                return Ok(Some(Received {
                    start: 0,
                    len: n,
                    meta: RxMeta::default(),
                }));
            }
            let Some(hdr) = VnetHdr::decode(&buf[..n]) else {
                continue;
            };
            match self.offloaded(hdr, &mut buf[VNET_HDR_LEN..n]) {
                Some(meta) => {
                    return Ok(Some(Received {
                        start: VNET_HDR_LEN,
                        len: n - VNET_HDR_LEN,
                        meta,
                    }))
                }
                None => continue,
            }
        }
    }

    /// Writes one packet. If the TUN queue is full, or the link is down
    /// (the kernel answers `EIO`), the packet is dropped and counted, as a
    /// real link drops, rather than blocking or failing the runtime. Other
    /// errors are returned; `InvalidInput` means the packet was not IP.
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.send_with(packet, TxMeta::default())
    }

    /// Writes one packet, a TCP super-segment or one with a partial
    /// checksum as `meta` says (offload on; without it, the work is done
    /// in software first).
    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        if !self.vnet {
            if meta.is_plain() {
                return self.write(&[IoSlice::new(packet)]);
            }
            return super::send_in_software(packet, meta, &mut |p| self.write(&[IoSlice::new(p)]));
        }
        let Some(hdr) = VnetHdr::for_packet(packet, meta.gso_size, meta.checksum_partial) else {
            // Not what the metadata says (a bug above us): do it in software.
            return super::send_in_software(packet, meta, &mut |p| {
                let plain = VnetHdr::default().encode();
                self.write(&[IoSlice::new(&plain), IoSlice::new(p)])
            });
        };
        if hdr.gso_type != gso::GSO_NONE {
            self.gso_sent += 1;
        }
        let hdr = hdr.encode();
        self.write(&[IoSlice::new(&hdr), IoSlice::new(packet)])
    }

    /// Sleeps until a packet can be read, the waker fires, or `timeout`
    /// passes, to the microsecond: `ppoll` takes a `timespec`, where
    /// `poll` (and tun-rs's wait on it) would round a 50 µs pacing or
    /// delay timer up to a whole millisecond.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut fds = [self.dev.as_raw_fd(), self.wake_event.fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        ppoll(&mut fds, timeout)?;
        // A wake that came before this `wait` left the eventfd readable
        // and returned us at once; draining it here re-arms it, and one
        // that lands after the drain is still seen by the caller, which
        // drains its command queue after every `wait`.
        if fds[1].revents & libc::POLLIN != 0 {
            self.wake_event.drain()?;
        }
        Ok(())
    }

    /// The stack's own send drops, and the interface's drop counts from
    /// `/proc/self/net/dev` (this namespace's view).
    fn counters(&self) -> DeviceCounters {
        let kernel = interface_drops(&self.name);
        DeviceCounters {
            send_dropped: self.dropped_on_send,
            kernel_to_stack_dropped: kernel.map(|k| k.tx_dropped),
            stack_to_kernel_dropped: kernel.map(|k| k.rx_dropped),
            queue_len: self.queue_len,
            offload: self.vnet,
            gso_received: self.gso_received,
            gso_sent: self.gso_sent,
            gso_unsupported: self.gso_unsupported,
            faults: None,
            link: None,
        }
    }

    fn offload(&self) -> bool {
        self.vnet
    }

    fn waker(&self) -> Waker {
        let event = Arc::clone(&self.wake_event);
        let name = self.name.clone();
        Waker::new(move || {
            if let Err(e) = event.trigger() {
                log::warn!("{name}: waking the device failed: {e}");
            }
        })
    }
}

/// An interface's drop counts, from the kernel's point of view: `rx` is what
/// the stack wrote, `tx` what the kernel sent toward the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InterfaceDrops {
    rx_dropped: u64,
    tx_dropped: u64,
}

/// The drop counts of `name` in `/proc/self/net/dev`, if it is listed.
fn interface_drops(name: &str) -> Option<InterfaceDrops> {
    let table = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    parse_net_dev(&table, name)
}

/// Finds `name`'s row in a `/proc/net/dev` table: after `name:` come eight
/// receive columns (bytes, packets, errs, drop, ...) and eight transmit
/// columns in the same order.
fn parse_net_dev(table: &str, name: &str) -> Option<InterfaceDrops> {
    table.lines().find_map(|line| {
        let (iface, columns) = line.split_once(':')?;
        if iface.trim() != name {
            return None;
        }
        let cols: Vec<u64> = columns
            .split_whitespace()
            .map(|c| c.parse().ok())
            .collect::<Option<_>>()?;
        Some(InterfaceDrops {
            rx_dropped: *cols.get(3)?,
            tx_dropped: *cols.get(11)?,
        })
    })
}

/// Whether the interface `name` exists in this process's network namespace.
///
/// Reads `/proc/self/net/dev`, which (unlike `/sys/class/net`) always
/// reflects the caller's namespace. If it cannot be read, assumes the
/// interface exists, so that `open` leaves its state alone.
fn interface_exists(name: &str) -> bool {
    match std::fs::read_to_string("/proc/self/net/dev") {
        Ok(table) => table
            .lines()
            .skip(2)
            .filter_map(|line| line.split_once(':'))
            .any(|(iface, _)| iface.trim() == name),
        Err(e) => {
            log::debug!("reading /proc/self/net/dev: {e}; assuming {name} exists");
            true
        }
    }
}

/// Wraps `e` as "opening TUN device NAME: ..." with a hint for the usual
/// causes.
fn open_error(name: &str, e: io::Error) -> io::Error {
    let hint = match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::PermissionDenied, _) => {
            " (needs root or CAP_NET_ADMIN, e.g. `sudo setcap cap_net_admin+ep <binary>`)"
        }
        (io::ErrorKind::NotFound, _) => {
            " (/dev/net/tun is missing: is the tun module loaded? try `modprobe tun`)"
        }
        (_, Some(ENODEV)) => " (/dev/net/tun has no driver: is the tun module loaded?)",
        (io::ErrorKind::ResourceBusy, _) => " (another process is attached to it)",
        (_, Some(EINVAL)) => {
            " (is it an existing interface of another kind: a TAP, or a TUN created \
             with(out) multi_queue? `--queues N` above 1 needs `ip tuntap add ... multi_queue`)"
        }
        _ => "",
    };
    io::Error::new(e.kind(), format!("opening TUN device {name}: {e}{hint}"))
}

/// Whether the interface is administratively up (IFF_UP), from sysfs.
fn admin_up(name: &str) -> Option<bool> {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    Some(flags & 0x1 != 0)
}

/// Waits until the kernel reports carrier on the interface. The kernel turns
/// a TUN link's carrier on in deferred work after a queue attaches and drops
/// what it would send before then, so the stack must not report itself ready
/// earlier. True once `operstate` is `up` or `unknown` (a TUN with carrier),
/// or where sysfs is absent.
fn wait_for_carrier(name: &str, limit: Duration) -> bool {
    let path = format!("/sys/class/net/{name}/operstate");
    let start = std::time::Instant::now();
    loop {
        match std::fs::read_to_string(&path) {
            // A TUN has no operstate of its own: with carrier it reads
            // "unknown" (RFC 2863 has no better word), without it "down".
            Ok(state) if matches!(state.trim(), "up" | "unknown") => return true,
            Ok(_) => {}
            Err(_) => return true,
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

    /// Whether `fd` polls readable right now.
    fn readable(fd: RawFd) -> bool {
        let mut fds = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        ppoll(&mut fds, Some(Duration::ZERO)).expect("ppoll");
        fds[0].revents & libc::POLLIN != 0
    }

    /// The waker's eventfd: a trigger (twice, from another thread too)
    /// makes it readable, so a `wait` returns; one drain re-arms it; a
    /// drain with nothing pending is no error. A `ppoll` on it with a
    /// timeout returns once it is triggered.
    #[test]
    fn the_wake_fd_is_readable_from_trigger_until_drain() {
        let w = Arc::new(WakeFd::new().expect("eventfd"));
        assert!(!readable(w.fd()));
        w.trigger().expect("trigger");
        let other = Arc::clone(&w);
        std::thread::spawn(move || other.trigger().expect("trigger"))
            .join()
            .expect("thread");
        assert!(readable(w.fd()));
        w.drain().expect("drain");
        assert!(!readable(w.fd()));
        w.drain().expect("a drain with nothing pending");
        let other = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.trigger().expect("trigger");
        });
        let mut fds = [libc::pollfd {
            fd: w.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        ppoll(&mut fds, Some(Duration::from_secs(30))).expect("ppoll");
        assert!(fds[0].revents & libc::POLLIN != 0, "woken by the trigger");
        t.join().expect("thread");
    }

    /// An IPv6 TCP segment (`udp`: a UDP datagram) with a full checksum,
    /// and the same with the checksum field holding the pseudo-header sum
    /// (what the kernel hands over with `F_NEEDS_CSUM`).
    fn v6_packet(udp: bool, payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let b = etherparse::PacketBuilder::ipv6(A6.octets(), B6.octets(), 64);
        let mut full = Vec::new();
        let (next_header, at) = if udp {
            b.udp(5353, 53).write(&mut full, payload).expect("fits");
            (17, 46)
        } else {
            b.tcp(40000, 80, 1, 1000)
                .ack(2)
                .write(&mut full, payload)
                .expect("fits");
            (6, 56)
        };
        let mut partial = full.clone();
        let sum = crate::wire::ipv6::pseudo_header_sum(A6, B6, next_header, full.len() - 40);
        partial[at..at + 2].copy_from_slice(&sum.sum().to_be_bytes());
        (full, partial)
    }

    fn needs_csum(csum_start: u16, csum_offset: u16) -> VnetHdr {
        VnetHdr {
            flags: gso::F_NEEDS_CSUM,
            csum_start,
            csum_offset,
            ..VnetHdr::default()
        }
    }

    #[test]
    fn v6_tcp_and_udp_with_a_partial_checksum_are_trusted_as_they_are() {
        for (udp, offset) in [(false, 16), (true, 6)] {
            let (_, partial) = v6_packet(udp, b"data");
            let mut p = partial.clone();
            let meta = rx_meta(needs_csum(40, offset), &mut p).expect("taken");
            assert_eq!(
                meta,
                RxMeta {
                    checksum_trusted: true,
                    gso_size: 0
                }
            );
            // Left partial: the stack skips the check.
            assert_eq!(p, partial);
        }
        // The kernel verified it.
        let (full, _) = v6_packet(false, b"data");
        let valid = VnetHdr {
            flags: gso::F_DATA_VALID,
            ..VnetHdr::default()
        };
        let meta = rx_meta(valid, &mut full.clone()).expect("taken");
        assert!(meta.checksum_trusted);
    }

    #[test]
    fn a_v6_partial_checksum_behind_an_extension_header_is_completed_here() {
        let (full, partial) = v6_packet(false, b"data");
        // A Hop-by-Hop header (PadN) between the IPv6 and TCP headers.
        let with_hbh = |p: &[u8]| {
            let mut q = p[..40].to_vec();
            q[6] = 0;
            q[5] += 8;
            q.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
            q.extend_from_slice(&p[40..]);
            q
        };
        let mut p = with_hbh(&partial);
        let meta = rx_meta(needs_csum(48, 16), &mut p).expect("taken");
        assert!(!meta.checksum_trusted, "the stack verifies it");
        assert_eq!(p, with_hbh(&full));
        // A field past the end: not something the stack can take.
        assert_eq!(rx_meta(needs_csum(48, 200), &mut with_hbh(&partial)), None);
    }

    #[test]
    fn v6_tcp_super_segments_are_taken_like_v4_ones() {
        let (_, partial) = v6_packet(false, &[7u8; 4000]);
        for gso_type in [
            gso::GSO_TCPV6,
            gso::GSO_TCPV6 | gso::GSO_ECN,
            gso::GSO_TCPV4,
        ] {
            let hdr = VnetHdr {
                gso_type,
                gso_size: 1428,
                hdr_len: 60,
                ..needs_csum(40, 16)
            };
            let meta = rx_meta(hdr, &mut partial.clone()).expect("taken");
            assert_eq!(
                meta,
                RxMeta {
                    checksum_trusted: true,
                    gso_size: 1428
                }
            );
        }
        // No segment size, or UDP segmentation (`GSO_UDP_L4`, never
        // offered): not taken.
        for (gso_type, gso_size) in [(gso::GSO_TCPV6, 0), (5, 1428)] {
            let hdr = VnetHdr {
                gso_type,
                gso_size,
                ..needs_csum(40, 16)
            };
            assert_eq!(rx_meta(hdr, &mut partial.clone()), None);
        }
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
tstk0: 5362904   76617    0    7    0     0          0         0 34567890  123456    0 40469    0     0       0          0
";

    #[test]
    fn net_dev_rows_give_the_drop_columns() {
        assert_eq!(
            parse_net_dev(NET_DEV, "tstk0"),
            Some(InterfaceDrops {
                rx_dropped: 7,
                tx_dropped: 40469
            })
        );
        assert_eq!(
            parse_net_dev(NET_DEV, "lo"),
            Some(InterfaceDrops {
                rx_dropped: 0,
                tx_dropped: 0
            })
        );
        assert_eq!(parse_net_dev(NET_DEV, "tstk"), None);
        assert_eq!(parse_net_dev("tstk0: 1 2 3\n", "tstk0"), None);
    }
}
