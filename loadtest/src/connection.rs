//! One synthetic peer's `webrtc` PeerConnection, whatever the server: bound
//! to one local address (no STUN, no mDNS), VP8 and Opus only, `rtc`'s
//! default interceptors (NACK, RTCP reports, TWCC) plus delivery of keyframe
//! requests, browser-like ICE check pacing; its local tracks, its received
//! tracks' readers, and the start of publishing once it is connected.

use std::sync::{Arc, Mutex};

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use signaling::client::peer::{peer_connection, with_audio_level, AUDIO_LEVEL_URI};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

use crate::media::now_ns;
use crate::peer::RunContext;
use crate::publish::{opus, vp8, LocalTrack};
use crate::receive::read_track;
use crate::stats::{lock, Kind, PeerRecord};

/// Callbacks from the PeerConnection's driver, turned into channel sends
/// and spawned readers (the driver must never block on us).
struct Handler {
    candidates: mpsc::UnboundedSender<Option<RTCIceCandidateInit>>,
    states: mpsc::UnboundedSender<RTCPeerConnectionState>,
    ctx: Arc<RunContext>,
    index: usize,
    record: Arc<Mutex<PeerRecord>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(candidate) = event.candidate.to_json() {
            let _ = self.candidates.send(Some(candidate));
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.candidates.send(None);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.states.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let reader = tokio::spawn(read_track(
            track,
            Arc::clone(&self.ctx.collector),
            self.index,
            Arc::clone(&self.record),
        ));
        lock(&self.readers).push(reader);
    }
}

fn media_engine() -> Result<MediaEngine, String> {
    let mut engine = MediaEngine::default();
    for (codec, payload_type, kind) in [
        (vp8(), 96, RtpCodecKind::Video),
        (opus(), 111, RtpCodecKind::Audio),
    ] {
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type,
                },
                kind,
            )
            .map_err(|e| format!("codec setup: {e}"))?;
    }
    with_audio_level(&mut engine)?;
    Ok(engine)
}

/// A peer's PeerConnection and what it reports.
pub struct Connection {
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    /// Local candidates as they are gathered; `None` ends them.
    pub candidates: mpsc::UnboundedReceiver<Option<RTCIceCandidateInit>>,
    /// Connection state changes.
    pub states: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    /// Published tracks.
    pub tracks: Vec<LocalTrack>,
    senders: Vec<JoinHandle<()>>,
    handler: Arc<Handler>,
    record: Arc<Mutex<PeerRecord>>,
}

impl Connection {
    /// A new connection for the peer at `index` (whose record is `record`).
    pub async fn new(
        ctx: &Arc<RunContext>,
        index: usize,
        record: &Arc<Mutex<PeerRecord>>,
    ) -> Result<Self, String> {
        let bind_ip = match (lock(record).slow, ctx.slow_bind_ip) {
            (true, Some(ip)) => ip,
            _ => ctx.bind_ip,
        };
        let (cand_tx, candidates) = mpsc::unbounded_channel();
        let (state_tx, states) = mpsc::unbounded_channel();
        let handler = Arc::new(Handler {
            candidates: cand_tx,
            states: state_tx,
            ctx: Arc::clone(ctx),
            index,
            record: Arc::clone(record),
            readers: Mutex::default(),
        });
        let engine = media_engine()?;
        let pc = peer_connection(
            bind_ip,
            engine,
            Arc::clone(&handler) as Arc<dyn PeerConnectionEventHandler>,
        )
        .await?;
        Ok(Self {
            pc,
            candidates,
            states,
            tracks: Vec::new(),
            senders: Vec::new(),
            handler,
            record: Arc::clone(record),
        })
    }

    /// Adds audio (and video unless audio-only) tracks in media stream
    /// `stream_id`, as `addTrack` does in a browser.
    pub async fn publish(&mut self, ctx: &RunContext, stream_id: &str) -> Result<(), String> {
        let mut kinds = vec![Kind::Audio];
        if !ctx.media.audio_only {
            kinds.push(Kind::Video);
        }
        for kind in kinds {
            let mut track = LocalTrack::new(kind, stream_id);
            let local = Arc::clone(&track.track) as Arc<dyn TrackLocal>;
            let sender = self
                .pc
                .add_track(local)
                .await
                .map_err(|e| format!("add track: {e}"))?;
            track.sender = Some(sender);
            self.tracks.push(track);
        }
        Ok(())
    }

    /// Adds a receive-only audio m-line (an offer needs at least one), as
    /// the web client does without a camera.
    pub async fn receive_only(&self) -> Result<(), String> {
        self.pc
            .add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("add transceiver: {e}"))
    }

    /// The connection came up: note it and start sending.
    pub async fn connected(&mut self, ctx: &RunContext, peer_id: &str) -> Result<(), String> {
        lock(&self.record).connected_ns = Some(now_ns());
        // Audio levels go out only if the server negotiated them; `rtc`
        // refuses packets with unnegotiated extensions.
        let audio_level = self
            .pc
            .current_remote_description()
            .await
            .is_some_and(|d| d.sdp.contains(AUDIO_LEVEL_URI));
        for t in &self.tracks {
            let tasks = t
                .start(
                    Arc::clone(&ctx.collector),
                    peer_id.to_owned(),
                    ctx.media,
                    audio_level,
                    ctx.stop_media.clone(),
                )
                .await?;
            self.senders.extend(tasks);
        }
        Ok(())
    }

    /// Stops sending and receiving and closes the connection.
    pub async fn close(self) {
        for sender in self.senders {
            sender.abort();
        }
        let _ = self.pc.close().await;
        for reader in lock(&self.handler.readers).drain(..) {
            reader.abort();
        }
    }
}
