//! Liveness by authenticated traffic, for WHIP and WHEP clients.
//!
//! `rtc` keeps consent by STUN only (docs/ARCHITECTURE.md, webrtc-rs note
//! 14), which suits browsers: they check every few seconds. GStreamer's
//! webrtcbin (libnice) sends no STUN at all once connected, so a WHIP
//! publisher was removed by the consent timeout while its media flowed.
//! A Peer under media consent gets ICE timeouts too long to matter, and
//! the core removes it itself when nothing authenticated has arrived from
//! it for the consent timeout: a STUN check `rtc` accepted (its
//! MESSAGE-INTEGRITY checked out), RTP `rtc` decrypted, or RTCP it
//! delivered (a viewer's receiver reports). Spoofed datagrams from its
//! address do not count, so they cannot keep a dead session alive.

use std::time::{Duration, Instant};

use super::ids::PeerId;
use super::peer_config::build_peer_connection;
use super::{Core, CoreError, LeaveReason, Signal};

/// `rtc`'s own ICE timeouts for a Peer under media consent: never.
const ICE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

impl Core {
    /// Puts Peer `id` (before its first offer) under media consent: it is
    /// removed when nothing authenticated has arrived from it for the
    /// consent timeout, not when its client stops sending STUN.
    pub fn use_media_consent(&mut self, now: Instant, id: PeerId) -> Result<(), CoreError> {
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        if peer.negotiated_once {
            return Err(CoreError::Rtc("already negotiated".to_owned()));
        }
        // Nobody has seen the old password: a fresh one goes with the
        // rebuilt connection; the ufrag (the demultiplexer's key) stays.
        let pwd = rtc::ice::rand::generate_pwd();
        peer.pc = build_peer_connection(
            now,
            &peer.ufrag,
            &pwd,
            ICE_TIMEOUT,
            &self.config.srtp_profiles,
        )
        .map_err(|e| CoreError::Rtc(e.to_string()))?;
        peer.media_consent = true;
        peer.last_inbound = now;
        Ok(())
    }

    /// Sets up Peer `id` (before its first offer) as a WHIP or WHEP
    /// session: under media consent, and a viewer if `viewer` is given
    /// (with the participant it watches, if any).
    pub fn http_session(
        &mut self,
        now: Instant,
        id: PeerId,
        viewer: Option<Option<String>>,
    ) -> Result<(), CoreError> {
        self.use_media_consent(now, id)?;
        match viewer {
            Some(choice) => self.make_viewer(id, choice),
            None => Ok(()),
        }
    }

    /// Something authenticated arrived from Peer `id`.
    pub(super) fn note_inbound(&mut self, now: Instant, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.last_inbound = now;
        }
    }

    /// Removes the Peers under media consent that have been silent for the
    /// consent timeout, as `rtc` would have for a silent browser.
    pub(super) fn expire_media_consent(&mut self, now: Instant) {
        let timeout = self.config.consent_timeout;
        let silent: Vec<(PeerId, bool)> = self
            .peers
            .values()
            .filter(|p| p.media_consent && now.saturating_duration_since(p.last_inbound) >= timeout)
            .map(|p| (p.id, p.connected))
            .collect();
        for (id, was_connected) in silent {
            let (reason, text) = if was_connected {
                (LeaveReason::Timeout, "media connection lost")
            } else {
                (LeaveReason::Error, "media connection failed")
            };
            tracing::info!(peer = %id, "no authenticated traffic for the consent timeout");
            self.emit(
                id,
                Signal::Closed {
                    reason: text.to_owned(),
                },
            );
            self.remove_peer(now, id, reason);
        }
    }
}
