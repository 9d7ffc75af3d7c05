//! Counters: what the stack received, sent, and dropped, and why.
//!
//! Every packet the stack drops is counted under one [`DropReason`] (and logged
//! at `debug`), so malformed or unwanted input is visible without a capture.
//!
//! Every layer counts into these types, so this module depends on none of
//! them.

use std::fmt;

/// Why a packet was dropped: one that arrived, or (the last three reasons)
/// one the stack could not send. The `Ethernet*`, `Arp*` and `Neighbour*`
/// reasons happen only in TAP mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A frame shorter than an Ethernet header (TAP mode).
    EthernetRunt,
    /// A frame for another station: unicast to another MAC, or a group
    /// address we have not joined (TAP mode).
    EthernetNotForUs,
    /// A frame from a group or all-zero MAC, or from our own (TAP mode).
    EthernetBadSource,
    /// An EtherType other than IPv4 and ARP, or an 802.3 length (TAP mode).
    EthernetUnknownType,
    /// ARP packet truncated, or its sender fields unusable.
    ArpMalformed,
    /// ARP for another hardware or protocol type, or an unknown operation.
    ArpUnsupported,
    /// ARP whose target is another host (its sender still updates an
    /// entry we hold, RFC 826), or that claims our own address.
    ArpNotForUs,
    /// Shorter than an IPv4 header.
    Truncated,
    /// Version field is not 4.
    NotIpv4,
    /// IHL below 5 or past the end of the packet.
    BadHeaderLength,
    /// Total length below the header length or past the end of the packet.
    BadTotalLength,
    /// IPv4 header checksum does not verify.
    BadHeaderChecksum,
    /// Source address is ours, broadcast, multicast or unspecified.
    BadSourceAddress,
    /// Destination is not this stack.
    NotForUs,
    /// Time to live is zero (no conforming sender emits one).
    TtlZero,
    /// A fragment overlapped data already received (whole datagram dropped).
    FragmentOverlap,
    /// Fragment offset plus length past 65,535.
    FragmentTooLong,
    /// Misaligned, past-the-end or conflicting fragment.
    FragmentInconsistent,
    /// Too many fragments for one datagram (whole datagram dropped).
    FragmentTooMany,
    /// Reassembly memory full (a datagram that could never fit).
    FragmentNoMemory,
    /// An incomplete datagram evicted to make room for newer ones.
    FragmentEvicted,
    /// An incomplete datagram timed out (counted once per datagram).
    FragmentTimeout,
    /// A transport protocol the stack does not serve.
    UnknownProtocol,
    /// Shorter than an IPv6 header.
    Ipv6Truncated,
    /// An IPv6 packet (EtherType 0x86DD) whose version field is not 6.
    Ipv6BadVersion,
    /// IPv6 payload length past the end of the packet (or a jumbogram's zero).
    Ipv6BadPayloadLength,
    /// IPv6 source address multicast, unspecified, loopback, IPv4-mapped or ours.
    Ipv6BadSource,
    /// IPv6 destination is not one of our addresses or groups.
    Ipv6NotForUs,
    /// An IPv6 extension header or option past its end, or too many headers.
    Ipv6BadExtension,
    /// An unrecognised IPv6 option whose type says discard (RFC 8200 §4.2).
    Ipv6UnknownOption,
    /// A type 0 routing header with segments left (RFC 5095).
    Ipv6RoutingType0,
    /// Another routing header with segments left (a host does not forward).
    Ipv6RoutingUnsupported,
    /// An IPv6 packet whose next header is No Next Header (59): nothing to deliver.
    Ipv6NoNextHeader,
    /// An upper-layer protocol not served over IPv6 (TCP and UDP among them, for now).
    Ipv6UnknownNextHeader,
    /// ICMPv6 message shorter than its header.
    Icmpv6Truncated,
    /// ICMPv6 checksum (with the pseudo-header) does not verify.
    Icmpv6BadChecksum,
    /// An ICMPv6 type the stack does not act on (or an echo request to a group).
    Icmpv6Unhandled,
    /// A neighbour discovery message that fails RFC 4861 §7.1 validation (hop limit not 255, bad code, length or options), TAP mode.
    NdInvalid,
    /// A neighbour solicitation for an address that is not ours (TAP mode).
    NdNotForUs,
    /// A packet to or from one of our IPv6 addresses while it is tentative
    /// (under duplicate address detection) or found duplicate (TAP mode).
    Ipv6Tentative,
    /// ICMP message shorter than its header.
    IcmpTruncated,
    /// ICMP checksum does not verify.
    IcmpBadChecksum,
    /// An ICMP type the stack does not act on.
    IcmpUnhandled,
    /// UDP header truncated or its length field inconsistent.
    UdpBadLength,
    /// UDP checksum does not verify.
    UdpBadChecksum,
    /// No UDP socket on the destination port.
    UdpNoSocket,
    /// The socket's receive buffer was full.
    UdpReceiveBufferFull,
    /// A TCP segment that the TCP layer rejected.
    TcpRejected,
    /// A datagram of ours larger than the link MTU with Don't Fragment set
    /// (or one that cannot be fragmented to it): not sent.
    OutputTooBig,
    /// A packet of ours dropped while its next hop is resolved: more were
    /// waiting than the per-neighbour queue holds (TAP mode).
    NeighbourQueueFull,
    /// A packet of ours whose next hop never answered ARP (TAP mode).
    NeighbourUnreachable,
}

