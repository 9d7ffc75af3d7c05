//! The TCP harnesses: option parsing (`tcp_options`) and the state machine
//! of a bare `TcpLayer` driven segment by segment (`tcb_listen`,
//! `tcb_established`). Every segment it queues is checked by
//! [`check_tcp_output`].

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tunstack::tcp::{ConnId, KeepaliveConfig, OutSegment, SeqNum, TcpConfig, TcpLayer};
use tunstack::time::Instant;
use tunstack::wire::tcp::{TcpHeaderRepr, TcpOptionsRepr, TcpSegment};

use super::packets::*;
use super::*;

/// Checks one segment a TCP layer queued.
fn check_tcp_output(o: &OutSegment, cfg: &TcpConfig) -> TcpHeaderRepr {
    assert_eq!(o.src, US, "segment from a foreign address");
    let seg = match TcpSegment::parse(o.src, o.dst, &o.packet) {
        Ok(s) => s,
        Err(e) => panic!("queued TCP segment does not parse: {e:?}"),
    };
    assert!(
        o.packet.len() + 20 <= cfg.mtu,
        "segment of {} bytes does not fit the {}-byte MTU",
        o.packet.len(),
        cfg.mtu
    );
    assert!(
        seg.payload.len() <= usize::from(cfg.mss()),
        "segment payload {} exceeds our MSS {}",
        seg.payload.len(),
        cfg.mss()
    );
    let f = seg.header.flags;
    assert!(!(f.syn && f.rst), "SYN+RST sent");
    if f.rst {
        assert!(seg.payload.is_empty(), "RST with data");
    }
    seg.header
}

/// `tcp_options`: `[options (40 bytes)..., payload...]`: the first 40 bytes
/// (fewer if short) are the options area of an otherwise valid SYN to the
/// listener. Parsing must agree between the segment and the bare options,
/// the parsed options must survive emit → parse, and the listener's SYN-ACK
/// must be well formed and answer only the options offered.
pub fn tcp_options(data: &[u8]) {
    let mut input = Input::new(data);
    let opts = input.bytes(40);
    let payload = input.rest();
    let bare = TcpOptionsRepr::parse(opts);
    let syn = raw_tcp_segment(
        PEER_PORT,
        TCP_PORT,
        1000,
        0,
        flag::SYN,
        65535,
        opts,
        payload,
    );
    let padded = &syn[20..20 + opts.len().div_ceil(4) * 4];
    let seg = TcpSegment::parse(PEER, US, &syn).expect("a valid SYN parses");
    assert_eq!(seg.header.options, TcpOptionsRepr::parse(padded));
    if opts.len() & 3 == 0 {
        assert_eq!(seg.header.options, bare);
    }
    assert_eq!(seg.payload, payload);
    // Round trip through emit.
    let mut again = Vec::new();
    seg.header.emit(PEER, US, [seg.payload, &[]], &mut again);
    let reparsed = TcpSegment::parse(PEER, US, &again).expect("emitted segment parses");
    assert_eq!(reparsed.header, seg.header);
    assert_eq!(reparsed.payload, seg.payload);

    // The listener's answer.
    let cfg = TcpConfig::default();
    let mut l = TcpLayer::new(cfg.clone(), ISN_SECRET);
    let lid = l
        .listen(SocketAddrV4::new(US, TCP_PORT), 4)
        .expect("listen");
    let t0 = Instant::ZERO;
    l.on_segment(t0, PEER, US, &syn);
    let out: Vec<_> = std::iter::from_fn(|| l.pop_output()).collect();
    assert_eq!(out.len(), 1, "one SYN-ACK");
    let synack = check_tcp_output(&out[0], &cfg);
    assert!(synack.flags.syn && synack.flags.ack, "not a SYN-ACK");
    assert_eq!(synack.options.mss, Some(cfg.mss()), "SYN-ACK MSS");
    assert_eq!(
        synack.options.window_scale.is_some(),
        seg.header.options.window_scale.is_some(),
        "RFC 7323 §1.3: window scale in SYN-ACK only if offered"
    );
    assert_eq!(
        synack.options.sack_permitted, seg.header.options.sack_permitted,
        "RFC 2018 §2: SACK-permitted in the SYN-ACK exactly when the SYN offered it"
    );
    assert_eq!(
        synack.options.timestamp.is_some(),
        seg.header.options.timestamp.is_some(),
        "RFC 7323 §3.2: timestamps in the SYN-ACK exactly when the SYN offered them"
    );
    // Complete the handshake (with timestamps once agreed: RFC 7323 §3.2,
    // a segment without them is dropped), then watch the segment sizes.
    let mut ts = Vec::new();
    if let (Some((ecr, _)), Some((val, _))) =
        (synack.options.timestamp, seg.header.options.timestamp)
    {
        ts.extend_from_slice(&[1, 1, 8, 10]);
        ts.extend_from_slice(&val.to_be_bytes());
        ts.extend_from_slice(&ecr.to_be_bytes());
    }
    let ack = raw_tcp_segment(
        PEER_PORT,
        TCP_PORT,
        1001,
        synack.seq.wrapping_add(1),
        flag::ACK,
        65535,
        &ts,
        &[],
    );
    l.on_segment(t0, PEER, US, &ack);
    let id = l.accept(lid).expect("handshake completes");
    let info = l.info(id).expect("info");
    let peer_mss = seg.header.options.mss.map_or(536, u32::from);
    assert!(
        (1..=u32::from(cfg.mss())).contains(&info.mss),
        "send MSS {}",
        info.mss
    );
    assert!(
        info.mss <= peer_mss.max(64),
        "send MSS {} above the peer's {peer_mss}",
        info.mss
    );
    assert_eq!(l.send(t0, id, &[0x55; 4000]), Ok(4000));
    while let Some(o) = l.pop_output() {
        let h = check_tcp_output(&o, &cfg);
        let len = o.packet.len() - 20;
        assert!(
            len as u32 <= info.mss,
            "segment of {len} bytes above the MSS {} ({h:?})",
            info.mss
        );
    }
}

