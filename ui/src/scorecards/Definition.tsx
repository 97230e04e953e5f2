// A scorecard's definition as people read it: what it applies to, and its
// checks level by level with their rules, weights and how many pass.
import type { CheckRate, Scorecard } from "./model";
import { levelClass, levelLabel, levelsOf, percent } from "./model";

export function AppliesTo({ card }: { card: Scorecard }) {
  const entries = Object.entries(card.appliesTo ?? {});
  if (entries.length === 0) return <p className="sc-applies muted">Applies to every entity.</p>;
  return (
    <p className="sc-applies">
      <span className="muted">Applies to </span>
      {entries.map(([field, values], i) => (
        <span key={field}>
          {i > 0 && <span className="muted"> and </span>}
          <code>{field}</code> <span className="muted">{values.length > 1 ? "in" : "="}</span>{" "}
          {values.map((v, j) => (
            <span key={v}>
              {j > 0 && ", "}
              <code>{v}</code>
            </span>
          ))}
        </span>
      ))}
    </p>
  );
}

/** The checks by level; `rates` (of the whole card) adds pass counts. */
export function ChecksTable({ card, rates, entities }: { card: Scorecard; rates?: CheckRate[]; entities?: number }) {
  const levels = levelsOf(card);
  const total = card.checks.reduce((n, c) => n + c.weight, 0);
  return (
    <div className="sc-checks-wrap">
      <table className="data sc-checks" data-testid="checks-table">
        <caption className="visually-hidden">Checks of {card.title ?? card.id}, by level</caption>
        <thead>
          <tr>
            <th scope="col">Check</th>
            <th scope="col">Rule</th>
            <th scope="col" className="num">
              Weight
            </th>
            <th scope="col" className="num">
              Passing
            </th>
            <th scope="col" className="num">
              Exempt
            </th>
            <th scope="col" className="num">
              Pass rate
            </th>
          </tr>
        </thead>
        {levels.map((level) => {
          const checks = card.checks.filter((c) => c.level === level);
          return (
            <tbody key={level}>
              <tr className="sc-level-row">
                <th scope="colgroup" colSpan={6}>
                  <span className={levelClass(card, level)}>{levelLabel(level)}</span>
                  <span className="muted">
                    {" "}
                    · {checks.length} check{checks.length === 1 ? "" : "s"}
                  </span>
                </th>
              </tr>
              {checks.map((c) => {
                const r = rates?.find((x) => x.id === c.id);
                return (
                  <tr key={c.id} data-check={c.id}>
                    <th scope="row" className="sc-check-name">
                      {c.title ?? c.id}
                      <div>
                        <code className="muted">{c.id}</code>
                      </div>
                    </th>
                    <td>
                      <code className="sc-rule">{c.rule}</code>
                    </td>
                    <td className="num" title={total ? `${percent(c.weight / total)} of the score` : undefined}>
                      {c.weight}
                    </td>
                    <td className="num">
                      {r ? (
                        <>
                          {r.passing}
                          {entities !== undefined && <span className="muted"> / {entities}</span>}
                        </>
                      ) : (
                        "—"
                      )}
                    </td>
                    <td className="num">{r ? r.exempt : "—"}</td>
                    <td className="num">
                      {r ? <span className={`badge ${rateClass(r.passRate)}`}>{percent(r.passRate)}</span> : "—"}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          );
        })}
      </table>
    </div>
  );
}

export function rateClass(rate: number): string {
  if (rate >= 0.9) return "pass";
  if (rate >= 0.5) return "exempt";
  return "fail";
}
