/**
 * Start-up calibration of the GEMM micro-kernel (XNNPACK picks its
 * micro-kernels per CPU the same way, from a table; here the table is a
 * measurement). Every variant does the same multiply-adds in the same order
 * for each output, so the choice changes the speed, never the bits.
 *
 * Why variants: Deno runs Wasm without V8's trap handler, so every load
 * carries a compare-and-branch bounds check. On AMD Zen the 6x8 kernel's mix
 * runs at the FMA peak anyway; on Intel the branches share port 0 with the
 * FMAs, and the kernel with fewer branches per FMA is 10-15 % faster
 * (docs/kernels.md).
 *
 * @module
 */

import { BackendError } from "../../errors.ts";
import type { KernelExports } from "./kernels.ts";

/** The GEMM micro-kernel variants, by the index `gemm_variant` takes. */
export const GEMM_KERNELS = ["loadsplat", "loadsplat-u2"] as const;

/** A GEMM micro-kernel variant's name. */
export type GemmKernel = typeof GEMM_KERNELS[number];

/** What the calibration measured and chose. */
export interface GemmCalibration {
  /** The variant chosen. */
  readonly kernel: GemmKernel;
  /** Each variant's best rate on the L1-resident probe, GFLOP/s. */
  readonly rates: Readonly<Record<GemmKernel, number>>;
  /** Wall time the calibration took, ms. */
  readonly ms: number;
  /**
   * `"measured"`; `"forced"` when the caller named the kernel; `"default"`
   * when the memory was too small to probe (the first variant, no rates).
   */
  readonly source: "measured" | "forced" | "default";
}

/** The probe: an L1-resident GEMM of 48 rows x 16 columns x depth 64 (6 KiB of panels). */
const M = 48, N = 16, K = 64;
const A_AT = 1024;
const B_AT = A_AT + M * K * 4;
const PANELS = N / 8;
const C_AT = B_AT + PANELS * (K + 1) * 32;
/** Bytes of memory the probe uses. */
export const CALIBRATION_BYTES: number = C_AT + M * N * 4;
const CALLS = 64;
const FLOPS = 2 * M * N * K * CALLS;
/** Rounds at least; then stop when no variant improved for STABLE rounds. */
const MIN_ROUNDS = 6, STABLE = 4;
/**
 * A variant counts as optimised once a round runs at least this many times
 * faster than its first: V8 starts a module in its baseline compiler
 * (Liftoff, about 3x slower on these kernels) and swaps in TurboFan's code
 * from a background thread after some milliseconds of use.
 */
const TIER_UP = 2;
/**
 * Without a tier-up seen (the code may have been optimised before the first
 * round), rounds go on until this many ms have passed; and never past MAX_MS.
 */
const SETTLE_MS = 30, MAX_MS = 100;

/**
 * Measures each variant on `kernels` (an instance over a memory of at least
 * {@linkcode CALIBRATION_BYTES} bytes that holds nothing else) and leaves the
 * fastest selected. Rounds alternate the variants' order; each variant's best
 * round counts, so V8's tier-up from Liftoff to TurboFan (the first rounds) and
 * another process's bursts are left out.
 *
 * @param kernels A fresh kernel instance; its memory's probe region is overwritten.
 * @returns The choice and the rates.
 *
 * @example
 * ```ts
 * import { calibrateGemm, CALIBRATION_BYTES } from "./calibrate.ts";
 * import { compileKernels, instantiateKernels } from "./kernels.ts";
 * const { module } = await compileKernels(false);
 * const pages = Math.ceil(CALIBRATION_BYTES / 65536);
 * const kernels = instantiateKernels(module, new WebAssembly.Memory({ initial: pages }));
 * const { kernel, rates } = calibrateGemm(kernels);
 * console.log(kernel, rates[kernel] > 0); // e.g. "loadsplat-u2" true
 * ```
 */
export function calibrateGemm(kernels: KernelExports): GemmCalibration {
  const start = performance.now();
  const best = GEMM_KERNELS.map(() => Infinity);
  const first = GEMM_KERNELS.map(() => Infinity);
  let stable = 0;
  let optimised = false;
  for (let round = 0;; round++) {
    let improved = false;
    for (let j = 0; j < GEMM_KERNELS.length; j++) {
      const v = round % 2 === 0 ? j : GEMM_KERNELS.length - 1 - j;
      kernels.gemm_variant(v);
      const t0 = performance.now();
      for (let call = 0; call < CALLS; call++) {
        kernels.gemm_bias(N, K, A_AT, K, B_AT, C_AT, N, 0, M, 0, PANELS);
      }
      const ms = performance.now() - t0;
      if (round === 0) first[v] = ms;
      if (ms < best[v] * 0.98) improved = true;
      best[v] = Math.min(best[v], ms);
    }
    optimised ||= best.every((b, v) => b * TIER_UP <= first[v]);
    stable = improved ? 0 : stable + 1;
    const elapsed = performance.now() - start;
    if (round + 1 >= MIN_ROUNDS && stable >= STABLE && (optimised || elapsed >= SETTLE_MS)) break;
    if (elapsed > MAX_MS) break;
  }
  let chosen = 0;
  for (let v = 1; v < best.length; v++) if (best[v] < best[chosen]) chosen = v;
  kernels.gemm_variant(chosen);
  const rates = Object.fromEntries(
    GEMM_KERNELS.map((name, v) => [name, best[v] > 0 ? FLOPS / best[v] / 1e6 : Infinity]),
  ) as Record<GemmKernel, number>;
  return {
    kernel: GEMM_KERNELS[chosen],
    rates,
    ms: performance.now() - start,
    source: "measured",
  };
}

/**
 * The index `gemm_variant` takes for a variant name.
 *
 * @throws {BackendError} For a name that is not a variant.
 *
 * @example
 * ```ts
 * import { gemmVariantIndex } from "./calibrate.ts";
 * console.log(gemmVariantIndex("loadsplat")); // 0
 * ```
 */
export function gemmVariantIndex(kernel: GemmKernel): number {
  const index = GEMM_KERNELS.indexOf(kernel);
  if (index < 0) {
    throw new BackendError(
      `Unknown GEMM kernel ${JSON.stringify(kernel)}: expected one of ${GEMM_KERNELS.join(", ")}`,
    );
  }
  return index;
}
