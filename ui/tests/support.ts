// What every UI test shares: screenshots of each page (kept in
// test-output/screenshots for people to look at), axe-core's accessibility
// check, and API reads to compare the pages with.
import AxeBuilder from "@axe-core/playwright";
import { expect, type Page, type APIRequestContext } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";

export const SHOTS = path.join(import.meta.dirname, "..", "test-output", "screenshots");

/** Saves a full-page screenshot as `test-output/screenshots/<name>.png`. */
export async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Fails on any serious or critical accessibility violation axe-core finds. */
export async function noSeriousA11yViolations(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const report = bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  expect(report, "axe-core: serious or critical violations").toEqual([]);
}

/** GETs a JSON document of the API. */
export async function api<T = any>(request: APIRequestContext, path: string): Promise<T> {
  const res = await request.get(path);
  expect(res.status(), `GET ${path}`).toBe(200);
  return (await res.json()) as T;
}

/** The demo org's directory the running catalog reads (for edits). */
export function orgDir(): string {
  const dir = process.env.CATALOG_ORG;
  if (!dir) throw new Error("CATALOG_ORG names the directory the catalog under test reads");
  return dir;
}
