//! WHIP (RFC 9725) and WHEP: standard WebRTC ingest and egress over plain
//! HTTP, so that OBS, GStreamer and WHEP players work without our web
//! client.
//!
//! - `POST /whip/{room}`: an SDP offer in (`application/sdp`), `201
//!   Created` with the answer, a `Location` and an `ETag`. The publisher
//!   joins the room as a participant named after its token and its tracks
//!   are forwarded like anyone's. It is never subscribed to anything.
//! - `POST /whep/{room}[?participant=<name or p<n>>]`: a viewer. It
//!   receives on the sections it offered (`sfu/src/core/viewer.rs`), fed by
//!   the chosen participant or by the room's active speaker, switching
//!   without renegotiation.
//! - `PATCH` on the resource: trickle ICE and ICE restart
//!   (`application/trickle-ice-sdpfrag`); `DELETE` ends it;
//!   `OPTIONS` says what is allowed (and, with a token, the ICE servers).
//!
//! Every refusal has its status (docs/signaling.md) and is counted in
//! `sfu_whip_rejections_total{endpoint,status}`.

mod resource;
mod routes;
pub mod sdp;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry as Prometheus};
use sfu::core::{CoreError, Permissions};
use sfu::worker::WorkerError;

pub use resource::{Registry, Resource};
pub use routes::{routes, RequestRate, WhepQuery};

use routes::Body;

use crate::auth::{AuthError, Claims};
use crate::limits::{ClientIp, Limit};
use crate::protocol::{validate_name, validate_room, IceServer};
use crate::AppState;

/// `Accept-Patch` (RFC 5789).
pub(super) const ACCEPT_PATCH: HeaderName = HeaderName::from_static("accept-patch");
/// `Accept-Post` (W3C LDP).
pub(super) const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");

/// Ingest or egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/whip`: a publisher.
    Whip,
    /// `/whep`: a viewer.
    Whep,
}

impl Endpoint {
    /// The path segment and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Whip => "whip",
            Endpoint::Whep => "whep",
        }
    }
}

/// A refusal: its status, a plain-text reason, extra headers.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
    headers: Vec<(HeaderName, String)>,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// The WHIP/WHEP sessions and their metrics.
pub struct Whip {
    /// Live sessions.
    pub registry: Registry,
    /// Requests per client address.
    rate: RequestRate,
    sessions: IntGaugeVec,
    created: IntCounterVec,
    ended: IntCounterVec,
    rejections: IntCounterVec,
}

/// Statuses a refusal can have, registered up front.
const STATUSES: [u16; 12] = [400, 401, 403, 404, 409, 412, 413, 415, 422, 429, 500, 503];
/// Why sessions end.
const END_REASONS: [&str; 4] = ["deleted", "connection_lost", "removed", "shutdown"];

impl Whip {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Prometheus) -> Self {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("metric names are unique");
            metric
        };
        let whip = Self {
            registry: Registry::default(),
            rate: RequestRate::default(),
            sessions: gauge(
                "sfu_whip_sessions",
                "Live WHIP (publisher) and WHEP (viewer) sessions",
                &["endpoint"],
            ),
            created: counter(
                "sfu_whip_sessions_created_total",
                "WHIP and WHEP sessions created",
                &["endpoint"],
            ),
            ended: counter(
                "sfu_whip_sessions_ended_total",
                "WHIP and WHEP sessions ended, by reason",
                &["endpoint", "reason"],
            ),
            rejections: counter(
                "sfu_whip_rejections_total",
                "WHIP and WHEP requests refused, by HTTP status",
                &["endpoint", "status"],
            ),
        };
        for endpoint in [Endpoint::Whip, Endpoint::Whep] {
            let e = endpoint.as_str();
            whip.sessions.with_label_values(&[e]);
            whip.created.with_label_values(&[e]);
            for reason in END_REASONS {
                whip.ended.with_label_values(&[e, reason]);
            }
            for status in STATUSES {
                whip.rejections.with_label_values(&[e, &status.to_string()]);
            }
        }
        whip
    }

    fn opened(&self, endpoint: Endpoint) {
        self.sessions.with_label_values(&[endpoint.as_str()]).inc();
        self.created.with_label_values(&[endpoint.as_str()]).inc();
    }

    fn closed(&self, endpoint: Endpoint, reason: &str) {
        self.sessions.with_label_values(&[endpoint.as_str()]).dec();
        self.ended
            .with_label_values(&[endpoint.as_str(), reason])
            .inc();
    }

    /// The response, counting a refusal by its status.
    pub(super) fn respond(
        &self,
        endpoint: Endpoint,
        result: Result<Response, HttpError>,
    ) -> Response {
        match result {
            Ok(response) => response,
            Err(err) => {
                let status = err.status.as_u16().to_string();
                self.rejections
                    .with_label_values(&[endpoint.as_str(), &status])
                    .inc();
                tracing::info!(endpoint = endpoint.as_str(), %status, reason = %err.message, "WHIP/WHEP request refused");
                err.into_response()
            }
        }
    }
}