// ---------------------------------------------------------------------------
// TCP state machine

/// The byte the fuzzed peer sends at sequence number `seq`: a function of
/// the sequence number, so that whatever segments arrive, the stream the
/// stack delivers is known.
pub fn peer_byte(seq: u32) -> u8 {
    (seq.wrapping_mul(0x9e37_79b1) >> 24) as u8
}

/// The byte the application sends at stream offset `k`.
pub fn app_byte(k: u64) -> u8 {
    (k.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
}

/// What the peer knows about one 4-tuple from the stack's segments.
#[derive(Debug, Default, Clone, Copy)]
struct PeerView {
    /// Highest SEQ + SEG.LEN the stack sent (its SND.NXT).
    snd_nxt: Option<SeqNum>,
    /// Last ACK number the stack sent (its RCV.NXT).
    rcv_nxt: Option<SeqNum>,
    /// The peer's own next sequence number.
    peer_nxt: SeqNum,
}

/// A TCP layer and a fuzzed peer.
struct TcpHarness {
    l: TcpLayer,
    cfg: TcpConfig,
    now: Instant,
    /// Keyed by (peer port, our port).
    views: HashMap<(u16, u16), PeerView>,
    /// Our port of the latest active open.
    active_port: Option<u16>,
    /// The connection under data checks (`tcb_established`): its peer port,
    /// the stack's ISS, and the peer's ISS.
    checked: Option<(u16, SeqNum, SeqNum)>,
    /// Bytes the application has queued on the checked connection.
    app_sent: u64,
    /// Bytes the application has read from the checked connection.
    app_read: u64,
    /// The peer sent a FIN on the checked connection.
    peer_fin: bool,
    /// The application saw end of stream.
    eof: bool,
    /// The last segment fed carried RST.
    fed_rst: bool,
    /// The window shift of the checked connection's advertisements.
    rcv_wscale: u8,
    /// The right edge of the window the checked connection advertised.
    right_edge: Option<SeqNum>,
    /// The application closed or aborted the checked connection.
    released: bool,
}

impl TcpHarness {
    fn new(cfg: TcpConfig) -> Self {
        TcpHarness {
            l: TcpLayer::new(cfg.clone(), ISN_SECRET),
            cfg,
            now: Instant::ZERO,
            views: HashMap::new(),
            active_port: None,
            checked: None,
            app_sent: 0,
            app_read: 0,
            peer_fin: false,
            eof: false,
            fed_rst: false,
            rcv_wscale: 0,
            right_edge: None,
            released: false,
        }
    }

    fn view(&mut self, tuple: (u16, u16)) -> &mut PeerView {
        self.views.entry(tuple).or_default()
    }

    /// Feeds a segment from `PEER:tuple.0` to `US:tuple.1`.
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        tuple: (u16, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: &[u8],
        len: usize,
    ) {
        let payload: Vec<u8> = (0..len as u32)
            .map(|i| peer_byte(seq.wrapping_add(i)))
            .collect();
        let seg = raw_tcp_segment(tuple.0, tuple.1, seq, ack, flags, window, options, &payload);
        if self.checked.is_some_and(|(p, ..)| p == tuple.0) && flags & flag::FIN != 0 {
            self.peer_fin = true;
        }
        let seg_len = len as u32 + u32::from(flags & flag::SYN != 0) + u32::from(flags & 1);
        let v = self.view(tuple);
        v.peer_nxt = v.peer_nxt.max(SeqNum(seq) + seg_len);
        self.l.on_segment(self.now, PEER, US, &seg);
        self.fed_rst = flags & flag::RST != 0;
        self.settle();
        self.fed_rst = false;
    }

    /// Moves time forward by `d`, running every timer at its deadline.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut rounds = 0;
        while let Some(at) = self.l.poll_at().filter(|&t| t <= target) {
            self.now = self.now.max(at);
            self.l.poll(self.now);
            if let Some(still) = self.l.poll_at() {
                assert!(
                    still > self.now,
                    "poll({:?}) left a deadline at {still:?}: the runtime would spin",
                    self.now
                );
            }
            self.settle();
            rounds += 1;
            assert!(rounds < 100_000, "timers never settle");
        }
        self.now = target;
    }

    /// Drains output (checking it) and events; checks every connection.
    fn settle(&mut self) {
        while let Some(o) = self.l.pop_output() {
            let h = check_tcp_output(&o, &self.cfg);
            if self.fed_rst {
                assert!(!h.flags.rst, "RFC 9293 §3.10.7: RST sent in answer to RST");
            }
            assert_eq!(o.dst, PEER);
            let payload = &o.packet[o.packet.len().min(usize::from(o.packet[12] >> 4) * 4)..];
            let seg_len = payload.len() as u32 + u32::from(h.flags.syn) + u32::from(h.flags.fin);
            if let Some((port, iss, _)) = self.checked {
                if h.dst_port == port && !h.flags.syn && !h.flags.rst {
                    self.check_sent_data(SeqNum(h.seq), payload, h.flags.fin, iss);
                    if h.flags.ack {
                        self.check_window(SeqNum(h.ack), h.window);
                    }
                }
            }
            let v = self.view((h.dst_port, h.src_port));
            let end = SeqNum(h.seq) + seg_len;
            v.snd_nxt = Some(v.snd_nxt.map_or(end, |n| n.max(end)));
            if h.flags.ack {
                v.rcv_nxt = Some(SeqNum(h.ack));
            }
            if h.flags.syn && h.flags.ack {
                // A SYN-ACK: the stack's view of the peer starts over.
                v.peer_nxt = SeqNum(h.ack);
            }
            self.l.recycle(o.packet);
        }
        while self.l.pop_event().is_some() {}
        for info in self.l.connections() {
            assert!(info.send_queue <= self.cfg.send_buffer, "{info:?}");
            assert!(info.recv_queue <= self.cfg.recv_buffer, "{info:?}");
            assert!(
                (1..=u32::from(self.cfg.mss())).contains(&info.mss),
                "{info:?}"
            );
            assert!(info.cwnd > 0, "{info:?}");
            assert!(
                info.rto >= self.cfg.min_rto && info.rto <= self.cfg.max_rto,
                "RTO out of bounds: {info:?}"
            );
            assert!(info.rcv_wnd as usize <= self.cfg.recv_buffer, "{info:?}");
        }
        assert!(self.l.connections().len() <= self.cfg.max_connections);
    }

    /// Data the stack sends on the checked connection must be exactly what
    /// the application queued, at the right offsets, and nothing after FIN.
    fn check_sent_data(&self, seq: SeqNum, payload: &[u8], fin: bool, iss: SeqNum) {
        let start = u64::from(seq - (iss + 1));
        if payload.is_empty() && !fin {
            return; // a bare ACK, or a keepalive probe at SND.UNA-1
        }
        let end = start + payload.len() as u64;
        assert!(
            end <= self.app_sent,
            "sent stream bytes [{start}, {end}) but only {} were queued",
            self.app_sent
        );
        for (i, &b) in payload.iter().enumerate() {
            assert_eq!(
                b,
                app_byte(start + i as u64),
                "sent byte at stream offset {} is wrong",
                start + i as u64
            );
        }
        if fin {
            assert_eq!(end, self.app_sent, "FIN before all queued data");
        }
    }

    /// The window the checked connection advertises fits its buffer and,
    /// while the application holds it, its right edge never moves left
    /// (RFC 9293 §3.8.6.2.2), give or take the rounding of window scaling
    /// (RFC 7323 §2.4).
    fn check_window(&mut self, ack: SeqNum, window: u16) {
        let wnd = u32::from(window) << self.rcv_wscale;
        assert!(
            wnd as usize <= self.cfg.recv_buffer,
            "advertised window {wnd} beyond the {}-byte buffer",
            self.cfg.recv_buffer
        );
        let edge = ack + wnd;
        if let Some(prev) = self.right_edge {
            let slack = (1u32 << self.rcv_wscale) - 1;
            assert!(
                self.released || edge + slack >= prev,
                "window right edge moved left: {prev} -> {edge}"
            );
            self.right_edge = Some(prev.max(edge));
        } else {
            self.right_edge = Some(edge);
        }
    }

    /// `recv` on the checked connection; verifies the bytes.
    fn recv(&mut self, id: ConnId, n: usize) {
        let mut buf = vec![0u8; n];
        match self.l.recv(self.now, id, &mut buf) {
            Ok(0) if !buf.is_empty() => {
                assert!(self.peer_fin, "end of stream without a FIN");
                self.eof = true;
            }
            Ok(got) => {
                assert!(!self.eof, "data after end of stream");
                let Some((_, _, irs)) = self.checked else {
                    return;
                };
                for (i, &b) in buf[..got].iter().enumerate() {
                    let k = self.app_read + i as u64;
                    let seq = (irs + 1) + k as u32;
                    assert_eq!(b, peer_byte(seq.get()), "byte {k} of the stream is wrong");
                }
                self.app_read += got as u64;
            }
            Err(_) => {}
        }
        self.settle();
    }

    /// `send` on the checked connection of `n` stream bytes.
    fn send(&mut self, id: ConnId, n: usize) {
        let data: Vec<u8> = (0..n as u64).map(|i| app_byte(self.app_sent + i)).collect();
        if let Ok(k) = self.l.send(self.now, id, &data) {
            assert!(k <= n);
            self.app_sent += k as u64;
        }
        self.settle();
    }
}

