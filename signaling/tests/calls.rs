//! 1:1 calls over the signaling WebSocket (docs/signaling.md, "Calls"):
//! call IDs reserved per socket, ring / accept / decline / cancel / busy /
//! timeout / hang up, private rooms nobody else may join, a party whose
//! socket closed rejoining its call on a new socket within the grace period,
//! the other party told when it does not (within 10 s of a close), rate-limited
//! call floods, and an error code (counted) for every bad request.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The next JSON text message, however long it takes (skipping pings).
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The next message, asserting its `type`.
async fn expect_type(ws: &mut Ws, kind: &str) -> Value {
    let msg = recv_json(ws).await;
    assert_eq!(msg["type"], kind, "expected {kind}, got {msg}");
    msg
}

/// `from` calls `to`'s ID; returns the call from `calling` and `ring`.
async fn ring(from: &mut Ws, to: &mut Ws, to_id: &str) -> String {
    send_json(from, &json!({"type": "call", "to": to_id})).await;
    let calling = expect_type(from, "calling").await;
    let ring = expect_type(to, "ring").await;
    assert_eq!(calling["call"], ring["call"]);
    assert_eq!(calling["to"], to_id);
    calling["call"].as_str().unwrap().to_owned()
}

async fn expect_ended(ws: &mut Ws, call: &str, reason: &str) {
    // Up to the rejoin grace period (5 s) after the previous message, so
    // longer than `recv_json`'s 5 s.
    let msg = tokio::time::timeout(Duration::from_secs(12), next_text(ws))
        .await
        .expect("no callEnded within 12 s");
    assert_eq!(msg["type"], "callEnded", "{msg}");
    assert_eq!(msg["call"], call, "{msg}");
    assert_eq!(msg["reason"], reason, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_ids_are_reserved_while_connected() {
    let server = start_server().await;
    let mut a = connect(server.http_addr).await;
    let id = register(&mut a, "Alice", None).await;
    assert!(id
        .bytes()
        .all(|b| b"23456789ABCDEFGHJKMNPQRSTUVWXYZ".contains(&b)));

    // Another socket cannot take it, in any spelling.
    let mut b = connect(server.http_addr).await;
    let lower = id.to_lowercase();
    send_json(
        &mut b,
        &json!({"type": "register", "callId": lower, "token": common::token("calls", &id)}),
    )
    .await;
    expect_error(&mut b, "id_taken").await;
    // Renaming keeps the ID; asking for another one is refused.
    assert_eq!(register(&mut a, "Alice B.", Some(&id)).await, id);
    send_json(&mut a, &json!({"type": "register", "callId": "ZZZZZZZ"})).await;
    expect_error(&mut a, "already_registered").await;
    // Malformed proposals and names.
    for bad in ["ABC", "ABCDEF0", "ABCDEFGHJ", "ABC DEF!"] {
        send_json(&mut b, &json!({"type": "register", "callId": bad})).await;
        expect_error(&mut b, "bad_call_id").await;
    }
    send_json(&mut b, &json!({"type": "register", "name": " "})).await;
    expect_error(&mut b, "bad_name").await;

    // Once the holder disconnects the ID is free again (a reload).
    a.close(None).await.unwrap();
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        send_json(
            &mut b,
            &json!({"type": "register", "callId": id, "token": common::token("calls", &id)}),
        )
        .await;
        let reply = recv_json(&mut b).await;
        if reply["type"] == "registered" {
            assert_eq!(reply["callId"], id.as_str());
            break;
        }
        let code = reply["code"].as_str().unwrap();
        assert!(code == "id_taken" || code == "rate_limited", "{reply}");
        assert!(Instant::now() < deadline, "ID not released after close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = metrics(server.http_addr).await;
    assert!(metric(&text, r#"sfu_ws_errors_total{code="id_taken"}"#).unwrap() >= 1.0);
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="bad_call_id"}"#),
        Some(4.0)
    );
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_gets_a_private_room_and_hang_up_ends_it() {
    let server = start_server().await;
    let (mut a, mut b, mut c) = (
        connect(server.http_addr).await,
        connect(server.http_addr).await,
        connect(server.http_addr).await,
    );
    let a_id = register(&mut a, "Alice", None).await;
    let b_id = register(&mut b, "Bob", None).await;
    register(&mut c, "Mallory", None).await;

    send_json(&mut a, &json!({"type": "call", "to": b_id})).await;
    let calling = expect_type(&mut a, "calling").await;
    assert_eq!(calling["name"], "Bob");
    let ring = expect_type(&mut b, "ring").await;
    assert_eq!(ring["from"], a_id.as_str());
    assert_eq!(ring["name"], "Alice");
    let call = ring["call"].as_str().unwrap().to_owned();

    // Only Bob may answer; a stranger cannot touch the call.
    send_json(&mut c, &json!({"type": "accept", "call": call})).await;
    expect_error(&mut c, "no_such_call").await;
    send_json(&mut a, &json!({"type": "accept", "call": call})).await;
    expect_error(&mut a, "no_such_call").await;

    send_json(&mut b, &json!({"type": "accept", "call": call})).await;
    let acc_a = expect_type(&mut a, "callAccepted").await;
    let acc_b = expect_type(&mut b, "callAccepted").await;
    assert_eq!(acc_a["room"], acc_b["room"]);
    assert_eq!(acc_a["peer"], b_id.as_str());
    assert_eq!(acc_a["name"], "Bob");
    assert_eq!(acc_b["name"], "Alice");
    let room = acc_a["room"].as_str().unwrap().to_owned();
    assert!(room.starts_with("call-") && room.len() == 37, "{room}");

    join(&mut a, &room, "Alice").await;
    join(&mut b, &room, "Bob").await;
    expect_type(&mut a, "participantJoined").await;
    // A third party cannot join, registered or not, nor guess a room.
    send_json(&mut c, &json!({"type": "join", "room": room, "name": "M"})).await;
    expect_error(&mut c, "private_room").await;
    let mut d = connect(server.http_addr).await;
    send_json(&mut d, &json!({"type": "join", "room": room, "name": "M"})).await;
    expect_error(&mut d, "private_room").await;
    let guess = format!("call-{}", "0".repeat(32));
    send_json(&mut d, &json!({"type": "join", "room": guess, "name": "M"})).await;
    expect_error(&mut d, "private_room").await;
    // Someone in a call is busy for others.
    send_json(&mut c, &json!({"type": "call", "to": a_id})).await;
    let busy_call = expect_type(&mut c, "calling").await["call"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_ended(&mut c, &busy_call, "busy").await;
    let missed = expect_type(&mut a, "missedCall").await;
    assert_eq!(missed["name"], "Mallory");

    send_json(&mut a, &json!({"type": "hangup", "call": call})).await;
    expect_ended(&mut a, &call, "hangup").await;
    expect_ended(&mut b, &call, "hangup").await;
    // The room is closed to new joins once the call is over.
    send_json(&mut a, &json!({"type": "leave"})).await;
    expect_type(&mut a, "left").await;
    send_json(&mut a, &json!({"type": "join", "room": room, "name": "A"})).await;
    expect_error(&mut a, "private_room").await;

    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="private_room"}"#),
        Some(4.0)
    );
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="no_such_call"}"#),
        Some(2.0)
    );
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_cancel_timeout_unknown_and_self() {
    let server = start_server_with(|c| c.ring_timeout_secs = 1).await;
    let (mut a, mut b) = (
        connect(server.http_addr).await,
        connect(server.http_addr).await,
    );
    // Calls before registering are refused.
    send_json(&mut a, &json!({"type": "call", "to": "ABCDEFG"})).await;
    expect_error(&mut a, "not_registered").await;
    let a_id = register(&mut a, "Alice", None).await;
    let b_id = register(&mut b, "Bob", None).await;

    let call = ring(&mut a, &mut b, &b_id).await;
    send_json(&mut b, &json!({"type": "decline", "call": call})).await;
    expect_ended(&mut a, &call, "declined").await;
    expect_ended(&mut b, &call, "declined").await;

    let call = ring(&mut a, &mut b, &b_id).await;
    send_json(&mut a, &json!({"type": "cancel", "call": call})).await;
    expect_ended(&mut a, &call, "cancelled").await;
    expect_ended(&mut b, &call, "cancelled").await;
    // A stale call id is an error, not a crash.
    send_json(&mut b, &json!({"type": "accept", "call": call})).await;
    expect_error(&mut b, "no_such_call").await;

    let call = ring(&mut a, &mut b, &b_id).await;
    let rang = Instant::now();
    expect_ended(&mut a, &call, "timeout").await;
    expect_ended(&mut b, &call, "timeout").await;
    let waited = rang.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "timed out after {waited:?} with a 1 s ring timeout"
    );

    send_json(&mut a, &json!({"type": "call", "to": "ZZZZZZZ"})).await;
    let err = expect_error(&mut a, "unknown_id").await;
    assert!(err["message"].as_str().unwrap().contains("ZZZZZZZ"));
    assert_eq!(err["request"], "call", "errors name the failed request");
    send_json(&mut a, &json!({"type": "call", "to": a_id})).await;
    expect_error(&mut a, "self_call").await;
    send_json(&mut a, &json!({"type": "call", "to": "0"})).await;
    expect_error(&mut a, "bad_call_id").await;
    ping_pong(&mut a).await;
    ping_pong(&mut b).await;
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_calls_is_rate_limited() {
    let server = start_server().await;
    let (mut a, mut b) = (
        connect(server.http_addr).await,
        connect(server.http_addr).await,
    );
    register(&mut a, "Alice", None).await;
    let b_id = register(&mut b, "Bob", None).await;
    // Each accepted call is cancelled at once; 30 in a burst.
    let mut limited = 0;
    let mut placed = 0;
    for _ in 0..30 {
        send_json(&mut a, &json!({"type": "call", "to": b_id})).await;
        let msg = recv_json(&mut a).await;
        match msg["type"].as_str().unwrap() {
            "calling" => {
                placed += 1;
                let call = msg["call"].as_str().unwrap();
                send_json(&mut a, &json!({"type": "cancel", "call": call})).await;
                expect_ended(&mut a, call, "cancelled").await;
            }
            "error" => {
                assert_eq!(msg["code"], "rate_limited", "{msg}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {msg}"),
        }
    }
    // A burst of six, then one a second.
    assert!(placed <= 7, "{placed} calls placed in a burst");
    assert!(limited >= 23, "{limited} of 30 rate limited");
    // Bob was rung only for the calls that went through.
    for _ in 0..placed {
        expect_type(&mut b, "ring").await;
        expect_type(&mut b, "callEnded").await;
    }
    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="rate_limited"}"#),
        Some(f64::from(limited))
    );
    stop_server(server).await;
}

/// Alice calls Bob, Bob answers, and both join the call's room; returns the
/// call and the room.
async fn call_and_join(a: &mut Ws, b: &mut Ws, b_id: &str) -> (String, String) {
    let call = ring(a, b, b_id).await;
    send_json(b, &json!({"type": "accept", "call": call})).await;
    let room = expect_type(a, "callAccepted").await["room"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_type(b, "callAccepted").await;
    join(a, &room, "Alice").await;
    join(b, &room, "Bob").await;
    expect_type(a, "participantJoined").await;
    (call, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_whose_socket_closed_rejoins_the_call_on_a_new_socket() {
    let server = start_server().await;
    let (mut a, mut b) = (
        connect(server.http_addr).await,
        connect(server.http_addr).await,
    );
    let a_id = register(&mut a, "Alice", None).await;
    let b_id = register(&mut b, "Bob", None).await;
    let (call, room) = call_and_join(&mut a, &mut b, &b_id).await;

    // Bob's socket drops; his Peer leaves the room, the call stays.
    b.close(None).await.unwrap();
    drop(b);
    expect_type(&mut a, "participantLeft").await;
    // Nobody else can take Alice's ID meanwhile.
    let mut m = connect(server.http_addr).await;
    send_json(
        &mut m,
        &json!({"type": "register", "callId": a_id, "token": common::token("calls", &a_id)}),
    )
    .await;
    expect_error(&mut m, "id_taken").await;

    // Bob is back: same ID, same room.
    let mut b = connect(server.http_addr).await;
    assert_eq!(register(&mut b, "Bob", Some(&b_id)).await, b_id);
    let joined = join(&mut b, &room, "Bob").await;
    assert_eq!(joined["participants"][0]["name"], "Alice", "{joined}");
    let back = expect_type(&mut a, "participantJoined").await;
    assert_eq!(back["name"], "Bob");
    // A stranger still cannot join, and the call goes on past the grace
    // period until someone hangs up.
    send_json(&mut m, &json!({"type": "join", "room": room, "name": "M"})).await;
    expect_error(&mut m, "private_room").await;
    tokio::time::sleep(signaling::calls::REJOIN_GRACE + Duration::from_millis(500)).await;
    send_json(&mut b, &json!({"type": "hangup", "call": call})).await;
    expect_ended(&mut a, &call, "hangup").await;
    expect_ended(&mut b, &call, "hangup").await;
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_or_silent_socket_ends_the_call_after_the_grace_period() {
    let server = start_server().await;
    let (mut a, mut b) = (
        connect(server.http_addr).await,
        connect(server.http_addr).await,
    );
    register(&mut a, "Alice", None).await;
    let b_id = register(&mut b, "Bob", None).await;
    let grace = signaling::calls::REJOIN_GRACE;
    assert!(grace < Duration::from_secs(10));

    // Ringing: a closed socket ends the call at once.
    let call = ring(&mut a, &mut b, &b_id).await;
    b.close(None).await.unwrap();
    expect_ended(&mut a, &call, "disconnected").await;

    // Answered: a closed tab that did not hang up ends the call once the
    // grace period is over, within 10 s.
    let mut b = connect(server.http_addr).await;
    let b_id = register(&mut b, "Bob", Some(&b_id)).await;
    let (call, room) = call_and_join(&mut a, &mut b, &b_id).await;
    let closed = Instant::now();
    b.close(None).await.unwrap();
    drop(b);
    expect_type(&mut a, "participantLeft").await;
    expect_ended(&mut a, &call, "disconnected").await;
    let waited = closed.elapsed();
    assert!(
        waited >= grace - Duration::from_millis(200) && waited < Duration::from_secs(10),
        "call ended {waited:?} after the socket closed (grace {grace:?})"
    );
    // Back too late: the ID is free again but the room is closed.
    send_json(&mut a, &json!({"type": "leave"})).await;
    expect_type(&mut a, "left").await;
    let mut b = connect(server.http_addr).await;
    let b_id = register(&mut b, "Bob", Some(&b_id)).await;
    send_json(
        &mut b,
        &json!({"type": "join", "room": room, "name": "Bob"}),
    )
    .await;
    expect_error(&mut b, "private_room").await;

    // A lost socket (no close frame) of a party in the call's room: its
    // session waits for a `resume` first, then the call waits for a rejoin;
    // together still within 10 s.
    let (call, _) = call_and_join(&mut a, &mut b, &b_id).await;
    let lost = Instant::now();
    drop(b);
    expect_type(&mut a, "participantLeft").await;
    expect_ended(&mut a, &call, "disconnected").await;
    let waited = lost.elapsed();
    assert!(
        waited >= grace && waited < Duration::from_secs(10),
        "call ended {waited:?} after the socket was lost"
    );
    send_json(&mut a, &json!({"type": "leave"})).await;
    expect_type(&mut a, "left").await;
    let mut b = connect(server.http_addr).await;
    let b_id = register(&mut b, "Bob", Some(&b_id)).await;

    // A lost connection: Bob stops answering the server's pings. The idle
    // timeout notices, then the grace period runs.
    let call = ring(&mut a, &mut b, &b_id).await;
    send_json(&mut b, &json!({"type": "accept", "call": call})).await;
    expect_type(&mut a, "callAccepted").await;
    let silent = Instant::now();
    // `b` is never read again, so it answers no ping; `a` keeps reading.
    let limit = signaling::ws::IDLE_TIMEOUT + grace + Duration::from_secs(3);
    let msg = tokio::time::timeout(limit, next_text(&mut a))
        .await
        .expect("no callEnded after going silent");
    let waited = silent.elapsed();
    assert_eq!(msg["type"], "callEnded", "{msg}");
    assert_eq!(msg["reason"], "disconnected", "{msg}");
    assert!(
        waited >= signaling::ws::IDLE_TIMEOUT + grace - Duration::from_millis(200),
        "call ended {waited:?} after the connection went silent"
    );
    drop(b);
    stop_server(server).await;
}
