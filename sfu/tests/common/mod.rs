//! Simulated peers for the core: real `rtc` client connections (full ICE,
//! DTLS, SRTP) wired to a [`Core`] through an in-memory network on a
//! virtual clock. No sockets, no threads, no sleeping.

#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::{Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sfu::core::deliver_rtcp::DeliverRtcp;
use sfu::core::peer_config::{host_candidate, is_feedback};
use sfu::core::{Core, CoreConfig, Output, PeerId, Signal};

pub const SFU_ADDR: &str = "192.0.2.1:7882";

/// A packet as a simulated client received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The publisher's peer id, from the track's media stream id.
    pub stream_id: String,
    pub kind: RtpCodecKind,
    pub header: Header,
    pub payload: Bytes,
}

/// One simulated participant.
pub struct Client {
    pub name: String,
    pub addr: SocketAddr,
    pub pc: RTCPeerConnection,
    pub peer_id: Option<PeerId>,
    pub connected: bool,
    pub signals: Vec<Signal>,
    pub received: Vec<Received>,
    /// track id on this connection → media stream id (publisher) and kind.
    track_streams: HashMap<String, (String, RtpCodecKind)>,
    pub video_sender: Option<(RTCRtpSenderId, u32)>,
    pub audio_sender: Option<(RTCRtpSenderId, u32)>,
    /// Receivers of forwarded tracks and their SSRCs.
    pub receivers: Vec<(RTCRtpReceiverId, u32)>,
    /// Answer server offers at once (otherwise they wait in `held_offers`).
    pub auto_answer: bool,
    pub held_offers: Vec<String>,
    /// RTCP messages `poll_read` handed to this client.
    pub rtcp_read: usize,
    /// The publisher owes a keyframe (start, or a PLI arrived).
    pub keyframe_pending: bool,
    /// Keyframes sent.
    pub keyframes_sent: usize,
    /// PLIs received.
    pub plis_received: usize,
    /// Its network path is cut: nothing it sends arrives, nothing sent to
    /// it does.
    pub cut: bool,
    /// Simulcast layers it publishes: rid and SSRC, lowest first.
    pub layers: Vec<(String, u32)>,
    /// Its layer packets carry the `mid` and `rid` header extensions
    /// (default on). Chromium stops sending them once a receiver report has
    /// acknowledged the SSRC.
    pub rid_headers: bool,
    /// SSRCs a PLI asked a keyframe of, not yet sent.
    pub keyframe_ssrcs: std::collections::HashSet<u32>,
    /// Signals the core sent it (its socket's view), kept in order.
    pub publish_layers: Vec<Vec<String>>,
}

/// The core, its clients and the virtual clock.
pub struct Sim {
    pub core: Core,
    pub clients: Vec<Client>,
    pub now: Instant,
    /// New clients get an interceptor that hands PLI and receiver reports
    /// to the application, as a real encoder needs (default on).
    pub deliver_rtcp: bool,
    /// Drops this many of the next media datagrams from the SFU to this
    /// client: downlink loss.
    pub downlink_loss: Option<(usize, usize)>,
    /// New clients negotiate transport-wide congestion control (default
    /// on); without it they report their downlink with REMB.
    pub twcc: bool,
    /// Drops DTLS datagrams from the SFU to a client (a lost handshake
    /// flight): to client `.0`, after letting `.1` through, the next `.2`.
    pub dtls_loss: Option<(usize, usize, usize)>,
    /// The last DTLS ClientHello datagram a client sent, to replay.
    pub last_client_hello: Option<(SocketAddr, BytesMut)>,
}

pub fn vp8() -> RTCRtpCodec {
    codec(RtpCodecKind::Video)
}

pub fn codec(kind: RtpCodecKind) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        _ => RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    }
}

impl Sim {
    pub fn new() -> Self {
        Self::with_config(CoreConfig::new(SFU_ADDR.parse().unwrap()))
    }

