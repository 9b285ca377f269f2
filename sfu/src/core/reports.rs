//! Subscribers' receiver reports, read by the core itself: fraction lost,
//! interarrival jitter (converted from RTP clock units to seconds with the
//! Subscription's clock rate) and round-trip time (RFC 3550 §6.4.1: arrival
//! time minus LSR minus DLSR). `rtc` 0.21.1's own statistics record 0 for
//! every RTT and leave jitter in clock units (docs/ARCHITECTURE.md,
//! "webrtc-rs notes").

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;

use super::ids::PeerId;
use super::Core;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 0x83AA_7E80;

/// Maps the monotonic clock to wall-clock NTP time, the way `rtc` stamps
/// its sender reports.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    unix: Duration,
}

impl WallClock {
    /// Pairs `now` with the current wall-clock time.
    pub fn new(now: Instant) -> Self {
        Self {
            instant: now,
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// The middle 32 bits of the 64-bit NTP timestamp at `now` (units of
    /// 1/65536 s), as LSR carries it.
    pub fn ntp_compact(&self, now: Instant) -> u32 {
        let unix = self.unix + now.saturating_duration_since(self.instant);
        let seconds = unix.as_secs() + NTP_UNIX_OFFSET;
        let fraction = (u64::from(unix.subsec_nanos()) << 16) / 1_000_000_000;
        ((seconds << 16) | fraction) as u32
    }
}

/// Round-trip time in seconds from a report block that arrived at
/// `arrival` (NTP compact), or `None` if no SR was seen or the result is
/// implausible (clock step, report from before a restart).
pub fn round_trip(arrival: u32, report: &ReceptionReport) -> Option<f64> {
    if report.last_sender_report == 0 {
        return None;
    }
    let rtt = arrival
        .wrapping_sub(report.last_sender_report)
        .wrapping_sub(report.delay);
    // More than an hour means the subtraction went negative.
    (rtt < 3600 << 16).then(|| f64::from(rtt) / 65536.0)
}

impl Core {
    /// A receiver report from subscriber `id`, about the streams we send it.
    pub(super) fn on_receiver_report(&mut self, now: Instant, id: PeerId, rr: &ReceiverReport) {
        let arrival = self.wall_clock.ntp_compact(now);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        for report in &rr.reports {
            let Some(sub) = peer
                .subscriptions
                .values()
                .find(|s| s.forwarder.out_ssrc() == report.ssrc)
            else {
                continue;
            };
            let loss = f64::from(report.fraction_lost) / 256.0;
            let jitter = f64::from(report.jitter) / f64::from(sub.codec.clock_rate.max(1));
            self.histograms.subscriber_loss.observe(loss);
            self.histograms.subscriber_jitter.observe(jitter);
            peer.quality.loss = Some(loss);
            peer.quality.jitter = Some(jitter);
            if let Some(rtt) = round_trip(arrival, report) {
                self.histograms.subscriber_rtt.observe(rtt);
                peer.quality.rtt = Some(rtt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lsr: u32, dlsr: u32) -> ReceptionReport {
        ReceptionReport {
            ssrc: 1,
            last_sender_report: lsr,
            delay: dlsr,
            ..Default::default()
        }
    }

    #[test]
    fn rtt_is_arrival_minus_lsr_minus_dlsr() {
        // SR sent at 1000.0 s, held 0.25 s by the receiver, back at 1000.3 s.
        let lsr = 1000 << 16;
        let dlsr = 1 << 14;
        let arrival = (1000 << 16) + (3 * 65536 / 10);
        let rtt = round_trip(arrival, &report(lsr, dlsr)).unwrap();
        assert!((rtt - 0.05).abs() < 0.001, "{rtt}");
    }

    #[test]
    fn rtt_handles_wrap_and_rejects_nonsense() {
        let lsr = u32::MAX - 100;
        let rtt = round_trip(lsr.wrapping_add(6554), &report(lsr, 0)).unwrap();
        assert!((rtt - 0.1).abs() < 0.001, "{rtt}");
        assert_eq!(round_trip(123, &report(0, 0)), None, "no SR seen yet");
        assert_eq!(round_trip(1000, &report(2000, 0)), None, "negative");
    }

    #[test]
    fn wall_clock_advances_with_the_monotonic_clock() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0);
        let a = clock.ntp_compact(t0);
        let b = clock.ntp_compact(t0 + Duration::from_millis(500));
        assert_eq!(b.wrapping_sub(a), 32768);
    }
}
