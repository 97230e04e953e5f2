// `/scorecards` lists the scorecards; `/scorecards/{id}` shows one.
import { CardView } from "../scorecards/Card";
import { ScorecardListView } from "../scorecards/List";
import "../scorecards/scorecards.css";

export function ScorecardsPage({ id }: { id?: string }) {
  if (!id) return <ScorecardListView />;
  let card = id;
  try {
    card = decodeURIComponent(id);
  } catch {
    // already decoded
  }
  return <CardView key={card} id={card} />;
}
