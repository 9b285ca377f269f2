//! What a Peer may do in the media plane, from its access token: publish
//! (its tracks become Tracks) and subscribe (it gets Subscriptions).
//! Signaling refuses a forbidden offer first; this is the second line: a
//! Peer without `publish` never gets a Track, and its RTP is dropped and
//! counted (`Counters::rtp_unpermitted`).

/// A Peer's media permissions. The default allows everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Its incoming tracks are forwarded.
    pub publish: bool,
    /// It receives the others' tracks.
    pub subscribe: bool,
}

impl Default for Permissions {
    fn default() -> Self {
        Self {
            publish: true,
            subscribe: true,
        }
    }
}

impl super::Core {
    /// Sets what Peer `id` may do; before its first offer, so that nothing
    /// it may not have exists yet. Unknown Peers are ignored.
    pub fn set_permissions(&mut self, id: super::PeerId, permissions: Permissions) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.permissions = permissions;
        }
    }
}
