// One room session over the signaling socket: a group room or a 1:1 call's
// private room. It joins, owns the RTCPeerConnection (call.js), the local
// tiles, the remote participants (roster.js), the microphone, camera and
// screen-share controls (the share's audio too), chat and the quality
// monitor, and leaves cleanly. When the signaling socket drops the view
// stays, saying it is reconnecting: the session is first resumed on the new
// socket (`resume`: the server kept our place and media; a new offer
// follows), and if the server no longer has it, rejoined with a new
// connection that publishes what was published. It reports how big each
// received video is shown (preferences.js), shows videos the SFU paused
// for lack of bandwidth, and pauses the camera's simulcast layers nobody
// receives (`publishLayers`).

import { accessToken, hasPageToken, lastAccessToken, NEEDS_TOKEN_TEXT } from './access.js';
import { Call, simulcastWanted } from './call.js';
import { describeMediaError, fillPicker, getCameraTrack, getMicTrack, rememberDevice } from './devices.js';
import { VideoPreferences } from './preferences.js';
import { QualityMonitor } from './quality.js';
import { Roster } from './roster.js';
import { Tile } from './tiles.js';
import * as ui from './ui.js';

const ROOM_MESSAGES = new Set([
  'joined', 'offer', 'answer', 'candidate', 'participantJoined', 'participantLeft',
  'trackPublished', 'trackUnpublished', 'trackMuted', 'trackSource', 'chat', 'activeSpeaker', 'left',
  'videoPaused', 'publishLayers',
]);

/** What to say when a TURN server refuses the credentials the SFU gave us. */
const TURN_REFUSED_TEXT =
  'The relay server refused our credentials (expired?). Calls through restrictive networks may fail.';

export function isRoomMessage(type) {
  return ROOM_MESSAGES.has(type);
}

/** A live camera track's capture size, or null. */
function cameraSize(track) {
  const { width, height } = track?.getSettings?.() ?? {};
  return width && height ? { width, height } : null;
}

export class RoomSession {
  /**
   * @param {object} o
   * @param {(msg: object) => boolean} o.send
   * @param {string} o.room
   * @param {string} o.name  our display name
   * @param {'room'|'call'} o.kind
   * @param {string} [o.peerName]  the other party, in a call
   * @param {MediaStream|null} o.stream  microphone and camera
   * @param {import('./tiles.js').Grid} o.grid
   * @param {import('./chat.js').Chat} o.chat
   * @param {(text: string) => void} o.onJoinFailed
   */
  constructor(o) {
    Object.assign(this, o);
    this.state = 'new'; // new | joining | joined | reconnecting | resuming | closed
    this.rejoining = false; // joining again after the socket dropped
    this.resumeToken = null; // from `joined`: takes the session over on a new socket
    this.resumable = false; // the socket dropped, and the session may be resumed
    this.routingToken = null; // from a cluster's `redirect`: sent with the next join
    this.call = null;
    this.peerId = null;
    this.mediaState = 'new';
    this.iceState = 'new';
    this.iceRestarting = false;
    this.mediaConnected = false; // the current connection was up once
    this.peerAway = false; // in a call: the other party dropped out of the room
    this.quality = null;
    this.turnRefused = false; // a TURN server refused this connection's credentials
    // Only sent while joined: anything unsent goes again after a resume,
    // and a rejoin starts over with new tracks.
    this.prefs = new VideoPreferences((m) => this.state === 'joined' && this.send(m));
    this.roster = new Roster(o.grid, () => this.#onRosterChange());
    const tracks = o.stream?.getTracks() ?? [];
    this.mic = tracks.find((t) => t.kind === 'audio') ?? null;
    this.cam = tracks.find((t) => t.kind === 'video') ?? null;
    this.lastCam = this.cam; // the camera track last sent, even once stopped
    this.camSize = cameraSize(this.cam); // its capture size (an ended track has none)
    this.micMuted = false;
    this.camOff = false;
    this.screen = null; // { track, audio, stream, trackId, audioId, tile }
    this.preview = new MediaStream(this.cam ? [this.cam] : []);
    this.localTile = new Tile({ key: 'local', peerId: null, local: true });
    this.localTile.setName(`${o.name} (you)`);
    this.localTile.setStream(this.preview);
    this.localTile.setVideoOff(!this.cam);
    o.grid.add(this.localTile);
    o.grid.setPictureInPicture(o.kind === 'call');
    window.sfu.room = this;
    this.#updateTools();
  }

  join() {
    if (this.state !== 'new') return;
    this.state = 'joining';
    this.#sendJoin();
  }

  /** Sends `join` with an access token for the room (see access.js). */
  async #sendJoin() {
    let token;
    try {
      token = await accessToken({ room: this.room, name: this.name });
    } catch (err) {
      if (this.state !== 'joining') return;
      this.close();
      this.onJoinFailed(err.message, { rejoin: this.rejoining });
      return;
    }
    if (this.state !== 'joining') return;
    const routingToken = this.routingToken ?? undefined;
    this.routingToken = null;
    this.send({ type: 'join', room: this.room, name: this.name, token, routingToken });
  }

