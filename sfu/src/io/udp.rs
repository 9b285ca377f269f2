//! Batched IO on the shared UDP socket, through `quinn-udp`: datagrams are
//! read up to [`quinn_udp::BATCH_SIZE`] per system call (`recvmmsg`, and
//! GRO where the kernel coalesces a flow's datagrams), and each loop
//! turn's datagrams to one destination go out as one `sendmsg` with UDP
//! segmentation offload (GSO) when they are of one size (the last may be
//! shorter), which is how a subscriber's share of a keyframe burst leaves.
//! Nothing here waits for the socket: a full send buffer drops the
//! datagrams, and the caller counts them.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Bytes per receive buffer: a GRO read can hold up to 64 KiB of one
/// flow's datagrams.
const RECV_CHUNK: usize = 65_536;
/// Largest GSO send, in bytes (an IP datagram's limit, with headroom).
const MAX_GSO_BYTES: usize = 60_000;

/// The socket's batching state and the buffers reused across loop turns
/// (allocated once per Worker, never per datagram).
pub(crate) struct BatchUdp {
    state: UdpSocketState,
    recv_buf: Vec<u8>,
    metas: [RecvMeta; BATCH_SIZE],
    /// One turn's datagrams to send, as (destination, index in the
    /// caller's list), sorted by destination.
    queue: Vec<(SocketAddr, usize)>,
    send_buf: Vec<u8>,
}

/// What became of one datagram handed to [`BatchUdp::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// The kernel took it.
    Ok,
    /// The send buffer was full: dropped.
    Full,
    /// Refused for another reason (logged).
    Failed,
}

impl BatchUdp {
    /// Batching state for `socket` (made non-blocking).
    pub(crate) fn new(socket: &UdpSocket) -> io::Result<Self> {
        Ok(Self {
            state: UdpSocketState::new(socket.into())?,
            recv_buf: vec![0u8; RECV_CHUNK * BATCH_SIZE],
            metas: [RecvMeta::default(); BATCH_SIZE],
            queue: Vec::new(),
            send_buf: Vec::with_capacity(MAX_GSO_BYTES),
        })
    }

    /// Reads what is waiting, without blocking, and hands each datagram to
    /// `on_datagram`; returns how many arrived (0 when nothing was waiting).
    pub(crate) fn recv(
        &mut self,
        socket: &UdpSocket,
        mut on_datagram: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let mut chunks = self.recv_buf.chunks_mut(RECV_CHUNK);
        let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let state = &self.state;
        let metas = &mut self.metas;
        let n = match socket.try_io(Interest::READABLE, || {
            state.recv(socket.into(), &mut iovs, metas)
        }) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(err) => return Err(err),
        };
        let mut count = 0;
        for (meta, iov) in self.metas.iter().zip(iovs.iter()).take(n) {
            let data = &iov[..meta.len.min(iov.len())];
            // A GRO read holds several datagrams of one source, `stride` apart.
            let stride = if meta.stride == 0 {
                data.len()
            } else {
                meta.stride
            };
            for datagram in data.chunks(stride.max(1)) {
                on_datagram(meta.addr, datagram);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Sends `items`, each a datagram as `datagram` reads it (destination
    /// and contents): the ones to each destination keep their order and go
    /// out together, as one GSO send per run of equal sizes. `on_sent`
    /// learns each one's fate by its index in `items`.
    pub(crate) fn send<T>(
        &mut self,
        socket: &UdpSocket,
        items: &[T],
        datagram: impl Fn(&T) -> (SocketAddr, &[u8]),
        mut on_sent: impl FnMut(usize, Sent),
    ) {
        let len = |i: usize| datagram(&items[i]).1.len();
        let contents = |i: usize| datagram(&items[i]).1;
        self.queue.clear();
        self.queue.extend(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (datagram(item).0, i)),
        );
        // Stable: each destination's datagrams stay in order.
        self.queue.sort_by_key(|(dest, _)| *dest);
        let max_segments = self.state.max_gso_segments().max(1);
        let mut start = 0;
        while start < self.queue.len() {
            let (dest, first) = self.queue[start];
            let size = len(first);
            // The run: same destination, all `size` long but the last,
            // which may be shorter.
            let mut end = start + 1;
            let mut bytes = size;
            while end < self.queue.len()
                && end - start < max_segments
                && self.queue[end].0 == dest
                && len(self.queue[end - 1].1) == size
                && len(self.queue[end].1) <= size
                && bytes + len(self.queue[end].1) <= MAX_GSO_BYTES
            {
                bytes += len(self.queue[end].1);
                end += 1;
            }
            let result = if end - start == 1 || size == 0 {
                end = start + 1;
                self.send_one(socket, dest, contents(first), None)
            } else {
                self.send_buf.clear();
                for &(_, i) in &self.queue[start..end] {
                    self.send_buf.extend_from_slice(contents(i));
                }
                let batch = std::mem::take(&mut self.send_buf);
                let result = self.send_one(socket, dest, &batch, Some(size));
                self.send_buf = batch;
                result
            };
            match result {
                Ok(()) => (start..end).for_each(|k| on_sent(self.queue[k].1, Sent::Ok)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    (start..end).for_each(|k| on_sent(self.queue[k].1, Sent::Full));
                }
                Err(err) if end - start > 1 => {
                    // GSO refused (quinn-udp turns it off for this socket
                    // after such an error): the same datagrams one by one.
                    tracing::debug!(%err, destination = %dest, "GSO send failed; sending singly");
                    for k in start..end {
                        let i = self.queue[k].1;
                        let sent = match self.send_one(socket, dest, contents(i), None) {
                            Ok(()) => Sent::Ok,
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Sent::Full,
                            Err(_) => Sent::Failed,
                        };
                        on_sent(i, sent);
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, destination = %dest, "send failed");
                    on_sent(first, Sent::Failed);
                }
            }
            start = end;
        }
    }

    fn send_one(
        &self,
        socket: &UdpSocket,
        destination: SocketAddr,
        contents: &[u8],
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        socket.try_io(Interest::WRITABLE, || {
            self.state.try_send(socket.into(), &transmit)
        })
    }
}
