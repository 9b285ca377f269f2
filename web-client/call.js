// The RTCPeerConnection to the SFU and its negotiation. The client is the
// impolite side of perfect negotiation: while its own offer is out it ignores
// the server's offers (the server, the polite side, rolls its offer back,
// answers ours and offers again), and it never has two offers out at once.
// Also trickle ICE, ICE restarts (when ICE fails, or stays disconnected for
// 2 s, the next offer carries fresh ICE credentials), and the client's
// senders: microphone and camera (muted by replacing the sent track with
// null, so nothing is sent) and screen shares (video, and the share's audio
// when it has some), added with a renegotiation. The camera may be sent as
// simulcast (rids q, h, f: three encodings from a 720p camera, fewer from a
// smaller one; see simulcastWanted), of which the SFU forwards each
// subscriber the one that fits; the SFU also says which encodings nobody
// receives (`publishLayers`), and those are paused here (dynacast).

/** ICE that stays `disconnected` this long is restarted. */
const DISCONNECTED_RESTART_MS = 2000;
/** How often inbound media is looked at for a stall. */
const STALL_CHECK_MS = 500;
/** Inbound traffic that stops for this long, after flowing, is a stall. */
const STALL_MS = 1500;
/** The least time between two ICE restarts; it doubles while they fail. */
const RESTART_BACKOFF_MS = [0, 5000, 10_000, 20_000, 30_000];
/**
 * Whether the camera is published as simulcast unless the page's URL says
 * otherwise (`simulcast=0` turns it off, `simulcast=1` on).
 */
export const SIMULCAST_BY_DEFAULT = true;

/** `simulcast=1` or `=0` in the URL the page was opened with (it is rewritten when joining). */
const SIMULCAST_PARAM = new URLSearchParams(window.location.search).get('simulcast');

export function simulcastWanted() {
  if (SIMULCAST_PARAM === '1') return true;
  if (SIMULCAST_PARAM === '0') return false;
  return SIMULCAST_BY_DEFAULT;
}

/**
 * The camera's simulcast encodings, lowest first: a quarter, half and the
 * full capture size (320x180, 640x360 and 1280x720 for a 720p camera).
 */
export const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/**
 * The encodings for a camera of `width` x `height`. Chromium sends three
 * layers only from 960x540 up, and two from 480x270; below a size it drops
 * the top layers, so a smaller camera gets fewer layers, each with the
 * size (and rid) it would have from a 720p one: two (q at half size, h at
 * full) from 270 lines, and none (one plain encoding) below.
 */
export function cameraEncodings(width, height) {
  const lines = Math.min(width || 0, height || 0);
  if (lines >= 540) return SIMULCAST_ENCODINGS.map((e) => ({ ...e }));
  if (lines >= 270) {
    return [
      { rid: 'q', scaleResolutionDownBy: 2, maxBitrate: 150_000 },
      { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 500_000 },
    ];
  }
  return null;
}

