//! The cluster's own tokens: short-lived HS256 JWTs signed with keys
//! derived from the cluster's shared API secret, one key per kind, so that
//! no kind passes for another (nor for an access token).
//!
//! - A routing token is what a node hands a client it redirects: it names
//!   the room, the participant and the node that is to take the join (and,
//!   for a cascaded room, its home). The target honours it instead of
//!   placing the room again, so a redirected client does not bounce
//!   between nodes whose views of the cluster differ by a heartbeat.
//! - A relay token lets a node's bridge join a room on a node as a Peer of
//!   a node-to-node link (a sink or a ghost, `core::relay`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Keys;

/// How long a routing or relay token is good for: enough to open a socket
/// to the node and join.
pub const TOKEN_TTL: Duration = Duration::from_secs(30);
/// The derivation label of the routing tokens' key.
const ROUTING: &str = "sfu-routing-token";
/// The derivation label of the relay tokens' key.
const RELAY: &str = "sfu-relay-token";

fn expiry() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + TOKEN_TTL.as_secs()
}

fn encode(keys: &Keys, purpose: &str, claims: &impl Serialize) -> String {
    // Serializing a struct of strings and integers cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&keys.derived_secret(purpose)),
    )
    .unwrap_or_default()
}

fn decode<C: DeserializeOwned>(
    keys: &Keys,
    purpose: &str,
    token: &str,
) -> Result<C, RouteTokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = crate::auth::LEEWAY_SECS;
    validation.validate_aud = false;
    jsonwebtoken::decode::<C>(
        token.trim(),
        &DecodingKey::from_secret(&keys.derived_secret(purpose)),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| RouteTokenError::Invalid(e.to_string()))
}

/// The claims of a routing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteClaims {
    /// The API key of the cluster.
    pub iss: String,
    /// The participant's identity (the access token's `sub`).
    pub sub: String,
    /// The room.
    pub room: String,
    /// The node that is to take the join.
    pub node: String,
    /// A cascaded room: its home, which the target node links to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// Expiry (Unix seconds).
    pub exp: u64,
}

/// What a bridge's Peer is on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayRole {
    /// Hidden; receives the room's own participants' tracks.
    Sink,
    /// Publishes one participant of the other node.
    Ghost,
}

/// The claims of a relay token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayClaims {
    /// The API key of the cluster.
    pub iss: String,
    /// The room.
    pub room: String,
    /// The node the Peer joins.
    pub node: String,
    /// The link (`core::relay::LinkId`).
    pub link: u64,
    /// Sink or ghost.
    pub role: RelayRole,
    /// Expiry (Unix seconds).
    pub exp: u64,
}

/// Signs a relay token for a Peer of `link` joining `room` at `node`.
pub fn sign_relay(keys: &Keys, room: &str, node: &str, link: u64, role: RelayRole) -> String {
    let claims = RelayClaims {
        iss: keys.api_key().to_owned(),
        room: room.to_owned(),
        node: node.to_owned(),
        link,
        role,
        exp: expiry(),
    };
    encode(keys, RELAY, &claims)
}

/// Checks a relay token for `room` at node `me`.
pub fn verify_relay(
    keys: &Keys,
    token: &str,
    room: &str,
    me: &str,
) -> Result<RelayClaims, RouteTokenError> {
    let claims: RelayClaims = decode(keys, RELAY, token)?;
    if claims.iss != keys.api_key() {
        return Err(RouteTokenError::Invalid(format!(
            "unknown key {}",
            claims.iss
        )));
    }
    if claims.room != room || claims.node != me {
        return Err(RouteTokenError::Mismatch(format!(
            "room {} at node {}",
            claims.room, claims.node
        )));
    }
    Ok(claims)
}

/// Why a routing or relay token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteTokenError {
    /// Bad signature, expired, malformed.
    #[error("invalid routing token: {0}")]
    Invalid(String),
    /// Valid, but for another room, participant or node.
    #[error("routing token is for {0}")]
    Mismatch(String),
}

/// Signs a routing token sending `identity` in `room` to `node` (as a
/// satellite of `home`, for a cascaded room).
pub fn sign(keys: &Keys, identity: &str, room: &str, node: &str, home: Option<&str>) -> String {
    let claims = RouteClaims {
        iss: keys.api_key().to_owned(),
        sub: identity.to_owned(),
        room: room.to_owned(),
        node: node.to_owned(),
        home: home.map(str::to_owned),
        exp: expiry(),
    };
    encode(keys, ROUTING, &claims)
}

/// Checks a routing token for `identity` in `room` at node `me`.
pub fn verify(
    keys: &Keys,
    token: &str,
    identity: &str,
    room: &str,
    me: &str,
) -> Result<RouteClaims, RouteTokenError> {
    let claims: RouteClaims = decode(keys, ROUTING, token)?;
    if claims.iss != keys.api_key() {
        return Err(RouteTokenError::Invalid(format!(
            "unknown key {}",
            claims.iss
        )));
    }
    if claims.room != room || claims.sub != identity || claims.node != me {
        return Err(RouteTokenError::Mismatch(format!(
            "{} in room {} at node {}",
            claims.sub, claims.room, claims.node
        )));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Grants, TokenRequest};

    fn keys() -> Keys {
        Keys::new("key", b"secret".to_vec())
    }

    #[test]
    fn a_routing_token_is_for_its_room_identity_and_node() {
        let token = sign(&keys(), "alice", "r1", "n2", None);
        let claims = verify(&keys(), &token, "alice", "r1", "n2").expect("valid");
        assert_eq!(claims.node, "n2");
        for (who, room, node) in [
            ("bob", "r1", "n2"),
            ("alice", "r2", "n2"),
            ("alice", "r1", "n3"),
        ] {
            assert!(matches!(
                verify(&keys(), &token, who, room, node),
                Err(RouteTokenError::Mismatch(_))
            ));
        }
        let other = Keys::new("key", b"other".to_vec());
        assert!(matches!(
            verify(&other, &token, "alice", "r1", "n2"),
            Err(RouteTokenError::Invalid(_))
        ));
    }

    #[test]
    fn routing_and_access_tokens_do_not_pass_for_each_other() {
        let keys = keys();
        let routing = sign(&keys, "alice", "r1", "n2", None);
        let relay = sign_relay(&keys, "r1", "n2", 7, RelayRole::Sink);
        assert!(
            keys.verify(&relay).is_err(),
            "a relay token is no access token"
        );
        assert!(verify(&keys, &relay, "alice", "r1", "n2").is_err());
        assert!(verify_relay(&keys, &routing, "r1", "n2").is_err());
        let claims = verify_relay(&keys, &relay, "r1", "n2").expect("relay token");
        assert_eq!((claims.link, claims.role), (7, RelayRole::Sink));
        assert!(matches!(
            verify_relay(&keys, &relay, "r1", "n3"),
            Err(RouteTokenError::Mismatch(_))
        ));
        assert!(
            keys.verify(&routing).is_err(),
            "a routing token is no access token"
        );
        let access = keys
            .mint(&TokenRequest {
                room: "r1".into(),
                identity: "alice".into(),
                name: String::new(),
                ttl: Duration::from_secs(60),
                grants: Grants::dev_default(),
            })
            .expect("mint");
        assert!(verify(&keys, &access, "alice", "r1", "n2").is_err());
    }
}
