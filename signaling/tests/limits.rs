//! Each signaling limit, against an in-process server: the client gets an
//! error naming it (or a refused or closed connection), the refusal is
//! counted in `sfu_limit_rejections_total{limit}`, and other clients are
//! unaffected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// An offer that sends audio and video (two tracks), padded to `pad` extra
/// attribute lines.
fn sending_offer(pad: usize) -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=msid:s a\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendrecv\r\na=msid:s v\r\n",
    );
    for i in 0..pad {
        sdp.push_str(&format!("a=x-pad:{i}\r\n"));
    }
    sdp
}

fn rejections(text: &str, limit: &str) -> f64 {
    metric(
        text,
        &format!("sfu_limit_rejections_total{{limit=\"{limit}\"}}"),
    )
    .unwrap_or_else(|| panic!("no rejection series for {limit} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_exists_before_any_rejection() {
    let server = start_server().await;
    let text = metrics(server.http_addr).await;
    for limit in [
        "message_size",
        "message_rate",
        "connections_per_ip",
        "peers",
        "tracks_per_peer",
        "sdp_size",
        "sdp_lines",
        "candidates",
        "join_timeout",
    ] {
        assert_eq!(rejections(&text, limit), 0.0, "{limit}");
    }
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_is_configurable() {
    let server = start_server_with(|c| c.max_message_bytes = 2048).await;
    let mut ws = connect(server.http_addr).await;
    let text = json!({"type": "join", "room": "r", "name": "x".repeat(3000)}).to_string();
    send_text(&mut ws, text).await;
    let (frame, before) = expect_close(&mut ws).await;
    assert_eq!(u16::from(frame.expect("close frame").code), 1009);
    assert_eq!(before[0]["code"], "too_big", "{before:?}");
    assert!(
        before[0]["message"].as_str().unwrap().contains("2048"),
        "{before:?}"
    );
    assert_eq!(
        rejections(&metrics(server.http_addr).await, "message_size"),
        1.0
    );
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_ten_thousand_messages_is_dropped_and_closed_while_others_go_on() {
    let server = start_server().await;
    let addr = server.http_addr;
    // A participant of another room, who must not notice.
    let mut other = connect(addr).await;
    join(&mut other, "calm", "Calm").await;

    let mut flood = connect(addr).await;
    join(&mut flood, "noisy", "Noisy").await;
    let ping = json!({"type": "ping"}).to_string();
    let started = std::time::Instant::now();
    let mut sent = 0;
    for _ in 0..10_000 {
        // The server closes the socket part-way; sends after that fail.
        if flood.send(Message::text(ping.clone())).await.is_err() {
            break;
        }
        sent += 1;
    }
    let (frame, before) = timeout(Duration::from_secs(20), expect_close(&mut flood))
        .await
        .expect("the flooding socket is closed");
    let frame = frame.expect("close frame");
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    assert_eq!(frame.reason.as_str(), "message flood");
    let pongs = before.iter().filter(|m| m["type"] == "pong").count();
    let warnings: Vec<_> = before
        .iter()
        .filter(|m| m["code"] == "rate_limited")
        .collect();
    // The burst (4 × 50 per second, the join included) passes, and 50 a
    // second more as the bucket refills; the rest is dropped with one
    // warning a second, not one per message.
    let secs = started.elapsed().as_secs_f64();
    let most = 200.0 + 50.0 * secs.ceil();
    assert!(
        pongs >= 150 && (pongs as f64) <= most,
        "{pongs} pongs in {secs:.1} s"
    );
    assert!(
        !warnings.is_empty() && warnings.len() as f64 <= secs.ceil() + 1.0,
        "{} warnings in {secs:.1} s",
        warnings.len()
    );
    let text = metrics(addr).await;
    let dropped = rejections(&text, "message_rate");
    assert!(dropped >= 2000.0, "{dropped} dropped of {sent} sent");

    // The other room's participant is still served at once.
    ping_pong(&mut other).await;
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_limited() {
    let server = start_server_with(|c| c.max_connections_per_ip = 2).await;
    let addr = server.http_addr;
    let a = connect(addr).await;
    let _b = connect(addr).await;
    let url = format!("ws://{addr}/ws");
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect_err("a third connection is refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), 429);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("limit 2"), "{body}");
        }
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    assert_eq!(rejections(&metrics(addr).await, "connections_per_ip"), 1.0);
    // A closed connection gives its slot back.
    drop(a);
    let mut c = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            c = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.is_some(), "the freed slot is reused");
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_per_node_are_limited() {
    let server = start_server_with(|c| c.max_peers = 1).await;
    let mut a = connect(server.http_addr).await;
    join(&mut a, "r1", "A").await;
    let mut b = connect(server.http_addr).await;
    send_json(
        &mut b,
        &json!({"type": "join", "room": "r2", "name": "B", "token": common::token("r2", "b")}),
    )
    .await;
    let err = expect_error(&mut b, "server_full").await;
    assert!(
        err["message"].as_str().unwrap().contains("1 participants"),
        "{err}"
    );
    assert_eq!(rejections(&metrics(server.http_addr).await, "peers"), 1.0);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracks_sdp_size_and_lines_are_limited() {
    let server = start_server_with(|c| {
        c.max_tracks_per_peer = 1;
        c.max_sdp_bytes = 2000;
        c.max_sdp_lines = 40;
    })
    .await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "sdp", "Sam").await;

    send_json(&mut ws, &json!({"type": "offer", "sdp": sending_offer(0)})).await;
    let err = expect_error(&mut ws, "limit_exceeded").await;
    assert!(
        err["message"].as_str().unwrap().contains("sends 2 tracks"),
        "{err}"
    );
    send_json(&mut ws, &json!({"type": "offer", "sdp": sending_offer(30)})).await;
    let err = expect_error(&mut ws, "limit_exceeded").await;
    assert!(err["message"].as_str().unwrap().contains("lines"), "{err}");
    let big = format!("{}a=x-long:{}\r\n", sending_offer(0), "y".repeat(2000));
    send_json(&mut ws, &json!({"type": "answer", "sdp": big})).await;
    let err = expect_error(&mut ws, "limit_exceeded").await;
    assert!(err["message"].as_str().unwrap().contains("bytes"), "{err}");

    let text = metrics(server.http_addr).await;
    assert_eq!(rejections(&text, "tracks_per_peer"), 1.0);
    assert_eq!(rejections(&text, "sdp_lines"), 1.0);
    assert_eq!(rejections(&text, "sdp_size"), 1.0);
    // The socket is still usable.
    ping_pong(&mut ws).await;
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_per_offer_are_limited() {
    let server = start_server_with(|c| c.max_candidates_per_offer = 2).await;
    let mut ws = connect(server.http_addr).await;
    join(&mut ws, "cands", "Cat").await;
    let candidate = json!({"type": "candidate", "candidate": {
        "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0}});
    for _ in 0..5 {
        send_json(&mut ws, &candidate).await;
    }
    ping_pong_after_errors(&mut ws).await;
    let text = metrics(server.http_addr).await;
    assert_eq!(rejections(&text, "candidates"), 3.0);
    stop_server(server).await;
}

/// Sends `ping` and reads up to its `pong`; asserts exactly one
/// `limit_exceeded` (about candidates) came before.
async fn ping_pong_after_errors(ws: &mut Ws) {
    send_json(ws, &json!({"type": "ping"})).await;
    let mut limit_errors = 0;
    loop {
        let msg = recv_json(ws).await;
        if msg["type"] == "pong" {
            break;
        }
        if msg["code"] == "limit_exceeded" {
            assert!(
                msg["message"].as_str().unwrap().contains("candidates"),
                "{msg}"
            );
            limit_errors += 1;
        }
    }
    assert_eq!(limit_errors, 1, "one error per offer, not per candidate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_joins_is_closed() {
    let server = start_server_with(|c| c.join_timeout_secs = 1).await;
    let mut idle = connect(server.http_addr).await;
    let mut joined = connect(server.http_addr).await;
    join(&mut joined, "r", "J").await;
    let (frame, before) = timeout(Duration::from_secs(5), expect_close(&mut idle))
        .await
        .expect("closed within 5 s");
    assert_eq!(u16::from(frame.expect("close frame").code), 4008);
    assert_eq!(before.last().unwrap()["code"], "join_timeout", "{before:?}");
    // The joined socket outlives the timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ping_pong(&mut joined).await;
    assert_eq!(
        rejections(&metrics(server.http_addr).await, "join_timeout"),
        1.0
    );
    stop_server(server).await;
}
