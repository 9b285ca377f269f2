//! WHIP and WHEP over HTTP against an in-process server: every documented
//! status (docs/signaling.md), the resource's PATCH (trickle and ICE
//! restart) and DELETE, the ICE server `Link`s, the limits, and a session
//! whose client never connects being freed by the consent timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use signaling::auth::Grants;

const FINGERPRINT: &str = "sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3B:21:AC:9E:6A:1B:4C:3F:2E:9B:0D:1A";

/// A browser-like offer: Opus and VP8, each `direction`; sending sections
/// carry a track (`a=msid`, `a=ssrc`).
fn offer(direction: &str, ufrag: &str) -> String {
    let track = |mid: &str, ssrc: u32| {
        if direction == "recvonly" {
            String::new()
        } else {
            format!("a=msid:s t{mid}\r\na=ssrc:{ssrc} cname:test\r\n")
        }
    };
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
         a=fingerprint:{FINGERPRINT}\r\na=setup:actpass\r\na=mid:0\r\na={direction}\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n{}\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
         a=fingerprint:{FINGERPRINT}\r\na=setup:actpass\r\na=mid:1\r\na={direction}\r\na=rtcp-mux\r\n\
         a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n{}",
        track("0", 1001),
        track("1", 1002),
    )
}

/// An offer whose only codec is one the SFU does not support.
const CODECLESS: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
    a=msid:s v\r\na=rtpmap:97 MP2T/90000\r\n";

fn publisher_token(room: &str, identity: &str) -> String {
    token_with(
        room,
        identity,
        Grants {
            can_publish: true,
            room_create: true,
            ..Grants::default()
        },
    )
}

fn viewer_token(room: &str, identity: &str) -> String {
    token_with(
        room,
        identity,
        Grants {
            can_subscribe: true,
            room_create: true,
            ..Grants::default()
        },
    )
}

async fn post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> HttpResponse {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    http_send(addr, "POST", path, &headers, body.as_bytes()).await
}

async fn patch(
    addr: SocketAddr,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    http_send(addr, "PATCH", path, &headers, body.as_bytes()).await
}

async fn delete(addr: SocketAddr, path: &str, token: &str) -> HttpResponse {
    let bearer = format!("Bearer {token}");
    http_send(addr, "DELETE", path, &[("Authorization", &bearer)], b"").await
}