impl DropReason {
    /// Every reason, in display order.
    pub const ALL: [DropReason; 51] = [
        DropReason::EthernetRunt,
        DropReason::EthernetNotForUs,
        DropReason::EthernetBadSource,
        DropReason::EthernetUnknownType,
        DropReason::ArpMalformed,
        DropReason::ArpUnsupported,
        DropReason::ArpNotForUs,
        DropReason::Truncated,
        DropReason::NotIpv4,
        DropReason::BadHeaderLength,
        DropReason::BadTotalLength,
        DropReason::BadHeaderChecksum,
        DropReason::BadSourceAddress,
        DropReason::NotForUs,
        DropReason::TtlZero,
        DropReason::FragmentOverlap,
        DropReason::FragmentTooLong,
        DropReason::FragmentInconsistent,
        DropReason::FragmentTooMany,
        DropReason::FragmentNoMemory,
        DropReason::FragmentEvicted,
        DropReason::FragmentTimeout,
        DropReason::UnknownProtocol,
        DropReason::Ipv6Truncated,
        DropReason::Ipv6BadVersion,
        DropReason::Ipv6BadPayloadLength,
        DropReason::Ipv6BadSource,
        DropReason::Ipv6NotForUs,
        DropReason::Ipv6BadExtension,
        DropReason::Ipv6UnknownOption,
        DropReason::Ipv6RoutingType0,
        DropReason::Ipv6RoutingUnsupported,
        DropReason::Ipv6NoNextHeader,
        DropReason::Ipv6UnknownNextHeader,
        DropReason::Icmpv6Truncated,
        DropReason::Icmpv6BadChecksum,
        DropReason::Icmpv6Unhandled,
        DropReason::NdInvalid,
        DropReason::NdNotForUs,
        DropReason::Ipv6Tentative,
        DropReason::IcmpTruncated,
        DropReason::IcmpBadChecksum,
        DropReason::IcmpUnhandled,
        DropReason::UdpBadLength,
        DropReason::UdpBadChecksum,
        DropReason::UdpNoSocket,
        DropReason::UdpReceiveBufferFull,
        DropReason::TcpRejected,
        DropReason::OutputTooBig,
        DropReason::NeighbourQueueFull,
        DropReason::NeighbourUnreachable,
    ];

    /// The reasons the link layer (TAP mode) counts.
    pub const LINK: [DropReason; 12] = [
        DropReason::EthernetRunt,
        DropReason::EthernetNotForUs,
        DropReason::EthernetBadSource,
        DropReason::EthernetUnknownType,
        DropReason::ArpMalformed,
        DropReason::ArpUnsupported,
        DropReason::ArpNotForUs,
        DropReason::NdInvalid,
        DropReason::NdNotForUs,
        DropReason::Ipv6Tentative,
        DropReason::NeighbourQueueFull,
        DropReason::NeighbourUnreachable,
    ];

