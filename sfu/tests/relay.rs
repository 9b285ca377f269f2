//! Peers of a node-to-node link (`core::relay`): a link's sink receives
//! what the room's own participants publish but never what its link's
//! ghosts brought in, hears of none of its link's Peers, and is itself
//! invisible to the room; a ghost is an ordinary participant to everyone
//! else.

#![allow(clippy::unwrap_used)]

mod common;

use common::Sim;
use sfu::core::relay::{LinkId, Relay};
use sfu::core::{Permissions, Signal};

fn announced(sim: &Sim, i: usize) -> Vec<String> {
    sim.clients[i]
        .signals
        .iter()
        .filter_map(|s| match s {
            Signal::ParticipantJoined { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn published_by(sim: &Sim, i: usize) -> Vec<sfu::core::PeerId> {
    sim.clients[i]
        .signals
        .iter()
        .filter_map(|s| match s {
            Signal::TrackPublished { peer_id, .. } => Some(*peer_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_link_never_carries_back_what_it_brought_and_its_sink_is_invisible() {
    let mut sim = Sim::new();
    let link = LinkId(7);
    let alice_i = sim.add_client("alice", true);
    let sink_i = sim.add_client("sink", false);
    let ghost_i = sim.add_client("bob", true);
    let carol_i = sim.add_client("carol", false);
    let alice = sim.join(alice_i, "room");
    let sink = sim.join_as(sink_i, "room", Some(Relay { link, hidden: true }));
    let ghost = sim.join_as(
        ghost_i,
        "room",
        Some(Relay {
            link,
            hidden: false,
        }),
    );
    sim.core.set_permissions(
        ghost,
        Permissions {
            publish: true,
            subscribe: false,
        },
    );
    sim.join(carol_i, "room");
    sim.connect_all();
    sim.send_frames(alice_i, 1, 20);
    sim.send_frames(ghost_i, 1, 20);

    // The sink takes Alice's video over the link, never the ghost's.
    assert!(!sim.video_from(sink_i, alice).is_empty());
    assert!(sim.video_from(sink_i, ghost).is_empty());
    // Carol gets both, the ghost as anyone else.
    assert!(!sim.video_from(carol_i, alice).is_empty());
    assert!(!sim.video_from(carol_i, ghost).is_empty());

    // Nobody hears of the sink; the sink hears of Carol, not of the ghost.
    assert_eq!(announced(&sim, alice_i), vec!["bob", "carol"]);
    assert_eq!(announced(&sim, sink_i), vec!["carol"]);
    assert!(published_by(&sim, sink_i).iter().all(|p| *p == alice));
    assert!(published_by(&sim, carol_i).contains(&ghost));
    assert!(!published_by(&sim, alice_i).contains(&sink));

    let snap = sim.core.snapshot();
    assert_eq!(snap.relay_peers, 2);
    assert_eq!(snap.peers, 4);

    // The ghost leaving is news to the room but not to its own sink.
    sim.leave(ghost_i);
    let left: Vec<usize> = [alice_i, sink_i, carol_i]
        .into_iter()
        .filter(|&i| {
            sim.clients[i]
                .signals
                .iter()
                .any(|s| matches!(s, Signal::ParticipantLeft { peer_id } if *peer_id == ghost))
        })
        .collect();
    assert_eq!(left, vec![alice_i, carol_i]);
}

fn demands(sim: &Sim, i: usize) -> Vec<Option<usize>> {
    sim.clients[i]
        .signals
        .iter()
        .filter_map(|s| match s {
            Signal::VideoDemand { max_level, .. } => Some(*max_level),
            _ => None,
        })
        .collect()
}

#[test]
fn a_ghost_hears_how_much_of_its_video_the_subscribers_here_want() {
    let mut sim = Sim::new();
    let ghost_i = sim.add_client("bob", true);
    let carol_i = sim.add_client("carol", false);
    let dave_i = sim.add_client("dave", false);
    let ghost = sim.join_as(
        ghost_i,
        "room",
        Some(Relay {
            link: LinkId(9),
            hidden: false,
        }),
    );
    let carol = sim.join(carol_i, "room");
    let dave = sim.join(dave_i, "room");
    sim.connect_all();
    sim.send_frames(ghost_i, 1, 20);
    sim.advance(std::time::Duration::from_millis(600));
    sim.pump();
    // Everyone wants everything at first.
    assert_eq!(demands(&sim, ghost_i).last(), Some(&Some(usize::MAX)));
    let video = sim.core.participant(sim.now, ghost).unwrap().tracks;
    let (track, _) = *video
        .iter()
        .find(|(_, kind)| *kind == sfu::core::ids::MediaKind::Video)
        .unwrap();
    // Small tiles on both: the lowest layer is all anyone here wants.
    for who in [carol, dave] {
        sim.core
            .set_video_preference(sim.now, who, track, Some(0))
            .unwrap();
    }
    sim.pump();
    assert_eq!(demands(&sim, ghost_i).last(), Some(&Some(0)));
    // Dave hides it, Carol enlarges hers: the most anyone wants counts.
    sim.core
        .set_video_preference(sim.now, dave, track, None)
        .unwrap();
    sim.core
        .set_video_preference(sim.now, carol, track, Some(1))
        .unwrap();
    sim.pump();
    assert_eq!(demands(&sim, ghost_i).last(), Some(&Some(1)));
    // Nobody shows it.
    sim.core
        .set_video_preference(sim.now, carol, track, None)
        .unwrap();
    sim.pump();
    assert_eq!(demands(&sim, ghost_i).last(), Some(&None));
    // Told on changes only.
    let n = demands(&sim, ghost_i).len();
    sim.advance(std::time::Duration::from_millis(600));
    sim.pump();
    assert_eq!(demands(&sim, ghost_i).len(), n);
    // An ordinary publisher is never told.
    assert!(demands(&sim, carol_i).is_empty());
}
