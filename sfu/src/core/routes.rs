//! The pinned transport addresses: which Peer a non-STUN packet from a
//! given (protocol, remote address) belongs to. An address is pinned only
//! after `rtc` answered a STUN check from it with valid integrity; it is
//! unpinned when its Peer leaves, when its ICE-TCP connection closes, when
//! nothing has arrived on it for [`STALE_AFTER`] (the client moved to
//! another address, for example after an ICE restart), or when its Peer
//! pins more than [`MAX_PER_PEER`] addresses (the least recently used goes).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::shared::TransportProtocol;

use super::ids::PeerId;

/// An address that has carried nothing for this long is forgotten. Longer
/// than the 5 s between a browser's consent checks, so a live path never
/// expires.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// Addresses one Peer may have pinned at once.
pub const MAX_PER_PEER: usize = 8;

/// A remote transport address: protocol and address.
pub type RouteKey = (TransportProtocol, SocketAddr);

#[derive(Debug, Clone, Copy)]
struct Route {
    peer: PeerId,
    last_seen: Instant,
}

/// The table of pinned addresses.
#[derive(Debug, Default)]
pub struct Routes {
    by_key: HashMap<RouteKey, Route>,
}

impl Routes {
    /// The Peer pinned to `key`, marking the address as used at `now`.
    pub fn lookup(&mut self, key: &RouteKey, now: Instant) -> Option<PeerId> {
        let route = self.by_key.get_mut(key)?;
        route.last_seen = now;
        Some(route.peer)
    }

    /// The Peer pinned to `key`, without marking the address as used.
    pub fn peer_of(&self, key: &RouteKey) -> Option<PeerId> {
        self.by_key.get(key).map(|r| r.peer)
    }

    /// Whether `key` is pinned to a Peer.
    pub fn contains(&self, key: &RouteKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// Pins `key` to `peer`. If the Peer then has more than
    /// [`MAX_PER_PEER`] addresses, its least recently used one is unpinned.
    pub fn pin(&mut self, key: RouteKey, peer: PeerId, now: Instant) {
        self.by_key.insert(
            key,
            Route {
                peer,
                last_seen: now,
            },
        );
        let mine: Vec<(RouteKey, Instant)> = self
            .by_key
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .map(|(k, r)| (*k, r.last_seen))
            .collect();
        if mine.len() > MAX_PER_PEER {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, seen)| *seen) {
                self.by_key.remove(oldest);
            }
        }
    }

    /// Unpins one address; returns its Peer if it was pinned.
    pub fn unpin(&mut self, key: &RouteKey) -> Option<PeerId> {
        self.by_key.remove(key).map(|r| r.peer)
    }

    /// Unpins every address of `peer`.
    pub fn remove_peer(&mut self, peer: PeerId) {
        self.by_key.retain(|_, r| r.peer != peer);
    }

    /// Unpins the addresses unused since `now - STALE_AFTER`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.by_key.len();
        self.by_key
            .retain(|_, r| now.saturating_duration_since(r.last_seen) < STALE_AFTER);
        before - self.by_key.len()
    }

    /// The addresses pinned to `peer`.
    pub fn of_peer(&self, peer: PeerId) -> Vec<RouteKey> {
        self.by_key
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The address of `peer` that carried the latest packet: while its
    /// connection comes up, the one its DTLS runs over.
    pub fn latest_of_peer(&self, peer: PeerId) -> Option<RouteKey> {
        self.by_key
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .max_by_key(|(_, r)| r.last_seen)
            .map(|(k, _)| *k)
    }

    /// How many addresses are pinned.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> RouteKey {
        (
            TransportProtocol::UDP,
            SocketAddr::from(([192, 0, 2, 1], port)),
        )
    }

    #[test]
    fn protocols_are_distinct() {
        let mut routes = Routes::default();
        let now = Instant::now();
        routes.pin(key(1), PeerId(1), now);
        let tcp = (TransportProtocol::TCP, key(1).1);
        assert_eq!(routes.lookup(&key(1), now), Some(PeerId(1)));
        assert_eq!(routes.lookup(&tcp, now), None);
    }

    #[test]
    fn stale_addresses_expire_and_used_ones_stay() {
        let mut routes = Routes::default();
        let t0 = Instant::now();
        routes.pin(key(1), PeerId(1), t0);
        routes.pin(key(2), PeerId(1), t0);
        let later = t0 + STALE_AFTER - Duration::from_secs(1);
        assert_eq!(routes.lookup(&key(2), later), Some(PeerId(1)));
        assert_eq!(routes.expire(t0 + STALE_AFTER), 1);
        assert!(!routes.contains(&key(1)));
        assert!(routes.contains(&key(2)));
    }

    #[test]
    fn a_peer_keeps_at_most_max_per_peer() {
        let mut routes = Routes::default();
        let t0 = Instant::now();
        for i in 0..=MAX_PER_PEER as u16 {
            routes.pin(key(i), PeerId(1), t0 + Duration::from_millis(u64::from(i)));
        }
        routes.pin(key(100), PeerId(2), t0);
        assert_eq!(routes.of_peer(PeerId(1)).len(), MAX_PER_PEER);
        assert!(!routes.contains(&key(0)), "the least recently used went");
        assert!(routes.contains(&key(100)), "other peers are untouched");
        assert_eq!(
            routes.latest_of_peer(PeerId(1)),
            Some(key(MAX_PER_PEER as u16))
        );
        routes.remove_peer(PeerId(1));
        assert_eq!(routes.len(), 1);
    }
}
