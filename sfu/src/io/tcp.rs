//! ICE-TCP: the passive TCP port (RFC 6544) browsers fall back to when UDP
//! is blocked. Each accepted connection carries RFC 4571 frames (a 16-bit
//! big-endian length, then one STUN, DTLS, RTP or RTCP packet). The
//! connection's task reads frames into the Worker's loop as
//! [`TcpEvent::Frame`]s and writes what the loop queues for it.
//!
//! Limits: at most [`MAX_CONNECTIONS`] connections at once (more are
//! closed at accept); a connection whose address has not passed an ICE
//! check within [`VERIFY_WITHIN`] is closed; each connection's send queue
//! holds [`SEND_QUEUE`] packets, and a packet for a full queue is dropped
//! and counted (a TCP path slower than the media is like a lossy one).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::core::stats::TcpCounters;

/// Connections open at once, at most.
pub const MAX_CONNECTIONS: usize = 4096;
/// A connection must pass an ICE check this soon after it opens.
pub const VERIFY_WITHIN: Duration = Duration::from_secs(10);
/// Packets queued for one connection before new ones are dropped.
pub const SEND_QUEUE: usize = 512;

/// What connection tasks tell the Worker's loop.
#[derive(Debug)]
pub enum TcpEvent {
    /// A connection was accepted; packets for `remote` go on `sender`.
    Opened {
        /// The client's address.
        remote: SocketAddr,
        /// Its send queue.
        sender: mpsc::Sender<Bytes>,
        /// Aborts its task (which closes it).
        abort: AbortHandle,
    },
    /// One frame arrived.
    Frame {
        /// From where.
        remote: SocketAddr,
        /// The packet, without the length prefix.
        data: BytesMut,
    },
    /// The connection closed (by the client, an error, or a bad frame).
    Closed {
        /// Whose.
        remote: SocketAddr,
    },
}

/// One open connection, as the Worker's loop sees it.
struct Connection {
    sender: mpsc::Sender<Bytes>,
    abort: AbortHandle,
    opened_at: Instant,
}

/// The Worker loop's table of ICE-TCP connections.
#[derive(Default)]
pub struct Connections {
    by_remote: HashMap<SocketAddr, Connection>,
    /// Its counters.
    pub counters: TcpCounters,
}

impl Connections {
    /// Records an accepted connection, or closes it if too many are open.
    pub fn opened(&mut self, remote: SocketAddr, sender: mpsc::Sender<Bytes>, abort: AbortHandle) {
        if self.by_remote.len() >= MAX_CONNECTIONS {
            self.counters.refused += 1;
            abort.abort();
            return;
        }
        self.counters.accepted += 1;
        self.by_remote.insert(
            remote,
            Connection {
                sender,
                abort,
                opened_at: Instant::now(),
            },
        );
        self.counters.open = self.by_remote.len() as u64;
    }

    /// Forgets a closed connection; returns whether it was known.
    pub fn closed(&mut self, remote: SocketAddr) -> bool {
        let known = self.by_remote.remove(&remote).is_some();
        self.counters.open = self.by_remote.len() as u64;
        known
    }

    /// Queues one packet for `remote`; drops it (counted) if the queue is
    /// full or the connection is gone.
    pub fn send(&mut self, remote: SocketAddr, data: Bytes) {
        let queued = self
            .by_remote
            .get(&remote)
            .is_some_and(|c| c.sender.try_send(data).is_ok());
        if !queued {
            self.counters.send_dropped += 1;
        }
    }

