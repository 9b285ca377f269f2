// The RTCPeerConnection to the SFU and its negotiation: the client's first
// offer, answers to server-initiated offers (handled strictly in order), and
// trickle ICE in both directions.

export class Call {
  /**
   * @param {object} opts
   * @param {RTCIceServer[]} opts.iceServers  from `joined.iceServers`
   * @param {MediaStream|null} opts.localStream  camera + microphone, or null
   * @param {(msg: object) => void} opts.send  sends a signaling message
   * @param {(peerId: string, track: MediaStreamTrack, stream: MediaStream) => void} opts.onRemoteTrack
   * @param {(state: string) => void} opts.onConnectionState
   * @param {(message: string) => void} opts.onError
   */
  constructor(opts) {
    this.opts = opts;
    this.closed = false;
    this.queue = Promise.resolve();
    this.remoteCandidates = []; // received before any remote description
    this.localCandidates = []; // gathered before our offer went out
    this.offerSent = false;

    const pc = new RTCPeerConnection({ iceServers: opts.iceServers ?? [] });
    this.pc = pc;
    pc.addEventListener('icecandidate', (e) => this.#onLocalCandidate(e.candidate));
    pc.addEventListener('track', (e) => this.#onTrack(e));
    pc.addEventListener('connectionstatechange', () => {
      if (!this.closed) opts.onConnectionState(pc.connectionState);
    });
  }

  /** Adds local media (or a receive-only m-line) and sends the first offer. */
  start() {
    const { localStream } = this.opts;
    const tracks = localStream ? localStream.getTracks() : [];
    for (const track of tracks) this.pc.addTrack(track, localStream);
    if (tracks.length === 0) {
      // An offer needs at least one m-line; receive-only audio is enough.
      this.pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    this.#enqueue('send offer', async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.opts.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
      this.offerSent = true;
      for (const c of this.localCandidates.splice(0)) this.opts.send(c);
    });
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

  async #onRemoteOffer(sdp) {
    if (this.pc.signalingState === 'have-local-offer') {
      // Glare: the server is the polite side; it rolls back and re-offers later.
      console.info('call: ignoring server offer that crossed our own offer');
      return;
    }
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.#flushRemoteCandidates();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.opts.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
  }

  async #onRemoteAnswer(sdp) {
    if (this.pc.signalingState !== 'have-local-offer') {
      console.warn(`call: ignoring answer in state ${this.pc.signalingState}`);
      return;
    }
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#flushRemoteCandidates();
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
    // The SFU sets the publisher's peerId as the media stream id.
    this.opts.onRemoteTrack(stream.id, event.track, stream);
  }
}
