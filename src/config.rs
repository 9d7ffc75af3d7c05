//! Configuration of a stack: addresses, the device, limits.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::device::fault::FaultConfig;
pub use crate::device::Offload;
use crate::ip::frag::ReassemblyConfig;
pub use crate::link::{MacAddr, NeighbourConfig};
use crate::tcp::{KeepaliveConfig, TcpConfig};

/// The `txqueuelen` [`crate::Stack::new`] gives the TUN unless told otherwise.
pub const DEFAULT_TX_QUEUE_LEN: u32 = 4096;

/// What a stack's device carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Medium {
    /// Bare IP packets: a TUN device. No link layer.
    #[default]
    Ip,
    /// Ethernet II frames: a TAP device. The stack has a MAC and speaks
    /// ARP ([`crate::link`]).
    Ethernet,
}

/// Everything a [`crate::Stack`] needs to come up. `Config::default()` is the
/// documented network plan: the stack is 10.0.0.2 on `tun0`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The stack's own IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length of the link's subnet (for its broadcast address).
    pub prefix_len: u8,
    /// The stack's own IPv6 address and the prefix length of its link
    /// (`--addr6 fd00::2/64`); `None` (the default): IPv6 is off and IPv6
    /// packets are dropped as `ip-not-ipv4`, as before. On a TAP the stack
    /// also takes a link-local address, [`Config::link_local6`].
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// In TAP mode with IPv6, how many times duplicate address detection
    /// probes each address before it is used (RFC 4862 §5.1
    /// `DupAddrDetectTransmits`, default 1, a second apart); 0 uses them at
    /// once (as `ip addr add ... nodad`).
    pub dad_transmits: u32,
    /// The TUN device to attach to, or create (used by [`crate::Stack::new`]);
    /// a TAP device when [`Config::medium`] is [`Medium::Ethernet`].
    pub tun_name: String,
    /// What the device carries: bare IP packets (a TUN, the default) or
    /// Ethernet frames (a TAP, with ARP).
    pub medium: Medium,
    /// The stack's MAC in TAP mode; `None`: a random locally administered
    /// one (from [`Config::seed`] when set).
    pub mac: Option<MacAddr>,
    /// The ARP cache's limits and timers in TAP mode.
    pub neighbours: NeighbourConfig,
    /// Set the device MTU; `None` keeps the device's own.
    pub mtu: Option<u16>,
    /// Also give the kernel side of the TUN this address and bring it up.
    pub host_addr: Option<(Ipv4Addr, u8)>,
    /// Set the TUN's queue toward the stack (`txqueuelen`) to this many
    /// packets; `None` keeps the device's own (the kernel's default is 500).
    /// Default: [`DEFAULT_TX_QUEUE_LEN`], deep enough that a burst of
    /// thousands of handshakes waits for the stack rather than being dropped.
    pub tx_queue_len: Option<u32>,
    /// TCP segmentation and checksum offload on the TUN (used by
    /// [`crate::Stack::new`]): the kernel and the stack hand each other TCP
    /// super-segments of up to 64 KiB, one read or write each. Default
    /// [`Offload::Auto`]: on where the kernel accepts it.
    pub offload: Offload,
    /// Queues of the TUN (used by [`crate::Stack::new`]): above 1, a
    /// multi-queue interface (`IFF_MULTI_QUEUE`) with one shard per queue,
    /// each a thread with its own connection table. Default 1.
    pub queues: usize,
    /// Record every packet in and out to this capture file: classic pcap,
    /// or pcapng with the stack's notes as packet comments if the name
    /// ends in `.pcapng` ([`crate::notes`]).
    pub pcap: Option<PathBuf>,
    /// With offload, record each TCP super-segment as the segments the
    /// device cuts it into (the wire's view) instead of whole.
    pub pcap_segmented: bool,
    /// TTL of the packets the stack originates.
    pub ttl: u8,
    /// Fragment reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// ICMP error rate limit: sustained messages per second.
    pub icmp_errors_per_sec: u32,
    /// ICMP error rate limit: burst size.
    pub icmp_error_burst: u32,
    /// Bytes of datagrams a UDP socket may hold unread before new ones are dropped.
    pub udp_recv_buffer: usize,
    /// Seed for the stack's randomness (IP IDs, ephemeral ports). `None`: random.
    pub seed: Option<u64>,
    /// Most packets taken from the device per wakeup before the runtime
    /// looks at API commands again.
    pub rx_batch: usize,
    /// After doing work, the runtime keeps polling the device and its
    /// queues this long before it sleeps (like Linux's `SO_BUSY_POLL`): a
    /// packet that arrives meanwhile is taken without the cost of waking a
    /// sleeping thread. Bounded; an idle stack sleeps. Zero: sleep at once.
    pub busy_poll: Duration,
    /// TCP tunables (buffers, timers, retries, limits). Its `mtu` is set
    /// from the device.
    pub tcp: TcpConfig,
    /// Turn keepalive on for every TCP connection with these parameters
    /// (keepalive is otherwise off unless a socket asks, RFC 9293 MUST-24).
    pub keepalive_all: Option<KeepaliveConfig>,
    /// Faults to inject between the stack and the device (none by default).
    pub faults: FaultConfig,
    /// Keep the segment headers (never payloads) of this many of the last
    /// TCP connections, per shard, for their ladders on the HTTP status
    /// page ([`crate::ladder::recent`]); 0 (the default) keeps none and
    /// costs nothing.
    pub recent_connections: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 24,
            addr6: None,
            dad_transmits: 1,
            tun_name: "tun0".to_string(),
            medium: Medium::Ip,
            mac: None,
            neighbours: NeighbourConfig::default(),
            mtu: None,
            host_addr: None,
            tx_queue_len: Some(DEFAULT_TX_QUEUE_LEN),
            offload: Offload::Auto,
            queues: 1,
            pcap: None,
            pcap_segmented: false,
            ttl: 64,
            reassembly: ReassemblyConfig::default(),
            icmp_errors_per_sec: 1000,
            icmp_error_burst: 50,
            udp_recv_buffer: 256 * 1024,
            seed: None,
            rx_batch: 256,
            busy_poll: Duration::from_micros(50),
            tcp: TcpConfig::default(),
            keepalive_all: None,
            faults: FaultConfig::default(),
            recent_connections: 0,
        }
    }
}

