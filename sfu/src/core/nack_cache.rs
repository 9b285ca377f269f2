//! The per-Track packet cache that answers subscribers' NACKs: a ring of
//! the Track's most recent packets, shared by all its Subscriptions, sized
//! once and never grown (no allocation per packet in steady state; a
//! stored packet's payload is the same reference-counted buffer that was
//! forwarded).

use rtc::rtp::packet::Packet;

/// Slots for a video Track: over 1 s at 8 Mbit/s of 1,200-byte packets.
pub const VIDEO_SLOTS: usize = 1024;
/// Slots for an audio Track: 1.28 s at 50 packets per second.
pub const AUDIO_SLOTS: usize = 64;

/// Recent packets of one Track, by sequence number.
#[derive(Debug)]
pub struct PacketCache {
    slots: Vec<Option<Packet>>,
}

impl PacketCache {
    /// A cache of `slots` packets (at least one).
    pub fn new(slots: usize) -> Self {
        Self {
            slots: vec![None; slots.max(1)],
        }
    }

    fn index(&self, seq: u16) -> usize {
        usize::from(seq) % self.slots.len()
    }

    /// Keeps a packet, replacing the oldest one in its slot.
    pub fn insert(&mut self, packet: &Packet) {
        let i = self.index(packet.header.sequence_number);
        self.slots[i] = Some(packet.clone());
    }

    /// The packet with sequence number `seq`, if it is still held.
    pub fn get(&self, seq: u16) -> Option<&Packet> {
        self.slots[self.index(seq)]
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(seq: u16) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p.payload = Bytes::from(vec![seq as u8; 10]);
        p
    }

    #[test]
    fn holds_the_most_recent_packets() {
        let mut c = PacketCache::new(4);
        for seq in 10..16 {
            c.insert(&packet(seq));
        }
        assert!(c.get(11).is_none(), "overwritten by 15");
        for seq in 12..16 {
            assert_eq!(c.get(seq).map(|p| p.payload[0]), Some(seq as u8));
        }
        assert!(c.get(16).is_none());
    }

    #[test]
    fn wraps_with_the_sequence_number() {
        let mut c = PacketCache::new(VIDEO_SLOTS);
        for seq in (65_500..=65_535).chain(0..20) {
            c.insert(&packet(seq));
        }
        assert!(c.get(65_530).is_some());
        assert!(c.get(5).is_some());
    }
}
