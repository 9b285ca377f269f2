//! Access tokens: HS256 JWTs signed with the server's API secret, naming
//! who may do what in which room (docs/ARCHITECTURE.md, "Access tokens").
//!
//! A token's claims: `iss` (the API key), `sub` (the participant's
//! identity, also its personal call ID when it is one), `name` (display
//! name), `room`, `exp`, `nbf`, `iat`, and `grants`. A grant missing from
//! the token is **not** granted: a token says what it allows, never what it
//! forbids. Only HS256 is accepted; `alg: none` and every other algorithm
//! are refused before the signature is looked at.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// The API key dev mode uses when none is configured.
pub const DEV_API_KEY: &str = "dev";
/// The longest lifetime a token may be minted with.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// What a token allows. Missing fields are `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Grants {
    /// May send audio and video.
    pub can_publish: bool,
    /// May receive the others' audio and video.
    pub can_subscribe: bool,
    /// May send chat and other data messages.
    pub can_publish_data: bool,
    /// May use the admin API for its room (list, look up, kick, close).
    pub room_admin: bool,
    /// May be the first to join a room (which creates it).
    pub room_create: bool,
}

impl Grants {
    /// Everything but `room_admin`: what dev mode hands out by default.
    pub fn dev_default() -> Self {
        Self {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            room_admin: false,
            room_create: true,
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed it.
    pub iss: String,
    /// The participant's identity.
    pub sub: String,
    /// The display name; empty when the client chooses.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The room it is for.
    pub room: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default)]
    pub nbf: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// What it allows.
    #[serde(default)]
    pub grants: Grants,
}

/// Why a token was refused. [`AuthError::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("an access token is required")]
    Missing,
    /// Not a JWT, or claims of the wrong shape.
    #[error("malformed access token: {0}")]
    Malformed(String),
    /// Signed with something other than HS256 (or not signed: `none`).
    #[error("access token algorithm {0:?} is not allowed (only HS256)")]
    AlgorithmNotAllowed(String),
    /// `iss` names a key this server does not have.
    #[error("access token signed with unknown API key {0:?}")]
    UnknownKey(String),
    /// The signature does not match the API secret.
    #[error("access token has a bad signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("access token has expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("access token is not valid yet")]
    NotYetValid,
    /// The token names another room.
    #[error("token is for room {0}")]
    WrongRoom(String),
}

impl AuthError {
    /// A short, fixed label for `sfu_auth_failures_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgorithmNotAllowed(_) => "algorithm",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongRoom(_) => "wrong_room",
        }
    }

    /// Every label [`AuthError::reason`] gives.
    pub const REASONS: [&'static str; 8] = [
        "missing",
        "malformed",
        "algorithm",
        "unknown_key",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_room",
    ];
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// Room or identity empty or too long.
    #[error("{0}")]
    Invalid(String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(String),
}

/// The API key and secret tokens are signed and checked with.
#[derive(Clone)]
pub struct Keys {
    api_key: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("api_key", &self.api_key)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// What to put in a new token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The room.
    pub room: String,
    /// The participant's identity.
    pub identity: String,
    /// The display name (may be empty).
    pub name: String,
    /// What it allows.
    pub grants: Grants,
    /// How long it is valid from now.
    pub ttl: Duration,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn b64_json(segment: &str) -> Result<serde_json::Value, AuthError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|e| AuthError::Malformed(format!("bad base64: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| AuthError::Malformed(format!("bad JSON: {e}")))
}

impl Keys {
    /// An API key and its secret.
    pub fn new(api_key: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            api_key: api_key.into(),
            secret: secret.into(),
        }
    }

    /// A random secret, for a dev-mode process.
    pub fn random(api_key: impl Into<String>) -> Self {
        let bytes: [u8; 32] = rand::random();
        Self::new(api_key, bytes.to_vec())
    }

    /// The API key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// A key derived from the secret for `purpose`: tokens of another kind
    /// (routing tokens) are signed with it, so that one kind never passes
    /// for another.
    pub fn derived_secret(&self, purpose: &str) -> Vec<u8> {
        use hmac::Mac;
        // HMAC accepts a key of any length.
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&self.secret)
            .expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Signs a token for `request`, issued at `now`.
    pub fn mint_at(&self, request: &TokenRequest, now: SystemTime) -> Result<String, MintError> {
        for (what, value) in [("room", &request.room), ("identity", &request.identity)] {
            if value.trim().is_empty() || value.chars().count() > 128 {
                return Err(MintError::Invalid(format!(
                    "{what} must be 1 to 128 characters"
                )));
            }
        }
        if request.ttl.is_zero() || request.ttl > MAX_TTL {
            return Err(MintError::Invalid(
                "ttl must be more than 0 and at most 366 days".to_owned(),
            ));
        }
        let iat = unix(now);
        let claims = Claims {
            iss: self.api_key.clone(),
            sub: request.identity.clone(),
            name: request.name.clone(),
            room: request.room.clone(),
            exp: iat + request.ttl.as_secs().max(1),
            nbf: iat,
            iat,
            grants: request.grants,
        };
        self.sign(&claims)
    }

    /// Signs a token for `request`, issued now.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, MintError> {
        self.mint_at(request, SystemTime::now())
    }

