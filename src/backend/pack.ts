/**
 * Weight packing shared by every backend: a PyTorch weight (conv OIHW or
 * linear [out, in]) and its bias become GEMM panels of 8 output columns,
 * `[bias[8], B[0, 8], ..., B[K-1, 8]]`, where row k of B is ordered like the
 * NHWC activations the kernels read (kh, kw, c for a convolution). Packing
 * happens once, when weights are set; unpacking serves `stateDict()`.
 *
 * @module
 */

/** Output columns per panel (the micro-kernel's NR). */
export const PANEL_WIDTH = 8;

/** Floats a packed matrix of depth k and n columns occupies. */
export function packedSize(k: number, n: number): number {
  return Math.ceil(n / PANEL_WIDTH) * (k + 1) * PANEL_WIDTH;
}

/**
 * How row k of the packed B maps to PyTorch's weight: `source(k)` is the
 * column of the weight flattened as [n, K] (for a conv, OIHW flattened).
 */
export type RowOrder = (k: number) => number;

/** Row order of a convolution: packed k = (kh * KW + kw) * C + c, PyTorch k = (c * KH + kh) * KW + kw. */
export function convRowOrder(c: number, kh: number, kw: number): RowOrder {
  return (k) => {
    const ch = k % c;
    const tap = (k - ch) / c;
    return ch * kh * kw + tap;
  };
}

/** Identity row order (a linear layer reading a dense vector). */
export const identityRowOrder: RowOrder = (k) => k;

/**
 * Row order of a linear layer reading an NHWC-flattened [h, w, c] input whose
 * PyTorch weight expects the NCHW flattening [c, h, w].
 */
export function nhwcFlattenRowOrder(c: number, h: number, w: number): RowOrder {
  return (k) => {
    const ch = k % c;
    const pixel = (k - ch) / c;
    return ch * h * w + pixel;
  };
}

/**
 * Packs `weight` ([n, k] row-major after PyTorch's flattening) and `bias` [n]
 * into `dst` at `offset`.
 */
export function packGemm(
  dst: Float32Array,
  offset: number,
  weight: Float32Array,
  bias: Float32Array,
  k: number,
  n: number,
  order: RowOrder,
): void {
  const panels = Math.ceil(n / PANEL_WIDTH);
  const source = Int32Array.from({ length: k }, (_, i) => order(i));
  for (let p = 0; p < panels; p++) {
    const base = offset + p * (k + 1) * PANEL_WIDTH;
    for (let j = 0; j < PANEL_WIDTH; j++) {
      const col = p * PANEL_WIDTH + j;
      if (col >= n) {
        for (let r = 0; r <= k; r++) dst[base + r * PANEL_WIDTH + j] = 0;
        continue;
      }
      dst[base + j] = bias[col];
      const row = col * k;
      for (let r = 0; r < k; r++) dst[base + (r + 1) * PANEL_WIDTH + j] = weight[row + source[r]];
    }
  }
}

/** The inverse of {@linkcode packGemm}: fills `weight` [n, k] and `bias` [n]. */
export function unpackGemm(
  src: Float32Array,
  offset: number,
  weight: Float32Array,
  bias: Float32Array,
  k: number,
  n: number,
  order: RowOrder,
): void {
  const source = Int32Array.from({ length: k }, (_, i) => order(i));
  for (let col = 0; col < n; col++) {
    const p = Math.floor(col / PANEL_WIDTH), j = col % PANEL_WIDTH;
    const base = offset + p * (k + 1) * PANEL_WIDTH;
    bias[col] = src[base + j];
    const row = col * k;
    for (let r = 0; r < k; r++) weight[row + source[r]] = src[base + (r + 1) * PANEL_WIDTH + j];
  }
}