    /// A short, stable name (used in logs and the stats table).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "ip-truncated",
            DropReason::NotIpv4 => "ip-not-ipv4",
            DropReason::BadHeaderLength => "ip-bad-ihl",
            DropReason::BadTotalLength => "ip-bad-total-length",
            DropReason::BadHeaderChecksum => "ip-bad-checksum",
            DropReason::BadSourceAddress => "ip-bad-source",
            DropReason::NotForUs => "ip-not-for-us",
            DropReason::TtlZero => "ip-ttl-zero",
            DropReason::FragmentOverlap => "frag-overlap",
            DropReason::FragmentTooLong => "frag-too-long",
            DropReason::FragmentInconsistent => "frag-inconsistent",
            DropReason::FragmentTooMany => "frag-too-many",
            DropReason::FragmentNoMemory => "frag-no-memory",
            DropReason::FragmentEvicted => "frag-evicted",
            DropReason::FragmentTimeout => "frag-timeout",
            DropReason::UnknownProtocol => "ip-unknown-protocol",
            DropReason::Ipv6Truncated => "ipv6-truncated",
            DropReason::Ipv6BadVersion => "ipv6-bad-version",
            DropReason::Ipv6BadPayloadLength => "ipv6-bad-payload-length",
            DropReason::Ipv6BadSource => "ipv6-bad-source",
            DropReason::Ipv6NotForUs => "ipv6-not-for-us",
            DropReason::Ipv6BadExtension => "ipv6-bad-extension",
            DropReason::Ipv6UnknownOption => "ipv6-unknown-option",
            DropReason::Ipv6RoutingType0 => "ipv6-routing-type0",
            DropReason::Ipv6RoutingUnsupported => "ipv6-routing-unsupported",
            DropReason::Ipv6NoNextHeader => "ipv6-no-next-header",
            DropReason::Ipv6UnknownNextHeader => "ipv6-unknown-next-header",
            DropReason::Icmpv6Truncated => "icmpv6-truncated",
            DropReason::Icmpv6BadChecksum => "icmpv6-bad-checksum",
            DropReason::Icmpv6Unhandled => "icmpv6-unhandled",
            DropReason::NdInvalid => "nd-invalid",
            DropReason::NdNotForUs => "nd-not-for-us",
            DropReason::Ipv6Tentative => "ipv6-tentative",
            DropReason::IcmpTruncated => "icmp-truncated",
            DropReason::IcmpBadChecksum => "icmp-bad-checksum",
            DropReason::IcmpUnhandled => "icmp-unhandled",
            DropReason::UdpBadLength => "udp-bad-length",
            DropReason::UdpBadChecksum => "udp-bad-checksum",
            DropReason::UdpNoSocket => "udp-no-socket",
            DropReason::UdpReceiveBufferFull => "udp-rcvbuf-full",
            DropReason::TcpRejected => "tcp-rejected",
            DropReason::OutputTooBig => "ip-out-too-big",
            DropReason::EthernetRunt => "eth-runt",
            DropReason::EthernetNotForUs => "eth-not-for-us",
            DropReason::EthernetBadSource => "eth-bad-source",
            DropReason::EthernetUnknownType => "eth-unknown-type",
            DropReason::ArpMalformed => "arp-malformed",
            DropReason::ArpUnsupported => "arp-unsupported",
            DropReason::ArpNotForUs => "arp-not-for-us",
            DropReason::NeighbourQueueFull => "neigh-queue-full",
            DropReason::NeighbourUnreachable => "neigh-unreachable",
        }
    }

    fn index(self) -> usize {
        // `ALL` lists every variant once, so the position is always found.
        DropReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TCP layer's counters (`tunstack::tcp::TcpStats`, kept by the
/// `TcpLayer`, reported as [`Stats::tcp`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections in the table now, in any state but LISTEN (a gauge, not a
    /// count of events).
    pub connections: u64,
    /// Segments accepted for processing.
    pub segments_in: u64,
    /// Segments queued for output (a super-segment counts as the segments
    /// the device cuts it into).
    pub segments_out: u64,
    /// TCP super-segments (offload) queued for output.
    pub super_segments_out: u64,
    /// TCP super-segments (offload) received; `segments_in` counts the
    /// segments each stands for.
    pub super_segments_in: u64,
    /// Dropped: checksum did not verify.
    pub bad_checksum: u64,
    /// Dropped: too short or bad header.
    pub malformed: u64,
    /// RSTs sent.
    pub resets_sent: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// SYNs dropped because a listener's queues were full.
    pub syn_dropped: u64,
    /// Handshake-completing ACKs (a SYN cookie's or a SYN-RCVD
    /// connection's) dropped because the accept queue was full.
    pub listen_overflow: u64,
    /// SYNs answered with a SYN cookie because the SYN queue was full.
    pub syn_cookies_sent: u64,
    /// Connections opened from a returned SYN cookie.
    pub syn_cookies_accepted: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Challenge ACKs suppressed by the rate limit.
    pub challenge_acks_limited: u64,
    /// ACKs not sent in answer to out-of-window pure ACKs and SYNs (the
    /// per-connection limit against reflection).
    pub oow_acks_limited: u64,
    /// Tail loss probes sent (RFC 8985 §7).
    pub tlp_probes: u64,
    /// Segments RACK found lost by time (RFC 8985 §6).
    pub rack_lost: u64,
    /// Dropped by PAWS (RFC 7323 §5): a timestamp older than the last one.
    pub paws_rejected: u64,
    /// Dropped: no timestamps option on a connection that agreed to them
    /// (RFC 7323 §3.2).
    pub ts_missing: u64,
    /// ICMP errors acted on (a connection attempt aborted, a soft error
    /// noted, a path MTU lowered).
    pub icmp_errors: u64,
    /// ICMP errors ignored: no such connection, or a quoted sequence number
    /// not in flight (RFC 5927 §4.1).
    pub icmp_ignored: u64,
    /// Times a Fragmentation Needed message lowered a connection's MSS.
    pub pmtu_reductions: u64,
    /// Connections aborted on timeout (R2, SYN retries, keepalive).
    pub timeouts: u64,
    /// Loss recoveries and timeouts found spurious and undone (RFC 3522
    /// Eifel detection with timestamps, RFC 3708 with D-SACK).
    pub spurious_undone: u64,
}

