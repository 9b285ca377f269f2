//! Session resume: a participant whose signaling socket breaks keeps its
//! place for the grace period and takes it back from a new socket with its
//! resume token; the others see no leave. A clean close, a wrong token or
//! an expired grace end the session as before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::timeout;

/// Reads JSON messages for `window`; returns them (none is fine).
async fn drain_for(ws: &mut Ws, window: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout_at(deadline, futures_util::StreamExt::next(ws)).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            got.push(serde_json::from_str(text.as_str()).unwrap());
        }
    }
    got
}

fn has_type(messages: &[Value], kind: &str) -> bool {
    messages.iter().any(|m| m["type"] == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_socket_is_resumed_without_anyone_seeing_a_leave() {
    let server = start_server().await;
    let mut alice = connect(server.http_addr).await;
    let joined = join(&mut alice, "resume-room", "Alice").await;
    let token = joined["resumeToken"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32, "a long random token: {token}");
    let alice_id = joined["peerId"].clone();
    let mut bob = connect(server.http_addr).await;
    join(&mut bob, "resume-room", "Bob").await;
    let seen = drain_for(&mut alice, Duration::from_millis(300)).await;
    assert!(has_type(&seen, "participantJoined"), "{seen:?}");

    // Alice's connection breaks: no close frame.
    drop(alice);
    // Carol joins while Alice is away: Alice must hear of it on resume.
    let mut carol = connect(server.http_addr).await;
    join(&mut carol, "resume-room", "Carol").await;
    wait_for_metric(server.http_addr, "sfu_ws_parked_sessions", 1.0).await;

    let mut alice = connect(server.http_addr).await;
    send_json(&mut alice, &json!({"type": "resume", "token": token})).await;
    let resumed = recv_json(&mut alice).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["peerId"], alice_id);
    assert_eq!(resumed["room"], "resume-room");
    let queued = recv_json(&mut alice).await;
    assert_eq!(
        queued["type"], "participantJoined",
        "queued while away: {queued}"
    );
    assert_eq!(queued["name"], "Carol");
    ping_pong(&mut alice).await;

    let bob_saw = drain_for(&mut bob, Duration::from_millis(500)).await;
    assert!(
        !has_type(&bob_saw, "participantLeft"),
        "Bob saw a leave: {bob_saw:?}"
    );
    let m = metrics(server.http_addr).await;
    assert_eq!(metric(&m, "sfu_ws_resumes_total"), Some(1.0), "{m}");
    assert_eq!(metric(&m, "sfu_ws_parked_sessions"), Some(0.0));
    assert_eq!(metric(&m, "sfu_peers"), Some(3.0));

    // The token works again after a second break; the newest socket that
    // presents it holds the session.
    drop(alice);
    wait_for_metric(server.http_addr, "sfu_ws_parked_sessions", 1.0).await;
    let mut again = connect(server.http_addr).await;
    send_json(&mut again, &json!({"type": "resume", "token": token})).await;
    assert_eq!(recv_json(&mut again).await["type"], "resumed");
    let mut newest = connect(server.http_addr).await;
    send_json(&mut newest, &json!({"type": "resume", "token": token})).await;
    assert_eq!(recv_json(&mut newest).await["type"], "resumed");
    let m = metrics(server.http_addr).await;
    assert_eq!(
        metric(&m, "sfu_peers"),
        Some(3.0),
        "still one Peer for Alice"
    );
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_late_resume_and_resume_after_join_are_refused() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    send_json(
        &mut ws,
        &json!({"type": "resume", "token": "no-such-token"}),
    )
    .await;
    expect_error(&mut ws, "resume_failed").await;
    join(&mut ws, "r2", "Dan").await;
    send_json(&mut ws, &json!({"type": "resume", "token": "x"})).await;
    expect_error(&mut ws, "already_joined").await;
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_ends_when_the_grace_runs_out_or_the_close_is_clean() {
    let server = start_server_with(|c| c.resume_grace_secs = 1).await;
    let mut alice = connect(server.http_addr).await;
    let token = join(&mut alice, "grace", "Alice").await["resumeToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bob = connect(server.http_addr).await;
    join(&mut bob, "grace", "Bob").await;
    drop(alice);
    let left = timeout(Duration::from_secs(4), async {
        loop {
            let m = recv_json(&mut bob).await;
            if m["type"] == "participantLeft" {
                return m;
            }
        }
    })
    .await
    .expect("Bob sees Alice leave once the 1 s grace is over");
    assert_eq!(left["type"], "participantLeft");
    let mut late = connect(server.http_addr).await;
    send_json(&mut late, &json!({"type": "resume", "token": token})).await;
    expect_error(&mut late, "resume_failed").await;

    // A clean close (the tab closed) is a leave at once, with no parking.
    let mut carol = connect(server.http_addr).await;
    join(&mut carol, "grace", "Carol").await;
    let _ = drain_for(&mut bob, Duration::from_millis(200)).await;
    carol.close(None).await.unwrap();
    let left = timeout(Duration::from_millis(900), async {
        loop {
            let m = recv_json(&mut bob).await;
            if m["type"] == "participantLeft" {
                return m;
            }
        }
    })
    .await
    .expect("a clean close leaves at once");
    assert_eq!(left["type"], "participantLeft");
    let m = metrics(server.http_addr).await;
    assert_eq!(metric(&m, "sfu_ws_resumes_total"), Some(0.0));
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_takes_over_a_socket_the_server_still_thinks_alive() {
    let server = start_server().await;
    let mut old = connect(server.http_addr).await;
    let joined = join(&mut old, "takeover", "Alice").await;
    let token = joined["resumeToken"].as_str().unwrap().to_owned();
    let mut bob = connect(server.http_addr).await;
    join(&mut bob, "takeover", "Bob").await;

    // Alice's network changed: she knows, the server does not yet.
    let mut new = connect(server.http_addr).await;
    send_json(&mut new, &json!({"type": "resume", "token": token})).await;
    let resumed = recv_json(&mut new).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["peerId"], joined["peerId"]);
    ping_pong(&mut new).await;
    let bob_saw = drain_for(&mut bob, Duration::from_millis(500)).await;
    assert!(!has_type(&bob_saw, "participantLeft"), "{bob_saw:?}");
    // The old socket is let go.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match futures_util::StreamExt::next(&mut old).await {
                None | Some(Err(_)) => return,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the superseded socket closes");
    stop_server(server).await;
}
