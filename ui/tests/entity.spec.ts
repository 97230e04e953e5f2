// The entity page against the running catalog: its facts, relations graph,
// scorecards, history and API definition agree with the API, and an edit
// of the entity's file shows up on the open page without a reload.
import { expect, test, type Page } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { api, noSeriousA11yViolations, orgDir, shot } from "./support";

const COMPONENT = "component:default/cart-service";

interface Relation {
  type: string;
  targetRef: string;
}

function parts(ref: string) {
  const [kind, rest] = ref.split(":");
  const [namespace, name] = rest.split("/");
  return { kind: kind.toLowerCase(), namespace, name };
}

function pagePath(ref: string): string {
  const r = parts(ref);
  return `/catalog/${r.namespace}/${r.kind}/${r.name}`;
}

function byName(ref: string): string {
  const r = parts(ref);
  return `/api/catalog/entities/by-name/${r.kind}/${r.namespace}/${r.name}`;
}

function tail(ref: string): string {
  const r = parts(ref);
  return `${r.kind}/${r.namespace}/${r.name}`;
}

/** Lower-cased kind and namespace, as node ids are written. */
function norm(ref: string): string {
  const slash = ref.indexOf("/");
  return ref.slice(0, slash).toLowerCase() + ref.slice(slash);
}

async function openEntity(page: Page, ref: string, title: string) {
  await page.goto(pagePath(ref));
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(title);
}

test("a component's page: about, graph, scorecards and history agree with the API", async ({ page, request }) => {
  const e = await api(request, byName(COMPONENT));
  const relations: Relation[] = e.relations;
  await openEntity(page, COMPONENT, e.metadata.title ?? e.metadata.name);

  // About
  await expect(page.getByTestId("about-description")).toHaveText(e.metadata.description);
  const owner = relations.find((r) => r.type === "ownedBy")!.targetRef;
  await expect(page.getByTestId("about-owner")).toContainText(parts(owner).name);
  await expect(page.getByTestId("about-owner").getByRole("link")).toHaveAttribute("href", pagePath(owner));
  const system = relations.find((r) => r.type === "partOf" && parts(r.targetRef).kind === "system")!.targetRef;
  await expect(page.getByTestId("about-system")).toContainText(parts(system).name);
  await expect(page.getByTestId("about-lifecycle")).toHaveText(e.spec.lifecycle);
  await expect(page.getByTestId("source-location")).toContainText(
    e.metadata.annotations["backstage.io/managed-by-location"],
  );

  // The graph has a node for every related entity, and the list a link.
  const graph = page.getByTestId("relations-graph");
  for (const r of relations) {
    await expect(graph.locator(`.react-flow__node[data-id="${norm(r.targetRef)}"]`)).toBeVisible();
    await expect(page.getByTestId("relations-list").locator(`a[href="${pagePath(r.targetRef)}"]`).first()).toBeVisible();
  }
  await expect(graph.locator(`.react-flow__node[data-id="${COMPONENT}"]`)).toContainText("this entity");

  // Scorecards: level and score as the API gives them.
  const cards = await api(request, `/api/scorecards/entity/${tail(COMPONENT)}`);
  expect(cards.scorecards.length).toBeGreaterThan(0);
  for (const c of cards.scorecards) {
    const card = page.locator(`[data-testid="scorecard"][data-scorecard="${c.scorecard ?? c.id}"]`);
    await expect(card.getByTestId("scorecard-level")).toHaveText(c.level ?? "none");
    await expect(card.getByTestId("scorecard-score")).toHaveText(String(c.score));
    await expect(card.locator("tbody tr")).toHaveCount(c.checks.length);
    for (const check of c.checks.filter((x: { status: string; reason?: string }) => x.status === "fail" && x.reason)) {
      await expect(card.locator(`tr[data-check="${check.id}"]`)).toContainText(check.reason);
    }
  }

  // History: the created change is there.
  const history = await api(request, `/api/history/entities/${tail(COMPONENT)}`);
  expect(history.changes.some((c: { change: string }) => c.change === "created")).toBe(true);
  const older = page.getByRole("button", { name: /older change/ });
  if (await older.count()) await older.click();
  await expect(page.getByTestId("history").locator('li[data-change="created"]')).toHaveCount(1);
  await expect(page.getByTestId("history").locator("li")).toHaveCount(history.changes.length);

  await shot(page, "entity-component");
  await noSeriousA11yViolations(page);

  // Clicking a graph node opens that entity's page.
  const sys = await api(request, byName(system));
  await graph.locator(`.react-flow__node[data-id="${norm(system)}"]`).click();
  await expect(page).toHaveURL(new RegExp(`${pagePath(system)}$`));
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(sys.metadata.title ?? sys.metadata.name);
  await shot(page, "entity-system");
  await noSeriousA11yViolations(page);
});

