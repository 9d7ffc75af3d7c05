//! The core's notes on packets (the comments of a pcapng capture): what it
//! says about the packets it receives and sends, segment by segment with a
//! virtual clock, and that it says nothing (and tags nothing) when notes
//! are off.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use etherparse::PacketBuilder;
use tunstack::iface::Interface;
use tunstack::time::Instant;
use tunstack::Config;

const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ISS: u32 = 1000;

/// A segment from the host's port 40000 to the stack's `dport`.
fn segment(dport: u16, seq: u32, ack: Option<u32>, syn: bool, fin: bool) -> Vec<u8> {
    segment_from(40000, dport, seq, ack, syn, fin)
}

fn segment_from(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
) -> Vec<u8> {
    let mut b = PacketBuilder::ipv4(HOST.octets(), [10, 0, 0, 2], 64).tcp(sport, dport, seq, 64240);
    if syn {
        b = b.syn();
    }
    if fin {
        b = b.fin();
    }
    if let Some(ack) = ack {
        b = b.ack(ack);
    }
    let mut out = Vec::new();
    b.write(&mut out, &[]).expect("builds");
    out
}

/// Every packet the core has to send: (TCP flags byte, seq, its note).
fn sent(iface: &mut Interface) -> Vec<(u8, u32, Option<String>)> {
    let mut out = Vec::new();
    while let Some(p) = iface.pop_transmit() {
        let note = iface.take_transmit_note(&p);
        let seq = u32::from_be_bytes([p[24], p[25], p[26], p[27]]);
        out.push((p[33], seq, note));
        iface.recycle(p);
    }
    out
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

/// A listener on port 7 and an established connection from the host.
fn established(notes: bool) -> (Interface, tunstack::tcp::ConnId, u32) {
    let mut iface = Interface::new(
        &Config {
            seed: Some(1),
            ..Config::default()
        },
        1500,
        1,
    );
    iface.set_notes(notes);
    let l = iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 8)
        .unwrap();
    let t0 = Instant::ZERO;
    iface.receive(t0, &segment(7, PEER_ISS, None, true, false));
    let note = iface.take_received_note();
    let out = sent(&mut iface);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, SYN | ACK);
    let iss = out[0].1;
    if notes {
        assert_eq!(note.as_deref(), Some("LISTEN -> SYN-RCVD"));
    } else {
        assert_eq!(note, None);
        assert_eq!(out[0].2, None);
    }
    iface.receive(t0, &segment(7, PEER_ISS + 1, Some(iss + 1), false, false));
    let note = iface.take_received_note();
    if notes {
        assert_eq!(note.as_deref(), Some("SYN-RCVD -> ESTABLISHED"));
    } else {
        assert_eq!(note, None);
    }
    let id = iface.tcp_accept(l).unwrap();
    (iface, id, iss)
}

#[test]
fn notes_off_say_nothing_and_tag_no_packet() {
    let (mut iface, id, _) = established(false);
    assert!(!iface.notes_on());
    iface.tcp_close(Instant::ZERO, id).unwrap();
    let out = sent(&mut iface);
    assert_eq!(out.len(), 1, "the FIN");
    assert_eq!(out[0].2, None);
    iface.receive(Instant::ZERO, &segment(1, 5, None, true, false));
    assert_eq!(iface.take_received_note(), None);
}

#[test]
fn the_close_is_noted_on_our_fin_and_its_retransmission_gives_the_rto() {
    let (mut iface, id, iss) = established(true);
    iface.tcp_close(Instant::ZERO, id).unwrap();
    let out = sent(&mut iface);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0 & FIN, FIN);
    assert_eq!(out[0].2.as_deref(), Some("ESTABLISHED -> FIN-WAIT-1"));
    // No ACK: the FIN is sent again after the RTO (the handshake's RTT
    // sample was 0, so the RTO is the 200 ms minimum).
    iface.poll(Instant::ZERO + Duration::from_millis(1100));
    let out = sent(&mut iface);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0 & FIN, FIN);
    assert_eq!(out[0].2.as_deref(), Some("retransmission 1, RTO 200 ms"));
    // The peer's FIN+ACK: FIN-WAIT-2, then TIME-WAIT until 2*MSL from now.
    let now = Instant::ZERO + Duration::from_millis(1200);
    iface.set_wall_clock(now, std::time::UNIX_EPOCH);
    iface.receive(now, &segment(7, PEER_ISS + 1, Some(iss + 2), false, true));
    let note = iface.take_received_note().unwrap_or_default();
    assert!(
        note.starts_with("FIN-WAIT-1 -> FIN-WAIT-2; FIN-WAIT-2 -> TIME-WAIT; TIME-WAIT until "),
        "{note}"
    );
    // 2*MSL = 60 s after the epoch, in whatever the local zone is.
    assert!(note.ends_with(":00.000 (2*MSL)"), "{note}");
}

#[test]
fn drops_and_resets_are_noted_on_the_packet_that_caused_them() {
    let (mut iface, _, _) = established(true);
    let t = Instant::ZERO;
    // A segment with a bad TCP checksum.
    let mut bad = segment(7, PEER_ISS + 1, Some(1), false, false);
    bad[36] ^= 0xff;
    iface.receive(t, &bad);
    assert_eq!(
        iface.take_received_note().as_deref(),
        Some("dropped: bad TCP checksum")
    );
    // A bad IPv4 header checksum.
    let mut bad = segment(7, PEER_ISS + 1, Some(1), false, false);
    bad[10] ^= 0xff;
    iface.receive(t, &bad);
    let note = iface.take_received_note().unwrap_or_default();
    assert!(note.contains("(ip-bad-checksum)"), "{note}");
    // A SYN to a port nothing listens on.
    iface.receive(t, &segment(1, 5, None, true, false));
    assert_eq!(
        iface.take_received_note().as_deref(),
        Some("no connection or listener for 10.0.0.2:1: answered with RST")
    );
    let out = sent(&mut iface);
    assert_eq!(out.len(), 1, "the RST");
    // A packet the core handles without a word: no note.
    iface.receive(t, &segment(7, PEER_ISS + 1, Some(1), false, false));
    let _ = sent(&mut iface);
    assert_eq!(iface.take_received_note(), None);
}

#[test]
fn a_syn_cookie_is_noted_on_the_syn_ack_and_its_return_on_the_ack() {
    let mut iface = Interface::new(
        &Config {
            seed: Some(1),
            ..Config::default()
        },
        1500,
        1,
    );
    iface.set_notes(true);
    // A SYN queue of one: the second client's SYN is answered with a cookie.
    iface
        .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 1)
        .unwrap();
    let t = Instant::ZERO;
    iface.receive(t, &segment(7, PEER_ISS, None, true, false));
    assert_eq!(
        iface.take_received_note().as_deref(),
        Some("LISTEN -> SYN-RCVD")
    );
    let _ = sent(&mut iface);
    // A second client, from port 40001.
    let syn = segment_from(40001, 7, 5000, None, true, false);
    iface.receive(t, &syn);
    assert_eq!(iface.take_received_note(), None, "no state, no transition");
    let out = sent(&mut iface);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, SYN | ACK);
    assert_eq!(
        out[0].2.as_deref(),
        Some("SYN queue full: SYN cookie sent, no state kept")
    );
    let ack = segment_from(40001, 7, 5001, Some(out[0].1 + 1), false, false);
    iface.receive(t, &ack);
    let note = iface.take_received_note().unwrap_or_default();
    assert!(
        note.contains("the ACK returned a valid SYN cookie: connection opened"),
        "{note}"
    );
}
