// How big each received video is shown, reported to the SFU
// (`videoPreference`) so that it forwards the simulcast layer the tile needs:
// the size of the picture in the tile, in device pixels, or 0 by 0 while
// the tile is hidden, scrolled out of view or the page is in the
// background. Sizes come from a ResizeObserver, visibility from an
// IntersectionObserver and the page's visibility. A size is sent when it
// changes enough to matter, at most every 500 ms per video, and all videos
// together stay within a budget below the server's rate limit (which
// `mute` and `trackSource` share).

/** The least time between two reports of one video. */
const MIN_INTERVAL_MS = 500;
/** All videos together: this many reports at once, then this many per second. */
const BURST = 10;
const PER_SECOND = 3;
/** Smaller changes than this (relative, either side) are not reported... */
const MIN_CHANGE = 0.1;
/** ...unless they cross one of the heights where the server changes layer. */
const LAYER_HEIGHTS = [240, 480];

export class VideoPreferences {
  /**
   * @param {(msg: object) => boolean} send  false when the message could not be sent
   */
  constructor(send) {
    this.send = send;
    /** trackId -> { trackId, video, sent: {width, height}|null, sentAt, timer, visible } */
    this.entries = new Map();
    this.byVideo = new Map(); // video element -> entry
    this.tokens = BURST;
    this.refilledAt = performance.now();
    this.stopped = false;
    /** Reports sent, for the browser tests. */
    this.sentCount = 0;
    this.resize = new ResizeObserver((records) => {
      for (const r of records) this.#update(this.byVideo.get(r.target));
    });
    this.intersection = new IntersectionObserver((records) => {
      for (const r of records) {
        const entry = this.byVideo.get(r.target);
        if (!entry) continue;
        entry.visible = r.isIntersecting;
        this.#update(entry);
      }
    });
    this.onPageChange = () => this.#updateAll();
    document.addEventListener('visibilitychange', this.onPageChange);
    // devicePixelRatio changes (zoom, another screen) come with a resize.
    window.addEventListener('resize', this.onPageChange);
  }

  /**
   * The videos now shown: `tiles` maps each received video's track id (the
   * SFU's `t<n>`) to the `<video>` element showing it. Videos no longer
   * listed are forgotten (the SFU forgets them with their Subscription).
   */
  sync(tiles) {
    if (this.stopped) return;
    for (const [trackId, entry] of [...this.entries]) {
      if (tiles.get(trackId) === entry.video) continue;
      this.#forget(entry);
    }
    for (const [trackId, video] of tiles) {
      if (this.entries.has(trackId)) continue;
      const entry = { trackId, video, sent: null, sentAt: -Infinity, timer: null, visible: true };
      this.entries.set(trackId, entry);
      this.byVideo.set(video, entry);
      video.addEventListener('resize', this.onPageChange); // the picture's aspect may change
      this.resize.observe(video);
      this.intersection.observe(video);
      this.#update(entry);
    }
  }

  /**
   * Sends every video's size again (after a signaling resume: what was sent
   * while the socket was down, or just before, may be lost).
   */
  resendAll() {
    for (const entry of this.entries.values()) {
      entry.sent = null;
      this.#update(entry);
    }
  }

  /** Forgets everything (a new connection has new tracks). */
  clear() {
    for (const entry of [...this.entries.values()]) this.#forget(entry);
  }

  stop() {
    this.clear();
    this.stopped = true;
    this.resize.disconnect();
    this.intersection.disconnect();
    document.removeEventListener('visibilitychange', this.onPageChange);
    window.removeEventListener('resize', this.onPageChange);
  }

  /** What each video's last report said, for the browser tests. */
  snapshot() {
    return Object.fromEntries([...this.entries.values()].map((e) => [e.trackId, { sent: e.sent, now: this.#measure(e) }]));
  }

  #forget(entry) {
    clearTimeout(entry.timer);
    this.resize.unobserve(entry.video);
    this.intersection.unobserve(entry.video);
    entry.video.removeEventListener('resize', this.onPageChange);
    this.entries.delete(entry.trackId);
    if (this.byVideo.get(entry.video) === entry) this.byVideo.delete(entry.video);
  }

  #updateAll() {
    for (const entry of this.entries.values()) this.#update(entry);
  }

  /** The size of the picture of `entry`'s video on screen, in device pixels. */
  #measure(entry) {
    const video = entry.video;
    if (document.visibilityState === 'hidden' || !entry.visible || !video.isConnected) return { width: 0, height: 0 };
    const rect = video.getBoundingClientRect();
    let width = rect.width;
    let height = rect.height;
    if (width === 0 || height === 0) return { width: 0, height: 0 };
    // With `contain` the picture may fill only part of the element.
    if (getComputedStyle(video).objectFit === 'contain' && video.videoWidth > 0 && video.videoHeight > 0) {
      const scale = Math.min(width / video.videoWidth, height / video.videoHeight);
      width = video.videoWidth * scale;
      height = video.videoHeight * scale;
    }
    const dpr = window.devicePixelRatio || 1;
    return { width: Math.round(width * dpr), height: Math.round(height * dpr) };
  }

  #update(entry) {
    if (!entry || this.stopped || entry.timer) return; // a pending report measures again when it fires
    const now = performance.now();
    if (!differs(this.#measure(entry), entry.sent)) return;
    const wait = Math.max(entry.sentAt + MIN_INTERVAL_MS - now, this.#tokenWait(now));
    if (wait > 0) {
      entry.timer = setTimeout(() => {
        entry.timer = null;
        this.#update(entry);
      }, wait);
      return;
    }
    const size = this.#measure(entry);
    const ok = this.send({ type: 'videoPreference', trackId: entry.trackId, width: size.width, height: size.height });
    if (!ok) return; // not joined, or the socket is down: sent again on resume
    this.tokens -= 1;
    this.sentCount += 1;
    entry.sent = size;
    entry.sentAt = now;
  }

  /** Milliseconds until the shared budget allows one more report. */
  #tokenWait(now) {
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilledAt) / 1000) * PER_SECOND);
    this.refilledAt = now;
    return this.tokens >= 1 ? 0 : ((1 - this.tokens) / PER_SECOND) * 1000;
  }
}

/** Whether `size` is worth reporting when `sent` was reported last. */
function differs(size, sent) {
  if (!sent) return true;
  const hidden = size.width === 0 || size.height === 0;
  const wasHidden = sent.width === 0 || sent.height === 0;
  if (hidden || wasHidden) return hidden !== wasHidden;
  const band = (h) => LAYER_HEIGHTS.filter((limit) => h > limit).length;
  if (band(size.height) !== band(sent.height)) return true;
  return Math.abs(size.width - sent.width) > MIN_CHANGE * sent.width || Math.abs(size.height - sent.height) > MIN_CHANGE * sent.height;
}
