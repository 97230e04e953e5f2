// The catalog browser: a kind picker, facet filters with counts, full-text
// search, a sortable table that scrolls through any number of rows (only
// the rows on screen are rendered, and only their pages are fetched), and
// a time picker. Every choice lives in the URL's query, so a view can be
// shared; the page follows the change feed while it shows the present.
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { useVirtualizer } from "@tanstack/react-virtual";
import {
  type Entity,
  type FacetsResponse,
  type QueryPage,
  entityPath,
  errorText,
  humanRef,
  parseRef,
  postJson,
  refOf,
  url,
  useApi,
  useDebounced,
} from "../api";
import { useFeed } from "../live";
import "./catalog.css";

/** Facets offered beside the table: the URL key, the entity field, a label. */
const FACETS = [
  { key: "type", field: "spec.type", label: "Type" },
  { key: "lifecycle", field: "spec.lifecycle", label: "Lifecycle" },
  { key: "owner", field: "relations.ownedBy", label: "Owner" },
  { key: "tag", field: "metadata.tags", label: "Tags" },
  { key: "namespace", field: "metadata.namespace", label: "Namespace" },
] as const;

type FacetKey = (typeof FACETS)[number]["key"];

/** Sortable columns: URL value, entity field, heading. */
const COLUMNS = [
  { key: "name", field: "metadata.name", label: "Name", width: "22%" },
  { key: "type", field: "spec.type", label: "Type", width: "9%" },
  { key: "owner", field: "spec.owner", label: "Owner", width: "15%" },
  { key: "system", field: "spec.system", label: "System", width: "12%" },
  { key: "lifecycle", field: "spec.lifecycle", label: "Lifecycle", width: "9%" },
  { key: "tags", field: "", label: "Tags", width: "13%" },
  { key: "description", field: "", label: "Description", width: "20%" },
] as const;

const FIELDS = [
  "kind",
  "metadata.name",
  "metadata.namespace",
  "metadata.title",
  "metadata.description",
  "metadata.tags",
  "spec.type",
  "spec.owner",
  "spec.lifecycle",
  "spec.system",
];

const TEXT_FIELDS = ["metadata.name", "metadata.title", "metadata.description", "spec.type", "spec.owner", "metadata.tags"];

const PAGE = 100;
const ROW_HEIGHT = 38;
/** Facet values shown before "show all". */
const FACET_SHOWN = 12;

interface View {
  kind: string;
  q: string;
  sort: string;
  dir: "asc" | "desc";
  asOf: string;
  filters: Record<FacetKey, string[]>;
}

function readView(search: string): View {
  const p = new URLSearchParams(search);
  const filters = {} as Record<FacetKey, string[]>;
  for (const f of FACETS) filters[f.key] = p.getAll(f.key);
  const dir = p.get("dir") === "desc" ? "desc" : "asc";
  return {
    kind: p.get("kind") ?? "component",
    q: p.get("q") ?? "",
    sort: p.get("sort") ?? "name",
    dir,
    asOf: p.get("asOf") ?? "",
    filters,
  };
}

function writeView(v: View): string {
  const p = new URLSearchParams();
  if (v.kind !== "component") p.set("kind", v.kind);
  for (const f of FACETS) v.filters[f.key].forEach((x) => p.append(f.key, x));
  if (v.q) p.set("q", v.q);
  if (v.sort !== "name") p.set("sort", v.sort);
  if (v.dir !== "asc") p.set("dir", v.dir);
  if (v.asOf) p.set("asOf", v.asOf);
  const s = p.toString();
  return s ? `/?${s}` : "/";
}

/** The predicate query of a view, leaving out one facet's own choice. */
function predicate(v: View, without?: FacetKey): Record<string, unknown> {
  const all: Record<string, unknown>[] = [];
  if (v.kind) all.push({ kind: v.kind });
  for (const f of FACETS) {
    if (f.key === without) continue;
    const chosen = v.filters[f.key];
    if (chosen.length) all.push({ [f.field]: { $in: chosen } });
  }
  return all.length === 1 ? all[0] : { $all: all };
}

