// Entry point: wires the join form, the signaling socket, the call and the
// UI together, and exposes the session state as `window.sfu` for tests.

import { Signaling, signalingUrl } from './signaling.js';
import { Call } from './call.js';
import * as ui from './ui.js';

const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const LEAVE_GRACE_MS = 1000;
/** Close code the server uses when an administrator removes a participant. */
const CLOSE_REMOVED = 4001;

/** Session state, read by the browser tests. */
const sfu = { pc: null, peerId: null, participants: new Map() };
window.sfu = sfu;

let session = null; // the current join attempt or call, see join()

init();

function init() {
  const params = new URLSearchParams(window.location.search);
  const room = params.get('room');
  if (room) ui.el.roomInput.value = room;
  ui.el.nameInput.value = loadName();
  (room ? ui.el.nameInput : ui.el.roomInput).focus();

  ui.el.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    join(ui.el.roomInput.value.trim(), ui.el.nameInput.value.trim());
  });
  ui.el.leave.addEventListener('click', () => leave());
  ui.el.copyLink.addEventListener('click', () => copyLink());
  window.addEventListener('pagehide', () => session?.signaling?.close());
}

async function join(room, name) {
  if (session) return;
  ui.clearError();
  if (!ROOM_RE.test(room)) {
    ui.showError('Room names are 1–64 characters: letters, digits, "_", "." or "-".');
    return;
  }
  const nameLength = [...name].length;
  if (nameLength < 1 || nameLength > 64) {
    ui.showError('Your name must be 1–64 characters.');
    return;
  }
  saveName(name);
  ui.setJoining(true);

  const s = {
    room, name, signaling: null, call: null, localStream: null,
    joined: false, leaving: false, mediaState: 'new',
    unknownStreams: new Map(), // stream id -> MediaStream not (yet) matched to a participant
  };
  session = s;

  ui.setStatus('Asking for camera and microphone…');
  s.localStream = await getLocalMedia();
  if (session !== s) return;

  ui.setStatus('Connecting to the server…');
  s.signaling = new Signaling(signalingUrl(), {
    onMessage: (msg) => onMessage(s, msg),
    onClose: (info) => onSocketClosed(s, info),
  });
  try {
    await s.signaling.open();
  } catch (err) {
    ui.showError(`Cannot reach the signaling server: ${err.message}`);
    teardown(s, 'Not connected');
    return;
  }
  s.signaling.send({ type: 'join', room, name });
}

/** The display name last used in this browser, if storage is available. */
function loadName() {
  try {
    return localStorage.getItem('sfu.name') ?? '';
  } catch {
    return '';
  }
}

function saveName(name) {
  try {
    localStorage.setItem('sfu.name', name);
  } catch {
    // storage disabled: nothing to remember
  }
}

async function getLocalMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    ui.showError('Camera and microphone need a secure context (HTTPS, or localhost). Joining receive-only.');
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (err) {
    ui.showError(`Camera/microphone unavailable (${err.name}: ${err.message}). Joining receive-only.`);
    return null;
  }
}

function onMessage(s, msg) {
  if (session !== s) {
    // After Leave the UI is already back at the form; `left` ends the socket.
    if (msg.type === 'left') s.signaling.close();
    return;
  }
  switch (msg.type) {
    case 'joined':
      onJoined(s, msg);
      break;
    case 'offer':
    case 'answer':
    case 'candidate':
      if (s.call) s.call.handle(msg);
      else console.warn(`ignoring ${msg.type} before joined`);
      break;
    case 'participantJoined': {
      addParticipant(msg.peerId, msg.name, []);
      const early = s.unknownStreams.get(msg.peerId);
      if (early) ui.attachStream(msg.peerId, early);
      s.unknownStreams.delete(msg.peerId);
      updateStatus(s);
      break;
    }
    case 'participantLeft':
      s.unknownStreams.delete(msg.peerId);
      sfu.participants.delete(msg.peerId);
      ui.removeTile(msg.peerId);
      updateStatus(s);
      break;
    case 'trackPublished': {
      const p = sfu.participants.get(msg.peerId);
      if (p && !p.tracks.some((t) => t.trackId === msg.trackId)) {
        p.tracks.push({ trackId: msg.trackId, kind: msg.kind });
      }
      break;
    }
    case 'trackUnpublished': {
      const p = sfu.participants.get(msg.peerId);
      if (p) p.tracks = p.tracks.filter((t) => t.trackId !== msg.trackId);
      break;
    }
    case 'left':
      s.signaling.close();
      teardown(s, 'Left the room');
      break;
    case 'pong':
      break;
    case 'error':
      onServerError(s, msg);
      break;
    default:
      console.warn('unknown server message', msg);
  }
}