    /// Signs `claims` as they are (tests use this for odd tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, MintError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .map_err(|e| MintError::Signing(e.to_string()))
    }

    /// Checks a token's algorithm, key, signature and validity period.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "a JWT has three dot-separated parts".to_owned(),
            ));
        };
        // The algorithm first: `none` and friends are refused whatever else
        // the token says.
        let alg = b64_json(header)?
            .get("alg")
            .and_then(|a| a.as_str())
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Malformed("header has no \"alg\"".to_owned()))?;
        if alg != "HS256" {
            return Err(AuthError::AlgorithmNotAllowed(alg));
        }
        let iss = b64_json(payload)?
            .get("iss")
            .and_then(|i| i.as_str())
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Malformed("claims have no \"iss\" (API key)".to_owned()))?;
        if iss != self.api_key {
            return Err(AuthError::UnknownKey(iss));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::from(["exp".to_owned(), "sub".to_owned()]);
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.secret),
            &validation,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::AlgorithmNotAllowed(alg.clone())
            }
            _ => AuthError::Malformed(e.to_string()),
        })?;
        if data.claims.sub.trim().is_empty() {
            return Err(AuthError::Malformed("empty identity (\"sub\")".to_owned()));
        }
        Ok(data.claims)
    }

    /// [`Keys::verify`], and the token must be for `room`.
    pub fn verify_for_room(&self, token: &str, room: &str) -> Result<Claims, AuthError> {
        let claims = self.verify(token)?;
        if claims.room != room {
            return Err(AuthError::WrongRoom(claims.room));
        }
        Ok(claims)
    }
}

/// How the server checks who may do what.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The key and secret.
    pub keys: Keys,
    /// Dev mode: `POST /api/token` mints tokens for anyone.
    pub dev: bool,
}

/// Why the server refuses to start with its auth settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// One of the pair given without the other.
    #[error("--api-key and --api-secret go together: set both, or neither for dev mode")]
    HalfConfigured,
    /// No key, not loopback, not `--dev`.
    #[error(
        "no --api-key/--api-secret configured and --bind {0} is not a loopback address: \
         set SFU_API_KEY and SFU_API_SECRET for production, or pass --dev to let anyone \
         mint tokens (never on a public server)"
    )]
    NoKeys(std::net::SocketAddr),
}

