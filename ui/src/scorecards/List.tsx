// `/scorecards`: every scorecard definition, each with where its entities
// stand now, linking to the card's page.
import { Link } from "wouter";
import { useApi } from "../api";
import { useFeed } from "../live";
import {
  countAt,
  levelClass,
  levelLabel,
  levelsOf,
  type RollupView,
  type Scorecard,
  type ScorecardList,
  score,
} from "./model";
import { AppliesTo } from "./Definition";

export function ScorecardListView() {
  const list = useApi<ScorecardList>("/api/scorecards");
  const connected = useFeed({ kind: ["scorecard"] }, () => list.reload());
  const items = list.data?.items ?? [];
  const rejected = list.data?.rejected ?? [];
  return (
    <div className="sc">
      <div className="sc-titlebar">
        <h1>Scorecards</h1>
        <span className="live" data-connected={connected}>
          {connected ? "Live" : "Not live"}
        </span>
      </div>
      <p className="muted sc-lede">
        Each scorecard checks the entities it applies to against rules grouped in levels; an entity reaches a level
        when it passes every check of that level and of the levels below.
      </p>
      {list.error && <p className="error">Could not load the scorecards: {list.error.message}</p>}
      {rejected.length > 0 && (
        <div className="notice" role="status">
          <strong>
            {rejected.length} definition file{rejected.length === 1 ? " was" : "s were"} rejected
          </strong>{" "}
          (their previous text stays in force):
          <ul>
            {rejected.map((r, i) => (
              <li key={i}>
                <code>{[r.source, r.file].filter(Boolean).join(":") || "definition"}</code>
                {Array.isArray(r.errors) && r.errors.length > 0 && <>: {r.errors.join("; ")}</>}
              </li>
            ))}
          </ul>
        </div>
      )}
      {list.data && items.length === 0 && (
        <p className="panel">No scorecards are defined yet. Add a definition file to a scorecards source.</p>
      )}
      {!list.data && !list.error && <p className="muted">Loading scorecards…</p>}
      <ul className="sc-cards" aria-label="Scorecards">
        {items.map((card) => (
          <CardSummary key={card.id} card={card} />
        ))}
      </ul>
    </div>
  );
}

function CardSummary({ card }: { card: Scorecard }) {
  const rollup = useApi<RollupView>(`/api/scorecards/${encodeURIComponent(card.id)}/rollup`, {
    by: "all",
    checks: "false",
  });
  const all = rollup.data?.groups[0];
  const levels = levelsOf(card);
  return (
    <li className="sc-card panel" data-testid="scorecard-card" data-id={card.id}>
      <h2>
        <Link href={`/scorecards/${encodeURIComponent(card.id)}`}>{card.title ?? card.id}</Link>
      </h2>
      <p className="muted sc-card-id">
        <code>{card.id}</code> · {card.checks.length} checks · levels {levels.join(" → ")}
      </p>
      {card.description && <p className="sc-card-desc">{card.description}</p>}
      <AppliesTo card={card} />
      {all ? (
        <div className="sc-card-stats">
          <span>
            <strong>{all.entities}</strong> entities
          </span>
          <span>
            mean score <strong>{score(all.meanScore)}</strong>
          </span>
          {[null, ...levels].map((l) => (
            <span key={l ?? "none"} className={levelClass(card, l)}>
              {levelLabel(l)} <strong>{countAt(all, l)}</strong>
            </span>
          ))}
        </div>
      ) : rollup.error ? (
        <p className="error">{rollup.error.message}</p>
      ) : (
        <p className="muted">No results yet.</p>
      )}
    </li>
  );
}