function onJoined(s, msg) {
  s.joined = true;
  sfu.peerId = msg.peerId;
  sfu.participants.clear();
  for (const p of msg.participants ?? []) addParticipant(p.peerId, p.name, p.tracks ?? []);

  s.call = new Call({
    iceServers: msg.iceServers ?? [],
    localStream: s.localStream,
    send: (m) => s.signaling.send(m),
    onRemoteTrack: (peerId, track, stream) => {
      if (sfu.participants.has(peerId)) {
        ui.attachStream(peerId, stream);
      } else {
        // Shown once `participantJoined` names it; never, if no one does.
        console.warn(`${track.kind} track for unknown participant ${peerId}`);
        s.unknownStreams.set(peerId, stream);
      }
    },
    onConnectionState: (state) => onConnectionState(s, state),
    onError: (text) => ui.showError(text),
  });
  sfu.pc = s.call.pc;

  ui.setLocalStream(s.localStream);
  ui.showCallView(msg.room ?? s.room, s.name);
  const url = `${window.location.pathname}?room=${encodeURIComponent(s.room)}`;
  window.history.replaceState(null, '', url);
  updateStatus(s);
  s.call.start();
}

function addParticipant(peerId, name, tracks) {
  sfu.participants.set(peerId, { name, tracks: [...tracks] });
  ui.ensureTile(peerId, name);
}

function onServerError(s, msg) {
  const text = `Server error${msg.code ? ` (${msg.code})` : ''}: ${msg.message ?? 'unknown'}`;
  ui.showError(text);
  if (!s.joined) {
    // The join itself was refused (bad room or name, …): back to the form.
    s.signaling.close();
    teardown(s, 'Not connected');
  }
}

function onSocketClosed(s, { code, reason, expected }) {
  if (session !== s) return;
  if (!expected) {
    const why = reason ? `: ${reason}` : '';
    let text = `Connection to the server was closed (code ${code}${why}).`;
    if (code === CLOSE_REMOVED) text = 'You were removed from the call by an administrator.';
    if (s.joined && (s.mediaState === 'connecting' || s.mediaState === 'failed')) {
      text += " Media never connected: check that the server's UDP media port is reachable.";
    }
    ui.showError(text);
  }
  teardown(s, expected ? 'Left the room' : 'Disconnected');
}

function onConnectionState(s, state) {
  if (state === 'failed') {
    ui.showError(
      "Media connection failed: ICE could not reach the server's UDP port. " +
        'Check that the UDP media port is open and that the server advertises the right --public-ip.',
    );
  }
  s.mediaState = state;
  updateStatus(s);
}

function updateStatus(s) {
  if (session !== s || !s.joined) return;
  const others = sfu.participants.size;
  const people = others === 1 ? '1 other participant' : `${others} other participants`;
  const media = s.mediaState;
  ui.setStatus(`In room "${s.room}" as ${s.name} · ${people} · media: ${media}`);
}

function leave() {
  const s = session;
  if (!s || s.leaving) return;
  s.leaving = true;
  if (s.signaling.send({ type: 'leave' })) {
    // Close the socket once the server confirms with `left`, or soon anyway.
    setTimeout(() => s.signaling.close(), LEAVE_GRACE_MS);
  } else {
    s.signaling.close();
  }
  teardown(s, 'Left the room');
}

/** Releases everything a session holds and goes back to the join form. */
function teardown(s, status) {
  if (session === s) session = null;
  s.call?.close();
  for (const track of s.localStream?.getTracks() ?? []) track.stop();
  s.localStream = null;
  sfu.pc = null;
  sfu.peerId = null;
  sfu.participants.clear();
  ui.clearRemoteTiles();
  ui.setLocalStream(null);
  ui.showJoinView();
  ui.setStatus(status);
}

async function copyLink() {
  const url = window.location.href;
  let ok = false;
  try {
    await navigator.clipboard.writeText(url);
    ok = true;
  } catch {
    const input = document.createElement('textarea');
    input.value = url;
    document.body.append(input);
    input.select();
    ok = document.execCommand('copy');
    input.remove();
  }
  ui.el.copyLink.textContent = ok ? 'Copied!' : 'Copy failed';
  setTimeout(() => (ui.el.copyLink.textContent = 'Copy link'), 2000);
  if (!ok) window.prompt('Copy this link:', url);
}