fn rejections(text: &str, endpoint: &str, status: u16) -> f64 {
    metric(
        text,
        &format!("sfu_whip_rejections_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_statuses_patch_and_delete() {
    let server = start_server_with(|c| {
        c.turn_url = vec!["turn:127.0.0.1:3478".to_owned()];
        c.turn_username = Some("u".to_owned());
        c.turn_password = Some("p".to_owned());
    })
    .await;
    let addr = server.http_addr;
    let token = publisher_token("whip-room", "obs");
    let sdp = offer("sendonly", "ufrag1");

    // 415: not application/sdp.
    let r = post(addr, "/whip/whip-room", Some(&token), "text/plain", &sdp).await;
    assert_eq!(r.status, 415, "{}", r.text());
    // 401: no token, or a bad one.
    let r = post(addr, "/whip/whip-room", None, "application/sdp", &sdp).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some());
    let r = post(
        addr,
        "/whip/whip-room",
        Some("nope"),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    // 403: a token without canPublish, or for another room.
    let viewer = viewer_token("whip-room", "viewer");
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&viewer),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("canPublish"), "{}", r.text());
    let elsewhere = publisher_token("other-room", "obs");
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&elsewhere),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // 400: not SDP.
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&token),
        "application/sdp",
        "hello",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&token),
        "application/sdp",
        "{\"sdp\":1}",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // 422: no codec we support; or nothing sent.
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&token),
        "application/sdp",
        CODECLESS,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let recvonly = offer("recvonly", "ufrag1");
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&token),
        "application/sdp",
        &recvonly,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());

    // 201 with the answer, Location, ETag and the ICE servers.
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&token),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").expect("Location").to_owned();
    assert!(location.starts_with("/whip/whip-room/"), "{location}");
    let etag = r.header("etag").expect("ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let answer = r.text();
    assert!(answer.starts_with("v=0"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    let link = r.header("link").expect("Link");
    assert!(
        link.contains("<turn:127.0.0.1:3478>; rel=\"ice-server\"")
            && link.contains("username=\"u\"")
            && link.contains("credential=\"p\""),
        "{link}"
    );

    // 409: the same identity publishing twice into the room.
    let r = post(
        addr,
        "/whip/whip-room",
        Some(&token),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // The publisher is in the room under its identity.
    let rooms = http_request(
        addr,
        "GET",
        "/api/rooms",
        &[("Authorization", "Bearer test-admin-token")],
    )
    .await;
    assert!(
        rooms.text().contains("\"name\":\"obs\""),
        "{}",
        rooms.text()
    );

    // PATCH: content type, 404, 412, 400, trickle (204), ICE restart (200).
    let frag = "a=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";
    let sdpfrag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let r = patch(
        addr,
        &location,
        &token,
        &[("Content-Type", "application/sdp")],
        frag,
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let unknown = "/whip/whip-room/00000000000000000000000000000000";
    let r = patch(addr, unknown, &token, &[sdpfrag], frag).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let stranger = publisher_token("whip-room", "someone-else");
    let r = patch(addr, &location, &stranger, &[sdpfrag], frag).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = patch(
        addr,
        &location,
        &token,
        &[sdpfrag, ("If-Match", "\"stale\"")],
        frag,
    )
    .await;
    assert_eq!(r.status, 412, "{}", r.text());
    let r = patch(addr, &location, &token, &[sdpfrag], "v=0\r\ngarbage\r\n").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = patch(
        addr,
        &location,
        &token,
        &[sdpfrag, ("If-Match", &etag)],
        frag,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let restart = "a=ice-ufrag:ufrag2\r\na=ice-pwd:zyxwvutsrqponmlkjihgfedc\r\n";
    let r = patch(
        addr,
        &location,
        &token,
        &[sdpfrag, ("If-Match", "*")],
        restart,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/trickle-ice-sdpfrag")
    );
    assert!(r.text().contains("a=ice-ufrag:"), "{}", r.text());
    assert!(r.text().contains("a=candidate:"), "{}", r.text());
    let new_etag = r.header("etag").expect("a new ETag");
    assert_ne!(new_etag, etag);

    // OPTIONS: what is allowed; the ICE servers only with a token.
    let r = http_request(addr, "OPTIONS", "/whip/whip-room", &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    assert!(r.header("link").is_none());
    let bearer = format!("Bearer {token}");
    let r = http_request(
        addr,
        "OPTIONS",
        "/whip/whip-room",
        &[("Authorization", &bearer)],
    )
    .await;
    assert!(r.header("link").is_some_and(|l| l.contains("ice-server")));

    // DELETE: 200, then 404; the room is empty again.
    let r = delete(addr, &location, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = delete(addr, &location, &token).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = patch(addr, &location, &token, &[sdpfrag], frag).await;
    assert_eq!(r.status, 404, "{}", r.text());

    let text = wait_for_metric(addr, "sfu_peers", 0.0).await;
    assert_eq!(
        metric(&text, "sfu_whip_sessions{endpoint=\"whip\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "sfu_whip_sessions_ended_total{endpoint=\"whip\",reason=\"deleted\"}"
        ),
        Some(1.0)
    );
    for (status, n) in [(400, 3.0), (401, 2.0), (403, 3.0), (404, 3.0), (409, 1.0)] {
        assert_eq!(rejections(&text, "whip", status), n, "status {status}");
    }
    assert_eq!(rejections(&text, "whip", 415), 2.0);
    assert_eq!(rejections(&text, "whip", 412), 1.0);
    assert_eq!(rejections(&text, "whip", 422), 2.0);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_answers_on_the_offered_sections() {
    let server = start_server().await;
    let addr = server.http_addr;
    let token = viewer_token("whep-room", "player");
    let sdp = offer("recvonly", "ufrag1");
    // 403 without canSubscribe.
    let publisher = publisher_token("whep-room", "obs");
    let r = post(
        addr,
        "/whep/whep-room",
        Some(&publisher),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post(
        addr,
        "/whep/whep-room",
        Some(&token),
        "application/sdp",
        CODECLESS,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());

    let r = post(
        addr,
        "/whep/whep-room?participant=nobody",
        Some(&token),
        "application/sdp",
        &sdp,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let answer = r.text();
    // Both sections send, with our SSRC, on the client's own m-lines.
    assert_eq!(answer.matches("a=sendonly").count(), 2, "{answer}");
    assert!(
        answer.contains("a=mid:0") && answer.contains("a=mid:1"),
        "{answer}"
    );
    assert!(answer.contains("a=ssrc:"), "{answer}");
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with("/whep/whep-room/"), "{location}");
    // An ICE restart on a viewer: 200 with the server's credentials.
    let restart = "a=ice-ufrag:ufrag9\r\na=ice-pwd:zyxwvutsrqponmlkjihgfedc\r\n";
    let r = patch(
        addr,
        &location,
        &token,
        &[
            ("Content-Type", "application/trickle-ice-sdpfrag"),
            ("If-Match", "*"),
        ],
        restart,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("a=ice-pwd:"), "{}", r.text());
    // A WHEP session is not a WHIP one.
    let wrong = location.replace("/whep/", "/whip/");
    assert_eq!(delete(addr, &wrong, &token).await.status, 404);
    assert_eq!(delete(addr, &location, &token).await.status, 200);
    assert_eq!(delete(addr, &location, &token).await.status, 404);
    wait_for_metric(addr, "sfu_peers", 0.0).await;
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_connects_is_freed_by_the_consent_timeout() {
    let server = start_server_with(|c| c.consent_timeout_secs = 2).await;
    let addr = server.http_addr;
    let token = publisher_token("consent-room", "obs");
    let r = post(
        addr,
        "/whip/consent-room",
        Some(&token),
        "application/sdp",
        &offer("sendonly", "u1"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let viewer = viewer_token("consent-room", "player");
    let r = post(
        addr,
        "/whep/consent-room",
        Some(&viewer),
        "application/sdp",
        &offer("recvonly", "u2"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let location = r.header("location").unwrap().to_owned();
    assert_eq!(
        metric(&metrics(addr).await, "sfu_peers"),
        Some(2.0),
        "both joined"
    );
    // Nobody sends an ICE check: both are removed, and their resources go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let text = metrics(addr).await;
        let live = metric(&text, "sfu_whip_sessions{endpoint=\"whip\"}").unwrap_or(-1.0)
            + metric(&text, "sfu_whip_sessions{endpoint=\"whep\"}").unwrap_or(-1.0);
        if live == 0.0 && metric(&text, "sfu_peers") == Some(0.0) {
            let lost = |e: &str| {
                metric(
                    &text,
                    &format!(
                        "sfu_whip_sessions_ended_total{{endpoint=\"{e}\",reason=\"connection_lost\"}}"
                    ),
                )
            };
            assert_eq!(lost("whip"), Some(1.0));
            assert_eq!(lost("whep"), Some(1.0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions still live: {live}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(delete(addr, &location, &viewer).await.status, 404);
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_draining() {
    let server = start_server_with(|c| {
        c.max_peers = 1;
        c.max_sdp_bytes = 4096;
    })
    .await;
    let addr = server.http_addr;
    let big = format!("{}{}", offer("sendonly", "u1"), "a=x-pad:0\r\n".repeat(500));
    let r = post(
        addr,
        "/whip/limits",
        Some(&publisher_token("limits", "a")),
        "application/sdp",
        &big,
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    let r = post(
        addr,
        "/whip/limits",
        Some(&publisher_token("limits", "a")),
        "application/sdp",
        &offer("sendonly", "u1"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The node is full (--max-peers 1).
    let r = post(
        addr,
        "/whep/limits",
        Some(&viewer_token("limits", "b")),
        "application/sdp",
        &offer("recvonly", "u2"),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    // Draining: 503.
    let drain = http_request(
        addr,
        "POST",
        "/api/drain",
        &[("Authorization", "Bearer test-admin-token")],
    )
    .await;
    assert_eq!(drain.status, 202);
    let r = post(
        addr,
        "/whep/limits",
        Some(&viewer_token("limits", "b")),
        "application/sdp",
        &offer("recvonly", "u2"),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let text = metrics(addr).await;
    assert_eq!(rejections(&text, "whip", 413), 1.0);
    assert_eq!(rejections(&text, "whep", 429), 1.0);
    assert_eq!(rejections(&text, "whep", 503), 1.0);
    assert_eq!(
        metric(&text, "sfu_limit_rejections_total{limit=\"sdp_size\"}"),
        Some(1.0)
    );
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_for_players_and_a_request_rate_per_address() {
    let server = start_server_with(|c| c.max_messages_per_sec = 1).await;
    let addr = server.http_addr;
    let origin = format!("http://{addr}");
    // A preflight from an allowed (here: same) origin.
    let r = http_request(
        addr,
        "OPTIONS",
        "/whep/cors-room",
        &[
            ("Origin", &origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PATCH") && m.contains("DELETE")));
    // The answer's headers are readable by the page.
    let token = viewer_token("cors-room", "player");
    let bearer = format!("Bearer {token}");
    let r = http_send(
        addr,
        "POST",
        "/whep/cors-room",
        &[
            ("Origin", &origin),
            ("Content-Type", "application/sdp"),
            ("Authorization", &bearer),
        ],
        offer("recvonly", "u1").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(
        exposed.contains("location") && exposed.contains("etag") && exposed.contains("link"),
        "{exposed}"
    );
    // Another origin gets no CORS headers.
    let r = http_request(
        addr,
        "OPTIONS",
        "/whep/cors-room",
        &[
            ("Origin", "https://elsewhere.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());

    // --max-messages-per-sec 1 (bursts of 4): a quick run of requests from
    // one address is cut off with 429 and Retry-After.
    let unknown = "/whep/cors-room/00000000000000000000000000000000";
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(delete(addr, unknown, &token).await.status);
    }
    assert!(statuses.contains(&404), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = delete(addr, unknown, &token).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let text = metrics(addr).await;
    assert!(rejections(&text, "whep", 429) >= 1.0);
    assert!(
        metric(&text, "sfu_limit_rejections_total{limit=\"message_rate\"}").unwrap_or(0.0) >= 1.0
    );
    stop_server(server).await;
}
