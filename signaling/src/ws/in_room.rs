//! In-room requests of a signaling session: chat, mute and track sources.
//! Each is validated and rate limited here before it reaches the media
//! Worker; chat and track sources travel to the room as [`RoomMessage`]s.

use std::time::Duration;

use tokio::time::Instant;

use super::Session;
use crate::room_messages::{validate_chat, validate_track_id, RoomMessage, TrackSource};

/// How often a `trackSource` waiting for its track is retried.
pub(super) const SOURCE_RETRY: Duration = Duration::from_millis(200);
/// How long a `trackSource` may wait for its track to be published.
const SOURCE_WAIT: Duration = Duration::from_secs(15);
/// Track sources remembered for newcomers (stopped screen shares included).
const MAX_SOURCES: usize = 4;

/// A `trackSource` whose track has not reached the SFU yet.
pub(super) struct PendingSource {
    client_track_id: String,
    source: TrackSource,
    deadline: Instant,
}

impl Session {
    /// Relays chat text to everyone else in the room.
    pub(super) async fn chat(&mut self, text: String) {
        let Some(peer) = self.joined_peer() else {
            return;
        };
        if let Err((code, message)) = validate_chat(&text) {
            return self.error(code, message);
        }
        if !self.chat_limiter.allow() {
            let secs = self.chat_limiter.retry_after().as_secs_f64().max(0.1);
            return self.error(
                "rate_limited",
                format!("too many chat messages; try again in {secs:.1} s"),
            );
        }
        let payload = RoomMessage::Chat { text }.encode();
        if let Err(err) = self.state.worker.broadcast(peer, payload).await {
            self.worker_error(err);
        }
    }

    /// Mutes or unmutes one of the client's tracks: the SFU stops or
    /// resumes forwarding it and tells the room.
    pub(super) async fn mute(&mut self, track_id: String, muted: bool) {
        let Some(peer) = self.joined_peer() else {
            return;
        };
        if let Err(message) = validate_track_id(&track_id) {
            return self.error("bad_track", message);
        }
        if !self.media_limiter.allow() {
            return self.error("rate_limited", "too many mute or track requests");
        }
        match self
            .state
            .worker
            .set_muted(peer, track_id.clone(), muted)
            .await
        {
            Ok(_) if muted => {
                self.muted.insert(track_id);
            }
            Ok(_) => {
                self.muted.remove(&track_id);
            }
            Err(err) => self.worker_error(err),
        }
    }

    /// Records what one of the client's tracks shows; the room is told once
    /// the track is published (the SFU names it `t<n>` then).
    pub(super) async fn track_source(&mut self, track_id: String, source: TrackSource) {
        if self.joined_peer().is_none() {
            return;
        }
        if let Err(message) = validate_track_id(&track_id) {
            return self.error("bad_track", message);
        }
        if !self.media_limiter.allow() {
            return self.error("rate_limited", "too many mute or track requests");
        }
        self.pending_sources
            .retain(|p| p.client_track_id != track_id);
        self.pending_sources.push(PendingSource {
            client_track_id: track_id,
            source,
            deadline: Instant::now() + SOURCE_WAIT,
        });
        self.resolve_sources().await;
    }

    /// Looks up the SFU's id of each pending track and tells the room what
    /// it shows. The lookup is `set_muted` with the track's current state,
    /// which changes nothing and returns the id once the track exists.
    pub(super) async fn resolve_sources(&mut self) {
        let Some(peer) = self.peer else {
            self.pending_sources.clear();
            return;
        };
        let mut waiting = Vec::new();
        for pending in std::mem::take(&mut self.pending_sources) {
            let muted = self.muted.contains(&pending.client_track_id);
            let lookup = self
                .state
                .worker
                .set_muted(peer, pending.client_track_id.clone(), muted)
                .await;
            match lookup {
                Ok(Some(track)) => {
                    let track_id = track.to_string();
                    self.sources.retain(|(t, _)| *t != track_id);
                    if self.sources.len() >= MAX_SOURCES {
                        // The oldest are tracks long unpublished.
                        self.sources.remove(0);
                    }
                    self.sources.push((track_id.clone(), pending.source));
                    let message = RoomMessage::TrackSource {
                        track_id,
                        source: pending.source,
                    };
                    if let Err(err) = self.state.worker.broadcast(peer, message.encode()).await {
                        tracing::debug!(%err, "track source broadcast failed");
                    }
                }
                Ok(None) if Instant::now() < pending.deadline => waiting.push(pending),
                Ok(None) => {
                    tracing::debug!(track = %pending.client_track_id, "track source: never published");
                }
                Err(err) => tracing::debug!(%err, "track source lookup failed"),
            }
        }
        self.pending_sources = waiting;
        self.source_retry_at = Instant::now() + SOURCE_RETRY;
    }

    /// Someone joined: tell the room the sources of our tracks again (it is
    /// idempotent for those who knew).
    pub(super) fn retell_sources(&mut self) {
        let Some(peer) = self.peer else {
            return;
        };
        for (track_id, source) in &self.sources {
            let payload = RoomMessage::TrackSource {
                track_id: track_id.clone(),
                source: *source,
            }
            .encode();
            let worker = self.state.worker.clone();
            // Fire and forget: a lost re-tell only costs a label.
            tokio::spawn(async move {
                let _ = worker.broadcast(peer, payload).await;
            });
        }
    }
}
