/**
 * What the model needs from a backend: somewhere to keep the packed weights,
 * a way to run a {@linkcode Plan}, and training's repack (the backend stages
 * the trainable layers and re-derives their packed forms; see
 * `src/backend/repack.ts`). The Wasm and WebGPU backends implement it.
 *
 * @module
 */

import { BackendError } from "../errors.ts";
import type { Plan, WeightLayout } from "../graph/ops.ts";
import type { Tensor } from "../tensor.ts";
import type { LayerValues, RepackLayer, StagedLayer, SwappedLayer } from "./repack.ts";

/** Which backend runs the plan. */
export type BackendKind = "wasm" | "webgpu";

/** A place to run plans. */
export interface Backend {
  /** Which backend this is. */
  readonly kind: BackendKind;
  /** Threads (Wasm) or 1 (WebGPU). */
  readonly threads: number;
  /**
   * The layout of the model's weights the blob holds, or null for a backend
   * made without one (kernel tests): `run` refuses a plan made for another.
   */
  readonly weightLayout: WeightLayout | null;
  /**
   * The packed weight blob. A fresh view each call: hold it only until the
   * next call into the backend.
   */
  weights(): Float32Array;
  /** Says the blob was written (the WebGPU backend uploads it before the next run). */
  weightsChanged(): void;
  /**
   * Makes the blob `floats` long, keeping what it holds (training adds the
   * input-gradient weights and the gradients after the forward weights); the
   * new floats are zero. Call it between runs.
   *
   * @throws {MemoryLimitError} When the memory limit does not allow it.
   * @throws {BackendError} When the backend cannot train.
   */
  growWeights(floats: number): Promise<void>;
  /**
   * Registers training's trainable layers (once, before `growWeights`): the
   * backend lays out staging regions from `floats` on for those it repacks
   * itself and forgets what it staged before. The model packs the others in
   * TypeScript (the WebGPU backend stages none).
   *
   * @param layers The trainable layers, in blob order.
   * @param floats Where the free part of the weight blob starts.
   * @returns The end of the staging (floats): what `growWeights` must make room for.
   */
  stageLayers(layers: readonly RepackLayer[], floats: number): number;
  /**
   * A layer's staging regions, or null when the backend does not repack it
   * (the model then packs it in TypeScript). The model reads the layer's
   * parameters from `now` once the optimizer kernels stepped them, and has
   * them write `next`.
   */
  staged(key: string): StagedLayer | null;
  /**
   * After the optimizer kernels wrote staged layers' `next` regions: makes
   * them current (nothing is copied back), carrying over first a parameter
   * the kernels did not step (a frozen bias).
   *
   * @param layers Each layer's key and whether its weight and its bias stepped.
   */
  swap(layers: readonly SwappedLayer[]): void;
  /**
   * Derives the packed forms of `layers` from their PyTorch tensors, then
   * marks the blob written: staged layers on every thread (their tensors
   * staged first, a cached plan), the others in TypeScript (`packLayer`),
   * before the call returns. With no layers it only marks the blob written.
   *
   * @param layers Each layer and its new PyTorch tensors: `weight`, `bias`,
   * or for a layer with a folded BatchNorm `conv.weight`, `bn.weight`,
   * `bn.bias`, `bn.running_mean`, `bn.running_var` (the backend folds them);
   * null for a staged layer whose current region the optimizer kernels wrote.
   */
  repack(layers: readonly LayerValues[]): Promise<void>;
  /** Whether `runWeights` runs optimizer kernels (`optim_step`) and `zero`. */
  readonly updatesParameters: boolean;
  /**
   * Runs a plan of weight operations on the weight blob.
   *
   * @throws {BackendError} When the backend has no weight kernels (WebGPU).
   */
  runWeights(plan: Plan): Promise<void>;
  /**
   * Runs `plan` on an NCHW `input`; returns the plan's outputs, dense.
   *
   * @throws {BackendError} When the plan was made for another weight layout
   * than the backend holds (another model's, or another backend kind's).
   */
  run(plan: Plan, input: Tensor, seeds: readonly number[]): Promise<Float32Array[]>;
  /**
   * Settles once the backend can run (the Wasm backend's workers boot while
   * the caller packs weights); rejects with a `BackendError` if it cannot.
   */
  ready(): Promise<void>;
  /** Bytes of memory the backend holds now (Wasm memory, or GPU buffers). */
  memoryBytes(): number;
  /** Releases workers, memory and GPU buffers. */
  dispose(): Promise<void>;
}

