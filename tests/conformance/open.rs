//! Opening connections: simultaneous open (MUST-10), SYN-RECEIVED's memory
//! of how it was reached (MUST-11), segments to closed ports and listeners
//! (RFC 9293 §3.10.7.1-3), data on SYNs, the listen backlog, and the OPEN
//! call's address rules (MUST-41..46, MUST-63).

use std::net::{Ipv4Addr, SocketAddrV4};

use tunstack::tcp::{State, TcpError, TcpEvent};

use crate::bench::*;

const OTHER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

/// MUST-10: simultaneous open as in RFC 9293 Figure 7 — our SYN crosses the
/// peer's SYN; we answer SYN-ACK from SYN-RECEIVED, and the peer's SYN-ACK
/// establishes the connection.
#[test]
fn must_10_simultaneous_open_syn_then_syn_ack() {
    let mut b = Bench::new();
    let id = b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460));
    b.expect(|s| s.is("SA") && s.seq == iss && s.ack_no == PEER_ISS + 1 && s.mss == Some(1460));
    assert_eq!(b.state(), Some(State::SynReceived));
    b.send(seg!(SYN | ACK, seq = PEER_ISS, ack = iss.wrapping_add(1)));
    b.expect(|s| s.is("A") && s.seq == iss.wrapping_add(1) && s.ack_no == PEER_ISS + 1);
    assert_eq!(b.state(), Some(State::Established));
    assert_eq!(b.events(), vec![TcpEvent::Connected(id)]);
}

/// MUST-10: the simultaneous open also completes when the peer's answer to
/// our SYN-ACK is a bare ACK.
#[test]
fn must_10_simultaneous_open_completed_by_a_bare_ack() {
    let mut b = Bench::new();
    let id = b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.send(seg!(SYN)); // seq PEER_ISS
    b.expect(|s| s.is("SA") && s.seq == iss);
    b.send(seg!(ACK, ack = iss.wrapping_add(1)));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Established));
    assert_eq!(b.events(), vec![TcpEvent::Connected(id)]);
}

/// MUST-11: a SYN-RECEIVED reached from LISTEN returns to LISTEN on an
/// acceptable RST, silently: no event, no half-open connection, and the
/// listener answers the next SYN.
#[test]
fn must_11_rst_in_passive_syn_rcvd_returns_to_listen() {
    let mut b = Bench::new();
    let lid = b.listen(PORT);
    b.send(seg!(SYN, seq = PEER_ISS));
    b.expect(|s| s.is("SA"));
    b.send(seg!(RST, seq = PEER_ISS + 1));
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
    assert_eq!(b.tcp.listeners(), vec![(lid, US.into(), 0, 0)]);
    assert!(b.events().is_empty());
    b.send(seg!(SYN, seq = 7000));
    b.expect(|s| s.is("SA") && s.ack_no == 7001);
}

/// MUST-11: a SYN-RECEIVED reached from SYN-SENT (simultaneous open) is
/// refused by an acceptable RST, and the application is told.
#[test]
fn must_11_rst_in_active_syn_rcvd_refuses_the_connection() {
    let mut b = Bench::new();
    let id = b.connect(5000);
    b.expect(|s| s.is("S"));
    b.send(seg!(SYN, seq = PEER_ISS));
    b.expect(|s| s.is("SA"));
    b.send(seg!(RST, seq = PEER_ISS + 1));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::Closed));
    assert_eq!(
        b.events(),
        vec![TcpEvent::Closed(id, Some(TcpError::ConnectionRefused))]
    );
}

/// RFC 9293 §3.10.7.4: a retransmitted SYN (same ISN) in SYN-RECEIVED gets
/// the same SYN-ACK again.
#[test]
fn retransmitted_syn_in_syn_rcvd_gets_the_syn_ack_again() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    b.advance(300);
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460));
    b.expect(|s| s.is("SA") && s.seq == sa.seq && s.ack_no == PEER_ISS + 1);
}

