//! The limits a signaling session enforces on its own requests (see
//! [`crate::limits`]): messages over the rate, SDP size, lines and tracks,
//! trickled candidates, and the node's participant cap.

use super::{Next, Session};
use crate::limits::Limit;

impl Session {
    /// A message over `--max-messages-per-sec`: dropped unread, and the
    /// client told (once a second, not once per message).
    pub(super) fn over_rate(&mut self, warn: bool) -> Next {
        self.state.limit_hit(Limit::MessageRate);
        if warn {
            let rate = self.state.limits.messages_per_sec;
            self.error(
                "rate_limited",
                format!("more than {rate} messages per second; messages are being dropped"),
            );
        }
        Next::Continue
    }

    /// Checks an offer's or answer's size, lines and (for an offer) sending
    /// tracks; answers an error if it is over a limit. A new offer or
    /// answer starts a new count of trickled candidates.
    pub(super) fn sdp_within_limits(&mut self, sdp: &str, is_offer: bool) -> bool {
        match self.state.limits.check_sdp(sdp, is_offer) {
            Ok(()) => {
                self.candidates = 0;
                true
            }
            Err((limit, message)) => {
                self.state.limit_hit(limit);
                self.error("limit_exceeded", message);
                false
            }
        }
    }

    /// Counts one trickled candidate against `--max-candidates-per-offer`.
    pub(super) fn candidate_within_limits(&mut self) -> bool {
        let max = self.state.limits.max_candidates_per_offer;
        if self.candidates >= max {
            self.state.limit_hit(Limit::Candidates);
            // Said once per offer, not once per candidate.
            if self.candidates == max {
                self.error(
                    "limit_exceeded",
                    format!("more than {max} ICE candidates for one offer; the rest are ignored"),
                );
            }
            self.candidates = self.candidates.saturating_add(1);
            return false;
        }
        self.candidates += 1;
        true
    }

    /// Whether this node takes one more participant under `--max-peers`;
    /// answers `server_full` if not.
    pub(super) async fn room_for_one_more(&mut self) -> bool {
        let max = self.state.limits.max_peers;
        let peers = match self.state.worker.snapshot().await {
            Ok(snapshot) => snapshot.peers,
            // The join that follows reports the Worker's trouble.
            Err(_) => return true,
        };
        if peers < max as u64 {
            return true;
        }
        self.state.limit_hit(Limit::Peers);
        self.error(
            "server_full",
            format!("this server is full ({max} participants); try again later"),
        );
        false
    }
}
