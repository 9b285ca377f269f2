//! Bad input on the signaling WebSocket (docs/signaling.md): every kind of
//! malformed or out-of-order message gets the documented `error` code, the
//! socket stays usable (except for an oversized frame, which closes it with
//! 1009), other rooms are unaffected, and `/metrics` tracks it all. Also the
//! plain HTTP routes.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Text frames over this many bytes close the socket.
const LIMIT: usize = 64 * 1024;

/// A `join` whose display name makes the frame about 70,000 bytes: valid
/// JSON, but over the limit.
fn oversized_join() -> String {
    let text = json!({"type": "join", "room": "r", "name": "x".repeat(70_000)}).to_string();
    assert!(text.len() > LIMIT);
    text
}

/// Sends an oversized frame and asserts the 1009 close.
async fn send_oversized_and_expect_1009(ws: &mut Ws) {
    send_text(ws, oversized_join()).await;
    let (frame, before) = expect_close(ws).await;
    let frame = frame.expect("close frame carries a code and reason");
    assert_eq!(frame.code, CloseCode::Size, "close code");
    assert_eq!(u16::from(frame.code), 1009);
    assert!(
        frame.reason.as_str().contains("65536"),
        "reason {:?} should mention 65536",
        frame.reason.as_str()
    );
    // The close is preceded by exactly one error explaining it.
    assert_eq!(before.len(), 1, "messages before close: {before:?}");
    assert_eq!(before[0]["type"], "error", "{}", before[0]);
    assert_eq!(before[0]["code"], "too_big", "{}", before[0]);
    assert!(
        before[0]["message"].as_str().unwrap().contains("65536"),
        "{}",
        before[0]
    );
    // After the close handshake the stream ends.
    assert!(
        next_frame(ws).await.is_none(),
        "stream continues after close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_text_is_bad_json_and_socket_stays_usable() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;

    send_text(&mut ws, "this is not json").await;
    let err = expect_error(&mut ws, "bad_json").await;
    assert_eq!(
        err.as_object().unwrap().len(),
        3,
        "error has exactly type, code and message: {err}"
    );
    ping_pong(&mut ws).await;

    // Truncated JSON and a bare JSON string are not messages either.
    send_text(&mut ws, r#"{"type":"ping""#).await;
    expect_error(&mut ws, "bad_json").await;
    send_text(&mut ws, "").await;
    expect_error(&mut ws, "bad_json").await;
    ping_pong(&mut ws).await;

    // A field with the wrong type is bad_json as well.
    send_text(&mut ws, r#"{"type":"join","room":5,"name":"x"}"#).await;
    expect_error(&mut ws, "bad_json").await;
    ping_pong(&mut ws).await;

    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="bad_json"}"#),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"sfu_ws_messages_total{type="ping"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"sfu_ws_messages_total{type="invalid"}"#),
        Some(4.0),
        "{text}"
    );
    assert_eq!(metric(&text, "sfu_ws_connections"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "sfu_peers"), Some(0.0), "{text}");

    drop(ws);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_missing_type_is_unknown_type() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;

    send_json(&mut ws, &json!({"type": "dance"})).await;
    let err = expect_error(&mut ws, "unknown_type").await;
    assert!(
        err["message"].as_str().unwrap().contains("dance"),
        "message names the type: {err}"
    );

    send_json(&mut ws, &json!({"room": "a", "name": "b"})).await;
    expect_error(&mut ws, "unknown_type").await;

    // Not an object, a non-string type, and a server-only type.
    send_text(&mut ws, "[1,2,3]").await;
    expect_error(&mut ws, "unknown_type").await;
    send_json(&mut ws, &json!({"type": 7})).await;
    expect_error(&mut ws, "unknown_type").await;
    send_json(&mut ws, &json!({"type": "pong"})).await;
    expect_error(&mut ws, "unknown_type").await;
    // Types are case-sensitive.
    send_json(&mut ws, &json!({"type": "PING"})).await;
    expect_error(&mut ws, "unknown_type").await;

    ping_pong(&mut ws).await;

    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="unknown_type"}"#),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="bad_json"}"#),
        Some(0.0),
        "no bad_json was caused: {text}"
    );

    drop(ws);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_is_refused_but_socket_stays_open() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;

    ws_send(&mut ws, Message::binary(vec![1u8, 2, 3, 4])).await;
    expect_error(&mut ws, "binary_not_supported").await;
    ping_pong(&mut ws).await;

    // Binary JSON is still binary.
    ws_send(&mut ws, Message::binary(br#"{"type":"ping"}"#.to_vec())).await;
    expect_error(&mut ws, "binary_not_supported").await;
    ping_pong(&mut ws).await;

    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="binary_not_supported"}"#),
        Some(2.0),
        "{text}"
    );

    drop(ws);
    stop_server(server).await;
}

