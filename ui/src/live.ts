// Live updates: the change feed as Server-Sent Events
// (`/api/history/events/stream`), from the current end of the feed, so a
// page hears of every change committed after it opened.
import { useEffect, useRef, useState } from "react";
import { url } from "./api";

/** The feed's event types (`event:` of the stream). */
export const FEED_TYPES = [
  "entity_created",
  "entity_updated",
  "entity_deleted",
  "location_created",
  "location_updated",
  "location_deleted",
  "scorecard_changed",
];

export interface FeedSelection {
  /** `kind=` of the feed: entity, location, scorecard or an entity kind. */
  kind?: string[];
  entityRef?: string[];
  filter?: string;
}

/**
 * Calls `onChange(eventType, data)` for every change matching `sel`
 * committed after the page subscribed; `null` selection subscribes to
 * nothing. Returns whether the stream is connected.
 */
export function useFeed(
  sel: FeedSelection | null,
  onChange: (type: string, data: Record<string, unknown>) => void,
): boolean {
  const handler = useRef(onChange);
  handler.current = onChange;
  const [connected, setConnected] = useState(false);
  const key = sel === null ? null : JSON.stringify(sel);
  useEffect(() => {
    if (key === null) return;
    const s = JSON.parse(key) as FeedSelection;
    // `after=now`: only what is committed from here on; EventSource then
    // resumes with Last-Event-ID by itself after a dropped connection.
    const src = new EventSource(
      url("/api/history/events/stream", { after: "now", kind: s.kind, entityRef: s.entityRef, filter: s.filter }),
    );
    const listener = (ev: MessageEvent) => {
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(ev.data);
      } catch {
        // a change without a readable body still means "look again"
      }
      handler.current(ev.type, data);
    };
    FEED_TYPES.forEach((t) => src.addEventListener(t, listener as EventListener));
    src.onopen = () => setConnected(true);
    src.onerror = () => setConnected(src.readyState === EventSource.OPEN);
    return () => {
      src.close();
      setConnected(false);
    };
  }, [key]);
  return connected;
}
