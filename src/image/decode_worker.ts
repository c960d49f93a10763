/**
 * A {@linkcode DecodePool} worker: rebuilds the evaluation transform from
 * the settings it is sent, then turns each image it receives (encoded bytes
 * or pixels, never a path) into the transform's CHW float32 tensor. Errors
 * are sent back by name and message; the worker never ends by itself.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { evalTransform, loadForTransform } from "./preprocess.ts";
import type { DecodeJob, DecodeReply } from "./decode_pool.ts";

self.onmessage = async (event: MessageEvent<DecodeJob>) => {
  const message = event.data;
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
    const image = await loadForTransform(message.source, load, transform);
    const data = transform(image);
    reply = { id: message.id, data };
    self.postMessage(reply, [data.buffer as ArrayBuffer]);
  } catch (error) {
    const { name, message: text } = error as Error;
    reply = { id: message.id, error: { name: String(name), message: String(text) } };
    self.postMessage(reply);
  }
};