/// RFC 9293 §3.10.7.4 (fourth step) says a SYN in a passive SYN-RECEIVED
/// returns the connection to LISTEN. tunstack instead answers an in-window
/// SYN with a new ISN by an RFC 5961 challenge ACK; the peer, now in
/// SYN-SENT, finds that ACK unacceptable and resets (as in Figure 9), which
/// returns us to LISTEN, and its next SYN opens the new connection.
/// Documented deviation (no MUST id), kept because it resists blind SYNs.
#[test]
fn new_syn_in_syn_rcvd_draws_a_challenge_ack_and_recovers_via_rst() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    let iss = sa.seq;
    let new_iss = PEER_ISS + 1000;
    b.send(seg!(SYN, seq = new_iss, mss = 1460));
    let ch = b.expect(|s| s.is("A") && s.ack_no == PEER_ISS + 1);
    assert_eq!(ch.seq, iss.wrapping_add(1));
    // The peer's RST for the unacceptable ACK: <SEQ=SEG.ACK><CTL=RST>.
    b.send(seg!(RST, seq = ch.ack_no));
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
    b.send(seg!(SYN, seq = new_iss, mss = 1460));
    b.expect(|s| s.is("SA") && s.ack_no == new_iss + 1);
}

/// RFC 9293 §3.10.7.4 (fifth step, SYN-RECEIVED): an ACK that does not
/// acknowledge our SYN-ACK draws `<SEQ=SEG.ACK><CTL=RST>`; the half-open
/// connection stays.
#[test]
fn unacceptable_ack_in_syn_rcvd_draws_a_rst() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(SYN, mss = 1460));
    let iss = b.expect(|s| s.is("SA")).seq;
    b.send(seg!(ACK, ack = iss.wrapping_add(7)));
    b.expect(|s| s.is("R") && s.seq == iss.wrapping_add(7));
    b.send(seg!(ACK, ack = iss));
    b.expect(|s| s.is("R") && s.seq == iss);
    assert_eq!(b.tcp.connections()[0].state, State::SynReceived);
}

/// RFC 9293 §3.10.7.4: the ACK completing the handshake may carry data and
/// a FIN; both are processed once the connection is ESTABLISHED.
#[test]
fn handshake_ack_carrying_data_and_fin_is_processed() {
    let mut b = Bench::new();
    let lid = b.listen(PORT);
    b.send(seg!(SYN, mss = 1460));
    b.expect(|s| s.is("SA"));
    b.send(seg!(ACK | PSH | FIN, data = b"GET"));
    let rcv = b.peer_seq;
    b.expect(|s| s.is("A") && s.ack_no == rcv);
    b.conn = Some(b.tcp.accept(lid).unwrap());
    assert_eq!(b.state(), Some(State::CloseWait));
    assert_eq!(b.app_recv(10).unwrap(), b"GET");
    assert_eq!(b.app_recv(10).unwrap(), b"", "then end of stream");
}

/// RFC 9293 §3.10.7.3: in SYN-SENT, an ACK that does not acknowledge our SYN
/// (SEG.ACK =< ISS or > SND.NXT) draws `<SEQ=SEG.ACK><CTL=RST>` and leaves
/// the connection in SYN-SENT; a RST with such an ACK is dropped; a bare
/// acceptable ACK without SYN is dropped; the right SYN-ACK then completes.
#[test]
fn syn_sent_rejects_unacceptable_acks_with_rst() {
    let mut b = Bench::new();
    b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.send(seg!(SYN | ACK, seq = PEER_ISS, ack = iss));
    b.expect(|s| s.is("R") && s.seq == iss);
    b.send(seg!(ACK, seq = PEER_ISS, ack = iss.wrapping_add(2)));
    b.expect(|s| s.is("R") && s.seq == iss.wrapping_add(2));
    b.send(seg!(RST | ACK, seq = PEER_ISS, ack = iss.wrapping_add(2)));
    b.send(seg!(ACK, seq = PEER_ISS, ack = iss.wrapping_add(1)));
    b.expect_nothing();
    assert_eq!(b.state(), Some(State::SynSent));
    b.peer_seq = PEER_ISS;
    b.send(seg!(SYN | ACK, ack = iss.wrapping_add(1)));
    b.expect(|s| s.is("A") && s.ack_no == PEER_ISS + 1);
    assert_eq!(b.state(), Some(State::Established));
}

