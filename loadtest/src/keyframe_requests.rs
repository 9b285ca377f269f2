//! Keyframe requests (PLI, FIR) reaching a synthetic publisher. `rtc`'s
//! interceptor chain drops inbound RTCP unless something marks it for
//! delivery; publishers need PLIs to answer them with keyframes, so their
//! chain gets the SFU crate's `DeliverRtcp` marker with this predicate.

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
pub use sfu::core::deliver_rtcp::DeliverRtcp;

/// Whether an RTCP packet asks for a keyframe.
pub fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}
