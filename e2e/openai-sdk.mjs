// The official `openai` npm SDK (pinned in package.json) against agentgate's OpenAI-compatible
// facade. Run by server/openai_sdk_test.go with:
//   AGENTGATE_V1   the facade's base URL (http://127.0.0.1:PORT/v1)
//   ENDPOINT_SLUG  the endpoint (the model)
//   ENDPOINT_KEY   its key
// The gateway's model is the scripted LLM, which echoes the last user message, so the agent's
// output is the input. Prints one line per check and a closing line
// "openai-sdk: N passed, M failed"; exits 1 when a check failed.
import OpenAI from 'openai';

const baseURL = process.env.AGENTGATE_V1;
const model = process.env.ENDPOINT_SLUG;
const apiKey = process.env.ENDPOINT_KEY;
if (!baseURL || !model || !apiKey) {
  console.error('openai-sdk: AGENTGATE_V1, ENDPOINT_SLUG and ENDPOINT_KEY are required');
  process.exit(2);
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20_000 });
const prompt = 'Tell the SDK that the agent endpoint answers through the facade.';

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const checks = [
  ['non-streaming completion returns the agent output', async () => {
    const res = await client.chat.completions.create({
      model,
      messages: [{ role: 'system', content: 'ignored' }, { role: 'user', content: prompt }],
    });
    assert(res.object === 'chat.completion', `object ${res.object}`);
    assert(res.choices.length === 1, `choices ${JSON.stringify(res.choices)}`);
    assert(res.choices[0].message.content === prompt, `content ${JSON.stringify(res.choices[0].message.content)}`);
    assert(res.choices[0].finish_reason === 'stop', `finish_reason ${res.choices[0].finish_reason}`);
    assert(res.model === model && res.id.startsWith('run_'), `model ${res.model} id ${res.id}`);
    const u = res.usage;
    assert(u && u.prompt_tokens > 0 && u.completion_tokens > 0 && u.total_tokens === u.prompt_tokens + u.completion_tokens,
      `usage ${JSON.stringify(u)}`);
  }],
  ['streaming completion: deltas add up to the agent output, then a usage chunk', async () => {
    const stream = await client.chat.completions.create({
      model,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: [{ type: 'text', text: prompt }] }],
    });
    let text = '';
    let pieces = 0;
    let finish = null;
    let usage = null;
    let role = null;
    for await (const chunk of stream) {
      assert(chunk.object === 'chat.completion.chunk', `object ${chunk.object}`);
      if (chunk.usage) {
        assert(chunk.choices.length === 0, `usage chunk with choices ${JSON.stringify(chunk)}`);
        usage = chunk.usage;
      }
      for (const ch of chunk.choices) {
        if (ch.delta.role) role = ch.delta.role;
        if (ch.delta.content) { text += ch.delta.content; pieces++; }
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert(text === prompt, `streamed ${JSON.stringify(text)}`);
    assert(pieces > 1, `content arrived in ${pieces} piece(s), want it streamed`);
    assert(role === 'assistant' && finish === 'stop', `role ${role} finish ${finish}`);
    assert(usage && usage.total_tokens > 0, `usage ${JSON.stringify(usage)}`);
  }],
  ['stream helper: finalChatCompletion()', async () => {
    const runner = client.chat.completions.stream({ model, messages: [{ role: 'user', content: prompt }] });
    const final = await runner.finalChatCompletion();
    assert(final.choices[0].message.content === prompt, `final ${JSON.stringify(final.choices[0].message)}`);
  }],
  ['invalid key gives AuthenticationError', async () => {
    const bad = new OpenAI({ baseURL, apiKey: 'aek_00000000000000000000000000000000', maxRetries: 0 });
    try {
      await bad.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }] });
    } catch (err) {
      assert(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert(err.status === 401 && err.code === 'invalid_api_key', `status ${err.status} code ${err.code}`);
      return;
    }
    throw new Error('no error');
  }],
  ['unknown model gives NotFoundError', async () => {
    try {
      await client.chat.completions.create({ model: 'no-such-endpoint', messages: [{ role: 'user', content: prompt }] });
    } catch (err) {
      assert(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err?.message}`);
      assert(err.code === 'model_not_found' && err.param === 'model', `code ${err.code} param ${err.param}`);
      return;
    }
    throw new Error('no error');
  }],
  ['models.list() shows the slug', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert(ids.length === 1 && ids[0] === model, `models ${JSON.stringify(ids)}`);
    const m = await client.models.retrieve(model);
    assert(m.id === model && m.owned_by === 'agentgate', `retrieve ${JSON.stringify(m)}`);
  }],
];

let passed = 0;
let failed = 0;
for (const [name, fn] of checks) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}: ${err?.stack || err}`);
  }
}
console.log(`openai-sdk: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
