//! Limits on what one signaling client may send or hold: message size and
//! rate, connections per IP, peers per node, tracks per peer, SDP size and
//! line count, ICE candidates per offer, and the time a socket may stay
//! open without joining. Each limit is a flag of `sfu-server`, is enforced
//! with an error naming it, and is counted in
//! `sfu_limit_rejections_total{limit}`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::ratelimit::RateLimiter;
use crate::Config;

/// Which limit refused something; the `limit` label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--max-message-bytes`.
    MessageSize,
    /// `--max-messages-per-sec`.
    MessageRate,
    /// `--max-connections-per-ip`.
    ConnectionsPerIp,
    /// `--max-peers`.
    Peers,
    /// `--max-tracks-per-peer`.
    TracksPerPeer,
    /// `--max-sdp-bytes`.
    SdpSize,
    /// `--max-sdp-lines`.
    SdpLines,
    /// `--max-candidates-per-offer`.
    Candidates,
    /// `--join-timeout-secs`.
    JoinTimeout,
}

impl Limit {
    /// Every limit, for registering the metric's label values up front.
    pub const ALL: [Limit; 9] = [
        Limit::MessageSize,
        Limit::MessageRate,
        Limit::ConnectionsPerIp,
        Limit::Peers,
        Limit::TracksPerPeer,
        Limit::SdpSize,
        Limit::SdpLines,
        Limit::Candidates,
        Limit::JoinTimeout,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Limit::MessageSize => "message_size",
            Limit::MessageRate => "message_rate",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::Peers => "peers",
            Limit::TracksPerPeer => "tracks_per_peer",
            Limit::SdpSize => "sdp_size",
            Limit::SdpLines => "sdp_lines",
            Limit::Candidates => "candidates",
            Limit::JoinTimeout => "join_timeout",
        }
    }
}

