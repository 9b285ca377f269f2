//! Panic containment: a bug that one Peer's input triggers (a datagram, an
//! offer, a candidate) ends that Peer, not the Worker. [`Core::contain`]
//! runs one core call under `catch_unwind`; after a panic the suspect Peer
//! is removed (`sfu_leaves_total{reason="fault"}`), and if there is no
//! suspect, or removing it panics too, the core starts over empty. The
//! Worker then ends the sessions of the Peers that are gone, and their
//! clients rejoin. Each panic is logged and counted
//! (`sfu_worker_panics_total`).
//!
//! Rust unwinding leaves no undefined behaviour behind, but it may leave
//! the core's bookkeeping half-updated; the suspect's removal clears what
//! was its own, which is where the half-done work was.
//!
//! With the `fault-injection` feature (tests only), a Peer can trigger a
//! panic on purpose: see the `fault` module below.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::{Core, LeaveReason, PeerId};

/// Whose input a core call handles: the Peer blamed if it panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspect {
    /// Nobody in particular (timers, admin requests).
    Nobody,
    /// This Peer (its offer, answer, candidate).
    Peer(PeerId),
    /// The Peer whose ICE-checked address this is (a datagram or an
    /// ICE-TCP frame), looked up only if there is a panic.
    Source(rtc::shared::TransportProtocol, std::net::SocketAddr),
}

/// What containing a panic cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contained {
    /// The suspect Peer was removed; the others go on.
    PeerRemoved(PeerId),
    /// The core started over empty: every Peer of this Worker is gone.
    Reset,
}

impl Core {
    /// Runs `f` on this core; a panic in it is contained (see the module
    /// docs), blaming `suspect`. Costs nothing until something panics.
    pub fn contain<R>(
        &mut self,
        now: Instant,
        suspect: Suspect,
        f: impl FnOnce(&mut Core) -> R,
    ) -> Result<R, Contained> {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(r) => Ok(r),
            Err(payload) => {
                let peer = match suspect {
                    Suspect::Nobody => None,
                    Suspect::Peer(peer) => Some(peer),
                    Suspect::Source(protocol, source) => self.routes.peer_of(&(protocol, source)),
                };
                Err(self.recover(now, peer, &*payload))
            }
        }
    }

    /// Panics contained so far.
    pub fn panics(&self) -> u64 {
        self.counters.panics
    }

    fn recover(&mut self, now: Instant, suspect: Option<PeerId>, payload: &dyn Any) -> Contained {
        let what = panic_message(payload);
        self.counters.panics += 1;
        // What the panicking call queued may be half-made: dropped.
        self.transmits.clear();
        self.ingress = None;
        self.unfinished = None;
        if let Some(peer) = suspect.filter(|p| self.peers.contains_key(p)) {
            tracing::error!(%peer, panic = %what, "panic while handling a participant's input; removing the participant");
            let removed = catch_unwind(AssertUnwindSafe(|| {
                self.remove_peer(now, peer, LeaveReason::Fault);
                self.flush(now);
            }));
            if removed.is_ok() {
                return Contained::PeerRemoved(peer);
            }
            tracing::error!(%peer, "removing the participant panicked too");
        } else {
            tracing::error!(panic = %what, "panic in the media worker with no participant to blame");
        }
        self.reset(now);
        Contained::Reset
    }

    /// Starts over empty, keeping the configuration and the running totals
    /// (so that counters in `/metrics` do not go backwards). Every Peer is
    /// gone: the Worker ends their sessions.
    fn reset(&mut self, now: Instant) {
        tracing::error!(peers = self.peers.len(), "media worker starts over empty");
        let peers = self.peers.len() as u64;
        let mut counters = std::mem::take(&mut self.counters);
        counters.leaves_by(LeaveReason::Fault, peers);
        let histograms = std::mem::take(&mut self.histograms);
        let rtcp = std::mem::take(&mut self.rtcp);
        let next_peer = self.next_peer;
        let next_track = self.next_track;
        *self = Core::new(self.config.clone(), now);
        self.counters = counters;
        self.histograms = histograms;
        self.rtcp = rtcp;
        // Ids are never reused, so a late message for an old Peer cannot
        // reach a new one.
        self.next_peer = next_peer;
        self.next_track = next_track;
    }
}

fn panic_message(payload: &dyn Any) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Deliberate panics, compiled only with the `fault-injection` feature
/// (which only tests enable): an offer carrying the SDP attribute
/// `a=x-sfu-fault:panic`, or a routed datagram that is exactly
/// [`fault::PANIC_DATAGRAM`], panics inside the core.
#[cfg(feature = "fault-injection")]
pub mod fault {
    /// The SDP line that makes an offer panic the core.
    pub const PANIC_SDP_LINE: &str = "a=x-sfu-fault:panic";
    /// The datagram that makes the core panic when it reaches a Peer.
    pub const PANIC_DATAGRAM: &[u8] = b"x-sfu-fault:panic";

    /// Panics if `sdp` asks for it.
    pub fn check_offer(sdp: &str) {
        if sdp.lines().any(|l| l.trim_end() == PANIC_SDP_LINE) {
            panic!("injected fault: offer");
        }
    }

    /// Panics if `data` asks for it.
    pub fn check_datagram(data: &[u8]) {
        if data == PANIC_DATAGRAM {
            panic!("injected fault: datagram");
        }
    }
}
