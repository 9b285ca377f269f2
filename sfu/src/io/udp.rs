//! Batched IO on the shared UDP socket. Datagrams are read through
//! `quinn-udp`, up to [`quinn_udp::BATCH_SIZE`] per system call
//! (`recvmmsg`, and GRO where the kernel coalesces a flow's datagrams). A
//! batch to send is grouped by destination: a destination's run of
//! datagrams of one size (the last may be shorter) goes out as one
//! `sendmsg` with UDP segmentation offload (GSO), through `quinn-udp`; the
//! lone datagrams (one packet fanned out to many subscribers gives one per
//! subscriber) go out up to [`SENDMMSG_BATCH`] per `sendmmsg`, through
//! `nix`. Nothing here waits for the socket: a full send buffer drops the
//! datagrams, and the caller counts them.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Bytes per receive buffer: a GRO read can hold up to 64 KiB of one
/// flow's datagrams.
const RECV_CHUNK: usize = 65_536;
/// Largest GSO send, in bytes (an IP datagram's limit, with headroom).
const MAX_GSO_BYTES: usize = 60_000;
/// Datagrams to different destinations sent by one `sendmmsg`.
const SENDMMSG_BATCH: usize = 64;

/// The socket's batching state and the buffers reused across loop turns
/// (allocated once per Worker, never per datagram).
pub(crate) struct BatchUdp {
    state: UdpSocketState,
    recv_buf: Vec<u8>,
    metas: [RecvMeta; BATCH_SIZE],
    send: SendBuffers,
}

/// The buffers of the sending side, apart so that datagrams can be sent
/// while a received batch is still being read.
struct SendBuffers {
    /// One batch's datagrams to send, as (destination, index in the
    /// caller's list), sorted by destination.
    queue: Vec<(SocketAddr, usize)>,
    /// Where a GSO send's datagrams are laid end to end.
    gso_buf: Vec<u8>,
    /// Positions in `queue` of datagrams gathered for one `sendmmsg`.
    singles: Vec<usize>,
    /// Their destinations, as the system call takes them.
    addresses: Vec<Option<SockaddrStorage>>,
    /// The message headers of one `sendmmsg`, allocated once.
    headers: MultiHeaders<SockaddrStorage>,
    /// The socket is IPv6: IPv4 destinations are written v4-mapped.
    ipv6: bool,
}

/// Sends on the socket: from [`BatchUdp::sender`], or handed to the
/// callback of [`BatchUdp::recv`].
pub(crate) struct Sender<'a> {
    state: &'a UdpSocketState,
    buffers: &'a mut SendBuffers,
}

/// What became of one datagram handed to [`Sender::send`].
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
            send: SendBuffers {
                queue: Vec::new(),
                gso_buf: Vec::with_capacity(MAX_GSO_BYTES),
                singles: Vec::with_capacity(SENDMMSG_BATCH),
                addresses: Vec::with_capacity(SENDMMSG_BATCH),
                headers: MultiHeaders::preallocate(SENDMMSG_BATCH, None),
                ipv6: socket.local_addr()?.is_ipv6(),
            },
        })
    }

    /// The sending side.
    pub(crate) fn sender(&mut self) -> Sender<'_> {
        Sender {
            state: &self.state,
            buffers: &mut self.send,
        }
    }

    /// Reads what is waiting, without blocking, and hands each datagram to
    /// `on_datagram`, with the sending side so that it can send before the
    /// rest of the batch is read; returns how many arrived (0 when nothing
    /// was waiting).
    pub(crate) fn recv(
        &mut self,
        socket: &UdpSocket,
        mut on_datagram: impl FnMut(SocketAddr, &[u8], &mut Sender<'_>),
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
        let mut sender = Sender {
            state,
            buffers: &mut self.send,
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
                on_datagram(meta.addr, datagram, &mut sender);
                count += 1;
            }
        }
        Ok(count)
    }
}

