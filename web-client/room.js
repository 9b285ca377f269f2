// One room session over the signaling socket: a group room or a 1:1 call's
// private room. It joins, owns the RTCPeerConnection (call.js), the local
// tiles, the remote participants (roster.js), the microphone, camera and
// screen-share controls, chat and the quality monitor, and leaves cleanly.

import { Call } from './call.js';
import { describeMediaError, fillPicker, getCameraTrack, getMicTrack, rememberDevice } from './devices.js';
import { QualityMonitor } from './quality.js';
import { Roster } from './roster.js';
import { Tile } from './tiles.js';
import * as ui from './ui.js';

const ROOM_MESSAGES = new Set([
  'joined', 'offer', 'answer', 'candidate', 'participantJoined', 'participantLeft',
  'trackPublished', 'trackUnpublished', 'trackMuted', 'trackSource', 'chat', 'activeSpeaker', 'left',
]);

export function isRoomMessage(type) {
  return ROOM_MESSAGES.has(type);
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
    this.state = 'new'; // new | joining | joined | closed
    this.call = null;
    this.peerId = null;
    this.mediaState = 'new';
    this.quality = null;
    this.roster = new Roster(o.grid, () => this.#onRosterChange());
    const tracks = o.stream?.getTracks() ?? [];
    this.mic = tracks.find((t) => t.kind === 'audio') ?? null;
    this.cam = tracks.find((t) => t.kind === 'video') ?? null;
    this.micMuted = false;
    this.camOff = false;
    this.screen = null; // { track, trackId, tile }
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
    this.send({ type: 'join', room: this.room, name: this.name });
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
        this.chat.addNotice(`${msg.name} joined`);
        if (this.kind === 'room') ui.showNotice(`${msg.name} joined`, 3000);
        break;
      case 'participantLeft': {
        const p = this.roster.participants.get(msg.peerId);
        this.roster.remove(msg.peerId);
        if (p) this.chat.addNotice(`${p.name} left`);
        if (p && this.kind === 'room') ui.showNotice(`${p.name} left`, 3000);
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
    if (msg.request === 'join') {
      const texts = {
        private_room: 'This is a private call: only the two people in it can join.',
        bad_room: `That room name is not valid: ${msg.message}.`,
        bad_name: `That name is not valid: ${msg.message}.`,
        server_busy: 'The server is busy. Try again in a moment.',
      };
      this.close();
      this.onJoinFailed(texts[msg.code] ?? `Could not join: ${msg.message}`);
      return;
    }
    if (msg.request === 'chat') {
      const text = msg.code === 'rate_limited' ? `Slow down: ${msg.message}.` : `Not sent: ${msg.message}.`;
      this.chat.addNotice(text, 'notice error');
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
    this.quality?.stop();
    this.call?.close();
    for (const t of [this.mic, this.cam, this.screen?.track]) t?.stop();
    this.roster.clear();
    this.grid.clear();
    this.grid.setPictureInPicture(false);
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
        audio: false,
      });
    } catch (err) {
      // Closing the picker is a NotAllowedError: nothing to report.
      if (err.name !== 'NotAllowedError') ui.showError(describeMediaError(err, 'screen'));
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (this.state !== 'joined' || !track) return stream.getTracks().forEach((t) => t.stop());
    track.contentHint = 'detail';
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener('ended', () => this.#stopScreen());
    const { trackId, reused } = this.call.startScreen(track, stream);
    if (reused) this.send({ type: 'mute', trackId, muted: false });
    else this.send({ type: 'trackSource', trackId, source: 'screen' });
    const tile = new Tile({ key: 'local/screen', peerId: null, local: true, screen: true });
    tile.setName(`${this.name} (your screen)`);
    tile.setStream(new MediaStream([track]));
    tile.setVideoOff(false);
    this.grid.add(tile);
    this.screen = { track, trackId, tile };
    this.#updateTools();
  }

  #stopScreen() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    // Muting hides the tile for everyone at once; the sender then sends
    // nothing until the next share.
    this.send({ type: 'mute', trackId: screen.trackId, muted: true });
    screen.track.stop();
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
    if (track) this.preview.addTrack(track);
    this.localTile.setVideoOff(!track);
  }

  #onJoined(msg) {
    this.state = 'joined';
    this.peerId = msg.peerId;
    for (const p of msg.participants ?? []) this.roster.add(p.peerId, p.name, p.tracks ?? []);
    this.call = new Call({
      iceServers: msg.iceServers ?? [],
      send: (m) => this.send(m),
      onRemoteTrack: (peerId, track) => this.roster.remoteTrack(peerId, track),
      onConnectionState: (state) => this.#onConnectionState(state),
      onError: (text) => ui.showError(text),
    });
    window.sfu.pc = this.call.pc;
    window.sfu.peerId = msg.peerId;
    this.call.start(this.stream);
    this.quality = new QualityMonitor(this.call.pc, {
      ownerOf: (trackId) => this.roster.ownerOf(trackId),
      localKey: 'local',
      onQuality: (key, level, detail, figures) => {
        this.grid.get(key)?.setQuality(level, detail);
        window.sfu.quality[key] = { level, ...figures };
      },
    });
    this.quality.start();
    this.#updateTools();
    this.#onRosterChange();
  }

  #onConnectionState(state) {
    this.mediaState = state;
    if (state === 'failed') {
      ui.showError(
        "Media connection failed: your browser could not reach the server's UDP media port. " +
          'Check that the port is open and that the server advertises the right --public-ip.',
      );
    }
    this.#updateStatus();
  }

  #onRosterChange() {
    const others = this.roster.list();
    window.sfu.participants = new Map(others.map((p) => [p.peerId, p]));
    ui.renderPeople([
      { name: this.name, you: true, micMuted: !this.mic || this.micMuted, cameraOff: !this.cam, screen: !!this.screen },
      ...others,
    ]);
    this.#updateStatus();
  }

  #updateStatus() {
    if (this.state !== 'joined') return;
    const n = this.roster.participants.size;
    const media = { connected: 'connected', connecting: 'connecting…', new: 'connecting…' }[this.mediaState] ?? this.mediaState;
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
    const hasVideo = !!this.call?.publishedId('video') || (!this.call && !!this.cam);
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
