// The shell: a skip link, the navigation, and one page per route. Every
// page state lives in the URL (path and query), so any view can be shared.
import { Suspense, lazy, useEffect } from "react";
import { Link, Route, Switch, useLocation } from "wouter";
import { CatalogPage } from "./pages/Catalog";
import { SignIn, SignOut } from "./components/SignIn";

// The catalog browser comes with the first script; the other pages (the
// graph library, the charts) load when first opened.
// The page the browser opened on starts loading at once, not after the
// first render.
const opened = typeof window === "undefined" ? "" : window.location.pathname;
const entityModule = () => import("./pages/Entity");
const scorecardsModule = () => import("./pages/Scorecards");
const dashboardModule = () => import("./pages/Dashboard");
const operationsModule = () => import("./pages/Operations");
if (opened.startsWith("/catalog/")) entityModule();
else if (opened.startsWith("/scorecards")) scorecardsModule();
else if (opened.startsWith("/adoption")) dashboardModule();
else if (opened.startsWith("/operations")) operationsModule();
const EntityPage = lazy(() => entityModule().then((m) => ({ default: m.EntityPage })));
const ScorecardsPage = lazy(() => scorecardsModule().then((m) => ({ default: m.ScorecardsPage })));
const DashboardPage = lazy(() => dashboardModule().then((m) => ({ default: m.DashboardPage })));
const OperationsPage = lazy(() => operationsModule().then((m) => ({ default: m.OperationsPage })));

const NAV = [
  { href: "/", label: "Catalog", match: (p: string) => p === "/" || p.startsWith("/catalog") },
  { href: "/scorecards", label: "Scorecards", match: (p: string) => p.startsWith("/scorecards") },
  { href: "/adoption", label: "Adoption", match: (p: string) => p.startsWith("/adoption") },
  { href: "/operations", label: "Operations", match: (p: string) => p.startsWith("/operations") },
];

export function App() {
  const [path] = useLocation();
  // A new page starts at its top, and its title names it.
  useEffect(() => {
    window.scrollTo(0, 0);
    const here = NAV.find((n) => n.match(path));
    document.title = here ? `${here.label} · Catalog` : "Catalog";
  }, [path]);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand" aria-hidden="true">
          ◆ Catalog
        </span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={n.match(path) ? "page" : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <SignOut />
      </header>
      <main id="main" tabIndex={-1}>
        <SignIn />
        <Suspense fallback={<p className="muted">Loading…</p>}>
        <Switch>
          <Route path="/" component={CatalogPage} />
          <Route path="/catalog/:namespace/:kind/:name">
            {(p) => <EntityPage namespace={p.namespace} kind={p.kind} name={p.name} />}
          </Route>
          <Route path="/scorecards">{() => <ScorecardsPage />}</Route>
          <Route path="/scorecards/:id">{(p) => <ScorecardsPage id={p.id} />}</Route>
          <Route path="/adoption" component={DashboardPage} />
          <Route path="/operations" component={OperationsPage} />
          <Route>
            <h1>Not found</h1>
            <p>
              No page here. <Link href="/">Back to the catalog</Link>.
            </p>
          </Route>
        </Switch>
        </Suspense>
      </main>
    </>
  );
}
