// Operations: is the catalog keeping up and what is it refusing? Each
// source with its last sync (counts, held-back removals, problems, the
// GitHub quota and other details of its kind), the processing errors of
// every location, registered locations, and the projection's lag. Read
// again every few seconds; location changes from the feed refresh it
// at once.
import { useEffect, useState } from "react";
import { Link } from "wouter";
import { type Json, ApiError, entityPath, errorText, postJson, useApi, useDebounced, when } from "../api";
import { useFeed } from "../live";
import "./operations.css";

interface HeldBack {
  would_remove: number;
  known: number;
}

interface SyncReport {
  complete: boolean;
  duration?: { secs: number; nanos: number };
  finished_at?: string;
  listed: number;
  fetched: number;
  emitted_new: number;
  emitted_changed: number;
  emitted_removed: number;
  unchanged: number;
  facts_emitted: number;
  held_back: HeldBack | null;
  facts_held_back: HeldBack | null;
  problems: string[];
}

interface SourceStatus {
  id: string;
  kind: string;
  schedule?: string;
  syncs: number;
  failures: number;
  next_sync_at?: string | null;
  last_sync: SyncReport | null;
  last_error: { at: string; message: string } | null;
  details?: Record<string, Json> | null;
}

interface LocationErrors {
  location: { id: string; type: string; target: string; entityRef?: string };
  errors: { location?: string; kind: string; message: string; document?: number; line?: number; column?: number; entity?: string }[];
}

interface Ready {
  ready: boolean;
  lag?: number;
  reason?: string;
}

const REFRESH_MS = 5000;
const LOCATIONS_PAGE = 50;

interface LocationRow {
  id: string;
  type: string;
  target: string;
  entityRef?: string;
}

/** Locations a page at a time (`POST /locations/by-query`), never all at once. */
function useLocations() {
  const [items, setItems] = useState<LocationRow[]>([]);
  const [total, setTotal] = useState<number>();
  const [cursor, setCursor] = useState<string>();
  const [error, setError] = useState<string>();
  const load = (after?: string) =>
    postJson<{ items: LocationRow[]; totalItems?: number; pageInfo?: { nextCursor?: string } }>(
      "/api/catalog/locations/by-query",
      after ? { cursor: after } : { limit: LOCATIONS_PAGE },
    )
      .then((r) => {
        setItems((old) => (after ? [...old, ...r.items] : r.items));
        if (r.totalItems !== undefined) setTotal(r.totalItems);
        setCursor(r.pageInfo?.nextCursor);
        setError(undefined);
      })
      .catch((e) => setError(errorText(e)));
  useEffect(() => {
    load();
  }, []);
  return { items, total, error, more: cursor ? () => load(cursor) : undefined };
}

