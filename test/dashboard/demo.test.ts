// `npm run demo` opens with the dashboard's URL and how to log in; in Chromium the dashboard
// shows the demo's services (web calling api's two instances) with live numbers.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { eventually, removeDirs } from '../support/mesh.js';
import { repoRoot } from '../support/processes.js';
import { launchChromium, logIn } from './browser.js';

const LIVE_TIMEOUT_MS = 60_000;

describe('the demo in the dashboard', { timeout: 240_000 }, () => {
  let demo: ChildProcess;
  let output = '';
  let context: BrowserContext;
  let page: Page;
  let browserDir: string;
  let dashboardUrl: string;
  let tokenFile: string;

  before(async () => {
    demo = spawn(process.execPath, [join(repoRoot, 'dist/demo/demo.js')], { env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    demo.stderr?.resume();
    const banner = new Promise<RegExpExecArray>((resolve, reject) => {
      demo.stdout?.setEncoding('utf8').on('data', (text: string) => {
        output += text;
        const match = /^Dashboard: (https:\/\/\S+)\/ui {2}\(log in with the admin token: cat (\S+)\)$/m.exec(output);
        if (match !== null) resolve(match);
      });
      demo.once('exit', (code) => reject(new Error(`the demo exited (${String(code)}) before printing its dashboard; stdout:\n${output}`)));
    });
    const [, url = '', file = ''] = await banner;
    [dashboardUrl, tokenFile] = [url, file];
    browserDir = await mkdtemp(join(tmpdir(), 'trellis-demo-browser-'));
    ({ context, page } = await launchChromium(browserDir));
  });

  after(async () => {
    await context?.close();
    if (demo !== undefined && demo.exitCode === null && demo.signalCode === null) {
      const exited = once(demo, 'exit');
      demo.kill('SIGINT');
      await exited;
    }
    await removeDirs(browserDir ?? '');
  });

  it('prints the dashboard first in its banner, and the page shows web calling api', async () => {
    const banner = output.slice(output.indexOf('Dashboard: '));
    assert.ok(banner.indexOf('Dashboard: ') < banner.indexOf('The mesh is up:'));
    await logIn(page, dashboardUrl, (await readFile(tokenFile, 'utf8')).trim());
    await page.locator('tr[data-service="api"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
    await page.locator('tr[data-service="web"]').waitFor({ timeout: LIVE_TIMEOUT_MS });
    await page.locator('tr[data-service="api"] [data-signal="endpoints"]', { hasText: '2/2' }).waitFor({ timeout: LIVE_TIMEOUT_MS });
    assert.equal(await page.locator('tr[data-sidecar]').count(), 3);
    await eventually(async () => Number(await page.locator('tr[data-service="api"] [data-signal="connectionsPerSecond"]').textContent()) > 0, 'a live connection rate for api', LIVE_TIMEOUT_MS);
    await page.locator('#graph-summary li', { hasText: /^traffic web → api: / }).waitFor({ state: 'attached', timeout: LIVE_TIMEOUT_MS });
  });
});
