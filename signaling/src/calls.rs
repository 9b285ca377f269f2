//! The call registry: personal call IDs, 1:1 calls ringing between them, and
//! the private rooms of answered calls (docs/signaling.md, "Calls").
//!
//! A call ID is reserved by one signaling socket while it is connected. A
//! call goes `ringing` → `active` (with a private room) → ended. When the
//! socket of a party to an active call closes, the call and the party's ID
//! are kept for [`REJOIN_GRACE`]: a new socket that registers the same ID in
//! that time takes the reservation over and may join the call's room again
//! (a signaling reconnect); otherwise the call ends `disconnected`. Every
//! transition that touches both parties happens under one lock, so a call
//! is never half-accepted or half-ended. The lock is held only for map
//! updates (never across an `await`), and only signaling takes it: it is
//! nowhere near the media path. Each party hears about a transition as a
//! [`ServerMessage`] on its session's event channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::protocol::{EndReason, ServerMessage};

/// The characters of a call ID: digits and capitals without 0/O, 1/I/L.
pub const CALL_ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in a call ID.
pub const CALL_ID_LEN: usize = 7;
/// Every private (1:1 call) room name starts with this; nobody may join such
/// a room unless the registry lists them for it.
pub const PRIVATE_ROOM_PREFIX: &str = "call-";
/// How long a call rings before it times out, by default.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);
/// Events queued for one session beyond this are dropped (it is not reading).
pub const EVENT_QUEUE: usize = 64;
/// How long an active call waits for a party whose socket closed to come
/// back on a new socket. Short, so that a closed tab that could not hang up
/// still ends the call for the other party within this much (and a silent
/// client within the idle timeout plus this much).
pub const REJOIN_GRACE: Duration = Duration::from_secs(5);

/// Why a registry request was refused; each maps to an `error` code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The proposed or called ID is not a well-formed call ID.
    #[error("a call ID is {CALL_ID_LEN} characters of {}", std::str::from_utf8(CALL_ID_ALPHABET).unwrap_or_default())]
    BadCallId,
    /// Another connected socket holds this ID.
    #[error("call ID {0} is in use by another connection")]
    IdTaken(String),
    /// This socket already holds a different ID.
    #[error("this connection is already registered as {0}")]
    AlreadyRegistered(String),
    /// `call`, `accept`, … before `register`.
    #[error("register a call ID first")]
    NotRegistered,
    /// Nobody online holds the called ID.
    #[error("no one with call ID {0} is online")]
    UnknownId(String),
    /// Calling one's own ID.
    #[error("you cannot call yourself")]
    SelfCall,
    /// The caller is already in a call or a room.
    #[error("finish your current call or leave the room first")]
    CallInProgress,
    /// The call does not exist, is over, or is not this party's to act on.
    #[error("no such call")]
    NoSuchCall,
    /// A private room this socket is not a party of.
    #[error("this room is a private call")]
    PrivateRoom,
}

impl CallError {
    /// The protocol's error code.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::BadCallId => "bad_call_id",
            CallError::IdTaken(_) => "id_taken",
            CallError::AlreadyRegistered(_) => "already_registered",
            CallError::NotRegistered => "not_registered",
            CallError::UnknownId(_) => "unknown_id",
            CallError::SelfCall => "self_call",
            CallError::CallInProgress => "call_in_progress",
            CallError::NoSuchCall => "no_such_call",
            CallError::PrivateRoom => "private_room",
        }
    }
}

/// What a party may do to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAction {
    /// The callee answers a ringing call.
    Accept,
    /// The callee refuses a ringing call.
    Decline,
    /// The caller withdraws a ringing call.
    Cancel,
    /// Either party ends the call (ringing or active).
    Hangup,
}

/// The call IDs of connected sockets, their calls and private rooms.
pub struct CallRegistry {
    inner: Mutex<Inner>,
    ring_timeout: Duration,
    rejoin_grace: Duration,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, User>,
    calls: HashMap<String, Call>,
    /// Private room → the two call IDs allowed in it.
    rooms: HashMap<String, [String; 2]>,
}

