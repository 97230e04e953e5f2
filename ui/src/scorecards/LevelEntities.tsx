// The entities at one level of the card (or at none), page by page, each
// with its score and the checks it fails; narrowed to an owner when a team
// is selected.
import { useCallback, useEffect, useState } from "react";
import { Link } from "wouter";
import { entityPath, errorText, getJson, humanRef } from "../api";
import {
  type Check,
  countAt,
  type GroupRollup,
  levelClass,
  levelLabel,
  levelsOf,
  type ResultItem,
  type ResultsPage,
  type Scorecard,
} from "./model";

export const PAGE = 25;

/** `level=` of the page's URL: a level, `none`, or `all`. */
export function LevelEntities({
  card,
  level,
  owner,
  counts,
  onLevel,
  reloadKey,
}: {
  card: Scorecard;
  level: string;
  owner: string | null;
  counts?: GroupRollup;
  onLevel: (level: string) => void;
  reloadKey: number;
}) {
  const levels = levelsOf(card);
  const [items, setItems] = useState<ResultItem[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  const [error, setError] = useState<string | undefined>();
  const [loading, setLoading] = useState(false);
  const base = `/api/scorecards/${encodeURIComponent(card.id)}/entities`;
  const params = { level: level === "all" ? undefined : level, owner: owner ?? undefined, limit: PAGE };

  const load = useCallback(
    (cursor: string | undefined, signal?: AbortSignal) => {
      setLoading(true);
      getJson<ResultsPage>(base, { ...params, cursor }, signal)
        .then((page) => {
          setItems((old) => (cursor ? [...old, ...page.items] : page.items));
          setNext(page.pageInfo?.nextCursor ?? null);
          setError(undefined);
        })
        .catch((e: Error) => {
          if (e.name !== "AbortError") setError(errorText(e));
        })
        .finally(() => {
          if (!signal?.aborted) setLoading(false);
        });
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [base, level, owner],
  );

  useEffect(() => {
    const ctl = new AbortController();
    load(undefined, ctl.signal);
    return () => ctl.abort();
  }, [load, reloadKey]);

  const checkTitle = (id: string) => card.checks.find((c: Check) => c.id === id)?.title ?? id;
  const choices: { value: string; label: string; count?: number; level?: string | null }[] = [
    ...[...levels].reverse().map((l) => ({ value: l, label: levelLabel(l), count: counts && countAt(counts, l), level: l })),
    { value: "none", label: levelLabel(null), count: counts && countAt(counts, null), level: null },
    { value: "all", label: "All", count: counts?.entities },
  ];
  const chosen = choices.find((c) => c.value === level);

  return (
    <>
      <div className="sc-toolbar">
        <div role="group" aria-label="Level" className="sc-segmented" data-testid="level-picker">
          {choices.map((c) => (
            <button
              key={c.value}
              type="button"
              aria-pressed={level === c.value}
              data-level={c.value}
              onClick={() => onLevel(c.value)}
            >
              {c.label}
              {c.count !== undefined && <span className="sc-count">{c.count}</span>}
            </button>
          ))}
        </div>
        {owner && (
          <span className="muted">
            Owned by <strong>{humanRef(owner)}</strong> or its child teams
          </span>
        )}
      </div>
      {error && <p className="error">Could not load the entities: {error}</p>}
      {!error && !loading && items.length === 0 && (
        <p className="panel">
          No entities {chosen && chosen.value !== "all" ? `at ${chosen.label.toLowerCase()}` : "have results"}
          {owner ? ` owned by ${humanRef(owner)}` : ""}.
        </p>
      )}
      {items.length > 0 && (
        <table className="data sc-entities" data-testid="level-entities" aria-busy={loading}>
          <caption className="visually-hidden">
            Entities {chosen && chosen.value !== "all" ? `at ${chosen.label}` : ""}
          </caption>
          <thead>
            <tr>
              <th scope="col">Entity</th>
              <th scope="col">Level</th>
              <th scope="col" className="num">
                Score
              </th>
              <th scope="col">Failing checks</th>
              <th scope="col">Owner</th>
            </tr>
          </thead>
          <tbody>
            {items.map((r) => (
              <tr key={r.entityRef} data-ref={r.entityRef}>
                <th scope="row">
                  <Link href={entityPath(r.entityRef)}>{humanRef(r.entityRef)}</Link>
                </th>
                <td>
                  <span className={levelClass(card, r.level)}>{levelLabel(r.level)}</span>
                </td>
                <td className="num">{r.score}</td>
                <td className="sc-failing">
                  {r.failing.length === 0 && r.exempt.length === 0 && <span className="badge pass">all pass</span>}
                  {r.failing.map((c) => (
                    <span key={c} className="badge fail" title={checkTitle(c)}>
                      {c}
                    </span>
                  ))}
                  {r.exempt.map((c) => (
                    <span key={c} className="badge exempt" title={`${checkTitle(c)} (exempt)`}>
                      {c} · exempt
                    </span>
                  ))}
                </td>
                <td>{r.owners[0] ? <Link href={entityPath(r.owners[0])}>{humanRef(r.owners[0])}</Link> : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="sc-more">
        {items.length > 0 && (
          <span className="muted" aria-live="polite">
            {items.length} shown{chosen?.count !== undefined && !owner ? ` of ${chosen.count}` : ""}
          </span>
        )}
        {next && (
          <button type="button" onClick={() => load(next)} disabled={loading}>
            {loading ? "Loading…" : `Show ${PAGE} more`}
          </button>
        )}
      </div>
    </>
  );
}
