//! Entry points for the fuzz targets in `fuzz/` and for the corpus
//! regression tests (`sfu/tests/fuzz_corpus.rs`), which run every checked-in
//! corpus file through the same functions on stable Rust. Not part of the
//! SFU's API: each function takes arbitrary bytes and must never panic,
//! whatever they hold.
//!
//! - [`demux`]: one datagram on the shared UDP port (and the same bytes as
//!   an ICE-TCP frame), from an unknown address and from the address of a
//!   joined Peer that passed an ICE check.
//! - [`sdp`]: a client's offer applied to a joined Peer, and our answer.
//! - [`ice_tcp_framing`]: the RFC 4571 decoder over a byte stream cut
//!   into reads at arbitrary places.
//! - [`rtp_rtcp`]: bytes as an RTP packet through the Track's duplicate
//!   window, packet cache, keyframe and audio-level parsers and the
//!   Forwarder; and as an RTCP compound through the feedback checks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{Message, Setter, TransactionId, BINDING_REQUEST};
use rtc::stun::textattrs::TextAttribute;

use crate::core::dedup::SeqWindow;
use crate::core::forwarder::PacketInfo;
use crate::core::keyframe::VideoCodec;
use crate::core::nack_cache::PacketCache;
use crate::core::{Core, CoreConfig, Forwarder, PeerId};

/// The SFU-side ICE ufrag of the fuzzed Peer (seeds carry it in USERNAME).
pub const SFU_UFRAG: &str = "fuzzSFU1";
/// The SFU-side ICE password of the fuzzed Peer (seeds are signed with it).
pub const SFU_PWD: &str = "fuzzSFUpassword0123456789";
/// The client-side ufrag of [`CHROMIUM_OFFER`].
pub const CLIENT_UFRAG: &str = "Ab1c";
/// The address the fuzzed Peer's client checks from (pinned by the harness).
pub const CLIENT_ADDR: &str = "198.51.100.7:50000";
/// An address that no Peer has.
pub const STRANGER_ADDR: &str = "203.0.113.9:40000";
/// The SFU's advertised UDP address in the harness.
pub const SFU_UDP: &str = "192.0.2.1:7882";
/// The SFU's advertised ICE-TCP address in the harness.
pub const SFU_TCP: &str = "192.0.2.1:7881";

/// A Chromium offer (audio and video, bundled, TWCC, RFC 6464 levels),
/// as the web client sends it on join.
pub const CHROMIUM_OFFER: &str = include_str!("fuzzing/chromium_offer.sdp");

fn addr(s: &str) -> SocketAddr {
    // The constants above are valid socket addresses.
    #[allow(clippy::unwrap_used)]
    s.parse().unwrap()
}

/// A core with one joined Peer whose offer was applied, and the clock.
pub struct Harness {
    /// The core.
    pub core: Core,
    /// The virtual time.
    pub now: Instant,
    /// The Peer.
    pub peer: PeerId,
}

impl Harness {
    /// A core advertising UDP and ICE-TCP, with one Peer that joined with
    /// [`SFU_UFRAG`] and applied `offer` (`CHROMIUM_OFFER` if `None`).
    /// `None` if the offer does not apply.
    pub fn new(offer: Option<&str>) -> Option<Self> {
        let now = Instant::now();
        let mut config = CoreConfig::new(addr(SFU_UDP));
        config.tcp_addrs = vec![addr(SFU_TCP)];
        let mut core = Core::new(config, now);
        let joined = core
            .join_with_credentials(now, "fuzz", "fuzz", SFU_UFRAG.into(), SFU_PWD.into())
            .ok()?;
        let peer = joined.peer_id;
        let applied = core
            .handle_offer(now, peer, offer.unwrap_or(CHROMIUM_OFFER).to_owned())
            .is_ok();
        let mut harness = Self { core, now, peer };
        harness.drain();
        applied.then_some(harness)
    }

    /// Throws away whatever the core has to send.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.core.poll_transmit().is_some() {
            n += 1;
        }
        while self.core.poll_output().is_some() {
            n += 1;
        }
        n
    }

    /// Sends a valid ICE check from [`CLIENT_ADDR`], which pins it.
    pub fn pin_client(&mut self) {
        let request = binding_request(&format!("{SFU_UFRAG}:{CLIENT_UFRAG}"), SFU_PWD);
        self.core
            .handle_datagram(self.now, addr(CLIENT_ADDR), BytesMut::from(&request[..]));
        self.drain();
    }

    /// Moves the clock and runs the due timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.core.handle_timeout(self.now);
        self.drain();
    }
}

/// A STUN binding request as a browser sends it: USERNAME, ICE-CONTROLLING,
/// PRIORITY, MESSAGE-INTEGRITY with `pwd`, FINGERPRINT. An empty vector if
/// it does not build.
pub fn binding_request(username: &str, pwd: &str) -> Vec<u8> {
    let Ok(provider) = rtc::crypto::default_provider() else {
        return Vec::new();
    };
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        Box::new(rtc::ice::attributes::control::AttrControlling(0x1234_5678)),
        Box::new(rtc::ice::attributes::priority::PriorityAttr(1_853_817_087)),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.to_owned(),
            provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ];
    if m.build(&setters).is_err() {
        return Vec::new();
    }
    m.raw
}

/// Inputs one [`demux`] harness serves before a fresh one is built (a
/// Peer per input would spend nearly all the time in `rtc`'s set-up).
const DEMUX_REUSE: u32 = 64;

