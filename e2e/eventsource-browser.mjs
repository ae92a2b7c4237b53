// eventsource-browser.mjs PAGE_URL: opens PAGE_URL in Debian's Chromium (playwright-core,
// the CI flags of lib/browser.mjs) and waits for the page's window.result, which the page sets
// once its EventSource received the run's terminal event; prints it as one JSON line. The page
// and the proxy that cuts the connection mid-stream are served by server/stream_node_test.go.
import { launch } from './lib/browser.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node eventsource-browser.mjs PAGE_URL');
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30_000 });
  const result = await page.evaluate(() => window.result);
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await browser.close();
}
