/**
 * A {@linkcode DataLoader} worker: rebuilds the transform from its JSON spec,
 * then decodes and transforms the batches it is sent. It only ever receives
 * bytes, so it needs no permission beyond loading its modules.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { type BatchItem, transformBatch } from "./batch.ts";
import { type Transform, transformFromSpec, type TransformSpec } from "./transforms.ts";
import type { DecodeOptions } from "../image/decode.ts";

/** Messages a worker receives. */
type Request =
  | {
    type: "init";
    transform: TransformSpec;
    decode: DecodeOptions;
    progress?: Int32Array;
    slot: number;
  }
  | { type: "batch"; id: number; items: BatchItem[] };

let transform: Transform | undefined;
let decode: DecodeOptions = {};
let initError: Error | undefined;
/** Bumped once per sample: the loader's sign that this worker is alive. */
let beat = () => {};

self.onmessage = (event: MessageEvent<Request>) => {
  const message = event.data;
  if (message.type === "init") {
    try {
      transform = transformFromSpec(message.transform);
      decode = message.decode;
      const { progress, slot } = message;
      if (progress !== undefined) beat = () => Atomics.add(progress, slot, 1);
    } catch (error) {
      initError = error as Error;
    }
    return;
  }
  try {
    if (initError !== undefined) throw initError;
    const result = transformBatch(message.items, transform!, decode, beat);
    self.postMessage({ type: "done", id: message.id, ...result }, [
      result.data.buffer as ArrayBuffer,
    ]);
  } catch (error) {
    const { name, message: text } = error as Error;
    self.postMessage({ type: "error", id: message.id, name, message: text });
  }
};
