// Who exempted which entity from which check, why and until when
// (revoked and expired exemptions stay listed).
import { Link } from "wouter";
import { useReload } from "./useReload";
import { entityPath, humanRef, useApi, when } from "../api";
import type { ExemptionRecord, Scorecard } from "./model";

export function Exemptions({ card, reloadKey }: { card: Scorecard; reloadKey: number }) {
  const ex = useApi<{ items: ExemptionRecord[] }>(`/api/scorecards/${encodeURIComponent(card.id)}/exemptions`);
  useReload(ex.reload, reloadKey);
  const items = ex.data?.items ?? [];
  const now = Date.now();
  if (ex.error) return <p className="error">Could not load the exemptions: {ex.error.message}</p>;
  if (!ex.data) return <p className="muted">Loading exemptions…</p>;
  if (items.length === 0)
    return (
      <p className="panel" data-testid="no-exemptions">
        No exemptions: every entity is judged on every check of this card.
      </p>
    );
  const title = (id: string) => card.checks.find((c) => c.id === id)?.title ?? id;
  return (
    <div className="table-scroll">
      <table className="data" data-testid="exemptions">
        <caption className="visually-hidden">Exemptions of {card.title ?? card.id}</caption>
        <thead>
          <tr>
            <th scope="col">Entity</th>
            <th scope="col">Check</th>
            <th scope="col">Reason</th>
            <th scope="col">Granted</th>
            <th scope="col">Expires</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {items.map((r) => {
            const x = r.exemption;
            const expires = x.expiresAt ?? x.expires_at;
            const granted = r.grantedAt ?? r.granted_at;
            const expired = !!expires && new Date(expires).getTime() <= now;
            return (
              <tr key={x.id}>
                <th scope="row">
                  <Link href={entityPath(x.entity)}>{humanRef(x.entity)}</Link>
                </th>
                <td>
                  {title(x.check)} <code className="muted">{x.check}</code>
                </td>
                <td>{x.reason}</td>
                <td>
                  {when(granted)}
                  <div className="muted">by {x.author}</div>
                </td>
                <td>{expires ? when(expires) : <span className="muted">until revoked</span>}</td>
                <td>
                  {r.revoked ? (
                    <span className="badge fail" title={r.revoked.reason}>
                      revoked {when(r.revoked.at)} by {r.revoked.author}
                    </span>
                  ) : expired ? (
                    <span className="badge">expired</span>
                  ) : (
                    <span className="badge exempt">active</span>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
