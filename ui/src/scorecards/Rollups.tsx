// The card's rollups by team (with the team tree: a team's numbers hold its
// child teams'), system or domain, as one table; a row can be selected to
// narrow the trends and the entity list to it.
import { useMemo } from "react";
import { Link } from "wouter";
import { type Entity, entityPath, humanRef, refOf, useApi } from "../api";
import {
  countAt,
  DIMENSIONS,
  type Dimension,
  type GroupRollup,
  levelClass,
  levelLabel,
  levelsOf,
  overallPassRate,
  percent,
  type RollupView,
  type Scorecard,
  score,
} from "./model";

interface Row {
  g: GroupRollup;
  depth: number;
  title?: string;
}

/** Groups' parents (`childOf`) and titles, for the team tree. */
function useTeams(enabled: boolean) {
  const groups = useApi<Entity[]>(enabled ? "/api/catalog/entities" : null, {
    filter: "kind=group",
    fields: "kind,metadata.name,metadata.namespace,metadata.title,relations",
  });
  return useMemo(() => {
    const parent = new Map<string, string>();
    const title = new Map<string, string>();
    for (const e of groups.data ?? []) {
      const ref = refOf(e);
      const p = e.relations?.find((r) => r.type === "childOf")?.targetRef;
      if (p) parent.set(ref, p.toLowerCase());
      if (e.metadata.title) title.set(ref, e.metadata.title);
    }
    return { parent, title };
  }, [groups.data]);
}

/** Rows depth first from the roots (teams whose parent has no rollup). */
function treeRows(groups: GroupRollup[], parent: Map<string, string>, title: Map<string, string>): Row[] {
  const present = new Set(groups.map((g) => g.group));
  const children = new Map<string, GroupRollup[]>();
  const roots: GroupRollup[] = [];
  for (const g of groups) {
    const p = parent.get(g.group);
    if (p && present.has(p) && p !== g.group) {
      children.set(p, [...(children.get(p) ?? []), g]);
    } else roots.push(g);
  }
  // Groups first, then other owners (users), each by name.
  const order = (a: GroupRollup, b: GroupRollup) =>
    Number(!a.group.startsWith("group:")) - Number(!b.group.startsWith("group:")) || a.group.localeCompare(b.group);
  const out: Row[] = [];
  const seen = new Set<string>();
  const walk = (g: GroupRollup, depth: number) => {
    if (seen.has(g.group)) return;
    seen.add(g.group);
    out.push({ g, depth, title: title.get(g.group) });
    (children.get(g.group) ?? []).sort(order).forEach((c) => walk(c, depth + 1));
  };
  roots.sort(order).forEach((g) => walk(g, 0));
  groups.filter((g) => !seen.has(g.group)).forEach((g) => walk(g, 0));
  return out;
}

export function Rollups({
  card,
  by,
  selected,
  onBy,
  onSelect,
}: {
  card: Scorecard;
  by: Dimension;
  selected: string | null;
  onBy: (by: Dimension) => void;
  onSelect: (group: string | null) => void;
}) {
  const rollup = useApi<RollupView>(`/api/scorecards/${encodeURIComponent(card.id)}/rollup`, { by });
  const teams = useTeams(by === "owner");
  const levels = levelsOf(card);
  const rows: Row[] = useMemo(() => {
    const groups = rollup.data?.by === by ? rollup.data.groups : [];
    if (by === "owner") return treeRows(groups, teams.parent, teams.title);
    return [...groups].sort((a, b) => a.group.localeCompare(b.group)).map((g) => ({ g, depth: 0 }));
  }, [rollup.data, by, teams]);
  const label = DIMENSIONS.find((d) => d.by === by)!.label;

  return (
    <>
      <div className="sc-toolbar">
        <div role="group" aria-label="Roll up by" className="sc-segmented">
          {DIMENSIONS.map((d) => (
            <button key={d.by} type="button" aria-pressed={by === d.by} onClick={() => onBy(d.by)}>
              {d.label}
            </button>
          ))}
        </div>
        <span className="muted">
          {by === "owner"
            ? "A team's numbers include its child teams'. Select a row to narrow the trends and the entity list."
            : "Select a row to narrow the trends to it."}
        </span>
      </div>
      {rollup.error && <p className="error">Could not load the rollup: {rollup.error.message}</p>}
      {rollup.data && rows.length === 0 && <p className="panel">No {label.toLowerCase()} hold entities of this card.</p>}
      {rows.length > 0 && (
        <div className="table-scroll sc-rollup-scroll" tabIndex={0} role="region" aria-label={`Rollup by ${label.toLowerCase()}`}>
          <table className="data sc-rollup" data-testid="rollup-table" data-by={by}>
            <caption className="visually-hidden">
              {card.title ?? card.id} by {label.toLowerCase()}
            </caption>
            <thead>
              <tr>
                <th scope="col">{label.replace(/s$/, "")}</th>
                <th scope="col" className="num">
                  Entities
                </th>
                {[null, ...levels].map((l) => (
                  <th scope="col" className="num" key={l ?? "none"}>
                    {levelLabel(l)}
                  </th>
                ))}
                <th scope="col" className="num">
                  Mean score
                </th>
                <th scope="col" className="num">
                  Checks passing
                </th>
                <th scope="col">
                  <span className="visually-hidden">Select</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ g, depth, title }) => {
                const on = selected === g.group;
                return (
                  <tr key={g.group} data-group={g.group} aria-selected={on} className={on ? "sc-selected" : undefined}>
                    <th scope="row" style={{ paddingLeft: `${0.6 + depth * 1.3}rem` }}>
                      {depth > 0 && (
                        <span className="sc-tree" aria-hidden="true">
                          └{" "}
                        </span>
                      )}
                      <Link href={entityPath(g.group)}>{title ?? humanRef(g.group).replace(/^[a-z]+:/, "")}</Link>
                      {!g.group.startsWith(`${by === "owner" ? "group" : by}:`) && (
                        <span className="muted"> ({humanRef(g.group).split(":")[0]})</span>
                      )}
                    </th>
                    <td className="num" data-col="entities">
                      {g.entities}
                    </td>
                    {[null, ...levels].map((l) => (
                      <td className="num" key={l ?? "none"} data-level={l ?? "none"}>
                        {countAt(g, l) > 0 ? (
                          <span className={levelClass(card, l)}>{countAt(g, l)}</span>
                        ) : (
                          <span className="muted">0</span>
                        )}
                      </td>
                    ))}
                    <td className="num" data-col="meanScore">
                      {score(g.meanScore)}
                    </td>
                    <td className="num">{percent(overallPassRate(g))}</td>
                    <td>
                      <button
                        type="button"
                        className="sc-select"
                        aria-pressed={on}
                        onClick={() => onSelect(on ? null : g.group)}
                      >
                        {on ? "Selected" : "Select"}
                        <span className="visually-hidden"> {g.group}</span>
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