struct User {
    /// The socket holding the ID (its connection number).
    conn: u64,
    name: Option<String>,
    events: mpsc::Sender<ServerMessage>,
    /// The call it is part of (ringing or active).
    call: Option<String>,
    /// It has joined a room (a group room or its call's).
    in_room: bool,
    /// Its socket closed during an active call: the ID and the call wait
    /// for a new socket (see [`REJOIN_GRACE`]).
    detached: bool,
}

impl User {
    fn display_name(&self, id: &str) -> String {
        self.name.clone().unwrap_or_else(|| id.to_owned())
    }
}

struct Call {
    caller: String,
    callee: String,
    /// Set once answered.
    room: Option<String>,
}

impl Default for CallRegistry {
    fn default() -> Self {
        Self::new(DEFAULT_RING_TIMEOUT)
    }
}

/// Upper-cases `raw`, drops spaces and dashes, and checks it is a call ID.
pub fn normalize_call_id(raw: &str) -> Result<String, CallError> {
    let id: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = id.len() == CALL_ID_LEN && id.bytes().all(|b| CALL_ID_ALPHABET.contains(&b));
    if valid {
        Ok(id)
    } else {
        Err(CallError::BadCallId)
    }
}

/// Whether `room` is in the private namespace.
pub fn is_private_room(room: &str) -> bool {
    room.starts_with(PRIVATE_ROOM_PREFIX)
}

