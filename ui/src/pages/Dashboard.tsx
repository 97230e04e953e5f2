// `/adoption`: the analysts' adoption metrics over time, computed from the
// catalog's history. The range, the interval and every chart's split live
// in the URL's query, so a view can be shared.
import { useSearchParams } from "wouter";
import { Controls } from "../adoption/Controls";
import { daysAgo, type Interval } from "../adoption/metrics";
import {
  CatalogCoveragePanel,
  ChangesPanel,
  EntitiesPanel,
  OwnershipPanel,
  ScorecardLevelsPanel,
  TechnologyPanel,
} from "../adoption/Panels";
import "../adoption/adoption.css";

export interface Range {
  from: string;
  to: string;
  interval: Interval;
}

export function DashboardPage() {
  const [params, setParams] = useSearchParams();
  const iv = params.get("interval");
  const range: Range = {
    interval: iv === "week" || iv === "month" ? iv : "day",
    from: params.get("from") || daysAgo(29),
    to: params.get("to") || daysAgo(0),
  };
  /** Sets (or with `null` removes) query parameters, keeping the others. */
  const set = (changes: Record<string, string | null>) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        for (const [k, v] of Object.entries(changes)) {
          if (v === null || v === "") next.delete(k);
          else next.set(k, v);
        }
        return next;
      },
      { replace: true },
    );
  const get = (k: string, fallback: string) => params.get(k) || fallback;
  const filter = params.get("filter") ?? "";
  const base = { from: range.from, to: range.to, interval: range.interval };

  return (
    <div className="ad">
      <div className="ad-titlebar">
        <h1>Adoption</h1>
        <p className="muted">
          How the catalog is adopted over time, computed from its history: each interval counts the state at its end
          (changes: what happened within it).
        </p>
      </div>
      <Controls range={range} filter={filter} set={set} />
      <div className="ad-grid">
        <EntitiesPanel base={base} filter={filter} by={get("entitiesBy", "kind")} setBy={(v) => set({ entitiesBy: v })} />
        <OwnershipPanel
          base={base}
          filter={filter}
          by={get("ownershipBy", "all")}
          setBy={(v) => set({ ownershipBy: v })}
        />
        <ChangesPanel base={base} by={get("changesBy", "change")} setBy={(v) => set({ changesBy: v })} />
        <ScorecardLevelsPanel
          base={base}
          scorecard={params.get("scorecard")}
          setScorecard={(v) => set({ scorecard: v })}
          by={get("levelsBy", "all")}
          setBy={(v) => set({ levelsBy: v })}
        />
        <TechnologyPanel base={base} by={get("technologyBy", "language")} setBy={(v) => set({ technologyBy: v })} />
        <CatalogCoveragePanel base={base} by={get("coverageBy", "all")} setBy={(v) => set({ coverageBy: v })} />
      </div>
    </div>
  );
}