/// The configured limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest signaling message, in bytes.
    pub max_message_bytes: usize,
    /// Sustained messages per second per connection.
    pub messages_per_sec: u32,
    /// Messages a connection may send at once above the sustained rate.
    pub message_burst: u32,
    /// Open signaling connections from one IP address.
    pub max_connections_per_ip: u32,
    /// Participants on this node.
    pub max_peers: usize,
    /// Media sections a participant's offer may send on.
    pub max_tracks_per_peer: usize,
    /// Largest SDP, in bytes.
    pub max_sdp_bytes: usize,
    /// Most lines in an SDP.
    pub max_sdp_lines: usize,
    /// ICE candidates a client may trickle per offer or answer.
    pub max_candidates_per_offer: u32,
    /// How long a socket may stay open without joining a room, registering
    /// a call ID or resuming a session.
    pub join_timeout: Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_message_bytes: config.max_message_bytes,
            messages_per_sec: config.max_messages_per_sec,
            message_burst: config.max_messages_per_sec.saturating_mul(4),
            max_connections_per_ip: config.max_connections_per_ip,
            max_peers: config.max_peers,
            max_tracks_per_peer: config.max_tracks_per_peer,
            max_sdp_bytes: config.max_sdp_bytes,
            max_sdp_lines: config.max_sdp_lines,
            max_candidates_per_offer: config.max_candidates_per_offer,
            join_timeout: Duration::from_secs(config.join_timeout_secs),
        }
    }

    /// Checks an SDP the client sent: its size, its line count, and (for
    /// an offer) how many media sections it sends on.
    pub fn check_sdp(&self, sdp: &str, is_offer: bool) -> Result<(), (Limit, String)> {
        if sdp.len() > self.max_sdp_bytes {
            return Err((
                Limit::SdpSize,
                format!(
                    "SDP of {} bytes exceeds the limit of {} bytes",
                    sdp.len(),
                    self.max_sdp_bytes
                ),
            ));
        }
        let lines = sdp.lines().count();
        if lines > self.max_sdp_lines {
            return Err((
                Limit::SdpLines,
                format!(
                    "SDP of {lines} lines exceeds the limit of {} lines",
                    self.max_sdp_lines
                ),
            ));
        }
        if is_offer {
            let sending = sending_media_sections(sdp);
            if sending > self.max_tracks_per_peer {
                return Err((
                    Limit::TracksPerPeer,
                    format!(
                        "the offer sends {sending} tracks; at most {} per participant",
                        self.max_tracks_per_peer
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Audio and video sections of an SDP whose direction lets the sender
/// send (`sendrecv`, the default, or `sendonly`) and that carry a track
/// (`a=msid` or `a=ssrc`).
pub fn sending_media_sections(sdp: &str) -> usize {
    let mut count = 0;
    let mut section: Option<(bool, bool)> = None; // (sends, carries a track)
    let mut close = |section: Option<(bool, bool)>| {
        if section == Some((true, true)) {
            count += 1;
        }
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            close(section.take());
            if media.starts_with("audio ") || media.starts_with("video ") {
                section = Some((true, false));
            }
        } else if let Some((sends, track)) = section.as_mut() {
            match line {
                "a=recvonly" | "a=inactive" => *sends = false,
                "a=sendrecv" | "a=sendonly" => *sends = true,
                _ if line.starts_with("a=msid:") || line.starts_with("a=ssrc:") => *track = true,
                _ => {}
            }
        }
    }
    close(section);
    count
}

/// What to do with a message under `--max-messages-per-sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the rate: handle it.
    Pass,
    /// Over the rate: drop it, and tell the client if `warn` (at most once
    /// a second).
    Drop {
        /// Send a `rate_limited` error with this drop.
        warn: bool,
    },
    /// The client kept flooding: close the connection.
    Close,
}

/// One connection's message rate: a token bucket for the messages, and a
/// second one for the drops. A client a little over the rate loses the
/// excess; one that floods empties the drop bucket and is closed.
#[derive(Debug)]
pub struct MessageRate {
    bucket: RateLimiter,
    drops: RateLimiter,
    warned_at: Option<Instant>,
}

impl MessageRate {
    /// A full bucket for `limits`.
    pub fn new(limits: &Limits) -> Self {
        let rate = f64::from(limits.messages_per_sec);
        Self {
            bucket: RateLimiter::new(limits.message_burst, rate),
            // Ten bursts' worth of drops, beyond what refills at the
            // sustained rate, is a flood, not a client catching up.
            drops: RateLimiter::new(limits.message_burst.saturating_mul(10), rate),
            warned_at: None,
        }
    }

    /// Judges one message arriving at `now`.
    pub fn judge(&mut self, now: Instant) -> RateVerdict {
        if self.bucket.allow_at(now) {
            return RateVerdict::Pass;
        }
        if !self.drops.allow_at(now) {
            return RateVerdict::Close;
        }
        let warn = self
            .warned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if warn {
            self.warned_at = Some(now);
        }
        RateVerdict::Drop { warn }
    }
}

/// Open signaling connections per client IP.
#[derive(Debug, Default)]
pub struct IpConnections {
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl IpConnections {
    /// Takes one of `ip`'s `max` connection slots; `None` when all are
    /// taken. The slot is given back when the returned guard drops.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    pub fn count(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// One connection's slot in [`IpConnections`].
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<IpConnections>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The client's IP address, when the server knows it (it always does when
/// serving sockets; in-process router tests may not).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENDING_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=msid:s a\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=msid:s v\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";

    fn limits() -> Limits {
        Limits::from_config(&Config::loopback("t"))
    }

    #[test]
    fn counts_only_sections_that_send_a_track() {
        assert_eq!(sending_media_sections(SENDING_OFFER), 2);
        assert_eq!(sending_media_sections(""), 0);
        assert_eq!(
            sending_media_sections("m=video 9 X 96\na=sendonly\na=ssrc:1 cname:x\n"),
            1
        );
        assert_eq!(
            sending_media_sections("m=audio 9 X 111\na=msid:a b\na=inactive\n"),
            0
        );
    }

    #[test]
    fn sending_offers_are_told_apart() {
        let recv = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";
        assert!(!sending_media_sections(recv) > 0);
        let send = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\na=msid:s t\r\n";
        assert!(sending_media_sections(send) > 0);
        let no_source = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n";
        assert!(!sending_media_sections(no_source) > 0);
        let data = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ssrc:1 x\r\n";
        assert!(!sending_media_sections(data) > 0);
        let ssrc = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=ssrc:5 cname:x\r\n";
        assert!(sending_media_sections(ssrc) > 0);
    }

    #[test]
    fn an_offer_with_too_many_tracks_is_refused() {
        let mut l = limits();
        l.max_tracks_per_peer = 1;
        let (limit, message) = l.check_sdp(SENDING_OFFER, true).unwrap_err();
        assert_eq!(limit, Limit::TracksPerPeer);
        assert!(message.contains("sends 2 tracks"), "{message}");
        // An answer is not an offer to publish.
        assert!(l.check_sdp(SENDING_OFFER, false).is_ok());
    }

    #[test]
    fn sdp_size_and_lines_are_limited() {
        let mut l = limits();
        l.max_sdp_bytes = 10;
        assert_eq!(
            l.check_sdp(SENDING_OFFER, false).unwrap_err().0,
            Limit::SdpSize
        );
        let mut l = limits();
        l.max_sdp_lines = 3;
        assert_eq!(
            l.check_sdp(SENDING_OFFER, false).unwrap_err().0,
            Limit::SdpLines
        );
    }

    #[test]
    fn a_flood_is_dropped_with_one_warning_a_second_then_closed() {
        let mut l = limits();
        l.messages_per_sec = 10;
        l.message_burst = 20;
        let mut rate = MessageRate::new(&l);
        let start = Instant::now();
        let verdicts: Vec<_> = (0..300).map(|_| rate.judge(start)).collect();
        assert!(verdicts[..20].iter().all(|v| *v == RateVerdict::Pass));
        assert_eq!(verdicts[20], RateVerdict::Drop { warn: true });
        assert!(verdicts[21..220]
            .iter()
            .all(|v| *v == RateVerdict::Drop { warn: false }));
        assert_eq!(verdicts[220], RateVerdict::Close);
        // A client that slows down is fine again.
        let mut rate = MessageRate::new(&l);
        for _ in 0..25 {
            rate.judge(start);
        }
        let later = start + Duration::from_secs(1);
        assert_eq!(rate.judge(later), RateVerdict::Pass);
        // One that keeps at twice the rate loses half, and stays.
        let mut rate = MessageRate::new(&l);
        let mut closed = false;
        for i in 0..2000u64 {
            let at = start + Duration::from_millis(i * 50);
            closed |= rate.judge(at) == RateVerdict::Close;
        }
        assert!(!closed);
        // One that floods at fifty times the rate is closed within seconds,
        // even though a message passes now and then.
        let mut rate = MessageRate::new(&l);
        let closed_at = (0..100_000u64)
            .find(|i| rate.judge(start + Duration::from_millis(i * 2)) == RateVerdict::Close)
            .expect("closed");
        assert!(closed_at * 2 < 1000, "closed after {} ms", closed_at * 2);
    }

    #[test]
    fn ip_slots_are_given_back() {
        let conns = Arc::new(IpConnections::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = conns.acquire(ip, 2).unwrap();
        let _b = conns.acquire(ip, 2).unwrap();
        assert!(conns.acquire(ip, 2).is_none());
        assert!(conns.acquire("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert_eq!(conns.count(ip), 1);
        assert!(conns.acquire(ip, 2).is_some());
    }
}
