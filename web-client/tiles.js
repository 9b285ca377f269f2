// Video tiles and the grid that lays them out: one tile per participant's
// camera (with name, muted-microphone badge, camera-off placeholder and
// connection-quality bars, and a notice while the SFU pauses the video for
// lack of bandwidth) plus one per screen share. The grid picks the
// column count that makes tiles largest for the space, from 1 to many
// tiles; a 1:1 call shows the other person large and yourself small.
// Names are always set with textContent.

import { icon } from './icons.js';

const GAP_PX = 8;
/** Tiles narrower than this get the compact look. */
const COMPACT_BELOW_PX = 200;
const QUALITY_TEXT = { good: 'Good connection', fair: 'Unstable connection', poor: 'Poor connection' };

export class Tile {
  /**
   * @param {object} o
   * @param {string} o.key  unique within the grid
   * @param {string|null} o.peerId  null for the local tile
   * @param {boolean} [o.local]
   * @param {boolean} [o.screen]  a screen share rather than a camera
   * @param {string} [o.trackId]  the screen track, for screen tiles
   */
  constructor({ key, peerId, local = false, screen = false, trackId = null }) {
    this.key = key;
    const el = document.createElement('figure');
    el.className = `tile ${local ? 'local' : 'remote'}${screen ? ' screen' : ''} video-off`;
    if (peerId) el.dataset.peerId = peerId;
    if (trackId) el.dataset.trackId = trackId;
    el.dataset.source = screen ? 'screen' : 'camera';

    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');
    if (local) video.muted = true;

    const placeholder = document.createElement('div');
    placeholder.className = 'placeholder';
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    const offText = document.createElement('span');
    offText.className = 'off-text';
    offText.textContent = 'Camera off';
    placeholder.append(avatar, offText);

    const label = document.createElement('figcaption');
    label.className = 'label';
    const mic = document.createElement('span');
    mic.className = 'mic-off';
    mic.title = 'Microphone muted';
    mic.hidden = true;
    mic.append(icon('micOff'));
    const name = document.createElement('span');
    name.className = 'name';
    label.append(mic, name);

    const quality = document.createElement('span');
    quality.className = 'quality';
    quality.hidden = true;
    quality.setAttribute('role', 'img');
    for (let i = 0; i < 3; i++) quality.append(document.createElement('i'));

    el.append(video, placeholder, label, quality);
    this.el = el;
    this.video = video;
    this.stream = null;
  }

  setName(name) {
    this.el.querySelector('.name').textContent = name;
    this.el.querySelector('.avatar').textContent = initial(name);
    this.el.setAttribute('aria-label', name);
  }

  /** Shows `stream` (kept across calls, so adding tracks does not restart it). */
  setStream(stream) {
    if (this.video.srcObject === stream) return;
    this.stream = stream;
    this.video.srcObject = stream;
    if (stream) play(this);
  }

  setVideoOff(off) {
    this.el.classList.toggle('video-off', off);
  }

  setMicMuted(muted) {
    this.el.querySelector('.mic-off').hidden = !muted;
    this.el.classList.toggle('mic-muted', muted);
  }

  /**
   * The SFU paused this video because our connection fits not even its
   * lowest layer (`videoPaused`); the sound goes on.
   */
  setVideoPaused(paused) {
    this.el.classList.toggle('video-paused', paused);
    let notice = this.el.querySelector('.paused-notice');
    if (!paused) {
      if (notice) notice.hidden = true;
      return;
    }
    if (!notice) {
      notice = document.createElement('div');
      notice.className = 'paused-notice';
      notice.setAttribute('role', 'status');
      notice.textContent = 'Video paused: poor connection';
      this.el.append(notice);
    }
    notice.hidden = false;
  }

  /** `level` is good / fair / poor, or null to hide; `detail` goes in the tooltip. */
  setQuality(level, detail = '') {
    const q = this.el.querySelector('.quality');
    q.hidden = !level;
    if (!level) return;
    this.el.dataset.quality = level;
    q.className = `quality ${level}`;
    const text = detail ? `${QUALITY_TEXT[level]}: ${detail}` : QUALITY_TEXT[level];
    q.title = text;
    q.setAttribute('aria-label', text);
  }

  remove() {
    this.video.srcObject = null;
    this.el.remove();
  }
}

function play(tile) {
  tile.video.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return;
    // Autoplay with sound was refused: play muted and offer to unmute.
    tile.video.muted = true;
    tile.video.play().catch(() => {});
    if (tile.el.querySelector('.unmute')) return;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'unmute';
    button.textContent = 'Click to hear';
    button.addEventListener('click', () => {
      tile.video.muted = false;
      tile.video.play().catch(() => {});
      button.remove();
    });
    tile.el.append(button);
  });
}

function initial(name) {
  return (name ?? '').trim().charAt(0).toUpperCase() || '?';
}

/** The grid element and its tiles, laid out to fill the space. */
export class Grid {
  constructor(el) {
    this.el = el;
    this.tiles = new Map(); // key -> Tile
    this.pip = false;
    this.observer = new ResizeObserver(() => this.layout());
    this.observer.observe(el);
  }

  add(tile) {
    this.tiles.set(tile.key, tile);
    if (tile.el.classList.contains('local')) this.el.prepend(tile.el);
    else this.el.append(tile.el);
    this.layout();
    return tile;
  }

  get(key) {
    return this.tiles.get(key) ?? null;
  }

  remove(key) {
    const tile = this.tiles.get(key);
    if (!tile) return;
    tile.remove();
    this.tiles.delete(key);
    this.layout();
  }

  clear() {
    for (const tile of this.tiles.values()) tile.remove();
    this.tiles.clear();
    this.layout();
  }

  /** In a 1:1 call, show the other person large and yourself inset. */
  setPictureInPicture(on) {
    this.pip = on;
    this.layout();
  }

  layout() {
    const visible = [...this.tiles.values()].filter((t) => !t.el.hidden);
    const local = visible.find((t) => t.el.classList.contains('local'));
    const pip = this.pip && local && visible.length === 2;
    this.el.classList.toggle('pip', !!pip);
    const laidOut = pip ? visible.filter((t) => t !== local) : visible;
    const style = getComputedStyle(this.el);
    const width = this.el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const height = this.el.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    this.el.dataset.tiles = String(visible.length);
    if (pip || laidOut.length === 0 || width === 0 || height === 0) {
      this.el.style.gridTemplateColumns = '';
      this.el.classList.remove('compact');
      return;
    }
    const aspect = width / height < 0.8 ? 1 : 16 / 9;
    const { cols, tileWidth } = bestLayout(laidOut.length, width, height, aspect);
    this.el.style.gridTemplateColumns = `repeat(${cols}, ${Math.floor(tileWidth)}px)`;
    // Small tiles (many people on a phone) get smaller labels and badges.
    this.el.classList.toggle('compact', tileWidth < COMPACT_BELOW_PX);
    this.el.style.setProperty('--tile-aspect', String(aspect));
  }
}

/** The column count that makes `n` tiles of `aspect` largest in w x h. */
export function bestLayout(n, width, height, aspect) {
  let best = { cols: 1, tileWidth: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const byWidth = (width - GAP_PX * (cols - 1)) / cols;
    const byHeight = ((height - GAP_PX * (rows - 1)) / rows) * aspect;
    const tileWidth = Math.min(byWidth, byHeight);
    if (tileWidth > best.tileWidth) best = { cols, tileWidth };
  }
  return best;
}
