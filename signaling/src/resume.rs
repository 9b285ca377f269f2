//! Sessions waiting to be resumed. When a signaling socket drops without a
//! close (a network change, a proxy restart), its session is parked: a task
//! keeps its Peer, room and call ID, and queues the messages meant for the
//! client, for a grace period. A new socket presenting the session's resume
//! token takes it over; nobody else sees a leave. After the grace period the
//! session ends as if the socket had closed.
//!
//! A client often learns that its network changed before the server does:
//! its old socket looks alive to the server until the ping timeout. A
//! `resume` for a session whose socket is still attached therefore asks
//! that socket's task to let go at once (a takeover): the session is parked
//! and claimed right away.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// How a new socket claims a parked session: it sends a reply channel, and
/// the parking task answers with the session.
pub type Claim<S> = oneshot::Sender<oneshot::Sender<S>>;

/// The parked sessions, and the attached ones that can be taken over, by
/// resume token.
pub struct Parked<S> {
    by_token: Mutex<HashMap<String, Claim<S>>>,
    attached: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

impl<S> Default for Parked<S> {
    fn default() -> Self {
        Self {
            by_token: Mutex::new(HashMap::new()),
            attached: Mutex::new(HashMap::new()),
        }
    }
}

impl<S> Parked<S> {
    /// Parks a session under `token`; the returned receiver yields a claim
    /// when a socket resumes it.
    pub fn park(&self, token: String) -> oneshot::Receiver<oneshot::Sender<S>> {
        let (claim, claimed) = oneshot::channel();
        self.lock().insert(token, claim);
        claimed
    }

    /// Takes the session parked under `token`, if any, waiting for its
    /// task to hand it over. `None` if there is none or it just ended.
    pub async fn claim(&self, token: &str) -> Option<S> {
        let claim = self.lock().remove(token)?;
        let (reply, session) = oneshot::channel();
        claim.send(reply).ok()?;
        session.await.ok()
    }

    /// Forgets the session parked under `token` (its grace ran out).
    pub fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Registers a session attached to a socket under `token`; the
    /// receiver fires when a new socket takes it over.
    pub fn attach(&self, token: String) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.attached).insert(token, tx);
        rx
    }

    /// The session under `token` is no longer attached to a socket.
    pub fn detach(&self, token: &str) {
        lock(&self.attached).remove(token);
    }

    /// Asks the socket holding the session under `token` to let go of it
    /// (it will be parked). Returns whether there was such a socket.
    pub fn take_over(&self, token: &str) -> bool {
        lock(&self.attached)
            .remove(token)
            .is_some_and(|tx| tx.send(()).is_ok())
    }

    /// How many sessions are parked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claim<S>>> {
        lock(&self.by_token)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave a map inconsistent
    // (each operation is one insert or remove), so a poisoned lock is
    // still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_parked_session_is_claimed_once() {
        let parked: Parked<u32> = Parked::default();
        let mut claimed = parked.park("t".to_owned());
        let keeper = tokio::spawn(async move {
            let reply = (&mut claimed).await.unwrap();
            reply.send(42).unwrap();
        });
        assert_eq!(parked.claim("t").await, Some(42));
        keeper.await.unwrap();
        assert_eq!(parked.claim("t").await, None, "gone once claimed");
        assert_eq!(parked.claim("unknown").await, None);
    }

    #[tokio::test]
    async fn an_attached_session_is_taken_over_once() {
        let parked: Parked<u32> = Parked::default();
        let rx = parked.attach("t".to_owned());
        assert!(parked.take_over("t"));
        assert!(rx.await.is_ok(), "the holder is told");
        assert!(!parked.take_over("t"), "only once");
        let _rx = parked.attach("u".to_owned());
        parked.detach("u");
        assert!(!parked.take_over("u"));
    }

    #[tokio::test]
    async fn an_ended_session_cannot_be_claimed() {
        let parked: Parked<u32> = Parked::default();
        let claimed = parked.park("t".to_owned());
        drop(claimed);
        assert_eq!(parked.claim("t").await, None);
        parked.park("u".to_owned());
        parked.forget("u");
        assert!(parked.is_empty());
    }
}
