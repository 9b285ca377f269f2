//! The inbound path of the shared ports: a datagram (or ICE-TCP frame) is
//! routed to a Peer (STUN by the SFU ufrag in its USERNAME, anything else
//! by the pinned address), charged to the Peer's inbound caps, and handed
//! to its `rtc` connection; what that connection then produces is drained.
//! Every drop on the way is counted by reason (`InboundDrop`).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::{demux, dtls_guard, rtcp_count, Core, InboundDrop};

impl Core {
    /// A datagram arrived on the shared socket from `source`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: BytesMut) {
        self.handle_packet(now, TransportProtocol::UDP, source, data);
    }

    /// A frame (RFC 4571, length prefix removed) arrived on the ICE-TCP
    /// connection from `source`.
    pub fn handle_tcp_frame(&mut self, now: Instant, source: SocketAddr, data: BytesMut) {
        self.handle_packet(now, TransportProtocol::TCP, source, data);
    }

    /// The ICE-TCP connection from `source` closed: nothing can be sent
    /// on it any more.
    pub fn tcp_closed(&mut self, source: SocketAddr) {
        if let Some(peer) = self.routes.unpin(&(TransportProtocol::TCP, source)) {
            tracing::debug!(%peer, %source, "ICE-TCP connection closed");
        }
    }

    /// Whether packets from `source` over `protocol` reach a Peer (its
    /// address passed an ICE check). The driver closes ICE-TCP
    /// connections that never get here.
    pub fn is_routed(&self, protocol: TransportProtocol, source: SocketAddr) -> bool {
        self.routes.contains(&(protocol, source))
    }

    fn handle_packet(
        &mut self,
        now: Instant,
        protocol: TransportProtocol,
        source: SocketAddr,
        data: BytesMut,
    ) {
        self.finish_fanout(now);
        self.counters.datagrams_in += 1;
        if self.config.count_rtcp {
            self.rtcp.count_in(&data);
        }
        let key = (protocol, source);
        let stun = demux::is_stun(&data);
        let peer_id = if stun {
            match demux::stun_local_ufrag(&data) {
                Some(ufrag) => self.by_ufrag.get(ufrag).copied(),
                None => self.routes.lookup(&key, now),
            }
        } else {
            self.routes.lookup(&key, now)
        };
        let Some(peer_id) = peer_id else {
            self.counters.datagrams_unrouted += 1;
            self.counters.drop_inbound(if stun {
                InboundDrop::UnknownUfrag
            } else {
                InboundDrop::UnknownAddress
            });
            return;
        };
        let Some(local_addr) = self.config.local_addr(protocol, source) else {
            self.counters.datagrams_unrouted += 1;
            self.counters.drop_inbound(InboundDrop::UnknownAddress);
            return;
        };
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            self.counters.datagrams_unrouted += 1;
            self.counters.drop_inbound(InboundDrop::UnknownAddress);
            return;
        };
        #[cfg(feature = "fault-injection")]
        super::containment::fault::check_datagram(&data);
        // Charged to the Peer only when it comes from one of its checked
        // addresses (`rate_limit`).
        let from_pinned = !stun || self.routes.lookup(&key, now) == Some(peer_id);
        if from_pinned && !peer.inbound.admit(now, data.len()) {
            self.counters.drop_inbound(InboundDrop::RateLimit);
            return;
        }
        if peer.server_hello_sent && dtls_guard::is_client_hello(&data) {
            self.counters.dtls_repeats_dropped += 1;
            self.counters.drop_inbound(InboundDrop::DtlsRepeat);
            return;
        }
        let media = rtcp_count::classify(&data) == rtcp_count::DatagramKind::Media;
        // A check names its receiver; indications and responses prove less.
        let stun_request = stun && demux::stun_local_ufrag(&data).is_some();
        let yielded = self.rtp_yielded;
        let rtcp_yielded = self.rtcp_yielded;
        let input = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: source,
                ecn: None,
                transport_protocol: protocol,
            },
            message: data,
        };
        let rejected = peer.pc.handle_read(input).is_err();
        if rejected {
            self.counters.datagrams_rejected += 1;
            self.counters.drop_inbound(InboundDrop::Rejected);
            tracing::debug!(peer = %peer_id, %source, "datagram rejected");
        }
        // A STUN request answered to `source` passed the ICE agent's
        // MESSAGE-INTEGRITY check: only then is the address pinned (or
        // re-pinned, if it belonged to another Peer before).
        let pin = (stun && self.routes.lookup(&key, now) != Some(peer_id)).then_some(key);
        self.ingress = Some(now);
        let pinned = self.drain(now, peer_id, pin);
        if pin.is_some() && !pinned && !rejected {
            // A check from a new address that the ICE agent did not answer:
            // its MESSAGE-INTEGRITY (or USERNAME) did not check out.
            self.counters.drop_inbound(InboundDrop::Rejected);
        }
        // Liveness under media consent: a STUN check `rtc` accepted, RTP
        // it decrypted or RTCP it delivered.
        if !rejected
            && (stun_request || self.rtp_yielded != yielded || self.rtcp_yielded != rtcp_yielded)
        {
            self.note_inbound(now, peer_id);
        }
        if media && !rejected && self.rtp_yielded == yielded {
            // SRTP that `rtc` discarded without an error: a replay, a
            // failed authentication, or RTP before DTLS completed.
            self.counters.drop_inbound(InboundDrop::Rejected);
        }
        self.flush_received(now);
        self.ingress = None;
    }
}
