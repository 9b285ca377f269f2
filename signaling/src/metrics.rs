//! Prometheus metrics. The control plane's own metrics live in a registry
//! here; the media plane's are read from each Worker's counters at scrape
//! time (no shared counter on the packet path) and exported as-is.

use prometheus::proto::{Bucket, Histogram as ProtoHistogram, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use sfu::core::histogram::Histogram;
use sfu::core::quality::Transport;
use sfu::core::rtcp_count::RtcpKind;
use sfu::core::{DropReason, Histograms, InboundDrop, LeaveReason, Snapshot};

use crate::protocol;

/// The control plane's metrics.
pub struct Metrics {
    registry: Registry,
    /// Open signaling WebSockets.
    pub ws_connections: IntGauge,
    /// Signaling messages received, by type.
    pub ws_messages: IntCounterVec,
    /// Signaling errors sent, by code.
    pub ws_errors: IntCounterVec,
    /// Sessions whose socket was lost, waiting for a resume.
    pub parked_sessions: IntGauge,
    /// Sessions resumed on a new socket.
    pub resumes: IntCounter,
    /// Requests and connections refused by a limit, by limit.
    pub limit_rejections: IntCounterVec,
}

/// Registers `metric` in `registry` and returns it (for the metrics kept
/// in other modules too: `cluster/`).
pub(crate) fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> T {
    // Names are fixed and distinct, so registration cannot collide.
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

impl Metrics {
    /// The registry, for metrics kept elsewhere (`security.rs`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A fresh set.
    pub fn new() -> Self {
        let registry = Registry::new();
        // CPU seconds, resident memory and open fds of this process.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        let ws_connections = register(
            &registry,
            IntGauge::new("sfu_ws_connections", "Open signaling WebSocket connections")
                .expect("valid metric"),
        );
        let ws_messages = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sfu_ws_messages_total",
                    "Signaling messages received, by type",
                ),
                &["type"],
            )
            .expect("valid metric"),
        );
        let ws_errors = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sfu_ws_errors_total",
                    "Signaling error replies sent, by code",
                ),
                &["code"],
            )
            .expect("valid metric"),
        );
        let parked_sessions = register(
            &registry,
            IntGauge::new(
                "sfu_ws_parked_sessions",
                "Sessions whose signaling socket was lost, kept for a resume",
            )
            .expect("valid metric"),
        );
        let resumes = register(
            &registry,
            IntCounter::new(
                "sfu_ws_resumes_total",
                "Sessions resumed on a new signaling socket",
            )
            .expect("valid metric"),
        );
        let limit_rejections = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sfu_limit_rejections_total",
                    "Signaling messages, connections and requests refused by a limit, by limit",
                ),
                &["limit"],
            )
            .expect("valid metric"),
        );
        // Every series exists from the start, so rates and alerts work
        // before the first message or error.
        for limit in crate::limits::Limit::ALL {
            limit_rejections.with_label_values(&[limit.label()]);
        }
        for kind in protocol::CLIENT_TYPES.iter().chain(["invalid"].iter()) {
            ws_messages.with_label_values(&[kind]);
        }
        for code in protocol::ERROR_CODES {
            ws_errors.with_label_values(&[code]);
        }
        Self {
            registry,
            ws_connections,
            ws_messages,
            ws_errors,
            parked_sessions,
            resumes,
            limit_rejections,
        }
    }

    /// The Prometheus text exposition of everything, with the media plane's
    /// figures taken from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let media = media_registry(snapshot);
        // Tasks alive on the runtime serving this scrape (signaling, admin
        // API, ICE-TCP connections): a leak check for soak tests.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            gauge(
                &media,
                "sfu_tokio_alive_tasks",
                "Tasks alive on the server's tokio runtime",
                runtime.metrics().num_alive_tasks() as u64,
            );
        }
        let mut families = self.registry.gather();
        families.extend(media.gather());
        families.extend(histogram_families(&snapshot.histograms));
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(%err, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn gauge(registry: &Registry, name: &str, help: &str, value: u64) {
    let g = register(registry, IntGauge::new(name, help).expect("valid metric"));
    g.set(value as i64);
}

fn counter(registry: &Registry, name: &str, help: &str, value: u64) {
    let c = register(registry, IntCounter::new(name, help).expect("valid metric"));
    c.inc_by(value);
}

fn by_kind(registry: &Registry, name: &str, help: &str, audio: u64, video: u64) {
    let c = register(
        registry,
        IntCounterVec::new(Opts::new(name, help), &["kind"]).expect("valid metric"),
    );
    c.with_label_values(&["audio"]).inc_by(audio);
    c.with_label_values(&["video"]).inc_by(video);
}

/// A one-off registry holding the media plane's figures.
fn media_registry(s: &Snapshot) -> Registry {
    let r = Registry::new();
    let c = &s.counters;
    gauge(
        &r,
        "sfu_rooms",
        "Rooms with at least one participant",
        s.rooms,
    );
    gauge(
        &r,
        "sfu_peers",
        "Connected or connecting participants",
        s.peers,
    );
    let tracks = register(
        &r,
        IntGaugeVec::new(
            Opts::new("sfu_tracks", "Published tracks, by kind"),
            &["kind"],
        )
        .expect("valid metric"),
    );
    tracks
        .with_label_values(&["audio"])
        .set(s.audio_tracks as i64);
    tracks
        .with_label_values(&["video"])
        .set(s.video_tracks as i64);
    gauge(
        &r,
        "sfu_subscriptions",
        "Tracks delivered to participants",
        s.subscriptions,
    );
    by_kind(
        &r,
        "sfu_rtp_packets_in_total",
        "RTP packets received from publishers",
        c.rtp_in.audio_packets,
        c.rtp_in.video_packets,
    );
    by_kind(
        &r,
        "sfu_rtp_bytes_in_total",
        "RTP bytes received from publishers",
        c.rtp_in.audio_bytes,
        c.rtp_in.video_bytes,
    );
    by_kind(
        &r,
        "sfu_rtp_packets_out_total",
        "RTP packets forwarded to subscribers",
        c.rtp_out.audio_packets,
        c.rtp_out.video_packets,
    );
    by_kind(
        &r,
        "sfu_rtp_bytes_out_total",
        "RTP bytes forwarded to subscribers",
        c.rtp_out.audio_bytes,
        c.rtp_out.video_bytes,
    );
    let dropped = register(
        &r,
        IntCounterVec::new(
            Opts::new(
                "sfu_packets_dropped_total",
                "Packets not forwarded to a subscriber, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    );
    for (reason, value) in DropReason::ALL.iter().zip(c.dropped.iter()) {
        dropped.with_label_values(&[reason.as_str()]).inc_by(*value);
    }
    // Packets the core did forward but a full ICE-TCP send queue dropped
    // (also in sfu_ice_tcp_send_dropped_total).
    dropped
        .with_label_values(&["queue_full"])
        .inc_by(s.ice_tcp.send_dropped);
    let inbound = register(
        &r,
        IntCounterVec::new(
            Opts::new(
                "sfu_inbound_dropped_packets_total",
                "Inbound datagrams and ICE-TCP frames the media plane dropped, by reason (RTCP packets for foreign_rtcp)",
            ),
            &["reason"],
        )
        .expect("valid metric"),
    );
    for (reason, value) in InboundDrop::ALL.iter().zip(c.inbound_dropped.iter()) {
        inbound.with_label_values(&[reason.as_str()]).inc_by(*value);
    }
    counter(
        &r,
        "sfu_datagrams_in_total",
        "UDP datagrams received on the media port",
        c.datagrams_in,
    );
    counter(
        &r,
        "sfu_datagrams_unrouted_total",
        "UDP datagrams that matched no participant",
        c.datagrams_unrouted,
    );
    counter(
        &r,
        "sfu_datagrams_rejected_total",
        "UDP datagrams the WebRTC stack rejected",
        c.datagrams_rejected,
    );
    counter(
        &r,
        "sfu_keyframe_requests_sent_total",
        "Keyframe requests (PLI) sent to publishers",
        c.keyframe_requests_sent,
    );
    counter(
        &r,
        "sfu_keyframe_requests_throttled_total",
        "Keyframe requests suppressed by the per-track throttle",
        c.keyframe_requests_throttled,
    );
    counter(
        &r,
        "sfu_keyframe_requests_received_total",
        "PLI and FIR received from subscribers",
        c.keyframe_requests_received,
    );
    counter(&r, "sfu_joins_total", "Participants that joined", c.joins);
    let leaves = register(
        &r,
        IntCounterVec::new(
            Opts::new("sfu_leaves_total", "Participants that left, by reason"),
            &["reason"],
        )
        .expect("valid metric"),
    );
    for (reason, value) in LeaveReason::ALL.iter().zip(c.leaves.iter()) {
        leaves.with_label_values(&[reason.as_str()]).inc_by(*value);
    }
    let ice = register(
        &r,
        IntCounterVec::new(
            Opts::new(
                "sfu_ice_connections_total",
                "Media connections established, by transport",
            ),
            &["transport"],
        )
        .expect("valid metric"),
    );
    for (transport, value) in Transport::ALL.iter().zip(c.ice_connections.iter()) {
        ice.with_label_values(&[transport.as_str()]).inc_by(*value);
    }
    let layers = register(
        &r,
        IntGaugeVec::new(
            Opts::new(
                "sfu_video_layer_subscriptions",
                "Simulcast video subscriptions by the layer forwarded now",
            ),
            &["layer"],
        )
        .expect("valid metric"),
    );
    for (rid, n) in ["q", "h", "f"].iter().zip(s.video_layers) {
        layers.with_label_values(&[rid]).set(n as i64);
    }
    gauge(
        &r,
        "sfu_video_paused_subscriptions",
        "Video subscriptions paused because the subscriber's bandwidth fits no layer",
        s.paused_videos,
    );
    counter(
        &r,
        "sfu_layer_changes_total",
        "Target-layer changes of simulcast subscriptions (including pauses)",
        c.layer_changes,
    );
    counter(
        &r,
        "sfu_layer_switches_total",
        "Simulcast layer switches carried out at a keyframe",
        c.layer_switches,
    );
    counter(
        &r,
        "sfu_dynacast_changes_total",
        "Messages telling a publisher which simulcast layers to keep encoding",
        c.dynacast_changes,
    );
    counter(
        &r,
        "sfu_dtls_repeats_dropped_total",
        "DTLS ClientHellos repeated after the SFU's ServerHello, dropped so that its retransmission timer runs",
        c.dtls_repeats_dropped,
    );
    counter(
        &r,
        "sfu_rtp_unpermitted_total",
        "RTP packets from participants whose token may not publish, dropped",
        c.rtp_unpermitted,
    );
    counter(
        &r,
        "sfu_worker_panics_total",
        "Panics in the media worker, contained (the participant removed, or the worker's rooms restarted)",
        c.panics,
    );
    let tcp = &s.ice_tcp;
    gauge(
        &r,
        "sfu_ice_tcp_connections",
        "Open ICE-TCP connections",
        tcp.open,
    );
    let tcp_total = register(
        &r,
        IntCounterVec::new(
            Opts::new(
                "sfu_ice_tcp_connections_total",
                "ICE-TCP connections: accepted, refused at accept (too many open), \
                 closed for never passing an ICE check",
            ),
            &["result"],
        )
        .expect("valid metric"),
    );
    for (result, value) in [
        ("accepted", tcp.accepted),
        ("refused", tcp.refused),
        ("unverified", tcp.unverified),
    ] {
        tcp_total.with_label_values(&[result]).inc_by(value);
    }
    counter(
        &r,
        "sfu_ice_tcp_send_dropped_total",
        "Packets dropped because an ICE-TCP connection's send queue was full",
        tcp.send_dropped,
    );
    let rtcp = register(
        &r,
        IntCounterVec::new(
            Opts::new(
                "sfu_rtcp_packets_total",
                "RTCP packets received and sent, by type",
            ),
            &["direction", "type"],
        )
        .expect("valid metric"),
    );
    for (i, kind) in RtcpKind::ALL.iter().enumerate() {
        rtcp.with_label_values(&["in", kind.as_str()])
            .inc_by(s.rtcp.rtcp_in[i]);
        rtcp.with_label_values(&["out", kind.as_str()])
            .inc_by(s.rtcp.rtcp_out[i]);
    }
    counter(
        &r,
        "sfu_media_datagrams_out_total",
        "SRTP media datagrams sent: forwarded packets and retransmissions",
        s.rtcp.rtp_out_wire,
    );
    counter(
        &r,
        "sfu_retransmissions_total",
        "RTP packets retransmitted to subscribers in answer to NACKs",
        s.retransmissions(),
    );
    if let Some(cpu) = process_cpu_seconds() {
        let c = register(
            &r,
            prometheus::Counter::new(
                "sfu_process_cpu_seconds_total",
                "User and system CPU time of this process in seconds, to 10 ms",
            )
            .expect("valid metric"),
        );
        c.inc_by(cpu);
    }
    let build = register(
        &r,
        IntGaugeVec::new(
            Opts::new("sfu_build_info", "Version and git commit of this build"),
            &["version", "git_sha"],
        )
        .expect("valid metric"),
    );
    build
        .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("SFU_GIT_SHA")])
        .set(1);
    r
}

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// This process's user plus system CPU time from `/proc/self/stat`, with
/// the ticks' 10 ms resolution (the process collector's
/// `process_cpu_seconds_total` rounds down to whole seconds).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_seconds(&stat)
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2)
/// may contain spaces, so fields are counted after its closing parenthesis.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

fn histogram_family(name: &str, help: &str, h: &Histogram) -> MetricFamily {
    let buckets = h
        .cumulative()
        .map(|(bound, count)| {
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(count);
            b
        })
        .collect();
    let mut proto = ProtoHistogram::default();
    proto.set_bucket(buckets);
    proto.set_sample_count(h.count);
    proto.set_sample_sum(h.sum);
    let mut metric = Metric::default();
    metric.set_histogram(proto);
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(MetricType::HISTOGRAM);
    family.set_metric(vec![metric]);
    family
}

/// The Worker's distributions as Prometheus histograms.
fn histogram_families(h: &Histograms) -> Vec<MetricFamily> {
    vec![
        histogram_family(
            "sfu_forward_latency_seconds",
            "Datagram received to forwarded datagram sent, sampled 1 in 8",
            &h.forward_latency,
        ),
        histogram_family(
            "sfu_join_time_seconds",
            "Signaling join to the first packet forwarded to the participant",
            &h.join_time,
        ),
        histogram_family(
            "sfu_subscriber_rtt_seconds",
            "Subscribers' round-trip time from each receiver report",
            &h.subscriber_rtt,
        ),
        histogram_family(
            "sfu_subscriber_jitter_seconds",
            "Subscribers' interarrival jitter from each receiver report",
            &h.subscriber_jitter,
        ),
        histogram_family(
            "sfu_subscriber_bandwidth_bps",
            "Subscribers' downlink bandwidth estimate from transport-wide congestion control, sampled every 2 s",
            &h.subscriber_bandwidth,
        ),
        histogram_family(
            "sfu_subscriber_loss_ratio",
            "Subscribers' fraction lost from each receiver report",
            &h.subscriber_loss,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_from_proc_stat() {
        let stat = "1234 (sfu server) S 1 1234 1234 0 -1 4194560 5 0 0 0 157 43 0 0 20 0 4 0";
        assert_eq!(parse_cpu_seconds(stat), Some(2.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
        #[cfg(target_os = "linux")]
        assert!(process_cpu_seconds().is_some());
    }

    #[tokio::test]
    async fn counts_the_runtimes_tasks() {
        let task = tokio::spawn(std::future::pending::<()>());
        let text = Metrics::new().render(&Snapshot::default());
        task.abort();
        assert!(text.contains("sfu_tokio_alive_tasks 1\n"), "{text}");
    }

    #[test]
    fn renders_media_and_control_metrics() {
        let m = Metrics::new();
        m.ws_connections.inc();
        let mut s = Snapshot {
            peers: 3,
            ..Default::default()
        };
        s.counters.rtp_in.video_packets = 7;
        s.counters.inbound_dropped[InboundDrop::RateLimit as usize] = 5;
        let text = m.render(&s);
        assert!(text.contains("sfu_peers 3\n"), "{text}");
        assert!(
            text.contains("sfu_rtp_packets_in_total{kind=\"video\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sfu_rtp_packets_in_total counter"),
            "{text}"
        );
        assert!(text.contains("sfu_ws_connections 1\n"), "{text}");
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_cpu_seconds_total"), "{text}");
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(
            text.contains("sfu_packets_dropped_total{reason=\"send_failed\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("sfu_inbound_dropped_packets_total{reason=\"rate_limit\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("sfu_inbound_dropped_packets_total{reason=\"foreign_rtcp\"} 0\n"),
            "{text}"
        );
    }
}
