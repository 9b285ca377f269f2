// Entry point: one signaling connection per page, the home screen (call ID,
// calling someone, joining a room), 1:1 calls (ringing.js) and room sessions
// (room.js), wired to the page, and what happens when the server cannot be
// reached: a clear message while it retries, and a room or answered call
// that stays on screen and is rejoined once the socket is back. Exposes
// state as `window.sfu` for tests.

import { forgetTokens, hasPageToken, mayPublish, NEEDS_TOKEN_TEXT } from './access.js';
import { Chat } from './chat.js';
import { getLocalMedia } from './devices.js';
import { Ringing } from './ringing.js';
import { isRoomMessage, RoomSession } from './room.js';
import { CLOSE_NO_ANSWER, Signaling, signalingUrl } from './signaling.js';
import { Grid } from './tiles.js';
import * as ui from './ui.js';

const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const NAME_KEY = 'sfu.name';
/** Close codes the server uses (docs/signaling.md). */
const CLOSE_REMOVED = 4001;
const CLOSE_MEDIA_FAILED = 1011;
const CLOSE_GOING_AWAY = 1001;
/** The access token was missing or refused: reconnecting would not help. */
const CLOSE_UNAUTHORIZED = 4003;
/** Closes after which the server has not kept our session for a `resume`. */
const NOT_RESUMABLE = [CLOSE_REMOVED, CLOSE_MEDIA_FAILED, CLOSE_GOING_AWAY];

/** Session state, read by the browser tests. */
const sfu = { pc: null, peerId: null, participants: new Map(), callId: null, room: null, quality: {} };
window.sfu = sfu;

const grid = new Grid(ui.el.grid);
const chat = new Chat(
  {
    log: ui.el.chatLog, form: ui.el.chatForm, input: ui.el.chatInput,
    counter: ui.el.chatCounter, send: ui.el.chatSend, badge: ui.el.chatBadge,
  },
  (text) => room?.sendChat(text) ?? false,
);
const conn = new Signaling(signalingUrl(), { onOpen, onMessage, onDown });
sfu.signaling = conn;
const ringing = new Ringing({
  send: (msg) => conn.send(msg),
  getName: () => ui.el.nameInput.value.trim(),
  onAnswered: (c) => startRoom({ room: c.room, kind: 'call', peerName: c.name }),
  onEnded: (text) => {
    if (room?.kind === 'call' || starting?.kind === 'call') endRoom();
    if (text) ui.showNotice(text, 10_000);
  },
  // Our call ID is ours again on the new socket: the call's room may be rejoined.
  onRegistered: () => {
    if (room?.kind === 'call' && room.state === 'reconnecting') room.rejoin();
  },
});

let room = null; // the RoomSession, while in a room or call
let starting = null; // a room being set up (waiting for camera and microphone)
let connectionProblem = false; // the error banner is about the connection
let panel = null; // the open side panel: people | chat | null
let refusedBecause = null; // the server's reason when it refused our access token
let devRetryAt = 0; // when a refused dev token was last retried with a fresh one

init();