/**
 * Throws when `plan` was made for another weight layout than `held` (the
 * backend's): its weight offsets would read other layers' weights, or past
 * them. Equal layouts pass (a plan of a model laid out alike).
 *
 * @param plan The plan to run.
 * @param held The backend's layout.
 * @param kind The backend, for the message.
 * @throws {BackendError} Naming what differs.
 */
export function checkPlanLayout(
  plan: Plan,
  held: WeightLayout | null,
  kind: BackendKind,
): void {
  const made = plan.weightLayout ?? null;
  if (made === held) return;
  const advice = "run a plan on the backend of the model that made it (model.plan, model.backend)";
  let what: string;
  if (held === null) {
    what = `was made for a model's ${made!.backend} weight layout, but this ${kind} backend ` +
      "holds no model's weights";
  } else if (made === null) {
    what =
      `names no weight layout, but this ${kind} backend holds a model's (${held.layers.length} ` +
      "layers)";
  } else if (made.backend !== held.backend) {
    what = `was made for the ${made.backend} backend's weight layout, but this backend holds the ` +
      `${held.backend} layout`;
  } else {
    const at = Array.from(
      { length: Math.max(made.layers.length, held.layers.length) },
      (_, i) => i,
    ).find((i) => made.layers[i] !== held.layers[i]);
    if (at === undefined && made.floats === held.floats) return;
    what = "was made for another weight layout than this backend holds: " +
      (at === undefined
        ? `a blob of ${made.floats} floats, not ${held.floats}`
        : `it has ${quote(made.layers[at])} where this backend has ${quote(held.layers[at])}`);
  }
  throw new BackendError(`This plan ${what}: ${advice}`);
}

function quote(line: string | undefined): string {
  return line === undefined ? "no layer" : `"${line}"`;
}

/** One image's three NCHW planes at `s` into NHWC at `d`, with the transform `t` if any. */
function copyRgb(
  src: Float32Array,
  s: number,
  dst: Float32Array,
  d: number,
  plane: number,
  t: Plan["inputTransform"],
): void {
  const s1 = s + plane, s2 = s + 2 * plane;
  if (t) {
    const [a0, a1, a2] = t.scale, [b0, b1, b2] = t.shift;
    for (let p = 0, q = d; p < plane; p++, q += 3) {
      dst[q] = src[s + p] * a0 + b0;
      dst[q + 1] = src[s1 + p] * a1 + b1;
      dst[q + 2] = src[s2 + p] * a2 + b2;
    }
  } else {
    for (let p = 0, q = d; p < plane; p++, q += 3) {
      dst[q] = src[s + p];
      dst[q + 1] = src[s1 + p];
      dst[q + 2] = src[s2 + p];
    }
  }
}

/**
 * Copies a plan's NCHW input into an NHWC destination at `offset` (floats),
 * applying the plan's per-channel input transform, if any, on the way.
 */
export function copyInput(plan: Plan, input: Tensor, dst: Float32Array, offset: number): void {
  const [n, c, h, w] = input.shape;
  const src = input.data;
  const plane = h * w;
  const t = plan.inputTransform;
  // 1x1 maps (the backward's loss gradients): NCHW is NHWC.
  if (!t && plane === 1) return dst.set(src.subarray(0, n * c), offset);
  for (let img = 0; img < n; img++) {
    const s = img * c * plane;
    const d = offset + img * c * plane;
    if (c === 3) {
      // Images: the three planes at once, each destination pixel written whole (0.57 of the
      // per-channel passes' time on the Intel host, batch 16 at 224x224).
      copyRgb(src, s, dst, d, plane, t);
      continue;
    }
    for (let ch = 0; ch < c; ch++) {
      const sc = s + ch * plane;
      const scale = t ? t.scale[ch] : 1, shift = t ? t.shift[ch] : 0;
      if (t) { for (let p = 0; p < plane; p++) dst[d + p * c + ch] = src[sc + p] * scale + shift; }
      else for (let p = 0; p < plane; p++) dst[d + p * c + ch] = src[sc + p];
    }
  }
}