/// RFC 9293 §3.10.7.1: a segment for no connection and no listener gets a
/// RST that the sender will accept — `<SEQ=SEG.ACK><CTL=RST>` when it
/// carried an ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>` — and a
/// RST gets nothing.
#[test]
fn closed_port_answers_with_an_acceptable_rst() {
    let mut b = Bench::new();
    b.send(seg!(SYN, seq = 5, data = b"abc"));
    b.expect(|s| s.is("RA") && s.seq == 0 && s.ack_no == 9 && s.win == 0);
    b.send(seg!(ACK, seq = 5, ack = 77));
    b.expect(|s| s.is("R") && s.seq == 77);
    b.send(seg!(FIN | ACK, seq = 5, ack = 78));
    b.expect(|s| s.is("R") && s.seq == 78);
    b.send(seg!(FIN, seq = 9));
    b.expect(|s| s.is("RA") && s.seq == 0 && s.ack_no == 10);
    b.send(seg!(NONE, seq = 20, data = b"xy"));
    b.expect(|s| s.is("RA") && s.ack_no == 22);
    b.send(seg!(RST, seq = 5));
    b.send(seg!(RST | ACK, seq = 5, ack = 5));
    b.expect_nothing();
    assert_eq!(b.stats().resets_sent, 5);
}

/// RFC 9293 §3.10.7.2: a listener ignores RSTs, answers anything carrying
/// an ACK with `<SEQ=SEG.ACK><CTL=RST>`, and drops other non-SYN segments.
#[test]
fn listener_rejects_acks_and_ignores_rsts() {
    let mut b = Bench::new();
    b.listen(PORT);
    b.send(seg!(RST, seq = 5));
    b.send(seg!(SYN | RST, seq = 5));
    b.expect_nothing();
    b.send(seg!(ACK, seq = 5, ack = 99));
    b.expect(|s| s.is("R") && s.seq == 99);
    b.send(seg!(SYN | ACK, seq = 5, ack = 1234));
    b.expect(|s| s.is("R") && s.seq == 1234);
    b.send(seg!(FIN, seq = 5));
    b.send(seg!(NONE, seq = 5, data = b"x"));
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
}

/// Data on a SYN (RFC 9293 §3.10.7.2, legal but optional to keep): tunstack
/// does not keep it, so it does not acknowledge it either — the SYN-ACK
/// acknowledges the SYN only; the peer's retransmission is delivered once.
#[test]
fn data_on_a_syn_is_not_acknowledged_until_resent() {
    let mut b = Bench::new();
    let lid = b.listen(PORT);
    b.send(seg!(SYN, seq = PEER_ISS, mss = 1460, data = b"early"));
    b.expect(|s| s.is("SA") && s.ack_no == PEER_ISS + 1);
    b.peer_seq = PEER_ISS + 1;
    b.send(seg!(ACK));
    b.conn = Some(b.tcp.accept(lid).unwrap());
    assert_eq!(b.app_recv(100), Err(TcpError::WouldBlock));
    b.peer_data(b"early");
    assert_eq!(b.app_recv(100).unwrap(), b"early");
}

/// Data on a SYN-ACK (RFC 9293 §3.10.7.3): likewise not kept and not
/// acknowledged; the ACK of the SYN asks for it again.
#[test]
fn data_on_a_syn_ack_is_not_acknowledged_until_resent() {
    let mut b = Bench::new();
    b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.send(seg!(
        SYN | ACK,
        seq = PEER_ISS,
        ack = iss.wrapping_add(1),
        data = b"hi"
    ));
    b.expect(|s| s.is("A") && s.ack_no == PEER_ISS + 1);
    b.peer_seq = PEER_ISS + 1;
    b.peer_data(b"hi");
    assert_eq!(b.app_recv(100).unwrap(), b"hi");
}