function init() {
  const params = new URLSearchParams(window.location.search);
  ui.el.nameInput.value = loadName();
  const roomParam = params.get('room');
  if (roomParam) ui.el.roomInput.value = roomParam;
  const callParam = params.get('call');
  if (callParam) ui.el.calleeInput.value = callParam;
  (ui.el.nameInput.value ? (callParam ? ui.el.callButton : roomParam ? ui.el.joinButton : ui.el.calleeInput) : ui.el.nameInput).focus();

  ui.el.nameInput.addEventListener('change', () => {
    const name = ui.el.nameInput.value.trim();
    if (validName(name)) saveName(name);
    ringing.nameChanged();
  });
  ui.el.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    joinRoom(ui.el.roomInput.value.trim());
  });
  ui.el.dialForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!requireName()) return;
    ringing.dial(ui.el.calleeInput.value);
  });
  ui.el.answer.addEventListener('click', () => ringing.answer());
  ui.el.decline.addEventListener('click', () => ringing.decline());
  ui.el.cancelCall.addEventListener('click', () => ringing.cancel());
  ui.el.copyId.addEventListener('click', () => ui.copyWithFeedback(ui.el.copyId, sfu.callId ?? ''));
  ui.el.copyCallLink.addEventListener('click', () =>
    ui.copyWithFeedback(ui.el.copyCallLink, `${window.location.origin}/?call=${sfu.callId ?? ''}`),
  );
  ui.el.copyLink.addEventListener('click', () => ui.copyWithFeedback(ui.el.copyLink, window.location.href));
  ui.el.leave.addEventListener('click', () => leaveRoom());
  ui.el.micToggle.addEventListener('click', () => room?.toggleMic());
  ui.el.camToggle.addEventListener('click', () => room?.toggleCamera());
  ui.el.screenToggle.addEventListener('click', () => room?.toggleScreen());
  ui.el.chatToggle.addEventListener('click', () => togglePanel('chat'));
  ui.el.peopleToggle.addEventListener('click', () => togglePanel('people'));
  ui.el.panelClose.addEventListener('click', () => togglePanel(null));
  ui.el.devicesToggle.addEventListener('click', () => toggleDevices());
  ui.el.cameraSelect.addEventListener('change', () => room?.switchDevice('videoinput', ui.el.cameraSelect.value));
  ui.el.micSelect.addEventListener('change', () => room?.switchDevice('audioinput', ui.el.micSelect.value));
  window.addEventListener('pagehide', () => {
    // A closed tab hangs up at once, rather than leaving the other person
    // waiting out the server's rejoin grace period.
    ringing.leaving();
    conn.stop();
  });
  ui.setPanel(null);
  ui.setConnection('connecting', 'Connecting…');
  conn.start();
}

function onOpen({ reconnected }) {
  ui.setConnection('online', 'Online');
  conn.setUrgent(false);
  if (connectionProblem) {
    ui.clearError();
    connectionProblem = false;
    if (reconnected) ui.showNotice('Reconnected to the server.', 3000);
  }
  // A session the server may have kept is asked back first (`resume` must be
  // the first message); call ID and room follow from its answer.
  if (room?.canResume && room.resume()) return;
  afterOpen();
}

/** On a new socket without a session: register our call ID, then (re)join. */
function afterOpen() {
  ringing.onOpen(); // registers our call ID first: a call is rejoined once it is ours again
  if (room?.state === 'new') room.join();
  else if (room?.state === 'reconnecting' && room.kind === 'room') room.rejoin();
  else if (!room) ui.setStatus('Ready');
}

/** `resumed`: the server gave our session back, call ID included. */
function onResumed(msg) {
  ringing.onResumed();
  room?.onResumed(msg);
}

/** The session could not be resumed: start over on this socket. */
function onResumeFailed(msg) {
  console.info(`resume refused (${msg.code}): joining again`);
  room?.onResumeFailed();
  afterOpen();
}

