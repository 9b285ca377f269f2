//! Simulcast through the core, with real `rtc` peers on a virtual clock: a
//! publisher sends layers `q`, `h` and `f`; each subscriber gets the layer
//! its wishes and its bandwidth allow, switched only at a keyframe of the
//! new layer, as one continuous stream; layers nobody receives are paused
//! at the publisher (dynacast).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Sim;
use sfu::core::{DropReason, PeerId, Signal, TrackId};

/// Packet sizes per 10 ms for about 150 kbit/s, 500 kbit/s and 1.5 Mbit/s.
const SIZES: [(&str, usize); 3] = [("q", 190), ("h", 625), ("f", 1_200)];

struct Run {
    sim: Sim,
    publisher: usize,
    seq: u16,
    ts: u32,
}

impl Run {
    /// A simulcast publisher and the given receive-only subscribers, all
    /// connected, with a keyframe on every layer sent.
    fn new(subscribers: &[&str], twcc: bool) -> (Self, Vec<usize>) {
        let mut sim = Sim::new();
        let publisher = sim.add_simulcast_client("alice");
        sim.twcc = twcc;
        let subs: Vec<usize> = subscribers
            .iter()
            .map(|n| sim.add_client(n, false))
            .collect();
        sim.join(publisher, "room");
        for &s in &subs {
            sim.join(s, "room");
        }
        sim.connect_all();
        let mut run = Self {
            sim,
            publisher,
            seq: 1,
            ts: 0,
        };
        run.send(Duration::from_millis(200), &["q", "h", "f"], true);
        (run, subs)
    }

    /// Sends every 10 ms on `layers` for `d` (keyframes first if `keyframe`).
    fn send(&mut self, d: Duration, layers: &[&str], keyframe: bool) {
        let steps = d.as_millis() / 10;
        for step in 0..steps {
            for (rid, size) in SIZES {
                if layers.contains(&rid) {
                    self.sim.send_layer(
                        self.publisher,
                        rid,
                        self.seq,
                        self.ts,
                        size,
                        keyframe && step == 0,
                    );
                }
            }
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(900);
            self.sim.advance(Duration::from_millis(10));
        }
    }

    fn track(&self) -> TrackId {
        self.sim.core.rooms(self.sim.now)[0]
            .participants
            .iter()
            .find(|p| p.name == "alice")
            .unwrap()
            .tracks[0]
            .0
    }

    fn alice(&self) -> PeerId {
        self.sim.peer(self.publisher)
    }
}

/// The payload size of the last video packet client `i` received: which
/// layer it gets (`SIZES`).
fn last_size(sim: &Sim, i: usize, alice: PeerId) -> usize {
    sim.video_from(i, alice)
        .last()
        .map_or(0, |r| r.payload.len())
}

fn assert_continuous(received: &[common::Received]) {
    for pair in received.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(
            b.header.sequence_number,
            a.header.sequence_number.wrapping_add(1),
            "a gap in the subscriber's sequence numbers"
        );
        // One frame (900 ticks) between packets of a layer; across a
        // switch the Forwarder steps one frame or the time that passed,
        // never backwards.
        let step = b.header.timestamp.wrapping_sub(a.header.timestamp);
        assert!(
            (1..1 << 31).contains(&step),
            "timestamp went backwards by {} ticks",
            step.wrapping_neg()
        );
        if b.payload.len() == a.payload.len() {
            assert!(
                step <= 3_000,
                "timestamp jump of {step} ticks within a layer"
            );
        }
        assert_eq!(a.header.ssrc, b.header.ssrc);
    }
}

#[test]
fn a_small_tile_gets_q_and_a_big_one_switches_up_at_a_keyframe_without_gaps() {
    let (mut run, subs) = Run::new(&["bob"], false);
    let bob = subs[0];
    run.sim.send_remb(bob, 5_000_000.0);
    let (track, alice) = (run.track(), run.alice());
    let bob_id = run.sim.peer(bob);
    run.sim
        .core
        .set_video_preference(run.sim.now, bob_id, track, Some(0))
        .unwrap();
    run.send(Duration::from_secs(2), &["q", "h", "f"], false);
    assert_eq!(last_size(&run.sim, bob, alice), 190, "q for a small tile");

    // A big tile: f from its next keyframe on, not before.
    run.sim
        .core
        .set_video_preference(run.sim.now, bob_id, track, Some(2))
        .unwrap();
    let before = run.sim.video_from(bob, alice).len();
    // Keyframe requests are answered by `send_layer` on the layer asked.
    run.send(Duration::from_secs(1), &["q", "h", "f"], false);
    let got = run.sim.video_from(bob, alice);
    assert!(
        got.len() > before + 50,
        "video kept flowing across the switch"
    );
    let sizes: Vec<usize> = got[before..].iter().map(|r| r.payload.len()).collect();
    let first_f = sizes
        .iter()
        .position(|&s| s == 1_200)
        .expect("switched to f");
    assert!(
        sizes[..first_f].iter().all(|&s| s == 190),
        "q until the switch"
    );
    assert!(
        sizes[first_f..].iter().all(|&s| s == 1_200),
        "only f after it"
    );
    let first_f_packet = &got[before + first_f];
    assert_eq!(
        first_f_packet.payload[0] & 0x01,
        0,
        "the first f packet starts a VP8 keyframe"
    );
    assert_continuous(&got);
    assert_eq!(run.sim.core.snapshot().counters.layer_switches, 1);
    let stats = run.sim.core.participant(run.sim.now, bob_id).unwrap();
    let video = stats.video.iter().find(|v| v.track_id == track).unwrap();
    assert_eq!(video.layer.as_deref(), Some("f"));
    assert_eq!(video.target.as_deref(), Some("f"));
    assert_eq!((video.switches, video.paused), (1, false));
    let snap = run.sim.core.snapshot();
    assert_eq!(snap.video_layers, [0, 0, 1], "one subscription on f");
}

