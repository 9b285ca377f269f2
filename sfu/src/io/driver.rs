//! The Worker's event loop, on one thread: the shared UDP socket (one port
//! for every Peer) and the ICE-TCP connections feed the core; what the core
//! transmits goes out on the socket or the right connection; its timers
//! run; and the Worker's commands are carried out.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::shared::TransportProtocol;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::tcp::{self, Connections, TcpEvent};
use super::udp::{BatchUdp, Sender, Sent};
use crate::core::containment::{Contained, Suspect};
use crate::core::{Core, CoreError, DropReason, LeaveReason, PeerId, Signal, Transmit};
use crate::placement::Placement;
use crate::worker::Command;

/// Datagrams read per wake-up before the loop looks at commands and timers.
const READ_BATCH: usize = 64;
/// Once this many datagrams wait to be sent, they go out before the next
/// received datagram is handled: a fan-out leaves as soon as it is
/// encrypted, instead of after the whole read batch (its latency), while a
/// small room's datagrams still share a send (one GSO send per
/// destination's run).
const SEND_AT: usize = 32;
/// Subscribers encrypted for per step of a fan-out (`CoreConfig::fanout_step`):
/// the first copies of a packet to hundreds of subscribers leave while
/// the core encrypts the next ones.
pub(crate) const FANOUT_STEP: usize = 32;
/// ICE-TCP events waiting for the loop; connection tasks wait beyond this
/// (TCP flow control slows the client).
const TCP_EVENT_QUEUE: usize = 1024;
/// How often ICE-TCP connections that never passed an ICE check are looked
/// for, and this Worker's rooms and load are reported to the placement.
const TCP_SWEEP_INTERVAL: Duration = Duration::from_secs(2);

/// Which Worker this is, among how many, and the room map they share.
pub(crate) struct Slot {
    /// This Worker's index.
    pub index: usize,
    /// The room-to-Worker map.
    pub placement: Arc<Placement>,
}

/// Runs a Worker on the current thread until every handle is dropped.
pub(crate) fn run_thread(
    socket: StdUdpSocket,
    tcp_listener: Option<StdTcpListener>,
    core: Core,
    commands: mpsc::Receiver<Command>,
    slot: Slot,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "cannot start the worker's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let socket = match UdpSocket::from_std(socket) {
            Ok(socket) => socket,
            Err(err) => {
                tracing::error!(%err, "cannot register the UDP socket");
                return;
            }
        };
        let (tcp_tx, tcp_events) = mpsc::channel(TCP_EVENT_QUEUE);
        if let Some(listener) = tcp_listener {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    tokio::spawn(tcp::accept_loop(listener, tcp_tx));
                }
                Err(err) => tracing::error!(%err, "cannot register the ICE-TCP listener"),
            }
        }
        run(socket, tcp_events, core, commands, slot).await;
    });
}

