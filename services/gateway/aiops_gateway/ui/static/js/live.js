// The live feed (GET /api/v1/events, Server-Sent Events) read with fetch(), so the Authorization header goes
// with it (EventSource cannot send one); it reconnects with backoff whenever the stream ends.

import { authHeaders, signalUnauthorized } from "./api.js";

const listeners = new Set();
let stateListener = () => {};
let controller = null;
let running = false;

export function onLive(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function onLiveState(listener) {
  stateListener = listener;
}

function dispatch(frame) {
  let kind = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let payload;
  try {
    payload = JSON.parse(data.join("\n"));
  } catch {
    return;
  }
  if (kind === "hello") stateListener(payload.live ? "live" : "waiting");
  for (const listener of [...listeners]) {
    try {
      listener(kind, payload);
    } catch (error) {
      console.warn("live listener failed", error);
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow() {
  let delay = 1000;
  while (running) {
    controller = new AbortController();
    stateListener("connecting");
    try {
      const response = await fetch("/api/v1/events", {
        headers: authHeaders({ Accept: "text/event-stream" }),
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401) {
        running = false;
        signalUnauthorized();
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = (buffer + value).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // the stream broke (gateway restarting, network): reconnect below
    }
    if (!running) return;
    stateListener("reconnecting");
    await sleep(delay + Math.random() * 500);
    delay = Math.min(delay * 2, 30000);
  }
}

export function startLive() {
  if (running) return;
  running = true;
  follow();
}

export function stopLive() {
  running = false;
  if (controller) controller.abort();
  stateListener("off");
}
