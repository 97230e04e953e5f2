// `/scorecards/{id}`: one card — where its entities stand (level
// distribution, pass rate per check), its checks, rollups by team, system
// and domain, trends, the entities at each level and the exemptions. The
// view's state (rollup dimension, selected group, level, interval) lives in
// the URL's query.
import { useMemo, useState } from "react";
import { Link, useSearchParams } from "wouter";
import { useApi, when } from "../api";
import { Chart, type Series } from "../components/Chart";
import { useFeed } from "../live";
import { AppliesTo, ChecksTable } from "./Definition";
import { Exemptions } from "./Exemptions";
import { LevelEntities } from "./LevelEntities";
import {
  countAt,
  type Dimension,
  isDimension,
  levelClass,
  levelLabel,
  levelsOf,
  overallPassRate,
  percent,
  type RollupView,
  type Scorecard,
  score,
} from "./model";
import { Rollups } from "./Rollups";
import { Trends } from "./Trends";
import { useReload } from "./useReload";

export function CardView({ id }: { id: string }) {
  const card = useApi<Scorecard>(`/api/scorecards/${encodeURIComponent(id)}`);
  const [live, setLive] = useState(0);
  const connected = useFeed({ kind: ["scorecard"] }, () => setLive((n) => n + 1));
  useReload(card.reload, live);

  if (card.error) {
    return (
      <div className="sc">
        <Crumbs title={id} />
        <h1>{id}</h1>
        <p className="error">
          {card.error.message}. <Link href="/scorecards">All scorecards</Link>
        </p>
      </div>
    );
  }
  if (!card.data) {
    return (
      <div className="sc">
        <Crumbs title={id} />
        <p className="muted">Loading the scorecard…</p>
      </div>
    );
  }
  return <Loaded card={card.data} live={live} connected={connected} />;
}

function Crumbs({ title }: { title: string }) {
  return (
    <nav aria-label="Breadcrumb" className="sc-crumbs">
      <Link href="/scorecards">Scorecards</Link> <span aria-hidden="true">›</span>{" "}
      <span aria-current="page">{title}</span>
    </nav>
  );
}

