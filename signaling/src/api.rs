//! The admin REST API under `/api` (docs/api.md): list rooms, one
//! participant's live figures, kick a participant, close a room, drain the
//! server. Every request needs `Authorization: Bearer <token>`: the admin
//! token (`--admin-token`), which may do everything, or an access token
//! with the `roomAdmin` grant, which may list, look up, kick and close only
//! in its own room (never drain).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use sfu::core::{ParticipantStats, PeerId, RoomStats};
use sfu::worker::WorkerError;

use crate::AppState;

/// The `/api` routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/rooms", get(list_rooms))
        .route("/api/rooms/{room}", delete(close_room))
        .route(
            "/api/rooms/{room}/participants/{peer}",
            get(participant).delete(kick),
        )
        .route("/api/drain", post(drain))
        .route("/api/cluster", get(cluster_status))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterBody {
    /// This node's id.
    node: String,
    nodes: Vec<crate::cluster::NodeRecord>,
    rooms: Vec<ClusterRoom>,
}

#[derive(Serialize)]
struct ClusterRoom {
    room: String,
    node: String,
}

/// `GET /api/cluster`: the registered nodes and the room directory, read
/// from Redis now.
async fn cluster_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<ClusterBody>, ApiError> {
    authorize(&state, &headers)?.whole_server("the cluster view")?;
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_clustered",
            "this server is a single node (no --redis-url)",
        ));
    };
    let unavailable = |err: redis::RedisError| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            format!("Redis: {err}"),
        )
    };
    let directory = cluster.directory();
    let nodes = directory.nodes().await.map_err(unavailable)?;
    let rooms = directory.rooms().await.map_err(unavailable)?;
    Ok(Json(ClusterBody {
        node: cluster.node_id().to_owned(),
        nodes,
        rooms: rooms
            .into_iter()
            .map(|(room, node)| ClusterRoom { room, node })
            .collect(),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DrainBody {
    draining: bool,
    /// Whether this request started it (false: it was already draining).
    started: bool,
    deadline_secs: u64,
}

/// `POST /api/drain`: stop taking joins, tell clients to migrate, and exit
/// once the calls here end or the drain timeout is over.
async fn drain(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<DrainBody>), ApiError> {
    authorize(&state, &headers)?.whole_server("draining")?;
    let started = state.start_drain().await;
    Ok((
        StatusCode::ACCEPTED,
        Json(DrainBody {
            draining: true,
            started,
            deadline_secs: state.drain_timeout.as_secs(),
        }),
    ))
}

/// A failed request: its status and a JSON body `{"error", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ApiErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ApiErrorBody {
            error: self.code,
            message: &self.message,
        });
        if self.status == StatusCode::UNAUTHORIZED {
            return (self.status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (self.status, body).into_response()
    }
}

impl From<WorkerError> for ApiError {
    fn from(err: WorkerError) -> Self {
        match err {
            WorkerError::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                err.to_string(),
            ),
            WorkerError::Gone => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                err.to_string(),
            ),
            WorkerError::Core(e) => Self::not_found(e.to_string()),
        }
    }
}

/// Compares without an early exit, so timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What an authorized request may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// The admin token: everything.
    All,
    /// A `roomAdmin` access token: this room only.
    Room(String),
}

impl Scope {
    /// `Ok` when this scope covers `room`, else 403.
    fn covers(&self, room: &str) -> Result<(), ApiError> {
        match self {
            Scope::All => Ok(()),
            Scope::Room(own) if own == room => Ok(()),
            Scope::Room(own) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token administers room {own:?} only"),
            )),
        }
    }

    /// `Ok` for the admin token only, else 403.
    fn whole_server(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Scope::All => Ok(()),
            Scope::Room(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{what} needs the admin token; a room admin token is not enough"),
            )),
        }
    }
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Scope, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if same(token.as_bytes(), state.admin_token.as_bytes()) => Ok(Scope::All),
        // Three dot-separated parts: an access token.
        Some(token) if token.matches('.').count() == 2 => {
            let claims = state.security.auth.keys.verify(token).map_err(|err| {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
            })?;
            if !claims.grants.room_admin {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this access token has no roomAdmin grant",
                ));
            }
            Ok(Scope::Room(claims.room))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong admin token",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing 'Authorization: Bearer <admin token or roomAdmin access token>'",
        )),
    }
}

fn parse_peer(peer: &str) -> Result<PeerId, ApiError> {
    peer.strip_prefix('p')
        .and_then(|n| n.parse().ok())
        .map(PeerId)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_peer_id",
                format!("{peer:?} is not a peer id like p7"),
            )
        })
}

