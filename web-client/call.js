// The RTCPeerConnection to the SFU and its negotiation. The client is the
// impolite side of perfect negotiation: while its own offer is out it ignores
// the server's offers (the server, the polite side, rolls its offer back,
// answers ours and offers again), and it never has two offers out at once.
// Also trickle ICE, and the client's senders: microphone and camera (muted
// by replacing the sent track with null, so nothing is sent) and screen
// shares, added and removed with a renegotiation.

export class Call {
  /**
   * @param {object} opts
   * @param {RTCIceServer[]} opts.iceServers  from `joined.iceServers`
   * @param {(msg: object) => void} opts.send  sends a signaling message
   * @param {(peerId: string, track: MediaStreamTrack) => void} opts.onRemoteTrack
   * @param {(state: string) => void} opts.onConnectionState
   * @param {(message: string) => void} opts.onError
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
    /** The screen-share sender and its SDP track id, once there was one. */
    this.screen = null;
    /** Negotiation counters, read by the browser tests. */
    this.stats = { offersSent: 0, serverOffersAnswered: 0, serverOffersIgnored: 0 };

    const pc = new RTCPeerConnection({ iceServers: opts.iceServers ?? [] });
    this.pc = pc;
    pc.addEventListener('icecandidate', (e) => this.#onLocalCandidate(e.candidate));
    pc.addEventListener('track', (e) => this.#onTrack(e));
    pc.addEventListener('connectionstatechange', () => {
      if (!this.closed) opts.onConnectionState(pc.connectionState);
    });
  }

  /** Publishes the microphone and camera of `stream` (or receives only). */
  start(stream) {
    const tracks = stream ? stream.getTracks() : [];
    for (const track of tracks) {
      const sender = this.pc.addTrack(track, stream);
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

  /** Sends `track` (or nothing, for null) on the `kind` sender; no renegotiation. */
  async replace(kind, track) {
    const entry = this.senders[kind];
    if (!entry || this.closed) return;
    await entry.sender.replaceTrack(track);
  }

  /**
   * Sends a screen-share track. The first share gets an m-line of its own
   * (`addTrack` would reuse the receive-only m-line of someone's forwarded
   * video, and the SFU would never see a new track) and a renegotiation;
   * later shares reuse that sender. Returns the SDP track id, and whether
   * the sender was reused (the SFU then knows the track already).
   */
  startScreen(track, stream) {
    if (this.screen) {
      this.screen.sender.replaceTrack(track).catch((err) => this.opts.onError(`Screen share failed: ${err.message}`));
      return { trackId: this.screen.trackId, reused: true };
    }
    const { sender } = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    this.screen = { sender, trackId: track.id };
    this.renegotiate();
    return { trackId: track.id, reused: false };
  }

  /** Stops sending the screen share (no renegotiation: the m-line stays for the next one). */
  async stopScreen() {
    if (!this.screen || this.closed) return;
    await this.screen.sender.replaceTrack(null);
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

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.close();
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
    this.opts.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
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
    await this.#flushRemoteCandidates();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.opts.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
    this.stats.serverOffersAnswered += 1;
    await this.#maybeOffer();
  }

  async #onRemoteAnswer(sdp) {
    if (this.pc.signalingState !== 'have-local-offer') {
      console.warn(`call: ignoring answer in state ${this.pc.signalingState}`);
      return;
    }
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#flushRemoteCandidates();
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
    // own track id (`t<n>`) as the track id.
    this.opts.onRemoteTrack(stream.id, event.track);
  }
}
