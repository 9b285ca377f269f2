//! Simulcast in the core: every [`LAYER_INTERVAL`] each subscriber's
//! video Subscriptions choose their layer from its bandwidth estimate and
//! its wishes (`layers::LayerSelector`), and each Track's publisher is told
//! which layers anyone still receives (dynacast), so that it stops encoding
//! the others.

use std::time::{Duration, Instant};

use super::ids::{MediaKind, PeerId, TrackId};
use super::layers::LayerInfo;
use super::{Core, CoreError, Signal};

/// How often layers are chosen and dynacast is decided.
pub const LAYER_INTERVAL: Duration = Duration::from_millis(500);
/// A layer nobody has received for this long is paused at the publisher.
pub const DYNACAST_DELAY: Duration = Duration::from_secs(3);
/// Bits per second set aside for each audio Subscription.
const AUDIO_BUDGET: f64 = 48_000.0;

/// Layer bitrates are measured over this window.
const BITRATE_WINDOW: Duration = Duration::from_secs(1);

impl Core {
    /// One round: measure layer bitrates, choose every subscriber's layers,
    /// and decide dynacast.
    pub(super) fn layer_round(&mut self, now: Instant) {
        for track in self.tracks.values_mut() {
            let dt = now.saturating_duration_since(track.sampled_at);
            if dt < BITRATE_WINDOW {
                continue;
            }
            for layer in &mut track.layers {
                let measured = layer.bytes as f64 * 8.0 / dt.as_secs_f64();
                if measured > 0.0 {
                    layer.bitrate = measured;
                }
                layer.bytes = 0;
            }
            track.sampled_at = now;
        }
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.select_layers(now, id);
        }
        self.dynacast(now);
    }

    /// Chooses the layer of each of `id`'s video Subscriptions.
    pub(super) fn select_layers(&mut self, now: Instant, id: PeerId) {
        let Core {
            peers,
            tracks,
            counters,
            outputs,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        // The estimate, less audio and single-layer video (which are
        // forwarded whatever the estimate), shared among simulcast videos.
        // Before the first estimate, the congestion controller's start.
        let mut budget = Some(
            peer.quality
                .bandwidth_estimate
                .unwrap_or(super::peer_config::INITIAL_BANDWIDTH_ESTIMATE),
        );
        let mut simulcast_videos = 0usize;
        for sub in peer.subscriptions.values() {
            let Some(track) = tracks.get(&sub.track) else {
                continue;
            };
            let fixed = match (sub.kind, track.is_simulcast()) {
                (MediaKind::Audio, _) => AUDIO_BUDGET,
                (MediaKind::Video, false) => track.layers[0].planning_bitrate(),
                (MediaKind::Video, true) => {
                    if sub.max_level.is_some() {
                        simulcast_videos += 1;
                    }
                    0.0
                }
            };
            budget = budget.map(|b| b - fixed);
        }
        let share = budget.map(|b| b.max(0.0) / simulcast_videos.max(1) as f64);
        let mut requests = Vec::new();
        for sub in peer.subscriptions.values_mut() {
            if sub.kind != MediaKind::Video {
                continue;
            }
            let Some(track) = tracks.get(&sub.track) else {
                continue;
            };
            let infos: Vec<LayerInfo> = track
                .order
                .iter()
                .map(|&i| LayerInfo {
                    bitrate: track.layers[i].planning_bitrate(),
                    available: track.layers[i].is_live(now) || track.dynacast_off[i],
                })
                .collect();
            let was_paused = sub.paused();
            // Without simulcast there is nothing to choose: the one layer is
            // forwarded (unless the tile is hidden). Pausing it on the
            // estimate alone would trap it: with nothing but audio on the
            // downlink, the estimate says nothing of what video would fit.
            let budget = if track.is_simulcast() { share } else { None };
            let changed = sub.selector.select(now, &infos, budget, sub.max_level);
            if let Some(level) = changed {
                let target = level.map(|l| track.order[l]);
                sub.target = target;
                match target {
                    None => sub.layer = None,
                    Some(layer) if sub.layer != Some(layer) => requests.push((sub.track, layer)),
                    Some(_) => {}
                }
                counters.layer_changes += 1;
            }
            if sub.paused() != was_paused {
                outputs.push_back(super::Output {
                    peer: id,
                    signal: Signal::VideoPaused {
                        track_id: sub.track,
                        paused: sub.paused(),
                    },
                });
            }
        }
        // The new targets start at their next keyframe: ask for it now.
        for (track, layer) in requests {
            self.request_keyframe(now, track, layer);
        }
    }

    /// Dynacast: tells each simulcast publisher which layers someone still
    /// receives or is switching to. A layer is paused [`DYNACAST_DELAY`]
    /// after its last receiver left it, and resumed at once when wanted.
    fn dynacast(&mut self, now: Instant) {
        self.link_demand();
        let mut changed: Vec<TrackId> = Vec::new();
        for track in self.tracks.values_mut() {
            if !track.is_simulcast() {
                continue;
            }
            let mut wanted = vec![false; track.layers.len()];
            for subscriber in &track.subscribers {
                let Some(sub) = self
                    .peers
                    .get(subscriber)
                    .and_then(|p| p.subscriptions.get(&track.id))
                else {
                    continue;
                };
                for layer in [sub.layer, sub.target].into_iter().flatten() {
                    wanted[layer] = true;
                }
            }
            let mut track_changed = false;
            for (i, wanted) in wanted.into_iter().enumerate() {
                if wanted {
                    track.unwanted_since[i] = None;
                    if track.dynacast_off[i] {
                        track.dynacast_off[i] = false;
                        track_changed = true;
                    }
                } else if !track.dynacast_off[i] {
                    let since = *track.unwanted_since[i].get_or_insert(now);
                    if now.saturating_duration_since(since) >= DYNACAST_DELAY {
                        track.dynacast_off[i] = true;
                        track_changed = true;
                    }
                }
            }
            if track_changed {
                changed.push(track.id);
            }
        }
        for track_id in changed {
            let Some(track) = self.tracks.get(&track_id) else {
                continue;
            };
            let active: Vec<String> = track
                .order
                .iter()
                .filter(|&&i| !track.dynacast_off[i])
                .map(|&i| track.layers[i].rid.clone())
                .collect();
            tracing::debug!(track = %track_id, ?active, "dynacast");
            self.counters.dynacast_changes += 1;
            let signal = Signal::PublishLayers {
                track: track.rtc_track_id.clone(),
                active,
            };
            let publisher = track.publisher;
            self.emit(publisher, signal);
        }
    }

    /// The subscriber's wish for one Track's video: the highest quality
    /// level it wants (0 = lowest; `None`: no video, for a hidden tile).
    /// Takes effect at once.
    pub fn set_video_preference(
        &mut self,
        now: Instant,
        id: PeerId,
        track: TrackId,
        max_level: Option<usize>,
    ) -> Result<(), CoreError> {
        let peer = self.peers.get_mut(&id).ok_or(CoreError::UnknownPeer)?;
        let sub = peer
            .subscriptions
            .get_mut(&track)
            .ok_or(CoreError::UnknownTrack)?;
        if sub.max_level == max_level {
            return Ok(());
        }
        sub.max_level = max_level;
        sub.selector.restart();
        self.select_layers(now, id);
        self.dynacast(now);
        self.flush(now);
        Ok(())
    }
}
