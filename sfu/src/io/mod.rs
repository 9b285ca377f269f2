//! The IO driver: everything that touches a socket. The core never does.

pub mod driver;
pub mod stun_discovery;
pub mod tcp;
mod udp;
