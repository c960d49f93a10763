/**
 * What the model needs from a backend: somewhere to keep the packed weights,
 * and a way to run a {@linkcode Plan}. The Wasm and WebGPU backends implement it.
 *
 * @module
 */

import type { Plan } from "../graph/ops.ts";
import type { Tensor } from "../tensor.ts";

/** Which backend runs the plan. */
export type BackendKind = "wasm" | "webgpu";

/** A place to run plans. */
export interface Backend {
  /** Which backend this is. */
  readonly kind: BackendKind;
  /** Threads (Wasm) or 1 (WebGPU). */
  readonly threads: number;
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
  /** Runs `plan` on an NCHW `input`; returns the plan's outputs, dense. */
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
 * Copies a plan's NCHW input into an NHWC destination at `offset` (floats),
 * applying the plan's per-channel input transform, if any, on the way.
 */
export function copyInput(plan: Plan, input: Tensor, dst: Float32Array, offset: number): void {
  const [n, c, h, w] = input.shape;
  const src = input.data;
  const plane = h * w;
  const t = plan.inputTransform;
  for (let img = 0; img < n; img++) {
    const s = img * c * plane;
    const d = offset + img * c * plane;
    for (let ch = 0; ch < c; ch++) {
      const sc = s + ch * plane;
      const scale = t ? t.scale[ch] : 1, shift = t ? t.shift[ch] : 0;
      if (t) { for (let p = 0; p < plane; p++) dst[d + p * c + ch] = src[sc + p] * scale + shift; }
      else for (let p = 0; p < plane; p++) dst[d + p * c + ch] = src[sc + p];
    }
  }
}
