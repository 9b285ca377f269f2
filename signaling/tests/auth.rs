//! Access tokens at every door: `/ws` entry points refuse missing, expired,
//! early, forged, foreign-key, wrong-room and `alg: none` tokens with the
//! reason; grants gate publishing, chat and room creation; the admin API
//! takes `roomAdmin` tokens for their own room; `/api/token` exists only in
//! dev mode; `/ws` refuses foreign origins; and `sfu-server token` mints
//! tokens that verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use signaling::auth::{Claims, Grants, Keys, TokenRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn request(room: &str, grants: Grants) -> TokenRequest {
    TokenRequest {
        room: room.to_owned(),
        identity: fresh_identity(),
        name: String::new(),
        grants,
        ttl: Duration::from_secs(600),
    }
}

/// Joins with `token` and expects `unauthorized` whose message contains
/// `reason`, then the socket closing with 4003.
async fn refused(addr: SocketAddr, room: &str, token: &str, reason: &str) {
    let mut ws = connect_bare(addr).await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": room, "name": "X", "token": token}),
    )
    .await;
    let err = expect_error(&mut ws, "unauthorized").await;
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(reason),
        "{message:?} should say {reason:?}"
    );
    let (frame, _) = expect_close(&mut ws).await;
    assert_eq!(u16::from(frame.expect("a close frame").code), 4003);
}

#[tokio::test]
async fn bad_tokens_are_refused_at_ws_with_the_reason() {
    let server = start_server().await;
    let addr = server.http_addr;
    let keys = keys();
    let grants = Grants::dev_default();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = keys.mint_at(&request("r", grants), hour_ago).unwrap();
    refused(addr, "r", &expired, "expired").await;
    let later = SystemTime::now() + Duration::from_secs(3600);
    let early = keys.mint_at(&request("r", grants), later).unwrap();
    refused(addr, "r", &early, "not valid yet").await;
    let forged = Keys::new(API_KEY, b"not the secret".to_vec())
        .mint(&request("r", grants))
        .unwrap();
    refused(addr, "r", &forged, "bad signature").await;
    let foreign = Keys::new("other-key", API_SECRET.as_bytes().to_vec())
        .mint(&request("r", grants))
        .unwrap();
    refused(addr, "r", &foreign, "unknown API key").await;
    refused(
        addr,
        "r",
        &token("elsewhere", "a"),
        "token is for room elsewhere",
    )
    .await;
    refused(addr, "r", "not-a-jwt", "malformed").await;

    // Hand-crafted `alg: none`: no signature at all.
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"iss": API_KEY, "sub": "eve", "room": "r", "exp": 4_000_000_000u64,
                        "grants": {"canPublish": true, "roomAdmin": true}});
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    );
    refused(addr, "r", &none, "\"none\" is not allowed").await;

    let text = metrics(addr).await;
    for reason in [
        "expired",
        "not_yet_valid",
        "bad_signature",
        "unknown_key",
        "wrong_room",
        "malformed",
        "algorithm",
    ] {
        let series = format!("sfu_auth_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&text, &series), Some(1.0), "{series}");
    }
    stop_server(server).await;
}

