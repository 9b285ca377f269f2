// Cameras and microphones: getting local media with errors a person
// understands, falling back to what is available, remembering the chosen
// devices, and filling the device pickers.

import { simulcastWanted } from './call.js';

const CAMERA_KEY = 'sfu.cameraId';
const MIC_KEY = 'sfu.micId';

/**
 * Video constraints: 640x360 is plenty for a tile and light on CPU. With
 * simulcast, 1280x720, so that the three encodings (call.js) are 320x180,
 * 640x360 and 1280x720: the SFU forwards each viewer the one its tile
 * needs, and the publisher stops encoding the ones nobody receives.
 */
function videoConstraints(deviceId) {
  const [width, height] = simulcastWanted() ? [1280, 720] : [640, 360];
  return {
    width: { ideal: width },
    height: { ideal: height },
    frameRate: { ideal: 24, max: 30 },
    ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
  };
}

function audioConstraints(deviceId) {
  return deviceId ? { deviceId: { exact: deviceId } } : true;
}

function stored(key) {
  try {
    return localStorage.getItem(key) || null;
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}

/** A sentence for a getUserMedia / getDisplayMedia failure. */
export function describeMediaError(err, what = 'camera or microphone') {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `Access to your ${what} is blocked. Allow it in your browser's site settings and try again.`;
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return `Your ${what} is in use by another application, or failed to start. Close the other application and try again.`;
    case 'NotFoundError':
    case 'DevicesNotFoundError':
      return `No ${what} was found. Plug one in and try again.`;
    case 'OverconstrainedError':
      return `The selected ${what} is not available any more. Pick another one.`;
    default:
      return `Your ${what} could not be started (${err?.name ?? 'error'}: ${err?.message ?? err}).`;
  }
}

async function tryGet(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints) };
  } catch (err) {
    return { error: err };
  }
}

/**
 * The microphone and camera, or whichever of them works. Returns
 * `{ stream, warning }`: `stream` may be null (receive only); `warning`
 * explains what is missing.
 */
export async function getLocalMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return {
      stream: null,
      warning: 'Camera and microphone need a secure connection (HTTPS, or localhost). You can watch and listen, but not send.',
    };
  }
  const cam = stored(CAMERA_KEY);
  const mic = stored(MIC_KEY);
  let both = await tryGet({ audio: audioConstraints(mic), video: videoConstraints(cam) });
  if (both.error?.name === 'OverconstrainedError') {
    // A remembered device is gone: use the defaults.
    both = await tryGet({ audio: true, video: videoConstraints(null) });
  }
  if (both.stream) return { stream: both.stream, warning: null };
  const audio = await tryGet({ audio: audioConstraints(null) });
  if (audio.stream) {
    return {
      stream: audio.stream,
      warning: `${describeMediaError(both.error, 'camera')} Joining with your microphone only.`,
    };
  }
  const video = await tryGet({ video: videoConstraints(null) });
  if (video.stream) {
    return {
      stream: video.stream,
      warning: `${describeMediaError(audio.error, 'microphone')} Joining with your camera only.`,
    };
  }
  return {
    stream: null,
    warning: `${describeMediaError(both.error)} You can watch and listen, but not send.`,
  };
}

/** A new camera track from `deviceId` (or the remembered one). */
export async function getCameraTrack(deviceId = stored(CAMERA_KEY)) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(deviceId) });
  return stream.getVideoTracks()[0];
}

/** A new microphone track from `deviceId`. */
export async function getMicTrack(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(deviceId) });
  return stream.getAudioTracks()[0];
}

/** Remembers the chosen device of `kind` (`videoinput` / `audioinput`). */
export function rememberDevice(kind, deviceId) {
  store(kind === 'videoinput' ? CAMERA_KEY : MIC_KEY, deviceId);
}

/**
 * Fills `select` with the devices of `kind`, selecting the one `track`
 * comes from. Labels are textContent; a nameless device gets a number.
 */
export async function fillPicker(select, kind, track) {
  let devices = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind);
  } catch (err) {
    console.warn('enumerateDevices failed', err);
  }
  const current = track?.getSettings?.().deviceId ?? null;
  select.replaceChildren();
  devices.forEach((d, i) => {
    const option = document.createElement('option');
    option.value = d.deviceId;
    option.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
    option.selected = d.deviceId === current;
    select.append(option);
  });
  select.disabled = devices.length === 0 || !track;
}
