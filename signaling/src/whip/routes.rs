//! The WHIP and WHEP routes: thin handlers over `create` (mod.rs) and the
//! resource's `PATCH` and `DELETE` (`resource.rs`), `OPTIONS`, a request
//! rate limit per client address, and CORS for players on other origins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{options, post};
use axum::Router;

use super::{
    create, ice_server_links, resource, sdp, Endpoint, HttpError, ACCEPT_PATCH, ACCEPT_POST,
};
use crate::limits::{ClientIp, Limit};
use crate::ratelimit::RateLimiter;
use crate::AppState;

/// The routes, with CORS for the origins `/ws` and `/api` accept.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/whip/{room}", post(whip_post).options(whip_options))
        .route("/whep/{room}", post(whep_post).options(whep_options))
        .route(
            "/whip/{room}/{id}",
            options(resource_options)
                .patch(whip_patch)
                .delete(whip_delete),
        )
        .route(
            "/whep/{room}/{id}",
            options(resource_options)
                .patch(whep_patch)
                .delete(whep_delete),
        )
        .layer(axum::middleware::from_fn_with_state(state, cors))
}

/// CORS, for browser players on the origins `/ws` and `/api` accept: a
/// preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
/// here; other requests get `Access-Control-Allow-Origin` and the headers
/// a player needs to read (`Location`, `ETag`, `Link`). Requests without
/// an allowed `Origin` pass untouched, so `OPTIONS` without one reaches
/// its handler (tower-http's layer would answer every `OPTIONS` itself).
async fn cors(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| state.security.origins.check(o, host).is_ok())
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        (
            StatusCode::NO_CONTENT,
            [
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    "OPTIONS, POST, PATCH, DELETE",
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "authorization, content-type, if-match",
                ),
                (header::ACCESS_CONTROL_MAX_AGE, "600"),
            ],
        )
            .into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("location, etag, link, accept-patch"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// Requests from one address beyond `--max-messages-per-sec` (bursts of
/// four times that) are refused with 429.
#[derive(Default)]
pub struct RequestRate {
    buckets: Mutex<HashMap<IpAddr, RateLimiter>>,
}

/// Addresses remembered at most; past that, every bucket starts over (a
/// flood from that many addresses is beyond what a per-address limit stops).
const MAX_TRACKED: usize = 10_000;

impl RequestRate {
    fn admit(&self, state: &AppState, ip: Option<IpAddr>) -> Result<(), HttpError> {
        let Some(ip) = ip else {
            return Ok(());
        };
        let limits = &state.limits;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            buckets.clear();
        }
        let bucket = buckets.entry(ip).or_insert_with(|| {
            RateLimiter::new(limits.message_burst, f64::from(limits.messages_per_sec))
        });
        if bucket.allow() {
            return Ok(());
        }
        let wait = bucket.retry_after().as_secs().max(1);
        drop(buckets);
        state.limit_hit(Limit::MessageRate);
        Err(HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests from your address (limit {} a second)",
                limits.messages_per_sec
            ),
        )
        .with_header(header::RETRY_AFTER, wait.to_string()))
    }
}

/// The refusal of a request over the rate, counted.
fn over_rate(state: &AppState, endpoint: Endpoint, ip: Option<IpAddr>) -> Option<Response> {
    match state.whip.rate.admit(state, ip) {
        Ok(()) => None,
        Err(err) => Some(state.whip.respond(endpoint, Err(err))),
    }
}

pub(super) type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

async fn whip_post(
    state: State<Arc<AppState>>,
    room: Path<String>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_rate(&state, Endpoint::Whip, ip.0) {
        return refused;
    }
    create(state, Endpoint::Whip, room, None, ip, headers, body).await
}

async fn whep_post(
    state: State<Arc<AppState>>,
    room: Path<String>,
    Query(query): Query<WhepQuery>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_rate(&state, Endpoint::Whep, ip.0) {
        return refused;
    }
    create(state, Endpoint::Whep, room, Some(query), ip, headers, body).await
}

async fn whip_options(state: State<Arc<AppState>>, headers: HeaderMap) -> Response {
    allow(state, headers).await
}

async fn whep_options(state: State<Arc<AppState>>, headers: HeaderMap) -> Response {
    allow(state, headers).await
}

async fn whip_patch(
    State(state): State<Arc<AppState>>,
    path: Path<(String, String)>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_rate(&state, Endpoint::Whip, ip) {
        return refused;
    }
    resource::patch(state, Endpoint::Whip, path, headers, body).await
}

async fn whep_patch(
    State(state): State<Arc<AppState>>,
    path: Path<(String, String)>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = over_rate(&state, Endpoint::Whep, ip) {
        return refused;
    }
    resource::patch(state, Endpoint::Whep, path, headers, body).await
}

async fn whip_delete(
    State(state): State<Arc<AppState>>,
    path: Path<(String, String)>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = over_rate(&state, Endpoint::Whip, ip) {
        return refused;
    }
    resource::delete(state, Endpoint::Whip, path, headers).await
}

async fn whep_delete(
    State(state): State<Arc<AppState>>,
    path: Path<(String, String)>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = over_rate(&state, Endpoint::Whep, ip) {
        return refused;
    }
    resource::delete(state, Endpoint::Whep, path, headers).await
}

/// The query string of `POST /whep/{room}`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct WhepQuery {
    /// Watch this participant (display name or `p<n>` id) rather than the
    /// active speaker.
    pub participant: Option<String>,
}

/// `OPTIONS /whip/{room}`: the methods and content type accepted; with a
/// valid token (and not a CORS preflight), the ICE servers as `Link`s.
async fn allow(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut response = (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, "OPTIONS, POST"), (ACCEPT_POST, sdp::SDP)],
    )
        .into_response();
    let preflight = headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let identity = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.security.auth.keys.verify(t.trim()).ok())
        .map(|c| c.sub);
    if let (false, Some(identity)) = (preflight, identity) {
        for link in ice_server_links(&crate::ice_servers_for(&state, &identity)) {
            if let Ok(value) = HeaderValue::from_str(&link) {
                response.headers_mut().append(header::LINK, value);
            }
        }
    }
    response
}

/// `OPTIONS` on a session URL.
async fn resource_options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "OPTIONS, PATCH, DELETE"),
            (ACCEPT_PATCH, sdp::SDPFRAG),
        ],
    )
        .into_response()
}