/// Verifies the request's `Authorization: Bearer` token for `room`: 401
/// when missing or invalid, 403 for another room.
pub(super) fn bearer_claims(
    state: &AppState,
    room: &str,
    headers: &HeaderMap,
) -> Result<Claims, HttpError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let result = match token {
        Some(token) => state.security.auth.keys.verify_for_room(token, room),
        None => Err(AuthError::Missing),
    };
    result.map_err(|err| {
        state.security.auth_failed(&err);
        let status = match err {
            AuthError::WrongRoom(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        HttpError::new(status, err.to_string())
            .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"sfu\"")
    })
}

/// The body as UTF-8 text within `--max-sdp-bytes` (413 above it).
pub(super) fn read_body(state: &AppState, body: Body) -> Result<String, HttpError> {
    let max = state.limits.max_sdp_bytes;
    let bytes = body.map_err(|e| {
        state.limit_hit(Limit::SdpSize);
        HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, e.body_text())
    })?;
    if bytes.len() > max {
        state.limit_hit(Limit::SdpSize);
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {} bytes exceeds the limit of {max} bytes",
                bytes.len()
            ),
        ));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "the body is not UTF-8 text"))
}

/// The status of a Worker failure.
pub(super) fn worker_error(err: WorkerError) -> HttpError {
    match err {
        WorkerError::Busy => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            .with_header(header::RETRY_AFTER, "1"),
        WorkerError::Gone => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
        WorkerError::Core(CoreError::BadSdp(m)) => HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("the SDP cannot be applied: {m}"),
        ),
        WorkerError::Core(CoreError::BadCandidate(m)) => {
            HttpError::new(StatusCode::BAD_REQUEST, format!("bad ICE candidate: {m}"))
        }
        WorkerError::Core(CoreError::UnknownPeer) => {
            HttpError::new(StatusCode::NOT_FOUND, "the session has ended")
        }
        WorkerError::Core(other) => {
            tracing::warn!(err = %other, "WHIP/WHEP request failed");
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// `Link` header values for the ICE servers (RFC 9725 §4.6).
pub(super) fn ice_server_links(servers: &[IceServer]) -> Vec<String> {
    let quote = |s: &str| s.replace(['"', '\\'], "");
    servers
        .iter()
        .flat_map(|server| {
            server.urls.iter().map(move |url| {
                let mut link = format!("<{url}>; rel=\"ice-server\"");
                if let (Some(u), Some(c)) = (&server.username, &server.credential) {
                    link.push_str(&format!(
                        "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                        quote(u),
                        quote(c)
                    ));
                }
                link
            })
        })
        .collect()
}

/// `POST /whip/{room}` and `POST /whep/{room}`.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    endpoint: Endpoint,
    Path(room): Path<String>,
    query: Option<WhepQuery>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = create_inner(&state, endpoint, room, query, ip, &headers, body).await;
    state.whip.respond(endpoint, result)
}

async fn create_inner(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    room: String,
    query: Option<WhepQuery>,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !sdp::is_content_type(content_type, sdp::SDP) {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the offer must be sent as {}", sdp::SDP),
        )
        .with_header(ACCEPT_POST, sdp::SDP));
    }
    validate_room(&room).map_err(|m| HttpError::new(StatusCode::NOT_FOUND, m))?;
    let claims = bearer_claims(state, &room, headers)?;
    let (needed, may) = match endpoint {
        Endpoint::Whip => ("canPublish", claims.grants.can_publish),
        Endpoint::Whep => ("canSubscribe", claims.grants.can_subscribe),
    };
    if !may {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("this token has no {needed} grant"),
        ));
    }
    if state.draining.load(Ordering::Relaxed) {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server is draining and takes no new sessions",
        )
        .with_header(header::RETRY_AFTER, "5"));
    }
    let offer = read_body(state, body)?;
    sdp::check_offer(&offer).map_err(|e| match e {
        sdp::OfferError::Malformed(m) => HttpError::new(StatusCode::BAD_REQUEST, m),
        sdp::OfferError::NoCodec => HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the offer has no audio or video codec this server supports (Opus, G.722, PCMU, PCMA, VP8, VP9, H.264, AV1, H.265)",
        ),
    })?;
    if let Err((limit, message)) = state.limits.check_sdp(&offer, true) {
        state.limit_hit(limit);
        return Err(HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, message));
    }
    let sending = crate::limits::sending_media_sections(&offer);
    if endpoint == Endpoint::Whip && sending == 0 {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the offer sends no audio or video (sections must be sendonly or sendrecv, with a=msid or a=ssrc)",
        ));
    }
    let video = sfu::core::viewer::receiving_sections(&offer, sfu::core::MediaKind::Video);
    let audio = sfu::core::viewer::receiving_sections(&offer, sfu::core::MediaKind::Audio);
    if endpoint == Endpoint::Whep && video + audio == 0 {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the offer receives no audio or video (sections must be recvonly or sendrecv)",
        ));
    }
    if endpoint == Endpoint::Whip && state.whip.registry.publishes(&room, &claims.sub) {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            format!(
                "{} already publishes into room {room} over WHIP; DELETE that session first",
                claims.sub
            ),
        ));
    }
    let exists = match state.worker.rooms().await {
        Ok(rooms) => rooms.iter().any(|r| r.name == room),
        Err(err) => return Err(worker_error(err)),
    };
    if !exists && !claims.grants.room_create {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("room {room} does not exist and this token may not create it"),
        ));
    }
    let max = state.limits.max_connections_per_ip;
    let slot = match ip.map(|ip| state.ip_connections.acquire(ip, max)) {
        Some(None) => {
            state.limit_hit(Limit::ConnectionsPerIp);
            return Err(HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many sessions from your address (limit {max})"),
            )
            .with_header(header::RETRY_AFTER, "5"));
        }
        Some(slot) => slot,
        None => None,
    };
    let peers = state.worker.snapshot().await.map_err(worker_error)?.peers;
    if peers >= state.limits.max_peers as u64 {
        state.limit_hit(Limit::Peers);
        return Err(HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this server is full ({} participants)",
                state.limits.max_peers
            ),
        )
        .with_header(header::RETRY_AFTER, "5"));
    }
    let name = [claims.name.trim(), claims.sub.trim()]
        .into_iter()
        .find(|n| validate_name(n).is_ok())
        .unwrap_or(endpoint.as_str())
        .to_owned();
    let permissions = Permissions {
        publish: endpoint == Endpoint::Whip,
        subscribe: endpoint == Endpoint::Whep,
    };
    let viewer = (endpoint == Endpoint::Whep).then(|| {
        query
            .and_then(|q| q.participant)
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
    });
    let (joined, signals) = state
        .worker
        .join_session(room.clone(), name, permissions, viewer)
        .await
        .map_err(worker_error)?;
    let peer = joined.peer_id;
    let resource = resource::create(
        state,
        endpoint,
        &room,
        &claims.sub,
        (peer, signals),
        offer.clone(),
        slot,
    );
    match negotiate(state, &resource, offer).await {
        Ok(answer) => {
            let mut response = (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, sdp::SDP.to_owned()),
                    (header::LOCATION, resource.location()),
                    (header::ETAG, resource.etag()),
                    (ACCEPT_PATCH, sdp::SDPFRAG.to_owned()),
                ],
                answer,
            )
                .into_response();
            for link in ice_server_links(&crate::ice_servers_for(state, &peer.to_string())) {
                if let Ok(value) = HeaderValue::from_str(&link) {
                    response.headers_mut().append(header::LINK, value);
                }
            }
            tracing::info!(endpoint = endpoint.as_str(), %room, %peer, "WHIP/WHEP session created");
            Ok(response)
        }
        Err(err) => {
            if state.whip.registry.take(&resource.id).is_some() {
                state.whip.closed(endpoint, "deleted");
            }
            let _ = state.worker.leave(peer).await;
            Err(err)
        }
    }
}

/// Hands the offer to the Worker and waits for its answer.
async fn negotiate(
    state: &Arc<AppState>,
    resource: &Arc<Resource>,
    offer: String,
) -> Result<String, HttpError> {
    let answer = resource.expect_answer();
    state
        .worker
        .offer(resource.peer, offer)
        .await
        .map_err(worker_error)?;
    tokio::time::timeout(resource::ANSWER_TIMEOUT, answer)
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the media server did not answer",
            )
        })
}
