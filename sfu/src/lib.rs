//! The media plane of the SFU.
//!
//! - [`core`]: the sans-IO core (Rooms, Peers, Tracks, Subscriptions, the
//!   Forwarder) on webrtc-rs's `rtc` crate. No sockets, no tokio; time is
//!   passed in.
//! - [`io`]: the driver that owns the shared UDP socket and feeds the core.
//! - [`worker`]: a Worker thread that owns one core and its socket, and the
//!   handle the control plane talks to it through.
//! - `fuzzing` (hidden): entry points for the fuzz targets in `fuzz/` and
//!   the corpus regression tests.
//!
//! The threading rule: a Room lives on exactly one Worker. The packet path
//! takes no lock and crosses no thread; the control plane talks to a Worker
//! with bounded command messages and `oneshot` replies, and the Worker never
//! waits on the control plane.

pub mod core;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
pub mod placement;
pub mod worker;
