// dashboard.mjs: drives the agentgate dashboard in Chromium through the whole product flow:
// sign up, workspace and MCP server, endpoint (key shown once), a streamed test run with a
// tool call, run history, charts, wallet, phone width, sign out.
//
//   AGENTGATE_URL=http://127.0.0.1:8080 MCP_URL=… LLM_URL=… SCREENSHOT_DIR=… node e2e/dashboard.mjs
//
// Env: AGENTGATE_URL (gateway base URL), MCP_URL (a streamable HTTP MCP server with at least
// one tool), LLM_URL (an OpenAI-compatible base URL whose model calls a tool, then answers),
// SCREENSHOT_DIR (default: a new temp dir), LLM_MODEL (default "scripted"), RUN_INPUT,
// CHROMIUM_PATH (default /usr/bin/chromium).
// Any console error or page error fails the run (exit 1). The last line is
// "dashboard: N passed, M failed".

import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launch, watch } from './lib/browser.mjs';

const BASE = (process.env.AGENTGATE_URL || '').replace(/\/+$/, '');
const MCP_URL = process.env.MCP_URL || '';
const LLM_URL = process.env.LLM_URL || '';
const LLM_MODEL = process.env.LLM_MODEL || 'scripted';
const RUN_INPUT = process.env.RUN_INPUT || 'Look this up with a tool, then answer.';

let passed = 0;
let failed = 0;

function finish(code) {
  console.log(`dashboard: ${passed} passed, ${failed} failed`);
  process.exit(code);
}

if (!BASE || !MCP_URL || !LLM_URL) {
  console.error('dashboard: AGENTGATE_URL, MCP_URL and LLM_URL must be set');
  failed = 1;
  finish(1);
}

const shots = process.env.SCREENSHOT_DIR || (await mkdtemp(path.join(tmpdir(), 'agentgate-shots-')));
await mkdir(shots, { recursive: true });

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const email = `e2e-${suffix}@example.test`;
const password = `pw-${suffix}-long`;

const browser = await launch({ viewport: { width: 1280, height: 900 } });
const { context } = browser;
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(15000);
const watcher = watch(page);
let shotN = 0;

