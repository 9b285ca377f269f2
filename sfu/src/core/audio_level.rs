//! Audio levels and the active speaker. Each audio Track's level comes from
//! the `ssrc-audio-level` header extension (RFC 6464: 0 is the loudest,
//! 127 silence, in −dBov) and is smoothed per packet. Every
//! `SPEAKER_INTERVAL` each room's loudest Track is found; it becomes the
//! active speaker only after winning `SPEAKER_WINS` checks in a row by
//! `SPEAKER_MARGIN`, so that the highlight does not flicker.

use std::time::{Duration, Instant};

use super::ids::PeerId;
use super::{Core, Signal};

/// How often each room's active speaker is decided.
pub const SPEAKER_INTERVAL: Duration = Duration::from_millis(500);
/// Consecutive checks a challenger must win (so about 1 s).
pub const SPEAKER_WINS: u8 = 2;
/// How much louder (in dB) a challenger must be than the current speaker.
pub const SPEAKER_MARGIN: f64 = 6.0;
/// Quieter than this (−dBov) is silence: nobody is speaking.
pub const SILENCE_DBOV: f64 = 70.0;
/// Weight of each packet in the smoothed level (about 0.4 s at 50 pps).
const SMOOTHING: f64 = 1.0 / 20.0;
/// A Track with no packet for this long is taken as silent (DTX, mute).
const STALE: Duration = Duration::from_millis(400);

/// The smoothed loudness of one audio Track.
#[derive(Debug, Clone, Copy)]
pub struct Loudness {
    /// Smoothed loudness in dB above silence (127 − level): higher is louder.
    value: f64,
    last_packet: Option<Instant>,
}

impl Default for Loudness {
    fn default() -> Self {
        Self {
            value: 0.0,
            last_packet: None,
        }
    }
}

impl Loudness {
    /// One packet's level (0–127, −dBov).
    pub fn observe(&mut self, now: Instant, level: u8) {
        let loudness = 127.0 - f64::from(level.min(127));
        self.value += (loudness - self.value) * SMOOTHING;
        self.last_packet = Some(now);
    }

    /// The smoothed loudness at `now` (0 if the Track went quiet).
    pub fn at(&self, now: Instant) -> f64 {
        match self.last_packet {
            Some(t) if now.saturating_duration_since(t) < STALE => self.value,
            _ => 0.0,
        }
    }
}

/// The audio level carried by a packet's `ssrc-audio-level` extension.
pub fn level_of(header: &rtc::rtp::header::Header, extension_id: u8) -> Option<u8> {
    header
        .get_extension(extension_id)
        .and_then(|b| b.first().map(|v| v & 0x7F))
}

/// One room's speaker state.
#[derive(Debug, Default, Clone)]
pub struct SpeakerState {
    /// The current active speaker.
    pub active: Option<PeerId>,
    challenger: Option<(PeerId, u8)>,
}

impl SpeakerState {
    /// Decides with the loudest participant (`None` if everyone is silent)
    /// and the current speaker's loudness; returns the new speaker on a change.
    pub fn decide(
        &mut self,
        loudest: Option<(PeerId, f64)>,
        current_loudness: f64,
    ) -> Option<PeerId> {
        let Some((candidate, loudness)) = loudest else {
            self.challenger = None;
            return None;
        };
        if Some(candidate) == self.active {
            self.challenger = None;
            return None;
        }
        let margin = if self.active.is_some() {
            SPEAKER_MARGIN
        } else {
            0.0
        };
        if loudness < current_loudness + margin {
            self.challenger = None;
            return None;
        }
        let wins = match self.challenger {
            Some((c, n)) if c == candidate => n + 1,
            _ => 1,
        };
        if wins >= SPEAKER_WINS {
            self.active = Some(candidate);
            self.challenger = None;
            return Some(candidate);
        }
        self.challenger = Some((candidate, wins));
        None
    }
}

impl Core {
    /// Decides every room's active speaker and tells its members of changes.
    pub(super) fn update_speakers(&mut self, now: Instant) {
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let members = self.room_peers(&room);
            let loudness_of = |core: &Core, peer: PeerId| -> f64 {
                core.peers
                    .get(&peer)
                    .into_iter()
                    .flat_map(|p| p.published.values())
                    .filter_map(|t| core.tracks.get(t))
                    .filter(|t| !t.muted)
                    .map(|t| t.loudness.at(now))
                    .fold(0.0, f64::max)
            };
            let loudest = members
                .iter()
                .map(|p| (*p, loudness_of(self, *p)))
                .filter(|(_, l)| *l > 127.0 - SILENCE_DBOV)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let Some(state) = self.rooms.get(&room).map(|r| r.speaker.clone()) else {
                continue;
            };
            let current = state.active.map_or(0.0, |p| loudness_of(self, p));
            let mut state = state;
            let changed = state.decide(loudest, current);
            if let Some(r) = self.rooms.get_mut(&room) {
                r.speaker = state;
            }
            if let Some(speaker) = changed {
                for member in &members {
                    self.emit(*member, Signal::ActiveSpeaker { peer_id: speaker });
                }
                self.refresh_viewers(now, &room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_and_staleness() {
        let t0 = Instant::now();
        let mut l = Loudness::default();
        for i in 0..100 {
            l.observe(t0 + Duration::from_millis(20 * i), 30);
        }
        let at = t0 + Duration::from_millis(2000);
        assert!((l.at(at) - 97.0).abs() < 1.0, "{}", l.at(at));
        assert_eq!(l.at(at + Duration::from_secs(1)), 0.0, "no packets: silent");
    }

    #[test]
    fn a_speaker_needs_two_wins_and_a_margin() {
        let (a, b) = (PeerId(1), PeerId(2));
        let mut s = SpeakerState::default();
        assert_eq!(
            s.decide(Some((a, 80.0)), 0.0),
            None,
            "one win is not enough"
        );
        assert_eq!(s.decide(Some((a, 80.0)), 0.0), Some(a));
        // B is louder, but not by the margin.
        assert_eq!(s.decide(Some((b, 84.0)), 80.0), None);
        assert_eq!(s.decide(Some((b, 84.0)), 80.0), None);
        // B is louder by more than the margin, twice in a row.
        assert_eq!(s.decide(Some((b, 90.0)), 80.0), None);
        assert_eq!(
            s.decide(Some((a, 85.0)), 85.0),
            None,
            "A is back on top: B's streak ends"
        );
        assert_eq!(s.decide(Some((b, 90.0)), 80.0), None);
        assert_eq!(s.decide(Some((b, 90.0)), 80.0), Some(b));
        assert_eq!(s.active, Some(b));
        // Silence keeps the last speaker.
        assert_eq!(s.decide(None, 0.0), None);
        assert_eq!(s.active, Some(b));
    }
}