#[test]
fn a_low_estimate_gets_q_then_pauses_and_recovers() {
    // Bob does not negotiate TWCC, so his REMB sets his estimate.
    let (mut run, subs) = Run::new(&["bob"], false);
    let bob = subs[0];
    let alice = run.alice();
    run.sim.send_remb(bob, 5_000_000.0);
    run.send(Duration::from_secs(8), &["q", "h", "f"], false);
    assert_eq!(last_size(&run.sim, bob, alice), 1_200, "plenty: f");

    run.sim.send_remb(bob, 300_000.0);
    run.send(Duration::from_millis(2_500), &["q", "h", "f"], false);
    assert_eq!(
        last_size(&run.sim, bob, alice),
        190,
        "down to q within a round of the estimate falling (and its keyframe)"
    );

    run.sim.send_remb(bob, 60_000.0);
    run.send(Duration::from_secs(3), &["q", "h", "f"], false);
    let track = run.track();
    assert!(
        run.sim.clients[bob].signals.iter().any(|s| matches!(
            s,
            Signal::VideoPaused { track_id, paused: true } if *track_id == track
        )),
        "told the video paused"
    );
    let n = run.sim.video_from(bob, alice).len();
    let congested = run.sim.dropped(DropReason::Congested);
    run.send(Duration::from_secs(1), &["q", "h", "f"], false);
    assert_eq!(
        run.sim.video_from(bob, alice).len(),
        n,
        "nothing while paused"
    );
    assert!(
        run.sim.dropped(DropReason::Congested) > congested,
        "the held-back video is counted"
    );

    run.sim.send_remb(bob, 5_000_000.0);
    run.send(Duration::from_secs(10), &["q", "h", "f"], false);
    assert!(run.sim.clients[bob]
        .signals
        .iter()
        .any(|s| matches!(s, Signal::VideoPaused { paused: false, .. })));
    assert_eq!(last_size(&run.sim, bob, alice), 1_200, "climbed back to f");
    assert_continuous(&run.sim.video_from(bob, alice));
}

#[test]
fn dynacast_pauses_layers_nobody_receives_and_resumes_them_on_demand() {
    let (mut run, subs) = Run::new(&["bob", "carol"], false);
    for &s in &subs {
        run.sim.send_remb(s, 5_000_000.0);
    }
    let (track, publisher) = (run.track(), run.publisher);
    for &s in &subs {
        let id = run.sim.peer(s);
        run.sim
            .core
            .set_video_preference(run.sim.now, id, track, Some(0))
            .unwrap();
    }
    run.send(Duration::from_secs(4), &["q", "h", "f"], false);
    assert_eq!(
        run.sim.clients[publisher].publish_layers.last(),
        Some(&vec!["q".to_owned()]),
        "h and f paused 3 s after the last receiver left them"
    );

    // Carol's tile grows: f is resumed at once.
    let carol = run.sim.peer(subs[1]);
    run.sim
        .core
        .set_video_preference(run.sim.now, carol, track, Some(2))
        .unwrap();
    run.sim.pump();
    assert_eq!(
        run.sim.clients[publisher].publish_layers.last(),
        Some(&vec!["q".to_owned(), "f".to_owned()])
    );
    // The publisher resumes f (with a keyframe) and Carol gets it.
    run.send(Duration::from_secs(1), &["q", "f"], true);
    let alice = run.alice();
    assert_eq!(last_size(&run.sim, subs[1], alice), 1_200);
    assert_eq!(last_size(&run.sim, subs[0], alice), 190);
}

/// Someone else publishing renegotiates the simulcast publisher's
/// connection; its layers keep arriving although its packets no longer name
/// their rid, as Chromium's do once a receiver report has acknowledged
/// them (webrtc-rs note 21: `rtc` would forget the layers' SSRCs).
#[test]
fn layers_survive_a_renegotiation_after_the_rid_headers_stop() {
    let (mut run, subs) = Run::new(&["bob"], false);
    let bob = subs[0];
    run.sim.send_remb(bob, 5_000_000.0);
    let alice = run.alice();
    run.send(Duration::from_secs(1), &["q", "h", "f"], false);
    run.sim.clients[run.publisher].rid_headers = false;
    run.send(Duration::from_secs(1), &["q", "h", "f"], false);
    let before = run.sim.video_from(bob, alice).len();
    assert!(before > 150, "bob gets alice's video: {before}");

    let publisher = run.publisher;
    let offers = move |sim: &Sim| {
        sim.clients[publisher]
            .signals
            .iter()
            .filter(|s| matches!(s, Signal::Offer { .. }))
            .count()
    };
    let offered = offers(&run.sim);
    let carol = run.sim.add_client("carol", true);
    run.sim.join(carol, "room");
    run.sim.connect_all();
    run.sim.send_frames(carol, 1, 3);
    run.send(Duration::from_millis(500), &["q", "h", "f"], false);
    assert!(
        offers(&run.sim) > offered,
        "alice's connection was renegotiated for carol's tracks"
    );

    let at_renegotiation = run.sim.video_from(bob, alice).len();
    run.send(Duration::from_secs(2), &["q", "h", "f"], false);
    let after = run.sim.video_from(bob, alice).len() - at_renegotiation;
    assert!(after >= 190, "bob got {after} of 200 packets after it");
}
