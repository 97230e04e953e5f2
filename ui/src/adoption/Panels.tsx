// The dashboard's metrics, one panel each.
import { Link } from "wouter";
import { entityPath, humanRef, useApi } from "../api";
import { Chart } from "../components/Chart";
import type { ScorecardList } from "../scorecards/model";
import { Empty, Folded, Panel, SplitSelect } from "./Panel";
import { bucketLabels, type Mover, type Params, shape, SPLITS, useMetric } from "./metrics";

interface PanelProps {
  base: Params;
  by: string;
  setBy: (by: string) => void;
}

function Failed({ error }: { error?: Error }) {
  return error ? <p className="error">Could not load this metric: {error.message}</p> : null;
}

export function EntitiesPanel({ base, by, setBy, filter }: PanelProps & { filter: string }) {
  const m = useMetric("entities", { ...base, by, filter: filter || undefined });
  const s = shape(m.data, "entities", { limit: 10, fold: true, allLabel: "Entities" });
  return (
    <Panel
      id="entities"
      title="Entities"
      wide
      about={
        <>
          Entities in the catalog at the end of each interval{filter ? <>, matching <code>{filter}</code></> : ""}.
        </>
      }
      controls={<SplitSelect splits={SPLITS.entities} value={by} onChange={setBy} />}
    >
      <Failed error={m.error} />
      <Chart
        title={`Entities by ${by === "all" ? "total" : by}`}
        kind="stacked-bar"
        labels={bucketLabels(m.data)}
        series={s.series}
        csvHref={m.csvHref}
        testId="metric-entities"
        height={300}
      />
      <Folded folded={s.folded} total={s.total} what={`${by} values`} />
    </Panel>
  );
}

export function OwnershipPanel({ base, by, setBy, filter }: PanelProps & { filter: string }) {
  const m = useMetric("ownership-coverage", { ...base, by, filter: filter || undefined });
  const coverage = shape(m.data, "coverage", { limit: 10, allLabel: "Coverage" });
  const orphaned = shape(m.data, "orphaned", { limit: 10, fold: true, allLabel: "Orphaned" });
  const owned = shape(m.data, "owned", { limit: 10, fold: true, allLabel: "Owned" });
  const bars = by === "all" ? [...owned.series, ...orphaned.series] : orphaned.series;
  return (
    <Panel
      id="ownership"
      title="Ownership coverage"
      wide
      about={
        <>
          Share of {filter ? <>entities matching <code>{filter}</code></> : "components"} owned by a group of the
          catalog; orphans have no owner, or one the catalog does not hold.
        </>
      }
      controls={<SplitSelect splits={SPLITS["ownership-coverage"]} value={by} onChange={setBy} />}
    >
      <Failed error={m.error} />
      <div className="ad-pair">
        <div>
          <Chart
            title="Ownership coverage"
            kind="line"
            percent
            labels={bucketLabels(m.data)}
            series={coverage.series}
            csvHref={m.csvHref}
            testId="metric-ownership-coverage"
          />
          <Folded folded={coverage.folded} total={coverage.total} what={`${by} values`} />
        </div>
        <Chart
          title={by === "all" ? "Owned and orphaned" : "Orphaned entities"}
          kind="stacked-bar"
          labels={bucketLabels(m.data)}
          series={bars}
          csvHref={m.csvHref}
          testId="metric-orphaned"
        />
      </div>
    </Panel>
  );
}

export function ChangesPanel({ base, by, setBy }: PanelProps) {
  const m = useMetric("changes", { ...base, by });
  const s = shape(m.data, "changes", { limit: 10, fold: true, allLabel: "Changes" });
  return (
    <Panel
      id="changes"
      title="Change activity"
      about="Changes the catalog's feed recorded within each interval: entities and locations created, updated and deleted."
      controls={<SplitSelect splits={SPLITS.changes} value={by} onChange={setBy} />}
    >
      <Failed error={m.error} />
      <Chart
        title={`Changes by ${by === "all" ? "total" : by === "change" ? "change type" : by}`}
        kind="stacked-bar"
        labels={bucketLabels(m.data)}
        series={s.series}
        csvHref={m.csvHref}
        testId="metric-changes"
      />
      {m.data && s.series.length === 0 && <Empty>No changes were recorded in this range.</Empty>}
      <Folded folded={s.folded} total={s.total} what={`${by} values`} />
    </Panel>
  );
}