/// The participant `peer` of `room`, or 404.
async fn find(state: &AppState, room: &str, peer: &str) -> Result<ParticipantStats, ApiError> {
    let id = parse_peer(peer)?;
    match state.worker.participant(id).await? {
        Some(p) if p.room == room => Ok(p),
        _ => Err(ApiError::not_found(format!(
            "no participant {peer} in room {room:?}"
        ))),
    }
}

/// A participant in API responses.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJson {
    peer_id: String,
    name: String,
    room: String,
    joined_seconds: f64,
    connected: bool,
    transport: Option<&'static str>,
    tracks: Vec<TrackJson>,
    subscriptions: usize,
    bitrate_in_bps: f64,
    bitrate_out_bps: f64,
    loss: Option<f64>,
    rtt_ms: Option<f64>,
    jitter_ms: Option<f64>,
    bandwidth_estimate_bps: Option<f64>,
    /// The simulcast state of each video it receives.
    video: Vec<VideoJson>,
    /// A Peer of a node-to-node link (cluster cascading), not a person
    /// connected here.
    relay: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VideoJson {
    track_id: String,
    /// The rid forwarded now (`""` without simulcast), or null.
    layer: Option<String>,
    /// The rid it is switching to or keeps, or null for no video.
    target_layer: Option<String>,
    switches: u64,
    paused: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TrackJson {
    track_id: String,
    kind: &'static str,
}

impl From<&ParticipantStats> for ParticipantJson {
    fn from(p: &ParticipantStats) -> Self {
        Self {
            peer_id: p.peer_id.to_string(),
            name: p.name.clone(),
            room: p.room.clone(),
            joined_seconds: p.joined_secs,
            connected: p.connected,
            transport: p.quality.transport.map(|t| t.as_str()),
            tracks: p
                .tracks
                .iter()
                .map(|(id, kind)| TrackJson {
                    track_id: id.to_string(),
                    kind: kind.as_str(),
                })
                .collect(),
            subscriptions: p.subscriptions,
            bitrate_in_bps: p.quality.bitrate_in,
            bitrate_out_bps: p.quality.bitrate_out,
            loss: p.quality.loss,
            rtt_ms: p.quality.rtt.map(|s| s * 1000.0),
            jitter_ms: p.quality.jitter.map(|s| s * 1000.0),
            bandwidth_estimate_bps: p.quality.bandwidth_estimate,
            relay: p.relay,
            video: p
                .video
                .iter()
                .map(|v| VideoJson {
                    track_id: v.track_id.to_string(),
                    layer: v.layer.clone(),
                    target_layer: v.target.clone(),
                    switches: v.switches,
                    paused: v.paused,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct RoomJson {
    name: String,
    participants: Vec<ParticipantJson>,
}

impl From<&RoomStats> for RoomJson {
    fn from(r: &RoomStats) -> Self {
        Self {
            name: r.name.clone(),
            participants: r.participants.iter().map(ParticipantJson::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct RoomsJson {
    rooms: Vec<RoomJson>,
}

async fn list_rooms(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let scope = authorize(&state, &headers)?;
    let rooms = state.worker.rooms().await?;
    Ok(Json(RoomsJson {
        rooms: rooms
            .iter()
            .filter(|r| scope.covers(&r.name).is_ok())
            .map(RoomJson::from)
            .collect(),
    })
    .into_response())
}

async fn participant(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((room, peer)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?.covers(&room)?;
    let p = find(&state, &room, &peer).await?;
    Ok(Json(ParticipantJson::from(&p)).into_response())
}

async fn kick(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((room, peer)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?.covers(&room)?;
    let p = find(&state, &room, &peer).await?;
    state.worker.kick(p.peer_id).await?;
    tracing::info!(peer = %p.peer_id, room, "kicked by admin");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize)]
struct ClosedJson {
    removed: usize,
}

async fn close_room(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?.covers(&room)?;
    match state.worker.close_room(room.clone()).await? {
        0 => Err(ApiError::not_found(format!("no room {room:?}"))),
        removed => {
            tracing::info!(room, removed, "room closed by admin");
            Ok(Json(ClosedJson { removed }).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }

    #[test]
    fn peer_ids_parse() {
        assert_eq!(parse_peer("p12").ok(), Some(PeerId(12)));
        assert!(parse_peer("12").is_err());
        assert!(parse_peer("px").is_err());
    }
}
