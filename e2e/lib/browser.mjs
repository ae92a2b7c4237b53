// lib/browser.mjs: starts Debian's Chromium through playwright-core with a fresh profile and
// watches every page for console errors and uncaught exceptions.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** CHROMIUM_ARGS are the flags CI uses: headless, no sandbox, nothing that phones home. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];

/**
 * launch opens a persistent context on a fresh user-data directory. close() shuts the browser
 * and removes the directory.
 */
export async function launch({ viewport = { width: 1280, height: 900 } } = {}) {
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'agentgate-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  let closed = false;
  return {
    context,
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * watch records console errors and page errors of page. allow(re) lets messages matching re
 * through while fn runs (for a step that provokes an expected HTTP error on purpose).
 */
export function watch(page) {
  const problems = [];
  const allowed = [];
  const record = (kind, text) => {
    if (allowed.some((re) => re.test(text))) return;
    problems.push(`${kind}: ${text}`);
  };
  page.on('console', (msg) => {
    if (msg.type() === 'error') record('console error', msg.text());
  });
  page.on('pageerror', (err) => record('page error', err.stack || err.message));
  page.on('crash', () => record('crash', 'the page crashed'));
  return {
    problems,
    /** take returns and forgets the problems seen so far. */
    take() {
      return problems.splice(0, problems.length);
    },
    async allow(re, fn) {
      allowed.push(re);
      try {
        return await fn();
      } finally {
        allowed.splice(allowed.indexOf(re), 1);
      }
    },
  };
}
