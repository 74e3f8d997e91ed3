// The live picture every view shares: the pipeline's event stream, and the item list kept
// fresh from it. One connection per page, however many views and widgets listen.

import { api, subscribe } from "./api.js";

const listeners = new Set(); // (row) => void, for every pipeline event
const itemWatchers = new Set(); // (items) => void, whenever the list is re-read
let items = null;
let refetching = null;
let again = false;
let connection = null;

/** Call `fn(row)` for every pipeline event from now on; returns a function that stops it. */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Call `fn(items)` now (if known) and whenever the item list changes; returns a stopper. */
export function watchItems(fn) {
  itemWatchers.add(fn);
  if (items) fn(items);
  else refresh();
  return () => itemWatchers.delete(fn);
}

/** Re-read the item list (coalesced: one request in flight, one more queued at most). */
export function refresh() {
  if (refetching) {
    again = true;
    return refetching;
  }
  refetching = (async () => {
    try {
      do {
        again = false;
        items = await api("/api/items?all=true");
        for (const fn of itemWatchers) fn(items);
      } while (again);
    } catch {
      // The status line shows the server as unreachable; the next event or reconnect retries.
    } finally {
      refetching = null;
    }
  })();
  return refetching;
}

/** Connect the pipeline's event stream; `onState` hears "open" / "retrying". */
export function connect(onState) {
  if (connection) connection.close();
  connection = subscribe("/api/events", {
    onState(state) {
      onState(state);
      if (state === "open") refresh(); // whatever happened while we were away
    },
    onEvent(type, row) {
      if (!row || typeof row !== "object") return;
      if (row.item_id !== null && row.item_id !== undefined) refresh();
      for (const fn of listeners) fn(row);
    },
  });
}

/** Put an item the page just changed into the list at once, before the event round-trip. */
export function changed(item) {
  if (!items) return;
  const i = items.findIndex((it) => it.id === item.id);
  items = i >= 0 ? items.with(i, item) : [...items, item];
  for (const fn of itemWatchers) fn(items);
}
