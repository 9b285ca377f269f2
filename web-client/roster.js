// The remote participants of a room and their tracks, learnt from
// `joined`, `trackPublished`, `trackUnpublished`, `trackMuted`,
// `trackSource` and the RTCPeerConnection's `ontrack` (whose track id is the
// SFU's `t<n>` and whose stream id is the publisher's peer id), reconciled
// into tiles: one camera tile per participant (playing their microphone
// too) and one tile per screen share (playing the share's audio, if any).
// A video the SFU paused for lack of bandwidth (`videoPaused`) says so on
// its tile.

import { Tile } from './tiles.js';

const trackNumber = (id) => Number(String(id).slice(1)) || 0;

export class Roster {
  /**
   * @param {import('./tiles.js').Grid} grid
   * @param {() => void} onChange  the list or someone's state changed
   */
  constructor(grid, onChange) {
    this.grid = grid;
    this.onChange = onChange;
    this.participants = new Map(); // peerId -> participant
    this.early = new Map(); // peerId -> MediaStreamTracks before we knew them
    this.pausedEarly = new Set(); // track ids paused before we knew them
  }

  /** Someone in the room: `tracks` as in `joined` ({ trackId, kind, muted }). */
  add(peerId, name, tracks = []) {
    let p = this.participants.get(peerId);
    if (!p) {
      p = { peerId, name, tracks: new Map(), stream: new MediaStream(), screens: new Map() };
      this.participants.set(peerId, p);
    }
    p.name = name;
    for (const t of tracks) this.#entry(p, t.trackId, t.kind).muted = !!t.muted;
    for (const { track, trackId } of this.early.get(peerId) ?? []) this.#attach(p, track, trackId);
    this.early.delete(peerId);
    this.#render(p);
    return p;
  }

  remove(peerId) {
    const p = this.participants.get(peerId);
    this.early.delete(peerId);
    if (!p) return;
    this.grid.remove(peerId);
    for (const key of p.screens.keys()) this.grid.remove(key);
    this.participants.delete(peerId);
    this.onChange();
  }

  clear() {
    for (const peerId of [...this.participants.keys()]) this.remove(peerId);
    this.early.clear();
    this.pausedEarly.clear();
  }

  trackPublished(peerId, trackId, kind) {
    const p = this.participants.get(peerId);
    if (!p) return;
    this.#entry(p, trackId, kind).kind = kind;
    this.#render(p);
  }

  trackUnpublished(peerId, trackId) {
    const p = this.participants.get(peerId);
    if (!p) return;
    p.tracks.delete(trackId);
    this.#render(p);
  }

  trackMuted(peerId, trackId, muted) {
    const p = this.participants.get(peerId);
    const t = p?.tracks.get(trackId);
    if (!t) return;
    t.muted = muted;
    this.#render(p);
  }

  trackSource(peerId, trackId, source) {
    const p = this.participants.get(peerId);
    if (!p) return;
    // It may name a track we have not heard of yet (its kind unknown until
    // it is published): remember it.
    this.#entry(p, trackId, null).source = source;
    this.#render(p);
  }

  /** `videoPaused`: the SFU paused (or resumed) the video `trackId`. */
  videoPaused(trackId, paused) {
    for (const p of this.participants.values()) {
      const t = p.tracks.get(trackId);
      if (!t) continue;
      t.paused = paused;
      this.#render(p);
      return;
    }
    // Not heard of yet (it may come before `trackPublished`).
    if (paused) this.pausedEarly.add(trackId);
    else this.pausedEarly.delete(trackId);
  }

  /**
   * Each received video on a tile: its track id (the SFU's `t<n>`) -> the
   * `<video>` element showing it.
   */
  videoElements() {
    const out = new Map();
    for (const p of this.participants.values()) {
      const { cameraId, camera, screenEntries } = this.#roles(p);
      const tile = this.grid.get(p.peerId);
      if (camera?.track && tile) out.set(cameraId, tile.video);
      for (const [trackId, t] of screenEntries) {
        const screen = p.screens.get(`${p.peerId}/${trackId}`);
        if (t.track && screen) out.set(trackId, screen.tile.video);
      }
    }
    return out;
  }

  /**
   * Our connection to the SFU is gone (we are reconnecting): forget every
   * received track, so that tiles show their placeholders until the new
   * connection brings the tracks back.
   */
  detachAll() {
    for (const p of this.participants.values()) {
      for (const t of p.tracks.values()) {
        t.track = null;
        t.paused = false;
      }
      this.#render(p);
    }
    this.early.clear();
    this.pausedEarly.clear();
  }

  /**
   * A track from `ontrack`, for the participant `peerId`, as the SFU's track
   * `trackId` (the SDP's; the MediaStreamTrack's own id is the first track
   * its m-line carried, which the SFU reuses for later tracks).
   */
  remoteTrack(peerId, track, trackId = track.id) {
    // A reused receiver track leaves whoever it showed before.
    for (const other of this.participants.values()) {
      for (const [id, t] of other.tracks) {
        if (t.track === track && !(other.peerId === peerId && id === trackId)) {
          t.track = null;
          this.#render(other);
        }
      }
    }
    const p = this.participants.get(peerId);
    if (!p) {
      // Shown once `participantJoined` names it; never, if no one does.
      const list = this.early.get(peerId) ?? [];
      list.push({ track, trackId });
      this.early.set(peerId, list);
      return;
    }
    this.#attach(p, track, trackId);
    this.#render(p);
  }