export class Call {
  /**
   * @param {object} opts
   * @param {RTCIceServer[]} opts.iceServers  from `joined.iceServers`
   * @param {(msg: object) => boolean} opts.send  sends a signaling message; false while the socket is down
   * @param {(peerId: string, track: MediaStreamTrack) => void} opts.onRemoteTrack
   * @param {(state: string) => void} opts.onConnectionState
   * @param {(state: string, restarting: boolean) => void} [opts.onIceState]
   *   the ICE connection state, and whether an ICE restart is under way
   * @param {(message: string) => void} opts.onError
   * @param {(event: {url: string, errorCode: number, errorText: string}) => void} [opts.onTurnRefused]
   *   a TURN server refused our credentials (once per connection)
   */
  constructor(opts) {
    this.opts = opts;
    this.closed = false;
    this.queue = Promise.resolve();
    this.remoteCandidates = []; // received before any remote description
    this.localCandidates = []; // gathered before our first offer went out
    this.offerSent = false;
    this.wantOffer = false;
    /** kind -> { sender, trackId }: `trackId` is the id in our SDP's msid. */
    this.senders = {};
    /** The screen-share senders (video, audio) and their SDP track ids, once there was one. */
    this.screen = null;
    this.screenAudio = null;
    /** ICE restarts: whether one is under way, when the last began, how many failed in a row. */
    this.restarting = false;
    this.lastRestartAt = -Infinity;
    this.failedRestarts = 0;
    this.iceTimer = null;
    /** Negotiation counters, read by the browser tests. */
    this.stats = { offersSent: 0, serverOffersAnswered: 0, serverOffersIgnored: 0, iceRestarts: 0, layerUpdates: 0 };
    /** Dynacast updates (`publishLayers`), applied one after another. */
    this.layerQueue = Promise.resolve();
    /** A TURN server refused our credentials (reported once). */
    this.turnRefused = false;
    /** Inbound traffic stopped while ICE still says connected (see `#checkStall`). */
    this.mediaStalled = false;
    this.inbound = { bytes: 0, movedAt: performance.now() };
    /** The signaling socket died silently: restart ICE on the next resync. */
    this.networkSuspect = false;
    this.stallTimer = setInterval(() => this.#checkStall().catch(() => {}), STALL_CHECK_MS);

    const pc = new RTCPeerConnection({ iceServers: opts.iceServers ?? [] });
    this.pc = pc;
    pc.addEventListener('icecandidate', (e) => this.#onLocalCandidate(e.candidate));
    pc.addEventListener('track', (e) => this.#onTrack(e));
    pc.addEventListener('connectionstatechange', () => {
      if (!this.closed) opts.onConnectionState(pc.connectionState);
    });
    pc.addEventListener('iceconnectionstatechange', () => this.#onIceState());
    pc.addEventListener('icecandidateerror', (e) => this.#onCandidateError(e));
  }

  /**
   * Publishes the microphone and camera of `stream` (or receives only); the
   * camera as simulcast (cameraEncodings) when `simulcast`.
   * `cameraSize` ({ width, height }) stands in for the size of a camera
   * track that has ended (a camera turned off is published stopped).
   */
  start(stream, { simulcast = simulcastWanted(), cameraSize = null } = {}) {
    const tracks = stream ? stream.getTracks() : [];
    for (const track of tracks) {
      let sender;
      const settings = track.kind === 'video' ? track.getSettings() : {};
      const { width, height } = settings.width ? settings : (cameraSize ?? {});
      const sendEncodings = simulcast && track.kind === 'video' ? cameraEncodings(width, height) : null;
      if (sendEncodings) {
        // As addTrack would (a sendrecv m-line of its own), with encodings.
        ({ sender } = this.pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream], sendEncodings }));
        console.info(`call: camera ${width}x${height} as simulcast ${sendEncodings.map((e) => e.rid).join(',')}`);
      } else {
        sender = this.pc.addTrack(track, stream);
      }
      this.senders[track.kind] = { sender, trackId: track.id };
    }
    if (tracks.length === 0) {
      // An offer needs at least one m-line; receive-only audio is enough.
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    this.renegotiate();
  }

  /** The SDP track id of what we publish for `kind`, if anything. */
  publishedId(kind) {
    return this.senders[kind]?.trackId ?? null;
  }

  /**
   * Dynacast (`publishLayers`): of our sender whose SDP track id is
   * `trackId`, keeps only the encodings whose rid is in `active` sending.
   * The SFU lists only layers it has received: an encoding we have not
   * sent yet (the browser holds the higher ones back until its bandwidth
   * estimate allows them) is not known there, and stays on, or it could
   * never start. Updates are applied one after another (setParameters
   * needs the parameters of the last getParameters), a resume without
   * waiting for stats: the SFU counts a resumed layer as available only
   * once its packets arrive, and moves its receivers away again at its next
   * choice (every 500 ms) if none have.
   */
  setActiveLayers(trackId, active) {
    const entry = [this.senders.video, this.senders.audio, this.screen, this.screenAudio].find((e) => e?.trackId === trackId);
    if (!entry) {
      console.warn('call: publishLayers for a track we do not send', trackId);
      return this.layerQueue;
    }
    const wanted = new Set(active);
    const received = performance.now();
    this.layerQueue = this.layerQueue.then(async () => {
      if (this.closed) return;
      entry.sentRids ??= new Set();
      const toPause = (params) => (params.encodings ?? []).filter((e) => e.rid && e.active !== false && !wanted.has(e.rid));
      // Whether the encodings to pause were ever sent: asked of the stats
      // only when not known yet (once sent, always sent).
      if (toPause(entry.sender.getParameters()).some((e) => !entry.sentRids.has(e.rid))) {
        (await entry.sender.getStats()).forEach((s) => {
          if (s.type === 'outbound-rtp' && s.rid && s.packetsSent > 0) entry.sentRids.add(s.rid);
        });
      }
      const params = entry.sender.getParameters();
      const paused = [];
      let changed = false;
      for (const encoding of params.encodings ?? []) {
        if (!encoding.rid) continue;
        const on = wanted.has(encoding.rid) || !entry.sentRids.has(encoding.rid);
        if (!on) paused.push(encoding.rid);
        if (encoding.active !== on) {
          encoding.active = on;
          changed = true;
        }
      }
      if (!changed) return;
      try {
        await entry.sender.setParameters(params);
        this.stats.layerUpdates += 1;
        const ms = Math.round(performance.now() - received);
        console.info(`call: layers of ${trackId}: sending ${active.join(',') || 'none'}, paused ${paused.join(',') || 'none'} (applied in ${ms} ms)`);
      } catch (err) {
        console.warn('call: setParameters for publishLayers failed', err);
      }
    });
    return this.layerQueue;
  }

  /** Sends `track` (or nothing, for null) on the `kind` sender; no renegotiation. */
  async replace(kind, track) {
    const entry = this.senders[kind];
    if (!entry || this.closed) return;
    await entry.sender.replaceTrack(track);
  }

  /**
   * Sends a screen share: its video track and, if the share carries sound,
   * its audio track. The first share gets m-lines of its own (`addTrack`
   * would reuse the receive-only m-line of someone's forwarded track, and
   * the SFU would never see a new track) and a renegotiation; later shares
   * reuse those senders. Returns `{ video, audio }`, each `{ trackId,
   * reused }` (audio null without a track): the SDP track id, and whether
   * the sender was reused (the SFU then knows the track already).
   */
  startScreen(videoTrack, audioTrack, stream) {
    let added = false;
    const send = (slot, track) => {
      const entry = this[slot];
      if (entry) {
        entry.sender.replaceTrack(track).catch((err) => this.opts.onError(`Screen share failed: ${err.message}`));
        return { trackId: entry.trackId, reused: true };
      }
      const { sender } = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      this[slot] = { sender, trackId: track.id };
      added = true;
      return { trackId: track.id, reused: false };
    };
    const video = send('screen', videoTrack);
    const audio = audioTrack ? send('screenAudio', audioTrack) : null;
    if (added) this.renegotiate();
    return { video, audio };
  }

  /** Stops sending the screen share's video and audio (no renegotiation: the m-lines stay for the next one). */
  async stopScreen() {
    if (this.closed) return;
    const senders = [this.screen, this.screenAudio].filter(Boolean).map((e) => e.sender);
    await Promise.all(senders.map((sender) => sender.replaceTrack(null)));
  }

  /**
   * Restarts ICE: the next offer (sent at once, or as soon as the
   * outstanding one is answered) carries fresh ICE credentials. Called by
   * itself when ICE fails or stays disconnected; public for tests.
   */
  restartIce(why = 'requested') {
    if (this.closed) return;
    clearTimeout(this.iceTimer);
    this.iceTimer = null;
    // Restarts in a row that have not connected yet.
    const failed = this.restarting ? this.failedRestarts + 1 : 0;
    const wait = RESTART_BACKOFF_MS[Math.min(failed, RESTART_BACKOFF_MS.length - 1)];
    const since = performance.now() - this.lastRestartAt;
    if (since < wait) {
      // The last restart has not had its chance yet: try again later.
      this.iceTimer = setTimeout(() => this.#checkIce(), wait - since);
      return;
    }
    console.info(`call: restarting ICE (${why})`);
    this.failedRestarts = failed;
    this.restarting = true;
    this.lastRestartAt = performance.now();
    this.stats.iceRestarts += 1;
    this.pc.restartIce();
    this.renegotiate();
    this.opts.onIceState?.(this.pc.iceConnectionState, true);
  }

  /** Sends an offer as soon as no offer is outstanding. */
  renegotiate() {
    this.wantOffer = true;
    this.#enqueue('send offer', () => this.#maybeOffer());
  }

  /** Feeds one server message of type `offer`, `answer` or `candidate`. */
  handle(msg) {
    switch (msg.type) {
      case 'offer':
        this.#enqueue('answer server offer', () => this.#onRemoteOffer(msg.sdp));
        break;
      case 'answer':
        this.#enqueue('apply server answer', () => this.#onRemoteAnswer(msg.sdp));
        break;
      case 'candidate':
        this.#enqueue('add server candidate', () => this.#onRemoteCandidate(msg.candidate));
        break;
      default:
        console.warn('call: unexpected message', msg.type);
    }
  }

  /**
   * The signaling session continues on a new socket (`resumed`): messages
   * may have been lost both ways with the old one. Withdraws an offer of
   * ours that may never have been answered and sends a new one (the
   * server, the polite side, drops an offer of its own that crosses it, and
   * offers again). The new offer restarts ICE unless the media connection
   * is still up: the network may have changed with the socket, but a
   * working path is not interrupted for nothing.
   */
  resync() {
    this.#enqueue('resync after resume', async () => {
      if (this.pc.signalingState === 'have-local-offer') await this.pc.setLocalDescription({ type: 'rollback' });
      this.restarting = false;
      this.failedRestarts = 0;
      this.lastRestartAt = -Infinity;
      const up = ['connected', 'completed'].includes(this.pc.iceConnectionState);
      const suspect = this.mediaStalled || this.networkSuspect;
      this.networkSuspect = false;
      if (up && !suspect) this.renegotiate();
      else this.restartIce(up ? 'signaling resumed after a network change' : 'signaling resumed while ICE was not connected');
    });
  }

  /** The signaling socket died without a word: the network likely changed. */
  suspectNetwork() {
    this.networkSuspect = true;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.iceTimer);
    clearInterval(this.stallTimer);
    this.pc.close();
  }

  #onIceState() {
    if (this.closed) return;
    const state = this.pc.iceConnectionState;
    clearTimeout(this.iceTimer);
    this.iceTimer = null;
    if (state === 'connected' || state === 'completed') {
      this.restarting = false;
      this.failedRestarts = 0;
    } else if (state === 'failed') {
      this.restartIce('ICE failed');
    } else if (state === 'disconnected') {
      this.iceTimer = setTimeout(() => this.#checkIce(), DISCONNECTED_RESTART_MS);
    }
    this.opts.onIceState?.(state, this.restarting);
  }

  /**
   * A candidate could not be gathered. A TURN server that answers 401 (or
   * another 4xx) refused our credentials, typically because they expired:
   * reported once per connection. Chromium does not report the normal 401
   * challenge that precedes an authenticated request.
   */
  #onCandidateError(e) {
    const code = e.errorCode ?? 0;
    const url = e.url ?? '';
    const turn = /^turns?:/i.test(url);
    console.warn(`call: ICE candidate error ${code} ${e.errorText ?? ''} from ${url || 'unknown server'}`);
    if (this.closed || this.turnRefused) return;
    if (code === 401 || (turn && code >= 400 && code < 500)) {
      this.turnRefused = true;
      this.opts.onTurnRefused?.({ url, errorCode: code, errorText: e.errorText ?? '' });
    }
  }

