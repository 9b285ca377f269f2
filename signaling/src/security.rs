//! Who may connect and from where: the server's [`Auth`] (access tokens,
//! dev mode), the origins browsers may use `/ws` and `/api` from, the CORS
//! layer for `/api`, and the metrics of refusals
//! (`sfu_auth_failures_total{reason}`, `sfu_origin_rejected_total`).

use axum::http::{header, HeaderMap, HeaderValue, Method};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{Auth, AuthConfigError, AuthError};
use crate::Config;

/// The origins allowed besides same-origin.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// `--allowed-origin` entries, lower-cased, without a trailing `/`.
    listed: Vec<String>,
    /// `*` was listed.
    any: bool,
    /// Dev mode: http://localhost:* and http://127.0.0.1:* too.
    dev: bool,
}

impl Origins {
    /// From `--allowed-origin`, and dev mode.
    pub fn new(listed: &[String], dev: bool) -> Self {
        let listed: Vec<String> = listed
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        Self {
            any: listed.iter().any(|o| o == "*"),
            listed,
            dev,
        }
    }

    /// Whether a browser on `origin` may talk to this server, reached as
    /// `host` (the request's `Host`). `Err` says why not.
    pub fn check(&self, origin: &str, host: Option<&str>) -> Result<(), String> {
        let origin = origin.trim().to_ascii_lowercase();
        if self.any || self.listed.contains(&origin) {
            return Ok(());
        }
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if let (Some(origin_host), Some(host)) = (origin_host, host) {
            if origin_host == host.trim().to_ascii_lowercase() {
                return Ok(());
            }
        }
        if self.dev {
            if let Some(rest) = origin.strip_prefix("http://") {
                let name = rest.rsplit_once(':').map_or(rest, |(name, _)| name);
                if name == "localhost" || name == "127.0.0.1" {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "origin {origin} is not allowed: open the page from this server, or add the origin to --allowed-origin"
        ))
    }
}

/// Access control and its metrics.
pub struct Security {
    /// Token keys and dev mode.
    pub auth: Auth,
    /// Allowed origins.
    pub origins: Origins,
    /// Refused tokens, by reason.
    pub auth_failures: IntCounterVec,
    /// `/ws` upgrades refused for their `Origin`.
    pub origin_rejected: IntCounter,
}

impl Security {
    /// From the command line; registers its metrics in `registry`.
    pub fn new(config: &Config, registry: &Registry) -> Result<Self, AuthConfigError> {
        let auth = Auth::from_settings(
            config.api_key.as_deref(),
            config.api_secret.as_deref(),
            config.dev,
            config.bind,
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "sfu_auth_failures_total",
                "Access tokens refused (or missing) at /ws, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let origin_rejected = IntCounter::new(
            "sfu_origin_rejected_total",
            "Signaling WebSocket upgrades refused for their Origin header",
        )
        .expect("valid metric");
        // Both names are fixed and registered once per registry.
        registry
            .register(Box::new(auth_failures.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(origin_rejected.clone()))
            .expect("metric names are unique");
        for reason in AuthError::REASONS {
            auth_failures.with_label_values(&[reason]);
        }
        Ok(Self {
            origins: Origins::new(&config.allowed_origin, auth.dev),
            auth,
            auth_failures,
            origin_rejected,
        })
    }

    /// Counts a refused token.
    pub fn auth_failed(&self, err: &AuthError) {
        self.auth_failures.with_label_values(&[err.reason()]).inc();
        tracing::info!(reason = err.reason(), %err, "access token refused");
    }

    /// Checks a `/ws` upgrade's `Origin` (none: not a browser, allowed),
    /// counting a refusal.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let result = match origin.to_str() {
            Ok(origin) => self.origins.check(origin, host),
            Err(_) => Err("the Origin header is not text".to_owned()),
        };
        if let Err(reason) = &result {
            self.origin_rejected.inc();
            tracing::info!(reason, "websocket origin refused");
        }
        result
    }

    /// CORS for `/api`: the allowed origins may call it from a page.
    pub fn cors(&self) -> CorsLayer {
        let origins = self.origins.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(
                move |origin: &HeaderValue, parts: &axum::http::request::Parts| {
                    let host = parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok());
                    origin
                        .to_str()
                        .is_ok_and(|o| origins.check(o, host).is_ok())
                },
            ))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_listed_and_dev() {
        let prod = Origins::new(&["https://app.example.com/".to_owned()], false);
        assert!(prod
            .check("https://sfu.example.com", Some("sfu.example.com"))
            .is_ok());
        assert!(prod
            .check("https://app.example.com", Some("sfu.example.com"))
            .is_ok());
        assert!(prod
            .check("https://evil.example", Some("sfu.example.com"))
            .is_err());
        assert!(prod
            .check("http://localhost:3000", Some("sfu.example.com"))
            .is_err());
        let dev = Origins::new(&[], true);
        assert!(dev
            .check("http://localhost:3000", Some("127.0.0.1:8080"))
            .is_ok());
        assert!(dev
            .check("http://127.0.0.1:5173", Some("127.0.0.1:8080"))
            .is_ok());
        assert!(dev.check("http://localhost.evil.example", None).is_err());
        assert!(dev
            .check("https://evil.example", Some("127.0.0.1:8080"))
            .is_err());
        assert!(Origins::new(&["*".to_owned()], false)
            .check("https://x.y", None)
            .is_ok());
    }
}
