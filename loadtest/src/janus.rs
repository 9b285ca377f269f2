//! The same peers against a Janus VideoRoom (Janus 1.1), over Janus's HTTP
//! API (`--target janus --url http://127.0.0.1:8088/janus`): one Janus
//! session and plugin handle per peer, long-polled for events. Publishers
//! join as `publisher` and send `publish` with their offer; subscribers join
//! as `subscriber` to every publisher's feed, answer Janus's offer and send
//! `start`. Candidates are trickled both ways.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use webrtc::peer_connection::{RTCPeerConnectionState, RTCSessionDescription};

use crate::connection::Connection;
use crate::http;
use crate::media::now_ns;
use crate::peer::{next_deadline, PeerSpec, RunContext, CONNECT_TIMEOUT};
use crate::stats::{lock, PeerRecord};

/// A long poll returns after at most this long (Janus holds it 30 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// Waiting for a Janus event at most this long.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The room every peer joins, created before the run.
pub struct JanusRoom {
    authority: String,
    base: String,
    /// The VideoRoom room id.
    pub room: u64,
    publishers: watch::Sender<Vec<u64>>,
}

fn transaction() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

async fn call(authority: &str, path: &str, mut body: Value) -> Result<Value, String> {
    body["transaction"] = json!(transaction());
    let text = http::post_json(authority, path, &body.to_string()).await?;
    let reply: Value =
        serde_json::from_str(&text).map_err(|e| format!("Janus reply is not JSON: {e}"))?;
    match reply["janus"].as_str() {
        Some("success") | Some("ack") => Ok(reply),
        _ => Err(format!(
            "Janus refused {}: {}",
            body["janus"], reply["error"]
        )),
    }
}

/// One Janus session with one VideoRoom handle, and its event stream.
struct Handle {
    authority: String,
    path: String,
    events: mpsc::UnboundedReceiver<Value>,
    poller: JoinHandle<()>,
    session_path: String,
}

