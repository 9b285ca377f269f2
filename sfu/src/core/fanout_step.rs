//! A fan-out in steps. One video packet to hundreds of subscribers is
//! hundreds of SRTP encryptions, which `rtc` does when a subscriber's
//! connection is drained. Drained all at once, the first subscriber's copy
//! waits for the last one's encryption before the driver can send it. With
//! [`CoreConfig::fanout_step`](super::CoreConfig::fanout_step) set, a
//! received datagram's handling drains that many of the subscribers it
//! wrote to, and [`Core::continue_fanout`] the next ones: the driver sends
//! what each step produced before asking for the next.
//!
//! The steps are the driver's to finish before it handles anything else,
//! but nothing breaks if it does not: a new datagram first finishes the
//! fan-out left behind, and every other entry point drains all that is
//! pending anyway.

use std::time::Instant;

use super::Core;

impl Core {
    /// Drains the next step of a fan-out left unfinished by the last
    /// received datagram; returns whether more is left. What it produces
    /// waits in [`Core::poll_transmit`], stamped with that datagram's
    /// arrival, as the first step's was.
    pub fn continue_fanout(&mut self, now: Instant) -> bool {
        let Some(arrived) = self.unfinished else {
            return false;
        };
        let limit = self.config.fanout_step.unwrap_or(usize::MAX).max(1);
        self.ingress = Some(arrived);
        let done = self.drain_dirty(now, limit);
        self.ingress = None;
        if done {
            self.unfinished = None;
        }
        !done
    }

    /// Whether a fan-out waits for [`Core::continue_fanout`].
    pub fn fanout_unfinished(&self) -> bool {
        self.unfinished.is_some()
    }

    /// The end of a received datagram's handling: drains the Peers it
    /// made the core write to, or the first step of them.
    pub(super) fn flush_received(&mut self, now: Instant) {
        match self.config.fanout_step {
            None => self.flush(now),
            Some(step) => {
                if !self.drain_dirty(now, step.max(1)) {
                    self.unfinished = self.ingress;
                }
            }
        }
    }

    /// Finishes a fan-out left unfinished, before a new datagram is
    /// handled, so that its subscribers are not passed over.
    pub(super) fn finish_fanout(&mut self, now: Instant) {
        if let Some(arrived) = self.unfinished {
            self.ingress = Some(arrived);
            self.flush(now);
            self.ingress = None;
        }
    }
}
