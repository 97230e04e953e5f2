// The UI's speed on a running catalog, in Debian's Chromium: first render
// of the catalog page (navigation start to the first rows on screen, each
// run in a fresh browser context, so nothing is cached), a jump to the
// middle of the table (scroll to the row block there being drawn), a facet
// choice (click to the new count), and an entity page (navigation to its
// heading and graph). `catalog bench --ui` runs it after ingest; by hand:
//   node ui/bench/first-render.mjs http://127.0.0.1:7007 [runs]
import { chromium } from "playwright-core";

const base = process.argv[2] ?? "http://127.0.0.1:7007";
const runs = Number(process.argv[3] ?? 10);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});

const firstRow = '.vbody [role="row"] .entity-link';
const times = { first: [], jump: [], facet: [], entity: [] };
let total = 0;
let entityHref = null;

// The instant the first row is in the document, seen from inside the page
// (a poll from outside would add its own delay).
const watchFirstRow = (selector) => {
  const seen = () => {
    if (!window.__firstRow && document.querySelector(selector)) window.__firstRow = performance.now();
  };
  new MutationObserver(seen).observe(document, { subtree: true, childList: true });
};

for (let i = 0; i < runs; i++) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addInitScript(watchFirstRow, firstRow);
  const page = await context.newPage();
  await page.goto(`${base}/`, { waitUntil: "commit" });
  await page.waitForSelector(firstRow, { timeout: 120_000 });
  times.first.push(await page.evaluate(() => window.__firstRow));
  const text = await page.locator(".result-count").textContent();
  total = Number((text ?? "0").replace(/[^0-9]/g, ""));
  entityHref ??= await page.locator(firstRow).first().getAttribute("href");

  // Jump to the middle: the block there is fetched and drawn.
  const middle = Math.floor(total / 2);
  const t0 = await page.evaluate(() => performance.now());
  await page.locator(".vbody").evaluate((el) => el.scrollTo(0, el.scrollHeight / 2));
  await page.waitForSelector(`.vbody [role="row"][data-index="${middle}"] .entity-link, .vbody [role="row"][data-index="${middle + 1}"] .entity-link`, {
    timeout: 120_000,
  });
  times.jump.push((await page.evaluate(() => performance.now())) - t0);

  // A facet choice: the count changes.
  const box = page.locator('fieldset[data-facet="Lifecycle"] input[type="checkbox"]').first();
  if (await box.count()) {
    const before = await page.locator(".result-count").textContent();
    const t1 = await page.evaluate(() => performance.now());
    await box.check();
    await page.waitForFunction((b) => {
      const t = document.querySelector(".result-count")?.textContent;
      return t && t !== b && !t.startsWith("Loading");
    }, before, { timeout: 120_000 });
    times.facet.push((await page.evaluate(() => performance.now())) - t1);
  }
  await context.close();

  if (entityHref) {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const p = await ctx.newPage();
    await p.goto(`${base}${entityHref}`, { waitUntil: "commit" });
    await p.waitForSelector(".react-flow__node", { timeout: 120_000 });
    times.entity.push(await p.evaluate(() => performance.now()));
    await ctx.close();
  }
}
await browser.close();

const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};
const line = (label, xs) =>
  console.log(`${label}: p50 ${pct(xs, 0.5).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (${xs.length} runs)`);
console.log(`UI on ${base}, table of ${total} entities, Chromium, cold context per run:`);
line("  first render of the catalog page (navigation to first rows)", times.first);
line(`  jump to the middle of the table (row ${Math.floor(total / 2)})`, times.jump);
if (times.facet.length) line("  a facet choice (click to the new count)", times.facet);
if (times.entity.length) line("  entity page (navigation to its graph)", times.entity);