/// A fuzzed segment from `PEER:peer_port`: `[flags, modes, seq_delta(2),
/// ack_delta(2), ...]`. Flags bit 6 sends it to the port of the latest
/// active open instead of the listener. `modes` picks SEQ (bits 0-1: the
/// stack's RCV.NXT + delta, the peer's own next + delta, absolute, RCV.NXT),
/// ACK (bits 2-3: the stack's SND.NXT + delta, absolute, SND.NXT - small,
/// SND.NXT), a fuzzed window (bit 4), an options area (bit 5: length byte
/// then bytes) and the payload length (bits 6-7: none, u8, u8 × 8, u16).
fn fuzzed_segment(h: &mut TcpHarness, input: &mut Input<'_>, peer_port: u16) {
    let flags = input.u8();
    let modes = input.u8();
    let seq_delta = input.u16() as i16;
    let ack_delta = input.u16() as i16;
    let local_port = match h.active_port {
        Some(p) if flags & 0x40 != 0 => p,
        _ => TCP_PORT,
    };
    let tuple = (peer_port, local_port);
    let v = *h.view(tuple);
    let seq = match modes & 3 {
        0 => v.rcv_nxt.unwrap_or(v.peer_nxt) + seq_delta as u32,
        1 => v.peer_nxt + seq_delta as u32,
        2 => SeqNum(input.u32()),
        _ => v.rcv_nxt.unwrap_or(v.peer_nxt),
    };
    let ack = match (modes >> 2) & 3 {
        0 => v.snd_nxt.unwrap_or_default() + ack_delta as u32,
        1 => SeqNum(input.u32()),
        2 => v.snd_nxt.unwrap_or_default() - u32::from(ack_delta as u16 % 64),
        _ => v.snd_nxt.unwrap_or_default(),
    };
    let window = if modes & 0x10 != 0 {
        input.u16()
    } else {
        65535
    };
    let options = if modes & 0x20 != 0 {
        let n = usize::from(input.u8() % 41);
        input.bytes(n)
    } else {
        &[]
    };
    let len = match modes >> 6 {
        0 => 0,
        1 => usize::from(input.u8()),
        2 => usize::from(input.u8()) * 8,
        _ => usize::from(input.u16() % 16384),
    };
    h.feed(tuple, seq.get(), ack.get(), flags, window, options, len);
}

