// The headless Chromium both browser test files drive.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

/**
 * Launches Debian's Chromium on a fresh profile, with no background
 * traffic: this machine has no network beyond loopback, and Chromium's own
 * calls home would only fail and slow the start. `close()` ends the browser
 * and deletes the profile.
 */
export async function launchChromium(options = {}) {
  const profile = await mkdtemp(join(tmpdir(), "todo-api-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    ...options,
  });
  const close = async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  };
  return { context, close };
}
