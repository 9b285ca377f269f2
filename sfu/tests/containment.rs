//! Panic containment, on a virtual clock with simulated peers and the
//! `fault-injection` hooks (compiled only for tests): a panic triggered by
//! one Peer's offer or datagram removes that Peer, is counted, and the
//! other room goes on forwarding; a panic nobody can be blamed for starts
//! the core over without losing its running totals.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::Sim;
use rtc::shared::TransportProtocol;
use sfu::core::containment::{fault, Contained, Suspect};
use sfu::core::LeaveReason;

fn fault_leaves(sim: &Sim) -> u64 {
    let i = LeaveReason::ALL
        .iter()
        .position(|r| *r == LeaveReason::Fault)
        .unwrap();
    sim.core.snapshot().counters.leaves[i]
}

/// Two rooms: "room" (Alice publishing to Bob) and "other" (Carol
/// publishing to Dave). Returns the sim and the four client indexes.
fn two_rooms() -> (Sim, [usize; 4]) {
    let mut sim = Sim::new();
    let alice = sim.add_client("alice", true);
    let bob = sim.add_client("bob", false);
    let carol = sim.add_client("carol", true);
    let dave = sim.add_client("dave", false);
    sim.join(alice, "room");
    sim.join(bob, "room");
    sim.join(carol, "other");
    sim.join(dave, "other");
    sim.connect_all();
    (sim, [alice, bob, carol, dave])
}

#[test]
fn a_panicking_offer_removes_only_its_peer() {
    let (mut sim, [alice, bob, carol, dave]) = two_rooms();
    let carol_id = sim.peer(carol);
    let alice_id = sim.peer(alice);
    let peers_before = sim.core.snapshot().peers;

    let now = sim.now;
    let sdp = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{}\r\n",
        fault::PANIC_SDP_LINE
    );
    let result = sim.core.contain(now, Suspect::Peer(carol_id), |core| {
        core.handle_offer(now, carol_id, sdp)
    });
    assert_eq!(result.unwrap_err(), Contained::PeerRemoved(carol_id));
    sim.clients[carol].peer_id = None;
    sim.pump();

    let snapshot = sim.core.snapshot();
    assert_eq!(snapshot.counters.panics, 1);
    assert_eq!(fault_leaves(&sim), 1);
    assert_eq!(snapshot.peers, peers_before - 1);
    // Dave lost his publisher, not his place.
    assert!(sim.core.participant(sim.now, sim.peer(dave)).is_some());

    // The other room forwards on.
    let before = sim.video_from(bob, alice_id).len();
    sim.send_frames(alice, 1, 20);
    let after = sim.video_from(bob, alice_id).len();
    assert!(after >= before + 15, "bob got {} more", after - before);
}

#[test]
fn a_panicking_datagram_removes_the_peer_whose_address_sent_it() {
    let (mut sim, [alice, bob, carol, _dave]) = two_rooms();
    let carol_id = sim.peer(carol);
    let alice_id = sim.peer(alice);
    let source = sim.clients[carol].addr;

    let now = sim.now;
    let result = sim.core.contain(
        now,
        Suspect::Source(TransportProtocol::UDP, source),
        |core| core.handle_datagram(now, source, BytesMut::from(fault::PANIC_DATAGRAM)),
    );
    assert_eq!(result.unwrap_err(), Contained::PeerRemoved(carol_id));
    sim.clients[carol].peer_id = None;
    sim.pump();
    assert_eq!(sim.core.panics(), 1);

    let before = sim.video_from(bob, alice_id).len();
    sim.send_frames(alice, 1, 20);
    assert!(sim.video_from(bob, alice_id).len() >= before + 15);
}

#[test]
fn a_panic_nobody_can_be_blamed_for_starts_over_and_keeps_the_totals() {
    let (mut sim, [alice, _bob, _carol, _dave]) = two_rooms();
    sim.send_frames(alice, 1, 10);
    let before = sim.core.snapshot();
    assert_eq!(before.peers, 4);

    let now = sim.now;
    let unknown = "192.0.2.200:9".parse().unwrap();
    // From an address no Peer owns, the datagram reaches no Peer and so
    // cannot trigger the hook: blame nobody and panic directly instead.
    let result: Result<(), _> = sim.core.contain(
        now,
        Suspect::Source(TransportProtocol::UDP, unknown),
        |_| panic!("a bug outside any one participant"),
    );
    assert_eq!(result.unwrap_err(), Contained::Reset);
    for c in &mut sim.clients {
        c.peer_id = None;
    }

    let after = sim.core.snapshot();
    assert_eq!(after.peers, 0);
    assert_eq!(after.rooms, 0);
    assert_eq!(after.counters.panics, 1);
    assert_eq!(fault_leaves(&sim), 4, "every Peer counted as a fault leave");
    // Running totals did not go backwards.
    assert_eq!(after.counters.joins, before.counters.joins);
    assert!(before.counters.rtp_in.video_packets > 0);
    assert_eq!(
        after.counters.rtp_in.video_packets,
        before.counters.rtp_in.video_packets
    );

    // The core serves new joins, with fresh ids.
    let eve = sim.add_client("eve", true);
    let frank = sim.add_client("frank", false);
    let eve_id = sim.join(eve, "room");
    sim.join(frank, "room");
    sim.connect_all();
    assert!(eve_id.0 > before.counters.joins, "ids are not reused");
    sim.send_frames(eve, 1, 20);
    sim.advance(Duration::from_millis(100));
    assert!(sim.video_from(frank, eve_id).len() >= 15);
}

/// Through the Worker's own loop: a panicking offer costs its sender the
/// session, and the Worker goes on serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_a_panicking_offer() {
    use sfu::worker::{Worker, WorkerConfig};
    let worker = Worker::spawn(WorkerConfig::loopback("127.0.0.1".parse().unwrap())).unwrap();
    let h = worker.handle;
    let (a, mut a_signals) = h.join("r1".into(), "A".into()).await.unwrap();
    let (b, _b_signals) = h.join("r2".into(), "B".into()).await.unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n{}\r\n",
        fault::PANIC_SDP_LINE
    );
    assert!(h.offer(a.peer_id, sdp).await.is_err());
    // A's signal channel is closed: its session ends, and its client
    // rejoins.
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        while a_signals.recv().await.is_some() {}
    })
    .await;
    assert!(closed.is_ok(), "A's session is ended");
    let snapshot = h.snapshot().await.unwrap();
    assert_eq!(snapshot.counters.panics, 1);
    assert_eq!(snapshot.peers, 1);
    assert!(h.participant(b.peer_id).await.unwrap().is_some());
    // New joins work.
    let (c, _c_signals) = h.join("r1".into(), "C".into()).await.unwrap();
    assert!(h.participant(c.peer_id).await.unwrap().is_some());
}