  /**
   * `redirect` (cluster): the room is joined on another node, with
   * `routingToken`, once the socket there opens. A joined session (its
   * node is draining) leaves its media here and rejoins there.
   */
  redirected(routingToken) {
    this.routingToken = routingToken;
    if (this.state === 'joining') {
      this.state = this.rejoining ? 'reconnecting' : 'new';
    } else if (this.state === 'joined' || this.state === 'resuming') {
      this.suspend({ keepMedia: false });
    }
  }

  /**
   * The signaling socket dropped. With `keepMedia` (the server may have kept
   * our session for a `resume`), the media connection stays up meanwhile;
   * otherwise (the server removed us) it is closed, keeping the view, the
   * local media and the people, until `rejoin`.
   */
  suspend({ keepMedia = false, networkChanged = false } = {}) {
    // The socket died without a word (a network change, likely): the media
    // path is suspect too, and ICE restarts once the session is back.
    if (networkChanged) this.call?.suspectNetwork();
    // The new socket dropped before the server answered our `resume`.
    if (this.state === 'resuming') this.state = 'reconnecting';
    if (this.state === 'reconnecting' && (keepMedia || !this.call)) return;
    if (this.state !== 'joined' && this.state !== 'joining' && this.state !== 'reconnecting') return;
    this.state = 'reconnecting';
    this.resumable = keepMedia && !!this.call && !!this.resumeToken;
    if (!this.resumable) {
      this.quality?.stop();
      this.quality = null;
      this.call?.close();
      this.call = null;
      this.mediaState = 'new';
      this.iceState = 'new';
      this.iceRestarting = false;
      this.mediaConnected = false;
      if (window.sfu.room === this) window.sfu.pc = null;
      this.roster.detachAll();
    }
    this.#updateTools();
    this.#updateOverlay();
  }

  /** Whether the session may be taken over on a new socket (`resume`). */
  get canResume() {
    return this.state === 'reconnecting' && this.resumable;
  }

  /** Asks the server for our session back (the first message on a new socket). */
  resume() {
    if (!this.canResume) return false;
    this.state = 'resuming';
    return this.send({ type: 'resume', token: this.resumeToken, accessToken: lastAccessToken() ?? undefined });
  }

  /**
   * `resumed`: the session goes on, with the same connection. Messages may
   * have been lost with the old socket, so the connection renegotiates
   * (restarting ICE if media is not connected: our network may have changed).
   */
  onResumed(msg) {
    if (this.state !== 'resuming') return;
    this.state = 'joined';
    this.resumable = false;
    if (msg.peerId !== this.peerId) console.warn(`room: resumed as ${msg.peerId}, was ${this.peerId}`);
    this.call.resync();
    this.prefs.resendAll();
    this.chat.addNotice('Reconnected');
    this.#updateTools();
    this.#updateOverlay();
  }

  /** The session could not be resumed: close the connection and wait for `rejoin`. */
  onResumeFailed() {
    if (this.state !== 'resuming') return;
    this.state = 'reconnecting';
    this.resumable = false;
    this.suspend();
  }

  /** The socket is back (and, for a call, our call ID registered again): join again. */
  rejoin() {
    if (this.state !== 'reconnecting') return;
    if (this.call) this.suspend(); // kept for a resume that did not happen
    this.state = 'joining';
    this.rejoining = true;
    this.#sendJoin();
    this.#updateOverlay();
  }

