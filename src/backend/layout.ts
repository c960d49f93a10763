/**
 * The backend's weight layout: where each layer's packed forms live in the
 * weight blob and which kernel runs it, chosen from the layer's shapes (its
 * kernel size, stride, padding, channels and the map size it runs on) and
 * the `prefer` option, never from its name. The model describes its layers
 * ({@linkcode WeightLayerDescriptor}) and keeps the parameters in PyTorch's
 * layouts; each backend lays out what its kernels read: the Wasm backend the
 * GEMM panels and, for 3x3 and 5x5 convolutions, a Winograd form beside
 * them; WebGPU the GEMM panels alone (its shaders run no Winograd kernel, so
 * it never allocates, packs or uploads those forms).
 *
 * @module
 */

import type { BackendKind } from "./backend.ts";
import type { PackedRef, WinogradRef, WinogradVariant } from "../graph/ops.ts";
import { packedSize, winogradSize } from "./pack.ts";

/** The memory / speed trade-off of the Wasm backend's Winograd forms. */
export type LayoutPreference = "memory" | "speed";

/** A convolution's shapes, as the kernel choice needs them. */
export interface ConvDescriptor {
  /** Square kernel size. */
  readonly kernelSize: number;
  /** Stride. */
  readonly stride: number;
  /** Zero padding on each side. */
  readonly padding: number;
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Side of the square map it runs on for the model's nominal input (224x224). */
  readonly mapSize: number;
}

/** A GEMM layer (convolution or linear) as the model describes it to the backend. */
export interface WeightLayerDescriptor {
  /** The layer's state-dict prefix, for messages. */
  readonly key: string;
  /** GEMM depth (kh * kw * in for a convolution). */
  readonly k: number;
  /** GEMM columns (output channels). */
  readonly n: number;
  /** The convolution's shapes, or null for a linear layer. */
  readonly conv: ConvDescriptor | null;
}

/** Where one layer's forms live. */
export interface LayerLayout {
  /** The GEMM-packed weights. */
  readonly packed: PackedRef;
  /** The Winograd form, when the backend runs the layer with a Winograd kernel. */
  readonly winograd: WinogradRef | null;
}

/** Whether each backend's kernels include the Winograd convolutions. */
const RUNS_WINOGRAD: Readonly<Record<BackendKind, boolean>> = { wasm: true, webgpu: false };

/**
 * The Winograd algorithm for a convolution on the Wasm kernels, or null for
 * the direct GEMM. Measured on one thread at 224x224:
 * - 5x5 with padding 2: F(2x2, 5x5), 1.4-2.3x faster than the direct GEMM.
 * - 3x3 with padding 1 on maps of 28x28 and more: F(4x4, 3x3), 2.8-3x faster.
 * - 3x3 on smaller maps (14x14, 7x7): F(2x2, 3x3) when preferring memory
 *   (weights 16/9 instead of 36/9 the kernel's size, 23 MB less for GoogLeNet,
 *   11-18 % faster than the direct GEMM on 7x7), F(4x4, 3x3) when preferring
 *   speed (30 % and 40 % faster than F(2x2, 3x3) on one thread: its 4x4 tiles
 *   do fewer multiplications even where they overhang the map).
 * Every form runs at any input size; the map size only decides which pays.
 *
 * @param conv The convolution's shapes.
 * @param prefer The trade-off.
 * @returns The variant, or null.
 *
 * @example
 * ```ts
 * import { chooseWinograd } from "./layout.ts";
 * const conv = { kernelSize: 3, stride: 1, padding: 1, inChannels: 96, outChannels: 208, mapSize: 14 };
 * console.log(chooseWinograd(conv, "memory"), chooseWinograd(conv, "speed")); // "f2x3" "f4x3"
 * ```
 */
export function chooseWinograd(
  conv: ConvDescriptor,
  prefer: LayoutPreference,
): WinogradVariant | null {
  const same = (conv.kernelSize === 3 && conv.padding === 1) ||
    (conv.kernelSize === 5 && conv.padding === 2);
  const lanes = conv.inChannels % 4 === 0 && conv.outChannels % 4 === 0;
  if (!same || conv.stride !== 1 || !lanes) return null;
  if (conv.kernelSize === 5) return "f2x5";
  return prefer === "speed" || conv.mapSize >= 28 ? "f4x3" : "f2x3";
}

/**
 * Lays out the weight blob for `backend`: each layer's GEMM panels, in the
 * order given (layers the model runs as one GEMM, the fused 1x1
 * convolutions of an Inception block, are listed adjacently and stay
 * adjacent: no Winograd form comes between them, as 1x1 convolutions have
 * none), each followed by its Winograd form where the backend runs one.
 *
 * @param layers The layers in blob order.
 * @param backend Which backend's kernels read the blob.
 * @param prefer The trade-off of the Wasm backend's Winograd forms.
 * @returns Each layer's layout (by `key`) and the floats of the blob.
 *
 * @example
 * ```ts
 * import { layoutWeights } from "./layout.ts";
 * const conv = { kernelSize: 3, stride: 1, padding: 1, inChannels: 8, outChannels: 8, mapSize: 56 };
 * const layers = [{ key: "c", k: 72, n: 8, conv }];
 * console.log(layoutWeights(layers, "wasm", "memory").floats > layoutWeights(layers, "webgpu", "memory").floats); // true
 * ```
 */
export function layoutWeights(
  layers: readonly WeightLayerDescriptor[],
  backend: BackendKind,
  prefer: LayoutPreference,
): { layers: Map<string, LayerLayout>; floats: number } {
  const out = new Map<string, LayerLayout>();
  let offset = 0;
  for (const layer of layers) {
    const packed = { offset, k: layer.k, n: layer.n };
    offset += packedSize(layer.k, layer.n);
    const variant = layer.conv && RUNS_WINOGRAD[backend]
      ? chooseWinograd(layer.conv, prefer)
      : null;
    let winograd: WinogradRef | null = null;
    if (variant) {
      winograd = { offset, k: layer.k, n: layer.n, variant };
      offset += winogradSize(layer.conv!.inChannels, layer.n, variant);
    }
    out.set(layer.key, { packed, winograd });
  }
  return { layers: out, floats: offset };
}