/// The link layer's counters in TAP mode (reported as
/// [`crate::device::DeviceCounters::link`]; its drops are also counted in
/// [`Stats::dropped`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// ARP requests received.
    pub arp_requests_in: u64,
    /// ARP replies received.
    pub arp_replies_in: u64,
    /// ARP requests sent (resolutions, re-checks, announcements).
    pub arp_requests_out: u64,
    /// ARP replies sent.
    pub arp_replies_out: u64,
    /// Neighbours that never answered.
    pub resolutions_failed: u64,
    /// ARP packets from another station claiming our address.
    pub conflicts: u64,
    /// Entries in the neighbour cache now (a gauge), IPv6's included.
    pub neighbours: u64,
    /// Neighbor Solicitations received (RFC 4861), IPv6 only.
    pub nd_solicitations_in: u64,
    /// Neighbor Advertisements received.
    pub nd_advertisements_in: u64,
    /// Neighbor Solicitations sent (resolutions, re-checks).
    pub nd_solicitations_out: u64,
    /// Neighbor Advertisements sent (answers to solicitations).
    pub nd_advertisements_out: u64,
    drops: [u64; DropReason::LINK.len()],
}

impl LinkStats {
    /// Counts one drop for a link-layer reason (others are ignored).
    pub fn count_drop(&mut self, reason: DropReason) {
        if let Some(i) = DropReason::LINK.iter().position(|r| *r == reason) {
            self.drops[i] += 1;
        }
    }