/// A TCP configuration from one byte: small buffers and MTUs reach edges.
fn tcp_config(b: u8) -> TcpConfig {
    TcpConfig {
        mtu: if b & 0x20 != 0 { 576 } else { 1500 },
        window_scaling: b & 1 != 0,
        recv_buffer: [2048, 8192, 131_070, 262_144][usize::from((b >> 1) & 3)],
        send_buffer: [1024, 8192, 65536, 262_144][usize::from((b >> 3) & 3)],
        max_connections: 16,
        ..TcpConfig::default()
    }
}

/// `tcb_listen`: `[config, op...]`: a listener (backlog 2) on port 80 and
/// an op stream: fuzzed segments from four peer ports (SEQ/ACK relative to
/// what the stack last said, or absolute), time steps, accepts, reads,
/// writes, closes and an active open — the handshake and teardown paths.
pub fn tcb_listen(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = tcp_config(input.u8());
    let mut h = TcpHarness::new(cfg);
    let lid =
        h.l.listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, TCP_PORT), 2)
            .expect("listen");
    let mut conns: Vec<ConnId> = Vec::new();
    let mut listening = true;
    while !input.is_empty() {
        let op = input.u8();
        let pick =
            |conns: &[ConnId], b: u8| conns.get(usize::from(b) % conns.len().max(1)).copied();
        // Low 4 bits: the operation; high 2 bits: its parameter.
        match op & 0x0f {
            0..=5 | 11..=14 => {
                let port = PEER_PORT + u16::from(op >> 6);
                fuzzed_segment(&mut h, &mut input, port);
            }
            6 => {
                let d = time_step(input.u8());
                h.advance(d);
            }
            7 => {
                while let Ok(id) = h.l.accept(lid) {
                    conns.push(id);
                }
            }
            8 => {
                if let Some(id) = pick(&conns, input.u8()) {
                    let n = usize::from(input.u8()) * 16;
                    let mut buf = vec![0u8; n];
                    let _ = h.l.recv(h.now, id, &mut buf);
                    let data = vec![0x5a; n];
                    let _ = h.l.send(h.now, id, &data);
                    h.settle();
                }
            }
            9 => {
                if let Some(id) = pick(&conns, input.u8()) {
                    let _ = match op >> 6 {
                        0 => h.l.close(h.now, id),
                        1 => h.l.abort(id),
                        _ => h.l.shutdown_write(h.now, id),
                    };
                    h.settle();
                }
            }
            10 => {
                // Active open to the peer, from an ephemeral port.
                let port = PEER_PORT + u16::from(op >> 6);
                if let Ok(id) = h.l.connect(
                    h.now,
                    SocketAddrV4::new(US, 0),
                    SocketAddrV4::new(PEER, port),
                ) {
                    h.active_port = h.l.info(id).map(|i| i.local.port());
                    conns.push(id);
                }
                h.settle();
            }
            _ => {
                if listening && op >> 6 == 3 {
                    h.l.close_listener(lid).expect("close listener");
                    listening = false;
                    h.settle();
                }
            }
        }
        for (_, _, syn, accept) in h.l.listeners() {
            assert!(syn <= 2 && accept <= 2, "listen queues beyond the backlog");
        }
    }
    h.advance(Duration::from_secs(600));
}