// a11yProblems lists what a keyboard or screen-reader user would trip over on the page:
// controls without a label, buttons and links without a name, references to missing ids,
// duplicate ids, images without a text alternative, not exactly one h1.
function a11yProblems() {
  const out = [];
  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) ?? 0) + 1);
  for (const [id, n] of seen) if (n > 1) out.push(`duplicate id "${id}"`);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    if (!(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'))) {
      out.push(`unlabelled ${el.tagName.toLowerCase()} name="${el.name}" id="${el.id}"`);
    }
  }
  for (const el of document.querySelectorAll('button, a[href], summary')) {
    if (!(el.getAttribute('aria-label') || el.textContent.trim())) out.push(`${el.tagName.toLowerCase()} without a name: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll('[aria-labelledby], [aria-describedby], label[for]')) {
    const refs = [el.getAttribute('aria-labelledby'), el.getAttribute('aria-describedby'), el.getAttribute('for')]
      .filter(Boolean).join(' ').split(/\s+/).filter(Boolean);
    for (const id of refs) if (!document.getElementById(id)) out.push(`reference to missing id "${id}"`);
  }
  for (const el of document.querySelectorAll('img:not([alt]), svg[role="img"]:not([aria-label]):not([aria-labelledby])')) {
    out.push(`image without a text alternative: ${el.outerHTML.slice(0, 80)}`);
  }
  const h1 = document.querySelectorAll('main h1').length;
  if (h1 !== 1) out.push(`${h1} h1 headings in main`);
  return out;
}

async function shot(name) {
  // A rendering slip (a missing field, a null appended as text) shows up as one of these.
  const text = await page.locator('main').innerText();
  const slip = /\bundefined\b|\bNaN\b|\[object Object\]|^null$/m.exec(text);
  assert(!slip || name.startsWith('FAILED'), `page ${name} shows "${slip?.[0]}"`);
  const a11y = name.startsWith('FAILED') ? [] : await page.evaluate(a11yProblems);
  assert(a11y.length === 0, `page ${name}: ${a11y.join('; ')}`);
  shotN += 1;
  const width = page.viewportSize()?.width ?? 0;
  const file = path.join(shots, `${String(shotN).padStart(2, '0')}-${name}-${width}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function heading(text) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor();
}

async function step(name, fn) {
  try {
    await fn();
    const problems = watcher.take();
    assert(problems.length === 0, problems.join('\n'));
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`not ok - ${name}\n  ${String(err?.stack || err).split('\n').join('\n  ')}`);
    const problems = watcher.take();
    if (problems.length) console.log(`  browser problems:\n  ${problems.join('\n  ')}`);
    await shot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`).catch(() => {});
    await browser.close();
    finish(1);
  }
}

const state = {};

await step('signed-out visitor lands on sign in', async () => {
  await page.goto(`${BASE}/`);
  await heading('Sign in');
  assert(await page.locator('#nav').isHidden(), 'navigation is shown to a signed-out visitor');
  assert(await page.evaluate(() => document.activeElement?.name === 'email'), 'focus does not start in the email field');
  // Keyboard: backwards from the email field come the brand link, then the skip link (the
  // first stop of the page), which is then on screen with a visible focus ring; Enter on it
  // moves focus to the content, and Tab from there reaches the email field again.
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Shift+Tab');
  const skip = await page.evaluate(() => {
    const el = document.activeElement;
    const st = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return { text: el.textContent, outline: st.outlineStyle, left: box.left, top: box.top };
  });
  assert(skip.text === 'Skip to content', `Shift+Tab reached "${skip.text}", not the skip link`);
  assert(skip.outline !== 'none' && skip.left >= 0 && skip.top >= 0, `the focused skip link is not visible: ${JSON.stringify(skip)}`);
  await page.keyboard.press('Enter');
  assert(await page.evaluate(() => document.activeElement?.id === 'main'), 'the skip link does not move focus to the content');
  await page.keyboard.press('Tab');
  assert(await page.evaluate(() => document.activeElement?.name === 'email'), 'Tab from the content does not reach the email field');
  await shot('signin');
});

await step('sign up', async () => {
  await page.getByRole('link', { name: 'Create an account' }).click();
  await heading('Create an account');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await shot('signup');
  await page.getByRole('button', { name: 'Create account' }).click();
  await heading('Agent endpoints');
  assert((await page.locator('#who').textContent()) === email, 'the header does not show the signed-in email');
  const token = await page.evaluate(() => sessionStorage.getItem('agentgate.token'));
  assert(token && token.split('.').length === 3, 'no JWT in sessionStorage');
});

await step('create a workspace', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workspaces' }).click();
  await heading('Workspaces');
  await page.getByLabel('Name').fill('E2E tools');
  await page.getByLabel('Description').fill('Created by the browser test');
  await page.getByRole('button', { name: 'Create workspace' }).click();
  await heading('E2E tools');
  state.wsId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  assert(/^ws_/.test(state.wsId), `unexpected workspace id ${state.wsId}`);
});

await step('add an MCP server and see its tools', async () => {
  const form = page.locator('form', { has: page.getByRole('heading', { name: 'Add an MCP server' }) });
  await form.getByLabel('Name', { exact: true }).fill('ref');
  await form.getByLabel('Transport').selectOption('streamable_http');
  await form.getByLabel('URL').fill(MCP_URL);
  await form.getByRole('button', { name: 'Add header' }).click();
  await form.getByLabel('Header 1 name').fill('X-E2E');
  await form.getByLabel('Header 1 value').fill('1');
  await form.getByRole('button', { name: 'Add server' }).click();
  const row = page.locator('tr[data-server]', { hasText: 'ref' });
  await row.waitFor();
  assert((await row.textContent()).includes('enabled'), 'the new server is not enabled');
  // Header names are listed, their values never come back from the API.
  assert((await row.locator('[data-header-names]').textContent()).includes('X-E2E'), 'the header name is not listed');
  await page.getByText('Server “ref” added.').waitFor();
  await page.locator('table.tools tbody tr').first().waitFor({ timeout: 20000 });
  state.tools = await page.locator('table.tools tbody tr').count();
  assert(state.tools > 0, 'no tools listed');
  await shot('workspace');
});

await step('disable and enable the server', async () => {
  await page.getByRole('button', { name: 'Disable ref' }).click();
  await page.getByText('No tools: add or enable an MCP server.').waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Enable ref' }).click();
  await page.locator('table.tools tbody tr').first().waitFor({ timeout: 20000 });
});

await step('create an endpoint: the API validation message shows next to its field', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Endpoints' }).click();
  await heading('Agent endpoints');
  await page.getByRole('link', { name: 'New endpoint' }).click();
  await heading('New endpoint');
  await page.getByLabel('Name (required)').fill(`E2E agent ${suffix}`);
  await page.getByLabel('Workspace', { exact: true }).selectOption(state.wsId);
  await page.getByLabel('System prompt (required)').fill('You are a test agent. Use the tools.');
  await page.getByLabel('Model provider').selectOption('custom');
  await page.getByLabel('Model', { exact: true }).fill(LLM_MODEL);
  await page.getByLabel('Model base URL').fill(LLM_URL);
  await page.getByLabel('Max tokens').fill('50');
  await watcher.allow(/status of 400/, async () => {
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    await page.locator('#ep-max_tokens[aria-invalid="true"]').waitFor();
  });
  const msg = (await page.locator('#ep-max_tokens-error').textContent()).trim();
  assert(msg.length > 0, 'no message next to max_tokens');
  assert(await page.evaluate(() => document.activeElement?.id === 'ep-max_tokens'), 'focus did not move to the invalid field');
  await shot('endpoint-new-invalid');
  await page.getByLabel('Max tokens').fill('1024');
  await page.getByRole('button', { name: 'Create endpoint' }).click();
  await page.locator('[data-api-key]').waitFor();
  state.key = (await page.locator('[data-api-key]').textContent()).trim();
  await page.locator('#notice', { hasText: 'created' }).waitFor();
  assert(/^aek_[0-9a-f]{32}$/.test(state.key), `unexpected key ${state.key}`);
  state.epId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  assert(/^aep_/.test(state.epId), `unexpected endpoint id ${state.epId}`);
});

await step('the key is shown once, with a copy button and a curl line', async () => {
  await page.getByText('you will not see this again').waitFor();
  await page.getByRole('button', { name: 'Copy key' }).click();
  await page.getByText('Copied.').waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert(clip === state.key, 'the clipboard does not hold the key');
  const curl = await page.locator('#curl-line').textContent();
  assert(curl.includes(`${BASE}/api/run/`) && curl.includes(state.key), `curl line lacks URL or key: ${curl}`);
  assert((await page.locator('#run-url').textContent()).startsWith(`${BASE}/api/run/`), 'run URL missing');
  await shot('endpoint-key');
  await page.getByRole('link', { name: 'Test console' }).click();
  await heading(/^Test /);
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.locator('#curl-line').waitFor();
  assert((await page.locator('[data-api-key]').count()) === 0, 'the key is shown a second time');
  assert(!(await page.content()).includes(state.key), 'the key is still in the page');
});

await step('regenerate the key (cancel, then confirm)', async () => {
  await page.getByRole('button', { name: 'Regenerate key' }).click();
  await page.getByRole('dialog').waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  assert((await page.locator('[data-api-key]').count()) === 0, 'cancel regenerated the key');
  await page.getByRole('button', { name: 'Regenerate key' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Regenerate key' }).click();
  await page.locator('[data-api-key]').waitFor();
  const key = (await page.locator('[data-api-key]').textContent()).trim();
  assert(/^aek_[0-9a-f]{32}$/.test(key) && key !== state.key, 'regenerate did not show a new key');
  state.key = key;
});

await step('test console streams thinking, tool call, tool result, tokens and usage live', async () => {
  await page.getByRole('link', { name: 'Test console' }).click();
  await heading(/^Test /);
  await page.evaluate(() => {
    const box = document.getElementById('console');
    window.__seen = [];
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'characterData' && r.target.parentElement?.id === 'console-output') window.__seen.push('token');
        if (r.type === 'attributes') window.__seen.push(`${r.attributeName}:${r.target.getAttribute(r.attributeName)}`);
        if (r.type === 'childList') {
          for (const n of r.addedNodes) if (n.nodeType === 1 && n.dataset.kind) window.__seen.push(n.dataset.kind);
        }
      }
    }).observe(box, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-state', 'data-final'] });
  });
  await page.getByLabel('Input').fill(RUN_INPUT);
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.locator('#console:is([data-state="done"], [data-state="error"], [data-state="cancelled"])').waitFor({ timeout: 60000 });
  const st = await page.locator('#console').getAttribute('data-state');
  assert(st === 'done', `the run ended in state ${st}: ${await page.locator('#console-error').textContent()}`);
  const seen = await page.evaluate(() => window.__seen);
  const at = (k) => seen.indexOf(k);
  const done = at('data-state:done');
  for (const k of ['thinking', 'tool_call', 'tool_result', 'token', 'data-final:false']) {
    assert(at(k) >= 0, `never rendered ${k}; saw ${seen.join(',')}`);
    assert(at(k) < done, `${k} was rendered only after the run finished; saw ${seen.join(',')}`);
  }
  assert(at('thinking') < at('tool_call') && at('tool_call') < at('tool_result'), `steps out of order: ${seen.join(',')}`);
  assert(at('data-final:true') >= 0, 'final usage was not rendered');
  const output = (await page.locator('#console-output').textContent()).trim();
  assert(output.length > 0, 'no output');
  const usage = await page.locator('#console-usage').textContent();
  for (const k of ['Input tokens', 'Output tokens', 'Cost', 'Latency', 'Iterations']) assert(usage.includes(k), `usage lacks ${k}`);
  state.output = output;
  state.runLink = await page.locator('#console-state a').getAttribute('href');
  await shot('console');
});

await step('the run appears in the runs table, filters work, detail shows it', async () => {
  await page.getByRole('link', { name: 'Runs', exact: true }).click();
  await page.locator('#runs-table tbody tr').first().waitFor();
  const first = page.locator('#runs-table tbody tr').first();
  assert((await first.textContent()).includes('test'), 'the newest run is not a test run');
  await shot('runs');
  await page.getByLabel('Status').selectOption('error');
  await page.locator('#runs-empty').waitFor();
  await page.getByLabel('Status').selectOption('test');
  await page.locator('#runs-table tbody tr').first().waitFor();
  await page.locator('#runs-table tbody tr').first().getByRole('link').click();
  await heading(/^Run run_/);
  assert((await page.locator('#run-input').textContent()).includes(RUN_INPUT), 'detail lacks the input');
  assert((await page.locator('#run-output').textContent()).trim() === state.output, 'detail output differs from the streamed output');
  assert((await page.locator('#run-tool-calls li').count()) > 0, 'detail lists no tool call');
  assert(page.url().endsWith(state.runLink), `console link ${state.runLink} differs from the table's`);
  await shot('run-detail');
});

