// The catalog browser against the running catalog: counts, facets, search,
// sort, shareable URLs, kinds, time travel, scrolling and live updates,
// each compared with what the API answers.
import { test, expect, type Page } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { api, noSeriousA11yViolations, orgDir, shot } from "./support";

interface Page_ {
  items: { metadata: { name: string; title?: string } }[];
  totalItems: number;
}

async function query(request: Parameters<typeof api>[0], q: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const res = await request.post("/api/catalog/entities/by-query", {
    data: { query: q, limit: 1000, fields: ["metadata.name", "metadata.title"], orderBy: [{ field: "metadata.name", order: "asc" }], ...extra },
  });
  expect(res.status()).toBe(200);
  return (await res.json()) as Page_;
}

const rowNames = (page: Page) => page.locator('.vbody [role="row"] .entity-link');
const countText = (page: Page) => page.locator(".result-count");
const label = (e: Page_["items"][number]) => e.metadata.title ?? e.metadata.name;

test("components first, counted and listed as the API has them", async ({ page, request }) => {
  const all = await query(request, { kind: "component" });
  await page.goto("/");
  await expect(countText(page)).toHaveText(`${all.totalItems} entities`);
  await expect(page.getByRole("button", { name: /^Component/ })).toHaveAttribute("aria-pressed", "true");
  await expect(rowNames(page).first()).toHaveText(label(all.items[0]));
  await expect(rowNames(page).nth(1)).toHaveText(label(all.items[1]));
  // Only the rows on screen exist; the last one is reached by scrolling.
  const rendered = await page.locator('.vbody [role="row"]').count();
  expect(rendered).toBeLessThan(all.totalItems);
  await page.locator(".vbody").evaluate((el) => el.scrollTo(0, el.scrollHeight));
  await expect(page.locator(`.vbody [role="row"][data-index="${all.totalItems - 1}"] .entity-link`)).toHaveText(
    label(all.items[all.totalItems - 1]),
  );
  await shot(page, "catalog");
  await noSeriousA11yViolations(page);
});

test("facets filter with the API's counts, and the URL keeps the view", async ({ page, request }) => {
  const facets = await api<{ facets: Record<string, { value: string; count: number }[]> }>(
    request,
    "/api/catalog/entity-facets?facet=spec.type&filter=kind=component",
  );
  const service = facets.facets["spec.type"].find((f) => f.value === "service")!;
  await page.goto("/");
  const box = page.getByRole("group", { name: "Type" }).getByRole("checkbox", { name: /^service \d+$/ });
  await expect(box).toBeVisible();
  await expect(page.getByRole("group", { name: "Type" }).getByText(String(service.count), { exact: true })).toBeVisible();
  await box.check();
  await expect(page).toHaveURL(/[?&]type=service/);
  const services = await query(request, { $all: [{ kind: "component" }, { "spec.type": { $in: ["service"] } }] });
  expect(services.totalItems).toBe(service.count);
  await expect(countText(page)).toHaveText(`${services.totalItems} entities`);
  await expect(rowNames(page).first()).toHaveText(label(services.items[0]));

  // Sorting by name, descending.
  await page.getByRole("button", { name: /^Name/ }).click();
  await expect(page).toHaveURL(/dir=desc/);
  const desc = await query(request, { $all: [{ kind: "component" }, { "spec.type": { $in: ["service"] } }] }, { orderBy: [{ field: "metadata.name", order: "desc" }] });
  await expect(rowNames(page).first()).toHaveText(label(desc.items[0]));
  await expect(page.getByRole("columnheader", { name: /Name/ })).toHaveAttribute("aria-sort", "descending");

  // The same URL, opened afresh, shows the same view.
  const shared = page.url();
  const other = await page.context().newPage();
  await other.goto(shared);
  await expect(other.getByRole("group", { name: "Type" }).getByRole("checkbox", { name: /^service/ })).toBeChecked();
  await expect(countText(other)).toHaveText(`${services.totalItems} entities`);
  await expect(rowNames(other).first()).toHaveText(label(desc.items[0]));
  await other.close();
});

test("full-text search and the kind picker", async ({ page, request }) => {
  const hits = await query(request, { kind: "component" }, {
    fullTextFilter: { term: "cart", fields: ["metadata.name", "metadata.title", "metadata.description", "spec.type", "spec.owner", "metadata.tags"] },
  });
  expect(hits.totalItems).toBeGreaterThan(0);
  await page.goto("/");
  await page.getByLabel("Search", { exact: true }).fill("cart");
  await expect(page).toHaveURL(/q=cart/);
  await expect(countText(page)).toHaveText(`${hits.totalItems} ${hits.totalItems === 1 ? "entity" : "entities"}`);
  await expect(rowNames(page)).toHaveText(hits.items.map(label));

  // Another kind keeps the search but not the facet choices.
  await page.getByLabel("Search", { exact: true }).fill("");
  await expect(page).not.toHaveURL(/q=cart/);
  const apis = await query(request, { kind: "api" });
  await page.getByRole("button", { name: /^API \d+/ }).click();
  await expect(page).toHaveURL(/kind=api/);
  await expect(countText(page)).toHaveText(`${apis.totalItems} entities`);
  await expect(rowNames(page).first()).toHaveText(label(apis.items[0]));
  await shot(page, "catalog-apis");
});

test("the time picker shows the catalog as it stood", async ({ page }) => {
  await page.goto("/?asOf=2000-01-01T00:00:00Z");
  await expect(page.getByRole("status").filter({ hasText: "as it stood" })).toBeVisible();
  await expect(countText(page)).toHaveText("0 entities");
  await page.getByRole("button", { name: "Back to now" }).click();
  await expect(page).not.toHaveURL(/asOf/);
  await expect(countText(page)).not.toHaveText("0 entities");
  await shot(page, "catalog-as-of");
});

test("a new file's component appears without reloading", async ({ page, request }) => {
  const before = await query(request, { kind: "component" });
  const file = path.join(orgDir(), "components", `ui-live-${Date.now()}.yaml`);
  const name = path.basename(file, ".yaml");
  await page.goto("/");
  await expect(countText(page)).toHaveText(`${before.totalItems} entities`);
  await expect(page.locator('.live[data-connected="true"]')).toBeVisible();
  try {
    fs.writeFileSync(
      file,
      `apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${name}\n  description: Written by the UI test\nspec:\n  type: service\n  lifecycle: experimental\n  owner: platform-team\n`,
    );
    await expect(countText(page)).toHaveText(`${before.totalItems + 1} entities`);
    await page.getByLabel("Search", { exact: true }).fill(name);
    await expect(rowNames(page)).toHaveText([name]);
  } finally {
    fs.rmSync(file, { force: true });
  }
  await page.getByLabel("Search", { exact: true }).fill("");
  await expect(countText(page)).toHaveText(`${before.totalItems} entities`);
});
