//! One publisher's video forwarded to N subscribers through the core, in
//! memory, shaped like the IO driver's loop at low load: each datagram is
//! handled, every datagram it caused is taken, and the core is asked when
//! its next timer is due (`Core::poll_timeout`, once per loop turn in the
//! driver). For `valgrind --tool=callgrind`, whose instruction counts do not
//! depend on what else the machine is doing.
//!
//! ```sh
//! cargo build --release -p sfu --example fanout_profile
//! valgrind --tool=callgrind --toggle-collect='fanout_profile::measured' \
//!   target/release/examples/fanout_profile 1000 100 [aes-cm]
//! ```
//!
//! Only `measured` is counted: the set-up (ICE, DTLS) is left out.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::Sim;
use sfu::core::{Core, CoreConfig};

/// Handles every datagram as the driver would, `step` apart on the
/// virtual clock, running the core's timers when they are due; returns the
/// datagrams sent.
#[inline(never)]
fn measured(
    core: &mut Core,
    start: Instant,
    step: Duration,
    from: SocketAddr,
    datagrams: Vec<BytesMut>,
) -> usize {
    let mut sent = 0usize;
    let mut now = start;
    for d in datagrams {
        now += step;
        core.handle_datagram(now, from, d);
        while core.poll_transmit().is_some() {
            sent += 1;
        }
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
            while core.poll_transmit().is_some() {}
        }
    }
    sent
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let packets: usize = args.get(1).and_then(|a| a.parse().ok()).expect("packets");
    let subscribers: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .expect("subscribers");

    let mut config = CoreConfig::new(common::SFU_ADDR.parse().unwrap());
    // `aes-cm` as a third argument: every leg AES-CM-128-HMAC-SHA1-80
    // instead of the default AES-128-GCM.
    if args.get(3).is_some_and(|a| a == "aes-cm") {
        config.srtp_profiles = vec![
            rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ];
    }
    // The clock stands still while packets go in: no inbound cap, or the
    // publisher's token bucket would empty after a second's worth.
    config.inbound_limits = sfu::core::rate_limit::InboundLimits {
        max_kbps: u32::MAX,
        max_pps: u32::MAX,
    };
    let mut sim = Sim::connected(config, subscribers);
    sim.send_frames(0, 0, 5);
    let addr = sim.clients[0].addr;
    let datagrams = sim.video_datagrams(0, 100, packets);
    // 3 ms apart: a 1,000-packet run spans 3 s, within the ICE
    // disconnection timeout (4 s) of clients that are not answering.
    let step = Duration::from_millis(3);
    let sent = measured(&mut sim.core, sim.now, step, addr, datagrams);
    println!("{packets} packets in, {sent} datagrams out");
}