/// `tcb_established`: `[config, irs(4), mss(2), wscale, window(2), op...]`:
/// a handshake with those parameters completes, then the op stream mixes
/// fuzzed segments, in-order data and ACKs from the peer, application calls
/// and time steps. Every byte the application reads must be the peer's byte
/// at that sequence number, and every byte sent the application's byte at
/// that offset.
pub fn tcb_established(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = tcp_config(input.u8());
    let irs = input.u32();
    let mss = input.u16();
    let wscale = input.u8();
    let window = input.u16();
    let mut h = TcpHarness::new(cfg);
    let lid =
        h.l.listen(SocketAddrV4::new(US, TCP_PORT), 1)
            .expect("listen");
    let mut opts = Vec::new();
    if mss != 0 {
        opts.extend_from_slice(&[2, 4]);
        opts.extend_from_slice(&mss.to_be_bytes());
    }
    if wscale & 0x80 == 0 {
        opts.extend_from_slice(&[1, 3, 3, wscale & 0x0f]);
    }
    let tuple = (PEER_PORT, TCP_PORT);
    h.feed(tuple, irs, 0, flag::SYN, window, &opts, 0);
    let v = *h.view(tuple);
    let iss = v.snd_nxt.expect("SYN-ACK sent") - 1;
    assert_eq!(
        v.rcv_nxt,
        Some(SeqNum(irs) + 1),
        "SYN-ACK acknowledges the SYN"
    );
    h.feed(
        tuple,
        irs.wrapping_add(1),
        (iss + 1).get(),
        flag::ACK,
        window,
        &[],
        0,
    );
    let id = h.l.accept(lid).expect("handshake completes");
    h.l.close_listener(lid).expect("close listener");
    h.checked = Some((PEER_PORT, iss, SeqNum(irs)));
    if h.cfg.window_scaling && wscale & 0x80 == 0 {
        h.rcv_wscale = h.cfg.window_shift();
    }
    let mut stream_nxt: Option<SeqNum> = None;
    h.settle();

    while !input.is_empty() {
        let op = input.u8();
        match op % 16 {
            0..=3 => fuzzed_segment(&mut h, &mut input, PEER_PORT),
            4 | 5 => {
                // In-order data (and maybe FIN) acknowledging everything:
                // after the previous in-order data (the stack may not have
                // acknowledged it yet), or at the stack's RCV.NXT (bit 4).
                let v = *h.view(tuple);
                let len = usize::from(input.u8()) * (1 + usize::from(op >> 6) * 8);
                let fin = if op & 0x20 != 0 { flag::FIN } else { 0 };
                let rcv_nxt = v.rcv_nxt.unwrap_or(v.peer_nxt);
                let seq = match stream_nxt {
                    Some(s) if op & 0x10 == 0 => s,
                    _ => rcv_nxt,
                };
                stream_nxt = Some(seq + len as u32 + u32::from(fin != 0));
                let seq = seq.get();
                let ack = v.snd_nxt.unwrap_or_default().get();
                h.feed(
                    tuple,
                    seq,
                    ack,
                    flag::ACK | flag::PSH | fin,
                    window,
                    &[],
                    len,
                );
            }
            6 => {
                // A pure ACK of everything, with a fuzzed window.
                let v = *h.view(tuple);
                let seq = v.rcv_nxt.unwrap_or(v.peer_nxt).get();
                let ack = v.snd_nxt.unwrap_or_default().get();
                let w = input.u16();
                h.feed(tuple, seq, ack, flag::ACK, w, &[], 0);
            }
            7 | 8 => {
                let n = usize::from(input.u8()) * (1 + usize::from(op >> 6) * 64);
                h.send(id, n);
            }
            9 | 10 => {
                let n = usize::from(input.u8()) * (1 + usize::from(op >> 6) * 64);
                h.recv(id, n.max(1));
            }
            11 => {
                let d = time_step(input.u8());
                h.advance(d);
            }
            12 => {
                let _ = h.l.shutdown_write(h.now, id);
                h.settle();
            }
            13 => {
                h.released |= op >> 6 < 2;
                let _ = match op >> 6 {
                    0 => h.l.close(h.now, id),
                    1 => h.l.abort(id),
                    _ => h.l.set_nodelay(h.now, id, op & 0x20 != 0),
                };
                h.settle();
            }
            14 => {
                let ka = (op & 0x20 != 0).then(|| KeepaliveConfig {
                    idle: Duration::from_secs(u64::from(input.u8() % 16) + 1),
                    interval: Duration::from_secs(u64::from(input.u8() % 8) + 1),
                    count: u32::from(input.u8() % 4) + 1,
                });
                let _ = h.l.set_keepalive(h.now, id, ka);
                h.settle();
            }
            _ => {
                h.l.poll(h.now);
                h.settle();
            }
        }
    }
    h.advance(Duration::from_secs(3600));
}
