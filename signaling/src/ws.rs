//! One participant's signaling WebSocket (`GET /ws`): parses client
//! messages, forwards them to the media Worker or the call registry, and
//! relays the Worker's signals and the registry's call events back. Bad
//! input gets an `error` message and is counted; it never ends the session
//! except for an oversized frame (close 1009). A client that stops answering
//! the server's pings is disconnected after [`IDLE_TIMEOUT`]. A joined
//! session whose socket is lost (no close frame) is parked for the resume
//! grace period (`resume.rs`) and can continue on a new socket.
//!
//! Call requests are in `ws/calling.rs`, in-room requests (chat, mute,
//! track sources) in `ws/in_room.rs`.

mod access;
mod calling;
mod cluster;
mod in_room;
mod limited;
mod resuming;
mod video;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use sfu::core::{PeerId, Signal};
use sfu::worker::WorkerError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

use crate::limits::{ClientIp, IpSlot, Limit, MessageRate, RateVerdict};
use crate::protocol::{
    parse_client_message, validate_name, validate_room, ClientMessage, ParticipantInfo,
    ServerMessage,
};
use crate::ratelimit::RateLimiter;
use crate::AppState;

/// Frames above this are refused by the WebSocket layer itself, which then
/// drops the connection without a close frame; between `MAX_MESSAGE_BYTES`
/// and this we close politely with 1009. The bound caps what one socket can
/// make the server buffer.
const TRANSPORT_LIMIT: usize = 1024 * 1024;
/// Bytes each signaling socket reads at a time. The WebSocket library's
/// default, 128 KiB allocated up front per socket, was a third of the
/// memory per connected participant; signaling messages are mostly well
/// under 4 KiB, and a larger one (an SDP offer) takes a few reads.
const READ_BUFFER: usize = 4096;
/// Close code: message too big (RFC 6455).
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: going away.
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: internal error (the media connection failed).
const CLOSE_INTERNAL: u16 = 1011;
/// Close code: an administrator removed the participant (application range).
const CLOSE_REMOVED: u16 = 4001;
/// Close code: the client stopped answering pings (application range).
const CLOSE_IDLE: u16 = 4002;
/// Close code: the client kept sending far over `--max-messages-per-sec`.
const CLOSE_POLICY: u16 = 1008;
/// Close code: no join, register or resume within `--join-timeout-secs`.
const CLOSE_JOIN_TIMEOUT: u16 = 4008;
/// How long the closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The server pings every socket this often.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// A socket that sent nothing (not even a pong) for this long is closed, so
/// a vanished client's call ends for the other party within 10 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(7);

/// Whether a read failed because a message or frame exceeded the limits.
fn is_capacity_error(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Numbers signaling connections for the logs and the call registry.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Upgrades to a signaling session.
pub async fn handler(
    ws: WebSocketUpgrade,
    ClientIp(ip): ClientIp,
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<WsQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(reason) = state.security.check_origin(&headers) {
        return (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response();
    }
    let url_token = query.access_token;
    let max = state.limits.max_connections_per_ip;
    let slot = match ip.map(|ip| state.ip_connections.acquire(ip, max)) {
        Some(None) => {
            state.limit_hit(Limit::ConnectionsPerIp);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many signaling connections from your address (limit {max})\n"),
            )
                .into_response();
        }
        Some(Some(slot)) => Some(slot),
        None => None,
    };
    ws.max_message_size(TRANSPORT_LIMIT)
        .max_frame_size(TRANSPORT_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
            // Every log line of this socket carries its connection id, and its
            // room and peer id once it has joined.
            let span = tracing::info_span!("ws", conn = id, room = Empty, peer = Empty);
            session(socket, state, id, slot, url_token).instrument(span)
        })
}

/// The query string of `/ws`.
#[derive(Debug, serde::Deserialize)]
pub struct WsQuery {
    /// An access token, for clients that cannot put it in `join`.
    access_token: Option<String>,
}