    pub fn with_config(config: CoreConfig) -> Self {
        Self {
            core: Core::new(config, Instant::now()),
            clients: Vec::new(),
            now: Instant::now(),
            deliver_rtcp: true,
            downlink_loss: None,
            twcc: true,
            dtls_loss: None,
            last_client_hello: None,
        }
    }

    /// A room with one publishing client (index 0) and `subscribers`
    /// receive-only clients (indexes 1 to `subscribers`), all connected.
    pub fn connected(config: CoreConfig, subscribers: usize) -> Self {
        let mut sim = Self::with_config(config);
        let publisher = sim.add_client("alice", true);
        let subs: Vec<usize> = (0..subscribers)
            .map(|i| sim.add_client(&format!("sub{i}"), false))
            .collect();
        sim.join(publisher, "room");
        for s in subs {
            sim.join(s, "room");
        }
        sim.connect_all();
        sim
    }

    /// A connected room of two: Alice publishing (index 0) and Bob
    /// receiving (index 1).
    pub fn pair() -> (Self, usize, usize) {
        let mut sim = Self::new();
        let publisher = sim.add_client("alice", true);
        let sub = sim.add_client("bob", false);
        sim.join(publisher, "room");
        sim.join(sub, "room");
        sim.connect_all();
        (sim, publisher, sub)
    }

    /// The peer id of client `i`.
    pub fn peer(&self, i: usize) -> PeerId {
        self.clients[i].peer_id.expect("the client joined")
    }

    /// Sends `count` video frames of one packet each from client `i`,
    /// 10 ms apart.
    pub fn send_frames(&mut self, i: usize, first_seq: u16, count: u16) {
        for k in 0..count {
            let seq = first_seq.wrapping_add(k);
            self.send_video(i, seq, u32::from(seq) * 3000, &[7u8; 50]);
            self.advance(Duration::from_millis(10));
        }
    }

    /// Packets the core dropped for `reason`.
    pub fn dropped(&self, reason: sfu::core::DropReason) -> u64 {
        let i = sfu::core::DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("a listed reason");
        self.core.snapshot().counters.dropped[i]
    }

    /// Adds a client that will publish audio and video if `publish`.
    pub fn add_client(&mut self, name: &str, publish: bool) -> usize {
        self.add_client_with(name, publish.then(vp8))
    }