export function ScorecardLevelsPanel({
  base,
  by,
  setBy,
  scorecard,
  setScorecard,
}: PanelProps & { scorecard: string | null; setScorecard: (id: string) => void }) {
  const cards = useApi<ScorecardList>("/api/scorecards");
  const items = cards.data?.items ?? [];
  const id = scorecard ?? items[0]?.id;
  const m = useMetric("scorecard-levels", id ? { ...base, by, scorecard: id } : null);
  const levels = shape(m.data, (x) => x.startsWith("level:"), {
    limit: 20,
    label: (s) => {
      const l = s.measure.slice("level:".length);
      return l === "(none)" ? "No level" : l.charAt(0).toUpperCase() + l.slice(1);
    },
  });
  const means = shape(m.data, "mean_score", { limit: 10, allLabel: "Mean score" });
  const card = items.find((c) => c.id === id);
  return (
    <Panel
      id="scorecard-levels"
      title="Scorecard levels"
      about={
        <>
          Entities at each level of{" "}
          {card ? <Link href={`/scorecards/${encodeURIComponent(card.id)}`}>{card.title ?? card.id}</Link> : "a scorecard"}{" "}
          at the end of each interval{by === "all" ? "" : `, and the mean score per ${by}`}.
        </>
      }
      controls={
        <>
          {items.length > 0 && (
            <span className="ad-field">
              <label htmlFor="ad-scorecard">Scorecard</label>
              <select id="ad-scorecard" value={id} onChange={(e) => setScorecard(e.target.value)}>
                {items.map((c) => (
                  <option key={c.id} value={c.id}>
                    {c.title ?? c.id}
                  </option>
                ))}
              </select>
            </span>
          )}
          <SplitSelect splits={SPLITS["scorecard-levels"]} value={by} onChange={setBy} />
        </>
      }
    >
      <Failed error={m.error ?? cards.error} />
      {cards.data && items.length === 0 ? (
        <Empty>No scorecards are defined, so there are no levels to count.</Empty>
      ) : by === "all" ? (
        <Chart
          title="Entities per level"
          kind="stacked-bar"
          labels={bucketLabels(m.data)}
          series={levels.series}
          csvHref={m.csvHref}
          testId="metric-scorecard-levels"
        />
      ) : (
        <>
          <Chart
            title={`Mean score per ${by}`}
            kind="line"
            labels={bucketLabels(m.data)}
            series={means.series}
            csvHref={m.csvHref}
            testId="metric-scorecard-levels"
          />
          <Folded folded={means.folded} total={means.total} what={`${by} values`} />
          <Movers movers={m.data?.movers} />
        </>
      )}
    </Panel>
  );
}

function Movers({ movers }: { movers?: { improved: Mover[]; regressed: Mover[] } }) {
  if (!movers) return null;
  const all = [...movers.improved, ...movers.regressed];
  if (all.length === 0) return <p className="muted ad-folded">No mean score moved within this range.</p>;
  return (
    <ul className="ad-movers" aria-label="Largest moves of the mean score">
      {all.map((m) => (
        <li key={m.key}>
          <span className={`badge ${m.change > 0 ? "pass" : "fail"}`}>
            {m.change > 0 ? "+" : ""}
            {m.change.toFixed(1)}
          </span>{" "}
          {m.key.includes(":") ? <Link href={entityPath(m.key)}>{humanRef(m.key)}</Link> : m.key}{" "}
          <span className="muted">
            {m.from.toFixed(1)} → {m.to.toFixed(1)}
          </span>
        </li>
      ))}
    </ul>
  );
}

export function TechnologyPanel({ base, by, setBy }: PanelProps) {
  const m = useMetric("technology", { ...base, by });
  const repos = by === "language" || by === "topic";
  const measure = repos ? "repositories" : "entities";
  const s = shape(m.data, measure, { limit: 10 });
  return (
    <Panel
      id="technology"
      title="Technology"
      about={
        repos
          ? `Repositories using each ${by}, from the GitHub source's repository facts.`
          : by === "api-type"
            ? "APIs of each type."
            : by === "dependency"
              ? "Entities depending on each component, resource or API (dependsOn, consumesApi)."
              : "Entities carrying each tag."
      }
      controls={<SplitSelect splits={SPLITS.technology} value={by} onChange={setBy} />}
    >
      <Failed error={m.error} />
      {m.data && s.series.length === 0 ? (
        <Empty>
          {repos ? (
            <>
              No repository facts in this range: languages and topics come from the repositories a GitHub source
              lists, and this catalog has none (the demo organisation is read from files). Split by tag, API type or
              dependency to see what the entities use.
            </>
          ) : (
            <>No entities have a {by} in this range.</>
          )}
        </Empty>
      ) : (
        <>
          <Chart
            title={`${repos ? "Repositories" : "Entities"} by ${by}`}
            kind="line"
            labels={bucketLabels(m.data)}
            series={s.series}
            csvHref={m.csvHref}
            testId="metric-technology"
          />
          <Folded folded={s.folded} total={s.total} what={`${by} values`} />
        </>
      )}
    </Panel>
  );
}

export function CatalogCoveragePanel({ base, by, setBy }: PanelProps) {
  const m = useMetric("catalog-coverage", { ...base, by });
  const coverage = shape(m.data, "coverage", { limit: 10, allLabel: "Coverage" });
  return (
    <Panel
      id="catalog-coverage"
      title="Catalog coverage"
      about="Share of the (unarchived) repositories GitHub sources list that hold a catalog descriptor."
      controls={<SplitSelect splits={SPLITS["catalog-coverage"]} value={by} onChange={setBy} />}
    >
      <Failed error={m.error} />
      {m.data && coverage.series.length === 0 ? (
        <Empty>
          No repositories to measure: catalog coverage compares the repositories GitHub sources list with those
          holding a catalog descriptor, and no GitHub source has listed repositories in this range (the demo
          organisation is read from files).
        </Empty>
      ) : (
        <Chart
          title="Repositories with a descriptor"
          kind="line"
          percent
          labels={bucketLabels(m.data)}
          series={coverage.series}
          csvHref={m.csvHref}
          testId="metric-catalog-coverage"
        />
      )}
    </Panel>
  );
}