impl Config {
    /// The subnet's directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        let bits = u32::from(self.addr);
        let host_mask = if self.prefix_len >= 32 {
            0
        } else {
            u32::MAX >> self.prefix_len
        };
        Ipv4Addr::from(bits | host_mask)
    }

    /// The stack's MAC in TAP mode: [`Config::mac`], else a random locally
    /// administered address from `seed`.
    pub fn mac_or_random(&self, seed: u64) -> MacAddr {
        self.mac.unwrap_or_else(|| MacAddr::random_local(seed))
    }

    /// The stack's IPv6 link-local address in TAP mode with IPv6 on: fe80::/64
    /// with the modified EUI-64 interface identifier of its MAC (RFC 4291
    /// §2.5.6 and Appendix A, RFC 4862 §5.3), so it is stable and can be
    /// read off the MAC. `None` on a TUN, without [`Config::addr6`], or
    /// before the MAC is known.
    pub fn link_local6(&self) -> Option<Ipv6Addr> {
        if self.medium != Medium::Ethernet || self.addr6.is_none() {
            return None;
        }
        self.mac.map(MacAddr::link_local6)
    }

    /// The reassembly timeout.
    pub fn reassembly_timeout(&self) -> Duration {
        self.reassembly.timeout
    }

    /// Refuses a configuration the stack cannot work with, with a message
    /// that says why: an address that cannot be a host's own (unspecified,
    /// broadcast, multicast, loopback, the subnet's network or broadcast
    /// address, the kernel side's own address), a prefix that leaves no
    /// room for two hosts, an MTU below IPv4's 68 bytes (RFC 791), or a TTL
    /// of zero (RFC 1122 §3.2.1.7).
    pub fn validate(&self) -> Result<(), String> {
        let a = self.addr;
        let why = if a.is_unspecified() {
            Some("the unspecified address")
        } else if a.is_broadcast() {
            Some("the limited broadcast address")
        } else if a.is_multicast() {
            Some("a multicast address")
        } else if a.is_loopback() {
            Some("a loopback address")
        } else if self.prefix_len > 30 {
            None
        } else if a == self.broadcast() {
            Some("the subnet's broadcast address")
        } else if u32::from(a) & !(u32::MAX >> self.prefix_len) == u32::from(a) {
            Some("the subnet's network address")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!("{a} cannot be the stack's address: it is {why}"));
        }
        if self.queues == 0 || self.queues > 64 {
            return Err(format!("{} queues: between 1 and 64", self.queues));
        }
        if self.medium == Medium::Ethernet && self.queues > 1 {
            return Err(format!(
                "{} queues: TAP mode runs one queue (the ARP cache is one table \
                 that every shard would share)",
                self.queues
            ));
        }
        if let Some(mac) = self.mac {
            if !mac.is_unicast() {
                return Err(format!(
                    "{mac} cannot be the stack's MAC: it is a group or zero address"
                ));
            }
        }
        if self.prefix_len > 32 {
            return Err(format!(
                "prefix length /{} is more than 32",
                self.prefix_len
            ));
        }
        if let Some((host, _)) = self.host_addr {
            if host == a {
                return Err(format!(
                    "{a} cannot be the stack's address: it is the kernel side's own (--host-addr)"
                ));
            }
        }
        if let Some(mtu) = self.mtu {
            if mtu < 68 {
                return Err(format!("MTU {mtu} is below IPv4's minimum of 68 bytes"));
            }
        }
        if self.ttl == 0 {
            return Err("TTL 0 is never sent (RFC 1122 §3.2.1.7)".into());
        }
        if let Some((a6, prefix)) = self.addr6 {
            validate_addr6(a6, prefix)?;
            if self.mtu.is_some_and(|m| m < 1280) {
                return Err("IPv6 needs an MTU of at least 1280 bytes (RFC 8200 §5)".into());
            }
        }
        Ok(())
    }
}

