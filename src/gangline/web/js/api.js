// Talking to the server: JSON over fetch, and Server-Sent Events read through fetch too, so a
// server with a token gets `Authorization: Bearer` on every request (EventSource cannot send it).

const TOKEN_KEY = "gangline.token";
const ACTOR = "web";

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `the server answered ${status}`);
    this.status = status;
    this.code = err.code || `http_${status}`;
    this.field = err.field || null;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const out = { "X-Gangline-Actor": ACTOR, ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

function unauthorized() {
  window.dispatchEvent(new CustomEvent("gangline:unauthorized"));
}

/** GET (or another method with `body`) a JSON API path; throws ApiError with the server's message. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { error: { code: "offline", message: "the server cannot be reached" } });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.status === 401) unauthorized();
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Is the server up? /health is open even with a token. */
export async function health(signal) {
  try {
    const response = await fetch("/health", { signal, headers: { Accept: "application/json" } });
    return await response.json();
  } catch (err) {
    if (err.name === "AbortError") throw err;
    return { ok: false, db: false, orchestrator: false, offline: true };
  }
}

/**
 * Follow a Server-Sent Events path until `close()`: `onEvent(type, data, id)` for each message
 * (data parsed as JSON), `onState("open" | "retrying" | "ended")` as the connection changes.
 * A dropped connection is resumed with Last-Event-ID after a short, growing pause; the stream
 * ends by itself only after an `end` event (a finished run).
 */
export function subscribe(path, { onEvent, onState = () => {}, after = null } = {}) {
  const controller = new AbortController();
  let lastId = after;
  let closed = false;
  let pause = 500;

  async function connect() {
    while (!closed) {
      let ended = false;
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId !== null) extra["Last-Event-ID"] = String(lastId);
        const response = await fetch(path, { headers: headers(extra), signal: controller.signal });
        if (response.status === 401) unauthorized();
        if (!response.ok) throw new ApiError(response.status, null);
        onState("open");
        pause = 500;
        ended = await read(response.body, (type, data, id) => {
          if (id !== null) lastId = id;
          onEvent(type, data, id);
          return type === "end";
        });
      } catch (err) {
        if (closed || err.name === "AbortError") return;
        if (err instanceof ApiError && err.status === 404) {
          onState("ended");
          return;
        }
      }
      if (ended) {
        onState("ended");
        return;
      }
      onState("retrying");
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 8000);
    }
  }

  connect();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}

/** Parse an event stream; `deliver` returns true to stop (after `end`). Resolves true when stopped so. */
async function read(body, deliver) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "message";
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (data.length) {
          let parsed;
          try {
            parsed = JSON.parse(data.join("\n"));
          } catch {
            parsed = data.join("\n");
          }
          if (deliver(type, parsed, id)) {
            reader.cancel();
            return true;
          }
        }
        type = "message";
        data = [];
        id = null;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "data") data.push(text);
      else if (field === "event") type = text;
      else if (field === "id") id = Number(text);
    }
  }
}