    /// How many were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        DropReason::LINK
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.drops[i])
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &LinkStats) {
        self.frames_in += other.frames_in;
        self.frames_out += other.frames_out;
        self.arp_requests_in += other.arp_requests_in;
        self.arp_replies_in += other.arp_replies_in;
        self.arp_requests_out += other.arp_requests_out;
        self.arp_replies_out += other.arp_replies_out;
        self.resolutions_failed += other.resolutions_failed;
        self.conflicts += other.conflicts;
        self.neighbours += other.neighbours;
        self.nd_solicitations_in += other.nd_solicitations_in;
        self.nd_advertisements_in += other.nd_advertisements_in;
        self.nd_solicitations_out += other.nd_solicitations_out;
        self.nd_advertisements_out += other.nd_advertisements_out;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }
}

impl fmt::Display for LinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames in, {} frames out, {} ARP requests in, {} ARP replies in, {} ARP requests out, {} ARP replies out, {} neighbours, {} unresolved, {} conflicts",
            self.frames_in,
            self.frames_out,
            self.arp_requests_in,
            self.arp_replies_in,
            self.arp_requests_out,
            self.arp_replies_out,
            self.neighbours,
            self.resolutions_failed,
            self.conflicts
        )?;
        let nd = [
            self.nd_solicitations_in,
            self.nd_advertisements_in,
            self.nd_solicitations_out,
            self.nd_advertisements_out,
        ];
        if nd.iter().any(|n| *n > 0) {
            write!(
                f,
                ", {} NS in, {} NA in, {} NS out, {} NA out",
                nd[0], nd[1], nd[2], nd[3]
            )?;
        }
        Ok(())
    }
}

/// One shard's share of the traffic (filled in by the runtime).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Packets read from this shard's queue.
    pub packets_read: u64,
    /// Of those, packets that belonged to another shard and were handed
    /// over to it.
    pub handed_over: u64,
}

/// A snapshot of the stack's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// IPv4 packets received from the device (before validation).
    pub ip_packets_in: u64,
    /// IPv4 packets written to the device (each fragment counts).
    pub ip_packets_out: u64,
    /// Datagrams completed by reassembly.
    pub ip_reassembled: u64,
    /// Datagrams that went out fragmented.
    pub ip_fragmented: u64,
    /// IPv6 packets received (before validation), with an IPv6 address
    /// configured; without one they count as `ip_packets_in` and are
    /// dropped as `ip-not-ipv4`.
    pub ip6_packets_in: u64,
    /// IPv6 packets written to the device.
    pub ip6_packets_out: u64,
    /// ICMPv6 echo requests answered.
    pub icmp6_echo_replies: u64,
    /// ICMPv6 error messages sent (Parameter Problem, Time Exceeded).
    pub icmp6_errors_sent: u64,
    /// IPv6 datagrams completed by reassembly.
    pub ip6_reassembled: u64,
    /// IPv6 datagrams that went out fragmented.
    pub ip6_fragmented: u64,
    /// Echo requests answered.
    pub icmp_echo_replies: u64,
    /// Destination-unreachable messages sent.
    pub icmp_unreachables_sent: u64,
    /// Time-exceeded (reassembly) messages sent.
    pub icmp_time_exceeded_sent: u64,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_rate_limited: u64,
    /// UDP datagrams delivered to a socket.
    pub udp_datagrams_in: u64,
    /// UDP datagrams sent.
    pub udp_datagrams_out: u64,
    /// The TCP layer's counters.
    pub tcp: TcpStats,
    /// What the device and the kernel behind it dropped (filled in by the
    /// runtime; zero from [`crate::iface::Interface::stats`] alone).
    pub device: crate::device::DeviceCounters,
    /// Per shard (queue) of a multi-queue stack, in order: what each read
    /// from its queue and handed over to the shard that owns it.
    pub shards: Vec<ShardStats>,
    drops: [u64; DropReason::ALL.len()],
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            ip_packets_in: 0,
            ip_packets_out: 0,
            ip_reassembled: 0,
            ip_fragmented: 0,
            ip6_packets_in: 0,
            ip6_packets_out: 0,
            icmp6_echo_replies: 0,
            icmp6_errors_sent: 0,
            ip6_reassembled: 0,
            ip6_fragmented: 0,
            icmp_echo_replies: 0,
            icmp_unreachables_sent: 0,
            icmp_time_exceeded_sent: 0,
            icmp_rate_limited: 0,
            udp_datagrams_in: 0,
            udp_datagrams_out: 0,
            tcp: TcpStats::default(),
            device: crate::device::DeviceCounters::default(),
            shards: Vec::new(),
            drops: [0; DropReason::ALL.len()],
        }
    }
}

