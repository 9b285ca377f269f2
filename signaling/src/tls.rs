//! HTTPS and WSS without a proxy (`--tls-cert`, `--tls-key`): rustls through
//! axum-server, the certificate reloaded on SIGHUP and when its files
//! change, and an optional plain-HTTP listener that redirects to HTTPS
//! (`--redirect-http-bind`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::extract::Request;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::watch;

/// How often the certificate and key files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How long open connections may go on after shutdown starts (sessions
/// close themselves at once; this bounds a stuck one).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The certificate chain and private key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Loads the files into a rustls configuration (ring as the crypto
    /// provider, HTTP/1.1 and h2 by ALPN).
    pub async fn load(&self) -> std::io::Result<RustlsConfig> {
        // Another part of the process may have installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        RustlsConfig::from_pem_file(&self.cert, &self.key)
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "TLS certificate {} / key {}: {e}",
                        self.cert.display(),
                        self.key.display()
                    ),
                )
            })
    }

    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let at = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((at(&self.cert)?, at(&self.key)?))
    }

    /// Reloads `config` from the files on SIGHUP and whenever either file's
    /// modification time changes, until `stop`. A failed reload keeps the
    /// certificate in use and says why in the log.
    pub fn spawn_reloader(self, config: RustlsConfig, mut stop: watch::Receiver<bool>) {
        tokio::spawn(async move {
            let mut hangup = hangup_signal();
            let mut seen = self.modified();
            let mut poll = tokio::time::interval(RELOAD_POLL);
            loop {
                let why = tokio::select! {
                    _ = poll.tick() => {
                        let now = self.modified();
                        if now.is_none() || now == seen {
                            continue;
                        }
                        seen = now;
                        "files changed"
                    }
                    _ = next_hangup(&mut hangup) => "SIGHUP",
                    _ = stop.wait_for(|stopping| *stopping) => return,
                };
                match config.reload_from_pem_file(&self.cert, &self.key).await {
                    Ok(()) => {
                        tracing::info!(cert = %self.cert.display(), why, "TLS certificate reloaded")
                    }
                    Err(err) => tracing::error!(
                        cert = %self.cert.display(), why, %err,
                        "TLS certificate reload failed; still serving the previous one"
                    ),
                }
            }
        });
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup())
            .map_err(|err| tracing::warn!(%err, "no SIGHUP reload; file changes still reload"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}

async fn next_hangup(hangup: &mut Hangup) {
    #[cfg(unix)]
    if let Some(signal) = hangup {
        signal.recv().await;
        return;
    }
    let _ = hangup;
    std::future::pending::<()>().await
}

/// Serves `app` over TLS on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: RustlsConfig,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
        stopper.graceful_shutdown(Some(SHUTDOWN_GRACE));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// Serves permanent redirects from plain HTTP on `listener` to the same
/// host and path over HTTPS on `https_port`, until `stop`.
pub async fn serve_redirect(
    listener: tokio::net::TcpListener,
    https_port: u16,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new().fallback(move |request: Request| async move {
        redirect_to_https(
            request.headers().get(header::HOST),
            request.uri(),
            https_port,
        )
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .await
}

/// The 308 to `https://HOST[:PORT]/path?query`, or 400 without a usable
/// Host header.
fn redirect_to_https(
    host: Option<&axum::http::HeaderValue>,
    uri: &Uri,
    https_port: u16,
) -> Response {
    let Some(authority) = host
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "this port only redirects to HTTPS, and needs a Host header\n",
        )
            .into_response();
    };
    let host = authority.host();
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::permanent(&format!("https://{host}{port}{path}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn location(host: Option<&str>, uri: &str, port: u16) -> (u16, Option<String>) {
        let host = host.map(|h| HeaderValue::from_str(h).unwrap());
        let response = redirect_to_https(host.as_ref(), &uri.parse().unwrap(), port);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (response.status().as_u16(), location)
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        assert_eq!(
            location(Some("sfu.example.com"), "/?room=a", 443),
            (308, Some("https://sfu.example.com/?room=a".to_owned()))
        );
        assert_eq!(
            location(Some("sfu.example.com:80"), "/ws", 8443),
            (308, Some("https://sfu.example.com:8443/ws".to_owned()))
        );
        assert_eq!(
            location(Some("[2001:db8::1]:8080"), "/", 443),
            (308, Some("https://[2001:db8::1]/".to_owned()))
        );
        assert_eq!(location(None, "/", 443), (400, None));
        assert_eq!(location(Some("bad host"), "/", 443), (400, None));
    }
}
