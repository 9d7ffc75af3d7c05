//! One run: two hosts, the link, the applications and a virtual clock.
//!
//! The loop delivers due packets, runs due timers, lets woken applications
//! act, moves the hosts' output onto the link and checks the invariants;
//! then it jumps the clock to the next thing scheduled (a delivery, a timer,
//! an application wake-up). It ends when every application is done, both
//! connection tables are empty and nothing is in flight — or fails on the
//! first broken invariant, on a stall (nothing scheduled, or the virtual
//! time budget spent) or a livelock (the clock stops advancing).

use std::fmt::Write as _;
use std::time::Duration;

use tunstack::link::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN};
use tunstack::time::Instant;
use tunstack::Medium;

use super::app::Endpoint;
use super::host::{Host, Io, TunHost, Wake};
use super::link::{carries_tcp, describe_on, ethertype, version, Link, LinkCounters};
use super::rng::{mix, Rng};
use super::scenario::{host_mac, Ending, Family, Pairing, Scenario, PREFIX6, SERVER_PORT};
use super::smol::SmolHost;
use super::trace;

/// Virtual time a run may take.
pub const BUDGET: Duration = Duration::from_secs(30 * 60);
/// Loop iterations without the clock moving before it is a livelock.
const SAME_INSTANT_LIMIT: u32 = 100_000;

/// The trace's name of host `side`.
fn host_name(side: usize) -> &'static str {
    if side == 0 {
        "A"
    } else {
        "B"
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Virtual time at the end.
    pub end: Instant,
    /// Loop iterations.
    pub iterations: u64,
    /// Both directions' counters added up.
    pub link: LinkCounters,
    /// Application bytes delivered.
    pub bytes: u64,
    /// When an application last read data (`Instant::ZERO` if none did).
    pub last_read: Instant,
    /// A hash of the headers of every packet sent, in order (the TCP
    /// checksum in them stands in for the payload): two runs with the same
    /// digest sent the same packets.
    pub digest: u64,
    /// Over Ethernet, frames sent that carry no TCP: ARP, neighbour
    /// discovery (and smoltcp's MLD reports).
    pub link_frames: u64,
}

/// The test hook for the harness's own tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hooks {
    /// The link rewrites payload bytes and fixes the checksum.
    pub evil_link: bool,
}

fn make_host(s: &Scenario, side: usize) -> Box<dyn Host> {
    let seed = mix(s.seed ^ (0xA5 + side as u64));
    if s.pairing.is_smoltcp(side) {
        let prefix = match s.family {
            Family::V4 => 24,
            Family::V6 => PREFIX6,
        };
        let mac = (s.medium == Medium::Ethernet).then(|| host_mac(side));
        Box::new(SmolHost::new(
            s.host_ip(side),
            prefix,
            s.mtu,
            mac,
            seed,
            s.smol,
        ))
    } else {
        Box::new(TunHost::new(&s.tun[side], s.mtu, seed, s.keepalive))
    }
}

struct World<'a> {
    s: &'a Scenario,
    hosts: [Box<dyn Host>; 2],
    link: Link,
    /// `eps[c][side]`.
    eps: Vec<[Endpoint; 2]>,
    /// Client port of each connection, once connected.
    ports: Vec<Option<u16>>,
    now: Instant,
    verbose: bool,
    listening: bool,
    wakes: Vec<Wake>,
    out: Vec<Vec<u8>>,
    digest: u64,
    /// `tcp_in[side]`: what the link delivered to host `side` that carries
    /// TCP (over IP, every packet; over Ethernet, not ARP or neighbour
    /// discovery), and how much of that was clean.
    tcp_in: [(u64, u64); 2],
    /// See [`Outcome::link_frames`].
    link_frames: u64,
    /// In a verbose run, print the hosts' connections this often
    /// (`TUNSTACK_SIM_PROBE_MS`).
    probe: Option<Duration>,
}

/// Folds the IP and TCP headers of `p` (their first 40 bytes over IPv4,
/// 60 over IPv6; over Ethernet the frame's header, then those of its IP
/// packet, or its whole ARP packet) into `digest`.
fn digest_packet(medium: Medium, digest: u64, p: &[u8]) -> u64 {
    let headers = match medium {
        Medium::Ip if version(p) == Some(6) => 60,
        Medium::Ip => 40,
        Medium::Ethernet if ethertype(p) == Some(ETHERTYPE_IPV6) => HEADER_LEN + 60,
        Medium::Ethernet => HEADER_LEN + 40,
    };
    let mut d = mix(digest ^ p.len() as u64);
    for chunk in p[..p.len().min(headers)].chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        d = mix(d ^ u64::from_le_bytes(word));
    }
    d
}