    /// Adds a client that publishes audio and video in `video_codec`, or
    /// only receives if `None`.
    pub fn add_client_with(&mut self, name: &str, video_codec: Option<RTCRtpCodec>) -> usize {
        let publish = video_codec.is_some();
        let index = self.clients.len();
        // 198.51.100.10 onwards; past .255 into 198.51.101.x (benchmarks
        // with 1,000 clients).
        let host = index + 10;
        let addr: SocketAddr = format!("198.51.{}.{}:5000", 100 + host / 256, host % 256)
            .parse()
            .unwrap();
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().unwrap();
        media_engine
            .register_header_extension(
                rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability {
                    uri: rtc::sdp::extmap::AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .unwrap();
        let mut registry = Registry::new();
        if self.deliver_rtcp {
            registry = registry.with(Slot::from(14_000), DeliverRtcp::new(is_feedback));
        }
        let registry = if self.twcc {
            register_default_interceptors(registry, &mut media_engine).unwrap()
        } else {
            configure_rtcp_reports(configure_nack(registry, &mut media_engine))
        };
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(self.now)
            .unwrap();
        let mut senders = [None, None];
        if publish {
            for (i, kind) in [RtpCodecKind::Audio, RtpCodecKind::Video]
                .into_iter()
                .enumerate()
            {
                let ssrc = 1000 + 100 * index as u32 + i as u32;
                let track = MediaStreamTrack::new(
                    format!("{name}-stream"),
                    format!("{name}-{kind}"),
                    format!("{name}-{kind}"),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        active: true,
                        codec: match kind {
                            RtpCodecKind::Audio => codec(kind),
                            _ => video_codec.clone().unwrap_or_else(vp8),
                        },
                        ..Default::default()
                    }],
                );
                senders[i] = Some((pc.add_track(track).unwrap(), ssrc));
            }
        } else {
            let recvonly = rtc::rtp_transceiver::RTCRtpTransceiverInit {
                direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            };
            pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(recvonly))
                .unwrap();
        }
        pc.add_local_candidate(host_candidate(addr).unwrap())
            .unwrap();
        self.clients.push(Client {
            name: name.to_owned(),
            addr,
            pc,
            peer_id: None,
            connected: false,
            signals: Vec::new(),
            received: Vec::new(),
            track_streams: HashMap::new(),
            audio_sender: senders[0],
            video_sender: senders[1],
            receivers: Vec::new(),
            auto_answer: true,
            held_offers: Vec::new(),
            rtcp_read: 0,
            keyframe_pending: true,
            keyframes_sent: 0,
            plis_received: 0,
            cut: false,
            layers: Vec::new(),
            rid_headers: true,
            keyframe_ssrcs: std::collections::HashSet::new(),
            publish_layers: Vec::new(),
        });
        index
    }

    /// Joins `room` and makes the client's first offer.
    pub fn join(&mut self, index: usize, room: &str) -> PeerId {
        self.join_as(index, room, None)
    }

    /// [`Sim::join`], as a Peer of a node-to-node link when `relay` is given.
    pub fn join_as(
        &mut self,
        index: usize,
        room: &str,
        relay: Option<sfu::core::relay::Relay>,
    ) -> PeerId {
        let name = self.clients[index].name.clone();
        let joined = match relay {
            Some(relay) => self.core.join_relay(self.now, room, &name, relay),
            None => self.core.join(self.now, room, &name),
        }
        .unwrap();
        let client = &mut self.clients[index];
        client.peer_id = Some(joined.peer_id);
        let offer = client.pc.create_offer(None).unwrap();
        client
            .pc
            .set_local_description(self.now, offer.clone())
            .unwrap();
        self.core
            .handle_offer(self.now, joined.peer_id, offer.sdp)
            .unwrap();
        self.pump();
        joined.peer_id
    }

    pub fn leave(&mut self, index: usize) {
        let id = self.clients[index].peer_id.take().unwrap();
        self.core.leave(self.now, id).unwrap();
        self.pump();
    }

    fn client_of(&self, peer: PeerId) -> Option<usize> {
        self.clients.iter().position(|c| c.peer_id == Some(peer))
    }

    /// Delivers signaling and datagrams until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(Output { peer, signal }) = self.core.poll_output() {
                moved = true;
                let Some(i) = self.client_of(peer) else {
                    continue;
                };
                self.apply_signal(i, signal);
            }
            while let Some(t) = self.core.poll_transmit() {
                moved = true;
                if let Some((client, remaining)) = self.downlink_loss.as_mut() {
                    let to_client = self
                        .clients
                        .get(*client)
                        .is_some_and(|c| c.addr == t.destination);
                    if to_client && *remaining > 0 && t.media {
                        *remaining -= 1;
                        continue;
                    }
                }
                if let Some((client, skip, remaining)) = self.dtls_loss.as_mut() {
                    let to_client = self
                        .clients
                        .get(*client)
                        .is_some_and(|c| c.addr == t.destination);
                    // RFC 7983: DTLS records start with 20..=63.
                    let dtls = t.data.first().is_some_and(|b| (20..=63).contains(b));
                    if to_client && dtls {
                        if *skip > 0 {
                            *skip -= 1;
                        } else if *remaining > 0 {
                            *remaining -= 1;
                            continue;
                        }
                    }
                }
                if let Some(c) = self
                    .clients
                    .iter_mut()
                    .find(|c| c.addr == t.destination && !c.cut)
                {
                    let input = TaggedBytesMut {
                        now: self.now,
                        transport: TransportContext {
                            local_addr: c.addr,
                            peer_addr: sfu_addr(),
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: t.data,
                    };
                    let _ = c.pc.handle_read(input);
                }
            }
            for c in self.clients.iter_mut() {
                moved |= drain_client(c);
            }
            let mut datagrams = Vec::new();
            for c in self.clients.iter_mut() {
                while let Some(w) = c.pc.poll_write() {
                    // Sent from an address the client no longer has, or
                    // over a cut path: lost.
                    if w.transport.local_addr == c.addr && !c.cut {
                        datagrams.push((c.addr, w.message));
                    }
                }
            }
            for (source, data) in datagrams {
                moved = true;
                // Record type 22 (handshake), epoch 0, handshake type 1.
                if data.len() > 13 && data[0] == 22 && data[3..5] == [0, 0] && data[13] == 1 {
                    self.last_client_hello = Some((source, BytesMut::from(&data[..])));
                }
                self.core.handle_datagram(self.now, source, data);
                // A fan-out in steps (`CoreConfig::fanout_step`) goes on
                // to its end, as the driver takes it.
                while self.core.continue_fanout(self.now) {}
            }
            if !moved {
                return;
            }
        }
        panic!("the simulation did not settle");
    }

    fn apply_signal(&mut self, i: usize, signal: Signal) {
        let now = self.now;
        let c = &mut self.clients[i];
        if let Signal::PublishLayers { active, .. } = &signal {
            c.publish_layers.push(active.clone());
        }
        match &signal {
            Signal::Answer { sdp } => {
                let answer = RTCSessionDescription::answer(sdp.clone()).unwrap();
                c.pc.set_remote_description(now, answer).unwrap();
            }
            Signal::Offer { sdp } if !c.auto_answer => c.held_offers.push(sdp.clone()),
            Signal::Offer { sdp } => {
                let offer = RTCSessionDescription::offer(sdp.clone()).unwrap();
                c.pc.set_remote_description(now, offer).unwrap();
                let answer = c.pc.create_answer(None).unwrap();
                c.pc.set_local_description(now, answer.clone()).unwrap();
                let id = c.peer_id.unwrap();
                self.core.handle_answer(now, id, answer.sdp).unwrap();
            }
            _ => {}
        }
        self.clients[i].signals.push(signal);
    }

    /// Advances the virtual clock by `d` in 5 ms steps, running timers.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(5);
            let now = self.now;
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            for c in self.clients.iter_mut() {
                if c.pc.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = c.pc.handle_timeout(now);
                }
            }
            self.pump();
        }
    }

    /// Runs until every joined client is connected, or panics after 10 virtual seconds.
    pub fn connect_all(&mut self) {
        for _ in 0..2000 {
            if self
                .clients
                .iter()
                .all(|c| c.peer_id.is_none() || c.connected)
            {
                return;
            }
            self.advance(Duration::from_millis(5));
        }
        panic!("clients did not connect");
    }

    /// Adds a client that publishes one VP8 video with three simulcast
    /// layers, rids `q`, `h` and `f`.
    pub fn add_simulcast_client(&mut self, name: &str) -> usize {
        let index = self.add_client_with(name, None);
        let base = 5000 + 100 * index as u32;
        let layers: Vec<(String, u32)> = ["q", "h", "f"]
            .iter()
            .enumerate()
            .map(|(k, rid)| ((*rid).to_owned(), base + k as u32))
            .collect();
        let track = MediaStreamTrack::new(
            format!("{name}-stream"),
            format!("{name}-video"),
            format!("{name}-video"),
            RtpCodecKind::Video,
            layers
                .iter()
                .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: rid.clone(),
                        ssrc: Some(*ssrc),
                        ..Default::default()
                    },
                    active: true,
                    codec: vp8(),
                    ..Default::default()
                })
                .collect(),
        );
        let c = &mut self.clients[index];
        let sender = c.pc.add_track(track).unwrap();
        c.video_sender = Some((sender, layers[0].1));
        c.layers = layers;
        index
    }

    /// Sends one VP8 packet on simulcast layer `rid` of client `i`, a
    /// keyframe if one was asked for on that layer (or `force_keyframe`).
    pub fn send_layer(
        &mut self,
        i: usize,
        rid: &str,
        seq: u16,
        timestamp: u32,
        size: usize,
        force_keyframe: bool,
    ) -> bool {
        let now = self.now;
        let c = &mut self.clients[i];
        let (sender, _) = c.video_sender.expect("a publishing client");
        let ssrc = c.layers.iter().find(|(r, _)| r == rid).unwrap().1;
        let keyframe = c.keyframe_ssrcs.remove(&ssrc) || force_keyframe;
        let rid_headers = c.rid_headers;
        let mid =
            c.pc.rtp_transceiver(rtc::rtp_transceiver::RTCRtpTransceiverId::from(sender))
                .and_then(|t| t.mid().clone())
                .expect("the simulcast m-line was negotiated");
        let mut sender = c.pc.rtp_sender(sender).unwrap();
        let params = sender.get_parameters();
        let ext = |uri: &str| {
            params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .map(|e| e.id as u8)
        };
        let (mid_id, rid_id) = (
            ext("urn:ietf:params:rtp-hdrext:sdes:mid"),
            ext("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
        );
        let payload_type = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|p| p.rtp_codec.mime_type == "video/VP8")
            .map(|p| p.payload_type)
            .expect("VP8 was negotiated");
        let mut header = Header {
            version: 2,
            payload_type,
            sequence_number: seq,
            timestamp,
            ssrc,
            marker: true,
            ..Default::default()
        };
        if let Some(id) = mid_id.filter(|_| rid_headers) {
            header
                .set_extension(id, Bytes::from(mid.into_bytes()))
                .unwrap();
        }
        if let Some(id) = rid_id.filter(|_| rid_headers) {
            header
                .set_extension(id, Bytes::from(rid.as_bytes().to_vec()))
                .unwrap();
        }
        let mut data = codec_prefix("video/VP8", keyframe).to_vec();
        data.resize(size.max(PREFIX + 1), 0x5a);
        sender
            .write_rtp(
                now,
                Packet {
                    header,
                    payload: Bytes::from(data),
                },
            )
            .unwrap();
        keyframe
    }

    /// Client `i` moves to `addr` (a network change: its old address stops
    /// working) and restarts ICE with a new offer, as a browser does.
    pub fn move_client(&mut self, i: usize, addr: SocketAddr) {
        let now = self.now;
        let c = &mut self.clients[i];
        c.addr = addr;
        c.pc.add_local_candidate(host_candidate(addr).unwrap())
            .unwrap();
        c.pc.restart_ice();
        let offer = c.pc.create_offer(None).unwrap();
        c.pc.set_local_description(now, offer.clone()).unwrap();
        let id = c.peer_id.unwrap();
        self.core.handle_offer(now, id, offer.sdp).unwrap();
        self.pump();
    }

    /// Sends one RTP packet from a publishing client, its payload the
    /// codec's keyframe or delta prefix (a keyframe when one was asked
    /// for) followed by `payload`.
    pub fn send_video(&mut self, i: usize, seq: u16, timestamp: u32, payload: &[u8]) {
        let c = &mut self.clients[i];
        let keyframe = std::mem::take(&mut c.keyframe_pending);
        if keyframe {
            c.keyframes_sent += 1;
        }
        let (sender, _) = c.video_sender.expect("a publishing client");
        let mime = c.pc.rtp_sender(sender).unwrap().track().codings()[0]
            .codec
            .mime_type
            .clone();
        let mut data = codec_prefix(&mime, keyframe).to_vec();
        data.extend_from_slice(payload);
        self.send_raw_video(i, seq, timestamp, true, &data);
    }

    /// Sends one RTP packet from a publishing client with exactly `payload`
    /// (empty: a padding-only packet).
    pub fn send_raw_video(
        &mut self,
        i: usize,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        let now = self.now;
        let c = &mut self.clients[i];
        let (sender, ssrc) = c.video_sender.expect("a publishing client");
        let mut sender = c.pc.rtp_sender(sender).unwrap();
        let wanted = sender.track().codings()[0].codec.clone();
        let payload_type = sender
            .get_parameters()
            .rtp_parameters
            .codecs
            .iter()
            .find(|p| {
                p.rtp_codec.mime_type == wanted.mime_type
                    && p.rtp_codec.sdp_fmtp_line == wanted.sdp_fmtp_line
            })
            .map(|p| p.payload_type)
            .expect("the video codec was negotiated");
        let packet = Packet {
            header: Header {
                version: 2,
                padding: payload.is_empty(),
                payload_type,
                sequence_number: seq,
                timestamp,
                ssrc,
                marker,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        sender.write_rtp(now, packet).unwrap();
        self.pump();
    }

    /// Sends one 20 ms Opus packet from client `i` carrying `level` (0 is
    /// the loudest, 127 silence) in the audio-level extension.
    pub fn send_audio(&mut self, i: usize, seq: u16, level: u8) {
        let now = self.now;
        let c = &mut self.clients[i];
        let (sender, ssrc) = c.audio_sender.expect("a publishing client");
        let mut sender = c.pc.rtp_sender(sender).unwrap();
        let params = sender.get_parameters().rtp_parameters.clone();
        let payload_type = params
            .codecs
            .iter()
            .find(|p| p.rtp_codec.mime_type == "audio/opus")
            .unwrap()
            .payload_type;
        let ext_id = params
            .header_extensions
            .iter()
            .find(|e| e.uri == rtc::sdp::extmap::AUDIO_LEVEL_URI)
            .expect("audio level negotiated")
            .id as u8;
        let mut header = Header {
            version: 2,
            payload_type,
            sequence_number: seq,
            timestamp: u32::from(seq) * 960,
            ssrc,
            ..Default::default()
        };
        header
            .set_extension(ext_id, Bytes::from(vec![0x80 | level]))
            .unwrap();
        let packet = Packet {
            header,
            payload: Bytes::from_static(&[0xfc; 40]),
        };
        sender.write_rtp(now, packet).unwrap();
        self.pump();
    }

    /// The SRTP datagrams of `count` video packets from publishing client
    /// `i`, produced but not delivered (for benchmarks).
    pub fn video_datagrams(
        &mut self,
        i: usize,
        first_seq: u16,
        count: usize,
    ) -> Vec<bytes::BytesMut> {
        let now = self.now;
        let c = &mut self.clients[i];
        let (sender, ssrc) = c.video_sender.expect("a publishing client");
        let mut out = Vec::with_capacity(count);
        for k in 0..count {
            let mut sender = c.pc.rtp_sender(sender).unwrap();
            let payload_type = sender.get_parameters().rtp_parameters.codecs[0].payload_type;
            let packet = Packet {
                header: Header {
                    version: 2,
                    payload_type,
                    sequence_number: first_seq.wrapping_add(k as u16),
                    timestamp: (k as u32 / 4) * 3000,
                    ssrc,
                    marker: k % 4 == 3,
                    ..Default::default()
                },
                payload: {
                    // A VP8 delta frame (the room is already decoding).
                    let mut p = vec![0x5au8; 1100];
                    p[..PREFIX].copy_from_slice(&codec_prefix("video/VP8", false));
                    Bytes::from(p)
                },
            };
            sender.write_rtp(now, packet).unwrap();
            while let Some(w) = c.pc.poll_write() {
                out.push(w.message);
            }
        }
        out
    }

    /// Sends a PLI for every track client `i` receives.
    pub fn send_pli(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.clients[i];
        for (receiver, ssrc) in c.receivers.clone() {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            c.pc.rtp_receiver(receiver)
                .unwrap()
                .write_rtcp(now, vec![Box::new(pli)])
                .unwrap();
        }
        self.pump();
    }

    /// Client `i` reports a downlink estimate of `bitrate` bits per second
    /// with REMB.
    pub fn send_remb(&mut self, i: usize, bitrate: f32) {
        let now = self.now;
        let c = &mut self.clients[i];
        let ssrcs: Vec<u32> = c.receivers.iter().map(|(_, ssrc)| *ssrc).collect();
        let (receiver, _) = c.receivers[0];
        let remb = rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate,
            ssrcs,
        };
        c.pc.rtp_receiver(receiver)
            .unwrap()
            .write_rtcp(now, vec![Box::new(remb)])
            .unwrap();
        self.pump();
    }

    /// Video packets a client received from `publisher`.
    pub fn video_from(&self, i: usize, publisher: PeerId) -> Vec<Received> {
        let publisher = publisher.to_string();
        self.clients[i]
            .received
            .iter()
            .filter(|r| r.stream_id == publisher && r.kind == RtpCodecKind::Video)
            .cloned()
            .collect()
    }
}