/// What the session loop does after handling a client message.
enum Next {
    Continue,
    Ping,
    Close(u16, String),
}

/// How a socket's loop ended.
enum Ending {
    /// Deliberately: the client closed, or we close with this code.
    Closed(Option<(u16, String)>),
    /// The connection broke or went silent: the session may be resumed.
    Lost(Option<(u16, String)>),
}

/// One signaling session: its socket's state, and what outlives a lost
/// socket until the client resumes it.
pub struct Session {
    state: Arc<AppState>,
    /// This socket's connection number.
    conn: u64,
    peer: Option<PeerId>,
    room: Option<String>,
    signals: Option<mpsc::Receiver<Signal>>,
    outbox: Vec<ServerMessage>,
    /// The call ID this socket holds, once registered.
    call_id: Option<String>,
    call_events: Option<mpsc::Receiver<ServerMessage>>,
    /// `register` requests.
    register_limiter: RateLimiter,
    /// `call` requests.
    call_limiter: RateLimiter,
    /// `chat` messages.
    chat_limiter: RateLimiter,
    /// `mute` and `trackSource`.
    media_limiter: RateLimiter,
    /// The client's own track ids it has muted.
    muted: HashSet<String>,
    /// `trackSource` requests waiting for their track to be published.
    pending_sources: Vec<in_room::PendingSource>,
    /// When to look the pending sources up again.
    source_retry_at: Instant,
    /// Resolved track sources, told again to each newcomer.
    sources: Vec<(String, crate::room_messages::TrackSource)>,
    /// When the client last sent anything.
    last_seen: Instant,
    /// The `type` of the request being handled, named in its errors.
    request: Option<&'static str>,
    /// ICE candidates trickled since the last offer or answer.
    candidates: u32,
    /// What a new socket presents to take this session over.
    resume_token: Option<String>,
    /// Fires when a new socket takes this session over.
    takeover: Option<oneshot::Receiver<()>>,
    /// The claims of the token this session joined its room with.
    access: Option<crate::auth::Claims>,
    /// The claims of the token it registered its call ID with.
    call_access: Option<crate::auth::Claims>,
    /// `?access_token=` of the /ws URL.
    url_token: Option<String>,
    /// Set when a request must close the socket after its reply.
    close_after: Option<(u16, String)>,
}

