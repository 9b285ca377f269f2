//! One synthetic participant: its record, and its session against
//! `sfu-server` — it joins over the WebSocket like the web client does,
//! offers first, answers every server offer in order, trickles its
//! candidates, publishes, receives, and leaves when told to (or when its
//! lifetime is up). [`crate::janus`] has the same session against Janus.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::connection::Connection;
use crate::janus::JanusRoom;
use crate::media::now_ns;
use crate::publish::MediaConfig;
use crate::stats::{lock, Collector, PeerRecord};
use signaling::client::peer::{answer_offer, apply_answer, send_offer};
use signaling::client::{ServerMsg, Signaling};

/// From `joined` to a connected PeerConnection at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A connected peer that got no media for this long has failed.
const MEDIA_PATIENCE: Duration = Duration::from_secs(5);
/// Waiting for `left` after `leave` at most this long.
const LEAVE_WAIT: Duration = Duration::from_secs(5);
/// Waiting for `joined` at most this long.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every peer of a run shares.
pub struct RunContext {
    /// Where measurements go.
    pub collector: Arc<Collector>,
    /// The signaling WebSocket URLs (`sfu-server`; several in a
    /// cluster): peer k connects to the k-th, in turn.
    pub ws_urls: Vec<String>,
    /// Where peers' access tokens come from.
    pub tokens: crate::tokens::TokenSource,
    /// The Janus room, when the target is Janus.
    pub janus: Option<Arc<JanusRoom>>,
    /// The local address every PeerConnection binds (port 0).
    pub bind_ip: IpAddr,
    /// The one slow subscribers bind instead (`--slow-bind-ip`).
    pub slow_bind_ip: Option<IpAddr>,
    /// What publishers send.
    pub media: MediaConfig,
    /// Turns true when publishers must stop sending.
    pub stop_media: watch::Receiver<bool>,
    /// Turns true when peers must leave.
    pub stop: watch::Receiver<bool>,
}

/// One participant to simulate.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// Room to join.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Whether it publishes audio (and video unless audio-only).
    pub publish: bool,
    /// Whether it should receive media from someone.
    pub expects_media: bool,
    /// Leave after this long (churn); otherwise stay until the run ends.
    pub lifetime: Option<Duration>,
    /// A slow subscriber (`--slow-subscribers`).
    pub slow: bool,
}

/// Runs one participant to the end and records the outcome.
pub async fn run_peer(ctx: Arc<RunContext>, spec: PeerSpec) {
    let (index, record) = ctx.collector.add_peer(PeerRecord {
        label: format!("{}/{}", spec.room, spec.name),
        publishes: spec.publish,
        expects_media: spec.expects_media,
        started_ns: now_ns(),
        slow: spec.slow,
        ..PeerRecord::default()
    });
    let outcome = match &ctx.janus {
        Some(room) => crate::janus::session(&ctx, room, &spec, index, &record).await,
        None => session(&ctx, &spec, index, &record).await,
    };
    let mut record = lock(&record);
    record.left_ns = Some(now_ns());
    match outcome {
        Err(reason) => record.failure = Some(reason),
        Ok(()) if !record.succeeded() => {
            let since = record.connected_ns.unwrap_or(record.started_ns);
            let waited = Duration::from_nanos(now_ns().saturating_sub(since));
            if *ctx.stop.borrow() && waited < MEDIA_PATIENCE {
                // Told to leave before it got going: the run ended, not the peer.
                record.cut_off = true;
            } else if record.connected_ns.is_some() {
                record.failure = Some(format!(
                    "no media received in {:.1} s",
                    waited.as_secs_f64()
                ));
            } else {
                record.failure = Some("left before connecting".to_owned());
            }
        }
        Ok(()) => {}
    }
}

/// When a session's wait ends: at the lifetime's end once connected, or at
/// the connect deadline (or the lifetime's end, if earlier) before. (The
/// `sfu-server` session starts a lifetime only once connected.)
pub fn next_deadline(connected: bool, leave_at: Option<Instant>, connect_by: Instant) -> Instant {
    match (connected, leave_at) {
        (true, Some(l)) => l,
        (true, None) => Instant::now() + Duration::from_secs(3600),
        (false, Some(l)) => l.min(connect_by),
        (false, None) => connect_by,
    }
}