async fn ws_send(ws: &mut Ws, message: Message) {
    use futures_util::SinkExt;
    ws.send(message).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_text_closes_with_1009() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    ping_pong(&mut ws).await;

    send_oversized_and_expect_1009(&mut ws).await;

    let text = wait_for_metric(server.http_addr, "sfu_ws_connections", 0.0).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="too_big"}"#),
        Some(1.0),
        "{text}"
    );

    // A frame of exactly the limit is still accepted (and is bad JSON here).
    let mut ws = connect(server.http_addr).await;
    send_text(&mut ws, "x".repeat(LIMIT)).await;
    expect_error(&mut ws, "bad_json").await;
    ping_pong(&mut ws).await;
    // One byte more is not.
    send_text(&mut ws, "x".repeat(LIMIT + 1)).await;
    let (frame, _) = expect_close(&mut ws).await;
    assert_eq!(u16::from(frame.unwrap().code), 1009);

    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_text_of_a_joined_peer_closes_and_removes_it() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "big", "Big").await;
    wait_for_metric(server.http_addr, "sfu_peers", 1.0).await;

    send_oversized_and_expect_1009(&mut ws).await;

    let text = wait_for_metric(server.http_addr, "sfu_peers", 0.0).await;
    assert_eq!(metric(&text, "sfu_rooms"), Some(0.0), "{text}");
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_sdp_is_bad_sdp() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;

    let joined = join(&mut ws, "sdp-room", "Sam").await;
    assert_eq!(joined["participants"], json!([]), "{joined}");

    send_json(&mut ws, &json!({"type": "offer", "sdp": "this is not sdp"})).await;
    expect_error(&mut ws, "bad_sdp").await;
    ping_pong(&mut ws).await;

    send_json(&mut ws, &json!({"type": "offer", "sdp": ""})).await;
    expect_error(&mut ws, "bad_sdp").await;
    ping_pong(&mut ws).await;

    // An answer when the server has no offer outstanding.
    send_json(&mut ws, &json!({"type": "answer", "sdp": "v=0\r\n"})).await;
    expect_error(&mut ws, "bad_sdp").await;
    ping_pong(&mut ws).await;

    // An offer with the wrong field type is a JSON problem, not an SDP one.
    send_json(&mut ws, &json!({"type": "offer", "sdp": 42})).await;
    expect_error(&mut ws, "bad_json").await;
    ping_pong(&mut ws).await;

    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="bad_sdp"}"#),
        Some(3.0),
        "{text}"
    );
    // The peer survived its bad SDP.
    assert_eq!(metric(&text, "sfu_peers"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "sfu_rooms"), Some(1.0), "{text}");

    drop(ws);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_validation_and_ordering_errors() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;

    // Before join.
    send_json(&mut ws, &json!({"type": "offer", "sdp": "v=0\r\n"})).await;
    expect_error(&mut ws, "not_joined").await;
    send_json(&mut ws, &json!({"type": "answer", "sdp": "v=0\r\n"})).await;
    expect_error(&mut ws, "not_joined").await;
    let candidate = json!({
        "type": "candidate",
        "candidate": {
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 53012 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0
        }
    });
    send_json(&mut ws, &candidate).await;
    expect_error(&mut ws, "not_joined").await;
    send_json(&mut ws, &json!({"type": "candidate", "candidate": null})).await;
    expect_error(&mut ws, "not_joined").await;
    send_json(&mut ws, &json!({"type": "leave"})).await;
    expect_error(&mut ws, "not_joined").await;

    // Malformed joins.
    send_json(&mut ws, &json!({"type": "join", "name": "x"})).await;
    let err = expect_error(&mut ws, "bad_json").await;
    assert!(
        err["message"].as_str().unwrap().contains("room"),
        "message names the missing field: {err}"
    );
    send_json(&mut ws, &json!({"type": "join", "room": "r"})).await;
    expect_error(&mut ws, "bad_json").await;
    send_json(&mut ws, &json!({"type": "join", "room": "", "name": "x"})).await;
    expect_error(&mut ws, "bad_room").await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "a b", "name": "x"}),
    )
    .await;
    expect_error(&mut ws, "bad_room").await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "café", "name": "x"}),
    )
    .await;
    expect_error(&mut ws, "bad_room").await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "r".repeat(65), "name": "x"}),
    )
    .await;
    expect_error(&mut ws, "bad_room").await;
    send_json(&mut ws, &json!({"type": "join", "room": "r", "name": ""})).await;
    expect_error(&mut ws, "bad_name").await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "r", "name": "   "}),
    )
    .await;
    expect_error(&mut ws, "bad_name").await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "r", "name": "a\nb"}),
    )
    .await;
    expect_error(&mut ws, "bad_name").await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "r", "name": "n".repeat(65)}),
    )
    .await;
    expect_error(&mut ws, "bad_name").await;

    // None of that joined anything.
    let text = metrics(server.http_addr).await;
    assert_eq!(metric(&text, "sfu_peers"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "sfu_joins_total"), Some(0.0), "{text}");

    // Limits are inclusive: 64-character room and name are fine.
    let room = "R".repeat(64);
    let joined = join(&mut ws, &room, &"N".repeat(64)).await;
    let peer_id = joined["peerId"].as_str().unwrap().to_owned();

    // A second join on the same socket, valid or not.
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "other", "name": "x"}),
    )
    .await;
    expect_error(&mut ws, "already_joined").await;
    send_json(&mut ws, &json!({"type": "join", "room": room, "name": "x"})).await;
    expect_error(&mut ws, "already_joined").await;
    ping_pong(&mut ws).await;

    let text = metrics(server.http_addr).await;
    assert_eq!(metric(&text, "sfu_peers"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "sfu_rooms"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "sfu_joins_total"), Some(1.0), "{text}");
    for (code, count) in [
        ("not_joined", 5.0),
        ("bad_json", 2.0),
        ("bad_room", 4.0),
        ("bad_name", 4.0),
        ("already_joined", 2.0),
    ] {
        assert_eq!(
            metric(&text, &format!(r#"sfu_ws_errors_total{{code="{code}"}}"#)),
            Some(count),
            "{code}: {text}"
        );
    }

    // After leave the socket may join again, and gets a new id.
    send_json(&mut ws, &json!({"type": "leave"})).await;
    assert_eq!(recv_json(&mut ws).await, json!({"type": "left"}));
    let again = join(&mut ws, "r2", "Again").await;
    assert_ne!(again["peerId"].as_str().unwrap(), peer_id);

    drop(ws);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_in_one_room_does_not_disturb_another() {
    let server = start_server().await;
    let addr = server.http_addr;

    let mut a = connect(addr).await;
    let joined_a = join(&mut a, "alpha", "A").await;
    let a_id = joined_a["peerId"].as_str().unwrap().to_owned();
    let mut b = connect(addr).await;
    let joined_b = join(&mut b, "beta", "B").await;
    assert_eq!(joined_b["participants"], json!([]), "beta was empty");
    assert_ne!(joined_b["peerId"], joined_a["peerId"]);

    let text = metrics(addr).await;
    assert_eq!(metric(&text, "sfu_peers"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "sfu_rooms"), Some(2.0), "{text}");

    // B's barrage, short of closing.
    let mut bad_json_sent = 0;
    for junk in ["{", "nope", "}{", "\u{0}", r#"{"type":"offer","sdp":[]}"#] {
        send_text(&mut b, junk).await;
        expect_error(&mut b, "bad_json").await;
        bad_json_sent += 1;
    }
    for kind in ["dance", "subscribe", "kick"] {
        send_json(&mut b, &json!({"type": kind, "peerId": a_id})).await;
        expect_error(&mut b, "unknown_type").await;
    }
    send_json(&mut b, &json!({"type": "offer", "sdp": "this is not sdp"})).await;
    expect_error(&mut b, "bad_sdp").await;
    send_json(
        &mut b,
        &json!({"type": "join", "room": "alpha", "name": "B"}),
    )
    .await;
    expect_error(&mut b, "already_joined").await;
    ws_send(&mut b, Message::binary(vec![0u8; 16])).await;
    expect_error(&mut b, "binary_not_supported").await;
    ping_pong(&mut b).await;

    let text = metrics(addr).await;
    assert_eq!(metric(&text, "sfu_peers"), Some(2.0), "{text}");
    let bad_json = metric(&text, r#"sfu_ws_errors_total{code="bad_json"}"#).unwrap();
    assert!(bad_json >= f64::from(bad_json_sent), "{bad_json}: {text}");
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="unknown_type"}"#),
        Some(3.0),
        "{text}"
    );

    // Then B's oversized frame closes it, and B leaves the SFU.
    send_oversized_and_expect_1009(&mut b).await;
    let text = wait_for_metric(addr, "sfu_peers", 1.0).await;
    assert_eq!(metric(&text, "sfu_rooms"), Some(1.0), "{text}");

    // A noticed nothing: the next thing it reads is the answer to its ping.
    ping_pong(&mut a).await;

    // A newcomer in alpha is announced to A, and sees A.
    let mut c = connect(addr).await;
    let joined_c = join(&mut c, "alpha", "C").await;
    let c_id = joined_c["peerId"].as_str().unwrap();
    assert_eq!(
        joined_c["participants"],
        json!([{"peerId": a_id, "name": "A", "tracks": []}]),
        "{joined_c}"
    );
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type": "participantJoined", "peerId": c_id, "name": "C"})
    );
    ping_pong(&mut a).await;
    ping_pong(&mut c).await;

    let text = wait_for_metric(addr, "sfu_ws_connections", 2.0).await;
    assert_eq!(metric(&text, "sfu_peers"), Some(2.0), "A and C: {text}");
    assert_eq!(metric(&text, "sfu_rooms"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "sfu_joins_total"), Some(3.0), "{text}");
    let bad_json = metric(&text, r#"sfu_ws_errors_total{code="bad_json"}"#).unwrap();
    assert!(bad_json >= f64::from(bad_json_sent), "{bad_json}: {text}");

    drop(a);
    drop(c);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_disconnect_remove_the_peer() {
    let server = start_server().await;
    let addr = server.http_addr;

    // leave → left, the socket stays open, the peer is gone.
    let mut a = connect(addr).await;
    let a_id = join(&mut a, "lobby", "A").await["peerId"].clone();
    let mut b = connect(addr).await;
    let joined_b = join(&mut b, "lobby", "  B  ").await;
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type": "participantJoined", "peerId": joined_b["peerId"], "name": "B"}),
        "the display name is trimmed"
    );
    wait_for_metric(addr, "sfu_peers", 2.0).await;

    send_json(&mut a, &json!({"type": "leave"})).await;
    assert_eq!(recv_json(&mut a).await, json!({"type": "left"}));
    assert_eq!(
        recv_json(&mut b).await,
        json!({"type": "participantLeft", "peerId": a_id})
    );
    let text = wait_for_metric(addr, "sfu_peers", 1.0).await;
    assert_eq!(metric(&text, "sfu_ws_connections"), Some(2.0), "{text}");
    ping_pong(&mut a).await;
    // After leaving, the session is no longer joined.
    send_json(&mut a, &json!({"type": "offer", "sdp": "v=0\r\n"})).await;
    expect_error(&mut a, "not_joined").await;
    send_json(&mut a, &json!({"type": "leave"})).await;
    expect_error(&mut a, "not_joined").await;

    send_json(&mut b, &json!({"type": "leave"})).await;
    assert_eq!(recv_json(&mut b).await, json!({"type": "left"}));
    let text = wait_for_metric(addr, "sfu_peers", 0.0).await;
    assert_eq!(metric(&text, "sfu_rooms"), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, r#"sfu_leaves_total{reason="normal"}"#),
        Some(2.0),
        "{text}"
    );

    // Closing the socket without leave (a polite close handshake).
    let mut c = connect(addr).await;
    join(&mut c, "lobby", "C").await;
    wait_for_metric(addr, "sfu_peers", 1.0).await;
    c.close(None).await.unwrap();
    let text = wait_for_metric(addr, "sfu_peers", 0.0).await;
    assert_eq!(metric(&text, "sfu_rooms"), Some(0.0), "{text}");

    // Dropping the TCP connection without any close frame parks the
    // session for a resume (tests/resume.rs covers the rest): the peer
    // stays until the grace period is over.
    let mut d = connect(addr).await;
    join(&mut d, "lobby", "D").await;
    wait_for_metric(addr, "sfu_peers", 1.0).await;
    drop(d);
    let text = wait_for_metric(addr, "sfu_ws_parked_sessions", 1.0).await;
    assert_eq!(metric(&text, "sfu_peers"), Some(1.0), "{text}");
    // Only a and b are still connected.
    wait_for_metric(addr, "sfu_ws_connections", 2.0).await;

    drop(a);
    drop(b);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sessions_with_1001() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "r", "A").await;

    let stopping = tokio::spawn(stop_server(server));
    let (frame, before) = expect_close(&mut ws).await;
    assert!(before.is_empty(), "{before:?}");
    let frame = frame.unwrap();
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "server shutting down");
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes() {
    let server = start_server().await;
    let addr = server.http_addr;

    let health = http_get(addr, "/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok\n");

    let index = http_get(addr, "/").await;
    assert_eq!(index.status, 200);
    let content_type = index.header("content-type").expect("content-type");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = index.text();
    assert!(html.to_ascii_lowercase().contains("<html"), "{html}");

    let missing = http_get(addr, "/nope.js").await;
    assert_eq!(missing.status, 404);

    // /ws without an upgrade is not a WebSocket.
    let plain = http_get(addr, "/ws").await;
    assert!(
        (400..500).contains(&plain.status),
        "GET /ws without upgrade: {}",
        plain.status
    );

    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exposition() {
    let server = start_server().await;
    let response = http_get(server.http_addr, "/metrics").await;
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").expect("content-type");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text();

    assert!(
        text.contains("# TYPE sfu_rtp_packets_in_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE sfu_rooms gauge\n"), "{text}");
    assert!(text.contains("# TYPE sfu_peers gauge\n"), "{text}");
    assert_eq!(metric(&text, "sfu_rooms"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "sfu_peers"), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, r#"sfu_rtp_packets_in_total{kind="video"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"sfu_rtp_packets_in_total{kind="audio"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(metric(&text, "sfu_ws_connections"), Some(0.0), "{text}");

    // Rooms and peers follow joins.
    let mut a = connect(server.http_addr).await;
    join(&mut a, "m1", "A").await;
    let mut b = connect(server.http_addr).await;
    join(&mut b, "m2", "B").await;
    let mut c = connect(server.http_addr).await;
    join(&mut c, "m2", "C").await;
    let text = metrics(server.http_addr).await;
    assert_eq!(metric(&text, "sfu_rooms"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "sfu_peers"), Some(3.0), "{text}");
    assert_eq!(metric(&text, "sfu_ws_connections"), Some(3.0), "{text}");
    assert_eq!(
        metric(&text, r#"sfu_ws_messages_total{type="join"}"#),
        Some(3.0),
        "{text}"
    );

    drop((a, b, c));
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_candidates_after_join() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "ice", "I").await;

    // Not a candidate line.
    let garbage = json!({
        "type": "candidate",
        "candidate": {"candidate": "garbage", "sdpMid": "0", "sdpMLineIndex": 0}
    });
    send_json(&mut ws, &garbage).await;
    expect_error(&mut ws, "bad_candidate").await;
    ping_pong(&mut ws).await;

    // The candidate object without its `candidate` string.
    send_json(
        &mut ws,
        &json!({"type": "candidate", "candidate": {"sdpMid": "0"}}),
    )
    .await;
    expect_error(&mut ws, "bad_json").await;
    ping_pong(&mut ws).await;

    // End of candidates is accepted silently.
    send_json(&mut ws, &json!({"type": "candidate", "candidate": null})).await;
    ping_pong(&mut ws).await;

    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="bad_candidate"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "sfu_peers"), Some(1.0), "{text}");

    drop(ws);
    stop_server(server).await;
}