impl Sender<'_> {
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
        self.buffers.queue.clear();
        self.buffers.queue.extend(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (datagram(item).0, i)),
        );
        // Stable: each destination's datagrams stay in order.
        self.buffers.queue.sort_by_key(|(dest, _)| *dest);
        let max_segments = self.state.max_gso_segments().max(1);
        let mut start = 0;
        while start < self.buffers.queue.len() {
            let (dest, first) = self.buffers.queue[start];
            let size = len(first);
            // The run: same destination, all `size` long but the last,
            // which may be shorter.
            let mut end = start + 1;
            let mut bytes = size;
            while end < self.buffers.queue.len()
                && end - start < max_segments
                && self.buffers.queue[end].0 == dest
                && len(self.buffers.queue[end - 1].1) == size
                && len(self.buffers.queue[end].1) <= size
                && bytes + len(self.buffers.queue[end].1) <= MAX_GSO_BYTES
            {
                bytes += len(self.buffers.queue[end].1);
                end += 1;
            }
            if end - start == 1 || size == 0 {
                // A lone datagram: gathered with other destinations' into
                // one `sendmmsg`.
                self.buffers.singles.push(start);
                if self.buffers.singles.len() == SENDMMSG_BATCH {
                    self.send_singles(socket, &contents, &mut on_sent);
                }
                start += 1;
                continue;
            }
            // Gathered datagrams leave first, so a destination's keep their order.
            self.send_singles(socket, &contents, &mut on_sent);
            let result = {
                self.buffers.gso_buf.clear();
                for &(_, i) in &self.buffers.queue[start..end] {
                    self.buffers.gso_buf.extend_from_slice(contents(i));
                }
                let batch = std::mem::take(&mut self.buffers.gso_buf);
                let result = self.send_one(socket, dest, &batch, Some(size));
                self.buffers.gso_buf = batch;
                result
            };
            match result {
                Ok(()) => (start..end).for_each(|k| on_sent(self.buffers.queue[k].1, Sent::Ok)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    (start..end).for_each(|k| on_sent(self.buffers.queue[k].1, Sent::Full));
                }
                Err(err) if end - start > 1 => {
                    // GSO refused (quinn-udp turns it off for this socket
                    // after such an error): the same datagrams one by one.
                    tracing::debug!(%err, destination = %dest, "GSO send failed; sending singly");
                    for k in start..end {
                        let i = self.buffers.queue[k].1;
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
        self.send_singles(socket, &contents, &mut on_sent);
    }

    /// Sends the gathered lone datagrams, as few `sendmmsg` calls as the
    /// kernel takes them in. It stops at the first datagram it cannot send:
    /// a full buffer drops that one and the rest; another error drops that
    /// one only.
    fn send_singles<'c>(
        &mut self,
        socket: &UdpSocket,
        contents: &impl Fn(usize) -> &'c [u8],
        on_sent: &mut impl FnMut(usize, Sent),
    ) {
        let buffers = &mut *self.buffers;
        let mut done = 0;
        while done < buffers.singles.len() {
            let batch = &buffers.singles[done..];
            let slices: [[IoSlice<'_>; 1]; SENDMMSG_BATCH] = std::array::from_fn(|j| {
                [IoSlice::new(
                    batch
                        .get(j)
                        .map_or(&[][..], |&k| contents(buffers.queue[k].1)),
                )]
            });
            buffers.addresses.clear();
            buffers.addresses.extend(batch.iter().map(|&k| {
                Some(SockaddrStorage::from(wire_address(
                    buffers.queue[k].0,
                    buffers.ipv6,
                )))
            }));
            let headers = &mut buffers.headers;
            let addresses = &buffers.addresses;
            let result = socket.try_io(Interest::WRITABLE, || {
                sendmmsg(
                    socket.as_raw_fd(),
                    headers,
                    &slices[..batch.len()],
                    addresses,
                    [],
                    MsgFlags::MSG_DONTWAIT,
                )
                .map(|sent| sent.count())
                .map_err(io::Error::from)
            });
            match result {
                Ok(sent) if sent > 0 => {
                    for &k in &batch[..sent] {
                        on_sent(buffers.queue[k].1, Sent::Ok);
                    }
                    done += sent;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    for &k in batch {
                        on_sent(buffers.queue[k].1, Sent::Full);
                    }
                    break;
                }
                other => {
                    let (dest, i) = buffers.queue[batch[0]];
                    match other {
                        Err(err) => tracing::debug!(%err, destination = %dest, "send failed"),
                        Ok(_) => tracing::debug!(destination = %dest, "send took nothing"),
                    }
                    on_sent(i, Sent::Failed);
                    done += 1;
                }
            }
        }
        buffers.singles.clear();
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

/// `destination` as the socket takes it: an IPv6 socket sends to IPv4
/// peers at their v4-mapped address.
fn wire_address(destination: SocketAddr, ipv6: bool) -> SocketAddr {
    match destination {
        SocketAddr::V4(v4) if ipv6 => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bound(ip: &str) -> UdpSocket {
        UdpSocket::bind((ip, 0)).await.expect("bind on loopback")
    }

    fn address(socket: &UdpSocket) -> SocketAddr {
        socket.local_addr().expect("a bound socket has an address")
    }

    /// The batching state of `server`, ready to send: `try_io` sends only
    /// once the reactor has seen the socket writable.
    async fn ready(server: &UdpSocket) -> BatchUdp {
        let udp = BatchUdp::new(server).expect("batch state");
        server.writable().await.expect("writable");
        udp
    }

    /// Sends `items` from `server`; the fate of each, in the order of `items`.
    fn send(udp: &mut BatchUdp, server: &UdpSocket, items: &[(SocketAddr, Vec<u8>)]) -> Vec<Sent> {
        let mut fates = vec![None; items.len()];
        udp.sender().send(
            server,
            items,
            |(dest, data)| (*dest, &data[..]),
            |i, sent| fates[i] = Some(sent),
        );
        fates
            .into_iter()
            .map(|fate| fate.expect("every datagram's fate is reported"))
            .collect()
    }

    /// Everything that waits on `socket`, as (datagram length, first byte).
    async fn drain(socket: &UdpSocket) -> Vec<(usize, u8)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), socket.recv(&mut buf)).await
        {
            got.push((n, buf[0]));
        }
        got
    }

    #[tokio::test]
    async fn lone_and_gso_datagrams_reach_each_destination_in_order() {
        let server = bound("127.0.0.1").await;
        let mut udp = ready(&server).await;
        let (a, b) = (bound("127.0.0.1").await, bound("127.0.0.1").await);
        let (to_a, to_b) = (address(&a), address(&b));
        // To a: one lone datagram, then a run of equal sizes (GSO), then a
        // lone one again. To b: lone datagrams of different sizes.
        let items: Vec<(SocketAddr, Vec<u8>)> = vec![
            (to_a, vec![1; 300]),
            (to_b, vec![2; 100]),
            (to_a, vec![3; 500]),
            (to_a, vec![4; 500]),
            (to_b, vec![5; 200]),
            (to_a, vec![6; 400]),
            (to_a, vec![7; 900]),
        ];
        assert_eq!(send(&mut udp, &server, &items), vec![Sent::Ok; 7]);
        assert_eq!(
            drain(&a).await,
            vec![(300, 1), (500, 3), (500, 4), (400, 6), (900, 7)]
        );
        assert_eq!(drain(&b).await, vec![(100, 2), (200, 5)]);
    }

    #[tokio::test]
    async fn more_lone_datagrams_than_one_sendmmsg_takes_all_arrive() {
        let server = bound("127.0.0.1").await;
        let mut udp = ready(&server).await;
        let mut receivers = Vec::new();
        for _ in 0..(SENDMMSG_BATCH + 10) {
            receivers.push(bound("127.0.0.1").await);
        }
        let items: Vec<(SocketAddr, Vec<u8>)> = receivers
            .iter()
            .enumerate()
            .map(|(k, r)| (address(r), vec![k as u8; 64]))
            .collect();
        assert_eq!(send(&mut udp, &server, &items), vec![Sent::Ok; items.len()]);
        let mut buf = [0u8; 128];
        for (k, r) in receivers.iter().enumerate() {
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), r.recv(&mut buf))
                .await
                .expect("a datagram for each receiver")
                .expect("recv");
            assert_eq!((n, buf[0]), (64, k as u8));
        }
    }

    #[tokio::test]
    async fn an_ipv6_socket_reaches_an_ipv4_peer() {
        // A dual-stack socket, as `[::]` binds; skipped where IPv6 is off.
        let Ok(server) = UdpSocket::bind("[::]:0").await else {
            return;
        };
        let mut udp = ready(&server).await;
        let peer = bound("127.0.0.1").await;
        let items = vec![(address(&peer), vec![9u8; 80])];
        assert_eq!(send(&mut udp, &server, &items), vec![Sent::Ok]);
        assert_eq!(drain(&peer).await, vec![(80, 9)]);
    }
}
