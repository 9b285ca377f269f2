// DOM of the client: join form vs. call view, the local and remote video
// tiles, the status line and the error banner.

const $ = (id) => document.getElementById(id);

export const el = {
  joinView: $('join-view'),
  joinForm: $('join-form'),
  joinButton: $('join'),
  roomInput: $('room'),
  nameInput: $('name'),
  callView: $('call-view'),
  callControls: $('call-controls'),
  roomLabel: $('room-label'),
  copyLink: $('copy-link'),
  leave: $('leave'),
  grid: $('grid'),
  localTile: $('local-tile'),
  localVideo: $('local-video'),
  localName: $('local-name'),
  status: $('status'),
  error: $('error'),
  errorText: $('error-text'),
  errorClose: $('error-close'),
};

el.errorClose.addEventListener('click', () => clearError());

export function setStatus(text) {
  el.status.textContent = text;
}

export function showError(text) {
  console.error('error shown:', text);
  el.errorText.textContent = text;
  el.error.hidden = false;
}

export function clearError() {
  el.errorText.textContent = '';
  el.error.hidden = true;
}

export function setJoining(busy) {
  el.joinButton.disabled = busy;
  el.joinButton.textContent = busy ? 'Joining…' : 'Join';
}

export function showJoinView() {
  el.callView.hidden = true;
  el.callControls.hidden = true;
  el.joinView.hidden = false;
  setJoining(false);
}

export function showCallView(room, name) {
  el.roomLabel.textContent = room;
  el.localName.textContent = `${name} (you)`;
  el.localTile.querySelector('.placeholder').textContent = initial(name);
  el.joinView.hidden = true;
  el.callView.hidden = false;
  el.callControls.hidden = false;
}

export function setLocalStream(stream) {
  el.localVideo.srcObject = stream;
  const hasVideo = !!stream && stream.getVideoTracks().length > 0;
  el.localTile.classList.toggle('no-video', !hasVideo);
}

/** Finds or creates the tile of a remote participant. */
export function ensureTile(peerId, name) {
  let tile = findTile(peerId);
  if (!tile) {
    tile = document.createElement('figure');
    tile.className = 'tile remote no-video';
    tile.dataset.peerId = peerId;

    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute('playsinline', '');

    const placeholder = document.createElement('div');
    placeholder.className = 'placeholder';
    placeholder.setAttribute('aria-hidden', 'true');

    const label = document.createElement('figcaption');
    label.className = 'name';

    tile.append(video, placeholder, label);
    el.grid.append(tile);
  }
  if (name !== undefined) setTileName(tile, name);
  return tile;
}

function setTileName(tile, name) {
  tile.querySelector('.name').textContent = name;
  tile.querySelector('.placeholder').textContent = initial(name);
}

/** Shows a remote participant's media stream in its tile. */
export function attachStream(peerId, stream) {
  const tile = ensureTile(peerId);
  const video = tile.querySelector('video');
  const refresh = () => tile.classList.toggle('no-video', stream.getVideoTracks().length === 0);
  if (video.srcObject !== stream) {
    video.srcObject = stream;
    stream.addEventListener('addtrack', refresh);
    stream.addEventListener('removetrack', refresh);
    play(tile, video);
  }
  refresh();
}

function play(tile, video) {
  video.play().catch((err) => {
    if (err.name !== 'NotAllowedError') return;
    // Autoplay with sound was refused: play muted and offer to unmute.
    video.muted = true;
    video.play().catch(() => {});
    if (tile.querySelector('.unmute')) return;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'unmute';
    button.textContent = 'Unmute';
    button.addEventListener('click', () => {
      video.muted = false;
      video.play().catch(() => {});
      button.remove();
    });
    tile.append(button);
  });
}

export function removeTile(peerId) {
  const tile = findTile(peerId);
  if (!tile) return;
  const video = tile.querySelector('video');
  video.srcObject = null;
  tile.remove();
}

export function clearRemoteTiles() {
  for (const tile of el.grid.querySelectorAll('.tile.remote')) {
    removeTile(tile.dataset.peerId);
  }
}

export function remoteTileCount() {
  return el.grid.querySelectorAll('.tile.remote').length;
}

function findTile(peerId) {
  for (const tile of el.grid.querySelectorAll('.tile.remote')) {
    if (tile.dataset.peerId === peerId) return tile;
  }
  return null;
}

function initial(name) {
  return (name ?? '').trim().charAt(0).toUpperCase() || '?';
}
