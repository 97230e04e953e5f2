// Live updates: the change feed as Server-Sent Events
// (`/api/history/events/stream`), from the current end of the feed, so a
// page hears of every change committed after it opened. Read through
// fetch rather than EventSource, so the request carries the caller's token
// where reads need one; a dropped stream is resumed from the last event
// seen (`Last-Event-ID`), as EventSource would.
import { useEffect, useRef, useState } from "react";
import { headers, url } from "./api";

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

/** Reconnect delay after a dropped stream unless the server says (`retry:`). */
const RETRY_MS = 2000;

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
    const ctl = new AbortController();
    let lastId: string | null = null;
    let retry = RETRY_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const dispatch = (type: string, data: string) => {
      if (!FEED_TYPES.includes(type)) return;
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(data);
      } catch {
        // a change without a readable body still means "look again"
      }
      handler.current(type, body);
    };

    const connect = async () => {
      const params = { after: lastId ?? "now", kind: s.kind, entityRef: s.entityRef, filter: s.filter };
      try {
        const res = await fetch(url("/api/history/events/stream", params), {
          headers: headers({ accept: "text/event-stream" }),
          signal: ctl.signal,
        });
        // Without a valid token nothing changes until the page signs in
        // (and reloads): no point in asking again.
        if (res.status === 401 || res.status === 403) return;
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        setConnected(true);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let event = { type: "message", data: [] as string[], id: null as string | null };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let nl: number;
          while ((nl = buffer.search(/\r?\n/)) >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + (buffer[nl] === "\r" ? 2 : 1));
            if (line === "") {
              if (event.id !== null) lastId = event.id;
              if (event.data.length) dispatch(event.type, event.data.join("\n"));
              event = { type: "message", data: [], id: null };
              continue;
            }
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event.type = v;
            else if (field === "data") event.data.push(v);
            else if (field === "id") event.id = v;
            else if (field === "retry" && /^\d+$/.test(v)) retry = Number(v);
          }
        }
      } catch {
        if (ctl.signal.aborted) return;
      }
      setConnected(false);
      if (!ctl.signal.aborted) timer = setTimeout(connect, retry);
    };
    connect();
    return () => {
      ctl.abort();
      clearTimeout(timer);
      setConnected(false);
    };
  }, [key]);
  return connected;
}