function Loaded({ card, live, connected }: { card: Scorecard; live: number; connected: boolean }) {
  const [params, setParams] = useSearchParams();
  const byParam = params.get("by");
  const by: Dimension = isDimension(byParam) ? byParam : "owner";
  const group = params.get("group");
  const level = params.get("level") ?? "all";
  const interval = params.get("interval") === "day" ? "day" : "week";
  const set = (changes: Record<string, string | null>) =>
    setParams((prev) => {
      const next = new URLSearchParams(prev);
      for (const [k, v] of Object.entries(changes)) {
        if (v === null) next.delete(k);
        else next.set(k, v);
      }
      return next;
    });

  const rollup = useApi<RollupView>(`/api/scorecards/${encodeURIComponent(card.id)}/rollup`, { by: "all" });
  useReload(rollup.reload, live);
  const ownerRollup = useApi<RollupView>(
    group && by === "owner" ? `/api/scorecards/${encodeURIComponent(card.id)}/rollup` : null,
    { by: "owner", group: group ?? undefined },
  );
  const all = rollup.data?.groups[0];
  const levels = levelsOf(card);
  const title = card.title ?? card.id;

  const distribution: Series[] = useMemo(
    () => [{ label: "Entities", values: [null, ...levels].map((l) => (all ? countAt(all, l) : 0)) }],
    [all, levels],
  );
  const checkIds = useMemo(() => card.checks.map((c) => c.id), [card]);
  const rates: Series[] = useMemo(
    () => [
      {
        label: "Pass rate",
        values: checkIds.map((id) => all?.checks?.find((c) => c.id === id)?.passRate ?? 0),
      },
    ],
    [all, checkIds],
  );
  const levelLabels = useMemo(() => [null, ...levels].map(levelLabel), [levels]);

  return (
    <div className="sc">
      <Crumbs title={title} />
      <div className="sc-titlebar">
        <h1>{title}</h1>
        <span className="live" data-connected={connected}>
          {connected ? "Live" : "Not live"}
        </span>
      </div>
      {card.description && <p className="sc-lede">{card.description}</p>}
      <div className="sc-meta">
        <AppliesTo card={card} />
        <span className="muted">
          <code>{card.id}</code>
          {card.file && (
            <>
              {" "}
              · defined in <code>{[card.source, card.file].filter(Boolean).join(":")}</code>
            </>
          )}
          {card.updatedAt && <> · updated {when(card.updatedAt)}</>}
        </span>
      </div>

      <section aria-labelledby="sc-now">
        <h2 id="sc-now">Where entities stand</h2>
        {rollup.error && <p className="error">Could not load the results: {rollup.error.message}</p>}
        <div className="sc-overview">
          <div className="sc-summary" data-testid="summary">
          <div className="sc-tiles">
            <div className="sc-tile">
              <span className="sc-tile-label">Entities</span>
              <span className="sc-tile-value">{all?.entities ?? "—"}</span>
            </div>
            <div className="sc-tile">
              <span className="sc-tile-label">Mean score</span>
              <span className="sc-tile-value">{all ? score(all.meanScore) : "—"}</span>
              <span className="muted">of 100</span>
            </div>
            <div className="sc-tile">
              <span className="sc-tile-label">Checks passing</span>
              <span className="sc-tile-value">{all ? percent(overallPassRate(all)) : "—"}</span>
            </div>
          </div>
          <h3 className="sc-tiles-head">Entities at each level</h3>
          <div className="sc-tiles sc-level-tiles">
            {[...levels].reverse().map((l) => (
              <div className="sc-tile" key={l}>
                <span className="sc-tile-label">
                  <span className={levelClass(card, l)}>{levelLabel(l)}</span>
                </span>
                <span className="sc-tile-value">{all ? countAt(all, l) : "—"}</span>
                <span className="muted">{all && all.entities ? percent(countAt(all, l) / all.entities) : ""}</span>
              </div>
            ))}
            <div className="sc-tile">
              <span className="sc-tile-label">
                <span className={levelClass(card, null)}>{levelLabel(null)}</span>
              </span>
              <span className="sc-tile-value">{all ? countAt(all, null) : "—"}</span>
              <span className="muted">{all && all.entities ? percent(countAt(all, null) / all.entities) : ""}</span>
            </div>
          </div>
          </div>
          {all ? (
            <Chart
              title="Level distribution"
              kind="doughnut"
              labels={levelLabels}
              series={distribution}
              testId="level-distribution"
              height={230}
            />
          ) : (
            <div className="sc-chart-wait muted">{rollup.error ? "No results" : "Loading…"}</div>
          )}
        </div>
        {all && (
          <div className="sc-wide">
            <Chart
              title="Pass rate per check"
              kind="bar"
              percent
              labels={checkIds}
              series={rates}
              testId="check-pass-rates"
              height={260}
            />
          </div>
        )}
      </section>

      <section aria-labelledby="sc-checks">
        <h2 id="sc-checks">Checks</h2>
        <p className="muted sc-hint">
          An entity reaches a level when it passes (or is exempt from) every check of it and of the levels below;
          its score is the weighted share of checks passed.
        </p>
        <ChecksTable card={card} rates={all?.checks} entities={all?.entities} />
      </section>

      <section aria-labelledby="sc-rollups">
        <h2 id="sc-rollups">By team, system and domain</h2>
        <Rollups
          card={card}
          by={by}
          selected={group}
          onBy={(b) => set({ by: b, group: null })}
          onSelect={(g) => set({ group: g })}
        />
      </section>

      <section aria-labelledby="sc-trends">
        <h2 id="sc-trends">Trends</h2>
        <Trends card={card} by={by} group={group} interval={interval} onInterval={(i) => set({ interval: i })} />
      </section>

      <section aria-labelledby="sc-entities">
        <h2 id="sc-entities">Entities by level</h2>
        <LevelEntities
          card={card}
          level={level}
          owner={by === "owner" ? group : null}
          counts={by === "owner" && group ? ownerRollup.data?.groups[0] : all}
          onLevel={(l) => set({ level: l === "all" ? null : l })}
          reloadKey={live}
        />
      </section>

      <section aria-labelledby="sc-exemptions">
        <h2 id="sc-exemptions">Exemptions</h2>
        <Exemptions card={card} reloadKey={live} />
      </section>
    </div>
  );
}
