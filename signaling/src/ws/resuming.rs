//! Keeping a signaling session whose socket was lost, and giving it back:
//! a lost socket's session is parked for the resume grace period (shorter
//! in a 1:1 call), queueing what its client should get; a `resume` on a new
//! socket claims it, taking it over from an old socket the server still
//! thinks alive if need be.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{next_item, Next, Session};
use crate::protocol::ServerMessage;

/// A joined session in a 1:1 call waits at most this long for a resume, so
/// that a caller who vanished ends the call for the other within 10 s
/// (after [`super::IDLE_TIMEOUT`] noticed).
const CALL_RESUME_GRACE: Duration = Duration::from_secs(3);
/// How long a `resume` waits for a taken-over session to be parked.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);
/// Messages queued for a parked session beyond this end it.
const PARKED_OUTBOX_LIMIT: usize = 512;

/// Keeps a session whose socket was lost for `grace`, queueing what the
/// client should get, until a new socket claims it or the time is up.
pub(super) async fn park(mut s: Session, grace: Duration) {
    let Some(token) = s.resume_token.clone() else {
        return s.end().await;
    };
    let state = s.state.clone();
    let mut claimed = state.parked.park(token.clone());
    state.metrics.parked_sessions.inc();
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "socket lost; session parked for resume"
    );
    let deadline = Instant::now() + grace;
    let claim = loop {
        tokio::select! {
            claim = &mut claimed => break claim.ok(),
            signal = next_item(&mut s.signals) => {
                match signal {
                    Some(signal) => {
                        if let Next::Close(..) = s.on_signal(signal) {
                            break None;
                        }
                    }
                    None => {
                        s.signals = None;
                        s.peer = None;
                        break None;
                    }
                }
                if s.outbox.len() > PARKED_OUTBOX_LIMIT {
                    tracing::info!("too much queued for a parked session; ending it");
                    break None;
                }
            }
            event = next_item(&mut s.call_events) => {
                if let Some(event) = event {
                    s.on_call_event(event);
                }
            }
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    state.metrics.parked_sessions.dec();
    // Handed over, unless the claiming socket went away meanwhile.
    let mut s = match claim {
        Some(reply) => match reply.send(s) {
            Ok(()) => {
                state.metrics.resumes.inc();
                return;
            }
            Err(back) => back,
        },
        None => s,
    };
    state.parked.forget(&token);
    tracing::info!("session not resumed in time; ending it");
    if let Some(id) = s.call_id.take() {
        state.calls.unregister(&id, s.conn);
    }
    s.end().await;
}

/// Resolves when a takeover is asked for; pending forever without one (or
/// once its sender is gone).
pub(super) async fn next_takeover(rx: &mut Option<oneshot::Receiver<()>>) {
    match rx {
        Some(r) => {
            if r.await.is_err() {
                *rx = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

impl Session {
    /// How long this session may wait for a resume after its socket was
    /// lost: `None` if it has nothing worth keeping (not joined) or resume
    /// is off.
    pub(super) fn resume_grace(&self) -> Option<Duration> {
        let grace = self.state.resume_grace;
        if self.peer.is_none() || self.resume_token.is_none() || grace.is_zero() {
            return None;
        }
        let in_call = self
            .room
            .as_deref()
            .is_some_and(crate::calls::is_private_room);
        Some(if in_call {
            grace.min(CALL_RESUME_GRACE)
        } else {
            grace
        })
    }

    /// `resume`: takes over the parked session `token` names.
    pub(super) async fn resume(&mut self, token: String) {
        if self.peer.is_some() || self.call_id.is_some() {
            return self.error(
                "already_joined",
                "resume must come before join and register",
            );
        }
        let mut parked = self.state.parked.claim(&token).await;
        if parked.is_none() && self.state.parked.take_over(&token) {
            // Its old socket lets go and parks it: claim it as soon as it is.
            let deadline = Instant::now() + TAKEOVER_WAIT;
            while parked.is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                parked = self.state.parked.claim(&token).await;
            }
        }
        let Some(mut parked) = parked else {
            return self.error(
                "resume_failed",
                "no session to resume: it ended or the token is wrong; join again",
            );
        };
        parked.last_seen = Instant::now();
        parked.takeover = Some(self.state.parked.attach(token));
        std::mem::swap(self, &mut parked);
        let (Some(room), Some(peer)) = (self.room.clone(), self.peer) else {
            return self.error("resume_failed", "the session has ended; join again");
        };
        let span = tracing::Span::current();
        span.record("room", room.as_str());
        span.record("peer", tracing::field::display(peer));
        tracing::info!("session resumed");
        self.outbox.insert(
            0,
            ServerMessage::Resumed {
                room,
                peer_id: peer.to_string(),
            },
        );
    }
}
