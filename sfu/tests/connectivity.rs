//! Connectivity on hostile networks, on a virtual clock: a client that
//! changes address and restarts ICE keeps its Peer, Tracks and
//! Subscriptions; a client that goes silent is removed after the consent
//! timeout; and ICE-TCP is advertised and answered over TCP.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::Sim;
use rtc::ice::attributes::control::AttrControlling;
use rtc::ice::attributes::priority::PriorityAttr;
use rtc::shared::TransportProtocol;
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{Message, Setter, TransactionId, BINDING_REQUEST, BINDING_SUCCESS};
use rtc::stun::textattrs::TextAttribute;
use sfu::core::routes::STALE_AFTER;
use sfu::core::{CoreConfig, LeaveReason, Signal};

fn sfu_addr() -> SocketAddr {
    common::SFU_ADDR.parse().unwrap()
}

#[test]
fn ice_restart_on_a_new_address_keeps_media_flowing() {
    let (mut sim, alice, bob) = Sim::pair();
    let alice_id = sim.peer(alice);
    sim.send_frames(alice, 1, 20);
    let before = sim.video_from(bob, alice_id).len();
    assert!(before >= 15, "bob receives before the move: {before}");
    let old: SocketAddr = sim.clients[alice].addr;

    // Alice's Wi-Fi goes away; she comes back from another address.
    let new: SocketAddr = "198.51.100.99:6000".parse().unwrap();
    sim.move_client(alice, new);
    let signals = &sim.clients[alice].signals;
    assert!(
        matches!(signals.last(), Some(Signal::Answer { .. })),
        "the restart offer is answered"
    );
    sim.advance(Duration::from_secs(2));
    assert!(
        sim.core.is_routed(TransportProtocol::UDP, new),
        "the new address is pinned after its ICE check"
    );

    sim.send_frames(alice, 21, 20);
    let received = sim.video_from(bob, alice_id);
    assert!(
        received.len() >= before + 15,
        "media flows again from the new address: {} then {}",
        before,
        received.len()
    );
    let seqs: Vec<u16> = received.iter().map(|r| r.header.sequence_number).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "one continuous stream to bob: {seqs:?}"
    );
    assert_eq!(sim.core.snapshot().peers, 2, "nobody left");
    assert_eq!(sim.core.snapshot().video_tracks, 1, "same Track");

    // The old address carries nothing and is forgotten.
    sim.advance(STALE_AFTER + Duration::from_secs(3));
    assert!(!sim.core.is_routed(TransportProtocol::UDP, old));
    assert!(sim.core.is_routed(TransportProtocol::UDP, new));
    assert_eq!(sim.core.snapshot().peers, 2, "keepalives kept the new path");
}

#[test]
fn a_silent_client_is_removed_after_the_consent_timeout() {
    let mut config = CoreConfig::new(sfu_addr());
    config.consent_timeout = Duration::from_secs(6);
    let mut sim = Sim::with_config(config);
    let alice = sim.add_client("alice", true);
    let bob = sim.add_client("bob", false);
    sim.join(alice, "room");
    let bob_id = sim.join(bob, "room");
    sim.connect_all();

    sim.clients[bob].cut = true;
    sim.advance(Duration::from_secs(4));
    assert_eq!(sim.core.snapshot().peers, 2, "still inside the timeout");
    sim.advance(Duration::from_secs(3));
    let snap = sim.core.snapshot();
    assert_eq!(snap.peers, 1, "bob is gone 6-7 s after his last packet");
    let timeout = LeaveReason::ALL
        .iter()
        .position(|r| *r == LeaveReason::Timeout)
        .unwrap();
    assert_eq!(snap.counters.leaves[timeout], 1);
    assert_eq!(snap.subscriptions, 0, "his Subscriptions are freed");
    assert!(sim.clients[alice]
        .signals
        .iter()
        .any(|s| matches!(s, Signal::ParticipantLeft { peer_id } if *peer_id == bob_id)));
    assert!(sim.clients[alice].connected, "alice is unaffected");
}

/// `a=<name>:<value>` from an SDP.
fn sdp_attr(sdp: &str, name: &str) -> String {
    let prefix = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap()
        .trim()
        .to_owned()
}

/// A Binding request as a browser first sends it over ICE-TCP: a
/// connectivity check without USE-CANDIDATE (`rtc`'s controlled agent
/// answers a nominating request on an unchecked pair with a triggered
/// check only, and no success response).
fn binding_request(sfu_ufrag: &str, client_ufrag: &str, sfu_pwd: &str) -> Message {
    let provider = rtc::crypto::default_provider().unwrap();
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(
            ATTR_USERNAME,
            format!("{sfu_ufrag}:{client_ufrag}"),
        )),
        Box::new(AttrControlling(7)),
        Box::new(PriorityAttr(1_000)),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            sfu_pwd.to_owned(),
            provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ];
    m.build(&setters).unwrap();
    m
}

