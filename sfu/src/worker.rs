//! Workers: each one thread that owns one sans-IO [`Core`], its UDP socket
//! and its ICE-TCP listener; and the [`WorkerHandle`] the control plane
//! talks to them through. With several Workers, Worker `k` listens on the
//! configured ports plus `k`, holds whole rooms (`placement.rs`), and its
//! Peers' ids are `k + 1` modulo the number of Workers, so a request about
//! a Peer goes straight to its Worker.
//!
//! Commands go in over a bounded channel, each with a `oneshot` reply; a
//! full channel is reported as [`WorkerError::Busy`] rather than waited on.
//! Each joined participant gets a bounded channel of [`Signal`]s; the Worker
//! only ever `try_send`s on it, and a participant whose channel is full is
//! disconnected (its signaling would otherwise be lost silently).

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{mpsc, oneshot};

use crate::core::{
    Core, CoreConfig, CoreError, IdSpace, Joined, ParticipantStats, PeerId, Permissions, RoomStats,
    Signal, Snapshot, TrackId,
};
use crate::placement::Placement;

/// Commands waiting for the Worker beyond this are refused with `Busy`.
pub const COMMAND_QUEUE: usize = 1024;
/// Signals waiting for one participant's socket beyond this disconnect it.
pub const SIGNAL_QUEUE: usize = 256;
/// The send buffer asked for on the shared UDP socket.
pub const UDP_SEND_BUFFER: usize = 4 << 20;

/// Where the Worker listens and what it advertises.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The UDP address to bind (port 0 picks a free port).
    pub udp_bind: SocketAddr,
    /// The ICE-TCP address to bind (port 0 picks a free port); `None`
    /// turns ICE-TCP off.
    pub tcp_bind: Option<SocketAddr>,
    /// The addresses to advertise in ICE candidates (IPv4 and IPv6 may be
    /// mixed); empty means the bind address, which must then be a
    /// specific one.
    pub public_ips: Vec<IpAddr>,
    /// A silent client's Peer is removed after this long.
    pub consent_timeout: Duration,
    /// Caps on each Peer's inbound bitrate and packet rate.
    pub inbound_limits: crate::core::rate_limit::InboundLimits,
    /// Packets each Track keeps to answer subscribers' NACKs.
    pub cache_sizes: crate::core::track::CacheSizes,
    /// How many Workers (threads, each with its own ports) to run.
    pub workers: usize,
}

impl WorkerConfig {
    /// Media on `ip` only: UDP and ICE-TCP on free ports, advertised as
    /// they are, with the default consent timeout.
    pub fn loopback(ip: IpAddr) -> Self {
        Self {
            udp_bind: SocketAddr::new(ip, 0),
            tcp_bind: Some(SocketAddr::new(ip, 0)),
            public_ips: Vec::new(),
            consent_timeout: crate::core::DEFAULT_CONSENT_TIMEOUT,
            inbound_limits: crate::core::rate_limit::InboundLimits::default(),
            cache_sizes: crate::core::track::CacheSizes::default(),
            workers: 1,
        }
    }
}

/// Why a request to the Worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The command queue is full.
    #[error("media worker is busy")]
    Busy,
    /// The Worker has stopped.
    #[error("media worker stopped")]
    Gone,
    /// The core refused the request.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// What the control plane can ask of a Worker.
