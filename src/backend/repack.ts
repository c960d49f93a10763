/**
 * Training's repack, owned by the backend: the model registers its trainable
 * layers once ({@linkcode RepackLayer}: shapes, row order, where the packed
 * forms live, a BatchNorm to fold or not) and the backend decides which it
 * stages, lays out their staging regions in its weight blob, and builds and
 * caches the plan of weight operations (`fold_batchnorm`, `pack_gemm`,
 * `pack_winograd`) that re-derives every packed form from them on all
 * threads: the forward GEMM panels and Winograd forms, and the transposed,
 * flipped input-gradient weights and their Winograd forms. The results are
 * the bits of {@linkcode packLayer}, the TypeScript packing of the layers a
 * backend does not stage (the Winograd transform computed in f64 and
 * rounded once, like `packWinograd`), except the GEMM panels of a weight
 * that also has a Winograd form (a 3x3 or 5x5 layer's forward panels, its
 * transposed panels): the executor reads the Winograd form only, so the
 * repack leaves those panels as they were ({@linkcode unreadPanels}). The model hands `Backend.repack` each
 * changed layer's PyTorch tensors (a staged layer's go into its region, a
 * BatchNorm is folded by `fold_batchnorm` or {@linkcode foldBatchNorm}), and
 * after the optimizer kernels wrote a layer's other region says so
 * (`Backend.swap`).
 *
 * @module
 */

import type { Gather, PackedRef, Plan, WeightOp, WinogradRef } from "../graph/ops.ts";
import {
  convRowOrder,
  identityRowOrder,
  packedSize,
  packGemm,
  packWinograd,
  type RowOrder,
} from "./pack.ts";

/**
 * A staged layer whose `next` region the optimizer kernels wrote, for `Backend.swap`.
 *
 * @example
 * ```ts
 * import type { SwappedLayer } from "./repack.ts";
 * const fc: SwappedLayer = { key: "fc", weight: true, bias: false }; // a frozen bias
 * console.log(fc.bias); // false
 * ```
 */
export interface SwappedLayer {
  /** The layer's key. */
  readonly key: string;
  /** Whether the kernels wrote its weight (else it is carried over). */
  readonly weight: boolean;
  /** Whether the kernels wrote its bias (else it is carried over). */
  readonly bias: boolean;
}

/**
 * A layer's new values for `Backend.repack`.
 *
 * @example
 * ```ts
 * import type { LayerValues } from "./repack.ts";
 * import { identityRowOrder } from "./pack.ts";
 * const fc: LayerValues = {
 *   layer: {
 *     key: "fc", k: 16, n: 8, order: identityRowOrder, conv: null,
 *     packed: { offset: 0, k: 16, n: 8 }, winograd: null, transposed: null, batchNormEps: null,
 *   },
 *   tensors: [new Float32Array(128), new Float32Array(8)],
 * };
 * console.log(fc.tensors?.length); // 2
 * ```
 */
export interface LayerValues {
  /** The layer (its `transposed` null where the input-gradient forms are not wanted yet). */
  readonly layer: RepackLayer;
  /**
   * Its PyTorch tensors in state-dict order (`weight`, `bias`; with a folded
   * BatchNorm `conv.weight` and the BatchNorm's four vectors), or null for a
   * staged layer whose current region already holds them (the optimizer
   * kernels wrote it).
   */
  readonly tensors: readonly Float32Array[] | null;
}

/**
 * Folds an eval-mode BatchNorm into the convolution before it: weight
 * `W s` and bias `beta - mean s`, `s = gamma / sqrt(var + eps)` in f64, each
 * rounded once to f32 (what `fold_batchnorm` in `asm/pack.ts` computes).
 *
 * @param weight The convolution's weight `[n, k]` (PyTorch-flattened).
 * @param bn The BatchNorm's `weight`, `bias`, `running_mean`, `running_var`.
 * @param eps The BatchNorm's eps.
 * @param n Output channels.
 * @param k Weights per output channel.
 * @returns The folded weight and bias (new arrays).
 *
 * @example
 * ```ts
 * import { foldBatchNorm } from "./repack.ts";
 * const one = new Float32Array([1]), zero = new Float32Array([0]);
 * const { weight, bias } = foldBatchNorm(new Float32Array([2]), [one, one, zero, one], 0, 1, 1);
 * console.log(weight[0], bias[0]); // 2 1
 * ```
 */