  /** A room message from the server (see isRoomMessage), or an error for one of our requests. */
  handle(msg) {
    if (this.state === 'closed') return;
    if (this.state === 'joining' && msg.type !== 'joined') return; // from a room we left
    switch (msg.type) {
      case 'joined':
        this.#onJoined(msg);
        break;
      case 'offer':
      case 'answer':
      case 'candidate':
        this.call?.handle(msg);
        break;
      case 'participantJoined':
        this.roster.add(msg.peerId, msg.name);
        if (this.kind === 'call' && this.peerAway) {
          this.peerAway = false;
          this.chat.addNotice(`${msg.name} is back`);
        } else {
          this.chat.addNotice(`${msg.name} joined`);
        }
        if (this.kind === 'room') ui.showNotice(`${msg.name} joined`, 3000);
        this.#updateOverlay();
        break;
      case 'participantLeft': {
        const p = this.roster.participants.get(msg.peerId);
        this.roster.remove(msg.peerId);
        if (p && this.kind === 'call') {
          // Without `callEnded`, the other party's connection dropped: the
          // server keeps the call a few seconds for them to come back.
          this.peerAway = true;
          this.chat.addNotice(`${p.name}'s connection dropped`);
        } else if (p) {
          this.chat.addNotice(`${p.name} left`);
        }
        if (p && this.kind === 'room') ui.showNotice(`${p.name} left`, 3000);
        this.#updateOverlay();
        break;
      }
      case 'trackPublished':
        this.roster.trackPublished(msg.peerId, msg.trackId, msg.kind);
        break;
      case 'trackUnpublished':
        this.roster.trackUnpublished(msg.peerId, msg.trackId);
        break;
      case 'trackMuted':
        this.roster.trackMuted(msg.peerId, msg.trackId, msg.muted);
        break;
      case 'trackSource':
        this.roster.trackSource(msg.peerId, msg.trackId, msg.source);
        break;
      case 'videoPaused':
        this.roster.videoPaused(msg.trackId, !!msg.paused);
        break;
      case 'publishLayers':
        this.call?.setActiveLayers(msg.trackId, msg.active ?? []);
        break;
      case 'chat':
        this.chat.addMessage({ name: msg.name, text: msg.text });
        break;
      case 'activeSpeaker':
        for (const tile of this.grid.tiles.values()) {
          const peer = tile.el.dataset.peerId ?? this.peerId;
          tile.el.classList.toggle('speaking', peer === msg.peerId && tile.el.dataset.source === 'camera');
        }
        break;
      default:
        break;
    }
  }

  /** An `error` answering one of our room requests. */
  onError(msg) {
    // A dev token the server refused (it restarted with a new secret): the
    // socket closes next, and the app retries with a fresh token.
    if (msg.request === 'join' && msg.code === 'unauthorized' && !hasPageToken()) return;
    if (msg.request === 'join') {
      const texts = {
        private_room: this.rejoining
          ? 'The call ended while you were reconnecting.'
          : 'This is a private call: only the two people in it can join.',
        bad_room: `That room name is not valid: ${msg.message}.`,
        bad_name: `That name is not valid: ${msg.message}.`,
        server_busy: 'The server is busy. Try again in a moment.',
        draining: 'The server is restarting and takes no new calls right now. Try again in a moment.',
        cluster_unavailable: 'The server cannot reach the rest of its cluster right now, so this room cannot be opened here. Try again in a moment.',
        unauthorized: `Access denied: ${msg.message}. ${NEEDS_TOKEN_TEXT}`,
        room_not_found: `There is no room "${this.room}" yet, and your access token may not create it.`,
      };
      this.close();
      this.onJoinFailed(texts[msg.code] ?? `Could not join: ${msg.message}`, { rejoin: this.rejoining });
      return;
    }
    if (msg.request === 'videoPreference') {
      // Not worth bothering anyone: the video keeps its layer. A rate limit
      // is waited out; a track that just went away is forgotten anyway.
      console.warn(`room: videoPreference refused (${msg.code}): ${msg.message}`);
      if (msg.code === 'rate_limited') setTimeout(() => this.state === 'joined' && this.prefs.resendAll(), 2000);
      return;
    }
    if (msg.request === 'chat') {
      const text = msg.code === 'rate_limited' ? `Slow down: ${msg.message}.` : `Not sent: ${msg.message}.`;
      this.chat.addNotice(text, 'notice error');
      return;
    }
    if (msg.code === 'forbidden') {
      if (msg.request === 'offer') this.publishRefused = true;
      ui.showError(`Not allowed: ${msg.message}. Your access token does not permit this.`);
      return;
    }
    if (this.publishRefused && msg.request === 'candidate') {
      // Candidates of the refused offer: the refusal above says it all.
      console.warn(`room: ${msg.code}: ${msg.message}`);
      return;
    }
    ui.showError(`Server error (${msg.code}): ${msg.message}`);
  }

