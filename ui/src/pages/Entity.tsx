// The page of one entity (`/catalog/:namespace/:kind/:name`): what it is,
// its relations as a graph and a list, its API definition, its scorecard
// results and its history. It follows the change feed, so an edit shows
// up while the page is open; `?asOf=` reads the catalog at an instant.
import { useCallback, useEffect, useState } from "react";
import { Link, useSearch } from "wouter";
import { ApiError, byNamePath, entityPath, useApi, when, type Entity } from "../api";
import { useFeed } from "../live";
import { About } from "../entity/About";
import { ApiDefinition } from "../entity/ApiDefinition";
import { History, type HistoryResponse } from "../entity/History";
import { Relations } from "../entity/RelationsGraph";
import { Scorecards, type ScorecardsResponse } from "../entity/Scorecards";
import "../entity/entity.css";

function Section({ id, title, children }: { id: string; title: string; children: React.ReactNode }) {
  return (
    <section aria-labelledby={`${id}-h`} className="entity-section">
      <h2 id={`${id}-h`}>{title}</h2>
      {children}
    </section>
  );
}

export function EntityPage({ namespace, kind, name }: { namespace: string; kind: string; name: string }) {
  const search = useSearch();
  const asOfRaw = new URLSearchParams(search).get("asOf");
  const asOf = asOfRaw && !Number.isNaN(Date.parse(asOfRaw)) ? asOfRaw : null;
  const r = { kind: kind.toLowerCase(), namespace, name };
  const entityRef = `${r.kind}:${r.namespace}/${r.name}`;
  const tail = `${encodeURIComponent(r.kind)}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;

  const entity = useApi<Entity>(byNamePath(r), { asOf });
  const history = useApi<HistoryResponse>(`/api/history/entities/${tail}`);
  const scores = useApi<ScorecardsResponse>(`/api/scorecards/entity/${tail}`, { asOf });
  const [version, setVersion] = useState(0);
  const [lastChange, setLastChange] = useState<string | null>(null);

  const { reload: reloadEntity } = entity;
  const { reload: reloadHistory } = history;
  const { reload: reloadScores } = scores;
  const onChange = useCallback(
    (type: string) => {
      reloadEntity();
      reloadHistory();
      reloadScores();
      setVersion((v) => v + 1);
      setLastChange(`${type.replace("_", " ")} at ${new Date().toLocaleTimeString()}`);
    },
    [reloadEntity, reloadHistory, reloadScores],
  );
  // The past does not change: live updates only for the present.
  const connected = useFeed(asOf ? null : { entityRef: [entityRef] }, onChange);

  const e = entity.data;
  const title = e?.metadata.title ?? e?.metadata.name ?? name;
  useEffect(() => {
    if (e) document.title = `${title} · Catalog`;
  }, [e, title]);

  const notFound = entity.error instanceof ApiError && entity.error.status === 404;

  const asOfNotice = asOf && (
    <p className="notice as-of" role="status" data-testid="as-of">
      Showing the catalog as of <time dateTime={asOf}>{when(asOf)}</time>.{" "}
      <Link href={entityPath(entityRef)}>Back to the present</Link>
    </p>
  );

  if (notFound || (!e && entity.error)) {
    return (
      <div className="entity-page">
        {asOfNotice}
        <h1>{notFound ? "Entity not found" : "Could not read the entity"}</h1>
        <p className={notFound ? "notice" : "error"} data-testid="not-found">
          {notFound ? (
            <>
              There is no entity <code>{entityRef}</code> in the catalog{asOf ? " at that instant" : ""}
              {history.data ? " (any more)" : ""}.
            </>
          ) : (
            entity.error?.message
          )}
        </p>
        <p>
          <Link href="/">Back to the catalog</Link>
        </p>
        {history.data && history.data.changes.length > 0 && (
          <Section id="history" title="History">
            <History data={history.data} asOf={asOf} />
          </Section>
        )}
      </div>
    );
  }

  if (!e) {
    return (
      <div className="entity-page">
        <h1>{name}</h1>
        <p className="muted" role="status">
          Loading {entityRef}…
        </p>
      </div>
    );
  }

  const type = typeof e.spec?.type === "string" ? e.spec.type : null;
  return (
    <div className="entity-page" data-testid="entity-page" data-ref={entityRef}>
      {asOfNotice}
      <header className="entity-head">
        <p className="entity-crumbs muted">
          <Link href="/">Catalog</Link> <span aria-hidden="true">/</span> {e.kind}
          {type ? ` · ${type}` : ""}
        </p>
        <div className="entity-title row">
          <h1>{title}</h1>
          <span className="badge">{e.kind}</span>
          {e.metadata.title && <code className="muted">{e.metadata.name}</code>}
          <span className="grow" />
          {asOf ? (
            <span className="live" data-connected="false">
              Live updates off (a past instant)
            </span>
          ) : (
            <span className="live" data-connected={connected ? "true" : "false"} data-testid="live">
              Live updates<span className="visually-hidden">{connected ? " (connected)" : " (connecting)"}</span>
              {lastChange && <span className="last-change">: {lastChange}</span>}
            </span>
          )}
        </div>
      </header>

      <div className="entity-top">
        <About entity={e} entityRef={entityRef} asOf={asOf} version={version} />
        <Section id="scorecards" title="Scorecards">
          {scores.data ? (
            <Scorecards data={scores.data} asOf={asOf} />
          ) : scores.error ? (
            <p className="muted">No scorecard results: {scores.error.message}</p>
          ) : (
            <p className="muted">Loading…</p>
          )}
        </Section>
      </div>

      <Relations entityRef={entityRef} entity={e} asOf={asOf} version={version} />

      {e.kind.toLowerCase() === "api" && <ApiDefinition entity={e} />}

      <Section id="history" title="History">
        {history.data ? (
          <History data={history.data} asOf={asOf} />
        ) : history.error ? (
          <p className="muted">No history: {history.error.message}</p>
        ) : (
          <p className="muted">Loading…</p>
        )}
      </Section>
    </div>
  );
}
