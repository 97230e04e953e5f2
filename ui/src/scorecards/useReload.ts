// Refetches on live changes: `key` counts the changes heard.
import { useEffect, useRef } from "react";

/** Calls `reload` whenever `key` changes (not on the first render). */
export function useReload(reload: () => void, key: number) {
  const last = useRef(key);
  useEffect(() => {
    if (last.current === key) return;
    last.current = key;
    reload();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
}
