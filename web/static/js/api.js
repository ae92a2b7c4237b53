// api.js: the dashboard's one door to the gateway. It holds the JWT session, a fetch wrapper
// that turns every failure into an ApiError carrying the API's {"error":{code,message}}, and
// an SSE parser for POST streams (EventSource cannot POST, so the test console reads the
// fetch body stream itself).
//
// Nothing here touches the DOM, so Node can import this module to test the parser.

const TOKEN_KEY = 'agentgate.token';
const USER_KEY = 'agentgate.user';

function storage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage disabled by the browser
  }
}

/** session keeps the JWT in sessionStorage: it lives as long as the tab. */
export const session = {
  get token() {
    return storage()?.getItem(TOKEN_KEY) ?? null;
  },
  get user() {
    try {
      return JSON.parse(storage()?.getItem(USER_KEY) ?? 'null');
    } catch {
      return null;
    }
  },
  set(token, user) {
    storage()?.setItem(TOKEN_KEY, token);
    storage()?.setItem(USER_KEY, JSON.stringify(user ?? null));
  },
  clear() {
    storage()?.removeItem(TOKEN_KEY);
    storage()?.removeItem(USER_KEY);
  },
};

/** ApiError is any failed call: status 0 means the gateway could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }
}

let unauthorized = () => {};

/** onUnauthorized sets what happens when a signed-in call answers 401 (the session is gone). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** errorFrom reads the API's error document from a failed response, whatever its shape. */
export async function errorFrom(res) {
  let code = `HTTP_${res.status}`;
  let message = `The gateway answered ${res.status}${res.statusText ? ' ' + res.statusText : ''}.`;
  let field;
  try {
    const body = JSON.parse(await res.text());
    if (body && typeof body.error === 'object' && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field;
    }
  } catch {
    // not JSON (a proxy page, a static file server): keep the generic message
  }
  return new ApiError(res.status, code, message, field);
}

function authHeaders(extra) {
  const headers = { ...extra };
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function send(method, path, body, { signal, headers = {}, auth = true } = {}) {
  const h = { Accept: 'application/json', ...(auth ? authHeaders(headers) : headers) };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK_ERROR', `Cannot reach the gateway (${err?.message ?? err}).`);
  }
  if (res.status === 401 && auth && h.Authorization) {
    session.clear();
    unauthorized();
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', 'The gateway sent an answer that is not JSON.');
  }
}

/** api calls the JSON API; every method resolves to the parsed body or rejects with ApiError. */
export const api = {
  get: (path, opts) => send('GET', path, undefined, opts),
  post: (path, body, opts) => send('POST', path, body ?? {}, opts),
  patch: (path, body, opts) => send('PATCH', path, body, opts),
  del: (path, opts) => send('DELETE', path, undefined, opts),
};

/** qs builds a query string from the defined, non-empty values of params. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * SSEParser implements the event-stream parsing rules of the HTML standard: lines end in
 * CRLF, LF or CR; "data" lines are joined with "\n"; a blank line dispatches; lines starting
 * with ":" are comments; a leading BOM is dropped; an event cut off by the end of the stream
 * is discarded. push() takes decoded text in any chunking and returns the complete events.
 */
export class SSEParser {
  constructor() {
    this.buf = '';
    this.started = false;
    this.data = [];
    this.type = '';
    this.lastId = '';
    this.retry = null;
    this.comments = 0;
  }

  push(text) {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.buf += text;
    const out = [];
    let start = 0;
    const buf = this.buf;
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 13 && i + 1 === buf.length) break; // a CR may be the first half of CRLF
      this.line(buf.slice(start, i), out);
      if (c === 13 && buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buf = buf.slice(start);
    return out;
  }

  /** end is called at the end of the stream: a final CR ends its line. */
  end() {
    const out = [];
    if (this.buf.endsWith('\r')) this.line(this.buf.slice(0, -1), out);
    this.buf = '';
    return out;
  }

  line(line, out) {
    if (line === '') {
      if (this.data.length > 0) {
        out.push({ id: this.lastId, event: this.type || 'message', data: this.data.join('\n') });
      }
      this.data = [];
      this.type = '';
      return;
    }
    if (line.charCodeAt(0) === 58) {
      this.comments++;
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }
}

/** readEvents yields the events of a response body stream as they arrive. */
export async function* readEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    finished = true;
    yield* parser.push(decoder.decode());
    yield* parser.end();
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

/**
 * streamPost POSTs body to path asking for an event stream and calls onEvent({seq, type,
 * data}) for each event, data parsed from JSON. It resolves when the stream ends. A JSON
 * answer (a server that chose not to stream) is delivered as one "done" event; a failed
 * answer rejects with ApiError.
 */
export async function streamPost(path, body, { signal, onEvent }) {
  let res;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: authHeaders({ Accept: 'text/event-stream', 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK_ERROR', `Cannot reach the gateway (${err?.message ?? err}).`);
  }
  if (res.status === 401) {
    session.clear();
    unauthorized();
  }
  if (!res.ok) throw await errorFrom(res);
  const type = res.headers.get('Content-Type') ?? '';
  if (!type.includes('text/event-stream')) {
    let answer;
    try {
      answer = JSON.parse(await res.text());
    } catch {
      throw new ApiError(res.status, 'BAD_RESPONSE', 'The gateway sent an answer that is neither a stream nor JSON.');
    }
    if (res.status === 202 && answer?.events_url) {
      // An async run: follow its event stream with the run's signed stream token.
      const url = `${answer.events_url}${answer.events_url.includes('?') ? '&' : '?'}token=${encodeURIComponent(answer.stream_token ?? '')}`;
      await streamGet(url, { signal, onEvent });
      return;
    }
    onEvent({ seq: 0, type: 'done', data: answer });
    return;
  }
  await deliver(res, onEvent);
}

/** streamGet follows an existing run's event stream (GET, as EventSource would). */
export async function streamGet(url, { signal, onEvent }) {
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'text/event-stream' }, signal });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK_ERROR', `Cannot reach the gateway (${err?.message ?? err}).`);
  }
  if (!res.ok) throw await errorFrom(res);
  await deliver(res, onEvent);
}

async function deliver(res, onEvent) {
  if (!res.body) throw new ApiError(res.status, 'BAD_RESPONSE', 'The stream has no body.');
  for await (const ev of readEvents(res.body)) {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      data = { message: ev.data };
    }
    onEvent({ seq: Number(ev.id) || 0, type: ev.event !== 'message' ? ev.event : data?.type ?? 'message', data });
  }
}