/// Refuses an IPv6 address a host cannot have as its own (RFC 4291):
/// unspecified, loopback, multicast, IPv4-mapped, or a subnet's
/// Subnet-Router anycast address (interface identifier zero, §2.6.1).
fn validate_addr6(a: Ipv6Addr, prefix: u8) -> Result<(), String> {
    let why = if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_loopback() {
        Some("the loopback address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address")
    } else if prefix < 127 && u128::from(a) & (u128::MAX >> prefix) == 0 {
        Some("the subnet's Subnet-Router anycast address")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(format!(
            "{a} cannot be the stack's IPv6 address: it is {why}"
        ));
    }
    if prefix == 0 || prefix > 128 {
        return Err(format!("IPv6 prefix length /{prefix}: between 1 and 128"));
    }
    Ok(())
}

/// A random seed from the process's randomly keyed hasher (no extra crate).
pub(crate) fn random_seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A small deterministic PRNG (xorshift64*), for IP IDs and port choice.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_host_cannot_have_are_refused_with_a_reason() {
        let with = |addr: [u8; 4]| Config {
            addr: addr.into(),
            ..Config::default()
        };
        assert_eq!(with([10, 0, 0, 2]).validate(), Ok(()));
        for (addr, why) in [
            ([0, 0, 0, 0], "unspecified"),
            ([255, 255, 255, 255], "limited broadcast"),
            ([224, 0, 0, 1], "multicast"),
            ([127, 0, 0, 1], "loopback"),
            ([10, 0, 0, 255], "subnet's broadcast"),
            ([10, 0, 0, 0], "network address"),
        ] {
            let e = with(addr).validate().expect_err("refused");
            assert!(e.contains(why), "{addr:?}: {e}");
        }
        let kernel_side = Config {
            host_addr: Some((Ipv4Addr::new(10, 0, 0, 2), 24)),
            ..Config::default()
        };
        assert!(kernel_side.validate().unwrap_err().contains("kernel side"));
        let tiny = Config {
            mtu: Some(67),
            ..Config::default()
        };
        assert!(tiny.validate().is_err());
        let tap_queues = Config {
            medium: Medium::Ethernet,
            queues: 2,
            ..Config::default()
        };
        assert!(tap_queues
            .validate()
            .unwrap_err()
            .contains("TAP mode runs one queue"));
        let group_mac = Config {
            mac: Some(MacAddr::BROADCAST),
            ..Config::default()
        };
        assert!(group_mac.validate().unwrap_err().contains("group"));
        let point_to_point = Config {
            prefix_len: 32,
            ..Config::default()
        };
        assert_eq!(point_to_point.validate(), Ok(()));
    }

    #[test]
    fn ipv6_addresses_a_host_cannot_have_are_refused_and_link_local_follows_the_mac() {
        let with = |a: &str, prefix: u8| Config {
            addr6: Some((a.parse().expect("address"), prefix)),
            ..Config::default()
        };
        assert_eq!(with("fd00::2", 64).validate(), Ok(()));
        assert_eq!(with("fd00::2", 128).validate(), Ok(()));
        for (a, why) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("ff02::1", "multicast"),
            ("::ffff:10.0.0.2", "IPv4-mapped"),
            ("fd00::", "Subnet-Router"),
        ] {
            let e = with(a, 64).validate().expect_err("refused");
            assert!(e.contains(why), "{a}: {e}");
        }
        assert!(with("fd00::2", 0).validate().is_err());
        assert!(with("fd00::2", 129).validate().is_err());
        let small = Config {
            mtu: Some(1000),
            ..with("fd00::2", 64)
        };
        assert!(small.validate().unwrap_err().contains("1280"));
        // Off by default; a link-local address only on a TAP with a MAC.
        assert_eq!(Config::default().addr6, None);
        let tap = Config {
            medium: Medium::Ethernet,
            mac: Some(MacAddr([0x02, 0, 0, 0, 0, 0x02])),
            ..with("fd00::2", 64)
        };
        assert_eq!(
            tap.link_local6(),
            Some("fe80::ff:fe00:2".parse().expect("address"))
        );
        assert_eq!(with("fd00::2", 64).link_local6(), None);
    }

    #[test]
    fn broadcast_follows_prefix() {
        let mut c = Config::default();
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        c.prefix_len = 16;
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 255, 255));
        c.prefix_len = 32;
        assert_eq!(c.broadcast(), c.addr);
    }
}