export function foldBatchNorm(
  weight: Float32Array,
  bn: readonly Float32Array[],
  eps: number,
  n: number,
  k: number,
): { weight: Float32Array; bias: Float32Array } {
  const [gamma, beta, mean, variance] = bn;
  const folded = new Float32Array(weight.length);
  const bias = new Float32Array(n);
  for (let o = 0; o < n; o++) {
    const scale = gamma[o] / Math.sqrt(variance[o] + eps);
    for (let i = o * k; i < (o + 1) * k; i++) folded[i] = weight[i] * scale;
    bias[o] = beta[o] - mean[o] * scale;
  }
  return { weight: folded, bias };
}

/**
 * Packs a layer in TypeScript from its PyTorch tensors: folds a BatchNorm,
 * then writes the GEMM panels, the Winograd form when the layer has one,
 * and the input-gradient forms when `layer.transposed` is set (for a
 * convolution `W'[i, o, a, b] = W[o, i, kh-1-a, kw-1-b]`, for a linear layer
 * `W'[i, o] = W[o, order(i)]`, bias zero). Backends without a staged repack
 * (and layers they do not stage) pack this way.
 *
 * @param blob The weight blob.
 * @param layer The layer.
 * @param tensors Its PyTorch tensors (see {@linkcode LayerValues}).
 *
 * @example
 * ```ts
 * import { packLayer } from "./repack.ts";
 * import { identityRowOrder } from "./pack.ts";
 * const fc = {
 *   key: "fc", k: 2, n: 1, order: identityRowOrder, conv: null,
 *   packed: { offset: 0, k: 2, n: 1 }, winograd: null, transposed: null, batchNormEps: null,
 * };
 * const blob = new Float32Array(64);
 * packLayer(blob, fc, [new Float32Array([3, 4]), new Float32Array([5])]);
 * console.log(blob.includes(4), blob.includes(5)); // true true
 * ```
 */
export function packLayer(
  blob: Float32Array,
  layer: RepackLayer,
  tensors: readonly Float32Array[],
): void {
  const { k, n, conv } = layer;
  const { weight, bias } = layer.batchNormEps === null
    ? { weight: tensors[0], bias: tensors[1] }
    : foldBatchNorm(tensors[0], tensors.slice(1), layer.batchNormEps, n, k);
  packGemm(blob, layer.packed.offset, weight, bias, k, n, layer.order);
  if (conv && layer.winograd) {
    const { offset, variant } = layer.winograd;
    packWinograd(blob, offset, weight, bias, conv.inChannels, n, variant);
  }
  const refs = layer.transposed;
  if (!refs) return;
  const tk = refs.packed.k, tn = refs.packed.n;
  const transposed = new Float32Array(tk * tn);
  const zero = new Float32Array(tn);
  if (conv) {
    const inC = conv.inChannels, outC = conv.outChannels, r = conv.kernelSize;
    const taps = r * r;
    for (let o = 0; o < outC; o++) {
      for (let i = 0; i < inC; i++) {
        const from = (o * inC + i) * taps, to = (i * outC + o) * taps;
        for (let t = 0; t < taps; t++) transposed[to + taps - 1 - t] = weight[from + t];
      }
    }
    packGemm(blob, refs.packed.offset, transposed, zero, tk, tn, convRowOrder(outC, r, r));
    if (refs.winograd) {
      packWinograd(blob, refs.winograd.offset, transposed, zero, outC, inC, refs.winograd.variant);
    }
    return;
  }
  // Linear: row i of W' is input feature i in arrival order, column o the output.
  for (let i = 0; i < tn; i++) {
    const source = layer.order(i);
    for (let o = 0; o < tk; o++) transposed[i * tk + o] = weight[o * k + source];
  }
  packGemm(blob, refs.packed.offset, transposed, zero, tk, tn, identityRowOrder);
}

