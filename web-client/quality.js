// Connection quality per tile from RTCPeerConnection.getStats(), sampled
// every 2 s: packet loss of each participant's inbound tracks (for their
// tiles), loss the SFU reports for what we send (for our own tile), and the
// round-trip time to the SFU (for all), classified good / fair / poor.

const INTERVAL_MS = 2000;

/** good / fair / poor from a loss percentage and an RTT in milliseconds. */
export function classify(lossPct, rttMs) {
  const rtt = rttMs ?? 0;
  if (lossPct < 2 && rtt < 250) return 'good';
  if (lossPct < 8 && rtt < 500) return 'fair';
  return 'poor';
}

function describe(lossPct, rttMs) {
  const parts = [`loss ${lossPct.toFixed(1)}%`];
  if (rttMs !== null) parts.push(`RTT ${Math.round(rttMs)} ms`);
  return parts.join(' · ');
}

export class QualityMonitor {
  /**
   * @param {RTCPeerConnection} pc
   * @param {object} o
   * @param {(trackId: string) => string|null} o.ownerOf  remote track id -> tile owner key
   * @param {string} o.localKey  the owner key of our own tile
   * @param {(key: string, level: string, detail: string, figures: object) => void} o.onQuality
   */
  constructor(pc, { ownerOf, localKey, onQuality }) {
    this.pc = pc;
    this.ownerOf = ownerOf;
    this.localKey = localKey;
    this.onQuality = onQuality;
    this.previous = new Map(); // stats id -> { received, lost }
    this.timer = null;
  }

  start() {
    this.timer = setInterval(() => this.sample().catch(() => {}), INTERVAL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async sample() {
    if (this.pc.connectionState === 'closed') return;
    const report = await this.pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    const rttMs = pair?.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : null;

    const perOwner = new Map(); // key -> { received, lost }
    const add = (key, id, received, lost) => {
      const before = this.previous.get(id) ?? { received: 0, lost: 0 };
      this.previous.set(id, { received, lost });
      const sum = perOwner.get(key) ?? { received: 0, lost: 0 };
      sum.received += Math.max(0, received - before.received);
      sum.lost += Math.max(0, lost - before.lost);
      perOwner.set(key, sum);
    };
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        const key = s.trackIdentifier ? this.ownerOf(s.trackIdentifier) : null;
        if (key) add(key, s.id, s.packetsReceived ?? 0, Math.max(0, s.packetsLost ?? 0));
      }
      if (s.type === 'remote-inbound-rtp' && typeof s.fractionLost === 'number') {
        // What the SFU received of ours: fractionLost is per report interval.
        const sum = perOwner.get(this.localKey) ?? { received: 0, lost: 0 };
        sum.fraction = Math.max(sum.fraction ?? 0, s.fractionLost);
        perOwner.set(this.localKey, sum);
      }
    });
    if (!perOwner.has(this.localKey)) perOwner.set(this.localKey, { received: 0, lost: 0 });
    for (const [key, { received, lost, fraction }] of perOwner) {
      const total = received + lost;
      const lossPct = fraction !== undefined ? fraction * 100 : total > 0 ? (lost / total) * 100 : 0;
      const level = classify(lossPct, rttMs);
      this.onQuality(key, level, describe(lossPct, rttMs), { lossPct, rttMs });
    }
  }
}
