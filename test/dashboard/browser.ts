/**
 * The browsers the dashboard's tests drive, both headless with a fresh profile in `dir/profile`:
 * Debian's Chromium through playwright-core, and Debian's Firefox ESR through puppeteer-core
 * over WebDriver BiDi (playwright-core drives only its own patched Firefox builds).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import type { Browser as BidiBrowser, Page as BidiPage } from 'puppeteer-core';
import puppeteer from 'puppeteer-core';
import { removeDirs } from '../support/mesh.js';

export const CHROMIUM = '/usr/bin/chromium';
export const FIREFOX = '/usr/bin/firefox-esr';

/** How long a polite close may take before the browser's process group is killed. */
const FIREFOX_CLOSE_TIMEOUT_MS = 10_000;

export async function launchChromium(dir: string): Promise<{ context: BrowserContext; page: Page }> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install the Debian package chromium (scripts/test.sh does)`);
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    // The control plane's certificate comes from the mesh's own CA, which a fresh profile does not know.
    ignoreHTTPSErrors: true,
    viewport: { width: 1366, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/** Logs in on the page at `${url}/ui` with `adminToken`, and waits for the dashboard. */
export async function logIn(page: Page, url: string, adminToken: string): Promise<void> {
  await page.goto(`${url}/ui`);
  await page.locator('#login-form').waitFor();
  await page.fill('#token', adminToken);
  await page.click('#login-submit');
  await page.locator('#dashboard').waitFor();
}

/** A running Firefox; `close()` ends its whole process tree and removes its profile, whatever state it is in. */
export interface FirefoxSession {
  browser: BidiBrowser;
  page: BidiPage;
  close(): Promise<void>;
}

export async function launchFirefox(dir: string): Promise<FirefoxSession> {
  assert.ok(existsSync(FIREFOX), `${FIREFOX} is missing: install the Debian package firefox-esr (scripts/test.sh does)`);
  const profile = join(dir, 'profile');
  let browser: BidiBrowser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      protocol: 'webDriverBiDi',
      executablePath: FIREFOX,
      headless: true,
      userDataDir: profile,
      // The control plane's certificate comes from the mesh's own CA, which a fresh profile does not know.
      acceptInsecureCerts: true,
      defaultViewport: { width: 1366, height: 900 },
      timeout: 60_000,
    });
  } catch (err) {
    // puppeteer kills a browser that failed to come up, but leaves a profile it did not make.
    await removeDirs(profile);
    throw err;
  }
  const child = browser.process();
  const close = async (): Promise<void> => {
    // Settles once the browser is gone and puppeteer has put back the profile files it edited.
    const closed = browser.close().then(
      () => true,
      () => true,
    );
    if (!(await withinMs(closed, FIREFOX_CLOSE_TIMEOUT_MS)) && child?.pid !== undefined) {
      // A hung BiDi session must not keep Firefox: launched detached, it leads its own process
      // group, so this takes its content processes too, and ends the session with them.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Gone in the meantime.
      }
      await withinMs(closed, FIREFOX_CLOSE_TIMEOUT_MS);
    }
    await removeDirs(profile);
  };
  try {
    const page = (await browser.pages())[0] ?? (await browser.newPage());
    return { browser, page, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Whether `settled` settles within `timeoutMs`. */
function withinMs(settled: Promise<boolean>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}