/**
 * A trainable GEMM layer as the model describes it to the backend's repack.
 *
 * @example
 * ```ts
 * import type { RepackLayer } from "./repack.ts";
 * import { identityRowOrder } from "./pack.ts";
 * const fc: RepackLayer = {
 *   key: "fc", k: 16, n: 8, order: identityRowOrder, conv: null,
 *   packed: { offset: 0, k: 16, n: 8 }, winograd: null, transposed: null, batchNormEps: null,
 * };
 * console.log(fc.key); // "fc"
 * ```
 */
export interface RepackLayer {
  /** The layer's state-dict prefix (the key it is staged and repacked by). */
  readonly key: string;
  /** GEMM depth. */
  readonly k: number;
  /** GEMM columns (output channels). */
  readonly n: number;
  /** How packed rows map to PyTorch's flattened weight. */
  readonly order: RowOrder;
  /** A convolution's kernel size and channels, or null for a linear layer. */
  readonly conv: {
    readonly kernelSize: number;
    readonly inChannels: number;
    readonly outChannels: number;
  } | null;
  /** Where the forward GEMM panels live. */
  readonly packed: PackedRef;
  /** Where the forward Winograd form lives, if the layer has one. */
  readonly winograd: WinogradRef | null;
  /** Where the input-gradient weights live, if anywhere. */
  readonly transposed: { readonly packed: PackedRef; readonly winograd: WinogradRef | null } | null;
  /** The eps of a BatchNorm folded into the layer (torchvision), or null. */
  readonly batchNormEps: number | null;
}