impl TcpStats {
    /// Adds `other`'s counts (another shard's) to these.
    pub fn add(&mut self, other: &TcpStats) {
        self.connections += other.connections;
        self.segments_in += other.segments_in;
        self.segments_out += other.segments_out;
        self.super_segments_out += other.super_segments_out;
        self.super_segments_in += other.super_segments_in;
        self.bad_checksum += other.bad_checksum;
        self.malformed += other.malformed;
        self.resets_sent += other.resets_sent;
        self.retransmits += other.retransmits;
        self.syn_dropped += other.syn_dropped;
        self.listen_overflow += other.listen_overflow;
        self.syn_cookies_sent += other.syn_cookies_sent;
        self.syn_cookies_accepted += other.syn_cookies_accepted;
        self.challenge_acks += other.challenge_acks;
        self.challenge_acks_limited += other.challenge_acks_limited;
        self.oow_acks_limited += other.oow_acks_limited;
        self.paws_rejected += other.paws_rejected;
        self.tlp_probes += other.tlp_probes;
        self.rack_lost += other.rack_lost;
        self.ts_missing += other.ts_missing;
        self.icmp_errors += other.icmp_errors;
        self.icmp_ignored += other.icmp_ignored;
        self.pmtu_reductions += other.pmtu_reductions;
        self.timeouts += other.timeouts;
        self.spurious_undone += other.spurious_undone;
    }
}

impl Stats {
    /// Adds `other`'s counts (another shard's) to these. The device's
    /// counts of the kernel's drops are the interface's, shared by every
    /// queue: they are taken once, not added.
    pub fn add(&mut self, other: &Stats) {
        self.ip_packets_in += other.ip_packets_in;
        self.ip_packets_out += other.ip_packets_out;
        self.ip_reassembled += other.ip_reassembled;
        self.ip_fragmented += other.ip_fragmented;
        self.ip6_packets_in += other.ip6_packets_in;
        self.ip6_packets_out += other.ip6_packets_out;
        self.icmp6_echo_replies += other.icmp6_echo_replies;
        self.icmp6_errors_sent += other.icmp6_errors_sent;
        self.ip6_reassembled += other.ip6_reassembled;
        self.ip6_fragmented += other.ip6_fragmented;
        self.icmp_echo_replies += other.icmp_echo_replies;
        self.icmp_unreachables_sent += other.icmp_unreachables_sent;
        self.icmp_time_exceeded_sent += other.icmp_time_exceeded_sent;
        self.icmp_rate_limited += other.icmp_rate_limited;
        self.udp_datagrams_in += other.udp_datagrams_in;
        self.udp_datagrams_out += other.udp_datagrams_out;
        self.tcp.add(&other.tcp);
        self.shards.extend_from_slice(&other.shards);
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        let (d, o) = (&mut self.device, &other.device);
        d.send_dropped += o.send_dropped;
        d.gso_received += o.gso_received;
        d.gso_sent += o.gso_sent;
        d.gso_unsupported += o.gso_unsupported;
        d.kernel_to_stack_dropped = d.kernel_to_stack_dropped.or(o.kernel_to_stack_dropped);
        d.stack_to_kernel_dropped = d.stack_to_kernel_dropped.or(o.stack_to_kernel_dropped);
        d.queue_len = d.queue_len.or(o.queue_len);
        d.offload &= o.offload;
        if let Some(o) = &o.faults {
            d.faults.get_or_insert_with(Default::default).add(o);
        }
        if let Some(o) = &o.link {
            d.link.get_or_insert_with(Default::default).add(o);
        }
    }

    /// Counts one dropped packet.
    pub fn drop(&mut self, reason: DropReason) {
        let i = reason.index();
        if let Some(c) = self.drops.get_mut(i) {
            *c += 1;
        }
    }

