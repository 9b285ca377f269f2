//! Graceful drain: `POST /api/drain` (or a stop signal, in tests/binary.rs)
//! makes `/readyz` fail at once, refuses new joins, tells every client to
//! migrate, and shuts down when the calls are over or the drain timeout
//! has passed, whichever comes first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const AUTH: (&str, &str) = ("Authorization", "Bearer test-admin-token");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_joins_tells_clients_and_ends_at_the_deadline() {
    let server = start_server_with(|c| c.drain_timeout_secs = 2).await;
    let addr = server.http_addr;
    let mut alice = connect(addr).await;
    join(&mut alice, "drain-room", "Alice").await;
    assert_eq!(http_get(addr, "/readyz").await.status, 200);

    let unauthorized = http_request(addr, "POST", "/api/drain", &[]).await;
    assert_eq!(unauthorized.status, 401);
    let r = http_request(addr, "POST", "/api/drain", &[AUTH]).await;
    assert_eq!(r.status, 202);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"draining": true, "started": true, "deadlineSecs": 2})
    );
    let again = http_request(addr, "POST", "/api/drain", &[AUTH]).await;
    let body: serde_json::Value = serde_json::from_slice(&again.body).unwrap();
    assert_eq!(body["started"], false, "already draining");

    assert_eq!(http_get(addr, "/readyz").await.status, 503);
    let migrate = recv_json(&mut alice).await;
    assert_eq!(migrate["type"], "migrate", "{migrate}");
    assert_eq!(migrate["deadlineSecs"], 2);
    ping_pong(&mut alice).await;

    let mut late = connect(addr).await;
    let told = recv_json(&mut late).await;
    assert_eq!(
        told["type"], "migrate",
        "a socket opened while draining is told at once"
    );
    send_json(
        &mut late,
        &json!({"type": "join", "room": "drain-room", "name": "Late",
                "token": common::token("drain-room", "late")}),
    )
    .await;
    expect_error(&mut late, "draining").await;

    // Alice never leaves: the drain ends at its deadline.
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(10),
        server.drain_and_shutdown(std::future::pending()),
    )
    .await
    .expect("the drain ends")
    .expect("a clean shutdown");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "ended at the 2 s deadline: {took:?}"
    );
    let (close, _) = expect_close(&mut alice).await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_ends_as_soon_as_the_last_participant_leaves() {
    let server = start_server_with(|c| c.drain_timeout_secs = 30).await;
    let mut alice = connect(server.http_addr).await;
    join(&mut alice, "r", "Alice").await;
    let leaver = tokio::spawn(async move {
        assert_eq!(recv_json(&mut alice).await["type"], "migrate");
        send_json(&mut alice, &json!({"type": "leave"})).await;
        assert_eq!(recv_json(&mut alice).await["type"], "left");
        alice
    });
    let started = Instant::now();
    server
        .drain_and_shutdown(std::future::pending())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no need to wait 30 s once everyone left: {:?}",
        started.elapsed()
    );
    drop(leaver.await.unwrap());
}
