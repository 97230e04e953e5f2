import { defineConfig } from "@playwright/test";

// End-to-end tests of the UI against a running catalog (CATALOG_URL), in
// Debian's Chromium (CHROMIUM, default /usr/bin/chromium): Playwright's
// own browser downloads are not used. `tests/ui_dev.rs` starts
// `catalog dev` on a copy of the demo org and runs these; by hand:
//   CATALOG_URL=http://127.0.0.1:7007 CATALOG_ORG=examples/acme npx playwright test
export default defineConfig({
  testDir: "tests",
  outputDir: "test-output/results",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: process.env.CATALOG_URL ?? "http://127.0.0.1:7007",
    viewport: { width: 1400, height: 900 },
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    },
    trace: "off",
  },
});
