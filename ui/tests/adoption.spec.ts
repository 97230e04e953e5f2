// The adoption dashboard against the running catalog: the charts' numbers
// are the API's (read from the API with the very parameters the page used,
// taken from each chart's CSV link), and every CSV link answers CSV.
import { expect, test, type Locator, type Page } from "@playwright/test";
import { api, noSeriousA11yViolations, shot } from "./support";

interface MetricView {
  buckets: { start: string }[];
  series: { key: string; measure: string; values: number[] }[];
}

/** The chart's table: column headers, and the rows' values by row label. */
async function table(figure: Locator): Promise<{ cols: string[]; rows: [string, number[]][] }> {
  await expect(figure.locator("table[data-chart-table] tbody tr").first()).toBeAttached();
  return figure.locator("table[data-chart-table]").evaluate((t) => ({
    cols: Array.from(t.querySelectorAll("thead th")).map((th) => th.textContent ?? ""),
    rows: Array.from(t.querySelectorAll("tbody tr")).map((tr) => [
      tr.querySelector("th")?.textContent ?? "",
      Array.from(tr.querySelectorAll("td")).map((td) => Number(td.getAttribute("data-value"))),
    ]) as [string, number[]][],
  }));
}

/** The JSON the chart was drawn from: its CSV link without `format=csv`. */
async function source(page: Page, figure: Locator): Promise<MetricView> {
  const href = await figure.locator("a.csv").getAttribute("href");
  expect(href).toBeTruthy();
  const u = new URL(href!, "http://x");
  expect(u.searchParams.get("format")).toBe("csv");
  u.searchParams.delete("format");
  return api<MetricView>(page.request, u.pathname + u.search);
}

test("the adoption charts show the API's numbers and CSV", async ({ page }) => {
  await page.goto("/adoption");
  await expect(page.getByRole("heading", { level: 1, name: "Adoption" })).toBeVisible();

  // Entities: the last bucket of each series, as the API counts it.
  const entities = page.getByTestId("metric-entities");
  await expect(async () => {
    const want = await source(page, entities);
    expect(want.series.length).toBeGreaterThan(0);
    const t = await table(entities);
    const last = t.rows[t.rows.length - 1];
    expect(last[0]).toBe(want.buckets[want.buckets.length - 1].start.slice(0, 10));
    expect(t.rows.length).toBe(want.buckets.length);
    const byKey = new Map(t.cols.slice(1).map((c, i) => [c, last[1][i]]));
    for (const s of want.series.filter((x) => x.measure === "entities")) {
      expect(byKey.get(s.key), `entities of ${s.key}`).toBe(s.values[s.values.length - 1]);
    }
  }).toPass();

  // Ownership coverage: the share in every bucket.
  const coverage = page.getByTestId("metric-ownership-coverage");
  await expect(async () => {
    const want = await source(page, coverage);
    const share = want.series.find((s) => s.key === "all" && s.measure === "coverage")!;
    expect(share).toBeTruthy();
    const t = await table(coverage);
    expect(t.rows.map((r) => r[1][0])).toEqual(share.values);
    const orphans = want.series.find((s) => s.key === "all" && s.measure === "orphaned")!;
    const o = await table(page.getByTestId("metric-orphaned"));
    const col = o.cols.indexOf("Orphaned") - 1;
    expect(o.rows.map((r) => r[1][col])).toEqual(orphans.values);
  }).toPass();

  // Changes by type: the last bucket.
  const changes = page.getByTestId("metric-changes");
  await expect(async () => {
    const want = await source(page, changes);
    const t = await table(changes);
    const last = t.rows[t.rows.length - 1][1];
    const byKey = new Map(t.cols.slice(1).map((c, i) => [c, last[i]]));
    for (const s of want.series) expect(byKey.get(s.key)).toBe(s.values[s.values.length - 1]);
  }).toPass();

  // Every CSV link answers CSV.
  const links = await page.locator("figure.chart a.csv").evaluateAll((as) => as.map((a) => a.getAttribute("href")!));
  expect(links.length).toBeGreaterThanOrEqual(4);
  for (const href of new Set(links)) {
    const res = await page.request.get(href);
    expect(res.status(), href).toBe(200);
    expect(res.headers()["content-type"], href).toContain("text/csv");
    expect((await res.text()).split("\n")[0]).toBe("start,end,key,measure,value");
  }

  // The split is in the URL: entities by lifecycle comes back on reload.
  await page.getByTestId("panel-entities").getByLabel("Split by").selectOption("lifecycle");
  await expect(page).toHaveURL(/entitiesBy=lifecycle/);
  await page.reload();
  await expect(page.getByTestId("panel-entities").getByLabel("Split by")).toHaveValue("lifecycle");
  await expect(async () => {
    const want = await source(page, entities);
    expect(new URL((await entities.locator("a.csv").getAttribute("href"))!, "http://x").searchParams.get("by")).toBe(
      "lifecycle",
    );
    const t = await table(entities);
    expect(t.cols.slice(1).sort()).toEqual(want.series.map((s) => s.key).sort());
  }).toPass();
  await page.getByTestId("panel-entities").getByLabel("Split by").selectOption("kind");

  await shot(page, "adoption");
  await noSeriousA11yViolations(page);
});