/// Over four times the limit the WebSocket layer itself refuses the frame.
/// However the client learns of it, the session must end and the peer must
/// leave the SFU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_transport_limit_ends_the_session() {
    let server = start_server().await;
    let addr = server.http_addr;
    let mut ws = connect(addr).await;
    join(&mut ws, "huge", "H").await;
    let mut other = connect(addr).await;
    join(&mut other, "huge", "O").await;
    recv_json(&mut ws).await; // participantJoined O

    send_text(&mut ws, "x".repeat(1 << 20)).await;
    let mut ended = false;
    for _ in 0..4 {
        match tokio::time::timeout(RECV_TIMEOUT, futures_util::StreamExt::next(&mut ws))
            .await
            .expect("server reacts within 5 s")
        {
            Some(Ok(Message::Text(text))) => {
                let msg: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(msg["type"], "error", "{msg}");
            }
            Some(Ok(Message::Close(frame))) => {
                if let Some(frame) = frame {
                    assert_eq!(u16::from(frame.code), 1009);
                }
            }
            Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            Some(Err(_)) | None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the connection stays open after a 1 MiB frame");

    wait_for_metric(addr, "sfu_peers", 1.0).await;
    let left = recv_json(&mut other).await;
    assert_eq!(left["type"], "participantLeft", "{left}");
    ping_pong(&mut other).await;

    drop(other);
    stop_server(server).await;
}

/// RFC 6455 §5.5.1: the endpoint receiving a Close frame sends one back, so
/// a browser sees a clean close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_is_echoed() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "r", "A").await;
    futures_util::SinkExt::close(&mut ws).await.unwrap();
    match next_frame(&mut ws).await {
        Some(Message::Close(_)) => {}
        other => panic!("expected the close echo, got {other:?}"),
    }
    wait_for_metric(server.http_addr, "sfu_peers", 0.0).await;
    stop_server(server).await;
}

/// A client vanishing without a close handshake is not a protocol error and
/// must not be counted as an oversized message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnect_is_not_counted_as_too_big() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "r", "A").await;
    drop(ws);
    let text = wait_for_metric(server.http_addr, "sfu_ws_connections", 0.0).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="too_big"}"#),
        Some(0.0),
        "{text}"
    );
    stop_server(server).await;
}

/// docs/signaling.md: a frame over 64 KiB (and up to the 1 MiB transport
/// limit) closes the socket with 1009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_transport_limit_closes_with_1009() {
    let server = start_server().await;
    let mut ws = connect(server.http_addr).await;
    send_text(&mut ws, "x".repeat(300_000)).await;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(RECV_TIMEOUT, futures_util::StreamExt::next(&mut ws))
            .await
            .expect("server reacts within 5 s")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1009);
                assert!(frame.reason.as_str().contains("65536"), "{frame:?}");
                break;
            }
            Some(Ok(frame)) => frames.push(frame),
            end => panic!("no 1009 close; got {frames:?} then {end:?}"),
        }
    }
    stop_server(server).await;
}
