// The entity's scorecard results: per scorecard its level and score, and
// every check with its status; a failing check says what it saw and why.
// As of an instant, level, score and statuses come from the result's
// history (the per-entity results are only kept as they stand now).
import { Link } from "wouter";
import { when } from "../api";
import { show } from "./util";

export interface Check {
  id: string;
  title?: string;
  level?: string | null;
  status: string;
  value?: unknown;
  reason?: string;
  weight?: number;
}

interface ResultChange {
  at: string;
  level_after?: string | null;
  score_after?: number | null;
  checks?: Record<string, [string | null, string | null]>;
  cause?: Cause;
}

interface Cause {
  kind?: string;
  detail?: string;
  event_id?: string;
}

export interface Scorecard {
  id?: string;
  scorecard?: string;
  title?: string;
  level?: string | null;
  score?: number | null;
  checks: Check[];
  changedAt?: string;
  cause?: Cause;
  history?: ResultChange[];
}

export interface ScorecardsResponse {
  entityRef: string;
  scorecards: Scorecard[];
}

function statusClass(s: string | null | undefined): string {
  return s === "pass" ? "pass" : s === "fail" ? "fail" : s === "exempt" ? "exempt" : "";
}

const STATUS_MARK: Record<string, string> = { pass: "✓", fail: "✗", exempt: "–" };

function StatusBadge({ status }: { status: string | null | undefined }) {
  const s = status ?? "unknown";
  return (
    <span className={`badge ${statusClass(s)}`} data-testid="check-status">
      <span aria-hidden="true">{STATUS_MARK[s] ?? "?"} </span>
      {s}
    </span>
  );
}

function Card({ card, asOf }: { card: Scorecard; asOf: string | null }) {
  const id = card.scorecard ?? card.id;
  const title = card.title ?? id ?? "Scorecard";
  const headingId = `scorecard-${id ?? title}`.replace(/[^a-zA-Z0-9_-]/g, "-");
  const failing = card.checks.filter((c) => c.status === "fail").length;
  return (
    <article className="scorecard" aria-labelledby={headingId} data-testid="scorecard" data-scorecard={id}>
      <header className="scorecard-head">
        <h3 id={headingId}>{id ? <Link href={`/scorecards/${encodeURIComponent(id)}`}>{title}</Link> : title}</h3>
        <div className="scorecard-summary">
          <span className="scorecard-level">
            <span className="muted">Level </span>
            <span className={`level level-${card.level ?? "none"}`} data-testid="scorecard-level">
              {card.level ?? "none"}
            </span>
          </span>
          <span className="scorecard-score">
            <span className="muted">Score </span>
            <strong data-testid="scorecard-score">{card.score ?? "—"}</strong>
            <span className="muted"> / 100</span>
          </span>
          <span className="muted">
            {card.checks.length - failing} of {card.checks.length} checks pass
          </span>
        </div>
      </header>
      <div className="table-scroll" tabIndex={0} role="region" aria-label={`Checks of ${title}`}>
        <table className="data checks">
          <caption className="visually-hidden">Checks of {title}</caption>
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Check</th>
              <th scope="col">Level</th>
              <th scope="col" className="num">
                Weight
              </th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {card.checks.map((c) => (
              <tr key={c.id} data-check={c.id} data-status={c.status}>
                <td>
                  <StatusBadge status={c.status} />
                </td>
                <td>{c.title ?? c.id}</td>
                <td>{c.level ?? "—"}</td>
                <td className="num">{c.weight ?? "—"}</td>
                <td className="check-details">
                  {c.status === "fail" || c.status === "exempt" ? (
                    <>
                      {c.value !== undefined && (
                        <div>
                          <span className="muted">Seen: </span>
                          <code>{show(c.value)}</code>
                        </div>
                      )}
                      {c.reason && <div className="reason">{c.reason}</div>}
                    </>
                  ) : c.value !== undefined ? (
                    <span className="muted">{show(c.value)}</span>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {(card.changedAt || card.cause) && (
        <p className="muted scorecard-foot">
          Last changed {when(card.changedAt)}
          {card.cause?.kind && (
            <>
              {" "}
              by a change of {card.cause.kind}
              {card.cause.detail && (
                <>
                  : <span className="mono">{card.cause.detail}</span>
                </>
              )}
            </>
          )}
          {asOf && " (check details are not kept per instant; statuses come from the result's history)"}
        </p>
      )}
    </article>
  );
}

export function Scorecards({ data, asOf }: { data: ScorecardsResponse; asOf: string | null }) {
  // With `asOf` the API answers each card as it stood then, from its
  // result history.
  const cards = data.scorecards;
  if (cards.length === 0)
    return <p className="muted">No scorecard applies to this entity{asOf ? " at that instant" : ""}.</p>;
  return (
    <div className="scorecards">
      {cards.map((c, i) => (
        <Card key={c.scorecard ?? c.id ?? i} card={c} asOf={asOf} />
      ))}
    </div>
  );
}
