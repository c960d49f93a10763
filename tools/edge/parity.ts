/**
 * What the edge-runtime tests compare against: a deterministic F16
 * safetensors file of torchvision's GoogLeNet without aux heads (written at
 * test time, 12.7 MiB), and this Deno's answer for an image with the same
 * kernel binary, weights and options as the worker in `tools/edge/worker.ts`.
 *
 * @module
 */

import {
  GoogLeNet,
  preprocess,
  readSafetensors,
  type Tensor,
  topK,
  writeSafetensors,
} from "../../mod.ts";
import { deterministicStateDict } from "../deterministic.ts";
import type { EdgeAnswer } from "./worker.ts";

const ROOT = new URL("../../", import.meta.url);

/** The deterministic weights as an F16 safetensors file. */
export async function edgeWeights(): Promise<Uint8Array> {
  const keys: [string, number[]][] = JSON.parse(
    await Deno.readTextFile(new URL("tests/fixtures/torchvision_state_dict.json", ROOT)),
  ).no_aux;
  return writeSafetensors(deterministicStateDict(keys), {
    dtype: "F16",
    metadata: { source: "tools/deterministic.ts, no aux heads" },
  });
}

/** The test image: skimage's cat photo (CC0), a 451x300 JPEG. */
export function edgeImage(): Promise<Uint8Array> {
  return Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
}

/** This process's answer, as the worker computes it (one thread, the same kernels). */
export async function denoAnswer(
  kernels: Uint8Array<ArrayBuffer>,
  weights: Uint8Array,
  image: Uint8Array,
): Promise<{ top: EdgeAnswer["top"]; logits: Float32Array }> {
  const model = await GoogLeNet.create({
    variant: "torchvision",
    auxLogits: false,
    threads: 1,
    backend: "wasm",
    wasmModule: new WebAssembly.Module(kernels),
    stateDict: readSafetensors(weights).tensors,
  });
  try {
    const logits = ((await model.forward(await preprocess(image))) as Tensor).data;
    return { top: topK(logits, 5), logits };
  } finally {
    await model.dispose();
  }
}

/** The largest |a - b| over two logit rows (NaN if any difference is NaN, Infinity when the lengths differ). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > max) max = d;
  }
  return max;
}