/// `_slot` holds this socket's place under `--max-connections-per-ip`.
async fn session(
    socket: WebSocket,
    state: Arc<AppState>,
    conn: u64,
    _slot: Option<IpSlot>,
    url_token: Option<String>,
) {
    state.metrics.ws_connections.inc();
    let opened = Instant::now();
    // Joined a room, registered a call ID or resumed, at some point.
    let mut identified = false;
    let mut rate = MessageRate::new(&state.limits);
    let mut shutdown = state.shutdown.clone();
    let mut drain = state.drain.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut s = Session::new(state.clone(), conn);
    s.url_token = url_token.filter(|t| !t.is_empty());
    // A socket that opens during a drain is told at once.
    let mut told_to_migrate = *drain.borrow_and_update();
    if told_to_migrate {
        s.tell_to_migrate();
    }
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let ending = loop {
        let next = tokio::select! {
            frame = stream.next() => {
                s.last_seen = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match rate.judge(s.last_seen.into_std()) {
                        RateVerdict::Pass => {
                            let next = s.on_text(&text).await;
                            identified |= s.peer.is_some() || s.call_id.is_some();
                            next
                        }
                        RateVerdict::Drop { warn } => s.over_rate(warn),
                        RateVerdict::Close => {
                            state.limit_hit(Limit::MessageRate);
                            break Ending::Closed(Some((CLOSE_POLICY, "message flood".to_owned())));
                        }
                    },
                    Some(Ok(Message::Binary(_))) => {
                        s.error("binary_not_supported", "binary frames are not part of the protocol");
                        Next::Continue
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Next::Continue,
                    Some(Ok(Message::Close(_))) => break Ending::Closed(None),
                    Some(Err(err)) if is_capacity_error(&err) => {
                        let reason = format!("message exceeds {} bytes", state.limits.max_message_bytes);
                        state.limit_hit(Limit::MessageSize);
                        s.error("too_big", reason.clone());
                        break Ending::Closed(Some((CLOSE_TOO_BIG, reason)));
                    }
                    // The client vanished or broke the framing: nothing to answer.
                    Some(Err(_)) | None => break Ending::Lost(None),
                }
            },
            signal = next_item(&mut s.signals) => match signal {
                Some(signal) => s.on_signal(signal),
                None => {
                    s.signals = None;
                    s.peer = None;
                    Next::Close(CLOSE_INTERNAL, "media worker dropped this session".to_owned())
                }
            },
            event = next_item(&mut s.call_events) => {
                if let Some(event) = event {
                    s.on_call_event(event);
                }
                Next::Continue
            },
            _ = tokio::time::sleep_until(s.source_retry_at), if !s.pending_sources.is_empty() => {
                s.resolve_sources().await;
                Next::Continue
            },
            _ = ping.tick() => {
                if s.last_seen.elapsed() >= IDLE_TIMEOUT {
                    break Ending::Lost(Some((CLOSE_IDLE, "no reply from the client".to_owned())));
                }
                if !identified && opened.elapsed() >= state.limits.join_timeout {
                    state.limit_hit(Limit::JoinTimeout);
                    let secs = state.limits.join_timeout.as_secs();
                    s.error("join_timeout", format!("no join, register or resume within {secs} s"));
                    break Ending::Closed(Some((CLOSE_JOIN_TIMEOUT, "join timeout".to_owned())));
                }
                Next::Ping
            },
            changed = drain.changed(), if !told_to_migrate => {
                let draining = changed.is_ok() && *drain.borrow_and_update();
                if draining {
                    told_to_migrate = true;
                    s.tell_to_migrate();
                }
                Next::Continue
            },
            _ = resuming::next_takeover(&mut s.takeover) => {
                tracing::info!("taken over by a new socket");
                break Ending::Lost(None);
            },
            _ = shutdown.changed() => break Ending::Closed(Some((CLOSE_GOING_AWAY, "server shutting down".to_owned()))),
        };
        if send_outbox(&mut sink, &mut s.outbox).await.is_err() {
            break Ending::Lost(None);
        }
        match next {
            Next::Continue => {}
            Next::Ping => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break Ending::Lost(None);
                }
            }
            Next::Close(code, reason) => break Ending::Closed(Some((code, reason))),
        }
    };
    let (lost, close) = match ending {
        Ending::Closed(close) => (false, close),
        Ending::Lost(close) => (true, close),
    };
    s.takeover = None;
    if let Some(token) = &s.resume_token {
        state.parked.detach(token);
    }
    let grace = if lost { s.resume_grace() } else { None };
    // Release the call ID first: the other party of a call learns at once.
    if grace.is_none() {
        if let Some(id) = s.call_id.take() {
            state.calls.unregister(&id, s.conn);
        }
    }
    if let Some(grace) = grace {
        // Parked before the old socket is closed: a lost socket may take
        // its full close timeout, and a new socket that resumes (after a
        // network change, say) must find the session at once. What was
        // queued goes to the new socket.
        tokio::spawn(resuming::park(s, grace).instrument(tracing::Span::current()));
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            };
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
        state.metrics.ws_connections.dec();
        return;
    }
    if send_outbox(&mut sink, &mut s.outbox).await.is_ok() {
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            };
            if sink.send(Message::Close(Some(frame))).await.is_ok() {
                // Reads (and drops) what the client still sends until its
                // own close frame: closing the TCP connection with unread
                // data would reset it, and the client would never see our
                // close code (a flooding client, say).
                let drained = async {
                    while let Some(Ok(message)) = stream.next().await {
                        if matches!(message, Message::Close(_)) {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, drained).await;
            }
        }
    }
    // Sends the close frame (ours, or the reply to the client's) and ends
    // the stream; a client that stopped reading does not hold us up.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    state.metrics.ws_connections.dec();
    s.end().await;
}

