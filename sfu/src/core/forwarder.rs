//! The Forwarder: per Subscription, decides for each packet of the source Track
//! whether it goes out, and rewrites its header for the subscriber's leg.
//!
//! The subscriber sees one continuous RTP stream with its own SSRC, its own
//! sequence numbers and its own timestamps, whatever happens upstream: a
//! subscriber joining mid-stream starts at its own random base, the 16-bit
//! sequence wraps without a jump, and a source switch (`switch_source`)
//! continues where the previous source stopped. Padding-only packets take
//! no sequence number (`renumber.rs` says why and how). The Forwarder never
//! touches the payload, allocates nothing per packet and takes no lock.

use rtc::rtp::header::Header;

pub use super::renumber::PacketInfo;
use super::renumber::Renumbering;

/// Why a packet was not forwarded to one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The subscriber's leg has not negotiated this track yet.
    NotNegotiated,
    /// The packet is older than the first packet this subscriber was sent.
    BeforeStart,
    /// The packet is too far behind the newest one to place safely.
    TooOld,
    /// `rtc` refused to send it (for example the sender stopped).
    SendFailed,
    /// The subscriber's connection has not finished ICE and DTLS yet.
    NotConnected,
    /// The publisher muted the Track.
    Muted,
    /// A NACKed packet is no longer in the Track's cache (or was never
    /// sent to this subscriber), or the subscriber is over its budget
    /// (`budget.rs`).
    TooLateForRetransmission,
    /// A video subscription is waiting for its first keyframe.
    AwaitingKeyframe,
    /// The same packet arrived from the publisher before (counted once, not
    /// per subscriber).
    Duplicate,
    /// Nobody receives the Track (counted once per packet).
    NoSubscriber,
    /// A padding-only packet (a publisher's bandwidth probe): it takes no
    /// sequence number on the subscriber's leg (`renumber.rs`).
    Padding,
    /// The subscriber's estimate cannot carry even the lowest simulcast
    /// layer, so its video is paused and its audio goes on (counted per
    /// packet of the lowest layer).
    Congested,
    /// Beyond the subscriber's budget: its downlink cannot keep up
    /// (`budget.rs`; video only, never audio).
    OverBudget,
    /// The shared UDP socket's send buffer was full: the datagram (media or
    /// not) was dropped rather than make the Worker wait.
    SocketFull,
}

impl DropReason {
    /// Every reason, for metrics that list them all.
    pub const ALL: [DropReason; 14] = [
        DropReason::NotNegotiated,
        DropReason::BeforeStart,
        DropReason::TooOld,
        DropReason::SendFailed,
        DropReason::NotConnected,
        DropReason::Muted,
        DropReason::TooLateForRetransmission,
        DropReason::AwaitingKeyframe,
        DropReason::Duplicate,
        DropReason::NoSubscriber,
        DropReason::Padding,
        DropReason::Congested,
        DropReason::OverBudget,
        DropReason::SocketFull,
    ];

    /// A stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotNegotiated => "not_negotiated",
            DropReason::BeforeStart => "before_start",
            DropReason::TooOld => "too_old",
            DropReason::SendFailed => "send_failed",
            DropReason::NotConnected => "not_connected",
            DropReason::Muted => "muted",
            DropReason::TooLateForRetransmission => "too_late_for_retransmission",
            DropReason::AwaitingKeyframe => "awaiting_keyframe",
            DropReason::Duplicate => "duplicate",
            DropReason::NoSubscriber => "no_subscriber",
            DropReason::Padding => "padding",
            DropReason::Congested => "congested",
            DropReason::OverBudget => "over_budget",
            DropReason::SocketFull => "socket_full",
        }
    }
}

/// Rewrites SSRC, payload type, sequence number and timestamp for one
/// Subscription.
#[derive(Debug, Clone)]
pub struct Forwarder {
    out_ssrc: u32,
    out_payload_type: Option<u8>,
    /// Sequence numbers: the current source's onto the subscriber's.
    seqs: Renumbering,
    /// The current source's timestamps onto the subscriber's; `None` until
    /// its first packet.
    ts_offset: Option<u32>,
    /// The newest timestamp sent, to continue from after a source switch.
    last_ts: Option<u32>,
    /// Base timestamp for the first packet ever sent.
    initial_ts: u32,
    /// Timestamp step to use across a source switch (one frame or packet).
    switch_ts_step: u32,
    /// RTP clock rate of the Track.
    clock_rate: u32,
    /// Timestamp ticks that passed before the pending switch.
    gap_ts: u32,
}

