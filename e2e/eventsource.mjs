// eventsource.mjs URL: follows an agentgate run's event stream with the `eventsource` npm
// package (a WHATWG EventSource for Node) and prints what it received as one JSON line:
// {"events":[{"id","type","data"}…],"errors":<connection errors>}. The Go test behind it
// (server/stream_node_test.go) cuts the connection mid-stream: the client must reconnect by
// itself with Last-Event-ID and end up with every event exactly once.
import { EventSource } from 'eventsource';

const url = process.argv[2];
if (!url) {
  console.error('usage: node eventsource.mjs EVENTS_URL');
  process.exit(2);
}

const TYPES = ['thinking', 'token', 'tool_call', 'tool_result', 'usage', 'done'];
const events = [];
let errors = 0;
const es = new EventSource(url);

const timer = setTimeout(() => {
  es.close();
  console.error(`timed out after ${events.length} events and ${errors} connection errors`);
  process.exit(1);
}, 30_000);

function finish() {
  es.close();
  clearTimeout(timer);
  process.stdout.write(JSON.stringify({ events, errors }) + '\n');
}

for (const type of TYPES) {
  es.addEventListener(type, (e) => {
    events.push({ id: e.lastEventId, type, data: e.data });
    if (type === 'done') finish();
  });
}
// "error" is both agentgate's terminal event (a MessageEvent with data) and EventSource's
// connection-error signal (no data; the client then reconnects by itself).
es.addEventListener('error', (e) => {
  if (typeof e.data === 'string') {
    events.push({ id: e.lastEventId, type: 'error', data: e.data });
    finish();
    return;
  }
  errors++;
  if (es.readyState === EventSource.CLOSED) {
    clearTimeout(timer);
    console.error(`the client gave up: ${e.message ?? 'no message'} (code ${e.code ?? '?'})`);
    process.exit(1);
  }
});
