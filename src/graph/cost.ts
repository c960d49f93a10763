/**
 * Exact multiply-add counts of a plan, from its layer shapes (the work a
 * direct convolution does; Winograd does fewer multiplications for the same
 * result, and the count does not change with it).
 *
 * @module
 */

import type { Plan } from "./ops.ts";

/** Multiply-adds of the plan's convolutions and linear layers, by kind. */
export interface MacCount {
  /** All multiply-adds. */
  total: number;
  /** Per convolution kernel size (`"3x3"`, ...) and `"linear"`. */
  byKind: Record<string, number>;
}

/**
 * Counts the plan's multiply-adds.
 *
 * @param plan A plan from `GoogLeNet.plan`.
 * @returns The total and the split by kind.
 *
 * @example
 * ```ts
 * import { GoogLeNet } from "../../mod.ts";
 * import { countMacs } from "./cost.ts";
 * const model = await GoogLeNet.create({ auxLogits: false, threads: 1 });
 * console.log(countMacs(model.plan([1, 3, 224, 224])).total); // 1582671872
 * await model.dispose();
 * ```
 */
export function countMacs(plan: Plan): MacCount {
  const byKind: Record<string, number> = {};
  let total = 0;
  for (const op of plan.ops) {
    let kind: string, macs: number;
    if (op.kind === "conv2d") {
      kind = `${op.kh}x${op.kw}`;
      macs = op.n * op.oh * op.ow * op.weights.n * op.weights.k;
    } else if (op.kind === "linear") {
      kind = "linear";
      macs = op.m * op.weights.n * op.weights.k;
    } else {
      continue;
    }
    byKind[kind] = (byKind[kind] ?? 0) + macs;
    total += macs;
  }
  return { total, byKind };
}