/// The first two payload bytes of a keyframe start or a delta frame in
/// each codec's RTP format; what follows is the test's own payload.
pub fn codec_prefix(mime: &str, keyframe: bool) -> [u8; 2] {
    let codec = mime
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match (codec.as_str(), keyframe) {
        ("VP8", true) => [0x10, 0x00],
        ("VP8", false) => [0x10, 0x01],
        ("H264", true) => [0x65, 0x00],
        ("H264", false) => [0x41, 0x00],
        ("VP9", true) => [0x08, 0x00],
        ("VP9", false) => [0x48, 0x00],
        ("AV1", true) => [0x18, 0x00],
        (_, _) => [0x10, 0x00],
    }
}

/// Bytes of `codec_prefix` before the test's payload.
pub const PREFIX: usize = 2;

/// Every datagram of the core leaves from the shared port.
fn sfu_addr() -> SocketAddr {
    SFU_ADDR.parse().unwrap()
}

fn drain_client(c: &mut Client) -> bool {
    let mut moved = false;
    while let Some(event) = c.pc.poll_event() {
        moved = true;
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                c.connected = state == RTCPeerConnectionState::Connected;
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                let stream = init.stream_ids.first().cloned().unwrap_or_default();
                let kind =
                    c.pc.rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind())
                        .unwrap_or_default();
                c.track_streams.insert(init.track_id, (stream, kind));
                c.receivers.push((init.receiver_id, init.ssrc));
            }
            _ => {}
        }
    }
    while let Some(msg) = c.pc.poll_read() {
        moved = true;
        match msg.message {
            RTCMessage::RtpPacket(track_id, packet) => {
                let (stream_id, kind) = c.track_streams.get(&track_id).cloned().unwrap_or_default();
                c.received.push(Received {
                    stream_id,
                    kind,
                    header: packet.header,
                    payload: packet.payload,
                });
            }
            RTCMessage::RtcpPacket(_, packets) => {
                c.rtcp_read += 1;
                for pli in packets
                    .iter()
                    .filter_map(|p| p.as_any().downcast_ref::<PictureLossIndication>())
                {
                    c.keyframe_ssrcs.insert(pli.media_ssrc);
                }
                if packets
                    .iter()
                    .any(|p| p.as_any().is::<PictureLossIndication>())
                {
                    c.keyframe_pending = true;
                    c.plis_received += 1;
                }
            }
            _ => {}
        }
    }
    moved
}
