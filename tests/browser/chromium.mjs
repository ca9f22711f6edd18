// Debian's Chromium, headless, through playwright-core, with the flags every browser test needs
// (no sandbox as root, no GPU, no first-run screens) and those a test adds.
import { chromium } from "playwright-core";

/** Flags that keep Chromium from talking to anything but the page's servers. */
export const QUIET = ["--disable-quic", "--disable-background-networking", "--disable-component-update",
  "--disable-sync"];

/** Launches Chromium (`CHROMIUM` or /usr/bin/chromium) with the common flags and `args`. */
export function launchChromium(args = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", ...args],
  });
}
