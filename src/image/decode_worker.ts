/**
 * A {@linkcode DecodePool} worker (a Web Worker, or in Deno a
 * `node:worker_threads` one, which talks through the `MessagePort` in its
 * `workerData`): rebuilds the evaluation transform from
 * the settings it is sent, then turns each image it receives (encoded bytes
 * or pixels, never a path) into the transform's CHW float32 tensor. Errors
 * are sent back by name and message; the worker never ends by itself.
 *
 * When its first image says `lowPriority`, it lowers its own scheduling
 * priority to `nice` 19 where that is allowed without asking (Deno with
 * `--allow-sys`; Linux's nice value is per thread, so only this worker's): it
 * then takes the cycles the kernel threads leave idle, and the calling thread
 * decodes what it has not started when the batch is needed.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { evalTransform, transformSource } from "./preprocess.ts";
import type { DecodeJob, DecodeReply } from "./decode_pool.ts";

let lowered: Promise<void> | undefined;

/** nice 19 for this thread, where `node:os` and the sys permission are there (never prompts). */
async function lowerPriority(): Promise<void> {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  try {
    const status = deno?.permissions.querySync({ name: "sys", kind: "setPriority" });
    if (status?.state !== "granted") return;
    const name = "node:os"; // not a static import: runtimes without it still load this module
    const os = await import(name);
    os.setPriority(0, 19); // 0: the calling thread, on Linux
  } catch {
    // No priority here: the worker runs at the calling thread's.
  }
}

/**
 * The port to the pool in a `node:worker_threads` Worker (Deno's pool starts
 * those, with a Web `MessagePort` in `workerData`; there is no `self`).
 */
const port: MessagePort | undefined = typeof self === "undefined"
  ? (globalThis as unknown as {
    process: { getBuiltinModule(id: string): { workerData: { port: MessagePort } } };
  }).process.getBuiltinModule("node:worker_threads").workerData.port
  : undefined;

function send(reply: DecodeReply, transfer: Transferable[] = []): void {
  if (port) port.postMessage(reply, transfer);
  else self.postMessage(reply, transfer);
}

async function handle(message: DecodeJob): Promise<void> {
  if (message.claim && Atomics.compareExchange(message.claim, 0, 0, 1) !== 0) {
    send({ id: message.id, skipped: true }); // taken back
    return;
  }
  if (message.lowPriority) await (lowered ??= lowerPriority());
  let reply: DecodeReply;
  try {
    if (message.fault === "throw") throw new Error("Injected decode worker fault");
    if (message.fault === "hang") {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // never woken: a silent worker
    }
    if (message.fault === "exit") {
      // An uncaught error ends the worker: what a crash in the runtime looks like to the pool.
      setTimeout(() => {
        throw new Error("Injected decode worker crash");
      });
      return;
    }
    const { resize, crop, mean, std, draft, load } = message.settings;
    const transform = evalTransform({ resize, crop, mean, std, draft, maxPixels: load.maxPixels });
    const data = await transformSource(message.source, load, transform, message.into);
    reply = { id: message.id, data };
    // Written into shared memory: the view goes back, the floats stay where they are.
    send(reply, data.buffer instanceof ArrayBuffer ? [data.buffer] : []);
  } catch (error) {
    const { name, message: text } = error as Error;
    reply = { id: message.id, error: { name: String(name), message: String(text) } };
    send(reply);
  }
}

if (port) port.onmessage = (event: MessageEvent<DecodeJob>) => handle(event.data);
else self.onmessage = (event: MessageEvent<DecodeJob>) => handle(event.data);