export function CatalogPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const view = useMemo(() => readView(search), [search]);
  const set = useCallback(
    (change: Partial<View>) => navigate(writeView({ ...view, ...change }), { replace: false }),
    [navigate, view],
  );
  // Live: while showing the present, any entity change refreshes counts and rows.
  const [version, setVersion] = useState(0);
  const bump = useDebounced(() => setVersion((n) => n + 1), 300);
  const connected = useFeed(view.asOf ? null : { kind: ["entity"] }, bump);

  return (
    <div className="catalog">
      <div className="row catalog-head">
        <h1 className="grow">Catalog</h1>
        {!view.asOf && (
          <span className="live" data-connected={connected} aria-live="polite">
            {connected ? "live" : "connecting"}
          </span>
        )}
        <TimePicker asOf={view.asOf} onChange={(asOf) => set({ asOf })} />
      </div>
      {view.asOf && (
        <p className="notice" role="status">
          Showing the catalog as it stood at <strong>{new Date(view.asOf).toLocaleString()}</strong> ({view.asOf}).{" "}
          <button type="button" onClick={() => set({ asOf: "" })}>
            Back to now
          </button>
        </p>
      )}
      <KindPicker view={view} version={version} onPick={(kind) => set({ kind, sort: "name", dir: "asc", filters: emptyFilters() })} />
      <div className="catalog-body">
        <aside className="facets" aria-label="Filters">
          <SearchBox q={view.q} onSearch={(q) => set({ q })} />
          <Facets view={view} version={version} onChange={(filters) => set({ filters })} />
        </aside>
        <section className="results" aria-label="Entities">
          <Results view={view} version={version} onSort={(sort, dir) => set({ sort, dir })} />
        </section>
      </div>
    </div>
  );
}

function emptyFilters(): Record<FacetKey, string[]> {
  const f = {} as Record<FacetKey, string[]>;
  for (const x of FACETS) f[x.key] = [];
  return f;
}

function TimePicker({ asOf, onChange }: { asOf: string; onChange: (asOf: string) => void }) {
  // datetime-local speaks local time without a zone; the API takes RFC 3339.
  const local = asOf ? toLocalInput(new Date(asOf)) : "";
  const [value, setValue] = useState(local);
  useEffect(() => setValue(local), [local]);
  return (
    <form
      className="row time-picker"
      onSubmit={(e) => {
        e.preventDefault();
        if (!value) return onChange("");
        const d = new Date(value);
        if (!Number.isNaN(d.getTime())) onChange(d.toISOString().replace(/\.\d{3}Z$/, "Z"));
      }}
    >
      <label htmlFor="as-of">As of</label>
      <input
        id="as-of"
        type="datetime-local"
        step="1"
        value={value}
        max={toLocalInput(new Date())}
        onChange={(e) => setValue(e.target.value)}
      />
      <button type="submit">Show</button>
    </form>
  );
}

function toLocalInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function KindPicker({ view, version, onPick }: { view: View; version: number; onPick: (kind: string) => void }) {
  const facets = useApi<FacetsResponse>("/api/catalog/entity-facets", { facet: "kind", asOf: view.asOf, v: version || undefined });
  const kinds = facets.data?.facets.kind ?? [];
  // Components first, then by count.
  const sorted = [...kinds].sort((a, b) =>
    a.value.toLowerCase() === "component" ? -1 : b.value.toLowerCase() === "component" ? 1 : b.count - a.count,
  );
  return (
    <nav className="kinds" aria-label="Kinds">
      {facets.error && <p className="error">Kinds: {errorText(facets.error)}</p>}
      <ul>
        {sorted.map((k) => {
          const value = k.value.toLowerCase();
          const current = value === view.kind;
          return (
            <li key={value}>
              <button type="button" aria-pressed={current} onClick={() => onPick(value)}>
                {k.value} <span className="count">{k.count}</span>
              </button>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}

function SearchBox({ q, onSearch }: { q: string; onSearch: (q: string) => void }) {
  const [value, setValue] = useState(q);
  useEffect(() => setValue(q), [q]);
  const later = useDebounced(onSearch, 250);
  return (
    <div className="search">
      <label htmlFor="catalog-search">Search</label>
      <input
        id="catalog-search"
        type="search"
        placeholder="name, description, owner, tag…"
        value={value}
        onChange={(e) => {
          setValue(e.target.value);
          later(e.target.value.trim());
        }}
      />
    </div>
  );
}

/**
 * Counts of each facet under every other choice (a facet's own choice is
 * left out of its counts, so its other values stay visible): facets with
 * no choice share one request, each chosen facet has its own.
 */
function Facets({ view, version, onChange }: { view: View; version: number; onChange: (f: Record<FacetKey, string[]>) => void }) {
  const chosen = FACETS.filter((f) => view.filters[f.key].length > 0);
  const free = FACETS.filter((f) => view.filters[f.key].length === 0);
  const [counts, setCounts] = useState<Partial<Record<FacetKey, { value: string; count: number }[]>>>({});
  const [error, setError] = useState<string>();
  const key = JSON.stringify([view.kind, view.filters, view.asOf, version]);
  useEffect(() => {
    const ctl = new AbortController();
    const path = url("/api/catalog/entity-facets", { asOf: view.asOf });
    const asks: Promise<void>[] = [];
    const next: Partial<Record<FacetKey, { value: string; count: number }[]>> = {};
    if (free.length) {
      asks.push(
        postJson<FacetsResponse>(path, { facets: free.map((f) => f.field), query: predicate(view) }, ctl.signal).then((r) => {
          for (const f of free) next[f.key] = r.facets[f.field] ?? [];
        }),
      );
    }
    for (const f of chosen) {
      asks.push(
        postJson<FacetsResponse>(path, { facets: [f.field], query: predicate(view, f.key) }, ctl.signal).then((r) => {
          next[f.key] = r.facets[f.field] ?? [];
        }),
      );
    }
    Promise.all(asks)
      .then(() => {
        setCounts(next);
        setError(undefined);
      })
      .catch((e) => {
        if (e.name !== "AbortError") setError(errorText(e));
      });
    return () => ctl.abort();
    // `key` stands for everything the counts depend on.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  return (
    <>
      {error && <p className="error">Filters: {error}</p>}
      {FACETS.map((f) => (
        <FacetGroup
          key={f.key}
          label={f.label}
          values={counts[f.key] ?? []}
          chosen={view.filters[f.key]}
          display={f.key === "owner" ? (v) => short(v, "group") : (v) => v}
          onChange={(values) => onChange({ ...view.filters, [f.key]: values })}
        />
      ))}
    </>
  );
}

function FacetGroup(props: {
  label: string;
  values: { value: string; count: number }[];
  chosen: string[];
  display: (v: string) => string;
  onChange: (values: string[]) => void;
}) {
  const { label, values, chosen, display, onChange } = props;
  const [all, setAll] = useState(false);
  const [within, setWithin] = useState("");
  // Chosen values stay listed even with no entity left under other choices.
  const merged = [...values];
  for (const c of chosen) if (!merged.some((v) => v.value === c)) merged.push({ value: c, count: 0 });
  const needle = within.trim().toLowerCase();
  const matching = needle ? merged.filter((v) => v.value.toLowerCase().includes(needle)) : merged;
  const shown = all || needle ? matching : matching.slice(0, FACET_SHOWN);
  const id = `facet-${label.toLowerCase()}`;
  if (merged.length === 0) return null;
  return (
    <fieldset className="facet" data-facet={label}>
      <legend>{label}</legend>
      {merged.length > FACET_SHOWN && (
        <input
          type="search"
          className="facet-filter"
          aria-label={`Find a ${label.toLowerCase()} value`}
          placeholder={`Find among ${merged.length}`}
          value={within}
          onChange={(e) => setWithin(e.target.value)}
        />
      )}
      <ul>
        {shown.map((v) => {
          const checked = chosen.includes(v.value);
          const inputId = `${id}-${v.value}`;
          return (
            <li key={v.value}>
              <input
                type="checkbox"
                id={inputId}
                checked={checked}
                onChange={() => onChange(checked ? chosen.filter((c) => c !== v.value) : [...chosen, v.value])}
              />
              <label htmlFor={inputId} title={v.value}>
                <span className="facet-value">{display(v.value)}</span> <span className="count">{v.count}</span>
              </label>
            </li>
          );
        })}
      </ul>
      {!needle && matching.length > FACET_SHOWN && (
        <button type="button" className="link" onClick={() => setAll(!all)}>
          {all ? "Show fewer" : `Show all ${matching.length}`}
        </button>
      )}
      {chosen.length > 0 && (
        <button type="button" className="link" onClick={() => onChange([])}>
          Clear {label.toLowerCase()}
        </button>
      )}
    </fieldset>
  );
}

/** The request of one block of rows: (path, body). */
function pageRequest(view: View, page: number): [string, Record<string, unknown>] {
  const column = COLUMNS.find((c) => c.key === view.sort && c.field) ?? COLUMNS[0];
  const body: Record<string, unknown> = {
    query: predicate(view),
    limit: PAGE,
    offset: page * PAGE,
    fields: FIELDS,
    orderBy: [{ field: column.field, order: view.dir }],
  };
  if (view.q) body.fullTextFilter = { term: view.q.toLowerCase(), fields: TEXT_FIELDS };
  return [url("/api/catalog/entities/by-query", { asOf: view.asOf }), body];
}

// The first block of rows of the page the browser opened on is asked for
// as soon as this script runs, while React renders the page around it.
let prefetched: { key: string; answer: Promise<QueryPage> } | null = null;
if (typeof window !== "undefined" && window.location.pathname === "/") {
  const [path, body] = pageRequest(readView(window.location.search), 0);
  prefetched = { key: path + JSON.stringify(body), answer: postJson<QueryPage>(path, body) };
  // Unclaimed (the view changed first), its failure is of no interest.
  prefetched.answer.catch(() => undefined);
}

/** The prefetched answer of this very request, once. */
function takePrefetched(path: string, body: Record<string, unknown>): Promise<QueryPage> | null {
  if (!prefetched || prefetched.key !== path + JSON.stringify(body)) return null;
  const answer = prefetched.answer;
  prefetched = null;
  return answer;
}

interface Pages {
  /** The query the pages answer. */
  key: string;
  rows: Map<number, Entity[]>;
  total: number | undefined;
}

/**
 * The table: `totalItems` rows of which only those on screen exist in the
 * page; each block of PAGE rows is fetched by offset when it first scrolls
 * into view (so a jump to row 90,000 asks for that block only).
 */
function Results({ view, version, onSort }: { view: View; version: number; onSort: (sort: string, dir: "asc" | "desc") => void }) {
  const queryKey = JSON.stringify([view.kind, view.filters, view.q, view.sort, view.dir, view.asOf]);
  const [pages, setPages] = useState<Pages>({ key: queryKey, rows: new Map(), total: undefined });
  const [error, setError] = useState<string>();
  const inFlight = useRef(new Map<string, AbortController>());
  const scroller = useRef<HTMLDivElement>(null);

  const fetchPage = useCallback(
    (page: number, key: string) => {
      const id = `${key}#${page}`;
      if (inFlight.current.has(id)) return;
      const ctl = new AbortController();
      inFlight.current.set(id, ctl);
      const [path, body] = pageRequest(view, page);
      (takePrefetched(path, body) ?? postJson<QueryPage>(path, body, ctl.signal))
        .then((r) => {
          setPages((p) => {
            if (p.key !== key) return p;
            const rows = new Map(p.rows);
            rows.set(page, r.items);
            return { key, rows, total: r.totalItems ?? p.total };
          });
          setError(undefined);
        })
        .catch((e) => {
          if (e.name !== "AbortError") setError(errorText(e));
        })
        .finally(() => inFlight.current.delete(id));
    },
    // The view is captured through queryKey.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [queryKey],
  );

  // A new query starts from the top; a live refresh keeps the rows on
  // screen and fetches their pages again.
  const seen = useRef({ key: "", version: -1 });
  useEffect(() => {
    if (seen.current.key !== queryKey) {
      inFlight.current.forEach((c) => c.abort());
      inFlight.current.clear();
      setPages({ key: queryKey, rows: new Map(), total: undefined });
      scroller.current?.scrollTo({ top: 0 });
      fetchPage(0, queryKey);
    } else if (seen.current.version !== version) {
      const loaded = [...pages.rows.keys()];
      inFlight.current.forEach((c) => c.abort());
      inFlight.current.clear();
      (loaded.length ? loaded : [0]).forEach((p) => fetchPage(p, queryKey));
    }
    seen.current = { key: queryKey, version };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [queryKey, version]);

  const total = pages.key === queryKey ? (pages.total ?? 0) : 0;
  const virtual = useVirtualizer({
    count: total,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const items = virtual.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items[items.length - 1]?.index ?? 0;
  useEffect(() => {
    if (!total) return;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) {
      if (!pages.rows.has(p)) fetchPage(p, queryKey);
    }
  }, [first, last, total, pages, fetchPage, queryKey]);

  const rowAt = (i: number): Entity | undefined => pages.rows.get(Math.floor(i / PAGE))?.[i % PAGE];
  const loading = pages.total === undefined && !error;

  return (
    <>
      <p className="result-count" role="status" aria-live="polite">
        {loading
          ? "Loading…"
          : pages.total === undefined
            ? "Not loaded"
            : `${total.toLocaleString()} ${total === 1 ? "entity" : "entities"}`}
      </p>
      {error && <p className="error">{error}</p>}
      <div
        className="vtable"
        role="table"
        aria-label={`${view.kind} entities`}
        aria-rowcount={total + 1}
        data-testid="catalog-table"
      >
        <div role="rowgroup" className="vhead">
          <div role="row" className="vrow" aria-rowindex={1}>
            {COLUMNS.map((c) => {
              const sorted = view.sort === c.key;
              const ariaSort = sorted ? (view.dir === "asc" ? "ascending" : "descending") : c.field ? "none" : undefined;
              return (
                <div role="columnheader" key={c.key} aria-sort={ariaSort} style={{ width: c.width }} className="vcell">
                  {c.field ? (
                    <button
                      type="button"
                      className="sort"
                      onClick={() => onSort(c.key, sorted && view.dir === "asc" ? "desc" : "asc")}
                    >
                      {c.label}
                      <span aria-hidden="true">{sorted ? (view.dir === "asc" ? " ▲" : " ▼") : ""}</span>
                    </button>
                  ) : (
                    c.label
                  )}
                </div>
              );
            })}
          </div>
        </div>
        <div ref={scroller} className="vbody" role="rowgroup" tabIndex={0} aria-label="Rows (scroll)">
          <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
            {items.map((item) => {
              const e = rowAt(item.index);
              return (
                <div
                  role="row"
                  key={item.key}
                  className="vrow"
                  aria-rowindex={item.index + 2}
                  data-index={item.index}
                  style={{ position: "absolute", top: 0, left: 0, right: 0, height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
                >
                  {e ? <EntityCells e={e} asOf={view.asOf} /> : <PendingCells />}
                </div>
              );
            })}
          </div>
        </div>
      </div>
      {!loading && total === 0 && !error && <p className="muted">Nothing matches these filters.</p>}
    </>
  );
}

function EntityCells({ e, asOf }: { e: Entity; asOf: string }) {
  const ref = refOf(e);
  const s = e.spec ?? {};
  const text = (v: unknown) => (typeof v === "string" ? v : "");
  const href = asOf ? `${entityPath(ref)}?asOf=${encodeURIComponent(asOf)}` : entityPath(ref);
  const ns = e.metadata.namespace && e.metadata.namespace !== "default" ? `${e.metadata.namespace}/` : "";
  const owner = text(s.owner);
  const system = text(s.system);
  return (
    <>
      <div role="cell" className="vcell" style={{ width: COLUMNS[0].width }}>
        <Link href={href} className="entity-link">
          {ns}
          {e.metadata.title ?? e.metadata.name}
        </Link>
      </div>
      <div role="cell" className="vcell" style={{ width: COLUMNS[1].width }}>
        {text(s.type)}
      </div>
      <div role="cell" className="vcell" style={{ width: COLUMNS[2].width }}>
        {owner && <Link href={entityPath(qualify(owner, "group", e))}>{short(qualify(owner, "group", e), "group")}</Link>}
      </div>
      <div role="cell" className="vcell" style={{ width: COLUMNS[3].width }}>
        {system && <Link href={entityPath(qualify(system, "system", e))}>{short(qualify(system, "system", e), "system")}</Link>}
      </div>
      <div role="cell" className="vcell" style={{ width: COLUMNS[4].width }}>
        {text(s.lifecycle)}
      </div>
      <div role="cell" className="vcell tags" style={{ width: COLUMNS[5].width }}>
        {(e.metadata.tags ?? []).map((t) => (
          <span className="badge" key={t}>
            {t}
          </span>
        ))}
      </div>
      <div role="cell" className="vcell desc" style={{ width: COLUMNS[6].width }} title={e.metadata.description}>
        {e.metadata.description}
      </div>
    </>
  );
}

/** A ref as written in a spec (`team`, `group:team`, `group:ns/team`), made whole. */
function qualify(written: string, kind: string, e: Entity): string {
  const r = parseRef(written, kind);
  const ns = written.includes("/") ? r.namespace : (e.metadata.namespace ?? "default");
  return `${r.kind}:${ns}/${r.name}`;
}

/** A whole ref, as short as it can be said: the name alone for the expected kind in `default`. */
function short(ref: string, kind: string): string {
  const r = parseRef(ref);
  if (r.kind === kind && r.namespace === "default") return r.name;
  return humanRef(ref);
}

function PendingCells() {
  return (
    <>
      {COLUMNS.map((c) => (
        <div role="cell" className="vcell" key={c.key} style={{ width: c.width }}>
          <span className="pending" aria-hidden="true" />
        </div>
      ))}
    </>
  );
}
