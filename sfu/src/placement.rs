//! Which Worker holds which room, when there are several Workers.
//!
//! A room lives on exactly one Worker: its Peers forward to each other
//! without crossing threads. The control plane places a new room on the
//! least-loaded Worker (Peers there, plus rooms placed there); a Worker
//! creates a room only if the map names it for that room ([`Placement::claim`]),
//! and forgets the entry only when the room is gone from its core
//! ([`Placement::release_absent`]). So whatever the interleaving of joins
//! and leaves, two Workers never hold the same room: a join that raced a
//! room's removal is refused with `CoreError::RoomElsewhere` and asked
//! again. The map is control-plane state (a `DashMap`, touched on joins and
//! every couple of seconds), never on the packet path.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// The room map and each Worker's load.
#[derive(Debug)]
pub struct Placement {
    rooms: DashMap<String, usize>,
    /// Peers on each Worker, as it last reported.
    peers: Vec<AtomicUsize>,
}

impl Placement {
    /// For `workers` Workers (at least one).
    pub fn new(workers: usize) -> Self {
        Self {
            rooms: DashMap::new(),
            peers: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// How many Workers there are.
    pub fn workers(&self) -> usize {
        self.peers.len()
    }

    /// The Worker of `room`: where it is, or else the least-loaded one,
    /// which it is then placed on.
    pub fn place(&self, room: &str) -> usize {
        if self.peers.len() == 1 {
            return 0;
        }
        if let Some(w) = self.rooms.get(room) {
            return *w;
        }
        let least = self.least_loaded();
        *self.rooms.entry(room.to_owned()).or_insert(least)
    }

    /// The Worker `room` is placed on, if any.
    pub fn worker_of(&self, room: &str) -> Option<usize> {
        if self.peers.len() == 1 {
            return Some(0);
        }
        self.rooms.get(room).map(|w| *w)
    }

    /// Worker `me` is about to create `room`: true if the room is placed
    /// on it (or on nobody, and now on it), false if on another Worker.
    pub fn claim(&self, room: &str, me: usize) -> bool {
        if self.peers.len() == 1 {
            return true;
        }
        match self.rooms.entry(room.to_owned()) {
            Entry::Occupied(e) => *e.get() == me,
            Entry::Vacant(e) => {
                e.insert(me);
                true
            }
        }
    }

    /// Worker `me` drops its entries for rooms it no longer holds
    /// (`holds` is asked on its own thread, so no room appears meanwhile),
    /// and reports its Peers.
    pub fn release_absent(&self, me: usize, peers: usize, holds: impl Fn(&str) -> bool) {
        if let Some(load) = self.peers.get(me) {
            load.store(peers, Ordering::Relaxed);
        }
        if self.peers.len() > 1 {
            self.rooms.retain(|room, w| *w != me || holds(room));
        }
    }

    /// Worker `me` reports its Peers.
    pub fn report(&self, me: usize, peers: usize) {
        if let Some(load) = self.peers.get(me) {
            load.store(peers, Ordering::Relaxed);
        }
    }

    /// The Worker with the fewest Peers plus rooms placed; the first on a tie.
    fn least_loaded(&self) -> usize {
        let mut rooms = vec![0usize; self.peers.len()];
        for entry in self.rooms.iter() {
            if let Some(n) = rooms.get_mut(*entry.value()) {
                *n += 1;
            }
        }
        (0..self.peers.len())
            .min_by_key(|&w| self.peers[w].load(Ordering::Relaxed) + rooms[w])
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rooms_spread_and_stay_put() {
        let p = Placement::new(2);
        assert_eq!(p.place("a"), 0);
        assert_eq!(p.place("b"), 1);
        assert_eq!(p.place("a"), 0, "a room keeps its Worker");
        p.report(0, 10);
        assert_eq!(p.place("c"), 1, "the Worker with fewer Peers");
    }

    #[test]
    fn a_worker_creates_only_rooms_placed_on_it() {
        let p = Placement::new(2);
        assert_eq!(p.place("a"), 0);
        assert!(!p.claim("a", 1));
        assert!(p.claim("a", 0));
        assert!(
            p.claim("fresh", 1),
            "an unplaced room is placed on its creator"
        );
        assert_eq!(p.worker_of("fresh"), Some(1));
    }

    #[test]
    fn a_room_is_forgotten_only_by_its_worker_once_gone() {
        let p = Placement::new(2);
        p.place("a");
        p.place("b");
        p.release_absent(1, 0, |_| false);
        assert_eq!(p.worker_of("a"), Some(0), "not worker 1's to drop");
        assert_eq!(p.worker_of("b"), None);
        p.release_absent(0, 3, |room| room == "a");
        assert_eq!(p.worker_of("a"), Some(0), "still held");
        // A join that raced the removal: placed anew, the old Worker refuses.
        p.release_absent(0, 0, |_| false);
        p.report(0, 5);
        assert_eq!(p.place("a"), 1);
        assert!(!p.claim("a", 0));
    }

    #[test]
    fn one_worker_needs_no_map() {
        let p = Placement::new(1);
        assert_eq!(p.place("a"), 0);
        assert!(p.claim("a", 0));
        assert_eq!(p.worker_of("anything"), Some(0));
    }
}