impl Handle {
    async fn open(authority: &str, base: &str) -> Result<Self, String> {
        let created = call(authority, base, json!({"janus": "create"})).await?;
        let session = created["data"]["id"].as_u64().ok_or("no session id")?;
        let session_path = format!("{base}/{session}");
        let attached = call(
            authority,
            &session_path,
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
        let handle = attached["data"]["id"].as_u64().ok_or("no handle id")?;
        let (tx, events) = mpsc::unbounded_channel();
        let (a, p) = (authority.to_owned(), format!("{session_path}?maxev=10"));
        let poller = tokio::spawn(async move {
            loop {
                match http::request("GET", &a, &p, None, POLL_TIMEOUT).await {
                    Ok(text) => {
                        let batch = match serde_json::from_str::<Value>(&text) {
                            Ok(Value::Array(events)) => events,
                            Ok(event) => vec![event],
                            Err(_) => continue,
                        };
                        for event in batch {
                            if tx.send(event).is_err() {
                                return;
                            }
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Ok(Self {
            authority: authority.to_owned(),
            path: format!("{session_path}/{handle}"),
            events,
            poller,
            session_path,
        })
    }

    async fn message(&self, body: Value, jsep: Option<Value>) -> Result<Value, String> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        call(&self.authority, &self.path, request).await
    }

    async fn trickle(&self, candidate: Option<Value>) -> Result<(), String> {
        let request = match candidate {
            Some(c) => json!({"janus": "trickle", "candidate": c}),
            None => json!({"janus": "trickle", "candidate": {"completed": true}}),
        };
        call(&self.authority, &self.path, request).await.map(|_| ())
    }

    /// The next plugin event whose `videoroom` field is one of `wanted`.
    async fn event(&mut self, wanted: &[&str]) -> Result<Value, String> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| {
                    format!(
                        "no Janus `{}` event within {EVENT_TIMEOUT:?}",
                        wanted.join("/")
                    )
                })?
                .ok_or("Janus event stream ended")?;
            if let Some(error) = janus_error(&event) {
                return Err(error);
            }
            let kind = event["plugindata"]["data"]["videoroom"]
                .as_str()
                .unwrap_or("");
            if wanted.contains(&kind) {
                return Ok(event);
            }
        }
    }

    async fn close(self) {
        // Stop polling first: a poll of a destroyed session is an error.
        self.poller.abort();
        let _ = call(&self.authority, &self.path, json!({"janus": "detach"})).await;
        let _ = call(
            &self.authority,
            &self.session_path,
            json!({"janus": "destroy"}),
        )
        .await;
    }
}

fn janus_error(event: &Value) -> Option<String> {
    let data = &event["plugindata"]["data"];
    if let Some(error) = data["error"].as_str() {
        return Some(format!(
            "Janus VideoRoom error {}: {error}",
            data["error_code"]
        ));
    }
    (event["janus"] == "hangup").then(|| format!("Janus hung up: {}", event["reason"]))
}

impl JanusRoom {
    /// Creates a room for `publishers` publishers on the Janus at
    /// `authority`/`base` (e.g. `127.0.0.1:8088`, `/janus`).
    pub async fn create(authority: &str, base: &str, publishers: u32) -> Result<Self, String> {
        let room = rand::random::<u32>() as u64 + 1;
        let admin = Handle::open(authority, base).await?;
        let created = admin
            .message(
                json!({
                    "request": "create", "room": room, "publishers": publishers.max(1),
                    "bitrate": 0, "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8",
                    "permanent": false,
                }),
                None,
            )
            .await?;
        let data = &created["plugindata"]["data"];
        if data["videoroom"] != "created" {
            return Err(format!("Janus did not create the room: {data}"));
        }
        admin.close().await;
        Ok(Self {
            authority: authority.to_owned(),
            base: base.to_owned(),
            room,
            publishers: watch::channel(Vec::new()).0,
        })
    }
}

/// One peer's session against Janus.
pub async fn session(
    ctx: &Arc<RunContext>,
    room: &JanusRoom,
    spec: &PeerSpec,
    index: usize,
    record: &Arc<Mutex<PeerRecord>>,
) -> Result<(), String> {
    let mut handle = Handle::open(&room.authority, &room.base).await?;
    let result = run(ctx, room, spec, index, record, &mut handle).await;
    handle.close().await;
    result
}

async fn run(
    ctx: &Arc<RunContext>,
    room: &JanusRoom,
    spec: &PeerSpec,
    index: usize,
    record: &Arc<Mutex<PeerRecord>>,
    handle: &mut Handle,
) -> Result<(), String> {
    let peer_id;
    let mut conn;
    let mut feed = None;
    if spec.publish {
        handle
            .message(
                json!({"request": "join", "ptype": "publisher", "room": room.room, "display": spec.name}),
                None,
            )
            .await?;
        let joined = handle.event(&["joined"]).await?;
        let id = joined["plugindata"]["data"]["id"]
            .as_u64()
            .ok_or("no publisher id")?;
        peer_id = id.to_string();
        note_joined(record, &peer_id);
        conn = Connection::new(ctx, index, record).await?;
        conn.publish(ctx, &peer_id).await?;
        let offer = conn
            .pc
            .create_offer(None)
            .await
            .map_err(|e| format!("create offer: {e}"))?;
        conn.pc
            .set_local_description(offer)
            .await
            .map_err(|e| format!("set local offer: {e}"))?;
        let sdp = conn
            .pc
            .local_description()
            .await
            .ok_or("no local offer")?
            .sdp;
        handle
            .message(
                json!({"request": "publish", "audio": true, "video": !ctx.media.audio_only}),
                Some(json!({"type": "offer", "sdp": sdp})),
            )
            .await?;
        let answered = handle.event(&["event"]).await?;
        let sdp = answered["jsep"]["sdp"]
            .as_str()
            .ok_or("Janus sent no answer")?;
        let answer = RTCSessionDescription::answer(sdp.to_owned()).map_err(|e| e.to_string())?;
        conn.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| format!("apply Janus answer: {e}"))?;
        feed = Some(id);
    } else {
        let mut publishers = room.publishers.subscribe();
        let feeds = tokio::time::timeout(CONNECT_TIMEOUT, publishers.wait_for(|p| !p.is_empty()))
            .await
            .map_err(|_| "no Janus publisher to subscribe to".to_owned())?
            .map_err(|e| e.to_string())?
            .clone();
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        handle
            .message(
                json!({"request": "join", "ptype": "subscriber", "room": room.room, "streams": streams}),
                None,
            )
            .await?;
        let attached = handle.event(&["attached"]).await?;
        peer_id = format!("sub-{}", handle.path.rsplit('/').next().unwrap_or_default());
        note_joined(record, &peer_id);
        conn = Connection::new(ctx, index, record).await?;
        let sdp = attached["jsep"]["sdp"]
            .as_str()
            .ok_or("Janus sent no offer")?;
        let offer = RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| e.to_string())?;
        conn.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| format!("apply Janus offer: {e}"))?;
        let answer = conn
            .pc
            .create_answer(None)
            .await
            .map_err(|e| format!("create answer: {e}"))?;
        conn.pc
            .set_local_description(answer)
            .await
            .map_err(|e| format!("set local answer: {e}"))?;
        let sdp = conn
            .pc
            .local_description()
            .await
            .ok_or("no local answer")?
            .sdp;
        handle
            .message(
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": sdp})),
            )
            .await?;
    }
    let result = wait(ctx, room, spec, &peer_id, feed, &mut conn, handle).await;
    conn.close().await;
    result
}