/// RFC 4987 §3.6: a full SYN queue answers further SYNs with SYN cookies
/// and keeps no state for them, so a SYN flood cannot lock real clients
/// out; the client's ACK returning the cookie opens the connection, and the
/// half-open connection already queued is kept.
#[test]
fn full_syn_queue_answers_with_a_syn_cookie() {
    let mut b = Bench::new();
    let lid = b.listen_backlog(PORT, 1);
    b.send(seg!(SYN, mss = 1460));
    let old = b.expect(|s| s.is("SA"));
    b.send(seg!(SYN, sport = 40001, seq = 7000, mss = 1460));
    let cookie = b.expect(|s| s.is("SA") && s.ack_no == 7001 && s.dst.port() == 40001);
    assert_eq!(b.stats().syn_cookies_sent, 1);
    assert_eq!(b.tcp.connections().len(), 1, "no state for the cookie");
    b.send(seg!(
        ACK,
        sport = 40001,
        seq = 7001,
        ack = cookie.seq.wrapping_add(1)
    ));
    b.expect_nothing();
    assert_eq!(b.stats().syn_cookies_accepted, 1);
    assert_eq!(b.events(), vec![TcpEvent::Acceptable(lid)]);
    // The first half-open connection was kept, not evicted.
    b.send(seg!(ACK, ack = old.seq.wrapping_add(1)));
    assert_eq!(b.tcp.connections().len(), 2);
}

/// A full accept queue turns further SYNs away silently (no RST, so the
/// peer retries), as Linux does; once `accept` makes room, the retried SYN
/// is answered.
#[test]
fn full_accept_queue_drops_syns_silently() {
    let mut b = Bench::new();
    let lid = b.listen_backlog(PORT, 1);
    b.send(seg!(SYN, mss = 1460));
    let sa = b.expect(|s| s.is("SA"));
    b.send(seg!(ACK, ack = sa.seq.wrapping_add(1)));
    assert_eq!(b.events(), vec![TcpEvent::Acceptable(lid)]);
    b.send(seg!(SYN, sport = 40001, seq = 7000));
    b.expect_nothing();
    assert_eq!(b.stats().syn_dropped, 1);
    b.tcp.accept(lid).unwrap();
    b.send(seg!(SYN, sport = 40001, seq = 7000));
    b.expect(|s| s.is("SA") && s.ack_no == 7001 && s.dst.port() == 40001);
}

/// With the accept queue full, the ACK completing a handshake is dropped and
/// the connection stays in SYN-RECEIVED; its SYN-ACK is retransmitted, and
/// once `accept` makes room the peer's next ACK completes it.
#[test]
fn full_accept_queue_holds_back_the_handshake() {
    let mut b = Bench::new();
    let lid = b.listen_backlog(PORT, 2);
    let mut isn = Vec::new();
    for port in [40000, 40001] {
        b.send(seg!(SYN, sport = port, seq = 7000, mss = 1460));
        isn.push(b.expect(|s| s.is("SA")).seq);
    }
    b.send(seg!(
        ACK,
        sport = 40000,
        seq = 7001,
        ack = isn[0].wrapping_add(1)
    ));
    b.send(seg!(SYN, sport = 40002, seq = 7000, mss = 1460));
    let c = b.expect(|s| s.is("SA")).seq;
    b.send(seg!(
        ACK,
        sport = 40001,
        seq = 7001,
        ack = isn[1].wrapping_add(1)
    ));
    b.send(seg!(
        ACK,
        sport = 40002,
        seq = 7001,
        ack = c.wrapping_add(1)
    ));
    b.expect_nothing();
    assert_eq!(b.tcp.listeners(), vec![(lid, US.into(), 1, 2)]);
    let again = b.wait_for_segment(1000);
    assert!(again.is("SA") && again.seq == c && again.dst.port() == 40002);
    b.tcp.accept(lid).unwrap();
    b.send(seg!(
        ACK,
        sport = 40002,
        seq = 7001,
        ack = c.wrapping_add(1)
    ));
    assert_eq!(b.tcp.listeners(), vec![(lid, US.into(), 0, 2)]);
}

/// MUST-41: a passive OPEN creates a listener or fails; it never disturbs
/// existing connections — neither a duplicate listen next to an accepted
/// connection nor a listen on the port of an established active connection.
#[test]
fn must_41_passive_open_does_not_disturb_existing_connections() {
    let mut b = Bench::new();
    b.handshake_passive();
    assert_eq!(b.tcp.listen(US, 4), Err(TcpError::AddrInUse));
    let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT);
    assert_eq!(b.tcp.listen(any, 4), Err(TcpError::AddrInUse));
    assert_eq!(b.state(), Some(State::Established));
    b.peer_data(b"still here");
    assert_eq!(b.app_recv(100).unwrap(), b"still here");

    let mut b = Bench::new();
    b.handshake_active(5000, 10);
    b.tcp
        .listen(SocketAddrV4::new(US_IP, 5000), 4)
        .expect("listen");
    assert_eq!(b.state(), Some(State::Established));
    b.peer_data(b"still here");
    assert_eq!(b.app_recv(100).unwrap(), b"still here");
    b.app_send(b"me too");
    b.expect(|s| s.is("PA") && s.data == b"me too");
}