    /// Counts `n` packets dropped for `reason` (by a layer that keeps its
    /// own counters, like the link layer).
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        let i = reason.index();
        if let Some(c) = self.drops.get_mut(i) {
            *c += n;
        }
    }

    /// How many packets were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// All packets dropped, for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ip:   {} packets in, {} out, {} reassembled, {} fragmented",
            self.ip_packets_in, self.ip_packets_out, self.ip_reassembled, self.ip_fragmented
        )?;
        writeln!(
            f,
            "icmp: {} echo replies, {} unreachables sent, {} time-exceeded sent, {} rate-limited",
            self.icmp_echo_replies,
            self.icmp_unreachables_sent,
            self.icmp_time_exceeded_sent,
            self.icmp_rate_limited
        )?;
        if self.ip6_packets_in + self.ip6_packets_out > 0 {
            writeln!(
                f,
                "ip6:  {} packets in, {} out, {} reassembled, {} fragmented",
                self.ip6_packets_in,
                self.ip6_packets_out,
                self.ip6_reassembled,
                self.ip6_fragmented
            )?;
            writeln!(
                f,
                "icmp6: {} echo replies, {} errors sent",
                self.icmp6_echo_replies, self.icmp6_errors_sent
            )?;
        }
        writeln!(
            f,
            "udp:  {} datagrams in, {} out",
            self.udp_datagrams_in, self.udp_datagrams_out
        )?;
        let t = &self.tcp;
        writeln!(
            f,
            "tcp:  {} connections, {} segments in, {} out, {} retransmitted, {} resets sent, {} bad checksums, {} malformed, {} SYNs dropped, {} listen overflows, {} SYN cookies sent, {} of them returned (connections opened), {} challenge ACKs ({} limited), {} out-of-window ACKs limited, {} tail loss probes, {} found lost by RACK, {} spurious recoveries undone, {} PAWS drops, {} without timestamps, {} timeouts",
            t.connections, t.segments_in, t.segments_out, t.retransmits, t.resets_sent, t.bad_checksum, t.malformed, t.syn_dropped, t.listen_overflow, t.syn_cookies_sent, t.syn_cookies_accepted, t.challenge_acks, t.challenge_acks_limited, t.oow_acks_limited, t.tlp_probes, t.rack_lost, t.spurious_undone, t.paws_rejected, t.ts_missing, t.timeouts
        )?;
        let d = &self.device;
        let or_unknown = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        writeln!(
            f,
            "dev:  {} dropped on send, kernel dropped {} on the way to the stack (txqueuelen {}), {} from it",
            d.send_dropped,
            or_unknown(d.kernel_to_stack_dropped),
            d.queue_len.map_or_else(|| "-".to_owned(), |q| q.to_string()),
            or_unknown(d.stack_to_kernel_dropped),
        )?;
        if d.offload {
            writeln!(
                f,
                "offload: on, {} super-segments in, {} out, {} unsupported dropped",
                d.gso_received, d.gso_sent, d.gso_unsupported
            )?;
        }
        if let Some(faults) = &d.faults {
            writeln!(f, "faults: {faults}")?;
        }
        if let Some(link) = &d.link {
            writeln!(f, "link: {link}")?;
        }
        if self.shards.len() > 1 {
            let read: Vec<String> = self
                .shards
                .iter()
                .map(|q| q.packets_read.to_string())
                .collect();
            let over: Vec<String> = self
                .shards
                .iter()
                .map(|q| q.handed_over.to_string())
                .collect();
            writeln!(
                f,
                "queues: {}, packets read {}, handed over to their shard {}",
                self.shards.len(),
                read.join("/"),
                over.join("/")
            )?;
        }
        write!(f, "drops: {}", self.dropped_total())?;
        for reason in DropReason::ALL {
            let n = self.dropped(reason);
            if n > 0 {
                write!(f, "\n  {:<22} {}", reason.as_str(), n)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_has_its_own_counter() {
        let mut s = Stats::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                s.drop(*r);
            }
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(s.dropped(*r), i as u64 + 1, "{r}");
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
    }
}