/// Whether `p` is a fragment: an IPv4 packet with More Fragments or an
/// offset (RFC 791 §3.1), or an IPv6 packet whose first header is a
/// Fragment header (next header 44, RFC 8200 §4.5).
fn is_fragment(p: &[u8]) -> bool {
    match version(p) {
        Some(4) => p.len() >= 8 && u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0,
        Some(6) => p.get(6) == Some(&44),
        _ => false,
    }
}

/// Runs `s`; `verbose` prints the per-packet trace.
pub fn run(s: &Scenario, verbose: bool, hooks: Hooks) -> Result<Outcome, String> {
    let mut rng = Rng::new(mix(s.seed) ^ 0x11ac);
    let mut link = Link::new(s.faults.clone(), &mut rng.fork(1));
    link.set_medium(s.medium);
    link.set_evil(hooks.evil_link);
    let eps = s
        .conns
        .iter()
        .enumerate()
        .map(|(c, plan)| {
            [0, 1].map(|side| {
                let r = rng.fork(1000 + 2 * c as u64 + side as u64);
                Endpoint::new(s.seed, c, side, plan.ends[side].clone(), r)
            })
        })
        .collect();
    let mut w = World {
        s,
        hosts: [make_host(s, 0), make_host(s, 1)],
        link,
        eps,
        ports: vec![None; s.conns.len()],
        now: Instant::ZERO,
        verbose,
        listening: true,
        wakes: Vec::new(),
        out: Vec::new(),
        digest: 0,
        tcp_in: [(0, 0); 2],
        link_frames: 0,
        probe: std::env::var("TUNSTACK_SIM_PROBE_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|_| verbose)
            .map(Duration::from_millis),
    };
    w.hosts[1].listen(s.listen_ip(), SERVER_PORT, s.conns.len());
    let result = w.run_loop();
    trace::clear_context();
    result.map_err(|e| format!("{e}\n{}", w.report()))
}

impl World<'_> {
    fn ctx(&self, side: usize) {
        if self.verbose {
            trace::set_context(host_name(side), self.now);
        }
    }

    fn graceful(&self, c: usize) -> bool {
        !matches!(self.s.conns[c].ending, Ending::Abort(_))
    }

    fn run_loop(&mut self) -> Result<Outcome, String> {
        let n = self.s.conns.len();
        let mut iterations = 0u64;
        let mut same_instant = 0u32;
        let mut probe_at = Instant::ZERO;
        loop {
            iterations += 1;
            if let Some(every) = self.probe.filter(|_| self.now >= probe_at) {
                for side in 0..2 {
                    let dump = self.hosts[side].dump();
                    eprint!("{} {} probe:\n{dump}", self.now, host_name(side));
                }
                probe_at = self.now + every;
            }
            self.start_connections()?;
            self.deliver();
            for side in 0..2 {
                self.ctx(side);
                self.hosts[side].poll(self.now);
            }
            self.gather_wakeups()?;
            self.run_apps()?;
            self.gather_wakeups()?;
            self.transmit()?;
            for side in 0..2 {
                self.hosts[side].check_bounds(n)?;
                if self.link.in_flight(side) > self.link.capacity(side) {
                    return Err(format!("link queue {side} over its bound"));
                }
            }
            self.check_prefixes()?;
            if self.listening && self.servers_done() {
                self.ctx(1);
                self.hosts[1].stop_listening(self.now);
                self.listening = false;
            }
            if !self.listening
                && self.apps_done()
                && self.link.is_empty()
                && self.hosts[0].is_quiet()
                && self.hosts[1].is_quiet()
            {
                break;
            }
            let next = self.next_time();
            let Some(next) = next else {
                return Err(format!("STALL at {}: nothing is scheduled", self.now));
            };
            if next > Instant::ZERO + BUDGET {
                return Err(format!(
                    "STALL: not finished within {:?} of virtual time (next event at {next})",
                    BUDGET
                ));
            }
            if next == self.now {
                same_instant += 1;
                if same_instant > SAME_INSTANT_LIMIT {
                    return Err(format!(
                        "LIVELOCK at {}: {SAME_INSTANT_LIMIT} iterations without time advancing",
                        self.now
                    ));
                }
            } else {
                same_instant = 0;
            }
            self.now = next;
        }
        self.final_checks()?;
        let mut link = self.link.counters(0);
        link.add(&self.link.counters(1));
        Ok(Outcome {
            end: self.now,
            iterations,
            link,
            bytes: self
                .eps
                .iter()
                .flat_map(|e| e.iter())
                .map(|e| e.checker.received())
                .sum(),
            last_read: self
                .eps
                .iter()
                .flat_map(|e| e.iter())
                .filter_map(|e| e.last_read_at)
                .max()
                .unwrap_or(Instant::ZERO),
            digest: self.digest,
            link_frames: self.link_frames,
        })
    }

    fn start_connections(&mut self) -> Result<(), String> {
        for c in 0..self.s.conns.len() {
            if self.ports[c].is_some() || self.s.conns[c].start > self.now {
                continue;
            }
            self.ctx(0);
            let remote = self.s.server_addr(c);
            let nodelay = self.eps[c][0].plan.nodelay;
            let (h, port) = self.hosts[0].connect(self.now, c, remote, nodelay)?;
            if self.verbose {
                eprintln!("{} A app c{c}: connect from port {port}", self.now);
            }
            self.ports[c] = Some(port);
            self.eps[c][0].handle = Some(h);
            self.eps[c][0].woken = true;
        }
        Ok(())
    }

    fn deliver(&mut self) {
        for dir in 0..2 {
            let dst = 1 - dir;
            while let Some((p, corrupt)) = self.link.pop_due(dir, self.now) {
                if self.verbose {
                    eprintln!(
                        "{} {}>{} deliver {}{}",
                        self.now,
                        host_name(dir),
                        host_name(dst),
                        describe_on(self.s.medium, &p),
                        if corrupt { " (corrupted)" } else { "" }
                    );
                }
                // The link corrupts only what carries TCP (see `link`).
                if self.s.medium == Medium::Ip || corrupt || carries_tcp(self.s.medium, &p) {
                    self.tcp_in[dst].0 += 1;
                    self.tcp_in[dst].1 += u64::from(!corrupt);
                }
                self.ctx(dst);
                self.hosts[dst].deliver(self.now, &p);
            }
        }
    }

    fn gather_wakeups(&mut self) -> Result<(), String> {
        for side in 0..2 {
            self.wakes.clear();
            self.hosts[side].wakeups(&mut self.wakes);
            for i in 0..self.wakes.len() {
                match self.wakes[i] {
                    Wake::Conn(h) => {
                        for e in self.eps.iter_mut() {
                            if e[side].handle == Some(h) && !e[side].released {
                                e[side].woken = true;
                            }
                        }
                    }
                    Wake::All => {
                        for e in self.eps.iter_mut() {
                            e[side].woken = true;
                        }
                    }
                    Wake::Accept if side == 1 => self.accept_all()?,
                    Wake::Accept => {}
                }
            }
        }
        Ok(())
    }

    fn accept_all(&mut self) -> Result<(), String> {
        self.ctx(1);
        loop {
            let ports = &self.ports;
            let eps = &self.eps;
            let nodelay = |port: u16| {
                ports
                    .iter()
                    .position(|p| *p == Some(port))
                    .is_some_and(|c| eps[c][1].plan.nodelay)
            };
            let Some((h, port)) = self.hosts[1].accept(self.now, &nodelay) else {
                return Ok(());
            };
            let Some(c) = self.ports.iter().position(|p| *p == Some(port)) else {
                return Err(format!("accepted a connection from unknown port {port}"));
            };
            if self.eps[c][1].handle.is_some() {
                return Err(format!(
                    "conn {c} accepted twice (port {port}): the server saw two connections for one 4-tuple"
                ));
            }
            if self.verbose {
                eprintln!("{} B app c{c}: accepted from port {port}", self.now);
            }
            self.eps[c][1].handle = Some(h);
            self.eps[c][1].woken = true;
        }
    }

    fn run_apps(&mut self) -> Result<(), String> {
        for c in 0..self.eps.len() {
            let graceful = self.graceful(c);
            for side in 0..2 {
                if !self.eps[c][side].due(self.now) {
                    continue;
                }
                let peer_sent = self.eps[c][1 - side].sent;
                self.ctx(side);
                let ep = &mut self.eps[c][side];
                ep.step(
                    self.hosts[side].as_mut(),
                    self.now,
                    peer_sent,
                    graceful,
                    self.verbose,
                )
                .map_err(|e| format!("conn {c} {}: {e}", ["client", "server"][side]))?;
            }
        }
        Ok(())
    }

    fn transmit(&mut self) -> Result<(), String> {
        for side in 0..2 {
            self.ctx(side);
            self.out.clear();
            self.hosts[side].drain(self.now, &mut self.out);
            if self.out.len() > 10_000 {
                return Err(format!(
                    "host {} emitted {} packets at once (storm)",
                    host_name(side),
                    self.out.len()
                ));
            }
            for p in std::mem::take(&mut self.out) {
                match self.s.medium {
                    Medium::Ip => self.check_packet(side, &p)?,
                    Medium::Ethernet => self.check_frame(side, &p)?,
                }
                let summary = if self.verbose {
                    describe_on(self.s.medium, &p)
                } else {
                    String::new()
                };
                self.digest = digest_packet(self.s.medium, self.digest, &p);
                if self.s.medium == Medium::Ethernet && !carries_tcp(self.s.medium, &p) {
                    self.link_frames += 1;
                }
                let fates = self.link.send(self.now, side, p);
                if self.verbose {
                    let fates: Vec<String> = fates.iter().map(|f| f.to_string()).collect();
                    eprintln!(
                        "{} {}>{} send {summary} {}",
                        self.now,
                        host_name(side),
                        host_name(1 - side),
                        fates.join(" + DUP ")
                    );
                }
            }
        }
        Ok(())
    }

    /// A frame a host hands to an Ethernet link comes from the host's MAC,
    /// goes to the peer's, to broadcast or to a group, and carries ARP
    /// (allowed in either family's runs: a tunstack host announces its
    /// IPv4 address even when its connections use IPv6) or an IP packet of
    /// the EtherType's version that passes [`World::check_packet`] (over
    /// IPv6 that includes neighbour discovery).
    fn check_frame(&self, side: usize, frame: &[u8]) -> Result<(), String> {
        let who = host_name(side);
        let (Some(dst), Some(src), Some(t)) = (frame.get(0..6), frame.get(6..12), ethertype(frame))
        else {
            return Err(format!(
                "host {who} sent a runt frame of {} bytes",
                frame.len()
            ));
        };
        if src != host_mac(side).0 {
            return Err(format!(
                "host {who} sent a frame from another MAC: {}",
                describe_on(Medium::Ethernet, frame)
            ));
        }
        // Group addresses have the lowest bit of the first octet set
        // (broadcast is one of them).
        if dst != host_mac(1 - side).0 && dst[0] & 1 == 0 {
            return Err(format!(
                "host {who} sent a frame to a station not on the link: {}",
                describe_on(Medium::Ethernet, frame)
            ));
        }
        let ip = &frame[HEADER_LEN..];
        let want = match t {
            ETHERTYPE_ARP => return Ok(()),
            ETHERTYPE_IPV4 => 4,
            ETHERTYPE_IPV6 => 6,
            t => {
                return Err(format!(
                    "host {who} sent a frame of EtherType {t:#06x}, neither IP nor ARP"
                ))
            }
        };
        if version(ip) != Some(want) {
            return Err(format!(
                "host {who} sent an IP version {:?} packet in a frame of EtherType {t:#06x}",
                version(ip)
            ));
        }
        self.check_packet(side, ip)
    }

    /// A packet a host hands to the link (over Ethernet, the IP packet of a
    /// frame) fits the link's MTU and is of the run's family: every
    /// connection of a run is, and neither stack sends anything but TCP
    /// here (no ICMP; neighbour discovery only over Ethernet).
    fn check_packet(&self, side: usize, p: &[u8]) -> Result<(), String> {
        if p.len() > self.s.mtu {
            return Err(format!(
                "host {} sent a {}-byte packet on a link of MTU {}: {}",
                host_name(side),
                p.len(),
                self.s.mtu,
                describe_on(Medium::Ip, p)
            ));
        }
        // Each stack sizes its segments to the MTU (RFC 9293 §3.7.1):
        // it never has to fragment one.
        if is_fragment(p) {
            return Err(format!(
                "host {} sent an IP fragment ({} bytes): a segment it built did not fit the MTU of {}",
                host_name(side),
                p.len(),
                self.s.mtu
            ));
        }
        let want = match self.s.family {
            Family::V4 => 4,
            Family::V6 => 6,
        };
        if version(p) != Some(want) {
            return Err(format!(
                "host {} sent an IP version {:?} packet in an {} run: {}",
                host_name(side),
                version(p),
                self.s.family,
                describe_on(Medium::Ip, p)
            ));
        }
        Ok(())
    }

    /// Nobody may have read more than the peer sent (a duplicate or
    /// invented byte past the end).
    fn check_prefixes(&self) -> Result<(), String> {
        for (c, e) in self.eps.iter().enumerate() {
            for side in 0..2 {
                e[side]
                    .checker
                    .prefix_of(e[1 - side].sent)
                    .map_err(|m| format!("conn {c} {}: {m}", ["client", "server"][side]))?;
            }
        }
        Ok(())
    }

    /// The server application will not get (or need) any more connections.
    fn servers_done(&self) -> bool {
        self.eps
            .iter()
            .all(|e| e[1].released || (e[1].handle.is_none() && e[0].aborted))
    }

    fn apps_done(&self) -> bool {
        self.eps
            .iter()
            .all(|e| e[0].released && (e[1].released || (e[1].handle.is_none() && e[0].aborted)))
    }

    fn next_time(&mut self) -> Option<Instant> {
        let now = self.now;
        if self.eps.iter().flat_map(|e| e.iter()).any(|e| e.due(now)) {
            return Some(now);
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                let t = t.max(now);
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(self.link.next_at());
        for side in 0..2 {
            consider(self.hosts[side].poll_at(now));
        }
        for e in self.eps.iter().flat_map(|e| e.iter()) {
            consider(e.next_wake());
        }
        for (c, plan) in self.s.conns.iter().enumerate() {
            if self.ports[c].is_none() {
                consider(Some(plan.start));
            }
        }
        next
    }

    fn final_checks(&mut self) -> Result<(), String> {
        for (c, e) in self.eps.iter().enumerate() {
            let graceful = self.graceful(c);
            for side in 0..2 {
                let (me, peer) = (&e[side], &e[1 - side]);
                let who = format!("conn {c} {}", ["client", "server"][side]);
                if graceful {
                    if !(me.eof && me.shut && me.released && me.sent == me.plan.total) {
                        return Err(format!(
                            "{who}: graceful run did not complete (eof {}, shut {}, released {}, sent {}/{})",
                            me.eof, me.shut, me.released, me.sent, me.plan.total
                        ));
                    }
                    me.checker
                        .finish(peer.plan.total)
                        .map_err(|m| format!("{who}: {m}"))?;
                } else {
                    me.checker
                        .prefix_of(peer.sent)
                        .map_err(|m| format!("{who}: {m}"))?;
                    if me.eof {
                        me.checker
                            .finish(peer.sent)
                            .map_err(|m| format!("{who}: {m}"))?;
                    }
                    // The end that did not abort must have seen the end:
                    // EOF, or a reset.
                    let saw_end = me.eof || matches!(me.error, Some(Io::Reset));
                    if !me.aborted && me.handle.is_some() && !saw_end {
                        return Err(format!(
                            "{who}: peer aborted but this end saw neither EOF nor a reset (error {:?})",
                            me.error
                        ));
                    }
                }
            }
        }
        for side in 0..2 {
            let (total, clean) = self.tcp_in[side];
            self.hosts[side].check_counters(total, clean)?;
        }
        Ok(())
    }

    /// The state of everything, for a failure message.
    fn report(&mut self) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "at virtual time {}:", self.now);
        for (c, e) in self.eps.iter().enumerate() {
            let _ = writeln!(
                r,
                "  conn {c} ({:?}), client port {:?}",
                self.s.conns[c].ending, self.ports[c]
            );
            for (side, ep) in e.iter().enumerate() {
                let _ = writeln!(
                    r,
                    "    {}: handle {:?} sent {}/{} received {} eof {} shut {} released {} aborted {} error {:?} pace {:?} timer {:?}",
                    ["client", "server"][side],
                    ep.handle,
                    ep.sent,
                    ep.plan.total,
                    ep.checker.received(),
                    ep.eof,
                    ep.shut,
                    ep.released,
                    ep.aborted,
                    ep.error,
                    ep.pace_until,
                    ep.timer
                );
            }
        }
        for side in 0..2 {
            let _ = writeln!(r, "  host {} ({}):", host_name(side), self.s.host_ip(side));
            r.push_str(&self.hosts[side].dump());
        }
        for dir in 0..2 {
            let _ = writeln!(
                r,
                "  link {}>{}: {} in flight, {:?}",
                host_name(dir),
                host_name(1 - dir),
                self.link.in_flight(dir),
                self.link.counters(dir)
            );
        }
        r
    }
}

/// The pairing's scenario for `seed`, run.
pub fn run_seed(pairing: Pairing, seed: u64, verbose: bool) -> Result<Outcome, String> {
    let s = Scenario::generate(pairing, seed);
    if verbose {
        eprintln!("{s}");
    }
    run(&s, verbose, Hooks::default())
}
