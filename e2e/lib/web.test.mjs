// lib/web.test.mjs: unit tests for the dashboard's browser-independent code, run with
// `node --test e2e/lib/`. The SSE parser is fed real gateway-shaped streams in every
// chunking; every dashboard module is syntax-checked as an ES module.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { SSEParser, readEvents, streamPost, errorFrom } from '../../web/static/js/api.js';

const STATIC = fileURLToPath(new URL('../../web/static/', import.meta.url));

const STREAM = 'retry: 3000\n\n'
  + 'id: 1\nevent: thinking\ndata: {"type":"thinking","status":"starting","message":"Starting"}\n\n'
  + ': ping\n\n'
  + 'id: 2\nevent: token\ndata: {"type":"token","iteration":1,"delta":"héllo ✓"}\n\n'
  + 'id: 3\nevent: done\ndata: {"type":"done","run_id":"run_1","output":"héllo ✓"}\n\n';

function parseAll(chunks) {
  const p = new SSEParser();
  const out = [];
  for (const c of chunks) out.push(...p.push(c));
  out.push(...p.end());
  return { events: out, parser: p };
}

test('SSEParser: same events for every split of the stream', () => {
  const want = parseAll([STREAM]).events;
  assert.equal(want.length, 3);
  assert.deepEqual(want.map((e) => [e.id, e.event]), [['1', 'thinking'], ['2', 'token'], ['3', 'done']]);
  for (let i = 0; i <= STREAM.length; i++) {
    assert.deepEqual(parseAll([STREAM.slice(0, i), STREAM.slice(i)]).events, want, `split at ${i}`);
  }
  const oneByOne = parseAll([...STREAM]);
  assert.deepEqual(oneByOne.events, want);
  assert.equal(oneByOne.parser.retry, 3000);
  assert.equal(oneByOne.parser.comments, 1);
});

test('SSEParser: the rules of the event-stream format', () => {
  const cases = [
    { name: 'CRLF line ends', in: ['data: a\r\n\r\n'], want: [{ id: '', event: 'message', data: 'a' }] },
    { name: 'CR line ends', in: ['data: a\r\r'], want: [{ id: '', event: 'message', data: 'a' }] },
    { name: 'CRLF split between chunks', in: ['data: a\r', '\n\r', '\n'], want: [{ id: '', event: 'message', data: 'a' }] },
    { name: 'multi-line data', in: ['data: a\ndata: b\n\n'], want: [{ id: '', event: 'message', data: 'a\nb' }] },
    { name: 'no space after colon', in: ['data:a\n\n'], want: [{ id: '', event: 'message', data: 'a' }] },
    { name: 'only one space stripped', in: ['data:  a\n\n'], want: [{ id: '', event: 'message', data: ' a' }] },
    { name: 'leading BOM', in: ['\ufeffdata: a\n\n'], want: [{ id: '', event: 'message', data: 'a' }] },
    { name: 'id persists', in: ['id: 7\ndata: a\n\ndata: b\n\n'], want: [{ id: '7', event: 'message', data: 'a' }, { id: '7', event: 'message', data: 'b' }] },
    { name: 'event type resets', in: ['event: x\ndata: a\n\ndata: b\n\n'], want: [{ id: '', event: 'x', data: 'a' }, { id: '', event: 'message', data: 'b' }] },
    { name: 'no data, no event', in: ['event: x\n\n'], want: [] },
    { name: 'unfinished event dropped', in: ['data: a\n'], want: [] },
    { name: 'unknown field ignored', in: ['foo: bar\ndata: a\n\n'], want: [{ id: '', event: 'message', data: 'a' }] },
  ];
  for (const c of cases) assert.deepEqual(parseAll(c.in).events, c.want, c.name);
});

// listen starts a real HTTP server on 127.0.0.1 and returns its base URL and a close func.
async function listen(handler) {
  const srv = http.createServer(handler);
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  return { base: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => srv.close(resolve)) };
}

test('streamPost reads a live stream over HTTP, chunk by chunk', async (t) => {
  const { base, close } = await listen((req, res) => {
    assert.equal(req.headers.accept, 'text/event-stream');
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    // Write in awkward pieces (mid-line, mid-UTF-8 sequence) to exercise the decoder.
    const bytes = Buffer.from(STREAM);
    let i = 0;
    const next = () => {
      if (i >= bytes.length) return res.end();
      res.write(bytes.subarray(i, i + 7));
      i += 7;
      setImmediate(next);
    };
    next();
  });
  t.after(close);
  const got = [];
  await streamPost(`${base}/api/agent-endpoints/x/test`, { input: 'hi' }, { signal: AbortSignal.timeout(10000), onEvent: (e) => got.push(e) });
  assert.deepEqual(got.map((e) => [e.seq, e.type]), [[1, 'thinking'], [2, 'token'], [3, 'done']]);
  assert.equal(got[1].data.delta, 'héllo ✓');
});

