//! Access tokens for the synthetic peers: minted here with `--api-key` and
//! `--api-secret` (the server's own, through the signaling crate's `auth`
//! module), or asked of a dev-mode server with `POST /api/token`.

use std::time::Duration;

use ::signaling::auth::{Grants, Keys, TokenRequest};

/// How long a locally minted token is valid: longer than any run.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Signed here with the server's key and secret.
    Local(Keys),
    /// `POST /api/token` of a dev-mode server at this `host:port`.
    Dev(String),
}

/// The grants of a peer: publishers publish, everyone subscribes, and
/// anyone may create its room (the first to join does).
fn grants(publish: bool) -> Grants {
    Grants {
        can_publish: publish,
        can_subscribe: true,
        can_publish_data: true,
        room_admin: false,
        room_create: true,
    }
}

impl TokenSource {
    /// Local minting when both `key` and `secret` are given; else the dev
    /// server at `authority`.
    pub fn new(key: Option<&str>, secret: Option<&str>, authority: &str) -> Self {
        match (key, secret) {
            (Some(key), Some(secret)) => Self::Local(Keys::new(key, secret.as_bytes().to_vec())),
            _ => Self::Dev(authority.to_owned()),
        }
    }

    /// A token for `identity` in `room`.
    pub async fn token(&self, room: &str, identity: &str, publish: bool) -> Result<String, String> {
        match self {
            TokenSource::Local(keys) => keys
                .mint(&TokenRequest {
                    room: room.to_owned(),
                    identity: identity.to_owned(),
                    name: String::new(),
                    grants: grants(publish),
                    ttl: TTL,
                })
                .map_err(|e| e.to_string()),
            TokenSource::Dev(authority) => {
                let body = serde_json::json!({
                    "room": room,
                    "identity": identity,
                    "grants": grants(publish),
                })
                .to_string();
                let reply = crate::http::post_json(authority, "/api/token", &body)
                    .await
                    .map_err(|e| {
                        format!(
                            "no access token from the server ({e}); a server not in dev mode \
                             needs --api-key and --api-secret"
                        )
                    })?;
                let value: serde_json::Value = serde_json::from_str(&reply)
                    .map_err(|e| format!("/api/token answered non-JSON: {e}"))?;
                value["token"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("/api/token answered without a token: {reply}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_tokens_verify_with_the_grants() {
        let source = TokenSource::new(Some("k"), Some("s"), "127.0.0.1:1");
        let token = source.token("r", "viewer-1", false).await.expect("mints");
        let claims = Keys::new("k", b"s".to_vec())
            .verify_for_room(&token, "r")
            .expect("verifies");
        assert!(!claims.grants.can_publish && claims.grants.can_subscribe);
    }
}
