//! Forwards a number of video packets from one publisher to N subscribers
//! through the core, in memory, so that the cost of a code path can be
//! counted in instructions (`valgrind --tool=callgrind`), which, unlike
//! time, does not depend on what else the machine is doing.
//!
//! `forward_cost <packets> <subscribers> <count-rtcp: on|off>`; running it
//! with two packet counts and subtracting removes the set-up cost.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::Sim;
use sfu::core::CoreConfig;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let packets: usize = args.get(1).and_then(|a| a.parse().ok()).expect("packets");
    let subscribers: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .expect("subscribers");
    let count_rtcp = args.get(3).map(|a| a == "on").expect("on or off");

    let mut config = CoreConfig::new(common::SFU_ADDR.parse().unwrap());
    config.count_rtcp = count_rtcp;
    let mut sim = Sim::connected(config, subscribers);
    sim.send_frames(0, 0, 5);
    let (publisher, addr) = (0, sim.clients[0].addr);
    let datagrams = sim.video_datagrams(publisher, 100, packets);
    let now = sim.now;
    let mut sent = 0usize;
    for d in datagrams {
        sim.core.handle_datagram(now, addr, d);
        while sim.core.poll_transmit().is_some() {
            sent += 1;
        }
    }
    println!("{packets} packets in, {sent} datagrams out");
}
