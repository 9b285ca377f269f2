//! Per-Peer live figures for operators: bitrates and the downlink
//! bandwidth estimate, refreshed every `SAMPLE_INTERVAL` on the Worker's
//! timer from byte counts and the congestion controller; loss, RTT and
//! jitter, from each receiver report (`reports.rs`); and the transport its
//! connection uses.

use rtc::shared::TransportProtocol;
use std::time::{Duration, Instant};

use rtc::peer_connection::transport::RTCIceCandidateType;
use rtc::statistics::report::RTCStatsReportEntry;
use rtc::statistics::StatsSelector;

use super::ids::PeerId;
use super::Core;

/// How often Peers are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// How a Peer's media connection reached the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Direct UDP.
    Udp,
    /// ICE-TCP.
    Tcp,
    /// Through a TURN relay.
    Relay,
}

impl Transport {
    /// Every transport, in counter order.
    pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Relay];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Relay => "relay",
        }
    }
}

/// The latest figures of one Peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quality {
    /// RTP bits per second received from it, over the last sample interval.
    pub bitrate_in: f64,
    /// RTP bits per second forwarded to it.
    pub bitrate_out: f64,
    /// Worst fraction lost (0–1) its receiver reports give, over its streams.
    pub loss: Option<f64>,
    /// Latest round-trip time in seconds.
    pub rtt: Option<f64>,
    /// Worst interarrival jitter in seconds.
    pub jitter: Option<f64>,
    /// How its connection reached the SFU, once connected.
    pub transport: Option<Transport>,
    /// The estimate of its downlink, in bits per second: the congestion
    /// controller's, from its TWCC feedback, once it receives something;
    /// or, for a client without TWCC, the latest REMB it sent.
    pub bandwidth_estimate: Option<f64>,
    /// The latest REMB (receiver-estimated maximum bitrate) it sent.
    pub remb: Option<f64>,
}

/// Byte counts at the previous sample.
#[derive(Debug, Clone, Copy)]
pub struct SampleBase {
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
}

impl SampleBase {
    /// A base at `now` with no bytes yet.
    pub fn new(now: Instant) -> Self {
        Self {
            at: now,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

impl Core {
    /// Refreshes every Peer's bitrates and bandwidth estimate.
    pub(super) fn sample_quality(&mut self, now: Instant) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            let dt = now
                .saturating_duration_since(peer.sample_base.at)
                .as_secs_f64();
            if dt > 0.0 {
                peer.quality.bitrate_in =
                    (peer.bytes_in - peer.sample_base.bytes_in) as f64 * 8.0 / dt;
                peer.quality.bitrate_out =
                    (peer.bytes_out - peer.sample_base.bytes_out) as f64 * 8.0 / dt;
            }
            peer.sample_base = SampleBase {
                at: now,
                bytes_in: peer.bytes_in,
                bytes_out: peer.bytes_out,
            };
            if !peer.connected || peer.subscriptions.is_empty() {
                continue;
            }
            if !peer.twcc {
                if let Some(bps) = peer.quality.remb {
                    peer.quality.bandwidth_estimate = Some(bps);
                    peer.budget.set_estimate(bps);
                    self.histograms.subscriber_bandwidth.observe(bps);
                }
                continue;
            }
            // One estimate per connection; `rtc` copies it onto every
            // outbound stream's statistics.
            let report = peer.pc.get_stats(now, StatsSelector::None);
            let estimate = report
                .iter()
                .filter_map(|e| match e {
                    RTCStatsReportEntry::OutboundRtp(s) if s.target_bitrate > 0.0 => {
                        Some(s.target_bitrate)
                    }
                    _ => None,
                })
                .fold(None, |best: Option<f64>, b| {
                    Some(best.map_or(b, |x| x.max(b)))
                });
            if let Some(bps) = estimate {
                peer.quality.bandwidth_estimate = Some(bps);
                peer.budget.set_estimate(bps);
                self.histograms.subscriber_bandwidth.observe(bps);
            }
        }
    }

    /// How a just-connected Peer's selected candidate pair reaches us.
    pub(super) fn transport_of(&mut self, now: Instant, id: PeerId) -> Transport {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Transport::Udp;
        };
        // DTLS that just ran over one of its trickled relay candidates came
        // through TURN.
        let latest = self.routes.latest_of_peer(id);
        if latest.is_some_and(|(_, addr)| peer.relay_addrs.contains(&addr)) {
            return Transport::Relay;
        }
        let report = peer.pc.get_stats(now, StatsSelector::None);
        let pair = report
            .candidate_pairs()
            .find(|p| p.nominated)
            .or_else(|| report.candidate_pairs().next());
        let remote = pair.and_then(|p| report.get(&p.remote_candidate_id));
        match remote {
            Some(RTCStatsReportEntry::RemoteCandidate(c))
                if c.candidate_type == RTCIceCandidateType::Relay =>
            {
                Transport::Relay
            }
            // `rtc`'s remote-candidate stats leave `protocol` empty, so
            // ICE-TCP shows in the address DTLS just ran over (browsers
            // also check their lower-priority TCP pairs, which pins those).
            _ if latest.is_some_and(|(protocol, _)| protocol == TransportProtocol::TCP) => {
                Transport::Tcp
            }
            _ => Transport::Udp,
        }
    }
}
