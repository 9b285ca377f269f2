//! Access control of a signaling session: every entry point (`join`,
//! `register`, `resume`) presents an access token (in the message, or
//! `?access_token=` on the /ws URL), and the token's grants gate what the
//! session may do afterwards.
//!
//! - `join`: the token must be for that room; its identity and name are the
//!   participant's; `roomCreate` is needed to be the first in a room.
//! - `register` (1:1 calling): the token's room is not checked. When its
//!   identity is a well-formed call ID, that is the only ID the socket may
//!   hold; otherwise the socket gets a fresh ID and may not ask for one.
//!   The private room of an answered call is joined with the grants of the
//!   `register` token (publish, subscribe, data), without a room check:
//!   the call registry already admits only the two parties.
//! - `resume`: any valid token of this server; the resume token proves the
//!   session itself.
//! - `offer`: one that sends media needs `canPublish`; `chat` needs
//!   `canPublishData`. `canSubscribe` goes to the media plane.
//!
//! A missing or bad token gets `error` `unauthorized` with the reason, is
//! counted in `sfu_auth_failures_total{reason}`, and closes the socket. A
//! good token asking `register` for another call ID gets `unauthorized`
//! too, but the socket stays (it may register without a `callId`).

use sfu::core::Permissions;

use super::Session;
use crate::auth::{AuthError, Claims};
use crate::calls::{is_private_room, normalize_call_id};
use crate::protocol::{validate_name, validate_room, ClientMessage};

/// Close code: no valid access token (application range).
pub(super) const CLOSE_UNAUTHORIZED: u16 = 4003;

impl Session {
    /// The media permissions of the current token (everything without one,
    /// which only happens for requests that are refused anyway).
    pub(super) fn permissions(&self) -> Permissions {
        self.access
            .as_ref()
            .map_or_else(Permissions::default, |a| Permissions {
                publish: a.grants.can_publish,
                subscribe: a.grants.can_subscribe,
            })
    }

    /// What a Peer joining with `relay` may do: a sink only receives, a
    /// ghost only sends (within what its token grants); anyone else, as
    /// its token says.
    pub(super) fn relay_permissions(&self, relay: Option<sfu::core::relay::Relay>) -> Permissions {
        let token = self.permissions();
        match relay {
            Some(r) if r.hidden => Permissions {
                publish: false,
                subscribe: token.subscribe,
            },
            Some(_) => Permissions {
                publish: token.publish,
                subscribe: false,
            },
            None => token,
        }
    }

    fn unauthorized(&mut self, err: AuthError) {
        self.state.security.auth_failed(&err);
        self.error("unauthorized", err.to_string());
        self.close_after = Some((CLOSE_UNAUTHORIZED, "unauthorized".to_owned()));
    }

    fn forbidden(&mut self, message: &str) {
        self.error("forbidden", message);
    }

    /// Verifies `token` (or the URL's), for `room` when given.
    fn verify(&self, token: Option<String>, room: Option<&str>) -> Result<Claims, AuthError> {
        let token = token
            .or_else(|| self.url_token.clone())
            .ok_or(AuthError::Missing)?;
        let keys = &self.state.security.auth.keys;
        match room {
            Some(room) => keys.verify_for_room(&token, room),
            None => keys.verify(&token),
        }
    }

    /// Whether `room` has participants here, or (in a cluster) a home.
    async fn room_exists(&self, room: &str) -> bool {
        let here = match self.state.worker.rooms().await {
            Ok(rooms) => rooms.iter().any(|r| r.name == room),
            // Cannot tell: the join itself will fail on the Worker.
            Err(_) => true,
        };
        match &self.state.cluster {
            // Redis unavailable: the join says so.
            Some(cluster) if !here => !matches!(cluster.directory().lookup(room).await, Ok(None)),
            _ => here,
        }
    }

    /// Checks `message` against the session's token; `false` when it is
    /// refused (the error is queued). May rewrite the display name of a
    /// `join` to the token's.
    pub(super) async fn admit(&mut self, message: &mut ClientMessage) -> bool {
        match message {
            ClientMessage::Join {
                room, name, token, ..
            } => {
                // Requests refused for their form, or for being a second
                // join, are left to `join`, which says why.
                if self.peer.is_some()
                    || validate_room(room).is_err()
                    || validate_name(name).is_err()
                {
                    return true;
                }
                if is_private_room(room) {
                    // Only the call's two parties may enter; `join` tells
                    // anyone else it is private, token or not.
                    if self
                        .state
                        .calls
                        .may_join(room, self.call_id.as_deref())
                        .is_err()
                    {
                        return true;
                    }
                    if let Some(claims) = self.call_access.clone() {
                        self.access = Some(claims);
                        return true;
                    }
                }
                let claims = match self.verify(token.take(), Some(room)) {
                    Ok(claims) => claims,
                    Err(err) => {
                        self.unauthorized(err);
                        return false;
                    }
                };
                if !claims.grants.room_create && !self.room_exists(room).await {
                    self.error(
                        "room_not_found",
                        format!("room {room} does not exist and this token may not create it"),
                    );
                    return false;
                }
                if !claims.name.trim().is_empty() && validate_name(&claims.name).is_ok() {
                    name.clone_from(&claims.name);
                }
                self.access = Some(claims);
                true
            }
            ClientMessage::Register { call_id, token, .. } => {
                if token.is_none() && self.call_id.is_some() {
                    // A rename of the ID this socket already holds.
                    return true;
                }
                let claims = match self.verify(token.take(), None) {
                    Ok(claims) => claims,
                    Err(err) => {
                        self.unauthorized(err);
                        return false;
                    }
                };
                let asked = call_id.as_deref().map(normalize_call_id);
                match (normalize_call_id(&claims.sub), asked) {
                    (Ok(own), Some(Ok(asked))) if asked != own => {
                        self.unauthorized_call_id(&own);
                        return false;
                    }
                    (Ok(own), _) => *call_id = Some(own),
                    (Err(_), Some(Ok(asked))) => {
                        self.unauthorized_call_id_none(&asked);
                        return false;
                    }
                    // A malformed ID asked for: `register` says so.
                    (Err(_), _) => {}
                }
                self.call_access = Some(claims);
                true
            }
            ClientMessage::Resume { access_token, .. } => {
                match self.verify(access_token.take(), None) {
                    Ok(_) => true,
                    Err(err) => {
                        self.unauthorized(err);
                        false
                    }
                }
            }
            ClientMessage::Offer { sdp } => {
                let may = self.access.as_ref().is_none_or(|a| a.grants.can_publish);
                if !may && crate::limits::sending_media_sections(sdp) > 0 {
                    self.forbidden("this token may not publish");
                    return false;
                }
                true
            }
            ClientMessage::Chat { .. } => {
                let may = self
                    .access
                    .as_ref()
                    .is_none_or(|a| a.grants.can_publish_data);
                if !may {
                    self.forbidden("this token may not send chat or data messages");
                }
                may
            }
            _ => true,
        }
    }

    fn unauthorized_call_id(&mut self, own: &str) {
        self.state
            .security
            .auth_failures
            .with_label_values(&["wrong_identity"])
            .inc();
        // A valid token asking for another ID: refused, the socket stays.
        self.error("unauthorized", format!("token is for call ID {own}"));
    }

    fn unauthorized_call_id_none(&mut self, asked: &str) {
        self.state
            .security
            .auth_failures
            .with_label_values(&["wrong_identity"])
            .inc();
        self.error(
            "unauthorized",
            format!("this token's identity is not call ID {asked}; register without a callId"),
        );
    }
}
