// The chat page minerva-serve serves at /, driven in headless Chromium (Debian's chromium, through
// playwright-core; no browser is downloaded): the page loads with nothing fetched from outside the
// server, lists the models, streams a reply, stops it with the stop button, and keeps the
// conversation across a reload. Usage: node webui.test.mjs MINERVA_SERVE [SHARED_DIR]
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch } from './serve.mjs';

const SERVE = process.argv[2] || process.env.MINERVA_SERVE;
const SHARED = process.env.MINERVA_SHARED || process.argv[3];
const REQUIRE = process.env.MINERVA_REQUIRE_SHARED === '1';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LONG_MODEL = SHARED ? path.join(SHARED, 'models', 'tiny-k-f32.gguf') : '';
const SHORT_MODEL = SHARED ? path.join(SHARED, 'models', 'stories260K-f32.gguf') : '';

let playwright = null;
try { playwright = await import('playwright-core'); } catch { /* reported below */ }
const missing = !SERVE || !fs.existsSync(SERVE) ? `minerva-serve not found (${SERVE})`
  : !SHARED || !fs.existsSync(LONG_MODEL) ? `shared models not found; set MINERVA_SHARED`
  : !fs.existsSync(CHROMIUM) ? `${CHROMIUM} not found (Debian: apt-get install chromium; scripts/install-deps.sh does)`
  : !playwright ? 'playwright-core not installed (npm install in tests/server)' : '';
if (missing && REQUIRE) test('chromium, playwright-core, the server and the models are present', () => assert.fail(missing));
const skip = missing || false;

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

async function startServer(modelsDir) {
  const server = await launch(SERVE, ['--port', '0', '--models-dir', modelsDir, '--threads', '1', '--device', 'cpu', '-c', '2048'],
                              modelsDir);
  cleanup.push(async () => { server.proc.kill('SIGTERM'); });
  return server;
}

test('chat page: models, streamed reply, stop, conversation kept', { skip, timeout: 180000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'minerva-webui-'));
  cleanup.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
  fs.symlinkSync(LONG_MODEL, path.join(dir, 'tiny-k-f32.gguf'));
  fs.symlinkSync(SHORT_MODEL, path.join(dir, 'stories260K-f32.gguf'));
  const server = await startServer(dir);

  const browser = await playwright.chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  cleanup.push(async () => browser.close());
  const page = await browser.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  const res = await page.goto(server.url + '/');
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /text\/html/);
  assert.equal(await page.title(), 'Minerva chat');

  // The model picker lists both models.
  await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
  const models = await page.$$eval('#model option', (os) => os.map((o) => o.value).sort());
  assert.deepEqual(models, ['stories260K-f32', 'tiny-k-f32']);

  // A long reply (random weights, greedy, 1500 tokens) so there is time to watch it and stop it.
  await page.selectOption('#model', 'tiny-k-f32');
  await page.fill('#temperature', '0');
  await page.dispatchEvent('#temperature', 'change');
  await page.fill('#max_tokens', '1500');
  await page.dispatchEvent('#max_tokens', 'change');
  await page.fill('#input', 'Tell me a long story');
  await page.press('#input', 'Enter');

  // Streamed: the reply's text grows in steps while the stop button is live. Stop is pressed from
  // inside the page the moment that is seen: a round trip from the test could arrive after a fast
  // model has already finished its reply.
  const seen = await page.waitForFunction(() => {
    const t = document.querySelector('.msg.assistant .text');
    const stop = document.querySelector('#stop'), send = document.querySelector('#send');
    window.__lengths = window.__lengths || new Set();
    if (t && t.textContent.length > 0) window.__lengths.add(t.textContent.length);
    if (window.__lengths.size >= 3 && t.textContent.length > 20 && !stop.disabled) {
      const sendDisabled = send.disabled;
      stop.click();
      return { steps: window.__lengths.size, sendDisabled };
    }
    return false;
  }, null, { polling: 5, timeout: 60000 });
  const streamed = await seen.jsonValue();
  assert.ok(streamed.steps >= 3, 'the reply grew in steps');
  assert.equal(streamed.sendDisabled, true, 'send is disabled while streaming');
  await page.waitForSelector('.msg.assistant[data-finish="stopped"]', { timeout: 10000 });
  const stoppedText = await page.$eval('.msg.assistant .text', (e) => e.textContent);
  assert.ok(stoppedText.length > 20, 'the partial reply stays on the page');
  assert.equal(await page.isEnabled('#send'), true);
  await page.waitForTimeout(300);
  assert.equal(await page.$eval('.msg.assistant .text', (e) => e.textContent), stoppedText, 'nothing arrives after stop');

  // The conversation survives a reload (localStorage), and the next turn carries it.
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
  assert.equal(await page.$$eval('.msg', (ms) => ms.length), 2);
  assert.equal(await page.$eval('.msg.user .text', (e) => e.textContent), 'Tell me a long story');
  assert.equal(await page.$eval('.msg.assistant .text', (e) => e.textContent), stoppedText);
  assert.equal(await page.inputValue('#temperature'), '0');
  await page.selectOption('#model', 'stories260K-f32');
  await page.dispatchEvent('#model', 'change');
  await page.fill('#max_tokens', '6');
  await page.dispatchEvent('#max_tokens', 'change');
  await page.fill('#input', 'And then?');
  await page.click('#send');
  await page.waitForFunction(() => {
    const ms = document.querySelectorAll('.msg.assistant');
    return ms.length === 2 && ms[1].dataset.finish;
  }, null, { timeout: 60000 });
  const finish = await page.$$eval('.msg.assistant', (ms) => ms[1].dataset.finish);
  assert.ok(finish === 'length' || finish === 'stop', `second reply finished with '${finish}'`);

  // "New chat" forgets it.
  await page.click('#clear');
  assert.equal(await page.$$eval('.msg', (ms) => ms.length), 0);
  await page.reload();
  assert.equal(await page.$$eval('.msg', (ms) => ms.length), 0);

  // A refused request (max_tokens beyond the context: 400) shows the server's message and takes
  // the turn back: nothing is added to the conversation and the text returns to the input box.
  await page.fill('#max_tokens', '100000');
  await page.dispatchEvent('#max_tokens', 'change');
  await page.fill('#input', 'Too long');
  await page.click('#send');
  await page.waitForSelector('.msg.error', { timeout: 30000 });
  assert.match(await page.$eval('.msg.error', (e) => e.textContent), /^400: .*context/);
  assert.equal(await page.$$eval('.msg.user, .msg.assistant', (ms) => ms.length), 0);
  assert.equal(await page.inputValue('#input'), 'Too long');
  assert.equal(await page.isEnabled('#send'), true);
  await page.reload();
  assert.equal(await page.$$eval('.msg', (ms) => ms.length), 0);

  // Nothing was fetched from anywhere but the server.
  const foreign = requests.filter((u) => !u.startsWith(server.url));
  assert.deepEqual(foreign, [], 'requests outside the server');
  assert.deepEqual(consoleErrors, []);
});