test('streamPost turns an API error into ApiError with the API message', async (t) => {
  const { base, close } = await listen((req, res) => {
    res.writeHead(429, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'RATE_LIMIT_EXCEEDED', message: 'Rate limit exceeded. Try again in 5 seconds.' } }));
  });
  t.after(close);
  await assert.rejects(
    streamPost(`${base}/x`, {}, { signal: AbortSignal.timeout(10000), onEvent: () => {} }),
    (err) => err.name === 'ApiError' && err.status === 429 && err.code === 'RATE_LIMIT_EXCEEDED' && /Try again/.test(err.message),
  );
});

test('errorFrom survives a body that is not the API error shape', async () => {
  const err = await errorFrom(new Response('<html>nope</html>', { status: 502, statusText: 'Bad Gateway' }));
  assert.equal(err.status, 502);
  assert.equal(err.code, 'HTTP_502');
  assert.match(err.message, /502/);
});

test('readEvents stops reading when the consumer stops', async () => {
  let cancelled = false;
  const body = new ReadableStream({
    pull(ctrl) {
      ctrl.enqueue(new TextEncoder().encode('data: x\n\n'));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const ev of readEvents(body)) {
    assert.equal(ev.data, 'x');
    break;
  }
  assert.equal(cancelled, true);
});

test('every dashboard module parses as an ES module', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentgate-js-'));
  try {
    const walk = (d) => readdirSync(d).flatMap((f) => {
      const p = path.join(d, f);
      return statSync(p).isDirectory() ? walk(p) : p.endsWith('.js') ? [p] : [];
    });
    const modules = walk(STATIC);
    assert.ok(modules.length >= 10, `found ${modules.length} modules`);
    for (const m of modules) {
      const copy = path.join(dir, `${path.basename(m)}.mjs`);
      writeFileSync(copy, readFileSync(m));
      execFileSync(process.execPath, ['--check', copy], { stdio: 'pipe' });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('streamPost follows an async run (202) to its event stream with the stream token', async (t) => {
  const { base, close } = await listen((req, res) => {
    if (req.method === 'POST') {
      res.writeHead(202, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ run_id: 'run_a', status: 'running', events_url: '/api/runs/run_a/events', status_url: '/api/runs/run_a', stream_token: 'tok en' }));
      return;
    }
    const url = new URL(req.url, 'http://x');
    assert.equal(url.pathname, '/api/runs/run_a/events');
    assert.equal(url.searchParams.get('token'), 'tok en');
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.end(STREAM);
  });
  t.after(close);
  // The events URL is relative to the page; in Node, resolve it against the test server.
  const realFetch = globalThis.fetch;
  globalThis.fetch = (u, o) => realFetch(new URL(u, base), o);
  t.after(() => { globalThis.fetch = realFetch; });
  const got = [];
  await streamPost('/api/agent-endpoints/x/test', { input: 'hi' }, { signal: AbortSignal.timeout(10000), onEvent: (e) => got.push(e.type) });
  assert.deepEqual(got, ['thinking', 'token', 'done']);
});

test('fieldFor finds the field an API validation message names', async () => {
  const { fieldFor } = await import('../../web/static/js/ui.js');
  const names = ['name', 'slug', 'llm_model', 'max_tokens', 'max_tool_calls', 'system_prompt', 'llm_provider'];
  const cases = [
    [{ message: 'max_tokens must be between 100 and 32768' }, 'max_tokens'],
    [{ message: 'invalid llm_model: too long' }, 'llm_model'],
    [{ message: 'system_prompt is required (the name is fine)' }, 'system_prompt'],
    [{ message: 'slug "x" is taken', code: 'SLUG_TAKEN' }, 'slug'],
    [{ message: 'taken', code: 'SLUG_TAKEN' }, 'slug'],
    [{ message: 'bad value', field: 'max_tool_calls' }, 'max_tool_calls'],
    [{ message: 'model is unknown' }, null], // "model" alone is not llm_model
    [{ message: 'something else went wrong' }, null],
  ];
  for (const [err, want] of cases) assert.equal(fieldFor(err, names), want, err.message);
});

test('cents keeps sub-cent precision and never prints NaN', async () => {
  const { cents } = await import('../../web/static/js/ui.js');
  const cases = [[0, '$0.00'], [500, '$5.00'], [499.9968, '$4.999968'], [0.08, '$0.0008'], [50, '$0.50'], [-0.08, '−$0.0008'], [null, '—'], ['x', '—']];
  for (const [v, want] of cases) assert.equal(cents(v), want, String(v));
});
