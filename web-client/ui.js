// The page's fixed parts: element lookups, home vs. call view, the status
// line, the connection badge, the error and notice banners, the ringing
// banners, the side panel (people / chat) and the toolbar buttons. All text
// is set with textContent.

import { icon, setIcon } from './icons.js';

const $ = (id) => document.getElementById(id);

export const el = {
  homeView: $('home-view'),
  callView: $('call-view'),
  nameInput: $('name'),
  myCallId: $('my-call-id'),
  copyId: $('copy-id'),
  copyCallLink: $('copy-call-link'),
  idHint: $('id-hint'),
  dialForm: $('dial-form'),
  calleeInput: $('callee-id'),
  callButton: $('call-button'),
  joinForm: $('join-form'),
  joinButton: $('join'),
  roomInput: $('room'),
  callControls: $('call-controls'),
  roomTitle: $('room-title'),
  copyLink: $('copy-link'),
  connState: $('conn-state'),
  grid: $('grid'),
  callState: $('call-state'),
  sidePanel: $('side-panel'),
  panelTitle: $('panel-title'),
  panelClose: $('panel-close'),
  peoplePanel: $('people-panel'),
  peopleList: $('people-list'),
  peopleCount: $('people-count'),
  chatPanel: $('chat-panel'),
  chatLog: $('chat-log'),
  chatForm: $('chat-form'),
  chatInput: $('chat-input'),
  chatSend: $('chat-send'),
  chatCounter: $('chat-counter'),
  chatBadge: $('chat-badge'),
  devicesPanel: $('devices-panel'),
  cameraSelect: $('camera-select'),
  micSelect: $('mic-select'),
  micToggle: $('mic-toggle'),
  camToggle: $('cam-toggle'),
  screenToggle: $('screen-toggle'),
  chatToggle: $('chat-toggle'),
  peopleToggle: $('people-toggle'),
  devicesToggle: $('devices-toggle'),
  leave: $('leave'),
  status: $('status'),
  error: $('error'),
  errorText: $('error-text'),
  errorAction: $('error-action'),
  errorClose: $('error-close'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $('notice-close'),
  incoming: $('incoming'),
  incomingText: $('incoming-text'),
  answer: $('answer'),
  decline: $('decline'),
  outgoing: $('outgoing'),
  outgoingText: $('outgoing-text'),
  cancelCall: $('cancel-call'),
};

const TOOL_ICONS = {
  'mic-toggle': 'mic', 'cam-toggle': 'camera', 'screen-toggle': 'screen', 'chat-toggle': 'chat',
  'people-toggle': 'people', 'devices-toggle': 'settings', leave: 'hangup',
};
for (const [id, name] of Object.entries(TOOL_ICONS)) $(id).prepend(icon(name));
$('incoming-icon').append(icon('phone'));
$('outgoing-icon').append(icon('phone'));

let errorAction = null;
let noticeTimer = null;

el.errorClose.addEventListener('click', () => clearError());
el.noticeClose.addEventListener('click', () => (el.notice.hidden = true));
el.errorAction.addEventListener('click', () => {
  const action = errorAction;
  clearError();
  action?.run();
});

export function setStatus(text) {
  el.status.textContent = text;
}

/**
 * The banner over the video saying what the call waits for (`Reconnecting…`),
 * or nothing (null). `kind` (signaling / media / peer) is for styling and tests.
 */
export function setCallState(text, kind = '') {
  el.callState.hidden = !text;
  el.callState.textContent = text ?? '';
  el.callState.dataset.kind = text ? kind : '';
}

/** The server connection badge: connecting / online / offline. */
export function setConnection(state, text) {
  el.connState.dataset.state = state;
  el.connState.textContent = text;
}

/** An error banner; `action` ({ label, run }) adds a button. */
export function showError(text, action = null) {
  console.error('error shown:', text);
  el.errorText.textContent = text;
  errorAction = action;
  el.errorAction.hidden = !action;
  if (action) el.errorAction.textContent = action.label;
  el.error.hidden = false;
}

export function clearError() {
  el.errorText.textContent = '';
  el.error.hidden = true;
  errorAction = null;
}

/** A passing message, hidden after `ms` (0 keeps it). */
export function showNotice(text, ms = 6000) {
  el.noticeText.textContent = text;
  el.notice.hidden = false;
  clearTimeout(noticeTimer);
  if (ms > 0) noticeTimer = setTimeout(() => (el.notice.hidden = true), ms);
}

export function hideNotice() {
  el.notice.hidden = true;
}

export function showIncoming(text) {
  el.incomingText.textContent = text;
  el.incoming.hidden = false;
  el.answer.disabled = false;
  el.decline.disabled = false;
  el.answer.focus();
}

export function hideIncoming() {
  el.incoming.hidden = true;
}

export function showOutgoing(text) {
  el.outgoingText.textContent = text;
  el.outgoing.hidden = false;
  el.cancelCall.disabled = false;
}

export function hideOutgoing() {
  el.outgoing.hidden = true;
}

export function showHome() {
  el.callView.hidden = true;
  el.callControls.hidden = true;
  el.homeView.hidden = false;
  document.body.classList.remove('in-call');
  setBusy(el.joinButton, false, 'Join');
  setBusy(el.callButton, false, 'Call');
}

/** The call view for a room (`title`), or a 1:1 call (`copyable` false). */
export function showCallView(title, { copyable }) {
  el.roomTitle.textContent = title;
  el.copyLink.hidden = !copyable;
  el.homeView.hidden = true;
  el.callView.hidden = false;
  el.callControls.hidden = false;
  document.body.classList.add('in-call');
}

export function setBusy(button, busy, idleText, busyText = `${idleText}…`) {
  button.disabled = busy;
  button.textContent = busy ? busyText : idleText;
}

/** A toolbar toggle: pressed state, icon and label. */
export function setTool(button, { pressed, iconName, label, disabled = false }) {
  button.setAttribute('aria-pressed', String(pressed));
  button.classList.toggle('active', pressed);
  button.disabled = disabled;
  setIcon(button, iconName);
  button.querySelector('.tool-label').textContent = label;
  button.title = label;
}

/** Opens the side panel on `which` (people / chat), or closes it (null). */
export function setPanel(which) {
  el.sidePanel.hidden = !which;
  el.peoplePanel.hidden = which !== 'people';
  el.chatPanel.hidden = which !== 'chat';
  el.panelTitle.textContent = which === 'people' ? 'People' : 'Chat';
  el.chatToggle.classList.toggle('active', which === 'chat');
  el.chatToggle.setAttribute('aria-pressed', String(which === 'chat'));
  el.peopleToggle.classList.toggle('active', which === 'people');
  el.peopleToggle.setAttribute('aria-pressed', String(which === 'people'));
  if (which === 'chat') el.chatInput.focus({ preventScroll: true });
}

/** The participant list: `[{ name, you, micMuted, cameraOff, screen }]`. */
export function renderPeople(people) {
  el.peopleCount.textContent = String(people.length);
  el.peopleList.replaceChildren(
    ...people.map((p) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'person-name';
      name.textContent = p.you ? `${p.name} (you)` : p.name;
      const state = document.createElement('span');
      state.className = 'person-state';
      if (p.screen) state.append(badge('screen', 'Sharing screen'));
      if (p.cameraOff) state.append(badge('cameraOff', 'Camera off'));
      if (p.micMuted) state.append(badge('micOff', 'Muted'));
      li.append(name, state);
      return li;
    }),
  );
}

function badge(iconName, text) {
  const span = document.createElement('span');
  span.className = 'state-badge';
  span.title = text;
  span.setAttribute('aria-label', text);
  span.append(icon(iconName));
  return span;
}

/** Copies `text`; returns whether it worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const input = document.createElement('textarea');
    input.value = text;
    document.body.append(input);
    input.select();
    const ok = document.execCommand('copy');
    input.remove();
    return ok;
  }
}

/** Copies `text` and says so on `button` for 2 s. */
export async function copyWithFeedback(button, text) {
  button.dataset.label ??= button.textContent;
  const ok = await copyText(text);
  button.textContent = ok ? 'Copied!' : 'Copy failed';
  clearTimeout(Number(button.dataset.timer));
  button.dataset.timer = String(setTimeout(() => (button.textContent = button.dataset.label), 2000));
  if (!ok) window.prompt('Copy this:', text);
}
