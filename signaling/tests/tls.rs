//! HTTPS and WSS with `--tls-cert` / `--tls-key`: a TLS client that trusts
//! only the test's own certificate fetches `/healthz` and speaks signaling
//! over WSS; plain HTTP on `--redirect-http-bind` is redirected; and new
//! certificate files are picked up without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key
/// PEM, cert DER).
fn certificate() -> (String, String, Vec<u8>) {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("certificate generates");
    (
        key.cert.pem(),
        key.signing_key.serialize_pem(),
        key.cert.der().to_vec(),
    )
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfu-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A TLS connection to `addr` that trusts `cert` alone; returns the stream
/// and the certificate the server presented.
async fn tls_connect(
    addr: std::net::SocketAddr,
    trusted: &[&[u8]],
) -> (TlsStream<TcpStream>, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for der in trusted {
        roots
            .add(CertificateDer::from(der.to_vec()))
            .expect("test certificate is a valid root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("TCP connects");
    let name = ServerName::try_from("127.0.0.1").expect("IP server name");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with a trusted certificate");
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("server presents a certificate")
        .to_vec();
    (tls, presented)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_wss_redirect_and_reload() {
    let dir = temp_dir();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (cert, key, der) = certificate();
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let server = start_server_with(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
        c.redirect_http_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert!(server.https);
    let addr = server.http_addr;

    // HTTPS.
    let (mut tls, presented) = tls_connect(addr, &[&der]).await;
    assert_eq!(presented, der);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok\n"), "{reply}");

    // Signaling over WSS.
    let (tls, _) = tls_connect(addr, &[&der]).await;
    let (mut ws, response) =
        tokio_tungstenite::client_async(format!("wss://127.0.0.1:{}/ws", addr.port()), tls)
            .await
            .expect("WSS upgrade");
    assert_eq!(response.status().as_u16(), 101);
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    let reply = tokio::time::timeout(RECV_TIMEOUT, ws.next())
        .await
        .expect("pong in time")
        .expect("a frame")
        .expect("a good frame");
    assert_eq!(reply.into_text().unwrap().as_str(), r#"{"type":"pong"}"#);

    // Plain HTTP is redirected to the same host and path over HTTPS.
    let redirect = server.redirect_addr.expect("redirect listener");
    let response = http_get(redirect, "/?room=abc").await;
    assert_eq!(response.status, 308);
    assert_eq!(
        response.header("location"),
        Some(format!("https://127.0.0.1:{}/?room=abc", addr.port()).as_str())
    );

    // New files are served without a restart.
    let (cert2, key2, der2) = certificate();
    std::fs::write(&cert_path, cert2).unwrap();
    std::fs::write(&key_path, key2).unwrap();
    let mut reloaded = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (_, presented) = tls_connect(addr, &[&der, &der2]).await;
        if presented == der2 {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the new certificate is served within 10 s");

    // A broken file keeps the working certificate.
    std::fs::write(&cert_path, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, presented) = tls_connect(addr, &[&der2]).await;
    assert_eq!(presented, der2);

    stop_server(server).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_certificate_is_a_clear_start_error() {
    let err = match signaling::start({
        let mut c = signaling::Config::loopback(ADMIN_TOKEN);
        c.tls_cert = Some("/nonexistent/cert.pem".into());
        c.tls_key = Some("/nonexistent/key.pem".into());
        c
    })
    .await
    {
        Ok(_) => panic!("a server without its certificate must not start"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
