//! Classifies datagrams on the shared port by their cleartext headers, to
//! count RTCP by type and media on the wire without touching `rtc`'s
//! pipeline. SRTP and SRTCP leave the first bytes of each packet in the
//! clear (RFC 3711): the RTP version and payload type, and the first RTCP
//! packet's type and format. A compound RTCP datagram is counted once, by
//! its first packet; with `rtcp-rsize` (which browsers negotiate) feedback
//! such as PLI, NACK and TWCC travels alone.

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

    /// The RTCP packet type of a datagram's first RTCP packet (RFC 3550,
    /// 4585, 5104 and the TWCC and REMB drafts), from its PT and FMT bytes.
    fn from_header(payload_type: u8, format: u8) -> RtcpKind {
        match (payload_type, format) {
            (200, _) => RtcpKind::Sr,
            (201, _) => RtcpKind::Rr,
            (205, 1) => RtcpKind::Nack,
            (205, 15) => RtcpKind::Twcc,
            (206, 1) => RtcpKind::Pli,
            (206, 4) => RtcpKind::Fir,
            (206, 15) => RtcpKind::Remb,
            _ => RtcpKind::Other,
        }
    }

    fn index(self) -> usize {
        RtcpKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(RtcpKind::ALL.len() - 1)
    }
}

/// What a datagram on the shared port carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    /// SRTP media.
    Media,
    /// SRTCP, by the type of its first packet.
    Rtcp(RtcpKind),
    /// STUN, DTLS, or anything else.
    Other,
}

/// Classifies a datagram (RFC 7983 demultiplexing, then RFC 5761 to tell
/// RTP from RTCP by payload type).
pub fn classify(datagram: &[u8]) -> DatagramKind {
    if datagram.len() < 8 || datagram[0] & 0xC0 != 0x80 {
        return DatagramKind::Other;
    }
    match datagram[1] {
        pt @ 192..=223 => DatagramKind::Rtcp(RtcpKind::from_header(pt, datagram[0] & 0x1F)),
        _ if datagram.len() >= 12 => DatagramKind::Media,
        _ => DatagramKind::Other,
    }
}

const KINDS: usize = RtcpKind::ALL.len();

/// RTCP by type and media datagrams on the wire.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RtcpCounts {
    /// RTCP datagrams received, by `RtcpKind::ALL` index.
    pub rtcp_in: [u64; KINDS],
    /// RTCP datagrams sent, by `RtcpKind::ALL` index.
    pub rtcp_out: [u64; KINDS],
    /// SRTP media datagrams sent: forwarded packets and retransmissions.
    pub rtp_out_wire: u64,
}

impl RtcpCounts {
    /// Counts a datagram received.
    pub fn count_in(&mut self, datagram: &[u8]) {
        if let DatagramKind::Rtcp(kind) = classify(datagram) {
            self.rtcp_in[kind.index()] += 1;
        }
    }

    /// Counts a datagram sent; returns whether it is media.
    pub fn count_out(&mut self, datagram: &[u8]) -> bool {
        match classify(datagram) {
            DatagramKind::Media => {
                self.rtp_out_wire += 1;
                true
            }
            DatagramKind::Rtcp(kind) => {
                self.rtcp_out[kind.index()] += 1;
                false
            }
            DatagramKind::Other => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(b0: u8, b1: u8, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[0] = b0;
        d[1] = b1;
        d
    }

    #[test]
    fn classifies_by_cleartext_header() {
        assert_eq!(classify(&datagram(0x80, 96, 100)), DatagramKind::Media);
        assert_eq!(
            classify(&datagram(0x80, 0x80 | 111, 100)),
            DatagramKind::Media
        );
        assert_eq!(
            classify(&datagram(0x80, 200, 40)),
            DatagramKind::Rtcp(RtcpKind::Sr)
        );
        assert_eq!(
            classify(&datagram(0x81, 201, 40)),
            DatagramKind::Rtcp(RtcpKind::Rr)
        );
        assert_eq!(
            classify(&datagram(0x81, 205, 30)),
            DatagramKind::Rtcp(RtcpKind::Nack)
        );
        assert_eq!(
            classify(&datagram(0x8F, 205, 30)),
            DatagramKind::Rtcp(RtcpKind::Twcc)
        );
        assert_eq!(
            classify(&datagram(0x81, 206, 30)),
            DatagramKind::Rtcp(RtcpKind::Pli)
        );
        assert_eq!(
            classify(&datagram(0x84, 206, 30)),
            DatagramKind::Rtcp(RtcpKind::Fir)
        );
        assert_eq!(
            classify(&datagram(0x8F, 206, 30)),
            DatagramKind::Rtcp(RtcpKind::Remb)
        );
        assert_eq!(
            classify(&datagram(0x81, 202, 30)),
            DatagramKind::Rtcp(RtcpKind::Other)
        );
        // DTLS, STUN and runts.
        assert_eq!(classify(&datagram(22, 254, 50)), DatagramKind::Other);
        assert_eq!(classify(&datagram(0, 1, 50)), DatagramKind::Other);
        assert_eq!(classify(&datagram(0x80, 96, 10)), DatagramKind::Other);
        assert_eq!(classify(&[0x80]), DatagramKind::Other);
    }

    #[test]
    fn counts_both_directions() {
        let mut c = RtcpCounts::default();
        c.count_in(&datagram(0x81, 206, 30));
        assert!(c.count_out(&datagram(0x80, 96, 100)));
        assert!(!c.count_out(&datagram(0x80, 200, 40)));
        assert_eq!(c.rtcp_in[RtcpKind::Pli.index()], 1);
        assert_eq!(c.rtcp_out[RtcpKind::Sr.index()], 1);
        assert_eq!(c.rtp_out_wire, 1);
    }
}
