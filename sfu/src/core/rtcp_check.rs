//! Which RTCP packets from a Peer name SSRCs it has no business naming.
//!
//! A subscriber's feedback (PLI, FIR, NACK, receiver-report blocks, and
//! REMB, which must name at least one) must be about streams the SFU sends
//! it; a publisher's sender report must be about a stream it publishes.
//! Anything else is dropped and counted
//! (`InboundDrop::ForeignRtcp`), so no peer can make the SFU ask another
//! peer's publisher for keyframes or resend another subscription's packets.
//!
//! `rtc` hands the core a compound under the track of its first packet's
//! first SSRC (and drops a compound whose first SSRC is unknown on that
//! connection); the core therefore checks, and resolves, every packet by
//! its own SSRCs. Transport-wide feedback (TWCC) never reaches the core:
//! `rtc`'s estimator of that same connection consumes it, so it can only
//! move the sender's own downlink estimate.

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

/// Whether `packet` names an SSRC the Peer may not name. `receives(ssrc)`:
/// the SFU sends that SSRC to the Peer; `publishes(ssrc)`: the Peer sends
/// that SSRC to the SFU. Packet types the core does not act on are never
/// foreign.
pub fn is_foreign(
    packet: &dyn rtc::rtcp::Packet,
    receives: &dyn Fn(u32) -> bool,
    publishes: &dyn Fn(u32) -> bool,
) -> bool {
    let any = packet.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        return !receives(pli.media_ssrc);
    }
    if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        return fir.fir.is_empty() || fir.fir.iter().any(|e| !receives(e.ssrc));
    }
    if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
        return !receives(nack.media_ssrc);
    }
    if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
        // An estimate of the Peer's own downlink: it must name one of its
        // streams, and may still list one that just ended.
        return !remb.ssrcs.is_empty() && !remb.ssrcs.iter().any(|s| receives(*s));
    }
    if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        return rr.reports.iter().any(|r| !receives(r.ssrc));
    }
    if let Some(sr) = any.downcast_ref::<SenderReport>() {
        return !publishes(sr.ssrc) || sr.reports.iter().any(|r| !receives(r.ssrc));
    }
    false
}

/// How many packets of a compound are foreign (see [`is_foreign`]).
pub fn foreign_ssrcs(
    packets: &[Box<dyn rtc::rtcp::Packet>],
    receives: &dyn Fn(u32) -> bool,
    publishes: &dyn Fn(u32) -> bool,
) -> usize {
    packets
        .iter()
        .filter(|p| is_foreign(p.as_ref(), receives, publishes))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::payload_feedbacks::full_intra_request::FirEntry;
    use rtc::rtcp::reception_report::ReceptionReport;

    fn mine(ssrc: u32) -> bool {
        ssrc == 10 || ssrc == 11
    }

    fn published(ssrc: u32) -> bool {
        ssrc == 20
    }

    fn foreign(p: &dyn rtc::rtcp::Packet) -> bool {
        is_foreign(p, &mine, &published)
    }

    #[test]
    fn feedback_about_own_streams_passes() {
        assert!(!foreign(&PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 10
        }));
        assert!(!foreign(&TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 11,
            nacks: vec![],
        }));
        assert!(!foreign(&ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 1e6,
            ssrcs: vec![10, 11],
        }));
        // One stream that just ended among its own.
        assert!(!foreign(&ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 1e6,
            ssrcs: vec![10, 99],
        }));
        assert!(!foreign(&FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: 0,
            fir: vec![FirEntry {
                ssrc: 10,
                sequence_number: 1
            }],
        }));
        assert!(!foreign(&SenderReport {
            ssrc: 20,
            ..Default::default()
        }));
    }

    #[test]
    fn feedback_about_other_streams_is_foreign() {
        assert!(foreign(&PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 99
        }));
        assert!(foreign(&TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 20,
            nacks: vec![],
        }));
        assert!(foreign(&ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 1e6,
            ssrcs: vec![98, 99],
        }));
        assert!(foreign(&ReceiverReport {
            ssrc: 1,
            reports: vec![ReceptionReport {
                ssrc: 99,
                ..Default::default()
            }],
            ..Default::default()
        }));
        // A sender report for a stream the Peer does not publish.
        assert!(foreign(&SenderReport {
            ssrc: 10,
            ..Default::default()
        }));
    }

    #[test]
    fn counts_foreign_packets_of_a_compound() {
        let compound: Vec<Box<dyn rtc::rtcp::Packet>> = vec![
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 10,
            }),
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 77,
            }),
        ];
        assert_eq!(foreign_ssrcs(&compound, &mine, &published), 1);
    }
}