pub(crate) enum Command {
    Join {
        room: String,
        name: String,
        permissions: Permissions,
        relay: Option<crate::core::relay::Relay>,
        signals: mpsc::Sender<Signal>,
        reply: oneshot::Sender<Result<Joined, CoreError>>,
    },
    Offer {
        peer: PeerId,
        sdp: String,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    Answer {
        peer: PeerId,
        sdp: String,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    Candidate {
        peer: PeerId,
        candidate: RTCIceCandidateInit,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    Leave {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
    Rooms {
        reply: oneshot::Sender<Vec<RoomStats>>,
    },
    Participant {
        peer: PeerId,
        reply: oneshot::Sender<Option<ParticipantStats>>,
    },
    Kick {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    CloseRoom {
        room: String,
        reply: oneshot::Sender<usize>,
    },
    SetMuted {
        peer: PeerId,
        track: String,
        muted: bool,
        reply: oneshot::Sender<Result<Option<TrackId>, CoreError>>,
    },
    Broadcast {
        peer: PeerId,
        payload: String,
        reply: oneshot::Sender<Result<usize, CoreError>>,
    },
    VideoPreference {
        peer: PeerId,
        track: TrackId,
        max_level: Option<usize>,
        reply: oneshot::Sender<Result<(), CoreError>>,
    },
    JoinSession {
        room: String,
        name: String,
        permissions: Permissions,
        viewer: Option<Option<String>>,
        signals: mpsc::Sender<Signal>,
        reply: oneshot::Sender<Result<Joined, CoreError>>,
    },
}

impl Command {
    /// The Peer blamed if carrying this out panics: the one whose input or
    /// state it concerns.
    pub(crate) fn suspect(&self) -> crate::core::containment::Suspect {
        use crate::core::containment::Suspect;
        match self {
            Command::Offer { peer, .. }
            | Command::Answer { peer, .. }
            | Command::Candidate { peer, .. }
            | Command::Leave { peer, .. }
            | Command::Participant { peer, .. }
            | Command::Kick { peer, .. }
            | Command::SetMuted { peer, .. }
            | Command::Broadcast { peer, .. }
            | Command::VideoPreference { peer, .. } => Suspect::Peer(*peer),
            Command::Join { .. }
            | Command::JoinSession { .. }
            | Command::Snapshot { .. }
            | Command::Rooms { .. }
            | Command::CloseRoom { .. } => Suspect::Nobody,
        }
    }
}

/// One Worker as the control plane sees it.
#[derive(Debug)]
struct Shard {
    commands: mpsc::Sender<Command>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    public_addrs: Vec<SocketAddr>,
}

/// The control plane's side of the Workers. Cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    shards: Arc<[Shard]>,
    placement: Arc<Placement>,
}

/// The running Workers: their handle and their threads.
pub struct Worker {
    /// Talk to them through this.
    pub handle: WorkerHandle,
    /// Each ends when every handle is dropped.
    pub threads: Vec<JoinHandle<()>>,
}

/// `port + k`, or 0 (a free port) for 0.
fn nth_port(addr: SocketAddr, k: usize) -> std::io::Result<SocketAddr> {
    if addr.port() == 0 {
        return Ok(addr);
    }
    u16::try_from(usize::from(addr.port()) + k)
        .map(|port| SocketAddr::new(addr.ip(), port))
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("port {} + worker {k} is beyond 65535", addr.port()),
            )
        })
}

impl Worker {
    /// Binds each Worker's UDP socket and ICE-TCP listener, and starts
    /// their threads.
    pub fn spawn(config: WorkerConfig) -> std::io::Result<Worker> {
        let workers = config.workers.max(1);
        let placement = Arc::new(Placement::new(workers));
        let mut shards = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for k in 0..workers {
            let (shard, thread) = Self::spawn_one(&config, k, workers, placement.clone())?;
            shards.push(shard);
            threads.push(thread);
        }
        Ok(Worker {
            handle: WorkerHandle {
                shards: shards.into(),
                placement,
            },
            threads,
        })
    }

    fn spawn_one(
        config: &WorkerConfig,
        k: usize,
        workers: usize,
        placement: Arc<Placement>,
    ) -> std::io::Result<(Shard, JoinHandle<()>)> {
        let socket = UdpSocket::bind(nth_port(config.udp_bind, k)?)?;
        // Every Peer shares this socket's send buffer: a deep one rides out
        // a burst or a backed-up local queue instead of refusing everyone
        // at once (the kernel caps it at net.core.wmem_max).
        if let Err(err) = socket2::SockRef::from(&socket).set_send_buffer_size(UDP_SEND_BUFFER) {
            tracing::warn!(%err, "cannot enlarge the UDP send buffer");
        }
        let udp_addr = socket.local_addr()?;
        let listener = config
            .tcp_bind
            .map(|addr| nth_port(addr, k).and_then(TcpListener::bind))
            .transpose()?;
        let tcp_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let public_ips = if config.public_ips.is_empty() {
            vec![udp_addr.ip()]
        } else {
            config.public_ips.clone()
        };
        if public_ips.iter().any(IpAddr::is_unspecified) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "binding media to an unspecified address needs a public IP to advertise",
            ));
        }
        socket.set_nonblocking(true)?;
        if let Some(listener) = &listener {
            listener.set_nonblocking(true)?;
        }
        let mut core_config = CoreConfig::new(SocketAddr::new(public_ips[0], udp_addr.port()));
        core_config.udp_addrs = public_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, udp_addr.port()))
            .collect();
        core_config.tcp_addrs = tcp_addr
            .map(|tcp| {
                public_ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, tcp.port()))
                    .collect()
            })
            .unwrap_or_default();
        core_config.consent_timeout = config.consent_timeout;
        core_config.inbound_limits = config.inbound_limits;
        core_config.cache_sizes = config.cache_sizes;
        core_config.fanout_step = Some(crate::io::driver::FANOUT_STEP);
        core_config.ids = IdSpace {
            first: k as u64 + 1,
            step: workers as u64,
        };
        let public_addrs = core_config.udp_addrs.clone();
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let core = Core::new(core_config, std::time::Instant::now());
        let slot = crate::io::driver::Slot {
            index: k,
            placement,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sfu-worker-{k}"))
            .spawn(move || crate::io::driver::run_thread(socket, listener, core, rx, slot))?;
        let shard = Shard {
            commands: tx,
            udp_addr,
            tcp_addr,
            public_addrs,
        };
        Ok((shard, thread))
    }
}