fn random_call_id() -> String {
    (0..CALL_ID_LEN)
        .map(|_| {
            let i = rand::random_range(0..CALL_ID_ALPHABET.len());
            char::from(CALL_ID_ALPHABET[i])
        })
        .collect()
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl CallRegistry {
    /// A registry whose calls ring for `ring_timeout`.
    pub fn new(ring_timeout: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ring_timeout,
            rejoin_grace: REJOIN_GRACE,
        }
    }

    /// The same registry with another rejoin grace period (zero ends a call
    /// as soon as a party's socket closes).
    pub fn with_rejoin_grace(mut self, grace: Duration) -> Self {
        self.rejoin_grace = grace;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug; the maps are still
        // consistent enough to keep serving, so do not poison everyone.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `proposed` (or a fresh ID) for the socket `conn`, whose
    /// events go to `events`. Returns the ID. An ID whose socket closed
    /// during an active call (and is within its grace period) is taken over,
    /// call included.
    pub fn register(
        &self,
        conn: u64,
        proposed: Option<&str>,
        name: Option<String>,
        events: mpsc::Sender<ServerMessage>,
    ) -> Result<String, CallError> {
        let proposed = proposed.map(normalize_call_id).transpose()?;
        let mut inner = self.lock();
        let id = match proposed {
            Some(id) => match inner.users.get_mut(&id) {
                Some(user) if user.detached => {
                    user.conn = conn;
                    user.events = events;
                    user.detached = false;
                    if name.is_some() {
                        user.name = name;
                    }
                    tracing::debug!(call_id = %id, call = ?user.call, "call ID taken over by a new socket");
                    return Ok(id);
                }
                Some(_) => return Err(CallError::IdTaken(id)),
                None => id,
            },
            None => loop {
                let id = random_call_id();
                if !inner.users.contains_key(&id) {
                    break id;
                }
            },
        };
        inner.users.insert(
            id.clone(),
            User {
                conn,
                name,
                events,
                call: None,
                in_room: false,
                detached: false,
            },
        );
        Ok(id)
    }

    /// Changes the display name of `id`, which this socket holds; `proposed`
    /// (if given) must be that same ID.
    pub fn rename(
        &self,
        id: &str,
        proposed: Option<&str>,
        name: Option<String>,
    ) -> Result<(), CallError> {
        let proposed = proposed.map(normalize_call_id).transpose()?;
        if proposed.is_some_and(|p| p != id) {
            return Err(CallError::AlreadyRegistered(id.to_owned()));
        }
        if let Some(user) = self.lock().users.get_mut(id) {
            user.name = name;
        }
        Ok(())
    }

    /// The socket `conn` holding `id` closed. A ringing call it was part of
    /// ends for the other party with `disconnected`, and the ID is free. An
    /// active call (and the ID) waits for the rejoin grace period instead:
    /// unless a new socket registers the ID meanwhile, the call then ends
    /// with `disconnected`.
    pub fn unregister(self: &Arc<Self>, id: &str, conn: u64) {
        let mut inner = self.lock();
        let Some(user) = inner.users.get(id).filter(|u| u.conn == conn) else {
            return;
        };
        let call = user.call.clone();
        let answered = call
            .as_deref()
            .and_then(|c| inner.calls.get(c))
            .is_some_and(|c| c.room.is_some());
        if answered && !self.rejoin_grace.is_zero() {
            if let Some(user) = inner.users.get_mut(id) {
                user.detached = true;
                // Its Peer leaves the room with the socket.
                user.in_room = false;
            }
            drop(inner);
            tracing::debug!(call_id = id, call = ?call, "socket closed during a call; waiting for a rejoin");
            let registry = Arc::clone(self);
            let grace = self.rejoin_grace;
            let id = id.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                registry.expire(&id, conn);
            });
            return;
        }
        if let Some(call) = call {
            inner.end_call(&call, EndReason::Disconnected);
        }
        inner.users.remove(id);
    }

    /// The grace period of `id`, detached from the socket `conn`, is over:
    /// if no new socket took it over, its call ends and the ID is free.
    fn expire(&self, id: &str, conn: u64) {
        let mut inner = self.lock();
        let Some(user) = inner.users.get(id).filter(|u| u.conn == conn && u.detached) else {
            return;
        };
        tracing::debug!(call_id = id, "no rejoin within the grace period");
        if let Some(call) = user.call.clone() {
            inner.end_call(&call, EndReason::Disconnected);
        }
        inner.users.remove(id);
    }

    /// `from` calls `to`: rings `to`, or tells `from` that `to` is busy.
    /// The call times out after the ring timeout unless answered or ended.
    pub fn call(self: &Arc<Self>, from: Option<&str>, to: &str) -> Result<(), CallError> {
        let from = from.ok_or(CallError::NotRegistered)?;
        let to = normalize_call_id(to)?;
        let mut inner = self.lock();
        let caller = inner.users.get(from).ok_or(CallError::NotRegistered)?;
        if caller.call.is_some() || caller.in_room {
            return Err(CallError::CallInProgress);
        }
        if to == from {
            return Err(CallError::SelfCall);
        }
        let caller_name = caller.display_name(from);
        let callee = inner
            .users
            .get(&to)
            .ok_or_else(|| CallError::UnknownId(to.clone()))?;
        let callee_name = callee.display_name(&to);
        let call = format!("c{}", random_hex(8));
        let calling = ServerMessage::Calling {
            call: call.clone(),
            to: to.clone(),
            name: callee_name,
        };
        inner.notify(from, calling);
        if callee.call.is_some() || callee.in_room {
            inner.notify(
                &to,
                ServerMessage::MissedCall {
                    from: from.to_owned(),
                    name: caller_name,
                },
            );
            inner.notify(
                from,
                ServerMessage::CallEnded {
                    call,
                    reason: EndReason::Busy,
                },
            );
            return Ok(());
        }
        inner.notify(
            &to,
            ServerMessage::Ring {
                call: call.clone(),
                from: from.to_owned(),
                name: caller_name,
            },
        );
        for party in [from, to.as_str()] {
            if let Some(user) = inner.users.get_mut(party) {
                user.call = Some(call.clone());
            }
        }
        inner.calls.insert(
            call.clone(),
            Call {
                caller: from.to_owned(),
                callee: to,
                room: None,
            },
        );
        drop(inner);
        let registry = Arc::clone(self);
        let timeout = self.ring_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let mut inner = registry.lock();
            if inner.calls.get(&call).is_some_and(|c| c.room.is_none()) {
                inner.end_call(&call, EndReason::Timeout);
            }
        });
        Ok(())
    }

    /// `me` accepts, declines, cancels or hangs up `call`.
    pub fn act(&self, me: Option<&str>, call: &str, action: CallAction) -> Result<(), CallError> {
        let me = me.ok_or(CallError::NotRegistered)?;
        let mut inner = self.lock();
        let c = inner.calls.get(call).ok_or(CallError::NoSuchCall)?;
        let ringing = c.room.is_none();
        let allowed = match action {
            CallAction::Accept | CallAction::Decline => ringing && c.callee == me,
            CallAction::Cancel => ringing && c.caller == me,
            CallAction::Hangup => c.caller == me || c.callee == me,
        };
        if !allowed {
            return Err(CallError::NoSuchCall);
        }
        let reason = match action {
            CallAction::Accept => {
                inner.answer(call);
                return Ok(());
            }
            CallAction::Decline => EndReason::Declined,
            CallAction::Cancel => EndReason::Cancelled,
            CallAction::Hangup if ringing && c.caller == me => EndReason::Cancelled,
            CallAction::Hangup if ringing => EndReason::Declined,
            CallAction::Hangup => EndReason::Hangup,
        };
        inner.end_call(call, reason);
        Ok(())
    }

    /// May the holder of `id` join `room`? Rooms outside the private
    /// namespace are open to all.
    pub fn may_join(&self, room: &str, id: Option<&str>) -> Result<(), CallError> {
        if !is_private_room(room) {
            return Ok(());
        }
        let inner = self.lock();
        match (inner.rooms.get(room), id) {
            (Some(parties), Some(id)) if parties.iter().any(|p| p == id) => Ok(()),
            _ => Err(CallError::PrivateRoom),
        }
    }

    /// The holder of `id` joined (`true`) or left a room. Leaving its call's
    /// private room hangs the call up.
    pub fn set_in_room(&self, id: &str, room: &str, in_room: bool) {
        let mut inner = self.lock();
        let Some(user) = inner.users.get_mut(id) else {
            return;
        };
        user.in_room = in_room;
        let call = user.call.clone();
        if in_room {
            return;
        }
        if let Some(call) = call {
            if inner.calls.get(&call).and_then(|c| c.room.as_deref()) == Some(room) {
                inner.end_call(&call, EndReason::Hangup);
            }
        }
    }

    /// How many IDs are registered and calls exist (for tests and logs).
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.users.len(), inner.calls.len())
    }
}