fn note_joined(record: &Arc<Mutex<PeerRecord>>, peer_id: &str) {
    let mut r = lock(record);
    r.peer_id = Some(peer_id.to_owned());
    r.joined_ns = Some(now_ns());
}

/// Runs a negotiated peer until it must leave. A publisher's `feed` is
/// offered to subscribers once its media connection is up.
async fn wait(
    ctx: &RunContext,
    room: &JanusRoom,
    spec: &PeerSpec,
    peer_id: &str,
    feed: Option<u64>,
    conn: &mut Connection,
    handle: &mut Handle,
) -> Result<(), String> {
    let mut stop = ctx.stop.clone();
    let connect_by = Instant::now() + CONNECT_TIMEOUT;
    let leave_at = spec.lifetime.map(|l| Instant::now() + l);
    let mut connected = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = sleep_until(next_deadline(connected, leave_at, connect_by)) => {
                if connected || leave_at.is_some_and(|l| Instant::now() >= l) {
                    return Ok(());
                }
                return Err(format!("not connected within {CONNECT_TIMEOUT:?}"));
            }
            Some(candidate) = conn.candidates.recv() => {
                // `rtc` leaves sdpMid empty, which Janus cannot place: send
                // the m-line index alone then.
                let candidate = candidate.map(|c| {
                    let mut j = json!({
                        "candidate": c.candidate,
                        "sdpMLineIndex": c.sdp_mline_index.unwrap_or(0),
                    });
                    if let Some(mid) = c.sdp_mid.filter(|m| !m.is_empty()) {
                        j["sdpMid"] = json!(mid);
                    }
                    j
                });
                handle.trickle(candidate).await?;
            }
            Some(state) = conn.states.recv() => match state {
                RTCPeerConnectionState::Connected if !connected => {
                    connected = true;
                    conn.connected(ctx, peer_id).await?;
                    if let Some(id) = feed {
                        room.publishers.send_modify(|p| p.push(id));
                    }
                }
                RTCPeerConnectionState::Failed => {
                    return Err("media connection failed (ICE/DTLS)".to_owned());
                }
                _ => {}
            },
            Some(event) = handle.events.recv() => {
                if let Some(error) = janus_error(&event) {
                    return Err(error);
                }
            }
        }
    }
}
