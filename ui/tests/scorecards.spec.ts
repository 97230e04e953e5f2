// The scorecard pages against the running catalog: every number the page
// shows is compared with what the API answers (nothing hard-coded).
import { expect, test, type Locator, type Page } from "@playwright/test";
import { api, noSeriousA11yViolations, shot } from "./support";

interface Card {
  id: string;
  title?: string;
  levels?: string[];
  checks: { id: string; level: string }[];
}
interface Group {
  group: string;
  entities: number;
  levels: { level: string | null; entities: number }[];
  meanScore: number;
  checks?: { id: string; passRate: number }[];
}

const levelLabel = (l: string | null) => (l === null ? "No level" : l.charAt(0).toUpperCase() + l.slice(1));

/** The numbers of a chart's table: row label -> column values. */
async function chartNumbers(figure: Locator): Promise<Map<string, number[]>> {
  await expect(figure.locator("table[data-chart-table] tbody tr").first()).toBeAttached();
  const rows = await figure.locator("table[data-chart-table] tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [
      tr.querySelector("th")?.textContent ?? "",
      Array.from(tr.querySelectorAll("td")).map((td) => Number(td.getAttribute("data-value"))),
    ]),
  );
  return new Map(rows as [string, number[]][]);
}

async function cards(page: Page): Promise<Card[]> {
  return (await api<{ items: Card[] }>(page.request, "/api/scorecards")).items;
}

test("the list shows every scorecard", async ({ page }) => {
  const items = await cards(page);
  expect(items.length).toBeGreaterThan(0);
  await page.goto("/scorecards");
  await expect(page.getByRole("heading", { level: 1, name: "Scorecards" })).toBeVisible();
  for (const c of items) {
    const link = page.getByRole("link", { name: c.title ?? c.id, exact: true });
    await expect(link).toBeVisible();
    await expect(link).toHaveAttribute("href", `/scorecards/${encodeURIComponent(c.id)}`);
    const all = (await api<{ groups: Group[] }>(page.request, `/api/scorecards/${c.id}/rollup?by=all`)).groups[0];
    const card = page.locator(`[data-testid="scorecard-card"][data-id="${c.id}"]`);
    await expect(card).toContainText(`${all.entities} entities`);
  }
  await expect(page.locator('[data-testid="scorecard-card"]')).toHaveCount(items.length);
  await shot(page, "scorecards");
  await noSeriousA11yViolations(page);
});

test("a card's page shows the API's rollups, pass rates and entities", async ({ page }) => {
  const items = await cards(page);
  const card = items.find((c) => c.id === "production-readiness") ?? items[0];
  const base = `/api/scorecards/${encodeURIComponent(card.id)}`;
  const all = (await api<{ groups: Group[] }>(page.request, `${base}/rollup?by=all`)).groups[0];

  await page.goto(`/scorecards/${encodeURIComponent(card.id)}`);
  await expect(page.getByRole("heading", { level: 1, name: card.title ?? card.id })).toBeVisible();

  // Level distribution: one row per level (and "No level"), as the rollup counts.
  await expect(async () => {
    const dist = await chartNumbers(page.getByTestId("level-distribution"));
    for (const l of all.levels) {
      expect(dist.get(levelLabel(l.level)), `entities at ${l.level}`).toEqual([l.entities]);
    }
  }).toPass();
  // Pass rate per check.
  await expect(async () => {
    const rates = await chartNumbers(page.getByTestId("check-pass-rates"));
    expect(rates.size).toBe(card.checks.length);
    for (const c of all.checks ?? []) {
      expect(rates.get(c.id), `pass rate of ${c.id}`).toEqual([c.passRate]);
    }
  }).toPass();

  // The rollup by owner: every group of the API, with its counts.
  const owners = (await api<{ groups: Group[] }>(page.request, `${base}/rollup?by=owner`)).groups;
  const table = page.getByTestId("rollup-table");
  await expect(table).toHaveAttribute("data-by", "owner");
  await expect(table.locator("tbody tr")).toHaveCount(owners.length);
  for (const g of owners) {
    const row = table.locator(`tbody tr[data-group="${g.group}"]`);
    await expect(row.locator('[data-col="entities"]')).toHaveText(String(g.entities));
    for (const l of g.levels) {
      await expect(row.locator(`[data-level="${l.level ?? "none"}"]`)).toHaveText(String(l.entities));
    }
  }

  // Systems: the dimension is in the URL and the table follows.
  const systems = (await api<{ groups: Group[] }>(page.request, `${base}/rollup?by=system`)).groups;
  await page.getByRole("group", { name: "Roll up by" }).getByRole("button", { name: "Systems" }).click();
  await expect(page).toHaveURL(/[?&]by=system/);
  await expect(table).toHaveAttribute("data-by", "system");
  await expect(table.locator("tbody tr")).toHaveCount(systems.length);
  await page.getByRole("group", { name: "Roll up by" }).getByRole("button", { name: "Teams" }).click();
  await expect(table).toHaveAttribute("data-by", "owner");

  // Entities at the level most of them reached.
  const level = [...all.levels].filter((l) => l.level !== null).sort((a, b) => b.entities - a.entities)[0].level!;
  await page.getByTestId("level-picker").locator(`button[data-level="${level}"]`).click();
  await expect(page).toHaveURL(new RegExp(`[?&]level=${level}`));
  const want = await api<{ items: { entityRef: string; score: number }[] }>(
    page.request,
    `${base}/entities?level=${level}&limit=25`,
  );
  const list = page.getByTestId("level-entities");
  await expect(list.locator("tbody tr")).toHaveCount(want.items.length);
  const shown = await list.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-ref")));
  expect(shown).toEqual(want.items.map((i) => i.entityRef));
  // Links go to the entity pages.
  const first = want.items[0].entityRef;
  const [kind, rest] = first.split(":");
  const [ns, name] = rest.split("/");
  await expect(list.locator(`tbody tr[data-ref="${first}"] th a`)).toHaveAttribute(
    "href",
    `/catalog/${ns}/${kind}/${name}`,
  );

  // The page as shared: the URL brings the same view back.
  await page.reload();
  await expect(page.getByTestId("level-picker").locator(`button[data-level="${level}"]`)).toHaveAttribute(
    "aria-pressed",
    "true",
  );
  await expect(list.locator("tbody tr")).toHaveCount(want.items.length);
  await expect(page.getByTestId("trend-levels").locator("table[data-chart-table] tbody tr").first()).toBeAttached();
  await shot(page, `scorecard-${card.id}`);
  await noSeriousA11yViolations(page);
});
