/** Debian's Chromium, headless, driven by playwright-core, with a fresh profile in `dir`. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

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