async fn run(
    socket: UdpSocket,
    mut tcp_events: mpsc::Receiver<TcpEvent>,
    mut core: Core,
    mut commands: mpsc::Receiver<Command>,
    slot: Slot,
) {
    let mut sessions: HashMap<PeerId, mpsc::Sender<Signal>> = HashMap::new();
    let mut connections = Connections::default();
    let mut udp = match BatchUdp::new(&socket) {
        Ok(udp) => udp,
        Err(err) => {
            tracing::error!(%err, "cannot set up batched IO on the UDP socket");
            return;
        }
    };
    let mut outgoing: Vec<Transmit> = Vec::new();
    let mut sample = 0u32;
    let mut next_tcp_sweep = Instant::now() + TCP_SWEEP_INTERVAL;
    loop {
        let mut out = Out {
            socket: &socket,
            outgoing: &mut outgoing,
            connections: &mut connections,
            sample: &mut sample,
        };
        send_all(&mut out, &mut udp.sender(), &mut core);
        deliver_signals(&mut core, &mut sessions);
        // Disconnecting a slow participant may have produced more output.
        send_all(&mut out, &mut udp.sender(), &mut core);

        let now = Instant::now();
        if now >= next_tcp_sweep {
            next_tcp_sweep = now + TCP_SWEEP_INTERVAL;
            for remote in
                connections.close_unverified(now, |r| core.is_routed(TransportProtocol::TCP, r))
            {
                tracing::debug!(%remote, "ICE-TCP connection closed: no ICE check passed");
            }
            slot.placement
                .release_absent(slot.index, core.peer_count(), |room| core.has_room(room));
        }
        let deadline = core
            .poll_timeout()
            .unwrap_or_else(|| now + Duration::from_secs(3600))
            .min(next_tcp_sweep);
        tokio::select! {
            ready = socket.readable() => {
                match ready {
                    Ok(()) => {
                        let mut out = Out {
                            socket: &socket,
                            outgoing: &mut outgoing,
                            connections: &mut connections,
                            sample: &mut sample,
                        };
                        receive(&mut out, &mut udp, &mut core, &mut sessions);
                    }
                    Err(err) => tracing::debug!(%err, "UDP socket not readable"),
                }
            }
            Some(event) = tcp_events.recv() => {
                handle_tcp_event(&mut core, &mut sessions, &mut connections, event);
                for _ in 1..READ_BATCH {
                    match tcp_events.try_recv() {
                        Ok(event) => handle_tcp_event(&mut core, &mut sessions, &mut connections, event),
                        Err(_) => break,
                    }
                }
            }
            command = commands.recv() => {
                match command {
                    Some(command) => {
                        let suspect = command.suspect();
                        let result = core.contain(Instant::now(), suspect, |core| {
                            handle_command(core, &mut sessions, &connections, &slot, command)
                        });
                        if let Err(contained) = result {
                            end_sessions(&mut sessions, contained);
                        }
                        slot.placement.report(slot.index, core.peer_count());
                    }
                    None => break,
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if core.poll_timeout().is_some_and(|t| t <= now) {
                    if let Err(contained) = core.contain(now, Suspect::Nobody, |core| core.handle_timeout(now)) {
                        end_sessions(&mut sessions, contained);
                    }
                }
            }
        }
    }
    tracing::info!("worker stopped");
}

/// One forwarded datagram in this many has its latency recorded.
const LATENCY_SAMPLE_EVERY: u32 = 8;

/// Reads what waits on the UDP socket, batched, into the core: at most
/// about [`READ_BATCH`] datagrams before the loop looks at its other work.
/// What the core has to send goes out whenever [`SEND_AT`] datagrams wait.
fn receive(
    out: &mut Out<'_>,
    udp: &mut BatchUdp,
    core: &mut Core,
    sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>,
) {
    let mut got = 0;
    let socket = out.socket;
    while got < READ_BATCH {
        match udp.recv(socket, |source, data, sender| {
            datagram(core, sessions, source, data);
            let mut stepped = false;
            loop {
                if core.pending_transmits() >= SEND_AT {
                    send_all(out, sender, core);
                }
                if !core.fanout_unfinished() {
                    break;
                }
                continue_fanout(core, sessions, source);
                stepped = true;
            }
            // The last step of a large fan-out goes now, not with the
            // next datagram's.
            if stepped {
                send_all(out, sender, core);
            }
        }) {
            Ok(0) => break,
            Ok(n) => got += n,
            // ICMP errors surface here on some systems; they concern one peer only.
            Err(err) => {
                tracing::debug!(%err, "recv failed");
                break;
            }
        }
    }
}

/// Hands one datagram to the core, containing a panic it causes.
fn datagram(
    core: &mut Core,
    sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>,
    source: SocketAddr,
    data: &[u8],
) {
    let now = Instant::now();
    let suspect = Suspect::Source(TransportProtocol::UDP, source);
    if let Err(contained) = core.contain(now, suspect, |core| {
        core.handle_datagram(now, source, BytesMut::from(data))
    }) {
        end_sessions(sessions, contained);
    }
}

/// The next step of the fan-out `source`'s datagram started, containing a
/// panic it causes as [`datagram`] does.
fn continue_fanout(
    core: &mut Core,
    sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>,
    source: SocketAddr,
) {
    let now = Instant::now();
    let suspect = Suspect::Source(TransportProtocol::UDP, source);
    if let Err(contained) = core.contain(now, suspect, |core| core.continue_fanout(now)) {
        end_sessions(sessions, contained);
    }
}

/// After a contained panic: the sessions of the Peers that are gone end
/// (their clients see the socket close and rejoin).
fn end_sessions(sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>, contained: Contained) {
    match contained {
        Contained::PeerRemoved(peer) => {
            sessions.remove(&peer);
        }
        Contained::Reset => sessions.clear(),
    }
}

fn handle_tcp_event(
    core: &mut Core,
    sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>,
    connections: &mut Connections,
    event: TcpEvent,
) {
    match event {
        TcpEvent::Opened {
            remote,
            sender,
            abort,
        } => connections.opened(remote, sender, abort),
        TcpEvent::Frame { remote, data } => {
            let now = Instant::now();
            let suspect = Suspect::Source(TransportProtocol::TCP, remote);
            if let Err(contained) = core.contain(now, suspect, |core| {
                core.handle_tcp_frame(now, remote, data);
                // A fan-out from an ICE-TCP publisher goes whole: the loop
                // sends once this event is handled.
                while core.continue_fanout(now) {}
            }) {
                end_sessions(sessions, contained);
            }
        }
        TcpEvent::Closed { remote } => {
            connections.closed(remote);
            core.tcp_closed(remote);
        }
    }
}

/// Where the core's output goes, and the buffers reused for it.
struct Out<'a> {
    socket: &'a UdpSocket,
    /// One turn's UDP datagrams (kept for its capacity).
    outgoing: &'a mut Vec<Transmit>,
    connections: &'a mut Connections,
    /// Forwarded media datagrams sent, for latency sampling.
    sample: &'a mut u32,
}