    /// Closes the connections older than [`VERIFY_WITHIN`] for which
    /// `verified` is false; returns their addresses.
    pub fn close_unverified(
        &mut self,
        now: Instant,
        verified: impl Fn(SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        let stale: Vec<SocketAddr> = self
            .by_remote
            .iter()
            .filter(|(remote, c)| {
                now.saturating_duration_since(c.opened_at) >= VERIFY_WITHIN && !verified(**remote)
            })
            .map(|(remote, _)| *remote)
            .collect();
        for remote in &stale {
            if let Some(c) = self.by_remote.remove(remote) {
                c.abort.abort();
                self.counters.unverified += 1;
            }
        }
        self.counters.open = self.by_remote.len() as u64;
        stale
    }
}

/// Accepts connections until `events` closes.
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(%err, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, %remote, "TCP_NODELAY not set");
        }
        let (sender, queue) = mpsc::channel(SEND_QUEUE);
        let task_events = events.clone();
        // The task starts reading only once the loop knows the connection,
        // so that answers to its first frames have somewhere to go.
        let (go, start) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if start.await.is_err() {
                return;
            }
            let result = serve(stream, remote, queue, &task_events).await;
            if let Err(err) = result {
                tracing::debug!(%err, %remote, "ICE-TCP connection ended");
            }
            let _ = task_events.send(TcpEvent::Closed { remote }).await;
        });
        let opened = TcpEvent::Opened {
            remote,
            sender,
            abort: task.abort_handle(),
        };
        if events.send(opened).await.is_err() {
            return;
        }
        let _ = go.send(());
    }
}

/// Reads frames from one connection into `events` and writes the packets
/// queued for it, until either side ends.
async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    mut queue: mpsc::Receiver<Bytes>,
    events: &mpsc::Sender<TcpEvent>,
) -> io::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    let read = async {
        loop {
            let len = reader.read_u16().await?;
            let mut data = BytesMut::zeroed(usize::from(len));
            reader.read_exact(&mut data).await?;
            if events.send(TcpEvent::Frame { remote, data }).await.is_err() {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let write = async {
        let mut frame = Vec::with_capacity(2048);
        while let Some(packet) = queue.recv().await {
            frame.clear();
            frame_into(&packet, &mut frame)?;
            writer.write_all(&frame).await?;
        }
        Ok::<(), io::Error>(())
    };
    tokio::select! {
        r = read => r,
        w = write => w,
    }
}

/// Appends `packet` to `out` as one RFC 4571 frame.
pub fn frame_into(packet: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let len = u16::try_from(packet.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet over 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Ok(())
}

/// Splits complete RFC 4571 frames off the front of `buf`, leaving any
/// partial frame in it. The inverse of [`frame_into`], for tests and
/// fuzzing of the framing.
pub fn split_frames(buf: &mut BytesMut) -> Vec<BytesMut> {
    let mut frames = Vec::new();
    while buf.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if buf.len() < 2 + len {
            break;
        }
        let mut frame = buf.split_to(2 + len);
        let _ = frame.split_to(2);
        frames.push(frame);
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_partial_reads() {
        let mut wire = Vec::new();
        for packet in [&b"stun"[..], &[], &[7u8; 1500]] {
            frame_into(packet, &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(7) {
            buf.extend_from_slice(chunk);
            got.extend(split_frames(&mut buf));
        }
        assert!(buf.is_empty());
        let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
        assert_eq!(lens, [4, 0, 1500]);
        assert_eq!(&got[0][..], b"stun");
    }

    #[test]
    fn oversized_packet_is_refused() {
        let mut out = Vec::new();
        assert!(frame_into(&vec![0u8; 70_000], &mut out).is_err());
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn a_connection_carries_frames_both_ways() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events_tx, mut events) = mpsc::channel(16);
        tokio::spawn(accept_loop(listener, events_tx));
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut wire = Vec::new();
        frame_into(b"hello", &mut wire).unwrap();
        client.write_all(&wire).await.unwrap();

        let mut connections = Connections::default();
        let remote = match events.recv().await.unwrap() {
            TcpEvent::Opened {
                remote,
                sender,
                abort,
            } => {
                connections.opened(remote, sender, abort);
                remote
            }
            other => panic!("unexpected {other:?}"),
        };
        match events.recv().await.unwrap() {
            TcpEvent::Frame { data, .. } => assert_eq!(&data[..], b"hello"),
            other => panic!("unexpected {other:?}"),
        }
        connections.send(remote, Bytes::from_static(b"world"));
        let mut reply = [0u8; 7];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"\x00\x05world");

        drop(client);
        match events.recv().await.unwrap() {
            TcpEvent::Closed { remote: r } => assert_eq!(r, remote),
            other => panic!("unexpected {other:?}"),
        }
        assert!(connections.closed(remote));
        assert_eq!(connections.counters.accepted, 1);
        assert_eq!(connections.counters.open, 0);
    }
}