#[test]
fn ice_tcp_is_advertised_and_answered_over_tcp() {
    let mut config = CoreConfig::new(sfu_addr());
    let tcp: SocketAddr = "192.0.2.1:7881".parse().unwrap();
    config.tcp_addrs = vec![tcp];
    let mut sim = Sim::with_config(config);
    let alice = sim.add_client("alice", true);
    sim.join(alice, "room");
    let Some(Signal::Answer { sdp }) = sim.clients[alice].signals.first().cloned() else {
        panic!("no answer");
    };
    let tcp_line = sdp
        .lines()
        .find(|l| l.contains(" tcp ") || l.contains(" TCP "))
        .unwrap_or_else(|| panic!("no TCP candidate in {sdp}"));
    assert!(tcp_line.contains("tcptype passive"), "{tcp_line}");
    assert!(tcp_line.contains("192.0.2.1 7881"), "{tcp_line}");
    let priority = |line: &str| -> u64 { line.split_whitespace().nth(3).unwrap().parse().unwrap() };
    let udp_line = sdp
        .lines()
        .find(|l| l.contains(" udp ") || l.contains(" UDP "))
        .unwrap();
    assert!(
        priority(tcp_line) < priority(udp_line),
        "TCP ranks below UDP: {tcp_line} / {udp_line}"
    );

    // A browser whose UDP is blocked connects to the TCP port.
    let sfu_ufrag = sdp_attr(&sdp, "ice-ufrag");
    let sfu_pwd = sdp_attr(&sdp, "ice-pwd");
    let client_sdp = sim.clients[alice].pc.local_description().unwrap().sdp;
    let client_ufrag = sdp_attr(&client_sdp, "ice-ufrag");
    while sim.core.poll_transmit().is_some() {}
    let browser: SocketAddr = "203.0.113.5:50123".parse().unwrap();
    let request = binding_request(&sfu_ufrag, &client_ufrag, &sfu_pwd);
    sim.core
        .handle_tcp_frame(sim.now, browser, BytesMut::from(&request.raw[..]));
    let to_browser: Vec<_> = std::iter::from_fn(|| sim.core.poll_transmit())
        .filter(|t| t.destination == browser)
        .collect();
    assert!(to_browser
        .iter()
        .all(|t| t.protocol == TransportProtocol::TCP));
    let answered = to_browser.iter().any(|t| {
        let mut parsed = Message::new();
        parsed.unmarshal_binary(&t.data).is_ok()
            && parsed.typ == BINDING_SUCCESS
            && parsed.transaction_id == request.transaction_id
    });
    assert!(answered, "a Binding success answers the TCP check");
    assert!(sim.core.is_routed(TransportProtocol::TCP, browser));
    assert!(
        !sim.core.is_routed(TransportProtocol::UDP, browser),
        "a TCP route is not a UDP one"
    );

    // A check with a wrong password pins nothing.
    let stranger: SocketAddr = "203.0.113.6:50000".parse().unwrap();
    let forged = binding_request(&sfu_ufrag, &client_ufrag, "not-the-password-at-all");
    sim.core
        .handle_tcp_frame(sim.now, stranger, BytesMut::from(&forged.raw[..]));
    assert!(!sim.core.is_routed(TransportProtocol::TCP, stranger));

    // The connection closes: the route goes with it.
    sim.core.tcp_closed(browser);
    assert!(!sim.core.is_routed(TransportProtocol::TCP, browser));
}

#[test]
fn a_lost_dtls_flight_from_the_sfu_is_sent_again() {
    let mut sim = Sim::new();
    let alice = sim.add_client("alice", true);
    sim.join(alice, "room");
    // The SFU's HelloVerifyRequest is lost, then its ServerHello ...
    // ServerHelloDone flight.
    sim.dtls_loss = Some((alice, 0, 1));
    let start = sim.now;
    for _ in 0..3000 {
        if sim.clients[alice].connected {
            break;
        }
        sim.advance(Duration::from_millis(5));
    }
    eprintln!("connected after {:?}", sim.now - start);
    assert_eq!(sim.dtls_loss, Some((alice, 0, 0)), "a flight was dropped");
    assert!(
        sim.clients[alice].connected,
        "the handshake recovered within 15 virtual seconds"
    );
    sim.dtls_loss = None;
    let bob = sim.add_client("bob", false);
    sim.dtls_loss = Some((bob, 1, 1));
    sim.join(bob, "room");
    sim.connect_all();
}

#[test]
fn a_browsers_quick_client_hello_retries_do_not_stall_the_handshake() {
    let mut sim = Sim::new();
    let alice = sim.add_client("alice", true);
    // The SFU's flight 4 (after its HelloVerifyRequest) is lost, and (as
    // Chromium does, every 100 ms or so, before the SFU's 1 s timer) the
    // client repeats its ClientHello.
    sim.dtls_loss = Some((alice, 1, 1));
    sim.join(alice, "room");
    let start = sim.now;
    let mut record_seq = 100u64;
    for step in 0..3000 {
        if sim.clients[alice].connected {
            break;
        }
        if step % 20 == 0 && step < 600 {
            if let Some((source, mut hello)) = sim.last_client_hello.clone() {
                // A retransmission: the same message in a new record.
                record_seq += 1;
                hello[5..11].copy_from_slice(&record_seq.to_be_bytes()[2..]);
                sim.core.handle_datagram(sim.now, source, hello);
                sim.pump();
            }
        }
        sim.advance(Duration::from_millis(5));
    }
    eprintln!(
        "connected after {:?}; repeats dropped: {}",
        sim.now - start,
        sim.core.snapshot().counters.dtls_repeats_dropped
    );
    assert_eq!(sim.dtls_loss, Some((alice, 0, 0)), "a flight was dropped");
    assert!(
        sim.clients[alice].connected,
        "the handshake recovered within 15 virtual seconds"
    );
}