/// Sends everything the core has queued: ICE-TCP frames to their
/// connections, UDP datagrams in one batch (`udp.rs`: one GSO send per
/// subscriber's run of equal-sized datagrams, the lone ones to many
/// subscribers per `sendmmsg`).
fn send_all(out: &mut Out<'_>, sender: &mut Sender<'_>, core: &mut Core) {
    out.outgoing.clear();
    while let Some(transmit) = core.poll_transmit() {
        if transmit.protocol == TransportProtocol::TCP {
            out.connections
                .send(transmit.destination, transmit.data.freeze());
            continue;
        }
        out.outgoing.push(transmit);
    }
    if out.outgoing.is_empty() {
        return;
    }
    let outgoing = &*out.outgoing;
    let sample = &mut *out.sample;
    // Never wait for the socket: the Worker would stall for every Peer
    // (and every command) behind one destination the kernel is holding
    // back. A full send buffer drops the datagram, counted.
    sender.send(
        out.socket,
        outgoing,
        |t| (t.destination, &t.data[..]),
        |i, sent| match sent {
            Sent::Ok => {
                let t = &outgoing[i];
                if let (Some(received_at), true) = (t.received_at, t.media) {
                    *sample += 1;
                    if sample.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                        core.observe_forward_latency(received_at.elapsed());
                    }
                }
            }
            Sent::Full => core.count_drop(DropReason::SocketFull),
            Sent::Failed => {}
        },
    );
    out.outgoing.clear();
}

