//! Counts every RTCP packet each Peer's connection receives and sends, by
//! type, and every RTP packet it puts on the wire. An interceptor at the
//! wire-most end of each connection's chain does the counting, so it sees
//! what `rtc`'s own interceptors consume (receiver reports, NACK, TWCC) and
//! generate (sender reports, retransmissions).
//!
//! The tally is shared by all connections of one Worker and touched only by
//! that Worker's thread; relaxed atomics make it `Send`, as `rtc` requires,
//! without contention.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;

/// RTCP packet types we count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpKind {
    /// Picture loss indication.
    Pli,
    /// Full intra request.
    Fir,
    /// Generic NACK.
    Nack,
    /// Receiver report.
    Rr,
    /// Sender report.
    Sr,
    /// Transport-wide congestion control feedback.
    Twcc,
    /// Receiver estimated maximum bitrate.
    Remb,
    /// Anything else (SDES, BYE, XR, ...).
    Other,
}

impl RtcpKind {
    /// Every kind, in counter order.
    pub const ALL: [RtcpKind; 8] = [
        RtcpKind::Pli,
        RtcpKind::Fir,
        RtcpKind::Nack,
        RtcpKind::Rr,
        RtcpKind::Sr,
        RtcpKind::Twcc,
        RtcpKind::Remb,
        RtcpKind::Other,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RtcpKind::Pli => "pli",
            RtcpKind::Fir => "fir",
            RtcpKind::Nack => "nack",
            RtcpKind::Rr => "rr",
            RtcpKind::Sr => "sr",
            RtcpKind::Twcc => "twcc",
            RtcpKind::Remb => "remb",
            RtcpKind::Other => "other",
        }
    }

    fn of(packet: &dyn rtc::rtcp::Packet) -> RtcpKind {
        let any = packet.as_any();
        if any.is::<PictureLossIndication>() {
            RtcpKind::Pli
        } else if any.is::<FullIntraRequest>() {
            RtcpKind::Fir
        } else if any.is::<TransportLayerNack>() {
            RtcpKind::Nack
        } else if any.is::<ReceiverReport>() {
            RtcpKind::Rr
        } else if any.is::<SenderReport>() {
            RtcpKind::Sr
        } else if any.is::<TransportLayerCc>() {
            RtcpKind::Twcc
        } else if any.is::<ReceiverEstimatedMaximumBitrate>() {
            RtcpKind::Remb
        } else {
            RtcpKind::Other
        }
    }
}

const KINDS: usize = RtcpKind::ALL.len();

/// The shared counts.
#[derive(Debug, Default)]
pub struct RtcpTally {
    rtcp_in: [AtomicU64; KINDS],
    rtcp_out: [AtomicU64; KINDS],
    rtp_out_wire: AtomicU64,
}

/// A copy of the counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RtcpCounts {
    /// RTCP packets received, by `RtcpKind::ALL` index.
    pub rtcp_in: [u64; KINDS],
    /// RTCP packets sent, by `RtcpKind::ALL` index.
    pub rtcp_out: [u64; KINDS],
    /// RTP packets that left for the wire (forwarded and retransmitted).
    pub rtp_out_wire: u64,
}

impl RtcpTally {
    /// A copy of the counts.
    pub fn counts(&self) -> RtcpCounts {
        let load = |a: &[AtomicU64; KINDS]| std::array::from_fn(|i| a[i].load(Ordering::Relaxed));
        RtcpCounts {
            rtcp_in: load(&self.rtcp_in),
            rtcp_out: load(&self.rtcp_out),
            rtp_out_wire: self.rtp_out_wire.load(Ordering::Relaxed),
        }
    }

    fn count_rtcp(counters: &[AtomicU64; KINDS], packet: &Packet) {
        if let Packet::Rtcp(packets) = packet {
            for p in packets {
                let kind = RtcpKind::of(p.as_ref());
                let i = RtcpKind::ALL
                    .iter()
                    .position(|k| *k == kind)
                    .unwrap_or(KINDS - 1);
                counters[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The counting interceptor of one connection.
pub struct TallyInterceptor {
    tally: Arc<RtcpTally>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl TallyInterceptor {
    /// An interceptor counting into `tally`.
    pub fn new(tally: Arc<RtcpTally>) -> Self {
        Self {
            tally,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for TallyInterceptor {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = RtcError;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        RtcpTally::count_rtcp(&self.tally.rtcp_in, &msg.message.packet);
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        match &msg.message.packet {
            Packet::Rtp(_) => {
                self.tally.rtp_out_wire.fetch_add(1, Ordering::Relaxed);
            }
            packet => RtcpTally::count_rtcp(&self.tally.rtcp_out, packet),
        }
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl Interceptor for TallyInterceptor {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
