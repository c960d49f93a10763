/**
 * Worker that hosts one onnxruntime-web Wasm session. onnxruntime-web fixes
 * its thread count (`env.wasm.numThreads`) once per JavaScript realm, so each
 * Wasm runner of `ort_web.ts` gets a worker of its own and runners with
 * different thread counts can live in one process.
 *
 * Protocol (one request at a time, answered in order):
 * `{ kind: "init", model, threads }` → `{ ok: true }`;
 * `{ kind: "run", data, shape }` → `{ ok: true, logits }`;
 * `{ kind: "dispose" }` → `{ ok: true }`; any failure → `{ ok: false, error }`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { openOrtWebSession, type OrtWebSession } from "./ort_web_session.ts";

/** A request from `ort_web.ts`. */
export type OrtWebRequest =
  | { kind: "init"; model: Uint8Array; threads: number }
  | { kind: "run"; data: Float32Array; shape: number[] }
  | { kind: "dispose" };

/** The worker's answer to one request. */
export type OrtWebReply =
  | { ok: true; logits?: Float32Array<ArrayBuffer> }
  | { ok: false; error: string };

let session: OrtWebSession | undefined;

async function handle(request: OrtWebRequest): Promise<OrtWebReply> {
  if (request.kind === "init") {
    session = await openOrtWebSession(request.model, "wasm", request.threads);
    return { ok: true };
  }
  if (!session) throw new Error("The worker has no session: send init first");
  if (request.kind === "run") {
    return { ok: true, logits: await session.run(request.data, request.shape) };
  }
  await session.release();
  session = undefined;
  return { ok: true };
}

self.onmessage = async (event: MessageEvent<OrtWebRequest>) => {
  let reply: OrtWebReply;
  try {
    reply = await handle(event.data);
  } catch (e) {
    reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  self.postMessage(reply, reply.ok && reply.logits ? [reply.logits.buffer] : []);
};