impl Auth {
    /// Decides dev mode and the keys: a configured key and secret are used
    /// (dev only with `--dev`); without them the server runs in dev mode with
    /// a random per-process secret, but only on a loopback bind or with
    /// `--dev`.
    pub fn from_settings(
        api_key: Option<&str>,
        api_secret: Option<&str>,
        dev: bool,
        bind: std::net::SocketAddr,
    ) -> Result<Self, AuthConfigError> {
        match (api_key, api_secret) {
            (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => Ok(Self {
                keys: Keys::new(key, secret.as_bytes().to_vec()),
                dev,
            }),
            (None, None) if dev || bind.ip().is_loopback() => Ok(Self {
                keys: Keys::random(DEV_API_KEY),
                dev: true,
            }),
            (None, None) => Err(AuthConfigError::NoKeys(bind)),
            _ => Err(AuthConfigError::HalfConfigured),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(room: &str, ttl: u64) -> TokenRequest {
        TokenRequest {
            room: room.to_owned(),
            identity: "alice".to_owned(),
            name: "Alice".to_owned(),
            grants: Grants::dev_default(),
            ttl: Duration::from_secs(ttl),
        }
    }

    #[test]
    fn round_trip_and_room() {
        let keys = Keys::new("k", b"secret".to_vec());
        let token = keys.mint(&request("r1", 60)).expect("mints");
        let claims = keys.verify_for_room(&token, "r1").expect("verifies");
        assert_eq!(claims.sub, "alice");
        assert!(claims.grants.can_publish && !claims.grants.room_admin);
        assert_eq!(
            keys.verify_for_room(&token, "r2"),
            Err(AuthError::WrongRoom("r1".to_owned()))
        );
    }

    #[test]
    fn refusals_say_why() {
        let keys = Keys::new("k", b"secret".to_vec());
        let old = SystemTime::now() - Duration::from_secs(7200);
        let expired = keys.mint_at(&request("r", 60), old).expect("mints");
        assert_eq!(keys.verify(&expired), Err(AuthError::Expired));
        let future = SystemTime::now() + Duration::from_secs(3600);
        let early = keys.mint_at(&request("r", 60), future).expect("mints");
        assert_eq!(keys.verify(&early), Err(AuthError::NotYetValid));
        let other = Keys::new("k", b"other".to_vec()).mint(&request("r", 60));
        assert_eq!(
            keys.verify(&other.expect("mints")),
            Err(AuthError::BadSignature)
        );
        let stranger = Keys::new("q", b"secret".to_vec()).mint(&request("r", 60));
        assert_eq!(
            keys.verify(&stranger.expect("mints")),
            Err(AuthError::UnknownKey("q".to_owned()))
        );
        assert!(matches!(keys.verify("abc"), Err(AuthError::Malformed(_))));
        assert_eq!(keys.verify(" "), Err(AuthError::Missing));
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = Keys::new("k", b"secret".to_vec());
        let enc = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let header = enc(serde_json::json!({"alg": "none", "typ": "JWT"}));
        let payload =
            enc(serde_json::json!({"iss": "k", "sub": "a", "room": "r", "exp": 4_000_000_000u64}));
        let token = format!("{header}.{payload}.");
        assert_eq!(
            keys.verify(&token),
            Err(AuthError::AlgorithmNotAllowed("none".to_owned()))
        );
        let header = enc(serde_json::json!({"alg": "HS512"}));
        assert_eq!(
            keys.verify(&format!("{header}.{payload}.x")),
            Err(AuthError::AlgorithmNotAllowed("HS512".to_owned()))
        );
    }

    #[test]
    fn missing_grants_are_false() {
        let g: Grants = serde_json::from_str(r#"{"canSubscribe":true}"#).expect("parses");
        assert!(g.can_subscribe && !g.can_publish && !g.room_create);
        let json = serde_json::to_value(Grants::dev_default()).expect("serializes");
        assert_eq!(json["canPublishData"], true);
        assert_eq!(json["roomAdmin"], false);
    }

    #[test]
    fn dev_mode_rule() {
        let lo: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert!(Auth::from_settings(None, None, false, lo).expect("dev").dev);
        assert_eq!(
            Auth::from_settings(None, None, false, any).err(),
            Some(AuthConfigError::NoKeys(any))
        );
        assert!(Auth::from_settings(None, None, true, any).expect("dev").dev);
        assert!(
            !Auth::from_settings(Some("k"), Some("s"), false, any)
                .expect("prod")
                .dev
        );
        assert_eq!(
            Auth::from_settings(Some("k"), None, false, lo).err(),
            Some(AuthConfigError::HalfConfigured)
        );
    }
}
