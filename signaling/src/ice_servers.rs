//! The ICE servers handed to clients in `joined`: the TURN (or STUN) URLs
//! from config, with static credentials, or with ephemeral ones minted for
//! each join under the TURN REST scheme (coturn's `--use-auth-secret`):
//! username `<expiry unix time>:<identity>`, password
//! `base64(HMAC-SHA1(shared secret, username))`. The TURN server checks
//! both without asking us, and refuses the credentials after the expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::Config;
use crate::protocol::IceServer;

/// How clients authenticate to the TURN servers.
#[derive(Debug, Clone)]
enum Credentials {
    /// No credentials (STUN only, or an open TURN server).
    None,
    /// The same username and password for everyone.
    Static { username: String, password: String },
    /// Minted per join from a secret shared with the TURN server.
    Ephemeral { secret: String, ttl: Duration },
}

/// The configured ICE servers.
#[derive(Debug, Clone)]
pub struct IceServers {
    urls: Vec<String>,
    credentials: Credentials,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum IceServersError {
    /// A URL that is not `stun:`, `turn:` or `turns:`.
    #[error("--turn-url {0:?}: must start with stun:, turn: or turns:")]
    BadUrl(String),
    /// Only one half of a static username and password.
    #[error("--turn-username and --turn-password go together")]
    HalfStatic,
    /// Both static credentials and a shared secret.
    #[error("give either --turn-secret or --turn-username/--turn-password, not both")]
    BothKinds,
    /// Credentials without a TURN URL to use them with.
    #[error("TURN credentials are configured but no --turn-url")]
    NoUrl,
}

impl IceServers {
    /// No ICE servers: clients reach the SFU directly.
    pub fn none() -> Self {
        Self {
            urls: Vec::new(),
            credentials: Credentials::None,
        }
    }

    /// The ICE servers `config` names, checked.
    pub fn from_config(config: &Config) -> Result<Self, IceServersError> {
        for url in &config.turn_url {
            let known = ["stun:", "turn:", "turns:"]
                .iter()
                .any(|scheme| url.starts_with(scheme));
            if !known {
                return Err(IceServersError::BadUrl(url.clone()));
            }
        }
        let credentials = match (
            &config.turn_username,
            &config.turn_password,
            &config.turn_secret,
        ) {
            (None, None, None) => Credentials::None,
            (Some(_), Some(_), Some(_)) => return Err(IceServersError::BothKinds),
            (Some(username), Some(password), None) => Credentials::Static {
                username: username.clone(),
                password: password.clone(),
            },
            (None, None, Some(secret)) => Credentials::Ephemeral {
                secret: secret.clone(),
                ttl: Duration::from_secs(config.turn_ttl_secs),
            },
            (Some(_), None, _) | (None, Some(_), _) => return Err(IceServersError::HalfStatic),
        };
        if config.turn_url.is_empty() && !matches!(credentials, Credentials::None) {
            return Err(IceServersError::NoUrl);
        }
        Ok(Self {
            urls: config.turn_url.clone(),
            credentials,
        })
    }

    /// Whether any are configured.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The ICE servers for one join by `identity`, at `now`.
    pub fn for_join(&self, identity: &str, now: SystemTime) -> Vec<IceServer> {
        if self.urls.is_empty() {
            return Vec::new();
        }
        let (username, credential) = match &self.credentials {
            Credentials::None => (None, None),
            Credentials::Static { username, password } => {
                (Some(username.clone()), Some(password.clone()))
            }
            Credentials::Ephemeral { secret, ttl } => {
                let expiry = now + *ttl;
                let (username, password) = rest_credentials(secret, identity, expiry);
                (Some(username), Some(password))
            }
        };
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }
}

/// TURN REST credentials for `identity`, valid until `expiry`.
pub fn rest_credentials(secret: &str, identity: &str, expiry: SystemTime) -> (String, String) {
    let unix = expiry
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let username = format!("{unix}:{identity}");
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::loopback("t")
    }

    #[test]
    fn rest_credentials_match_the_published_scheme() {
        // Computed independently: printf '1700000000:alice' |
        //   openssl dgst -sha1 -hmac secret -binary | base64
        let expiry = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (username, password) = rest_credentials("secret", "alice", expiry);
        assert_eq!(username, "1700000000:alice");
        assert_eq!(password, "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }

    #[test]
    fn ephemeral_credentials_expire_after_the_ttl() {
        let mut c = config();
        c.turn_url = vec!["turn:192.0.2.1:3478".to_owned()];
        c.turn_secret = Some("s3cret".to_owned());
        c.turn_ttl_secs = 600;
        let servers = IceServers::from_config(&c).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let joined = servers.for_join("p7", now);
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].username.as_deref(), Some("1000600:p7"));
        assert!(joined[0].credential.is_some());
    }

    #[test]
    fn static_and_none() {
        let mut c = config();
        assert!(IceServers::from_config(&c)
            .unwrap()
            .for_join("p1", SystemTime::now())
            .is_empty());
        c.turn_url = vec!["turns:turn.example.com:5349".to_owned()];
        c.turn_username = Some("u".to_owned());
        c.turn_password = Some("p".to_owned());
        let s = IceServers::from_config(&c)
            .unwrap()
            .for_join("p1", SystemTime::now());
        assert_eq!(s[0].username.as_deref(), Some("u"));
        assert_eq!(s[0].credential.as_deref(), Some("p"));
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = config();
        c.turn_url = vec!["http://x".to_owned()];
        assert!(matches!(
            IceServers::from_config(&c),
            Err(IceServersError::BadUrl(_))
        ));
        c.turn_url = vec!["turn:x".to_owned()];
        c.turn_username = Some("u".to_owned());
        assert!(matches!(
            IceServers::from_config(&c),
            Err(IceServersError::HalfStatic)
        ));
        c.turn_password = Some("p".to_owned());
        c.turn_secret = Some("s".to_owned());
        assert!(matches!(
            IceServers::from_config(&c),
            Err(IceServersError::BothKinds)
        ));
        let mut c = config();
        c.turn_secret = Some("s".to_owned());
        assert!(matches!(
            IceServers::from_config(&c),
            Err(IceServersError::NoUrl)
        ));
    }
}
