// How the card's results moved, week by week (or day by day): entities per
// level and the mean score (`/trend`), and each check's pass rate
// (`/api/metrics/scorecard-levels`), overall or for the selected group.
import { useMemo } from "react";
import { Link } from "wouter";
import { entityPath, humanRef, url, useApi } from "../api";
import { Chart, type Series } from "../components/Chart";
import { countAt, day, type Dimension, levelLabel, levelsOf, type Scorecard, score, type TrendView } from "./model";

interface MetricView {
  buckets: { start: string; end: string }[];
  series: { key: string; measure: string; values: number[] }[];
  movers?: { improved: Mover[]; regressed: Mover[] };
}

interface Mover {
  key: string;
  from: number;
  to: number;
  change: number;
}

export function Trends({
  card,
  by,
  group,
  interval,
  onInterval,
}: {
  card: Scorecard;
  by: Dimension;
  group: string | null;
  interval: "week" | "day";
  onInterval: (i: "week" | "day") => void;
}) {
  const id = encodeURIComponent(card.id);
  // Both sources over the same window: 12 weeks or 30 days to today (UTC).
  const from = useMemo(() => {
    const d = new Date();
    d.setUTCDate(d.getUTCDate() - (interval === "week" ? 77 : 29));
    return d.toISOString().slice(0, 10);
  }, [interval]);
  const trend = useApi<TrendView>(`/api/scorecards/${id}/trend`, {
    from,
    interval,
    by: group ? by : "all",
    group: group ?? undefined,
  });
  const metricParams = { scorecard: card.id, from, interval, by: group ? by : "all" };
  const metric = useApi<MetricView>("/api/metrics/scorecard-levels", metricParams);
  const movers = useApi<MetricView>("/api/metrics/scorecard-levels", { scorecard: card.id, from, interval, by });

  const levels = levelsOf(card);
  const labels = useMemo(() => (trend.data?.buckets ?? []).map((b) => day(b.start)), [trend.data]);
  const perLevel: Series[] = useMemo(() => {
    const bs = trend.data?.buckets ?? [];
    const pick = (gs: TrendView["buckets"][number]["groups"]) => (group ? gs.find((g) => g.group === group) : gs[0]);
    return [null, ...levels].map((l) => ({
      label: levelLabel(l),
      values: bs.map((b) => {
        const g = pick(b.groups);
        return g ? countAt(g, l) : 0;
      }),
    }));
  }, [trend.data, levels, group]);
  const mean: Series[] = useMemo(() => {
    const bs = trend.data?.buckets ?? [];
    return [
      {
        label: "Mean score",
        values: bs.map((b) => {
          const g = group ? b.groups.find((x) => x.group === group) : b.groups[0];
          return g ? Math.round(g.meanScore * 10) / 10 : 0;
        }),
      },
    ];
  }, [trend.data, group]);

  const key = group ?? "all";
  const passLabels = useMemo(() => (metric.data?.buckets ?? []).map((b) => day(b.start)), [metric.data]);
  const passRates: Series[] = useMemo(
    () =>
      (metric.data?.series ?? [])
        .filter((s) => s.key === key && s.measure.startsWith("pass_rate:"))
        .map((s) => ({ label: s.measure.slice("pass_rate:".length), values: s.values })),
    [metric.data, key],
  );

  return (
    <>
      <div className="sc-toolbar">
        <div role="group" aria-label="Interval" className="sc-segmented">
          {(["week", "day"] as const).map((i) => (
            <button key={i} type="button" aria-pressed={interval === i} onClick={() => onInterval(i)}>
              {i === "week" ? "Weekly (12 weeks)" : "Daily (30 days)"}
            </button>
          ))}
        </div>
        <span className="muted">
          {group ? (
            <>
              For <strong>{humanRef(group)}</strong>
            </>
          ) : (
            "All entities of the card"
          )}
          ; each bucket shows the results at its end.
        </span>
      </div>
      {trend.error && <p className="error">Could not load the trend: {trend.error.message}</p>}
      <div className="grid2">
        <Chart
          title="Entities per level"
          kind="stacked-bar"
          labels={labels}
          series={perLevel}
          testId="trend-levels"
        />
        <Chart title="Mean score" kind="line" labels={labels} series={mean} testId="trend-mean" />
      </div>
      {metric.error && <p className="error">Could not load the pass rates: {metric.error.message}</p>}
      <div className="sc-wide">
        <Chart
          title="Pass rate per check"
          kind="line"
          percent
          labels={passLabels}
          series={passRates}
          csvHref={url("/api/metrics/scorecard-levels", { ...metricParams, format: "csv" })}
          testId="trend-pass-rates"
          height={300}
        />
      </div>
      <Movers data={movers.data?.movers} by={by} />
    </>
  );
}

function Movers({ data, by }: { data?: { improved: Mover[]; regressed: Mover[] }; by: Dimension }) {
  if (!data) return null;
  const what = by === "owner" ? "teams" : by === "system" ? "systems" : "domains";
  if (data.improved.length === 0 && data.regressed.length === 0) {
    return <p className="muted sc-movers-none">No {what}' mean score changed within this window.</p>;
  }
  const list = (items: Mover[], title: string, cls: string) => (
    <div className="panel">
      <h3>{title}</h3>
      {items.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ol className="sc-movers">
          {items.map((m) => (
            <li key={m.key}>
              <Link href={entityPath(m.key)}>{humanRef(m.key)}</Link>{" "}
              <span className={`badge ${cls}`}>
                {m.change > 0 ? "+" : ""}
                {score(m.change)}
              </span>{" "}
              <span className="muted">
                {score(m.from)} → {score(m.to)}
              </span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
  return (
    <div className="grid2 sc-movers-grid">
      {list(data.improved, `Most improved ${what}`, "pass")}
      {list(data.regressed, `Most regressed ${what}`, "fail")}
    </div>
  );
}
