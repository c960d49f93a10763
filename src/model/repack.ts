/**
 * Training's repack in Wasm: after an optimizer step the model copies each
 * trainable layer's folded weight and bias (PyTorch layouts) into a staging
 * region of the backend's weight blob, and one plan of weight operations
 * (`pack_gemm`, `pack_winograd`) re-derives every packed form from them on
 * all threads: the forward GEMM panels and Winograd forms, and the
 * transposed, flipped input-gradient weights and their Winograd forms. The
 * results are the bits of `packLayer` and `packLayerTransposed` (the Winograd
 * transform computed in f64 and rounded once, like `packWinograd`).
 *
 * @module
 */

import type { Gather, Plan, WeightOp } from "../graph/ops.ts";
import type { RowOrder } from "../backend/pack.ts";
import { Conv2d, type GemmLayer, type TransposedRefs } from "./layers.ts";

/** Where a layer's folded weight `[n, k]` (PyTorch-flattened) and bias `[n]` are staged (floats). */
export interface Staging {
  /** Offset of the weight in the weight blob. */
  readonly weight: number;
  /** Offset of the bias. */
  readonly bias: number;
}

/**
 * A trainable layer's staging regions: one, or two that the optimizer
 * kernels alternate between (a step reads the current region and writes the
 * other, so the current values stay readable while it runs, and nothing is
 * copied back afterwards).
 *
 * @example
 * ```ts
 * import { StagedLayer } from "./repack.ts";
 * const s = new StagedLayer([{ weight: 0, bias: 64 }, { weight: 80, bias: 144 }]);
 * s.flip();
 * console.log(s.now.weight, s.next.weight); // 80 0
 * ```
 */
export class StagedLayer {
  #current = 0;

  /** @param regions One region, or two to alternate between. */
  constructor(readonly regions: readonly Staging[]) {}