function onDown({ code, wasOpen, retryInMs, attempt }) {
  ui.setConnection('offline', 'Offline');
  ringing.onDown(); // ends a ringing call; an answered one waits for the rejoin
  const secs = Math.max(1, Math.round(retryInMs / 1000));
  forgetTokens();
  // A dev server that restarted refuses the tokens of the old one: once in
  // a while, try again with fresh ones before giving up.
  const retryDev = code === CLOSE_UNAUTHORIZED && !hasPageToken() && Date.now() - devRetryAt > 30_000;
  if (retryDev) {
    devRetryAt = Date.now();
    room?.suspend({ keepMedia: false });
  } else if (code === CLOSE_UNAUTHORIZED) {
    conn.stop();
    endRoom();
    const why = refusedBecause ?? 'the server refused the access token';
    ui.showError(`Access denied: ${why}. ${NEEDS_TOKEN_TEXT}`);
    ui.setStatus('Access denied');
    sfu.accessDenied = why;
    return;
  }
  if (code === CLOSE_REMOVED) {
    // Removed by an administrator: not rejoined.
    endRoom();
    ui.showError('You were removed from the call by an administrator.');
    return;
  }
  if (room && room.state !== 'new') {
    if (room.kind === 'call' && !ringing.inCall) {
      endRoom();
    } else {
      // The server keeps our session a few seconds for a `resume` unless it
      // closed the socket on purpose; failing that, the room (or the call,
      // for a few seconds more) waits for us to rejoin.
      room.suspend({ keepMedia: !NOT_RESUMABLE.includes(code), networkChanged: code === CLOSE_NO_ANSWER });
      conn.setUrgent(true);
    }
  }
  const host = window.location.host;
  const retry = { label: 'Retry now', run: () => conn.retryNow() };
  if (code === CLOSE_MEDIA_FAILED) {
    ui.showError('Your media connection failed, so the server ended the session. Reconnecting…');
  } else if (wasOpen) {
    const what = room?.state === 'reconnecting' ? (room.kind === 'call' ? ' and rejoining the call' : ' and rejoining the room') : '';
    ui.showError(`Connection to the server lost. Reconnecting${what}…`);
  } else if (!conn.everOpened || attempt >= 3) {
    // The server cannot be reached at all: say so plainly, with the address.
    const again = conn.everOpened ? 'Still cannot' : 'Cannot';
    ui.showError(`${again} reach the server at ${host}. Retrying in ${secs} s (attempt ${attempt})…`, retry);
  }
  connectionProblem = true;
  ui.setStatus(room?.state === 'reconnecting' ? 'Reconnecting…' : `Offline · retrying in ${secs} s`);
}

/**
 * `redirect` (cluster): the room lives on another node, or this node is
 * draining. The socket moves there and the room is joined again with the
 * routing token (onOpen → afterOpen).
 */
function onRedirect(msg) {
  console.info(`signaling: redirected to node ${msg.node} (${msg.reason})`);
  if (!room || room.room !== msg.room) return;
  room.redirected(msg.routingToken);
  if (msg.reason === 'drain') ui.showNotice('Moving your call to another server…', 5000);
  conn.switchTo(msg.url);
}

function onMessage(msg) {
  if (msg.type === 'joined' && msg.nodes) conn.setNodes(msg.nodes);
  if (isRoomMessage(msg.type)) {
    room?.handle(msg);
    return;
  }
  switch (msg.type) {
    case 'registered':
    case 'calling':
    case 'ring':
    case 'callAccepted':
    case 'callEnded':
    case 'missedCall':
      ringing.handle(msg);
      break;
    case 'resumed':
      onResumed(msg);
      break;
    case 'redirect':
      onRedirect(msg);
      break;
    case 'migrate':
      // The server is draining: calls go on until it closes the socket
      // (1001), and then the room is joined again where the server is.
      ui.showNotice('The server is restarting. Your call goes on for now; you will be reconnected.', 10_000);
      break;
    case 'error':
      if (msg.code === 'unauthorized') refusedBecause = msg.message;
      // (A server that does not know `resume` cannot name the request.)
      if (msg.request === 'resume' || (room?.state === 'resuming' && !msg.request)) onResumeFailed(msg);
      else onServerError(msg);
      break;
    case 'pong':
      break;
    default:
      console.warn('unknown server message', msg);
  }
}

function onServerError(msg) {
  const callRequests = ['register', 'call', 'accept', 'decline', 'cancel', 'hangup'];
  if (callRequests.includes(msg.request)) return ringing.onError(msg);
  if (msg.request && room) return room.onError(msg);
  if (msg.code === 'kicked') {
    ui.showError('You were removed from the call by an administrator.');
    return;
  }
  if (msg.code === 'media_failed') return; // the close that follows explains it
  ui.showError(`Server error (${msg.code}): ${msg.message}`);
}