fn deliver_signals(core: &mut Core, sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>) {
    let mut overflowed = Vec::new();
    while let Some(output) = core.poll_output() {
        let closing = matches!(
            output.signal,
            Signal::Closed { .. } | Signal::Removed { .. }
        );
        if let Some(tx) = sessions.get(&output.peer) {
            match tx.try_send(output.signal) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(output.peer),
                // The session is ending; its leave is on its way.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if closing {
            sessions.remove(&output.peer);
        }
    }
    for peer in overflowed {
        if sessions.remove(&peer).is_some() {
            tracing::warn!(%peer, "signaling queue full; disconnecting");
            if core
                .disconnect(Instant::now(), peer, LeaveReason::Error)
                .is_err()
            {
                tracing::debug!(%peer, "already gone");
            }
        }
    }
}

/// Whether this Worker may hold `room`: it does already, or the placement
/// names it (`placement.rs`).
fn may_hold(core: &Core, slot: &Slot, room: &str) -> Result<(), CoreError> {
    if core.has_room(room) || slot.placement.claim(room, slot.index) {
        Ok(())
    } else {
        Err(CoreError::RoomElsewhere)
    }
}

fn handle_command(
    core: &mut Core,
    sessions: &mut HashMap<PeerId, mpsc::Sender<Signal>>,
    connections: &Connections,
    slot: &Slot,
    command: Command,
) {
    let now = Instant::now();
    match command {
        Command::Join {
            room,
            name,
            permissions,
            relay,
            signals,
            reply,
        } => {
            let result = may_hold(core, slot, &room).and_then(|()| match relay {
                Some(relay) => core.join_relay(now, &room, &name, relay),
                None => core.join(now, &room, &name),
            });
            if let Ok(joined) = &result {
                core.set_permissions(joined.peer_id, permissions);
                sessions.insert(joined.peer_id, signals);
            }
            if let Err(Ok(joined)) = reply.send(result) {
                // The client went away while joining; the Peer exists, so
                // leaving cannot fail.
                let _ = core.leave(now, joined.peer_id);
                sessions.remove(&joined.peer_id);
            }
        }
        Command::Offer { peer, sdp, reply } => {
            let _ = reply.send(core.handle_offer(now, peer, sdp));
        }
        Command::Answer { peer, sdp, reply } => {
            let _ = reply.send(core.handle_answer(now, peer, sdp));
        }
        Command::Candidate {
            peer,
            candidate,
            reply,
        } => {
            let _ = reply.send(core.add_ice_candidate(now, peer, candidate));
        }
        Command::Leave { peer, reply } => {
            sessions.remove(&peer);
            let _ = reply.send(core.leave(now, peer));
        }
        Command::Snapshot { reply } => {
            let mut snapshot = core.snapshot();
            snapshot.ice_tcp = connections.counters;
            let _ = reply.send(snapshot);
        }
        Command::Rooms { reply } => {
            let _ = reply.send(core.rooms(now));
        }
        Command::Participant { peer, reply } => {
            let _ = reply.send(core.participant(now, peer));
        }
        Command::Kick { peer, reply } => {
            let _ = reply.send(core.kick(now, peer));
        }
        Command::CloseRoom { room, reply } => {
            let _ = reply.send(core.close_room(now, &room));
        }
        Command::SetMuted {
            peer,
            track,
            muted,
            reply,
        } => {
            let _ = reply.send(core.set_track_muted(now, peer, &track, muted));
        }
        Command::Broadcast {
            peer,
            payload,
            reply,
        } => {
            let _ = reply.send(core.broadcast(peer, payload));
        }
        Command::VideoPreference {
            peer,
            track,
            max_level,
            reply,
        } => {
            let _ = reply.send(core.set_video_preference(now, peer, track, max_level));
        }
        Command::JoinSession {
            room,
            name,
            permissions,
            viewer,
            signals,
            reply,
        } => {
            let result = may_hold(core, slot, &room)
                .and_then(|()| core.join_session(now, &room, &name, permissions, viewer));
            if let Ok(joined) = &result {
                sessions.insert(joined.peer_id, signals);
            }
            if let Err(Ok(joined)) = reply.send(result) {
                // As for Join: the client went away meanwhile.
                let _ = core.leave(now, joined.peer_id);
                sessions.remove(&joined.peer_id);
            }
        }
    }
}
