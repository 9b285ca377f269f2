//! WHIP and WHEP sessions ("resources", RFC 9725 §4): the registry of live
//! ones, the task that follows each one's Worker signals, and `PATCH`
//! (trickle ICE and ICE restart) and `DELETE` on their URLs.
//!
//! A resource ends when it is deleted, when the Worker removes its Peer
//! (ICE consent timed out, the connection failed, an administrator kicked
//! it: the Worker then closes its signal channel) or when the server shuts
//! down. Whichever comes first takes it out of the registry, so the gauge
//! and the Peer are freed exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sfu::core::{PeerId, Signal};
use sfu::worker::RTCIceCandidateInit;
use tokio::sync::{mpsc, oneshot};

use super::sdp::{self, is_content_type};
use super::{Endpoint, HttpError};
use crate::limits::{IpSlot, Limit};
use crate::AppState;

/// How long the Worker may take to answer an offer.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One live WHIP or WHEP session.
pub struct Resource {
    /// Its id, the last segment of its URL.
    pub id: String,
    /// WHIP or WHEP.
    pub endpoint: Endpoint,
    /// Its room.
    pub room: String,
    /// The token identity that created it.
    pub identity: String,
    /// Its Peer on the Worker.
    pub peer: PeerId,
    /// Mutable parts.
    state: Mutex<ResourceState>,
    /// Candidates trickled since the last offer.
    candidates: AtomicU32,
    /// Holds its place under `--max-connections-per-ip`.
    _slot: Option<IpSlot>,
}

struct ResourceState {
    /// The current entity tag (changes with each ICE restart).
    etag: String,
    /// The client's last offer (an ICE restart re-applies it with new
    /// credentials).
    offer: String,
    /// Waiting for the Worker's next answer.
    waiter: Option<oneshot::Sender<String>>,
}

impl Resource {
    fn lock(&self) -> MutexGuard<'_, ResourceState> {
        // A panic while holding this lock leaves plain data behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current entity tag, quoted.
    pub fn etag(&self) -> String {
        self.lock().etag.clone()
    }

    /// Its URL path.
    pub fn location(&self) -> String {
        format!("/{}/{}/{}", self.endpoint.as_str(), self.room, self.id)
    }

    /// Arms the waiter for the Worker's next answer.
    pub(super) fn expect_answer(&self) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.lock().waiter = Some(tx);
        rx
    }
}

/// The live resources, by id.
#[derive(Default)]
pub struct Registry {
    resources: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Resource>>> {
        self.resources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resource `id`, if live.
    pub fn get(&self, id: &str) -> Option<Arc<Resource>> {
        self.lock().get(id).cloned()
    }

    /// Takes resource `id` out; `None` if someone else already did.
    pub fn take(&self, id: &str) -> Option<Arc<Resource>> {
        self.lock().remove(id)
    }

    /// Whether `identity` already publishes into `room` over WHIP.
    pub fn publishes(&self, room: &str, identity: &str) -> bool {
        self.lock()
            .values()
            .any(|r| r.endpoint == Endpoint::Whip && r.room == room && r.identity == identity)
    }

    /// How many are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Registers a new resource for `peer` and starts following its signals.
pub(super) fn create(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    room: &str,
    identity: &str,
    (peer, signals): (PeerId, mpsc::Receiver<Signal>),
    offer: String,
    slot: Option<IpSlot>,
) -> Arc<Resource> {
    let resource = Arc::new(Resource {
        id: crate::random_token(),
        endpoint,
        room: room.to_owned(),
        identity: identity.to_owned(),
        peer,
        state: Mutex::new(ResourceState {
            etag: new_etag(),
            offer,
            waiter: None,
        }),
        candidates: AtomicU32::new(0),
        _slot: slot,
    });
    state
        .whip
        .registry
        .lock()
        .insert(resource.id.clone(), resource.clone());
    state.whip.opened(endpoint);
    tokio::spawn(follow(state.clone(), resource.clone(), signals));
    resource
}

fn new_etag() -> String {
    format!("\"{}\"", &crate::random_token()[..16])
}

/// Follows a resource's Worker signals until its Peer is gone: hands
/// answers to whoever waits for one, and ends the resource when the Worker
/// removes the Peer (its channel then closes).
async fn follow(
    state: Arc<AppState>,
    resource: Arc<Resource>,
    mut signals: mpsc::Receiver<Signal>,
) {
    let mut shutdown = state.shutdown.clone();
    let reason = loop {
        tokio::select! {
            signal = signals.recv() => match signal {
                Some(Signal::Answer { sdp }) => {
                    if let Some(waiter) = resource.lock().waiter.take() {
                        let _ = waiter.send(sdp);
                    }
                }
                Some(Signal::Closed { .. }) => break "connection_lost",
                Some(Signal::Removed { .. }) => break "removed",
                // Room events: a WHIP or WHEP client has no channel for them.
                Some(_) => {}
                None => break "connection_lost",
            },
            _ = shutdown.wait_for(|stopping| *stopping) => break "shutdown",
        }
    };
    if state.whip.registry.take(&resource.id).is_some() {
        tracing::info!(endpoint = resource.endpoint.as_str(), room = %resource.room, peer = %resource.peer, reason, "WHIP/WHEP session ended");
        state.whip.closed(resource.endpoint, reason);
        if reason == "shutdown" {
            let _ = state.worker.leave(resource.peer).await;
        }
    }
}

/// The resource named by a `PATCH` or `DELETE` URL, checked against the
/// request's token: 401 without a valid one, 403 for another identity, 404
/// if there is no such resource.
fn authorized(
    state: &AppState,
    endpoint: Endpoint,
    room: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<Arc<Resource>, HttpError> {
    let claims = super::bearer_claims(state, room, headers)?;
    let resource = state
        .whip
        .registry
        .get(id)
        .filter(|r| r.endpoint == endpoint && r.room == room)
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "no such session (it ended, or never existed)",
            )
        })?;
    if claims.sub != resource.identity && !claims.grants.room_admin {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "this session belongs to another identity",
        ));
    }
    Ok(resource)
}