  /**
   * Inbound traffic (media, RTCP and ICE answers: the SFU sends reports and
   * congestion feedback as long as we publish) that flowed and then stops
   * for `STALL_MS` is acted on long before the browser calls ICE
   * disconnected (about 5 s): after a network change, the signaling socket
   * is checked at once (`onStall`), and ICE restarts, over the resumed
   * session if the socket was dead too.
   */
  async #checkStall() {
    if (this.closed) return;
    let bytes = 0;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === 'transport') bytes += s.bytesReceived ?? 0;
    });
    const now = performance.now();
    if (bytes !== this.inbound.bytes) {
      this.inbound = { bytes, movedAt: now };
      this.mediaStalled = false;
      return;
    }
    if (bytes > 0 && !this.mediaStalled && now - this.inbound.movedAt >= STALL_MS) {
      this.mediaStalled = true;
      console.info(`call: nothing received for ${Math.round(now - this.inbound.movedAt)} ms`);
      this.opts.onStall?.();
      if (['connected', 'completed'].includes(this.pc.iceConnectionState)) this.restartIce('nothing received');
    }
  }

  /** Restarts ICE if it is still failed or disconnected. */
  #checkIce() {
    this.iceTimer = null;
    const state = this.pc.iceConnectionState;
    if (state === 'failed') this.restartIce('ICE failed');
    else if (state === 'disconnected') this.restartIce(`ICE disconnected for ${DISCONNECTED_RESTART_MS / 1000} s`);
  }

  #enqueue(what, task) {
    this.queue = this.queue.then(async () => {
      if (this.closed) return;
      try {
        await task();
      } catch (err) {
        if (this.closed) return;
        console.error(`call: ${what} failed`, err);
        this.opts.onError(`Negotiation failed (${what}): ${err.message ?? err}`);
      }
    });
    return this.queue;
  }

  async #maybeOffer() {
    if (!this.wantOffer || this.pc.signalingState !== 'stable') return;
    this.wantOffer = false;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    if (!this.opts.send({ type: 'offer', sdp: this.pc.localDescription.sdp })) {
      // The signaling socket is down: withdraw it, and offer once it is back.
      await this.pc.setLocalDescription({ type: 'rollback' });
      this.wantOffer = true;
      return;
    }
    this.stats.offersSent += 1;
    if (!this.offerSent) {
      this.offerSent = true;
      for (const c of this.localCandidates.splice(0)) this.opts.send(c);
    }
  }

  async #onRemoteOffer(sdp) {
    if (this.pc.signalingState === 'have-local-offer') {
      // Glare: we are impolite. The server rolls back, answers our offer
      // and offers again once it has.
      this.stats.serverOffersIgnored += 1;
      console.info('call: ignoring server offer that crossed our own offer');
      return;
    }
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    this.#narrowReceiveCodecs(sdp);
    await this.#flushRemoteCandidates();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.opts.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    this.stats.serverOffersAnswered += 1;
    await this.#maybeOffer();
  }

  /**
   * Limits each m-line we only receive on (a forwarded track) to the codecs
   * the server offered for it. Our own offers then list those few codecs
   * there instead of every codec the browser has (about 4 KB per video
   * m-line), which keeps an offer in a large room (an ICE restart, a screen
   * share) far below the server's 64 KiB message limit.
   */
  #narrowReceiveCodecs(sdp) {
    if (typeof RTCRtpTransceiver === 'undefined' || !('setCodecPreferences' in RTCRtpTransceiver.prototype)) return;
    const sections = sdp.split(/\r?\nm=/).slice(1);
    for (const t of this.pc.getTransceivers()) {
      if (t.direction !== 'recvonly' || t.mid === null) continue;
      const section = sections.find((m) => m.split(/\r?\n/).includes(`a=mid:${t.mid}`));
      const kind = section?.split(' ', 1)[0];
      if (kind !== 'audio' && kind !== 'video') continue;
      const offered = new Set([...section.matchAll(/a=rtpmap:\d+ ([^/\s]+)\//g)].map((m) => `${kind}/${m[1]}`.toLowerCase()));
      const codecs = (RTCRtpReceiver.getCapabilities(kind)?.codecs ?? []).filter((c) => offered.has(c.mimeType.toLowerCase()));
      if (!codecs.some((c) => !/\/(rtx|red|ulpfec|flexfec-03)$/i.test(c.mimeType))) continue;
      try {
        t.setCodecPreferences(codecs);
      } catch (err) {
        console.warn('call: setCodecPreferences failed', t.mid, err);
      }
    }
  }

  async #onRemoteAnswer(sdp) {
    if (this.pc.signalingState !== 'have-local-offer') {
      console.warn(`call: ignoring answer in state ${this.pc.signalingState}`);
      return;
    }
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#flushRemoteCandidates();
    if (this.restarting && ['connected', 'completed'].includes(this.pc.iceConnectionState)) {
      // A restart while the old path still worked: nothing was interrupted.
      this.restarting = false;
      this.failedRestarts = 0;
      this.opts.onIceState?.(this.pc.iceConnectionState, false);
    }
    await this.#maybeOffer();
  }

  async #onRemoteCandidate(candidate) {
    if (!candidate || !candidate.candidate) return; // end of candidates
    if (!this.pc.remoteDescription) {
      this.remoteCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(candidate);
  }

  async #flushRemoteCandidates() {
    for (const c of this.remoteCandidates.splice(0)) await this.#addCandidate(c);
  }

  async #addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      // The server's candidate is also in its SDP, so this is not fatal.
      console.warn('call: addIceCandidate failed', candidate, err);
    }
  }

  #onLocalCandidate(candidate) {
    const msg = {
      type: 'candidate',
      candidate: candidate && candidate.candidate ? candidate.toJSON() : null,
    };
    if (this.offerSent) this.opts.send(msg);
    else this.localCandidates.push(msg);
  }

  #onTrack(event) {
    const stream = event.streams[0];
    if (!stream) {
      console.warn('call: remote track without a stream', event.track.kind);
      return;
    }
    // The SFU sets the publisher's peerId as the media stream id, and its
    // own track id (`t<n>`) as the msid's track id. The SFU reuses an
    // m-line for the next track of its kind: the event fires again with the
    // new stream, but the receiver's MediaStreamTrack (and its id) stays the
    // one made the first time, so the track id is read from the SDP.
    const trackId = msidTrackId(this.pc.remoteDescription?.sdp, event.transceiver?.mid) ?? event.track.id;
    this.opts.onRemoteTrack(stream.id, event.track, trackId);
  }
}

/** The track id of the `a=msid` line of the m-section `mid` in `sdp`, if any. */
export function msidTrackId(sdp, mid) {
  if (!sdp || mid == null) return null;
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const lines = section.split(/\r?\n/);
    if (!lines.includes(`a=mid:${mid}`)) continue;
    const msid = lines.find((l) => l.startsWith('a=msid:'));
    return msid ? msid.slice('a=msid:'.length).split(' ')[1] ?? null : null;
  }
  return null;
}
