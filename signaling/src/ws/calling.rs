//! Call requests of a signaling session: `register`, `call`, `accept`,
//! `decline`, `cancel` and `hangup`, handed to the call registry
//! ([`crate::calls`]), and the registry's events for this socket.

use tokio::sync::mpsc;

use super::Session;
use crate::calls::{normalize_call_id, CallAction, CallError, EVENT_QUEUE};
use crate::protocol::{validate_name, ServerMessage};

impl Session {
    fn call_error(&mut self, err: CallError) {
        self.error(err.code(), err.to_string());
    }

    fn rate_limited(&mut self, what: &str, retry_after: std::time::Duration) {
        let secs = retry_after.as_secs_f64().ceil().max(1.0);
        self.error(
            "rate_limited",
            format!("too many {what}; try again in {secs:.0} s"),
        );
    }

    /// Reserves a call ID for this socket, or renames it.
    pub(super) fn register(&mut self, name: Option<String>, call_id: Option<String>) {
        if let Some(name) = &name {
            if let Err(message) = validate_name(name) {
                return self.error("bad_name", message);
            }
        }
        if let Some(Err(err)) = call_id.as_deref().map(normalize_call_id) {
            return self.call_error(err);
        }
        if !self.register_limiter.allow() {
            let wait = self.register_limiter.retry_after();
            return self.rate_limited("register requests", wait);
        }
        let name = name.map(|n| n.trim().to_owned());
        if let Some(id) = self.call_id.clone() {
            return match self.state.calls.rename(&id, call_id.as_deref(), name) {
                Ok(()) => self.outbox.push(ServerMessage::Registered { call_id: id }),
                Err(err) => self.call_error(err),
            };
        }
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let result = self
            .state
            .calls
            .register(self.conn, call_id.as_deref(), name, events);
        match result {
            Ok(id) => {
                tracing::debug!(call_id = %id, "registered");
                if let Some(room) = &self.room {
                    // Registered from inside a room: busy for callers.
                    self.state.calls.set_in_room(&id, room, true);
                }
                self.call_events = Some(rx);
                self.call_id = Some(id.clone());
                self.outbox.push(ServerMessage::Registered { call_id: id });
            }
            Err(err) => self.call_error(err),
        }
    }

    /// Rings the holder of `to`.
    pub(super) fn call(&mut self, to: &str) {
        // Refusals that reveal nothing about others cost no token.
        if self.call_id.is_none() {
            return self.call_error(CallError::NotRegistered);
        }
        if let Err(err) = normalize_call_id(to) {
            return self.call_error(err);
        }
        if !self.call_limiter.allow() {
            let wait = self.call_limiter.retry_after();
            return self.rate_limited("call requests", wait);
        }
        if let Err(err) = self.state.calls.call(self.call_id.as_deref(), to) {
            self.call_error(err);
        }
    }

    /// Accepts, declines, cancels or hangs up `call`.
    pub(super) fn act(&mut self, call: &str, action: CallAction) {
        if let Err(err) = self.state.calls.act(self.call_id.as_deref(), call, action) {
            self.call_error(err);
        }
    }

    /// An event from the registry for this socket.
    pub(super) fn on_call_event(&mut self, event: ServerMessage) {
        self.outbox.push(event);
    }
}
