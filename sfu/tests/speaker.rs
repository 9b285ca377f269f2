//! Audio levels from real `rtc` publishers, and the room's active speaker.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use sfu::core::{PeerId, Signal};

fn speakers(sim: &Sim, client: usize) -> Vec<PeerId> {
    sim.clients[client]
        .signals
        .iter()
        .filter_map(|s| match s {
            Signal::ActiveSpeaker { peer_id } => Some(*peer_id),
            _ => None,
        })
        .collect()
}

/// Both publish audio for `ms` milliseconds at the given levels.
fn talk(sim: &mut Sim, seq: &mut u16, levels: [(usize, u8); 2], ms: u64) {
    for _ in 0..ms / 20 {
        for (client, level) in levels {
            sim.send_audio(client, *seq, level);
        }
        *seq = seq.wrapping_add(1);
        sim.advance(Duration::from_millis(20));
    }
}

#[test]
fn the_active_speaker_follows_the_loudest_with_hysteresis() {
    let mut sim = Sim::new();
    let a = sim.add_client("alice", true);
    let b = sim.add_client("bob", true);
    let alice = sim.join(a, "room");
    let bob = sim.join(b, "room");
    sim.connect_all();
    let mut seq = 1u16;

    // Alice talks, Bob is near silent.
    talk(&mut sim, &mut seq, [(a, 25), (b, 110)], 2000);
    assert_eq!(speakers(&sim, b), vec![alice], "Bob is told Alice speaks");
    assert_eq!(speakers(&sim, a), vec![alice]);

    // A short word from Bob (300 ms) does not take over.
    talk(&mut sim, &mut seq, [(a, 110), (b, 20)], 300);
    talk(&mut sim, &mut seq, [(a, 25), (b, 110)], 1000);
    assert_eq!(speakers(&sim, a), vec![alice], "no flicker");

    // Bob talks for real.
    talk(&mut sim, &mut seq, [(a, 110), (b, 20)], 3000);
    assert_eq!(speakers(&sim, a), vec![alice, bob]);

    // Both silent: Bob stays the last speaker.
    talk(&mut sim, &mut seq, [(a, 127), (b, 127)], 1500);
    assert_eq!(speakers(&sim, a), vec![alice, bob]);
}