await step('charts render with data', async () => {
  await page.getByRole('link', { name: 'Charts' }).click();
  await page.locator('svg[data-chart="runs"]').waitFor();
  for (const key of ['runs', 'latency', 'tokens', 'cost']) {
    const svg = page.locator(`svg[data-chart="${key}"]`);
    assert(Number(await svg.getAttribute('data-points')) > 0, `${key} chart has no points`);
    assert((await svg.locator('title').first().textContent()).length > 0, `${key} chart has no title`);
    assert((await svg.locator('desc').textContent()).length > 0, `${key} chart has no desc`);
  }
  assert(Number(await page.locator('svg[data-chart="runs"]').getAttribute('data-total')) >= 1, 'runs chart counts no run');
  assert((await page.locator('svg[data-chart="runs"] rect.bar').count()) >= 1, 'runs chart draws no bar');
  assert((await page.locator('figure[data-chart="runs"] table.data tbody tr').count()) > 0, 'no data table fallback');
  await shot('charts');
});

await step('wallet shows the balance', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Wallet' }).click();
  await heading('Wallet');
  await page.locator('#balance').waitFor();
  assert(/\$\d/.test(await page.locator('#balance').textContent()), 'balance is not a dollar amount');
  await shot('wallet');
});

await step('edit the endpoint', async () => {
  await page.goto(`${BASE}/#/endpoints/${state.epId}/edit`);
  await heading(/^Edit /);
  await page.getByLabel('Description').fill('Edited by the browser test');
  await shot('endpoint-edit');
  await page.getByLabel('Runs per minute').fill('30');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Edited by the browser test').waitFor();
  await page.locator('#notice', { hasText: 'Endpoint saved.' }).waitFor();
  const facts = await page.locator('dl.facts').textContent();
  assert(facts.includes('Runs per minute30'), `the new rate limit is not shown: ${facts}`);
});

