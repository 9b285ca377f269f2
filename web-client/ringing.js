// 1:1 calls by personal call ID: registering this browser's ID (kept in
// localStorage, so it survives reloads) on every connection, the ID card on
// the home screen, dialing, and the incoming and outgoing call banners.
// The app is told when a call is answered (join its private room), when it
// ends (with a sentence saying why), and when the ID is registered again
// after a reconnect (an answered call survives a short signaling outage: the
// server keeps it for a few seconds, and the app rejoins its room).

import { accessToken, AccessError, claimsOf, hasPageToken } from './access.js';
import * as ui from './ui.js';

const ID_KEY = 'sfu.callId';
const ID_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
const ID_LENGTH = 7;
/** While another connection still holds our ID (a reload, a reconnect), retry this long. */
const TAKEN_RETRY_FOR_MS = 12_000;
const TAKEN_RETRY_EVERY_MS = 1000;

/** Upper-cases and drops spaces and dashes; null if it is not a call ID. */
export function normalizeCallId(raw) {
  const id = String(raw ?? '').replace(/[\s-]/g, '').toUpperCase();
  if (id.length !== ID_LENGTH || [...id].some((c) => !ID_ALPHABET.includes(c))) return null;
  return id;
}

/** A random call ID, for a dev-mode token's identity. */
function randomCallId() {
  const bytes = crypto.getRandomValues(new Uint8Array(ID_LENGTH));
  return [...bytes].map((b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('');
}

function storedId() {
  try {
    return normalizeCallId(localStorage.getItem(ID_KEY));
  } catch {
    return null;
  }
}

function storeId(id) {
  try {
    if (id) localStorage.setItem(ID_KEY, id);
    else localStorage.removeItem(ID_KEY);
  } catch {
    // storage disabled: the ID lasts as long as the connection
  }
}

export class Ringing {
  /**
   * @param {object} o
   * @param {(msg: object) => boolean} o.send
   * @param {() => string} o.getName  the display name (may be empty)
   * @param {(call: object) => void} o.onAnswered  `{ call, room, peer, name }`
   * @param {(text: string|null) => void} o.onEnded  the call is over; why, for people
   * @param {(id: string) => void} [o.onRegistered]  the socket holds our call ID
   */
  constructor({ send, getName, onAnswered, onEnded, onRegistered = () => {} }) {
    Object.assign(this, { send, getName, onAnswered, onEnded, onRegistered });
    this.myId = null;
    this.lastId = null; // the ID we held, for a reconnect when storage is off
    this.registeredName = null;
    this.state = 'idle'; // idle | calling | ringing | active
    this.call = null; // { ref, peer, name }
    this.endedByMe = false;
    this.takenSince = null;
    this.retryTimer = null;
    this.orphans = 0; // calls cancelled before the server confirmed them
  }

  /** The socket (re)opened: register the stored ID (the one we held, for a call to go on). */
  onOpen() {
    this.myId = null;
    this.takenSince = null;
    this.#register(storedId() ?? this.lastId);
  }

  /**
   * The socket closed. A ringing call is over (the server ends it); an
   * answered one waits for us to come back with the same ID.
   */
  onDown() {
    clearTimeout(this.retryTimer);
    this.myId = null;
    ui.el.myCallId.textContent = '·······';
    ui.el.copyId.disabled = true;
    ui.el.copyCallLink.disabled = true;
    ui.el.idHint.textContent = 'Not connected to the server: your call ID shows here once it is reachable.';
    if (this.state === 'active') return;
    if (this.state !== 'idle') this.#end('The call ended: the connection to the server was lost.');
  }

  /** The server gave our session back on a new socket: we hold our call ID again. */
  onResumed() {
    if (this.lastId) this.#onRegistered(this.lastId);
  }

  /** Whether an answered call is going on. */
  get inCall() {
    return this.state === 'active';
  }

  /** The call is over without a word from the server (rejoining it failed): `text` says why. */
  abandon(text) {
    if (this.state === 'idle') return;
    this.#end(text);
  }

  /** The page is going away: hang up an answered call now rather than leave it waiting for us. */
  leaving() {
    if (this.state === 'active' && this.call.ref) this.send({ type: 'hangup', call: this.call.ref });
  }

  /** The display name changed: tell the server (callers see it). */
  nameChanged() {
    const name = this.getName();
    if (this.myId && name && name !== this.registeredName) {
      this.send({ type: 'register', name, callId: this.myId });
      this.registeredName = name;
    }
  }

  /** Rings `raw` (as typed). */
  dial(raw) {
    const to = normalizeCallId(raw);
    if (!to) {
      ui.showError(`"${raw}" is not a call ID. Call IDs are ${ID_LENGTH} letters and digits, like K7M3QXA.`);
      return;
    }
    if (to === this.myId) {
      ui.showError('That is your own call ID. Enter the ID of the person you want to call.');
      return;
    }
    if (this.state !== 'idle') return;
    if (!this.myId) {
      ui.showError('Not connected to the server yet. Try again in a moment.');
      return;
    }
    ui.clearError();
    this.nameChanged();
    if (!this.send({ type: 'call', to })) return;
    this.state = 'calling';
    this.call = { ref: null, peer: to, name: to };
    ui.setBusy(ui.el.callButton, true, 'Call', 'Calling…');
    ui.showOutgoing(`Calling ${to}…`);
  }

  answer() {
    if (this.state !== 'ringing') return;
    ui.el.answer.disabled = true;
    ui.el.decline.disabled = true;
    this.send({ type: 'accept', call: this.call.ref });
  }

  decline() {
    if (this.state !== 'ringing') return;
    this.endedByMe = true;
    this.send({ type: 'decline', call: this.call.ref });
    this.#end(null);
  }

  cancel() {
    if (this.state !== 'calling') return;
    this.endedByMe = true;
    if (this.call.ref) this.send({ type: 'cancel', call: this.call.ref });
    else this.orphans += 1;
    this.#end(null);
  }

  /** Ends the active call from this side. */
  hangup() {
    if (this.state === 'idle') return;
    this.endedByMe = true;
    if (this.call.ref) this.send({ type: 'hangup', call: this.call.ref });
    this.#end(null);
  }

  /** A call message from the server. */
  handle(msg) {
    switch (msg.type) {
      case 'registered':
        this.#onRegistered(msg.callId);
        break;
      case 'calling':
        if (this.orphans > 0 || this.state !== 'calling' || this.call.ref) {
          // Cancelled before the server confirmed it.
          this.orphans = Math.max(0, this.orphans - 1);
          this.send({ type: 'cancel', call: msg.call });
          break;
        }
        this.call = { ref: msg.call, peer: msg.to, name: msg.name };
        ui.showOutgoing(`Calling ${msg.name}…`);
        break;
      case 'ring':
        // Our own call, if we just placed one, will be refused as busy.
        ui.hideOutgoing();
        ui.setBusy(ui.el.callButton, false, 'Call');
        this.state = 'ringing';
        this.call = { ref: msg.call, peer: msg.from, name: msg.name };
        ui.showIncoming(`${msg.name} is calling you`);
        document.title = `Call from ${msg.name} – SFU call`;
        break;
      case 'callAccepted':
        if (this.call?.ref !== msg.call) break;
        this.state = 'active';
        this.call.name = msg.name;
        ui.hideIncoming();
        ui.hideOutgoing();
        document.title = 'SFU call';
        this.onAnswered({ call: msg.call, room: msg.room, peer: msg.peer, name: msg.name });
        break;
      case 'callEnded':
        if (this.call?.ref === msg.call) this.#end(this.#endText(msg.reason));
        break;
      case 'missedCall':
        ui.showNotice(`Missed call from ${msg.name} (${msg.from}): you were busy.`, 10_000);
        break;
      default:
        console.warn('ringing: unexpected message', msg.type);
    }
  }

  /** An `error` answering one of our requests. */
  onError(msg) {
    if (msg.request === 'register') {
      if (msg.code === 'id_taken' && !this.myId) return this.#onTaken();
      if (msg.code === 'bad_call_id') return this.#register(null);
      if (msg.code === 'unauthorized') {
        ui.el.idHint.textContent = `Calls are not available: ${msg.message}.`;
        return undefined;
      }
      return ui.showError(`Could not register your call ID: ${msg.message}`);
    }
    const texts = {
      unknown_id: `No one with call ID ${this.call?.peer ?? ''} is online right now. Check the ID, or try again later.`,
      rate_limited: `Too many calls in a short time. ${msg.message}.`,
      call_in_progress: 'You are already in a call.',
      self_call: 'That is your own call ID.',
      bad_call_id: 'That is not a valid call ID.',
      not_registered: 'Not connected to the server yet. Try again in a moment.',
      no_such_call: 'That call is already over.',
    };
    if (msg.request === 'call' && this.orphans > 0) {
      this.orphans -= 1;
      return;
    }
    if (msg.request === 'call' && this.state === 'ringing') return; // someone called us first
    if (msg.request === 'call' && this.state === 'calling') this.#end(null);
    ui.showError(texts[msg.code] ?? `Call failed: ${msg.message}`);
  }

  /**
   * Registers with an access token: the page's (whose identity, when it is
   * a call ID, is the only ID it may hold), or a dev-mode token whose
   * identity is the ID we propose (a fresh random one when we have none).
   */
  async #register(proposed) {
    const name = this.getName();
    this.registeredName = name || null;
    let id = proposed ?? randomCallId();
    if (hasPageToken()) id = normalizeCallId(claimsOf(await accessToken({ room: 'calls' }))?.sub);
    let token;
    try {
      token = await accessToken({ room: 'calls', identity: id ?? 'caller', name });
    } catch (err) {
      if (!(err instanceof AccessError)) throw err;
      ui.el.idHint.textContent = err.message;
      ui.showError(err.message);
      return;
    }
    const msg = { type: 'register', token };
    if (name) msg.name = name;
    if (id) msg.callId = id;
    this.send(msg);
  }

  #onRegistered(id) {
    clearTimeout(this.retryTimer);
    this.takenSince = null;
    this.myId = id;
    this.lastId = id;
    storeId(id);
    ui.el.myCallId.textContent = id;
    ui.el.copyId.disabled = false;
    ui.el.copyCallLink.disabled = false;
    ui.el.idHint.textContent = 'Give this ID to people so they can call you. It stays the same in this browser.';
    window.sfu.callId = id;
    this.onRegistered(id);
  }

  #onTaken() {
    // A reload or reconnect can beat the server noticing our old connection
    // has gone; another tab may also hold it. Retry for a while.
    this.takenSince ??= Date.now();
    if (Date.now() - this.takenSince < TAKEN_RETRY_FOR_MS) {
      ui.el.idHint.textContent = 'Reclaiming your call ID…';
      this.retryTimer = setTimeout(() => this.#register(storedId() ?? this.lastId), TAKEN_RETRY_EVERY_MS);
      return;
    }
    if (this.state === 'active') {
      // Our ID is held elsewhere, so the call cannot be rejoined from here.
      this.#end('The call ended: your call ID is in use in another tab or window.');
    }
    ui.el.idHint.textContent = 'Your call ID is in use in another tab or window.';
    ui.showError('Your call ID is in use in another tab or window, so calls ring there.', {
      label: 'Get a new ID here',
      run: () => {
        storeId(null);
        this.takenSince = null;
        this.#register(null);
      },
    });
  }

  #endText(reason) {
    const name = this.call?.name ?? 'The other person';
    const mine = this.endedByMe;
    const caller = this.state === 'calling';
    switch (reason) {
      case 'declined':
        return mine ? null : `${name} declined the call.`;
      case 'cancelled':
        return mine ? null : `Missed call from ${name}.`;
      case 'timeout':
        return caller ? `${name} did not answer.` : `Missed call from ${name}.`;
      case 'busy':
        return `${name} is busy in another call. Try again later.`;
      case 'hangup':
        return mine ? null : `${name} hung up.`;
      case 'disconnected':
        return `The call ended: ${name}'s connection was lost.`;
      default:
        return 'The call ended.';
    }
  }

  #end(text) {
    const wasActive = this.state === 'active';
    this.state = 'idle';
    this.call = null;
    this.endedByMe = false;
    ui.hideIncoming();
    ui.hideOutgoing();
    ui.setBusy(ui.el.callButton, false, 'Call');
    document.title = 'SFU call';
    this.onEnded(text, wasActive);
  }
}