#[tokio::test]
async fn production_mode_needs_a_token_and_has_no_minter() {
    let server = start_server_with(|c| c.dev = false).await;
    assert!(!server.dev_mode);
    let addr = server.http_addr;
    for entry in [
        json!({"type": "join", "room": "r", "name": "X"}),
        json!({"type": "register", "name": "X"}),
        json!({"type": "resume", "token": "whatever"}),
    ] {
        let mut ws = connect_bare(addr).await;
        send_json(&mut ws, &entry).await;
        let err = expect_error(&mut ws, "unauthorized").await;
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("token is required"),
            "{err}"
        );
        expect_close(&mut ws).await;
    }
    let text = metrics(addr).await;
    assert_eq!(
        metric(&text, r#"sfu_auth_failures_total{reason="missing"}"#),
        Some(3.0)
    );
    let (status, body) =
        post_json(addr, "/api/token", &json!({"room": "r", "identity": "i"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_dev_mode");
    // A valid token on the URL serves `join`.
    let url = format!("ws://{addr}/ws?access_token={}", token("url-room", "u"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "url-room", "name": "U"}),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["type"], "joined");
    stop_server(server).await;
}

#[tokio::test]
async fn dev_mode_mints_tokens_that_join() {
    // No key configured: a random per-process secret.
    let server = signaling::start(signaling::Config::loopback(ADMIN_TOKEN))
        .await
        .unwrap();
    assert!(server.dev_mode);
    let addr = server.http_addr;
    let (status, body) = post_json(
        addr,
        "/api/token",
        &json!({"room": "dev-room", "identity": "d1", "name": "Dee"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'), "{body}");
    let token = body["token"].as_str().unwrap();
    let claims = server.keys().verify(token).unwrap();
    assert_eq!(claims.grants, Grants::dev_default());
    assert_eq!(claims.name, "Dee");
    let mut ws = connect_bare(addr).await;
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "dev-room", "name": "X", "token": token}),
    )
    .await;
    let joined = recv_json(&mut ws).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    // The token's name wins over the message's.
    let mut other = connect(addr).await;
    let (_, body) = post_json(
        addr,
        "/api/token",
        &json!({"room": "dev-room", "identity": "d2"}),
    )
    .await;
    send_json(
        &mut other,
        &json!({"type": "join", "room": "dev-room", "name": "Two", "token": body["token"]}),
    )
    .await;
    let joined = recv_json(&mut other).await;
    assert_eq!(joined["participants"][0]["name"], "Dee", "{joined}");
    stop_server(server).await;
}

#[tokio::test]
async fn grants_gate_publishing_chat_and_room_creation() {
    let server = start_server().await;
    let addr = server.http_addr;
    let watch_only = Grants {
        can_subscribe: true,
        room_create: true,
        ..Grants::default()
    };
    let mut ws = connect_bare(addr).await;
    let t = token_with("g", "viewer", watch_only);
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "g", "name": "V", "token": t}),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["type"], "joined");
    let sending = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
                   a=sendrecv\r\na=msid:stream cam\r\na=rtpmap:96 VP8/90000\r\n";
    send_json(&mut ws, &json!({"type": "offer", "sdp": sending})).await;
    let err = expect_error(&mut ws, "forbidden").await;
    assert_eq!(err["message"], "this token may not publish");
    assert_eq!(err["request"], "offer");
    send_json(&mut ws, &json!({"type": "chat", "text": "hi"})).await;
    expect_error(&mut ws, "forbidden").await;
    ping_pong(&mut ws).await;

    // roomCreate: the first into a room needs it, later ones do not.
    let no_create = Grants {
        can_publish: true,
        can_subscribe: true,
        ..Grants::default()
    };
    let mut ws = connect_bare(addr).await;
    let t = token_with("fresh", "f", no_create);
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "fresh", "name": "F", "token": t}),
    )
    .await;
    expect_error(&mut ws, "room_not_found").await;
    let t = token_with("g", "f", no_create);
    send_json(
        &mut ws,
        &json!({"type": "join", "room": "g", "name": "F", "token": t}),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["type"], "joined");
    stop_server(server).await;
}

#[tokio::test]
async fn call_ids_follow_the_token_identity() {
    let server = start_server().await;
    let addr = server.http_addr;
    let mut ws = connect_bare(addr).await;
    send_json(
        &mut ws,
        &json!({"type": "register", "name": "A", "token": token("calls", "ABCDEFG")}),
    )
    .await;
    let reply = recv_json(&mut ws).await;
    assert_eq!(reply["callId"], "ABCDEFG", "{reply}");
    let mut ws = connect_bare(addr).await;
    send_json(
        &mut ws,
        &json!({"type": "register", "callId": "HJKMNPQ", "token": token("calls", "RSTUVWX")}),
    )
    .await;
    let err = expect_error(&mut ws, "unauthorized").await;
    assert!(
        err["message"].as_str().unwrap().contains("RSTUVWX"),
        "{err}"
    );
    stop_server(server).await;
}