async fn session(
    ctx: &Arc<RunContext>,
    spec: &PeerSpec,
    index: usize,
    record: &Arc<Mutex<PeerRecord>>,
) -> Result<(), String> {
    let url = &ctx.ws_urls[index % ctx.ws_urls.len().max(1)];
    let mut sig = Signaling::connect(url).await.map_err(|e| e.to_string())?;
    let identity = format!("{}-{index}", spec.name);
    let token = ctx
        .tokens
        .token(&spec.room, &identity, spec.publish)
        .await?;
    // In a cluster the node may send us to another one: followed.
    let joined = tokio::time::timeout(
        JOIN_TIMEOUT,
        sig.join_following(&spec.room, &spec.name, &token, serde_json::json!({})),
    )
    .await
    .map_err(|_| format!("no `joined` within {JOIN_TIMEOUT:?}"))?
    .map_err(|e| e.to_string())?;
    let ServerMsg::Joined { peer_id, .. } = joined else {
        return Err("join answered without `joined`".to_owned());
    };
    {
        let mut r = lock(record);
        r.peer_id = Some(peer_id.clone());
        r.joined_ns = Some(now_ns());
    }
    let mut conn = Connection::new(ctx, index, record).await?;
    let result = negotiate_and_run(ctx, spec, &peer_id, &mut conn, &mut sig).await;
    let _ = sig.leave(LEAVE_WAIT).await;
    conn.close().await;
    sig.close().await;
    result
}

async fn negotiate_and_run(
    ctx: &RunContext,
    spec: &PeerSpec,
    peer_id: &str,
    conn: &mut Connection,
    sig: &mut Signaling,
) -> Result<(), String> {
    if spec.publish {
        conn.publish(ctx, peer_id).await?;
    } else {
        conn.receive_only().await?;
    }
    let pc = Arc::clone(&conn.pc);
    send_offer(&pc, sig).await?;

    let mut stop = ctx.stop.clone();
    let connect_by = Instant::now() + CONNECT_TIMEOUT;
    // A lifetime is a stay in the call: it counts from the connection, so a
    // slow connect does not eat it.
    let mut leave_at = None;
    let mut connected = false;
    let mut have_answer = false;
    let mut pending_candidates = Vec::new();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = sleep_until(next_deadline(connected, leave_at, connect_by)) => {
                if connected {
                    return Ok(());
                }
                return Err(format!("not connected within {CONNECT_TIMEOUT:?}"));
            }
            Some(candidate) = conn.candidates.recv() => {
                sig.candidate(candidate.as_ref()).await.map_err(|e| e.to_string())?;
            }
            Some(state) = conn.states.recv() => match state {
                RTCPeerConnectionState::Connected if !connected => {
                    connected = true;
                    leave_at = spec.lifetime.map(|l| Instant::now() + l);
                    conn.connected(ctx, peer_id).await?;
                }
                RTCPeerConnectionState::Failed => {
                    return Err("media connection failed (ICE/DTLS)".to_owned());
                }
                _ => {}
            },
            msg = sig.recv() => match msg.map_err(|e| e.to_string())? {
                ServerMsg::Answer { sdp } => {
                    apply_answer(&pc, sdp).await?;
                    have_answer = true;
                    for c in pending_candidates.drain(..) {
                        let _ = pc.add_ice_candidate(c).await;
                    }
                }
                ServerMsg::Offer { sdp } => answer_offer(&pc, sig, sdp).await?,
                ServerMsg::Candidate { candidate: Some(c) } => {
                    if have_answer {
                        let _ = pc.add_ice_candidate(c).await;
                    } else {
                        pending_candidates.push(c);
                    }
                }
                ServerMsg::Error { code, message } => {
                    return Err(format!("server error {code}: {message}"));
                }
                _ => {}
            },
        }
    }
}
