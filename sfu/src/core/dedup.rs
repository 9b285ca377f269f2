//! Which of a Track's recent sequence numbers have arrived, so that a
//! duplicate (a retransmission racing the original, or a network duplicate)
//! is dropped once, before fan-out. A fixed 1,024-bit window: no allocation.

/// Sequence numbers tracked behind the newest.
const WINDOW: u16 = 1024;
const WORDS: usize = WINDOW as usize / 64;

/// What a sequence number is, relative to those seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before: forward it.
    New,
    /// Seen before.
    Duplicate,
    /// Too far behind the newest to tell.
    TooOld,
}

/// The arrival window of one Track.
#[derive(Debug, Clone, Default)]
pub struct SeqWindow {
    highest: Option<u16>,
    bits: [u64; WORDS],
}

impl SeqWindow {
    fn bit(seq: u16) -> (usize, u64) {
        let i = usize::from(seq % WINDOW);
        (i / 64, 1u64 << (i % 64))
    }

    fn set(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.bits[w] |= b;
    }

    fn clear(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.bits[w] &= !b;
    }

    /// Records `seq` and says whether it is new.
    pub fn arrive(&mut self, seq: u16) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.set(seq);
            return Arrival::New;
        };
        let delta = seq.wrapping_sub(highest) as i16;
        if delta > 0 {
            if delta as u16 >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for s in 1..=delta as u16 {
                    self.clear(highest.wrapping_add(s));
                }
            }
            self.highest = Some(seq);
            self.set(seq);
            return Arrival::New;
        }
        if delta.unsigned_abs() >= WINDOW {
            return Arrival::TooOld;
        }
        let (w, b) = Self::bit(seq);
        if self.bits[w] & b != 0 {
            Arrival::Duplicate
        } else {
            self.bits[w] |= b;
            Arrival::New
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_in_and_out_of_order() {
        let mut w = SeqWindow::default();
        assert_eq!(w.arrive(10), Arrival::New);
        assert_eq!(w.arrive(12), Arrival::New);
        assert_eq!(w.arrive(10), Arrival::Duplicate);
        assert_eq!(w.arrive(11), Arrival::New, "late but not seen");
        assert_eq!(w.arrive(11), Arrival::Duplicate);
        assert_eq!(w.arrive(12), Arrival::Duplicate);
    }

    #[test]
    fn across_the_wrap() {
        let mut w = SeqWindow::default();
        assert_eq!(w.arrive(65_534), Arrival::New);
        assert_eq!(w.arrive(1), Arrival::New);
        assert_eq!(w.arrive(65_535), Arrival::New);
        assert_eq!(w.arrive(0), Arrival::New);
        assert_eq!(w.arrive(65_534), Arrival::Duplicate);
        assert_eq!(w.arrive(1), Arrival::Duplicate);
    }

    #[test]
    fn window_slides_and_forgets() {
        let mut w = SeqWindow::default();
        for s in 0..3000u16 {
            assert_eq!(w.arrive(s), Arrival::New);
        }
        assert_eq!(
            w.arrive(2999 - 1023),
            Arrival::Duplicate,
            "still in the window"
        );
        assert_eq!(w.arrive(2999 - 1024), Arrival::TooOld);
        // A jump larger than the window starts over.
        assert_eq!(w.arrive(10_000), Arrival::New);
        assert_eq!(w.arrive(9_999), Arrival::New);
    }
}