thread_local! {
    static DEMUX: std::cell::RefCell<Option<(Harness, u32)>> =
        const { std::cell::RefCell::new(None) };
}

/// One arbitrary datagram: from a stranger over UDP, from the pinned client
/// address over UDP, and as a frame on a stranger's ICE-TCP connection.
/// The core is kept for `DEMUX_REUSE` (64) inputs, as a server's would be, so
/// the DTLS server sees sequences of inputs.
pub fn demux(data: &[u8]) {
    DEMUX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(_, used)| *used >= DEMUX_REUSE) {
            *slot = Harness::new(None).map(|mut h| {
                h.pin_client();
                (h, 0)
            });
        }
        if let Some((h, used)) = slot.as_mut() {
            *used += 1;
            demux_into(h, data);
        }
    });
}

/// [`demux`] on a fresh core: what the corpus regression test runs.
pub fn demux_fresh(data: &[u8]) {
    if let Some(mut h) = Harness::new(None) {
        h.pin_client();
        demux_into(&mut h, data);
    }
}

fn demux_into(h: &mut Harness, data: &[u8]) {
    for (tcp, from) in [
        (false, STRANGER_ADDR),
        (false, CLIENT_ADDR),
        (true, STRANGER_ADDR),
    ] {
        let bytes = BytesMut::from(data);
        if tcp {
            h.core.handle_tcp_frame(h.now, addr(from), bytes);
        } else {
            h.core.handle_datagram(h.now, addr(from), bytes);
        }
        h.drain();
    }
    h.advance(Duration::from_millis(200));
    let _ = h.core.snapshot();
}

/// An arbitrary string as a client's offer for a joined Peer; on success,
/// the answer is generated and the clock run once.
pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some(mut h) = Harness::new(Some(&text)) else {
        return;
    };
    h.advance(Duration::from_millis(50));
    // A second offer: an ICE restart or renegotiation path.
    let _ = h.core.handle_offer(h.now, h.peer, text.into_owned());
    h.drain();
}

/// The RFC 4571 decoder: the first byte picks read sizes; the rest is the
/// stream. Checks that every frame decoded re-encodes to its bytes.
pub fn ice_tcp_framing(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let mut buf = BytesMut::new();
    let mut decoded = 0usize;
    for chunk in stream.chunks(step) {
        buf.extend_from_slice(chunk);
        for frame in crate::io::tcp::split_frames(&mut buf) {
            let mut wire = Vec::new();
            let framed = crate::io::tcp::frame_into(&frame, &mut wire).is_ok();
            assert!(framed, "a decoded frame always fits a frame");
            assert_eq!(&wire[2..], &frame[..]);
            decoded += 2 + frame.len();
        }
    }
    assert_eq!(
        decoded + buf.len(),
        stream.len(),
        "no byte lost or invented"
    );
}

/// Bytes as RTP through the media path's parsers and the Forwarder, and as
/// RTCP through the feedback checks.
pub fn rtp_rtcp(data: &[u8]) {
    let mut raw = data;
    if let Ok(packet) = rtc::rtp::packet::Packet::unmarshal(&mut raw) {
        forward_rtp(packet);
    }
    let mut raw = data;
    if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut raw) {
        for p in &packets {
            let _ = crate::core::peer_config::is_feedback(p.as_ref());
            let _ = p.destination_ssrc();
            let _ = p.marshal();
        }
        let _ = crate::core::rtcp_check::foreign_ssrcs(&packets, &|ssrc| ssrc % 2 == 0, &|_| true);
    }
    let mut counts = crate::core::rtcp_count::RtcpCounts::default();
    counts.count_in(data);
    let _ = counts.count_out(data);
}

fn forward_rtp(packet: rtc::rtp::packet::Packet) {
    let mut window = SeqWindow::default();
    let mut cache = PacketCache::new(crate::core::nack_cache::AUDIO_SLOTS);
    let mut forwarder = Forwarder::new(0x0bad_cafe, 1000, 90_000, 90_000);
    forwarder.set_payload_type(96);
    let mut frame = None;
    for codec in [
        VideoCodec::Vp8,
        VideoCodec::Vp9,
        VideoCodec::H264,
        VideoCodec::Av1,
    ] {
        let _ = codec.is_keyframe_start(&packet.payload);
        frame = frame.or(codec.frame_info(&packet.payload));
    }
    let info = PacketInfo {
        padding_only: packet.payload.is_empty(),
        marker: packet.header.marker,
        frame,
    };
    for id in 1..=14 {
        let _ = crate::core::audio_level::level_of(&packet.header, id);
    }
    let seq = packet.header.sequence_number;
    for step in [0u16, 1, 0, 600, 2, 40_000] {
        let _ = window.arrive(seq.wrapping_add(step));
        let mut p = packet.clone();
        p.header.sequence_number = seq.wrapping_add(step);
        cache.insert(&p);
        if forwarder.forward(&mut p.header, info).is_ok() {
            let out_seq = p.header.sequence_number;
            if let Some(original) = forwarder.original_seq(out_seq) {
                if let Some(cached) = cache.get(original) {
                    let mut again = cached.clone();
                    let _ = forwarder.rewrite_retransmission(&mut again.header, out_seq);
                }
            }
            let _ = p.marshal();
        }
        if step == 600 {
            forwarder.switch_source_after(Duration::from_millis(u64::from(seq)));
        }
    }
}
