//! Routing tokens: what a node hands a client it redirects to another
//! node. A short-lived HS256 JWT, signed with a key derived from the
//! cluster's shared API secret (so no access token passes for one, and no
//! routing token for an access token), naming the room, the participant
//! and the node that is to take the join. The target node honours it by
//! claiming the room (if still free) instead of placing it again, so a
//! redirected client does not bounce between nodes whose views of the
//! cluster differ by a heartbeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::auth::Keys;

/// How long a routing token is good for: enough for the client to open a
/// socket to the other node and join.
pub const ROUTING_TOKEN_TTL: Duration = Duration::from_secs(30);
/// The derivation label of the signing key.
const PURPOSE: &str = "sfu-routing-token";

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
    /// Expiry (Unix seconds).
    pub exp: u64,
}

/// Why a routing token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteTokenError {
    /// Bad signature, expired, malformed.
    #[error("invalid routing token: {0}")]
    Invalid(String),
    /// Valid, but for another room, participant or node.
    #[error("routing token is for {0}")]
    Mismatch(String),
}

/// Signs a routing token sending `identity` in `room` to `node`.
pub fn sign(keys: &Keys, identity: &str, room: &str, node: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + ROUTING_TOKEN_TTL.as_secs();
    let claims = RouteClaims {
        iss: keys.api_key().to_owned(),
        sub: identity.to_owned(),
        room: room.to_owned(),
        node: node.to_owned(),
        exp,
    };
    // Serializing a struct of strings and integers cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&keys.derived_secret(PURPOSE)),
    )
    .unwrap_or_default()
}

/// Checks a routing token for `identity` in `room` at node `me`.
pub fn verify(
    keys: &Keys,
    token: &str,
    identity: &str,
    room: &str,
    me: &str,
) -> Result<RouteClaims, RouteTokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = crate::auth::LEEWAY_SECS;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<RouteClaims>(
        token.trim(),
        &DecodingKey::from_secret(&keys.derived_secret(PURPOSE)),
        &validation,
    )
    .map_err(|e| RouteTokenError::Invalid(e.to_string()))?
    .claims;
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
        let token = sign(&keys(), "alice", "r1", "n2");
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
        let routing = sign(&keys, "alice", "r1", "n2");
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