await step('phone width: no sideways scrolling', async () => {
  await page.setViewportSize({ width: 375, height: 812 });
  const pages = [
    ['endpoints', '#/endpoints'], ['endpoint-new', '#/endpoints/new'], ['endpoint', `#/endpoints/${state.epId}`],
    ['console', `#/endpoints/${state.epId}/console`], ['runs', `#/endpoints/${state.epId}/runs`],
    ['run-detail', state.runLink], ['charts', `#/endpoints/${state.epId}/charts`],
    ['workspaces', '#/workspaces'], ['workspace', `#/workspaces/${state.wsId}`], ['wallet', '#/wallet'],
  ];
  for (const [name, hash] of pages) {
    await page.goto(`${BASE}/${hash}`);
    await page.locator('main h1').waitFor();
    // Wait for the page's data: its loading placeholders and busy regions are gone.
    await page.locator('[aria-busy="true"]').first().waitFor({ state: 'detached' }).catch(() => {});
    await page.getByText(/^Loading|^Asking every enabled server/).first().waitFor({ state: 'detached' }).catch(() => {});
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 0, `${hash} scrolls sideways by ${over}px at 375px`);
    // The header and the endpoint tabs each fit on one line.
    const rows = await page.evaluate(() => [...document.querySelectorAll('#nav ul, nav.tabs ul')].map((ul) => {
      const tops = new Set([...ul.children].map((li) => Math.round(li.getBoundingClientRect().top)));
      return tops.size;
    }));
    assert(rows.every((n) => n === 1), `${hash}: navigation wraps onto ${rows.join('/')} lines at 375px`);
    await shot(`${name}-phone`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step('sign out, sign in again, delete the endpoint', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in');
  assert(!(await page.evaluate(() => sessionStorage.getItem('agentgate.token'))), 'token kept after sign out');
  await page.goto(`${BASE}/#/endpoints`);
  await heading('Sign in');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await heading('Agent endpoints');
  await page.locator(`a[href="#/endpoints/${state.epId}"]`).click();
  await page.getByRole('button', { name: 'Delete endpoint' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete endpoint' }).click();
  await heading('Agent endpoints');
  assert((await page.locator(`a[href="#/endpoints/${state.epId}"]`).count()) === 0, 'deleted endpoint still listed');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in');
});

await browser.close();
console.log(`screenshots: ${shots}`);
finish(failed === 0 ? 0 : 1);
