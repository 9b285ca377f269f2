//! The admin API: bearer auth, listing rooms, one participant's figures,
//! kicking a participant and closing a room.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sfu::worker::{Worker, WorkerConfig};
use signaling::metrics::Metrics;
use signaling::AppState;
use tower::ServiceExt;

const AUTH: (&str, &str) = ("Authorization", "Bearer test-admin-token");

/// The router alone, driven with `oneshot`, on a Worker of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_auth_and_errors() {
    let worker = Worker::spawn(WorkerConfig::loopback("127.0.0.1".parse().unwrap())).unwrap();
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    let metrics = Metrics::new();
    let security = signaling::security::Security::new(
        &signaling::Config::loopback("secret"),
        metrics.registry(),
    )
    .unwrap();
    let whip = signaling::whip::Whip::new(metrics.registry());
    let state = Arc::new(AppState {
        worker: worker.handle,
        metrics,
        security,
        ice_servers: signaling::ice_servers::IceServers::none(),
        shutdown,
        admin_token: "secret".to_owned(),
        draining: AtomicBool::new(false),
        calls: Default::default(),
        resume_grace: std::time::Duration::from_secs(20),
        parked: Default::default(),
        drain: tokio::sync::watch::channel(false).0,
        drain_timeout: std::time::Duration::from_secs(30),
        limits: signaling::limits::Limits::from_config(&signaling::Config::loopback("secret")),
        ip_connections: Default::default(),
        whip,
        simulcast: true,
        cluster: None,
    });
    let app = signaling::router(state.clone());
    let call = |uri: &str, auth: Option<&str>, method: &str| {
        let mut req = Request::builder().uri(uri).method(method);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };

    let r = call("/api/rooms", None, "GET").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"], "unauthorized");

    let r = call("/api/rooms", Some("Bearer wrong"), "GET")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = call("/api/rooms", Some("secret"), "GET").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the Bearer scheme is required"
    );

    let r = call("/api/rooms", Some("Bearer secret"), "GET")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&r.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body, json!({"rooms": []}));

    let r = call(
        "/api/rooms/x/participants/p99",
        Some("Bearer secret"),
        "GET",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = call(
        "/api/rooms/x/participants/bob",
        Some("Bearer secret"),
        "DELETE",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = call("/api/rooms/nowhere", Some("Bearer secret"), "DELETE")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = call("/readyz", None, "GET").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = call("/readyz", None, "GET").await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"draining\n");
    let r = call("/healthz", None, "GET").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a draining server is still alive"
    );
}

async fn api(server: &signaling::Server, method: &str, path: &str) -> (u16, Value) {
    let r = http_request(server.http_addr, method, path, &[AUTH]).await;
    let body = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap()
    };
    (r.status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_stats_kick_and_close_against_live_sessions() {
    let server = start_server().await;
    let mut alice = connect(server.http_addr).await;
    let mut bob = connect(server.http_addr).await;
    let mut carol = connect(server.http_addr).await;
    let a = join(&mut alice, "standup", "Alice").await;
    let b = join(&mut bob, "standup", "Bob").await;
    let _ = recv_json(&mut alice).await; // participantJoined Bob
    join(&mut carol, "other", "Carol").await;
    let bob_id = b["peerId"].as_str().unwrap().to_owned();
    let alice_id = a["peerId"].as_str().unwrap().to_owned();

    let (status, body) = api(&server, "GET", "/api/rooms").await;
    assert_eq!(status, 200);
    let rooms = body["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 2);
    let standup = rooms.iter().find(|r| r["name"] == "standup").unwrap();
    let names: Vec<&str> = standup["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice", "Bob"]);

    let (status, p) = api(
        &server,
        "GET",
        &format!("/api/rooms/standup/participants/{bob_id}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(p["name"], "Bob");
    assert_eq!(p["peerId"], bob_id.as_str());
    assert_eq!(p["connected"], false, "no media connection was made");
    assert_eq!(p["bitrateInBps"], 0.0);
    // Bob is not in the other room.
    let (status, _) = api(
        &server,
        "GET",
        &format!("/api/rooms/other/participants/{bob_id}"),
    )
    .await;
    assert_eq!(status, 404);

    // Kick Bob: he is told and disconnected; Alice sees him leave.
    let (status, _) = api(
        &server,
        "DELETE",
        &format!("/api/rooms/standup/participants/{bob_id}"),
    )
    .await;
    assert_eq!(status, 204);
    let removed = recv_json(&mut bob).await;
    assert_eq!(removed["type"], "error");
    assert_eq!(removed["code"], "kicked");
    let (frame, _) = expect_close(&mut bob).await;
    let frame = frame.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4001);
    assert_eq!(frame.reason.as_str(), "removed by an administrator");
    let left = recv_json(&mut alice).await;
    assert_eq!(left, json!({"type": "participantLeft", "peerId": bob_id}));
    let text = wait_for_metric(server.http_addr, "sfu_peers", 2.0).await;
    assert_eq!(
        metric(&text, r#"sfu_leaves_total{reason="kicked"}"#),
        Some(1.0)
    );

    // Close the other room; the standup room is untouched.
    let (status, body) = api(&server, "DELETE", "/api/rooms/other").await;
    assert_eq!((status, body), (200, json!({"removed": 1})));
    assert_eq!(recv_json(&mut carol).await["code"], "kicked");
    let (status, body) = api(&server, "GET", "/api/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(body["rooms"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["rooms"][0]["participants"][0]["peerId"],
        alice_id.as_str()
    );
    ping_pong(&mut alice).await;

    // A wrong token changes nothing.
    let r = http_request(
        server.http_addr,
        "DELETE",
        "/api/rooms/standup",
        &[("Authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(r.status, 401);
    wait_for_metric(server.http_addr, "sfu_peers", 1.0).await;
    stop_server(server).await;
}