/// The next item of an optional channel; pending forever without one.
async fn next_item<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_outbox(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    outbox: &mut Vec<ServerMessage>,
) -> Result<(), axum::Error> {
    for message in outbox.drain(..) {
        sink.send(Message::Text(Utf8Bytes::from(message.to_json())))
            .await?;
    }
    Ok(())
}

impl Session {
    fn new(state: Arc<AppState>, conn: u64) -> Self {
        Self {
            state,
            conn,
            peer: None,
            room: None,
            signals: None,
            outbox: Vec::new(),
            call_id: None,
            call_events: None,
            register_limiter: RateLimiter::new(10, 1.0),
            call_limiter: RateLimiter::new(6, 1.0),
            chat_limiter: RateLimiter::new(8, 2.0),
            media_limiter: RateLimiter::new(20, 5.0),
            muted: HashSet::new(),
            pending_sources: Vec::new(),
            source_retry_at: Instant::now(),
            sources: Vec::new(),
            last_seen: Instant::now(),
            request: None,
            candidates: 0,
            resume_token: None,
            takeover: None,
            access: None,
            call_access: None,
            url_token: None,
            close_after: None,
        }
    }

    fn tell_to_migrate(&mut self) {
        if self.redirect_migrating() {
            return;
        }
        self.outbox.push(ServerMessage::Migrate {
            reason: "this server is restarting or leaving service; reconnect".to_owned(),
            deadline_secs: self.state.drain_timeout.as_secs(),
        });
    }

    /// Ends the session for good: its Peer leaves the media plane.
    async fn end(mut self) {
        if let Some(peer) = self.peer.take() {
            if let Err(err) = self.state.worker.leave(peer).await {
                tracing::debug!(%peer, %err, "leave on disconnect");
            }
        }
    }

    fn error(&mut self, code: &'static str, message: impl Into<String>) {
        self.state
            .metrics
            .ws_errors
            .with_label_values(&[code])
            .inc();
        self.outbox.push(ServerMessage::Error {
            code,
            message: message.into(),
            request: self.request,
        });
    }

    fn worker_error(&mut self, err: WorkerError) {
        use sfu::core::CoreError;
        let code = match &err {
            WorkerError::Busy => "server_busy",
            WorkerError::Gone => "internal",
            WorkerError::Core(CoreError::BadSdp(_)) => "bad_sdp",
            WorkerError::Core(CoreError::BadCandidate(_)) => "bad_candidate",
            WorkerError::Core(CoreError::NoOfferOutstanding) => "bad_sdp",
            WorkerError::Core(CoreError::UnknownPeer) => "not_joined",
            WorkerError::Core(CoreError::UnknownTrack) => "bad_track",
            WorkerError::Core(CoreError::Rtc(_)) => "internal",
            // A room that kept moving between Workers while joining.
            WorkerError::Core(CoreError::RoomElsewhere) => "server_busy",
        };
        if code == "internal" {
            tracing::warn!(%err, "request failed");
        }
        self.error(code, err.to_string());
    }

    fn on_signal(&mut self, signal: Signal) -> Next {
        let close = match &signal {
            Signal::Closed { .. } => Some((CLOSE_INTERNAL, "media connection failed")),
            Signal::Removed { .. } => Some((CLOSE_REMOVED, "removed by an administrator")),
            _ => None,
        };
        if let Signal::ParticipantJoined { .. } = &signal {
            self.retell_sources();
        }
        if let Some(message) = ServerMessage::from_signal(signal) {
            if let ServerMessage::Error { code, .. } = &message {
                self.state
                    .metrics
                    .ws_errors
                    .with_label_values(&[code])
                    .inc();
            }
            self.outbox.push(message);
        }
        if let Some((code, reason)) = close {
            self.peer = None;
            self.signals = None;
            return Next::Close(code, reason.to_owned());
        }
        Next::Continue
    }

