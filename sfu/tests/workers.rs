//! Several Workers behind one handle: rooms spread over them, a room's
//! Peers all on one Worker, requests about a Peer reach its Worker, and
//! the figures add up.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use sfu::worker::{Worker, WorkerConfig};

fn two_workers() -> Worker {
    let mut config = WorkerConfig::loopback("127.0.0.1".parse().unwrap());
    config.workers = 2;
    Worker::spawn(config).unwrap()
}

/// The Worker of a Peer: ids are `k + 1` modulo the number of Workers.
fn worker_of(peer: sfu::core::PeerId) -> u64 {
    (peer.0 - 1) % 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_workers_and_stay_whole() {
    let worker = two_workers();
    let h = worker.handle;
    assert_eq!(h.workers(), 2);
    let ports: Vec<u16> = h.udp_addrs().iter().map(|a| a.port()).collect();
    assert_eq!(ports.len(), 2);
    assert_ne!(ports[0], ports[1], "each Worker has its own socket");

    let (a1, _s1) = h.join("a".into(), "A1".into()).await.unwrap();
    let (b1, _s2) = h.join("b".into(), "B1".into()).await.unwrap();
    let (a2, _s3) = h.join("a".into(), "A2".into()).await.unwrap();
    let (b2, _s4) = h.join("b".into(), "B2".into()).await.unwrap();
    assert_ne!(
        worker_of(a1.peer_id),
        worker_of(b1.peer_id),
        "two new rooms go to two Workers"
    );
    assert_eq!(
        worker_of(a1.peer_id),
        worker_of(a2.peer_id),
        "room a is whole"
    );
    assert_eq!(
        worker_of(b1.peer_id),
        worker_of(b2.peer_id),
        "room b is whole"
    );
    assert_eq!(a2.participants.len(), 1, "A2 sees A1 in its room");

    let snapshot = h.snapshot().await.unwrap();
    assert_eq!((snapshot.rooms, snapshot.peers), (2, 4));
    let rooms = h.rooms().await.unwrap();
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(h.participant(b2.peer_id).await.unwrap().is_some());

    // Requests about a Peer reach its Worker.
    h.leave(b2.peer_id).await.unwrap();
    assert!(h.participant(b2.peer_id).await.unwrap().is_none());
    assert_eq!(h.close_room("a".into()).await.unwrap(), 2);
    assert_eq!(h.snapshot().await.unwrap().peers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_room_may_be_placed_again() {
    let worker = two_workers();
    let h = worker.handle;
    let (x, _sx) = h.join("busy".into(), "X".into()).await.unwrap();
    let (y, _sy) = h.join("busy".into(), "Y".into()).await.unwrap();
    let (a, _sa) = h.join("a".into(), "A".into()).await.unwrap();
    assert_ne!(worker_of(a.peer_id), worker_of(x.peer_id));
    h.leave(a.peer_id).await.unwrap();
    // The Worker forgets the room at its next sweep (every 2 s) and reports
    // its load; room a then goes to the less loaded Worker again, which is
    // still the one without "busy".
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (a2, _sa2) = h.join("a".into(), "A2".into()).await.unwrap();
    assert_ne!(worker_of(a2.peer_id), worker_of(y.peer_id));
    assert_eq!(h.snapshot().await.unwrap().rooms, 2);
}