impl Forwarder {
    /// A Forwarder that sends as `out_ssrc`, starting its numbering at
    /// `initial_seq` and `initial_ts` (random in production, fixed in tests).
    /// `clock_rate` sets the timestamp step used across a source switch.
    pub fn new(out_ssrc: u32, initial_seq: u16, initial_ts: u32, clock_rate: u32) -> Self {
        Self {
            out_ssrc,
            out_payload_type: None,
            seqs: Renumbering::new(initial_seq),
            ts_offset: None,
            last_ts: None,
            initial_ts,
            // About one 20 ms audio packet or one 30 fps video frame.
            switch_ts_step: (clock_rate / 50).max(1),
            clock_rate,
            gap_ts: 0,
        }
    }

    /// The SSRC this subscription sends as.
    pub fn out_ssrc(&self) -> u32 {
        self.out_ssrc
    }

    /// The payload type the subscriber's leg negotiated for this codec, once known.
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.out_payload_type = Some(payload_type);
    }

    /// Whether the subscriber's leg is ready to receive.
    pub fn is_negotiated(&self) -> bool {
        self.out_payload_type.is_some()
    }

    /// The next packet starts a new source (another SSRC or layer): continue
    /// the subscriber's numbering from where it stopped.
    pub fn switch_source(&mut self) {
        self.ts_offset = None;
        self.seqs.restart();
    }

    /// As [`Forwarder::switch_source`], after `gap` without packets: the
    /// timestamp advances by the time that passed (at least one step), so
    /// the receiver's playout stays in step with the clock after a pause.
    pub fn switch_source_after(&mut self, gap: std::time::Duration) {
        self.switch_source();
        let ticks = gap.as_secs_f64() * f64::from(self.clock_rate);
        self.gap_ts = if ticks >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            ticks as u32
        };
    }

    /// The publisher's sequence number of a packet this subscriber was sent
    /// as `out_seq` from the current source, if it is within what was sent.
    pub fn original_seq(&self, out_seq: u16) -> Option<u16> {
        self.seqs.original(out_seq)
    }

    /// Rewrites a retransmission of the packet first sent as `out_seq`
    /// exactly as it was sent then (same sequence number and timestamp).
    pub fn rewrite_retransmission(&self, header: &mut Header, out_seq: u16) -> bool {
        let (Some(ts_offset), Some(payload_type)) = (self.ts_offset, self.out_payload_type) else {
            return false;
        };
        header.ssrc = self.out_ssrc;
        header.payload_type = payload_type;
        header.sequence_number = out_seq;
        header.timestamp = header.timestamp.wrapping_add(ts_offset);
        true
    }

    /// Rewrites `header` in place for this subscriber, or says why not.
    pub fn forward(&mut self, header: &mut Header, info: PacketInfo) -> Result<(), DropReason> {
        let Some(payload_type) = self.out_payload_type else {
            return Err(DropReason::NotNegotiated);
        };
        let starting = !self.seqs.is_started();
        let (out_seq, newest) = self.seqs.place(header.sequence_number, info)?;
        let ts_offset = match self.ts_offset {
            Some(offset) if !starting => offset,
            _ => {
                let step = self.switch_ts_step.max(self.gap_ts);
                self.gap_ts = 0;
                let next_ts = match self.last_ts {
                    Some(ts) => ts.wrapping_add(step),
                    None => self.initial_ts,
                };
                let offset = next_ts.wrapping_sub(header.timestamp);
                self.ts_offset = Some(offset);
                offset
            }
        };
        let out_ts = header.timestamp.wrapping_add(ts_offset);
        if newest {
            self.last_ts = Some(out_ts);
        }
        header.ssrc = self.out_ssrc;
        header.payload_type = payload_type;
        header.sequence_number = out_seq;
        header.timestamp = out_ts;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u16, ts: u32) -> Header {
        Header {
            version: 2,
            payload_type: 111,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 0xdead_beef,
            ..Default::default()
        }
    }

    fn negotiated(initial_seq: u16, initial_ts: u32) -> Forwarder {
        let mut f = Forwarder::new(42, initial_seq, initial_ts, 90_000);
        f.set_payload_type(96);
        f
    }

    fn out(f: &mut Forwarder, seq: u16, ts: u32) -> Result<(u16, u32), DropReason> {
        let mut h = header(seq, ts);
        f.forward(&mut h, PacketInfo::default())?;
        assert_eq!(h.ssrc, 42);
        assert_eq!(h.payload_type, 96);
        Ok((h.sequence_number, h.timestamp))
    }

    #[test]
    fn drops_until_negotiated() {
        let mut f = Forwarder::new(42, 0, 0, 90_000);
        assert_eq!(out(&mut f, 1, 1), Err(DropReason::NotNegotiated));
        f.set_payload_type(96);
        assert_eq!(out(&mut f, 2, 1), Ok((0, 0)));
    }

    #[test]
    fn joining_mid_stream_starts_at_own_base_and_stays_continuous() {
        let mut f = negotiated(1000, 5000);
        // The publisher is at sequence 40_000 when this subscriber joins.
        for i in 0..100u16 {
            let (seq, ts) = out(&mut f, 40_000 + i, 123_456 + u32::from(i) * 3000).unwrap();
            assert_eq!(seq, 1000 + i);
            assert_eq!(ts, 5000 + u32::from(i) * 3000);
        }
    }

    #[test]
    fn sequence_wraparound_is_continuous() {
        let mut f = negotiated(65_530, 0);
        let mut expected = 65_530u16;
        let mut seq = 65_000u16;
        for _ in 0..2000 {
            let (s, _) = out(&mut f, seq, 0).unwrap();
            assert_eq!(s, expected);
            expected = expected.wrapping_add(1);
            seq = seq.wrapping_add(1);
        }
    }

    #[test]
    fn timestamp_wraparound_is_continuous() {
        let mut f = negotiated(0, u32::MAX - 10);
        assert_eq!(out(&mut f, 1, 100).unwrap().1, u32::MAX - 10);
        assert_eq!(out(&mut f, 2, 120).unwrap().1, 9);
    }

    #[test]
    fn reordered_packets_keep_their_place() {
        let mut f = negotiated(0, 0);
        assert_eq!(out(&mut f, 10, 0).unwrap().0, 0);
        assert_eq!(out(&mut f, 12, 0).unwrap().0, 2);
        assert_eq!(out(&mut f, 11, 0).unwrap().0, 1);
        assert_eq!(out(&mut f, 13, 0).unwrap().0, 3);
    }

    #[test]
    fn reordered_across_wrap() {
        let mut f = negotiated(100, 0);
        assert_eq!(out(&mut f, 65_534, 0).unwrap().0, 100);
        assert_eq!(out(&mut f, 1, 0).unwrap().0, 103);
        assert_eq!(out(&mut f, 65_535, 0).unwrap().0, 101);
        assert_eq!(out(&mut f, 0, 0).unwrap().0, 102);
    }

    #[test]
    fn packets_before_the_first_are_dropped() {
        let mut f = negotiated(0, 0);
        out(&mut f, 500, 0).unwrap();
        assert_eq!(out(&mut f, 499, 0), Err(DropReason::BeforeStart));
    }

    #[test]
    fn very_old_packets_are_dropped() {
        let mut f = negotiated(0, 0);
        for seq in 0..3000u16 {
            out(&mut f, seq, 0).unwrap();
        }
        assert_eq!(out(&mut f, 100, 0), Err(DropReason::TooOld));
    }

    #[test]
    fn retransmissions_map_back_and_rewrite_identically() {
        let mut f = negotiated(1000, 0);
        for seq in 500..510u16 {
            out(&mut f, seq, u32::from(seq) * 10).unwrap();
        }
        assert_eq!(f.original_seq(1003), Some(503));
        assert_eq!(f.original_seq(1009), Some(509));
        assert_eq!(f.original_seq(999), None, "before the first packet sent");
        assert_eq!(f.original_seq(1010), None, "not sent yet");
        let mut h = header(503, 5030);
        assert!(f.rewrite_retransmission(&mut h, 1003));
        assert_eq!(
            (h.sequence_number, h.timestamp, h.ssrc),
            (1003, 5030 - 5000, 42)
        );
    }

    #[test]
    fn source_switch_continues_numbering() {
        let mut f = negotiated(10, 1000);
        out(&mut f, 7, 50).unwrap();
        let (s, t) = out(&mut f, 8, 3050).unwrap();
        assert_eq!((s, t), (11, 4000));
        f.switch_source();
        // A new source with unrelated numbering.
        let (s, t) = out(&mut f, 60_000, 9_999_999).unwrap();
        assert_eq!(s, 12);
        assert_eq!(t, 4000 + 90_000 / 50);
        let (s, _) = out(&mut f, 60_001, 10_002_999).unwrap();
        assert_eq!(s, 13);
    }
}
