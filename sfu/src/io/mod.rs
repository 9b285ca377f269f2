//! The IO driver: everything that touches a socket. The core never does.

pub mod udp;