impl Inner {
    fn notify(&self, id: &str, message: ServerMessage) {
        if let Some(user) = self.users.get(id) {
            if user.events.try_send(message).is_err() {
                tracing::warn!(call_id = id, "call event dropped: session not reading");
            }
        }
    }

    /// Opens the private room of a ringing call and tells both parties.
    fn answer(&mut self, call: &str) {
        let room = format!("{PRIVATE_ROOM_PREFIX}{}", random_hex(16));
        let Some(c) = self.calls.get_mut(call) else {
            return;
        };
        c.room = Some(room.clone());
        let (caller, callee) = (c.caller.clone(), c.callee.clone());
        self.rooms
            .insert(room.clone(), [caller.clone(), callee.clone()]);
        for (me, other) in [(&caller, &callee), (&callee, &caller)] {
            let name = self
                .users
                .get(other)
                .map(|u| u.display_name(other))
                .unwrap_or_else(|| other.clone());
            self.notify(
                me,
                ServerMessage::CallAccepted {
                    call: call.to_owned(),
                    room: room.clone(),
                    peer: other.clone(),
                    name,
                },
            );
        }
    }

    /// Ends `call` for both parties with `reason`. A party waiting for a
    /// rejoin has no socket to tell: its ID is released (its `join` of the
    /// room is refused once it is back, which tells it the call is over).
    fn end_call(&mut self, call: &str, reason: EndReason) {
        let Some(c) = self.calls.remove(call) else {
            return;
        };
        if let Some(room) = &c.room {
            self.rooms.remove(room);
        }
        for party in [&c.caller, &c.callee] {
            let Some(user) = self.users.get_mut(party.as_str()) else {
                continue;
            };
            if user.call.as_deref() == Some(call) {
                user.call = None;
            }
            if user.detached {
                self.users.remove(party.as_str());
                continue;
            }
            self.notify(
                party,
                ServerMessage::CallEnded {
                    call: call.to_owned(),
                    reason,
                },
            );
        }
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