/// MUST-42: LISTEN on a port while a connection from that port is in
/// SYN-SENT; other peers reach the listener, the pending open completes.
#[test]
fn must_42_listen_while_a_connection_on_the_port_is_in_syn_sent() {
    let mut b = Bench::new();
    b.connect(5000);
    let iss = b.expect(|s| s.is("S")).seq;
    b.tcp
        .listen(SocketAddrV4::new(US_IP, 5000), 4)
        .expect("MUST-42: listen next to SYN-SENT");
    b.send(seg!(SYN, sport = 40001, seq = 7000, mss = 1460));
    b.expect(|s| s.is("SA") && s.ack_no == 7001 && s.dst.port() == 40001);
    b.send(seg!(SYN | ACK, seq = PEER_ISS, ack = iss.wrapping_add(1)));
    b.expect(|s| s.is("A") && s.dst == PEER);
    assert_eq!(b.state(), Some(State::Established));
}

/// MUST-43: OPEN takes an optional local IP address: an active open uses
/// it as the source, a passive open waits on that address only.
#[test]
fn must_43_open_uses_the_given_local_address() {
    let mut b = Bench::new();
    let local = SocketAddrV4::new(OTHER_IP, 5000);
    b.tcp.connect(b.now, local, PEER).unwrap();
    b.expect(|s| s.is("S") && s.src == local);
    b.tcp.listen(SocketAddrV4::new(OTHER_IP, PORT), 4).unwrap();
    b.send(seg!(SYN, seq = 1));
    b.expect(|s| s.is("RA") && s.src == US);
    b.send(seg!(SYN, seq = 1, dst = SocketAddrV4::new(OTHER_IP, PORT)));
    b.expect(|s| s.is("SA") && s.src == SocketAddrV4::new(OTHER_IP, PORT));
}

/// MUST-45: a connection accepted by a wildcard listener uses the address
/// the SYN was sent to for every segment it sends.
#[test]
fn must_45_every_segment_uses_the_connection_local_address() {
    let mut b = Bench::new();
    let lid = b
        .tcp
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 4)
        .unwrap();
    b.us = SocketAddrV4::new(OTHER_IP, PORT);
    b.send(seg!(SYN, mss = 1460));
    b.expect(|s| s.is("SA"));
    b.send(seg!(ACK));
    b.conn = Some(b.tcp.accept(lid).unwrap());
    b.app_send(b"hello");
    b.peer_data(b"world");
    b.app_shutdown();
    b.advance(2000);
    let segs = b.take_all();
    assert!(segs.len() >= 2);
    assert!(segs.iter().all(|s| s.src == b.us), "{segs:?}");
}

/// MUST-46: an active OPEN to a broadcast or multicast address is an
/// error, and no SYN is sent.
#[test]
fn must_46_open_to_broadcast_or_multicast_is_rejected() {
    let mut b = Bench::new();
    for ip in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 1, 2, 3),
    ] {
        let r = b.tcp.connect(
            b.now,
            SocketAddrV4::new(US_IP, 0),
            SocketAddrV4::new(ip, 80),
        );
        assert!(r.is_err(), "MUST-46: connect to {ip} accepted");
    }
    b.expect_nothing();
}

/// MUST-63 (and RFC 9293 §3.10.7.2): a SYN from a broadcast, multicast or
/// unspecified source address is ignored by the TCP layer itself (the IP
/// layer also drops such datagrams, see `iplevel.rs`).
#[test]
fn must_63_syn_from_an_invalid_source_is_ignored() {
    let mut b = Bench::new();
    b.listen(PORT);
    for ip in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 9),
        Ipv4Addr::UNSPECIFIED,
    ] {
        b.send(seg!(SYN, src = SocketAddrV4::new(ip, 40000), seq = 1));
    }
    b.expect_nothing();
    assert!(b.tcp.connections().is_empty());
}