function validName(name) {
  const n = [...name].length;
  return n >= 1 && n <= 64;
}

function requireName() {
  const name = ui.el.nameInput.value.trim();
  if (validName(name)) return true;
  ui.showError('Enter your name first (1–64 characters): others see it.');
  ui.el.nameInput.focus();
  return false;
}

function joinRoom(name) {
  if (room || starting) return;
  ui.clearError();
  if (!ROOM_RE.test(name)) {
    ui.showError('Room names are 1–64 characters: letters, digits, "_", "." or "-".');
    return;
  }
  if (!requireName()) return;
  startRoom({ room: name, kind: 'room' });
}

async function startRoom({ room: roomName, kind, peerName = null }) {
  endRoom();
  const name = ui.el.nameInput.value.trim() || 'Guest';
  if (validName(name)) saveName(name);
  if (kind === 'room') ui.setBusy(ui.el.joinButton, true, 'Join', 'Joining…');
  ui.setStatus('Starting your camera and microphone…');
  const token = { kind };
  starting = token;
  // A token that may not publish: watch and listen only, no camera asked for.
  const { stream, warning } = mayPublish()
    ? await getLocalMedia()
    : { stream: null, warning: 'Your access token lets you watch and listen, but not send audio or video.' };
  if (starting !== token) {
    // Cancelled meanwhile (the call ended, or another started).
    stream?.getTracks().forEach((t) => t.stop());
    return;
  }
  starting = null;
  if (warning) ui.showError(warning);
  room = new RoomSession({
    send: (m) => conn.send(m), probe: () => conn.probe(), room: roomName, name, kind, peerName, stream, grid, chat,
    onJoinFailed: (text) => {
      room = null;
      showHome();
      // A call that cannot be (re)joined is over.
      if (kind === 'call') ringing.abandon(text);
      else ui.showError(text);
    },
  });
  chat.clear();
  ui.showCallView(kind === 'call' ? `Call with ${peerName}` : `Room ${roomName}`, { copyable: kind === 'room' });
  if (kind === 'room') setQuery({ room: roomName });
  if (conn.connected) room.join();
  else ui.setStatus('Connecting to the server…');
}

/** The Leave / Hang up button. */
function leaveRoom() {
  if (!room) return;
  if (room.kind === 'call') ringing.hangup(); // ends the room too, via onEnded
  endRoom();
  ui.setStatus('Left');
}

/** Leaves the current room (if any) and shows the home screen. */
function endRoom() {
  starting = null;
  const r = room;
  room = null;
  r?.leave();
  showHome();
}

function showHome() {
  togglePanel(null);
  ui.el.devicesPanel.hidden = true;
  ui.showHome();
  if (window.location.search.includes('room=')) setQuery({});
  if (conn.connected) ui.setStatus('Ready');
}

/** Shows `params` in the address bar, keeping the page's access token (a reload needs it). */
function setQuery(params) {
  const query = new URLSearchParams(params);
  const token = new URLSearchParams(window.location.search).get('token');
  if (token) query.set('token', token);
  const text = query.toString();
  window.history.replaceState(null, '', `${window.location.pathname}${text ? `?${text}` : ''}`);
}

function togglePanel(which) {
  panel = which && which !== panel ? which : null;
  ui.setPanel(panel);
  chat.setOpen(panel === 'chat');
  grid.layout();
}

function toggleDevices() {
  const open = ui.el.devicesPanel.hidden;
  ui.el.devicesPanel.hidden = !open;
  ui.el.devicesToggle.classList.toggle('active', open);
  ui.el.devicesToggle.setAttribute('aria-pressed', String(open));
  if (open) room?.fillDevicePickers?.();
}

function loadName() {
  try {
    return localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

function saveName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // storage disabled: nothing to remember
  }
}