export function OperationsPage() {
  const sources = useApi<{ sources: SourceStatus[] }>("/api/ingest/sources");
  const errors = useApi<LocationErrors[]>("/api/catalog/errors");
  const ready = useApi<Ready>("/readyz");
  const locations = useLocations();
  const [checked, setChecked] = useState(new Date());

  const reloadAll = () => {
    sources.reload();
    errors.reload();
    ready.reload();
    setChecked(new Date());
  };
  useEffect(() => {
    const t = setInterval(reloadAll, REFRESH_MS);
    return () => clearInterval(t);
    // the reload functions are stable
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const soon = useDebounced(reloadAll, 300);
  const connected = useFeed({ kind: ["location"] }, soon);

  const errorCount = (errors.data ?? []).reduce((n, l) => n + l.errors.length, 0);
  return (
    <div className="operations">
      <div className="row">
        <h1 className="grow">Operations</h1>
        <span className="live" data-connected={connected}>
          {connected ? "live" : "connecting"} · checked {checked.toLocaleTimeString()}
        </span>
      </div>

      <section aria-labelledby="ops-summary" className="grid3 summary">
        <h2 id="ops-summary" className="visually-hidden">
          Summary
        </h2>
        <div className="panel stat" data-testid="projection">
          <div className="stat-label">Projection</div>
          {ready.error ? (
            <div className="stat-value bad">{errorText(ready.error)}</div>
          ) : (
            <>
              <div className="stat-value" data-testid="lag">
                {ready.data?.lag ?? "—"} <span className="unit">messages behind</span>
              </div>
              <div className="muted">{ready.data?.ready ? "ready" : (ready.data?.reason ?? "not ready")}</div>
            </>
          )}
        </div>
        <div className="panel stat">
          <div className="stat-label">Sources</div>
          <div className="stat-value">{sources.data?.sources.length ?? "—"}</div>
          <div className="muted">
            {(sources.data?.sources ?? []).filter((s) => s.last_error).length} with a recent error
          </div>
        </div>
        <div className="panel stat">
          <div className="stat-label">Processing errors</div>
          <div className="stat-value" data-testid="error-count">
            {errorCount}
          </div>
          <div className="muted">in {(errors.data ?? []).length} locations</div>
        </div>
      </section>

      <section aria-labelledby="ops-sources">
        <h2 id="ops-sources">Sources</h2>
        {sources.error &&
          (sources.error instanceof ApiError && sources.error.status === 404 ? (
            <p className="notice">
              This server does not run ingest (its status is served by the ingest service, or by <code>catalog dev</code>).
            </p>
          ) : (
            <p className="error">{errorText(sources.error)}</p>
          ))}
        <div className="sources">
          {(sources.data?.sources ?? []).map((s) => (
            <SourceCard key={s.id} s={s} />
          ))}
        </div>
      </section>

      <section aria-labelledby="ops-errors">
        <h2 id="ops-errors">Processing errors by location</h2>
        {errors.error && <p className="error">{errorText(errors.error)}</p>}
        {errors.data && errors.data.length === 0 && <p className="muted">No location has an error.</p>}
        {(errors.data ?? []).map((l) => (
          <article className="panel location-errors" key={l.location.id} data-testid="location-errors">
            <h3 className="mono">
              {l.location.type}:{l.location.target}
            </h3>
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">Where</th>
                  <th scope="col">Entity</th>
                  <th scope="col">Message</th>
                </tr>
              </thead>
              <tbody>
                {l.errors.map((e, i) => (
                  <tr key={i}>
                    <td>
                      <span className="badge bad">{e.kind}</span>
                    </td>
                    <td className="mono nowrap">{position(e)}</td>
                    <td className="mono">{e.entity ?? ""}</td>
                    <td>{e.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </article>
        ))}
      </section>

      <section aria-labelledby="ops-locations">
        <h2 id="ops-locations">Locations</h2>
        {locations.error && <p className="error">{locations.error}</p>}
        {locations.total !== undefined && (
          <p className="muted">
            {locations.total} locations; showing {locations.items.length}.
          </p>
        )}
        {locations.items.length > 0 && (
          <table className="data">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Target</th>
                <th scope="col">Entity</th>
              </tr>
            </thead>
            <tbody>
              {locations.items.map((l) => (
                <tr key={l.id}>
                  <td>{l.type}</td>
                  <td className="mono">{l.target}</td>
                  <td className="mono muted">{l.entityRef ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {locations.more && (
          <button type="button" onClick={locations.more}>
            More locations
          </button>
        )}
      </section>
    </div>
  );
}

function position(e: { document?: number; line?: number; column?: number }): string {
  const parts = [];
  if (e.document !== undefined) parts.push(`doc ${e.document}`);
  if (e.line !== undefined) parts.push(`line ${e.line}${e.column !== undefined ? `:${e.column}` : ""}`);
  return parts.join(", ");
}

function seconds(d?: { secs: number; nanos: number }): string {
  if (!d) return "—";
  const s = d.secs + d.nanos / 1e9;
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`;
}

function SourceCard({ s }: { s: SourceStatus }) {
  const r = s.last_sync;
  const held = [r?.held_back && ["locations", r.held_back], r?.facts_held_back && ["facts", r.facts_held_back]].filter(
    Boolean,
  ) as [string, HeldBack][];
  return (
    <article className="panel source" data-testid="source" data-source={s.id} aria-labelledby={`source-${s.id}`}>
      <header className="row">
        <h3 id={`source-${s.id}`} className="grow">
          {s.id} <span className="badge">{s.kind}</span>
        </h3>
        {s.last_error ? <span className="badge bad">failing</span> : <span className="badge good">ok</span>}
      </header>
      {held.map(([what, h]) => (
        <p className="notice" key={what} role="status">
          {h.would_remove} of {h.known} {what} held back: the last listing lacks them, which looks like a broken source rather
          than deletions. Fix the source, or confirm the removal in the configuration.
        </p>
      ))}
      {s.last_error && (
        <p className="error">
          Last error at {when(s.last_error.at)}: {s.last_error.message}
        </p>
      )}
      <dl className="facts">
        <dt>Schedule</dt>
        <dd className="mono">{s.schedule ?? "—"}</dd>
        <dt>Last sync</dt>
        <dd>
          {r ? (
            <>
              {when(r.finished_at)} in {seconds(r.duration)}
              {!r.complete && <span className="badge warn">partial</span>}
            </>
          ) : (
            "not yet"
          )}
        </dd>
        {r && (
          <>
            <dt>Listed</dt>
            <dd>
              {r.listed} locations, {r.fetched} fetched; {r.emitted_new} new, {r.emitted_changed} changed, {r.emitted_removed}{" "}
              removed, {r.unchanged} unchanged; {r.facts_emitted} fact changes
            </dd>
          </>
        )}
        <dt>Syncs</dt>
        <dd>
          {s.syncs} ({s.failures} failed)
        </dd>
        <dt>Next sync</dt>
        <dd>{when(s.next_sync_at)}</dd>
        {r && r.problems.length > 0 && (
          <>
            <dt>Problems</dt>
            <dd>
              <ul className="problems">
                {r.problems.map((p, i) => (
                  <li key={i}>{p}</li>
                ))}
              </ul>
            </dd>
          </>
        )}
      </dl>
      {s.details && Object.keys(s.details).length > 0 && (
        <details className="source-details">
          <summary>Details of this {s.kind} source</summary>
          <Value v={s.details} />
        </details>
      )}
    </article>
  );
}

/** Any JSON value, readably: objects as term lists, arrays as lists. */
function Value({ v }: { v: Json }) {
  if (v === null || v === undefined) return <span className="muted">—</span>;
  if (Array.isArray(v)) {
    if (v.length === 0) return <span className="muted">none</span>;
    if (v.every((x) => typeof x !== "object" || x === null)) return <span>{v.join(", ")}</span>;
    return (
      <ul className="plain">
        {v.map((x, i) => (
          <li key={i}>
            <Value v={x} />
          </li>
        ))}
      </ul>
    );
  }
  if (typeof v === "object") {
    return (
      <dl className="facts nested">
        {Object.entries(v).map(([k, x]) => (
          <div key={k} className="contents">
            <dt>{k.replace(/_/g, " ")}</dt>
            <dd>
              {k.endsWith("_at") || k === "reset" ? (typeof x === "string" ? when(x) : <Value v={x} />) : <Value v={x} />}
            </dd>
          </div>
        ))}
      </dl>
    );
  }
  if (typeof v === "string" && /^(group|user|component|system|domain|api|resource):/.test(v)) {
    return <Link href={entityPath(v)}>{v}</Link>;
  }
  return <span>{String(v)}</span>;
}
