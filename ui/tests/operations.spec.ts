// The operations page against the running catalog: sources and their
// last sync, processing errors by location and the projection's lag, as
// the API reports them.
import { test, expect } from "@playwright/test";
import { api, noSeriousA11yViolations, shot } from "./support";

test("sources, processing errors and lag as the API reports them", async ({ page, request }) => {
  const sources = await api<{ sources: { id: string; kind: string; last_sync: { listed: number } | null }[] }>(
    request,
    "/api/ingest/sources",
  );
  const errors = await api<{ location: { target: string }; errors: { message: string }[] }[]>(request, "/api/catalog/errors");
  const ready = await api<{ lag: number }>(request, "/readyz");
  await page.goto("/operations");
  await expect(page.getByRole("heading", { level: 1, name: "Operations" })).toBeVisible();
  for (const s of sources.sources) {
    const card = page.locator(`[data-testid="source"][data-source="${s.id}"]`);
    await expect(card.getByRole("heading", { level: 3 })).toContainText(s.id);
    await expect(card.getByRole("heading", { level: 3 })).toContainText(s.kind);
    if (s.last_sync) await expect(card).toContainText(`${s.last_sync.listed} locations`);
  }
  const total = errors.reduce((n, l) => n + l.errors.length, 0);
  await expect(page.getByTestId("error-count")).toHaveText(String(total));
  expect(total).toBeGreaterThan(0);
  for (const l of errors) {
    const block = page.getByTestId("location-errors").filter({ hasText: l.location.target });
    for (const e of l.errors) await expect(block).toContainText(e.message);
  }
  await expect(page.getByTestId("lag")).toContainText(`${ready.lag} messages behind`);
  await shot(page, "operations");
  await noSeriousA11yViolations(page);
});