  /**
   * The tile key showing the remote track `trackId` (a receiver's
   * MediaStreamTrack id, as in statistics, or the SFU's), if any.
   */
  ownerOf(trackId) {
    const key = (p, id) => (p.screens.has(`${p.peerId}/${id}`) ? `${p.peerId}/${id}` : p.peerId);
    for (const p of this.participants.values()) {
      for (const [id, t] of p.tracks) if (t.track?.id === trackId) return key(p, id);
    }
    for (const p of this.participants.values()) {
      if (p.tracks.has(trackId)) return key(p, trackId);
    }
    return null;
  }

  /** For the people panel and the tests. */
  list() {
    return [...this.participants.values()].map((p) => {
      const { camera, audio, screenEntries } = this.#roles(p);
      return {
        peerId: p.peerId,
        name: p.name,
        micMuted: !audio || audio.muted,
        cameraOff: !camera || camera.muted,
        screen: screenEntries.some(([, t]) => !t.muted),
        tracks: [...p.tracks.entries()].map(([trackId, t]) => ({ trackId, kind: t.kind, muted: t.muted, source: t.source })),
      };
    });
  }

  #entry(p, trackId, kind) {
    let t = p.tracks.get(trackId);
    if (!t) {
      t = { kind, muted: false, source: null, track: null, paused: this.pausedEarly.delete(trackId) };
      p.tracks.set(trackId, t);
    }
    return t;
  }

  #attach(p, track, trackId = track.id) {
    const t = this.#entry(p, trackId, track.kind);
    t.kind = track.kind;
    t.track = track;
    track.addEventListener('ended', () => {
      if (t.track === track) t.track = null;
      if (this.participants.get(p.peerId) === p) this.#render(p);
    });
  }

  /** Which track is the camera, the microphone, the screens and the screen's audio. */
  #roles(p) {
    const ordered = [...p.tracks.entries()].sort(([a], [b]) => trackNumber(a) - trackNumber(b));
    const videos = ordered.filter(([, t]) => t.kind === 'video');
    const cameraEntry = videos.find(([, t]) => t.source !== 'screen');
    // The microphone is the first audio track not marked as a screen's; a
    // screen's audio is unplayed until its source is known.
    const audioEntry = ordered.find(([, t]) => t.kind === 'audio' && t.source !== 'screen');
    const screenAudio = ordered.filter(([, t]) => t.kind === 'audio' && t.source === 'screen').map(([, t]) => t);
    return {
      cameraId: cameraEntry?.[0] ?? null,
      camera: cameraEntry?.[1] ?? null,
      audio: audioEntry?.[1] ?? null,
      // Any other video is a screen share, even before its source is known.
      screenEntries: videos.filter((e) => e !== cameraEntry),
      // A participant shares one screen at a time: its audio, while playing.
      screenAudio: screenAudio.find((t) => !t.muted && t.track) ?? null,
    };
  }

  #render(p) {
    const { camera, audio, screenEntries, screenAudio } = this.#roles(p);
    const tile = this.grid.get(p.peerId) ?? this.grid.add(new Tile({ key: p.peerId, peerId: p.peerId }));
    tile.setName(p.name);
    syncStream(p.stream, [camera?.track, audio?.track]);
    tile.setStream(p.stream);
    tile.setVideoOff(!camera?.track || camera.muted);
    tile.setVideoPaused(!!camera?.track && !camera.muted && camera.paused);
    // No microphone track once their camera is there: they have none, or
    // muted it before it ever reached the SFU (as when rejoining muted).
    tile.setMicMuted(audio ? audio.muted : !!camera);

    const wanted = new Set();
    // The share's audio plays with the newest screen that is showing.
    const shown = screenEntries.filter(([, t]) => !t.muted);
    const audible = shown.length ? shown[shown.length - 1][0] : null;
    for (const [trackId, t] of screenEntries) {
      const key = `${p.peerId}/${trackId}`;
      wanted.add(key);
      let screen = p.screens.get(key);
      if (!screen) {
        screen = { tile: new Tile({ key, peerId: p.peerId, screen: true, trackId }), stream: new MediaStream() };
        p.screens.set(key, screen);
        this.grid.add(screen.tile);
      }
      screen.tile.setName(`${p.name} (screen)`);
      syncStream(screen.stream, [t.track, trackId === audible ? screenAudio?.track : null]);
      screen.tile.setStream(screen.stream);
      screen.tile.el.dataset.audio = String(screen.stream.getAudioTracks().length > 0);
      screen.tile.setVideoOff(!t.track);
      screen.tile.setVideoPaused(!!t.track && !t.muted && t.paused);
      // A stopped share is muted first: hide it at once.
      screen.tile.el.hidden = t.muted;
    }
    for (const key of [...p.screens.keys()]) {
      if (wanted.has(key)) continue;
      p.screens.delete(key);
      this.grid.remove(key);
    }
    this.grid.layout();
    this.onChange();
  }
}

/** Makes `stream` hold exactly the live tracks of `tracks`. */
function syncStream(stream, tracks) {
  const want = tracks.filter((t) => t && t.readyState === 'live');
  for (const t of stream.getTracks()) if (!want.includes(t)) stream.removeTrack(t);
  for (const t of want) if (!stream.getTracks().includes(t)) stream.addTrack(t);
}