impl WorkerHandle {
    /// The first Worker's bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.shards[0].udp_addr
    }

    /// Every Worker's bound UDP address.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.shards.iter().map(|s| s.udp_addr).collect()
    }

    /// The first Worker's bound ICE-TCP address, if ICE-TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.shards[0].tcp_addr
    }

    /// The first UDP address advertised in ICE candidates.
    pub fn public_addr(&self) -> SocketAddr {
        self.shards[0].public_addrs[0]
    }

    /// Every UDP address the first Worker advertises in ICE candidates.
    pub fn public_addrs(&self) -> &[SocketAddr] {
        &self.shards[0].public_addrs
    }

    /// How many Workers there are.
    pub fn workers(&self) -> usize {
        self.shards.len()
    }

    /// The Worker holding `peer`.
    fn shard_of(&self, peer: PeerId) -> &Shard {
        let n = self.shards.len() as u64;
        &self.shards[(peer.0.saturating_sub(1) % n) as usize]
    }

    async fn request<T>(
        shard: &Shard,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, WorkerError> {
        let (reply, rx) = oneshot::channel();
        shard.commands.try_send(make(reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WorkerError::Busy,
            mpsc::error::TrySendError::Closed(_) => WorkerError::Gone,
        })?;
        rx.await.map_err(|_| WorkerError::Gone)
    }

    /// A request about `peer`, to its Worker.
    async fn for_peer<T>(
        &self,
        peer: PeerId,
        make: impl FnOnce(oneshot::Sender<Result<T, CoreError>>) -> Command,
    ) -> Result<T, WorkerError> {
        Ok(Self::request(self.shard_of(peer), make).await??)
    }

    /// A join, on the Worker that holds (or is given) `room`; asked again
    /// if the room moved meanwhile (`placement.rs`).
    async fn join_room(
        &self,
        room: &str,
        make: impl Fn(oneshot::Sender<Result<Joined, CoreError>>) -> Command,
    ) -> Result<Joined, WorkerError> {
        let mut tries = 0;
        loop {
            let shard = &self.shards[self.placement.place(room)];
            match Self::request(shard, &make).await? {
                Err(CoreError::RoomElsewhere) if tries < 3 => tries += 1,
                result => return Ok(result?),
            }
        }
    }

    /// Joins a room. Signals for the new participant arrive on the receiver.
    pub async fn join(
        &self,
        room: String,
        name: String,
    ) -> Result<(Joined, mpsc::Receiver<Signal>), WorkerError> {
        self.join_with(room, name, Permissions::default()).await
    }

    /// [`WorkerHandle::join`] with what the participant may do.
    pub async fn join_with(
        &self,
        room: String,
        name: String,
        permissions: Permissions,
    ) -> Result<(Joined, mpsc::Receiver<Signal>), WorkerError> {
        self.join_as(room, name, permissions, None).await
    }

    /// [`WorkerHandle::join_with`], as a Peer of a node-to-node link when
    /// `relay` is given (`core::relay`).
    pub async fn join_as(
        &self,
        room: String,
        name: String,
        permissions: Permissions,
        relay: Option<crate::core::relay::Relay>,
    ) -> Result<(Joined, mpsc::Receiver<Signal>), WorkerError> {
        let (signals, rx) = mpsc::channel(SIGNAL_QUEUE);
        let joined = self
            .join_room(&room, |reply| Command::Join {
                room: room.clone(),
                name: name.clone(),
                permissions,
                relay,
                signals: signals.clone(),
                reply,
            })
            .await?;
        Ok((joined, rx))
    }

    /// The client's SDP offer; the answer arrives as a `Signal::Answer`.
    pub async fn offer(&self, peer: PeerId, sdp: String) -> Result<(), WorkerError> {
        self.for_peer(peer, |reply| Command::Offer { peer, sdp, reply })
            .await
    }

    /// The client's SDP answer to a `Signal::Offer`.
    pub async fn answer(&self, peer: PeerId, sdp: String) -> Result<(), WorkerError> {
        self.for_peer(peer, |reply| Command::Answer { peer, sdp, reply })
            .await
    }

    /// A trickled ICE candidate from the client.
    pub async fn candidate(
        &self,
        peer: PeerId,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), WorkerError> {
        self.for_peer(peer, |reply| Command::Candidate {
            peer,
            candidate,
            reply,
        })
        .await
    }

    /// The participant leaves.
    pub async fn leave(&self, peer: PeerId) -> Result<(), WorkerError> {
        self.for_peer(peer, |reply| Command::Leave { peer, reply })
            .await
    }

    /// Counters and sizes, summed over the Workers.
    pub async fn snapshot(&self) -> Result<Snapshot, WorkerError> {
        let mut total = Snapshot::default();
        for shard in self.shards.iter() {
            let one = Self::request(shard, |reply| Command::Snapshot { reply }).await?;
            total.merge(&one);
        }
        Ok(total)
    }

    /// Every room with its participants, by name.
    pub async fn rooms(&self) -> Result<Vec<RoomStats>, WorkerError> {
        let mut rooms = Vec::new();
        for shard in self.shards.iter() {
            rooms.extend(Self::request(shard, |reply| Command::Rooms { reply }).await?);
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rooms)
    }

    /// One participant's live figures, if it is here.
    pub async fn participant(&self, peer: PeerId) -> Result<Option<ParticipantStats>, WorkerError> {
        Self::request(self.shard_of(peer), |reply| Command::Participant {
            peer,
            reply,
        })
        .await
    }

    /// Removes a participant (it is told why).
    pub async fn kick(&self, peer: PeerId) -> Result<(), WorkerError> {
        self.for_peer(peer, |reply| Command::Kick { peer, reply })
            .await
    }

    /// The participant muted or unmuted its track `track` (its own track id,
    /// as in its SDP); returns the SFU's Track id if it is published yet.
    pub async fn set_muted(
        &self,
        peer: PeerId,
        track: String,
        muted: bool,
    ) -> Result<Option<TrackId>, WorkerError> {
        self.for_peer(peer, |reply| Command::SetMuted {
            peer,
            track,
            muted,
            reply,
        })
        .await
    }

    /// Relays `payload` to everyone else in the participant's room; returns
    /// how many received it.
    pub async fn broadcast(&self, peer: PeerId, payload: String) -> Result<usize, WorkerError> {
        self.for_peer(peer, |reply| Command::Broadcast {
            peer,
            payload,
            reply,
        })
        .await
    }

    /// The subscriber's wish for one Track's video: the highest quality
    /// level (0 = lowest simulcast layer), or `None` for no video.
    pub async fn set_video_preference(
        &self,
        peer: PeerId,
        track: TrackId,
        max_level: Option<usize>,
    ) -> Result<(), WorkerError> {
        self.for_peer(peer, |reply| Command::VideoPreference {
            peer,
            track,
            max_level,
            reply,
        })
        .await
    }

    /// Joins a WHIP or WHEP session: kept alive by any authenticated
    /// traffic, not by STUN alone (`core/media_consent.rs`); with `viewer`,
    /// a viewer (WHEP), hidden from the room, that receives on the sections
    /// it offers, fed by the participant named in it (a display name or
    /// `p<n>` id) or by the active speaker.
    pub async fn join_session(
        &self,
        room: String,
        name: String,
        permissions: Permissions,
        viewer: Option<Option<String>>,
    ) -> Result<(Joined, mpsc::Receiver<Signal>), WorkerError> {
        let (signals, rx) = mpsc::channel(SIGNAL_QUEUE);
        let joined = self
            .join_room(&room, |reply| Command::JoinSession {
                room: room.clone(),
                name: name.clone(),
                permissions,
                viewer: viewer.clone(),
                signals: signals.clone(),
                reply,
            })
            .await?;
        Ok((joined, rx))
    }

    /// Removes every participant of a room; returns how many.
    pub async fn close_room(&self, room: String) -> Result<usize, WorkerError> {
        let Some(w) = self.placement.worker_of(&room) else {
            return Ok(0);
        };
        Self::request(&self.shards[w], |reply| Command::CloseRoom { room, reply }).await
    }
}
