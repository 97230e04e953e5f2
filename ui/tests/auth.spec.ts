// A catalog whose reads need a token (`auth.read: token`): the UI asks for
// one, refuses to show anything without it, and with it reads every page
// and follows the change feed. Runs only against such a catalog
// (CATALOG_TOKEN set: tests/ui_dev.rs starts one).
import { test, expect } from "@playwright/test";
import { noSeriousA11yViolations, shot } from "./support";

const secret = process.env.CATALOG_TOKEN;
test.skip(!secret, "needs a catalog whose reads need a token (CATALOG_TOKEN)");

test("reads need a token: asked for, refused when wrong, used everywhere when right", async ({ page, request }) => {
  const denied = await request.get("/api/catalog/entities/by-query?filter=kind=component&limit=1");
  expect(denied.status()).toBe(401);
  const res = await request.get("/api/catalog/entities/by-query?filter=kind=component&limit=1", {
    headers: { authorization: `Bearer ${secret}` },
  });
  expect(res.status()).toBe(200);
  const total = (await res.json()).totalItems as number;

  await page.goto("/");
  const form = page.getByRole("region", { name: "Sign in to read the catalog" });
  await expect(form).toBeVisible();
  await expect(page.locator(".result-count")).not.toHaveText(/\d+ entities/);
  await shot(page, "sign-in");
  await noSeriousA11yViolations(page);

  await form.getByLabel("API token").fill("not-the-token");
  await form.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("region", { name: "Sign in to read the catalog" })).toContainText("refused");

  await page.getByRole("region", { name: "Sign in to read the catalog" }).getByLabel("API token").fill(secret!);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.locator(".result-count")).toHaveText(`${total} entities`);
  await expect(page.getByRole("region", { name: "Sign in to read the catalog" })).toHaveCount(0);
  // The change feed is read with the token too.
  await expect(page.locator('.live[data-connected="true"]')).toBeVisible();
  // Other pages read with it.
  await page.getByRole("link", { name: "Operations" }).click();
  await expect(page.getByTestId("error-count")).toHaveText(/\d+/);
  await expect(page.getByRole("region", { name: "Sign in to read the catalog" })).toHaveCount(0);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("region", { name: "Sign in to read the catalog" })).toBeVisible();
});
