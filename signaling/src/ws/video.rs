//! `videoPreference`: how the client shows a received video, turned into
//! the highest simulcast layer worth sending it.

use sfu::core::layers::rank;
use sfu::core::TrackId;

use super::Session;

/// A tile at most this many device pixels high gets the lowest layer
/// (`q`, about 180 lines)...
const LOW_MAX_HEIGHT: u32 = 240;
/// ...and at most this many the middle one (`h`, about 360 lines).
const MID_MAX_HEIGHT: u32 = 480;

/// The highest quality level (0 = `q`) for a tile of `width` by `height`
/// device pixels, capped by `max_layer`; `None` (no video) for a hidden
/// tile.
pub fn max_level(
    width: u32,
    height: u32,
    max_layer: Option<&str>,
) -> Result<Option<usize>, String> {
    let cap = match max_layer {
        None => usize::MAX,
        Some(rid @ ("q" | "h" | "f")) => usize::from(rank(rid)),
        Some(other) => return Err(format!("maxLayer {other:?} is not q, h or f")),
    };
    if width == 0 || height == 0 {
        return Ok(None);
    }
    let by_size = if height <= LOW_MAX_HEIGHT {
        0
    } else if height <= MID_MAX_HEIGHT {
        1
    } else {
        usize::MAX
    };
    Ok(Some(by_size.min(cap)))
}

impl Session {
    /// `videoPreference`.
    pub(super) async fn video_preference(
        &mut self,
        track_id: String,
        width: u32,
        height: u32,
        max_layer: Option<String>,
    ) {
        let Some(peer) = self.joined_peer() else {
            return;
        };
        let Ok(track) = track_id.parse::<TrackId>() else {
            return self.error(
                "bad_track",
                format!("{track_id:?} is not a track id (t<n>)"),
            );
        };
        let level = match max_level(width, height, max_layer.as_deref()) {
            Ok(level) => level,
            Err(message) => return self.error("bad_track", message),
        };
        if !self.media_limiter.allow() {
            return self.error("rate_limited", "too many video preference updates");
        }
        tracing::debug!(%track, ?level, "video preference");
        if let Err(err) = self
            .state
            .worker
            .set_video_preference(peer, track, level)
            .await
        {
            self.worker_error(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::max_level;

    #[test]
    fn tile_sizes_map_to_layers() {
        assert_eq!(max_level(0, 0, None), Ok(None), "hidden");
        assert_eq!(max_level(320, 180, None), Ok(Some(0)));
        assert_eq!(max_level(640, 360, None), Ok(Some(1)));
        assert_eq!(max_level(1280, 720, None), Ok(Some(usize::MAX)));
        assert_eq!(max_level(1280, 720, Some("h")), Ok(Some(1)));
        assert_eq!(max_level(320, 180, Some("f")), Ok(Some(0)));
        assert!(max_level(1, 1, Some("x")).is_err());
    }
}