  /** The region that holds the layer's current weight and bias. */
  get now(): Staging {
    return this.regions[this.#current];
  }

  /** Where an optimizer step writes the next values (`now` when there is one region). */
  get next(): Staging {
    return this.regions[(this.#current + 1) % this.regions.length];
  }

  /** Makes `next` the current region (after a step wrote it). */
  flip(): void {
    this.#current = (this.#current + 1) % this.regions.length;
  }
}

let repackInWasm = true;

/**
 * Test hook: whether models repack trainable layers in Wasm (default) or in
 * TypeScript (`packLayer`, `packLayerTransposed`), for comparing the two.
 *
 * @param on `false` for the TypeScript path.
 *
 * @example
 * ```ts
 * import { setRepackInWasm } from "./repack.ts";
 * setRepackInWasm(false);
 * setRepackInWasm(true);
 * ```
 */
export function setRepackInWasm(on: boolean): void {
  repackInWasm = on;
}

/**
 * Whether the Wasm repack is on (see {@linkcode setRepackInWasm}).
 *
 * @returns The hook's state.
 *
 * @example
 * ```ts
 * import { wasmRepackEnabled } from "./repack.ts";
 * console.log(wasmRepackEnabled()); // true
 * ```
 */
export function wasmRepackEnabled(): boolean {
  return repackInWasm;
}

/**
 * The {@linkcode Gather} that equals `order` on rows [0, k), or null when
 * none of the forms `x` (identity) or `(x % c) * a + floor(x / c)` does.
 *
 * @param order A packing row order (`convRowOrder`, `nhwcFlattenRowOrder`, identity).
 * @param k The rows.
 * @returns The gather, checked on every row.
 *
 * @example
 * ```ts
 * import { gatherOf } from "./repack.ts";
 * import { convRowOrder } from "../backend/pack.ts";
 * console.log(gatherOf(convRowOrder(3, 7, 7), 147)); // { c: 3, a: 49, b: 1 }
 * ```
 */
export function gatherOf(order: RowOrder, k: number): Gather | null {
  const a = k > 1 ? order(1) : 1;
  const g: Gather = a === 1 || !Number.isInteger(k / a)
    ? { c: 1, a: 0, b: 1 }
    : { c: k / a, a, b: 1 };
  for (let r = 0; r < k; r++) {
    if (order(r) !== (r % g.c) * g.a + Math.floor(r / g.c) * g.b) return null;
  }
  return g;
}

/**
 * Floats a layer's staged weight and bias take (16-aligned).
 *
 * @param layer The layer.
 * @returns `n * k + n`, rounded up to 16.
 *
 * @example
 * ```ts
 * import { Linear } from "./layers.ts";
 * import { stagingFloats } from "./repack.ts";
 * console.log(stagingFloats(new Linear("fc", 1024, 10))); // 10256
 * ```
 */
export function stagingFloats(layer: GemmLayer): number {
  return Math.ceil((layer.n * layer.k + layer.n) / 16) * 16;
}

/**
 * The weight operations that derive `layer`'s packed forms from its staged
 * weight and bias: the GEMM panels, the Winograd form when the layer keeps
 * one, and the input-gradient forms when `transposed` is given. Null when
 * the layer's row order has no {@linkcode Gather} (it is then packed in
 * TypeScript).
 *
 * @param layer The layer (its `packed` and `winograd` refs set).
 * @param staged Where its folded weight and bias are staged.
 * @param transposed Where its input-gradient weights go, if anywhere.
 * @returns The operations, all independent of each other.
 *
 * @example
 * ```ts
 * import { Linear } from "./layers.ts";
 * import { repackOps } from "./repack.ts";
 * const fc = new Linear("fc", 16, 8);
 * fc.packed = { offset: 0, k: 16, n: 8 };
 * console.log(repackOps(fc, { weight: 200, bias: 328 }, null)?.length); // 1
 * ```
 */
export function repackOps(
  layer: GemmLayer,
  staged: Staging,
  transposed: TransposedRefs | null,
): WeightOp[] | null {
  const rows = gatherOf(layer.order, layer.k);
  if (!rows) return null;
  const { k } = layer;
  const name = layer.key;
  const ops: WeightOp[] = [{
    kind: "pack_gemm",
    name,
    source: staged.weight,
    base: 0,
    rows,
    cols: { c: 1, a: 0, b: k },
    bias: staged.bias,
    weights: layer.packed,
  }];
  if (layer instanceof Conv2d) {
    const taps = layer.kernelSize * layer.kernelSize;
    const inC = layer.inChannels, outC = layer.outChannels;
    if (layer.winograd) {
      ops.push({
        kind: "pack_winograd",
        name,
        source: staged.weight,
        base: 0,
        os: inC * taps,
        cs: taps,
        ts: 1,
        bias: staged.bias,
        c: inC,
        weights: layer.winograd,
      });
    }
    if (transposed) {
      // W'[i, o, t] = W[o, i, taps - 1 - t], packed with the rows (tap, o).
      ops.push({
        kind: "pack_gemm",
        name: `${name}.transposed`,
        source: staged.weight,
        base: taps - 1,
        rows: { c: outC, a: inC * taps, b: -1 },
        cols: { c: 1, a: 0, b: taps },
        bias: -1,
        weights: transposed.packed,
      });
      if (transposed.winograd) {
        ops.push({
          kind: "pack_winograd",
          name: `${name}.transposed`,
          source: staged.weight,
          base: taps - 1,
          os: taps,
          cs: inC * taps,
          ts: -1,
          bias: -1,
          c: outC,
          weights: transposed.winograd,
        });
      }
    }
  } else if (transposed) {
    // Linear: W'[i, o] = W[o, order(i)].
    ops.push({
      kind: "pack_gemm",
      name: `${name}.transposed`,
      source: staged.weight,
      base: 0,
      rows: { c: 1, a: 0, b: k },
      cols: rows,
      bias: -1,
      weights: transposed.packed,
    });
  }
  return ops;
}

/**
 * A plan of independent weight operations (repack or optimizer steps): one step, no input or outputs,
 * an arena of one float (the backend needs a buffer to point at); `first`, when given, in a step
 * of their own before (the BatchNorm folds the repack packs from).
 *
 * @param ops The operations (each writes its own region of the weight blob).
 * @param first Operations whose results `ops` read.
 * @returns A plan for `WasmBackend.runWeights`.
 *
 * @example
 * ```ts
 * import { weightPlan } from "./repack.ts";
 * console.log(weightPlan([]).steps); // [ [] ]
 * ```
 */
export function weightPlan(ops: readonly WeightOp[], first: readonly WeightOp[] = []): Plan {
  // The Winograd transforms cost most: first, so that the GEMM gathers fill the tail.
  const order = [
    ...first,
    ...ops.filter((op) => op.kind === "pack_winograd"),
    ...ops.filter((op) => op.kind !== "pack_winograd"),
  ];
  const rest = order.map((_, i) => i).slice(first.length);
  return {
    ops: order,
    steps: first.length ? [first.map((_, i) => i), rest] : [rest],
    buffers: [{ size: 1, offset: 0 }],
    arenaSize: 1,
    input: 0,
    outputs: [],
    dropoutStreams: 0,
    inputTransform: null,
  };
}