test("the graph goes deeper on request and its nodes work from the keyboard", async ({ page, request }) => {
  const e = await api(request, byName(COMPONENT));
  await openEntity(page, COMPONENT, e.metadata.title ?? e.metadata.name);
  const graph = page.getByTestId("relations-graph");
  const nodes = graph.locator(".react-flow__node");
  const direct = new Set((e.relations as Relation[]).map((r) => norm(r.targetRef)));
  await expect(nodes).toHaveCount(direct.size + 1);

  // The relation-type filter leaves the owner out, and brings it back.
  const owner = norm((e.relations as Relation[]).find((r) => r.type === "ownedBy")!.targetRef);
  const ownership = page.getByRole("checkbox", { name: "ownedBy / ownerOf" });
  await ownership.uncheck();
  await expect(graph.locator(`.react-flow__node[data-id="${owner}"]`)).toHaveCount(0);
  await ownership.check();
  await expect(graph.locator(`.react-flow__node[data-id="${owner}"]`)).toHaveCount(1);

  // Depth 2: the neighbours' neighbours join (read them from the API).
  const neighbours = await request.post("/api/catalog/entities/by-refs", {
    data: { entityRefs: [...direct], fields: ["relations"] },
  });
  const second = new Set<string>([COMPONENT, ...direct]);
  for (const n of (await neighbours.json()).items) for (const r of n?.relations ?? []) second.add(norm(r.targetRef));
  await page.getByLabel("Depth").selectOption("2");
  await expect(nodes).toHaveCount(Math.min(second.size, 150));
  await shot(page, "entity-graph");
  await noSeriousA11yViolations(page);

  // A node is a link: focus it and press Enter.
  const api0 = (e.relations as Relation[]).find((r) => r.type === "providesApi")!.targetRef;
  const link = graph.locator(`.react-flow__node[data-id="${norm(api0)}"] a`);
  await link.focus();
  await expect(link).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page).toHaveURL(new RegExp(`${pagePath(api0)}$`));
});

test("an API's page shows its operations", async ({ page, request }) => {
  const e = await api(request, byName(COMPONENT));
  const apiRef = (e.relations as Relation[]).find((r) => r.type === "providesApi")!.targetRef;
  const a = await api(request, byName(apiRef));
  expect(a.spec.type).toBe("openapi");
  const doc = parse(a.spec.definition);
  await openEntity(page, apiRef, a.metadata.title ?? a.metadata.name);
  const ops = page.getByTestId("api-operations");
  for (const p of Object.keys(doc.paths)) await expect(ops).toContainText(p);
  await expect(page.getByTestId("api-title")).toHaveText(doc.info.title);
  await expect(page.getByTestId("api-version")).toHaveText(String(doc.info.version));
  await shot(page, "entity-api");
  await noSeriousA11yViolations(page);
});

test("an edit of the entity's file shows up on the open page", async ({ page, request }) => {
  const e = await api(request, byName(COMPONENT));
  const ann = e.metadata.annotations;
  const origin = ann["backstage.io/managed-by-origin-location"].replace(/^file:/, "");
  const file = path.join(orgDir(), path.relative(origin, ann["backstage.io/managed-by-location"].replace(/^file:/, "")));
  const original = fs.readFileSync(file, "utf8");
  const line = `description: ${e.metadata.description}`;
  expect(original).toContain(line);
  const unique = `Edited by the entity page test ${Date.now().toString(36)}`;

  // The page subscribes to the feed as it opens; changes from then on reach it.
  const subscribed = page.waitForRequest((r) => r.url().includes("/api/history/events/stream"));
  await openEntity(page, COMPONENT, e.metadata.title ?? e.metadata.name);
  await subscribed;
  await expect(page.getByTestId("history").locator("li").first()).toBeVisible();
  const older = page.getByRole("button", { name: /older change/ });
  if (await older.count()) await older.click();
  const before = await page.getByTestId("history").locator("li").count();
  try {
    fs.writeFileSync(file, original.replace(line, `description: ${unique}`));
    await expect(page.getByTestId("about-description")).toHaveText(unique);
    const history = page.getByTestId("history").locator("li");
    await expect(history).toHaveCount(before + 1);
    await expect(history.first()).toHaveAttribute("data-change", "updated");
    await expect(history.first().locator("ins", { hasText: unique })).toContainText("+");
    await expect(history.first().locator("del", { hasText: e.metadata.description })).toContainText("-");
    await shot(page, "entity-live");
    await noSeriousA11yViolations(page);
  } finally {
    fs.writeFileSync(file, original);
  }
  await expect(page.getByTestId("about-description")).toHaveText(e.metadata.description);
});

test("as of an instant, and a missing entity", async ({ page, request }) => {
  const e = await api(request, byName(COMPONENT));
  const history = await api(request, `/api/history/entities/${tail(COMPONENT)}`);
  const created = history.changes.find((c: { change: string }) => c.change === "created");
  const at = new Date(Date.parse(created.at) + 1000).toISOString();
  await page.goto(`${pagePath(COMPONENT)}?asOf=${encodeURIComponent(at)}`);
  await expect(page.getByTestId("as-of")).toBeVisible();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(e.metadata.title ?? e.metadata.name);
  await expect(page.getByTestId("history").locator('li[data-change="created"]')).toHaveCount(1);
  await noSeriousA11yViolations(page);
  await page.getByRole("link", { name: "Back to the present" }).click();
  await expect(page).toHaveURL(new RegExp(`${pagePath(COMPONENT)}$`));
  await expect(page.getByTestId("as-of")).toHaveCount(0);

  await page.goto("/catalog/default/component/no-such-entity-here");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Entity not found");
  await expect(page.getByTestId("not-found")).toContainText("component:default/no-such-entity-here");
  await shot(page, "entity-not-found");
  await noSeriousA11yViolations(page);
});