    async fn on_text(&mut self, text: &str) -> Next {
        let max = self.state.limits.max_message_bytes;
        if text.len() > max {
            self.state.limit_hit(Limit::MessageSize);
            self.error("too_big", format!("message exceeds {max} bytes"));
            return Next::Close(CLOSE_TOO_BIG, format!("message exceeds {max} bytes"));
        }
        let message = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => {
                self.state
                    .metrics
                    .ws_messages
                    .with_label_values(&["invalid"])
                    .inc();
                self.error(e.code, e.message);
                return Next::Continue;
            }
        };
        let kind = message_type(&message);
        self.state
            .metrics
            .ws_messages
            .with_label_values(&[kind])
            .inc();
        self.request = Some(kind);
        let mut message = message;
        if self.admit(&mut message).await {
            self.handle(message).await;
        }
        self.request = None;
        match self.close_after.take() {
            Some((code, reason)) => Next::Close(code, reason),
            None => Next::Continue,
        }
    }

    async fn handle(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::Ping => self.outbox.push(ServerMessage::Pong),
            ClientMessage::Join {
                room,
                name,
                routing_token,
                relay_token,
                ..
            } => self.join(room, name, routing_token, relay_token).await,
            ClientMessage::Leave => self.leave().await,
            ClientMessage::Offer { sdp } => {
                if let Some(peer) = self.joined_peer() {
                    if !self.sdp_within_limits(&sdp, true) {
                        return;
                    }
                    if let Err(err) = self.state.worker.offer(peer, sdp).await {
                        self.worker_error(err);
                    }
                }
            }
            ClientMessage::Answer { sdp } => {
                if let Some(peer) = self.joined_peer() {
                    if !self.sdp_within_limits(&sdp, false) {
                        return;
                    }
                    if let Err(err) = self.state.worker.answer(peer, sdp).await {
                        self.worker_error(err);
                    }
                }
            }
            ClientMessage::Candidate { candidate } => {
                if let (Some(peer), Some(candidate)) = (self.joined_peer(), candidate) {
                    if !self.candidate_within_limits() {
                        return;
                    }
                    if let Err(err) = self.state.worker.candidate(peer, candidate).await {
                        self.worker_error(err);
                    }
                }
            }
            ClientMessage::Register { name, call_id, .. } => self.register(name, call_id),
            ClientMessage::Call { to } => self.call(&to),
            ClientMessage::Accept { call } => self.act(&call, crate::calls::CallAction::Accept),
            ClientMessage::Decline { call } => self.act(&call, crate::calls::CallAction::Decline),
            ClientMessage::Cancel { call } => self.act(&call, crate::calls::CallAction::Cancel),
            ClientMessage::Hangup { call } => self.act(&call, crate::calls::CallAction::Hangup),
            ClientMessage::Chat { text } => self.chat(text).await,
            ClientMessage::Mute { track_id, muted } => self.mute(track_id, muted).await,
            ClientMessage::TrackSource { track_id, source } => {
                self.track_source(track_id, source).await
            }
            ClientMessage::Resume { token, .. } => self.resume(token).await,
            ClientMessage::VideoPreference {
                track_id,
                width,
                height,
                max_layer,
            } => {
                self.video_preference(track_id, width, height, max_layer)
                    .await
            }
        }
    }

    fn joined_peer(&mut self) -> Option<PeerId> {
        if self.peer.is_none() {
            self.error("not_joined", "send join first");
        }
        self.peer
    }

    async fn join(
        &mut self,
        room: String,
        name: String,
        routing_token: Option<String>,
        relay_token: Option<String>,
    ) {
        if self.peer.is_some() {
            return self.error("already_joined", "this socket has already joined a room");
        }
        // In a cluster a draining node sends joins elsewhere (`route_join`).
        if self.state.draining.load(Ordering::Relaxed) && self.state.cluster.is_none() {
            return self.error(
                "draining",
                "this server is draining and takes no new participants; reconnect",
            );
        }
        if let Err(message) = validate_room(&room) {
            return self.error("bad_room", message);
        }
        if let Err(message) = validate_name(&name) {
            return self.error("bad_name", message);
        }
        if let Err(err) = self.state.calls.may_join(&room, self.call_id.as_deref()) {
            return self.error(err.code(), err.to_string());
        }
        let relay = match relay_token {
            Some(token) => match self.relay_join(&room, &token) {
                Ok(relay) => Some(relay),
                Err(()) => return,
            },
            None => None,
        };
        if relay.is_none() && !self.route_join(&room, routing_token.as_deref()).await {
            return;
        }
        if !self.room_for_one_more().await {
            return;
        }
        let name = name.trim().to_owned();
        match self
            .state
            .worker
            .join_as(room.clone(), name, self.relay_permissions(relay), relay)
            .await
        {
            Ok((joined, signals)) => {
                self.peer = Some(joined.peer_id);
                self.room = Some(room.clone());
                if let Some(id) = &self.call_id {
                    self.state.calls.set_in_room(id, &room, true);
                }
                let span = tracing::Span::current();
                span.record("room", room.as_str());
                span.record("peer", tracing::field::display(joined.peer_id));
                tracing::debug!("joined");
                self.signals = Some(signals);
                let token = crate::random_token();
                self.resume_token = Some(token.clone());
                self.takeover = Some(self.state.parked.attach(token.clone()));
                self.outbox.push(ServerMessage::Joined {
                    room,
                    peer_id: joined.peer_id.to_string(),
                    participants: joined
                        .participants
                        .iter()
                        .map(ParticipantInfo::from)
                        .collect(),
                    ice_servers: crate::ice_servers_for(&self.state, &joined.peer_id.to_string()),
                    resume_token: token,
                    simulcast: self.state.simulcast,
                    nodes: self
                        .state
                        .cluster
                        .as_ref()
                        .map(|c| c.fallback_urls())
                        .unwrap_or_default(),
                });
            }
            Err(err) => self.worker_error(err),
        }
    }

    async fn leave(&mut self) {
        let Some(peer) = self.peer.take() else {
            return self.error("not_joined", "leave before join");
        };
        if let Some(token) = self.resume_token.take() {
            self.state.parked.detach(&token);
        }
        self.takeover = None;
        self.muted.clear();
        self.pending_sources.clear();
        self.sources.clear();
        if let (Some(id), Some(room)) = (&self.call_id, self.room.take()) {
            self.state.calls.set_in_room(id, &room, false);
        }
        // Keep receiving signals until the Worker has removed us: it takes
        // a closed channel for a stuck session and disconnects it.
        let result = self.state.worker.leave(peer).await;
        self.signals = None;
        match result {
            // Already removed (the media connection failed meanwhile).
            Ok(()) | Err(WorkerError::Core(sfu::core::CoreError::UnknownPeer)) => {
                self.outbox.push(ServerMessage::Left)
            }
            Err(err) => self.worker_error(err),
        }
    }
}

/// The `type` of a parsed client message, for `sfu_ws_messages_total`.
fn message_type(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Join { .. } => "join",
        ClientMessage::Offer { .. } => "offer",
        ClientMessage::Answer { .. } => "answer",
        ClientMessage::Candidate { .. } => "candidate",
        ClientMessage::Leave => "leave",
        ClientMessage::Ping => "ping",
        ClientMessage::Register { .. } => "register",
        ClientMessage::Call { .. } => "call",
        ClientMessage::Accept { .. } => "accept",
        ClientMessage::Decline { .. } => "decline",
        ClientMessage::Cancel { .. } => "cancel",
        ClientMessage::Hangup { .. } => "hangup",
        ClientMessage::Chat { .. } => "chat",
        ClientMessage::Mute { .. } => "mute",
        ClientMessage::TrackSource { .. } => "trackSource",
        ClientMessage::Resume { .. } => "resume",
        ClientMessage::VideoPreference { .. } => "videoPreference",
    }
}