  /** Leaves the room (the server answers `left`) and releases everything. */
  leave() {
    if (this.state === 'closed') return;
    if (this.state === 'joined' || this.state === 'joining') this.send({ type: 'leave' });
    this.close();
  }

  /** Releases everything without telling the server (it already knows). */
  close() {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.prefs.stop();
    this.quality?.stop();
    this.call?.close();
    for (const t of [this.mic, this.cam, this.screen?.track, this.screen?.audio]) t?.stop();
    this.roster.clear();
    this.grid.clear();
    this.grid.setPictureInPicture(false);
    ui.setCallState(null);
    if (window.sfu.room === this) {
      window.sfu.room = null;
      window.sfu.pc = null;
      window.sfu.peerId = null;
    }
  }

  sendChat(text) {
    if (this.state !== 'joined') return false;
    return this.send({ type: 'chat', text });
  }

  async toggleMic() {
    if (!this.mic || this.state !== 'joined') return;
    const muted = !this.micMuted;
    this.micMuted = muted;
    const trackId = this.call.publishedId('audio');
    if (muted) {
      // Tell the SFU first (it stops forwarding), then send nothing at all.
      this.send({ type: 'mute', trackId, muted: true });
      this.mic.enabled = false;
      await this.call.replace('audio', null);
    } else {
      this.mic.enabled = true;
      await this.call.replace('audio', this.mic);
      this.send({ type: 'mute', trackId, muted: false });
    }
    this.#updateTools();
  }

  async toggleCamera() {
    if (this.state !== 'joined' || !this.call.publishedId('video')) return;
    const trackId = this.call.publishedId('video');
    if (!this.camOff) {
      this.camOff = true;
      this.send({ type: 'mute', trackId, muted: true });
      await this.call.replace('video', null);
      // Release the camera so its light goes off.
      this.cam?.stop();
      this.#setCamera(null);
    } else {
      let track;
      try {
        track = await getCameraTrack();
      } catch (err) {
        ui.showError(describeMediaError(err, 'camera'));
        return;
      }
      if (this.state !== 'joined') return track.stop();
      this.camOff = false;
      this.#setCamera(track);
      await this.call.replace('video', track);
      this.send({ type: 'mute', trackId, muted: false });
    }
    this.#updateTools();
  }

