//! Liveness by authenticated traffic, for every Peer.
//!
//! `rtc` keeps consent by STUN only, and only on the first candidate pair
//! the client nominated (docs/ARCHITECTURE.md, webrtc-rs notes 14 and 23).
//! GStreamer's webrtcbin (libnice) sends no STUN at all once connected, so
//! a WHIP publisher was removed by the consent timeout while its media
//! flowed; and a browser that moved its checks to another pair (two host
//! candidates that both reach the SFU) was removed 15 s after joining
//! while its media flowed. So every Peer gets ICE timeouts too long to
//! matter, and the core removes it itself when nothing authenticated has
//! arrived from it for the consent timeout: a STUN check `rtc` accepted
//! (its MESSAGE-INTEGRITY checked out), RTP `rtc` decrypted, or RTCP it
//! delivered (a viewer's receiver reports). Spoofed datagrams from its
//! address do not count, so they cannot keep a dead session alive.
//!
//! A session's connection also accepts AES-CM SRTP after the configured
//! (AES-GCM) profiles: webrtcbin offers no GCM.

use std::time::{Duration, Instant};

use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;

use super::ids::PeerId;
use super::{Core, CoreError, Joined, LeaveReason, Permissions, Signal};

/// `rtc`'s own ICE timeouts for a Peer under media consent: never.
pub(super) const ICE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

impl Core {
    /// Adds a WHIP or WHEP session to `room`: a Peer under media consent
    /// with `permissions`; with `viewer`, a hidden viewer (WHEP) that
    /// receives on the sections it offers, fed by the participant named in
    /// it (a display name or `p<n>` id) or by the active speaker.
    pub fn join_session(
        &mut self,
        now: Instant,
        room: &str,
        name: &str,
        permissions: Permissions,
        viewer: Option<Option<String>>,
    ) -> Result<Joined, CoreError> {
        let credentials = self.fresh_credentials();
        let joined = self.join_peer(now, room, name, credentials, Some(viewer.is_some()), None)?;
        let id = joined.peer_id;
        self.set_permissions(id, permissions);
        if let Some(choice) = viewer {
            self.make_viewer(id, choice)?;
        }
        Ok(joined)
    }

    /// The ICE timeout and SRTP profiles of a WHIP or WHEP session's
    /// connection: `rtc`'s timeouts never fire (liveness is ours), and
    /// AES-CM-128-HMAC-SHA1-80 is accepted after the configured profiles,
    /// since GStreamer's webrtcbin (1.22, Debian 12) offers no AES-GCM and
    /// would otherwise fail its DTLS handshake. Browsers list AES-CM first,
    /// so a browser-based WHIP client gets AES-CM too.
    pub(super) fn session_connection(&self) -> (Duration, Vec<SrtpProtectionProfile>) {
        let mut profiles = self.config.srtp_profiles.clone();
        let aes_cm = SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80;
        // Empty means `rtc`'s own list, which has AES-CM already.
        if !profiles.is_empty() && !profiles.contains(&aes_cm) {
            profiles.push(aes_cm);
        }
        (ICE_TIMEOUT, profiles)
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
            .filter(|p| now.saturating_duration_since(p.last_inbound) >= timeout)
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
