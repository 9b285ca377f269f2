// The in-call chat panel: the message log (every name and text is set with
// textContent, so markup shows exactly as typed and is never run), the input
// with its 4 KiB limit, join and leave notices, and the unread count on the
// chat button.

export const MAX_CHAT_BYTES = 4096;
const WARN_AT_BYTES = 3500;
const MAX_LOG_ENTRIES = 500;
const encoder = new TextEncoder();

export function chatBytes(text) {
  return encoder.encode(text).length;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export class Chat {
  /**
   * @param {object} el  `log`, `form`, `input`, `counter`, `send`, `badge`
   * @param {(text: string) => boolean} onSend  sends; false if it could not
   */
  constructor(el, onSend) {
    this.el = el;
    this.onSend = onSend;
    this.open = false;
    this.unread = 0;
    el.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#submit();
    });
    el.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.#submit();
      }
    });
    el.input.addEventListener('input', () => this.#updateCounter());
    this.#updateCounter();
  }

  /** A message: `name` and `text` are shown as plain text. */
  addMessage({ name, text, own = false, at = new Date() }) {
    const item = document.createElement('li');
    item.className = own ? 'message own' : 'message';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = own ? 'You' : name;
    const time = document.createElement('time');
    time.dateTime = at.toISOString();
    time.textContent = clock(at);
    meta.append(who, time);
    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;
    item.append(meta, body);
    this.#append(item);
    if (!own && !this.open) this.#setUnread(this.unread + 1);
  }

  /** A line from the app itself (joins, leaves, refusals). */
  addNotice(text, kind = 'notice') {
    const item = document.createElement('li');
    item.className = kind;
    item.textContent = text;
    this.#append(item);
  }

  setOpen(open) {
    this.open = open;
    if (open) {
      this.#setUnread(0);
      this.el.log.scrollTop = this.el.log.scrollHeight;
    }
  }

  clear() {
    this.el.log.replaceChildren();
    this.el.input.value = '';
    this.#updateCounter();
    this.#setUnread(0);
  }

  #append(item) {
    const log = this.el.log;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(item);
    while (log.children.length > MAX_LOG_ENTRIES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  #setUnread(n) {
    this.unread = n;
    this.el.badge.textContent = n > 99 ? '99+' : String(n);
    this.el.badge.hidden = n === 0;
  }

  #submit() {
    const text = this.el.input.value;
    if (!text.trim()) return;
    if (chatBytes(text) > MAX_CHAT_BYTES) {
      this.#updateCounter();
      return;
    }
    if (this.onSend(text)) {
      this.addMessage({ name: 'You', text, own: true });
      this.el.input.value = '';
      this.#updateCounter();
    } else {
      this.addNotice('Not sent: you are not connected.', 'notice error');
    }
  }

  #updateCounter() {
    const bytes = chatBytes(this.el.input.value);
    const over = bytes > MAX_CHAT_BYTES;
    this.el.counter.hidden = bytes < WARN_AT_BYTES;
    this.el.counter.textContent = over
      ? `Message too long: ${bytes} of ${MAX_CHAT_BYTES} bytes`
      : `${bytes} / ${MAX_CHAT_BYTES} bytes`;
    this.el.counter.classList.toggle('over', over);
    this.el.send.disabled = over || !this.el.input.value.trim();
  }
}
