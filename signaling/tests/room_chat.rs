//! Chat, mute and track sources in a room over the signaling WebSocket
//! (docs/signaling.md): chat reaches everyone else verbatim (markup is the
//! client's to render as text), oversized, empty and flooding chat is
//! refused with a counted error, and mute / trackSource validate their input.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_the_others_verbatim() {
    let server = start_server().await;
    let mut a = connect(server.http_addr).await;
    let mut b = connect(server.http_addr).await;
    let mut c = connect(server.http_addr).await;
    let mut other_room = connect(server.http_addr).await;
    let a_joined = join(&mut a, "chat-room", "Alice").await;
    join(&mut b, "chat-room", "Bob").await;
    join(&mut c, "chat-room", "<img src=x onerror=alert(1)>").await;
    join(&mut other_room, "elsewhere", "Dave").await;
    for _ in 0..2 {
        assert_eq!(recv_json(&mut a).await["type"], "participantJoined");
    }
    assert_eq!(recv_json(&mut b).await["type"], "participantJoined");

    let text = "hi <script>alert(1)</script> & \"bye\"\nline two";
    send_json(&mut a, &json!({"type": "chat", "text": text})).await;
    for ws in [&mut b, &mut c] {
        let msg = recv_json(ws).await;
        assert_eq!(msg["type"], "chat", "{msg}");
        assert_eq!(msg["text"], text);
        assert_eq!(msg["name"], "Alice");
        assert_eq!(msg["from"], a_joined["peerId"]);
    }
    // The sender gets no echo; another room hears nothing.
    ping_pong(&mut a).await;
    ping_pong(&mut other_room).await;

    // The display name is relayed as given, too.
    send_json(&mut c, &json!({"type": "chat", "text": "x"})).await;
    let msg = recv_json(&mut a).await;
    assert_eq!(msg["name"], "<img src=x onerror=alert(1)>");
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chat_is_refused_and_counted() {
    let server = start_server().await;
    let mut a = connect(server.http_addr).await;
    let mut b = connect(server.http_addr).await;

    send_json(&mut a, &json!({"type": "chat", "text": "early"})).await;
    expect_error(&mut a, "not_joined").await;
    join(&mut a, "chat-limits", "Alice").await;
    join(&mut b, "chat-limits", "Bob").await;
    assert_eq!(recv_json(&mut a).await["type"], "participantJoined");

    // 4 KiB exactly passes; one byte more does not.
    send_json(&mut a, &json!({"type": "chat", "text": "a".repeat(4096)})).await;
    assert_eq!(
        recv_json(&mut b).await["text"].as_str().unwrap().len(),
        4096
    );
    send_json(&mut a, &json!({"type": "chat", "text": "a".repeat(4097)})).await;
    let err = expect_error(&mut a, "chat_too_long").await;
    assert!(err["message"].as_str().unwrap().contains("4096"));
    send_json(&mut a, &json!({"type": "chat", "text": "  \n "})).await;
    expect_error(&mut a, "bad_chat").await;
    send_json(&mut a, &json!({"type": "chat", "text": "bell\u{7}"})).await;
    expect_error(&mut a, "bad_chat").await;
    send_json(&mut a, &json!({"type": "chat", "text": 5})).await;
    expect_error(&mut a, "bad_json").await;

    // A flood: a burst gets through, the rest is refused. Every reply to
    // the 40 chats comes before the pong.
    let mut limited = 0;
    for i in 0..40 {
        send_json(&mut a, &json!({"type": "chat", "text": format!("m{i}")})).await;
    }
    ping_pong_counting(&mut a, &mut limited).await;
    let delivered = 40 - limited;
    assert!(delivered <= 12, "{delivered} of 40 delivered");
    for _ in 0..delivered {
        assert_eq!(recv_json(&mut b).await["type"], "chat");
    }
    ping_pong(&mut b).await;
    let text = metrics(server.http_addr).await;
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="rate_limited"}"#),
        Some(f64::from(limited))
    );
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="chat_too_long"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, r#"sfu_ws_errors_total{code="bad_chat"}"#),
        Some(2.0)
    );
    stop_server(server).await;
}

/// Sends `ping` and reads until `pong`, counting `rate_limited` errors.
async fn ping_pong_counting(ws: &mut Ws, limited: &mut u32) {
    send_json(ws, &json!({"type": "ping"})).await;
    loop {
        let msg = recv_json(ws).await;
        match msg["type"].as_str().unwrap() {
            "pong" => return,
            "error" => {
                assert_eq!(msg["code"], "rate_limited", "{msg}");
                *limited += 1;
            }
            other => panic!("unexpected {other}: {msg}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_track_source_validate_input() {
    let server = start_server().await;
    let mut a = connect(server.http_addr).await;
    send_json(
        &mut a,
        &json!({"type": "mute", "trackId": "x", "muted": true}),
    )
    .await;
    expect_error(&mut a, "not_joined").await;
    join(&mut a, "mute-room", "Alice").await;
    for bad in ["", "has space", &"x".repeat(129)] {
        send_json(
            &mut a,
            &json!({"type": "mute", "trackId": bad, "muted": true}),
        )
        .await;
        expect_error(&mut a, "bad_track").await;
        send_json(
            &mut a,
            &json!({"type": "trackSource", "trackId": bad, "source": "screen"}),
        )
        .await;
        expect_error(&mut a, "bad_track").await;
    }
    send_json(
        &mut a,
        &json!({"type": "trackSource", "trackId": "x", "source": "tv"}),
    )
    .await;
    expect_error(&mut a, "bad_json").await;
    send_json(
        &mut a,
        &json!({"type": "mute", "trackId": "x", "muted": "yes"}),
    )
    .await;
    expect_error(&mut a, "bad_json").await;
    // A track not published yet may be muted (it starts muted) and labelled.
    send_json(
        &mut a,
        &json!({"type": "mute", "trackId": "mic-1", "muted": true}),
    )
    .await;
    send_json(
        &mut a,
        &json!({"type": "trackSource", "trackId": "screen-1", "source": "screen"}),
    )
    .await;
    ping_pong(&mut a).await;
    // A flood of mutes is limited.
    let mut limited = 0;
    for _ in 0..60 {
        send_json(
            &mut a,
            &json!({"type": "mute", "trackId": "mic-1", "muted": true}),
        )
        .await;
    }
    ping_pong_counting(&mut a, &mut limited).await;
    assert!(limited >= 30, "{limited} of 60 mutes limited");
    stop_server(server).await;
}