#[tokio::test]
async fn room_admin_tokens_are_scoped_to_their_room() {
    let server = start_server().await;
    let addr = server.http_addr;
    let mut a = connect(addr).await;
    let a_peer = join(&mut a, "room-a", "A").await["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = connect(addr).await;
    let b_peer = join(&mut b, "room-b", "B").await["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_a = token_with(
        "room-a",
        "admin",
        Grants {
            room_admin: true,
            ..Grants::default()
        },
    );
    let bearer = format!("Bearer {admin_a}");
    let auth = [("Authorization", bearer.as_str())];
    let r = http_request(addr, "GET", "/api/rooms", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rooms: Value = serde_json::from_slice(&r.body).unwrap();
    let names: Vec<&str> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["room-a"]);
    let r = http_request(
        addr,
        "DELETE",
        &format!("/api/rooms/room-b/participants/{b_peer}"),
        &auth,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("room-a"), "{}", r.text());
    let r = http_request(addr, "POST", "/api/drain", &auth).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("admin token"), "{}", r.text());
    let r = http_request(
        addr,
        "DELETE",
        &format!("/api/rooms/room-a/participants/{a_peer}"),
        &auth,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());

    // Without roomAdmin: 403; a bad token or none: 401 with the reason.
    let plain = format!("Bearer {}", token("room-a", "someone"));
    let r = http_request(addr, "GET", "/api/rooms", &[("Authorization", &plain)]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("roomAdmin"), "{}", r.text());
    let old = keys()
        .mint_at(
            &request(
                "room-a",
                Grants {
                    room_admin: true,
                    ..Grants::default()
                },
            ),
            SystemTime::now() - Duration::from_secs(7200),
        )
        .unwrap();
    let expired = format!("Bearer {old}");
    let r = http_request(addr, "GET", "/api/rooms", &[("Authorization", &expired)]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("expired"), "{}", r.text());
    let r = http_request(addr, "GET", "/api/rooms", &[]).await;
    assert_eq!(r.status, 401);
    // The admin token still does everything.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = http_request(addr, "GET", "/api/rooms", &[("Authorization", &admin)]).await;
    assert_eq!(r.status, 200);
    stop_server(server).await;
}

#[tokio::test]
async fn foreign_origins_are_refused_at_ws() {
    let server = start_server_with(|c| {
        c.dev = false;
        c.allowed_origin = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let addr = server.http_addr;
    let upgrade = |origin: &str| {
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    match upgrade("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("not allowed"), "{body}");
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // Not in dev mode: localhost pages are foreign too.
    assert!(upgrade("http://localhost:3000").await.is_err());
    assert!(upgrade("https://app.example.com").await.is_ok());
    assert!(
        upgrade(&format!("http://{addr}")).await.is_ok(),
        "same origin"
    );
    let text = metrics(addr).await;
    assert_eq!(metric(&text, "sfu_origin_rejected_total"), Some(2.0));
    // CORS for the API: allowed origins get the header, others do not.
    let r = http_request(
        addr,
        "GET",
        "/api/rooms",
        &[("Origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = http_request(
        addr,
        "GET",
        "/api/rooms",
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    stop_server(server).await;
}

#[test]
fn token_subcommand_prints_a_token_that_verifies() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sfu-server"))
        .args([
            "token",
            "--api-key",
            "cli-key",
            "--api-secret",
            "cli-secret",
            "--room",
            "standup",
            "--identity",
            "alice",
            "--name",
            "Alice",
            "--ttl",
            "2h",
            "--subscribe",
        ])
        .env_remove("SFU_API_KEY")
        .env_remove("SFU_API_SECRET")
        .output()
        .expect("sfu-server runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims: Claims = Keys::new("cli-key", b"cli-secret".to_vec())
        .verify_for_room(token.trim(), "standup")
        .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.name.as_str()),
        ("alice", "Alice")
    );
    assert!(claims.grants.can_subscribe && !claims.grants.can_publish);
    assert!((7190..=7200).contains(&(claims.exp - claims.iat)));
    // Without a key it says what is missing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sfu-server"))
        .args(["token", "--room", "r", "--identity", "i"])
        .env_remove("SFU_API_KEY")
        .env_remove("SFU_API_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api-key"));
}

/// POSTs a JSON body; returns the status and the JSON reply.
async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status = text[9..12].parse().unwrap();
    let (_, json) = text.split_once("\r\n\r\n").unwrap();
    let json = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk: size line, data, terminator.
        json.split_once("\r\n")
            .unwrap()
            .1
            .rsplit_once("\r\n0")
            .unwrap()
            .0
    } else {
        json
    };
    (
        status,
        serde_json::from_str(json.trim()).unwrap_or(Value::Null),
    )
}