/// `DELETE /whip/{room}/{id}` (and `/whep/...`): ends the session.
pub(super) async fn delete(
    state: Arc<AppState>,
    endpoint: Endpoint,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let resource = authorized(&state, endpoint, &room, &id, &headers)?;
        if state.whip.registry.take(&resource.id).is_none() {
            return Err(HttpError::new(StatusCode::NOT_FOUND, "no such session (it ended)"));
        }
        state.whip.closed(endpoint, "deleted");
        match state.worker.leave(resource.peer).await {
            Ok(()) | Err(sfu::worker::WorkerError::Core(sfu::core::CoreError::UnknownPeer)) => {}
            Err(err) => tracing::warn!(%err, peer = %resource.peer, "leave failed"),
        }
        tracing::info!(endpoint = endpoint.as_str(), %room, peer = %resource.peer, "WHIP/WHEP session deleted");
        Ok(StatusCode::OK.into_response())
    }
    .await;
    state.whip.respond(endpoint, result)
}

/// `PATCH /whip/{room}/{id}` (and `/whep/...`): trickled candidates (204),
/// or an ICE restart (200 with the SFU's new credentials).
pub(super) async fn patch(
    state: Arc<AppState>,
    endpoint: Endpoint,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: super::Body,
) -> Response {
    let result = patch_inner(&state, endpoint, &room, &id, &headers, body).await;
    state.whip.respond(endpoint, result)
}

async fn patch_inner(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    room: &str,
    id: &str,
    headers: &HeaderMap,
    body: super::Body,
) -> Result<Response, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_content_type(content_type, sdp::SDPFRAG) {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("PATCH takes {}", sdp::SDPFRAG),
        )
        .with_header(super::ACCEPT_PATCH, sdp::SDPFRAG));
    }
    let resource = authorized(state, endpoint, room, id, headers)?;
    let body = super::read_body(state, body)?;
    let fragment =
        sdp::parse_fragment(&body).map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e))?;
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let current_ufrag = sdp::attribute(&resource.lock().offer, "ice-ufrag").map(str::to_owned);
    let restart = matches!((&fragment.ufrag, &current_ufrag), (Some(new), Some(old)) if new != old);
    if restart {
        if if_match.is_some_and(|m| m.trim() != "*" && m.trim() != resource.etag()) {
            return Err(HttpError::new(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not match the session's ETag",
            ));
        }
        return ice_restart(state, &resource, &fragment).await;
    }
    if if_match.is_some_and(|m| m.trim() != "*" && m.trim() != resource.etag()) {
        return Err(HttpError::new(
            StatusCode::PRECONDITION_FAILED,
            "If-Match does not match the session's ETag",
        ));
    }
    let max = state.limits.max_candidates_per_offer;
    for candidate in fragment.candidates {
        if resource.candidates.fetch_add(1, Ordering::Relaxed) >= max {
            state.limit_hit(Limit::Candidates);
            return Err(HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("more than {max} ICE candidates for one offer"),
            ));
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.mid,
            sdp_mline_index: candidate.mline_index,
            username_fragment: fragment.ufrag.clone(),
            url: None,
        };
        state
            .worker
            .candidate(resource.peer, init)
            .await
            .map_err(super::worker_error)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Re-applies the client's offer with its new ICE credentials and answers
/// with the SFU's (`rtc` keeps the same local ones: ARCHITECTURE.md,
/// webrtc-rs note 15).
async fn ice_restart(
    state: &Arc<AppState>,
    resource: &Arc<Resource>,
    fragment: &sdp::Fragment,
) -> Result<Response, HttpError> {
    let (Some(ufrag), Some(pwd)) = (&fragment.ufrag, &fragment.pwd) else {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "an ICE restart needs a=ice-ufrag and a=ice-pwd",
        ));
    };
    let offer = sdp::with_ice_credentials(&resource.lock().offer, ufrag, pwd);
    let answer = resource.expect_answer();
    state
        .worker
        .offer(resource.peer, offer.clone())
        .await
        .map_err(super::worker_error)?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the media server did not answer",
            )
        })?;
    let etag = new_etag();
    {
        let mut s = resource.lock();
        s.offer = offer;
        s.etag = etag.clone();
    }
    resource.candidates.store(0, Ordering::Relaxed);
    for candidate in &fragment.candidates {
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate.clone(),
            sdp_mid: candidate.mid.clone(),
            sdp_mline_index: candidate.mline_index,
            username_fragment: Some(ufrag.clone()),
            url: None,
        };
        state
            .worker
            .candidate(resource.peer, init)
            .await
            .map_err(super::worker_error)?;
    }
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, sdp::SDPFRAG)],
        sdp::answer_fragment(&answer),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    tracing::info!(peer = %resource.peer, "ICE restart");
    Ok(response)
}
