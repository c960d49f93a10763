/**
 * The request handler of the edge worker that `tools/bundle.ts` bundles for
 * Cloudflare's workerd and Vercel's edge-runtime: the kernels arrive as a
 * precompiled `WebAssembly.Module` (the runtime compiles it at deploy time),
 * the weights from a binding (a safetensors file, F16 or F32), and a POST of
 * a JPEG or PNG answers with its top classes and its logits.
 *
 * The model is created once per isolate, on the first request, with one
 * thread (edge runtimes have no kernel workers) and without the aux heads.
 *
 * @module
 */

import {
  type GoogLeNet,
  GoogLeNet as Model,
  GoogLeNetError,
  loadWeights,
  preprocess,
  type Tensor,
  topK,
} from "../../mod.ts";

/** The largest image accepted in a request body, in bytes. */
export const MAX_IMAGE_BYTES: number = 16 * 1024 * 1024;
/** The largest weight file accepted from the binding, in bytes. */
export const MAX_WEIGHTS_BYTES: number = 64 * 1024 * 1024;
/** The Wasm memory the model may use (Cloudflare Workers allow 128 MB per isolate, JS included). */
export const MEMORY_LIMIT: number = 96 * 1024 * 1024;

/** What the worker needs from its runtime. */
export interface EdgeBindings {
  /** The kernel binary (`kernels-relaxed.wasm` or `kernels-simd.wasm`), compiled by the platform. */
  wasmModule: WebAssembly.Module;
  /** Fetches the weight file (a disk or service binding, a static asset, object storage). */
  weights: () => Promise<Response>;
}

/** The JSON answer to a classification. */
export interface EdgeAnswer {
  /** The five most probable classes, most probable first. */
  top: { index: number; label: string; probability: number }[];
  /** The 1000 logits (float32 values, exact in JSON). */
  logits: number[];
  /** Bytes of Wasm memory the model holds after the forward. */
  memoryBytes: number;
  /** Threads the model runs on. */
  threads: number;
  /** Whether this request created the model (the isolate's first). */
  created: boolean;
}

let model: Promise<GoogLeNet> | undefined;

async function createModel(bindings: EdgeBindings): Promise<GoogLeNet> {
  const weights = await loadWeights(await bindings.weights(), { maxBytes: MAX_WEIGHTS_BYTES });
  return await Model.create({
    variant: "torchvision",
    auxLogits: false,
    threads: 1,
    backend: "wasm",
    wasmModule: bindings.wasmModule,
    memoryLimit: MEMORY_LIMIT,
    stateDict: weights,
  });
}

/** Reads a request body of at most `limit` bytes, or returns null past it. */
async function readBody(request: Request, limit: number): Promise<Uint8Array | null> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit || !request.body) return declared > limit ? null : new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    if (size > limit) {
      await request.body.cancel().catch(() => {});
      return null;
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Answers one request: `POST /classify` with image bytes gives an
 * {@linkcode EdgeAnswer}; anything else is a 404 or 405. Library errors
 * (an undecodable image, a bad weight file) are a 400 with their message.
 */
export async function handleRequest(request: Request, bindings: EdgeBindings): Promise<Response> {
  const path = new URL(request.url).pathname;
  if (path !== "/classify") {
    return new Response("Not found: POST an image to /classify", { status: 404 });
  }
  if (request.method !== "POST") {
    return new Response(`Method ${request.method} not allowed: expected POST`, { status: 405 });
  }
  const image = await readBody(request, MAX_IMAGE_BYTES);
  if (!image) {
    return new Response(`Image larger than ${MAX_IMAGE_BYTES} bytes`, { status: 413 });
  }
  const created = model === undefined;
  model ??= createModel(bindings);
  try {
    const m = await model;
    const logits = ((await m.forward(await preprocess(image))) as Tensor).data;
    const answer: EdgeAnswer = {
      top: topK(logits, 5),
      logits: Array.from(logits),
      memoryBytes: m.backend.memoryBytes(),
      threads: m.backend.threads,
      created,
    };
    return Response.json(answer);
  } catch (e) {
    if (created) model = undefined; // a failed creation is retried by the next request
    if (e instanceof GoogLeNetError) return new Response(e.message, { status: 400 });
    throw e;
  }
}