  async toggleScreen() {
    if (this.state !== 'joined') return;
    if (this.screen) return this.#stopScreen();
    if (!navigator.mediaDevices?.getDisplayMedia) {
      ui.showError('Screen sharing is not supported by this browser.');
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({
        video: { frameRate: { ideal: 15, max: 15 }, width: { max: 1920 }, height: { max: 1080 } },
        // The shared tab's or system's sound, when the person shares it:
        // not speech, so no voice processing.
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        systemAudio: 'include',
      });
    } catch (err) {
      // Closing the picker is a NotAllowedError: nothing to report.
      if (err.name !== 'NotAllowedError') ui.showError(describeMediaError(err, 'screen'));
      return;
    }
    const track = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0] ?? null;
    if (this.state !== 'joined' || !track) return stream.getTracks().forEach((t) => t.stop());
    track.contentHint = 'detail';
    if (audio) audio.contentHint = 'music';
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => this.#stopScreen());
    const tile = new Tile({ key: 'local/screen', peerId: null, local: true, screen: true });
    tile.setName(`${this.name} (your screen)`);
    tile.setStream(new MediaStream([track]));
    tile.setVideoOff(false);
    this.grid.add(tile);
    this.screen = { track, audio, stream, trackId: null, audioId: null, tile };
    this.#publishScreen();
    this.#updateTools();
  }

  /** Sends the screen share on the current connection and tells the room what it is. */
  #publishScreen() {
    const screen = this.screen;
    const { video, audio } = this.call.startScreen(screen.track, screen.audio, screen.stream);
    for (const sent of [video, audio]) {
      if (!sent) continue;
      // A reused sender's track is known to the SFU as a screen already.
      if (sent.reused) this.send({ type: 'mute', trackId: sent.trackId, muted: false });
      else this.send({ type: 'trackSource', trackId: sent.trackId, source: 'screen' });
    }
    screen.trackId = video.trackId;
    screen.audioId = audio?.trackId ?? null;
  }

  #stopScreen() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    // Muting hides the tile for everyone at once; the senders then send
    // nothing until the next share.
    if (this.state === 'joined') {
      for (const trackId of [screen.trackId, screen.audioId]) {
        if (trackId) this.send({ type: 'mute', trackId, muted: true });
      }
    }
    screen.track.stop();
    screen.audio?.stop();
    this.call?.stopScreen();
    this.grid.remove('local/screen');
    this.#updateTools();
  }

  /** Uses another camera or microphone. */
  async switchDevice(kind, deviceId) {
    rememberDevice(kind, deviceId);
    if (this.state !== 'joined') return;
    try {
      if (kind === 'videoinput') {
        if (this.camOff) return;
        const track = await getCameraTrack(deviceId);
        const old = this.cam;
        this.#setCamera(track);
        await this.call.replace('video', track);
        old?.stop();
      } else {
        const track = await getMicTrack(deviceId);
        const old = this.mic;
        track.enabled = !this.micMuted;
        this.mic = track;
        if (!this.micMuted) await this.call.replace('audio', track);
        old?.stop();
      }
    } catch (err) {
      ui.showError(describeMediaError(err, kind === 'videoinput' ? 'camera' : 'microphone'));
    }
    this.fillDevicePickers();
  }

  fillDevicePickers() {
    fillPicker(ui.el.cameraSelect, 'videoinput', this.cam);
    fillPicker(ui.el.micSelect, 'audioinput', this.mic);
  }

  #setCamera(track) {
    for (const t of this.preview.getVideoTracks()) this.preview.removeTrack(t);
    this.cam = track;
    if (track) {
      this.preview.addTrack(track);
      this.lastCam = track;
      this.camSize = cameraSize(track) ?? this.camSize;
    }
    this.localTile.setVideoOff(!track);
  }

  #onJoined(msg) {
    this.state = 'joined';
    this.peerId = msg.peerId;
    this.resumeToken = msg.resumeToken ?? null;
    // The server may ask for one camera encoding instead of simulcast.
    this.simulcast = msg.simulcast !== false && simulcastWanted();
    if (this.rejoining) {
      // Everyone's tracks come again on the new connection.
      this.roster.clear();
      this.prefs.clear();
      this.peerAway = false;
    }
    this.turnRefused = false;
    for (const p of msg.participants ?? []) this.roster.add(p.peerId, p.name, p.tracks ?? []);
    this.call = new Call({
      iceServers: msg.iceServers ?? [],
      send: (m) => this.send(m),
      onRemoteTrack: (peerId, track, trackId) => this.roster.remoteTrack(peerId, track, trackId),
      onConnectionState: (state) => this.#onConnectionState(state),
      onIceState: (state, restarting) => this.#onIceState(state, restarting),
      // Media stopped: the signaling socket may be dead too (a network
      // change); found out now rather than when TCP gives up.
      onStall: () => this.probe?.(),
      onError: (text) => ui.showError(text),
      onTurnRefused: ({ url, errorCode, errorText }) => {
        console.warn(`room: TURN server ${url} refused our credentials (${errorCode} ${errorText})`);
        this.turnRefused = true;
        ui.showError(TURN_REFUSED_TEXT);
      },
    });
    window.sfu.pc = this.call.pc;
    window.sfu.peerId = msg.peerId;
    this.#publish();
    this.quality = new QualityMonitor(this.call.pc, {
      ownerOf: (trackId) => this.roster.ownerOf(trackId),
      localKey: 'local',
      onQuality: (key, level, detail, figures) => {
        this.grid.get(key)?.setQuality(level, detail);
        window.sfu.quality[key] = { level, ...figures };
      },
    });
    this.quality.start();
    if (this.rejoining) {
      this.rejoining = false;
      this.chat.addNotice('Reconnected');
    }
    this.#updateTools();
    this.#onRosterChange();
    this.#updateOverlay();
  }

  /**
   * Publishes on the new connection what we send: the microphone (muted if
   * it was), the camera (a camera turned off is published as its stopped
   * track, muted, so it can be turned on again), and a screen share.
   */
  #publish() {
    const camera = this.cam ?? (this.camOff ? this.lastCam : null);
    const tracks = [this.mic, camera].filter(Boolean);
    this.call.start(tracks.length ? new MediaStream(tracks) : null, { cameraSize: this.camSize, simulcast: this.simulcast });
    if (this.mic && this.micMuted) {
      this.send({ type: 'mute', trackId: this.call.publishedId('audio'), muted: true });
      this.call.replace('audio', null).catch((err) => console.warn('room: muting the new microphone sender failed', err));
    }
    if (camera && this.camOff) this.send({ type: 'mute', trackId: this.call.publishedId('video'), muted: true });
    if (this.screen) this.#publishScreen();
  }

  #onConnectionState(state) {
    this.mediaState = state;
    if (state === 'connected') this.mediaConnected = true;
    if (state === 'failed' && !this.mediaConnected) {
      ui.showError(
        this.turnRefused
          ? "Media connection failed: your browser could not reach the server's media port, and the relay server " +
              'refused our credentials (expired?). Try again later, or from another network.'
          : "Media connection failed: your browser could not reach the server's UDP media port. " +
              'Check that the port is open and that the server advertises the right --public-ip.',
      );
    }
    this.#updateStatus();
    this.#updateOverlay();
  }

  #onIceState(state, restarting) {
    // Media lost its path: the signaling socket may have lost it too (a
    // network change). Find out now rather than when TCP gives up, so the
    // ICE restart that follows goes over a live socket.
    if (state === 'disconnected' || state === 'failed') this.probe?.();
    this.iceState = state;
    this.iceRestarting = restarting;
    this.#updateStatus();
    this.#updateOverlay();
  }

  /** Whether media that was flowing is interrupted (ICE disconnected, failed, or restarting). */
  #mediaInterrupted() {
    if (!this.mediaConnected) return false;
    const up = this.iceState === 'connected' || this.iceState === 'completed';
    return this.iceState === 'disconnected' || this.iceState === 'failed' || (this.iceRestarting && !up);
  }

  /** The banner over the video: what is being waited for, if anything. */
  #updateOverlay() {
    if (this.state === 'closed') return ui.setCallState(null);
    if (this.state === 'reconnecting' || this.state === 'resuming' || this.rejoining) {
      return ui.setCallState('Reconnecting…', 'signaling');
    }
    if (this.state === 'joined' && this.#mediaInterrupted()) return ui.setCallState('Reconnecting media…', 'media');
    if (this.kind === 'call' && this.peerAway) {
      return ui.setCallState(`${this.peerName}'s connection dropped. Waiting for them to come back…`, 'peer');
    }
    return ui.setCallState(null);
  }

  #onRosterChange() {
    this.prefs?.sync(this.roster.videoElements());
    const others = this.roster.list();
    window.sfu.participants = new Map(others.map((p) => [p.peerId, p]));
    ui.renderPeople([
      { name: this.name, you: true, micMuted: !this.mic || this.micMuted, cameraOff: !this.cam, screen: !!this.screen },
      ...others,
    ]);
    this.#updateStatus();
  }

  #updateStatus() {
    if (this.state === 'reconnecting' || this.state === 'resuming') {
      ui.setStatus(this.kind === 'call' ? `Reconnecting the call with ${this.peerName}…` : `Reconnecting to room "${this.room}"…`);
      return;
    }
    if (this.state !== 'joined') return;
    const n = this.roster.participants.size;
    let media = { connected: 'connected', connecting: 'connecting…', new: 'connecting…' }[this.mediaState] ?? this.mediaState;
    if (this.#mediaInterrupted()) media = 'reconnecting…';
    if (this.kind === 'call') {
      ui.setStatus(`In a call with ${this.peerName} · media ${media}`);
    } else {
      const people = n === 1 ? '1 other participant' : `${n} other participants`;
      ui.setStatus(`In room "${this.room}" as ${this.name} · ${people} · media ${media}`);
    }
  }

  #updateTools() {
    const joined = this.state === 'joined';
    ui.setTool(ui.el.micToggle, {
      pressed: this.micMuted,
      iconName: this.micMuted || !this.mic ? 'micOff' : 'mic',
      label: !this.mic ? 'No microphone' : this.micMuted ? 'Unmute' : 'Mute',
      disabled: !joined || !this.mic,
    });
    const hasVideo = !!this.call?.publishedId('video') || (!this.call && !!(this.cam || (this.camOff && this.lastCam)));
    ui.setTool(ui.el.camToggle, {
      pressed: this.camOff,
      iconName: this.camOff || !hasVideo ? 'cameraOff' : 'camera',
      label: !hasVideo ? 'No camera' : this.camOff ? 'Start video' : 'Stop video',
      disabled: !joined || !hasVideo,
    });
    ui.setTool(ui.el.screenToggle, {
      pressed: !!this.screen,
      iconName: 'screen',
      label: this.screen ? 'Stop sharing' : 'Share screen',
      disabled: !joined,
    });
    ui.setTool(ui.el.leave, { pressed: false, iconName: 'hangup', label: this.kind === 'call' ? 'Hang up' : 'Leave' });
    this.localTile.setMicMuted(this.micMuted || !this.mic);
    this.#onRosterChange();
  }
}