/**
 * Where a layer's folded weight `[n, k]` (PyTorch-flattened) and bias `[n]` are staged (floats).
 *
 * @example
 * ```ts
 * import type { Staging } from "./repack.ts";
 * const region: Staging = { weight: 0, bias: 128 };
 * console.log(region.bias - region.weight); // 128
 * ```
 */
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

  /** One region, or two to alternate between. */
  readonly regions: readonly Staging[];
  /**
   * Where a layer with a folded BatchNorm keeps its PyTorch tensors for the
   * kernels' fold (`conv.weight`, then `bn.weight`, `bn.bias`,
   * `bn.running_mean`, `bn.running_var`; float offset), or null.
   */
  readonly unfolded: number | null;

  /**
   * A layer's regions, the first one current.
   *
   * @param regions One region, or two to alternate between.
   * @param unfolded Where the PyTorch tensors of a folded BatchNorm layer go, or null.
   */
  constructor(regions: readonly Staging[], unfolded: number | null = null) {
    this.regions = regions;
    this.unfolded = unfolded;
  }

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
 * TypeScript ({@linkcode packLayer}), for comparing the two.
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
 * import { convRowOrder } from "./pack.ts";
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
 * import { stagingFloats } from "./repack.ts";
 * console.log(stagingFloats({ k: 1024, n: 10 })); // 10256
 * ```
 */
export function stagingFloats(layer: { readonly k: number; readonly n: number }): number {
  return Math.ceil((layer.n * layer.k + layer.n) / 16) * 16;
}

/**
 * The GEMM panels of `layer` that the repack leaves as they were, as float
 * ranges `[offset, offset + floats)` of the weight blob: those of a weight
 * that also has a Winograd form (the forward panels of a layer with
 * `winograd`, the transposed panels when `transposed.winograd` is set),
 * which the executor never reads (a convolution or input gradient with a
 * Winograd form runs the Winograd kernel).
 *
 * @param layer The layer.
 * @returns The ranges, empty for a layer without a Winograd form.
 *
 * @example
 * ```ts
 * import { unreadPanels } from "./repack.ts";
 * import { identityRowOrder } from "./pack.ts";
 * const fc = {
 *   key: "fc", k: 16, n: 8, order: identityRowOrder, conv: null,
 *   packed: { offset: 0, k: 16, n: 8 }, winograd: null, transposed: null, batchNormEps: null,
 * };
 * console.log(unreadPanels(fc)); // []
 * ```
 */
export function unreadPanels(layer: RepackLayer): { offset: number; floats: number }[] {
  if (!layer.conv) return [];
  const panels = (ref: PackedRef) => ({ offset: ref.offset, floats: packedSize(ref.k, ref.n) });
  const out: { offset: number; floats: number }[] = [];
  if (layer.winograd) out.push(panels(layer.packed));
  if (layer.transposed?.winograd) out.push(panels(layer.transposed.packed));
  return out;
}

/**
 * The weight operations that derive `layer`'s packed forms from its staged
 * weight and bias: the GEMM panels, the Winograd form when the layer keeps
 * one, and the input-gradient forms when `transposed` is given. Null when
 * the layer's row order has no {@linkcode Gather} (it is then packed in
 * TypeScript).
 *
 * @param layer The layer.
 * @param staged Where its folded weight and bias are staged.
 * @returns The operations, all independent of each other.
 *
 * @example
 * ```ts
 * import { repackOps } from "./repack.ts";
 * import { identityRowOrder } from "./pack.ts";
 * const fc = {
 *   key: "fc", k: 16, n: 8, order: identityRowOrder, conv: null,
 *   packed: { offset: 0, k: 16, n: 8 }, winograd: null, transposed: null, batchNormEps: null,
 * };
 * console.log(repackOps(fc, { weight: 200, bias: 328 })?.length); // 1
 * ```
 */
export function repackOps(layer: RepackLayer, staged: Staging): WeightOp[] | null {
  const { conv, transposed } = layer;
  const rows = gatherOf(layer.order, layer.k);
  if (!rows) return null;
  const { k } = layer;
  const name = layer.key;
  const ops: WeightOp[] = [];
  if (!(conv && layer.winograd)) {
    ops.push({
      kind: "pack_gemm",
      name,
      source: staged.weight,
      base: 0,
      rows,
      cols: { c: 1, a: 0, b: k },
      bias: staged.bias,
      weights: layer.packed,
    });
  }
  if (conv) {
    const taps = conv.kernelSize * conv.kernelSize;
    const inC = conv.inChannels, outC = conv.outChannels;
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
    if (transposed && !transposed.winograd) {
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
    }
    if (transposed?.winograd) {
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
 * @returns A plan for `Backend.runWeights`.
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
    weightLayout: null,
  };
}

/**
 * The Wasm backend's staging of trainable layers: their regions in the weight
 * blob and the cached repack plans.
 *
 * @example
 * ```ts
 * import { WeightStaging } from "./repack.ts";
 * import { identityRowOrder } from "./pack.ts";
 * const fc = {
 *   key: "fc", k: 16, n: 8, order: identityRowOrder, conv: null,
 *   packed: { offset: 0, k: 16, n: 8 }, winograd: null, transposed: null, batchNormEps: null,
 * };
 * const staging = new WeightStaging();
 * console.log(staging.stage([fc], 256, true)); // 544 (two regions of 144 floats)
 * console.log(staging.plan(["fc"]).ops.length); // 1
 * ```
 */
export class WeightStaging {
  #layers = new Map<string, { layer: RepackLayer; stage: StagedLayer }>();
  /** The repack plans for the last two arrangements of staging regions (steps alternate between two). */
  #plans: { keys: readonly string[]; regions: Staging[]; plan: Plan }[] = [];

  /**
   * Lays out staging regions from `floats` on for the layers whose packing
   * has a gather (the others are packed by the caller): two for those the
   * optimizer kernels can step (`steps`, a row gather of stride 1, no folded
   * BatchNorm), one for the others, and after a BatchNorm layer's region the
   * PyTorch tensors its fold reads. Forgets what was staged before.
   *
   * @param layers The trainable layers.
   * @param floats Where the free part of the weight blob starts.
   * @param steps Whether the backend runs optimizer kernels.
   * @returns The end of the staging (floats).
   */
  stage(layers: readonly RepackLayer[], floats: number, steps: boolean): number {
    this.#layers.clear();
    this.#plans = [];
    for (const layer of layers) {
      const region = (at: number) => ({ weight: at, bias: at + layer.n * layer.k });
      const rows = gatherOf(layer.order, layer.k);
      if (!rows) continue;
      const folds = layer.batchNormEps !== null;
      const regions = [region(floats)];
      floats += stagingFloats(layer);
      if (steps && rows.b === 1 && !folds) {
        regions.push(region(floats));
        floats += stagingFloats(layer);
      }
      let unfolded: number | null = null;
      if (folds) {
        unfolded = floats;
        floats += Math.ceil((layer.n * layer.k + 4 * layer.n) / 16) * 16;
      }
      this.#layers.set(layer.key, { layer, stage: new StagedLayer(regions, unfolded) });
    }
    return floats;
  }

  /**
   * The GEMM panels of the staged layers that their repack leaves as they
   * were ({@linkcode unreadPanels}), in staging order.
   *
   * @returns Float ranges of the weight blob.
   */
  unread(): { offset: number; floats: number }[] {
    return [...this.#layers.values()].flatMap(({ layer }) => unreadPanels(layer));
  }

  /**
   * A layer's staging regions.
   *
   * @param key The layer's key.
   * @returns Its regions, or null when it is not staged.
   */
  get(key: string): StagedLayer | null {
    return this.#layers.get(key)?.stage ?? null;
  }

  /**
   * Writes staged layers' new tensors back to back where the repack reads
   * them: the current region, or for a folded BatchNorm layer the place of
   * its PyTorch tensors.
   *
   * @param blob The weight blob.
   * @param layers The layers and their tensors (null: nothing to write).
   */
  write(blob: Float32Array, layers: readonly LayerValues[]): void {
    for (const { layer, tensors } of layers) {
      if (!tensors) continue;
      const stage = this.#layers.get(layer.key)!.stage;
      let at = stage.unfolded ?? stage.now.weight;
      for (const t of tensors) {
        blob.set(t, at);
        at += t.length;
      }
    }
  }

  /**
   * Makes the `next` regions of `layers` current, copying a parameter the
   * optimizer kernels did not write from the current region first.
   *
   * @param blob The weight blob.
   * @param layers The layers and what the kernels wrote.
   */
  swap(blob: Float32Array, layers: readonly SwappedLayer[]): void {
    for (const { key, weight, bias } of layers) {
      const { layer, stage } = this.#layers.get(key)!;
      const { now, next } = stage;
      if (!weight) blob.copyWithin(next.weight, now.weight, now.weight + layer.n * layer.k);
      if (!bias) blob.copyWithin(next.bias, now.bias, now.bias + layer.n);
      stage.flip();
    }
  }

  /**
   * The weight plan that packs the staged layers `keys` from their current
   * regions, after folding the BatchNorm layers among them (cached).
   *
   * @param keys Staged layers' keys.
   * @returns The plan.
   */
  plan(keys: readonly string[]): Plan {
    const staged = keys.map((key) => this.#layers.get(key)!);
    const regions = staged.map(({ stage }) => stage.now);
    const cached = this.#plans.find((c) =>
      c.keys.length === keys.length &&
      c.keys.every((key, i) => key === keys[i] && c.regions[i] === regions[i])
    );
    if (cached) return cached.plan;
    const folds = staged.flatMap(({ layer, stage }, i): WeightOp[] => {
      const at = stage.unfolded;
      if (at === null) return [];
      const { n, k } = layer;
      return [{
        kind: "fold_batchnorm",
        name: layer.key,
        weight: at,
        batchNorm: at + n * k,
        eps: layer.batchNormEps!,
        n,
        k,
        outWeight: regions[i].weight,
        outBias: regions[i].bias,
      }];
    });
    const plan = weightPlan(
      staged.flatMap(({ layer }, i) => repackOps(layer, regions[i])!),
      folds,
    );
    this.#plans = [{ keys, regions, plan }, ...this.#plans.slice(0, 1)];
    return plan;
  }
}
