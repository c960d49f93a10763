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
  const source = rowSources(k, order);
  for (let p = 0; p < panels; p++) {
    const base = offset + p * (k + 1) * PANEL_WIDTH;
    for (let j = 0; j < PANEL_WIDTH; j++) {
      const col = p * PANEL_WIDTH + j;
      if (col >= n) {
        for (let r = 0; r <= k; r++) dst[base + r * PANEL_WIDTH + j] = 0;
        continue;
      }
      dst[base + j] = bias[col];
      gatherColumn(dst, base + PANEL_WIDTH + j, weight, col * k, source);
    }
  }
}

// order(r) for every packed row r: the PyTorch column each row reads.
function rowSources(k: number, order: RowOrder): Int32Array {
  return Int32Array.from({ length: k }, (_, i) => order(i));
}

// One packed column: dst[at + 8r] = weight[row + source[r]]. A function of its
// own so V8 optimises it after a few calls rather than interpreting the first layers.
function gatherColumn(
  dst: Float32Array,
  at: number,
  weight: Float32Array,
  row: number,
  source: Int32Array,
): void {
  for (let r = 0; r < source.length; r++) dst[at + r * PANEL_WIDTH] = weight[row + source[r]];
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
  const source = rowSources(k, order);
  for (let col = 0; col < n; col++) {
    const p = Math.floor(col / PANEL_WIDTH), j = col % PANEL_WIDTH;
    const base = offset + p * (k + 1) * PANEL_WIDTH;
    bias[col] = src[base + j];
    const row = col * k;
    for (let r = 0; r < k; r++) weight[row + source[r]] = src[base + (r + 1) * PANEL_WIDTH + j];
  }
}

/** Floats of a Winograd F(4x4, 3x3) weight region: bias (padded to 4), then 36 packed matrices. */
export function winogradSize(c: number, oc: number): number {
  return Math.ceil(oc / 4) * 4 + 36 * packedSize(c, oc);
}

/**
 * Packs a 3x3 convolution (OIHW `weight` [oc, c, 3, 3], `bias` [oc]) for
 * `winograd_f4x3_bias_relu`: U = G g G^T per (out, in) channel pair (G of
 * F(4x4, 3x3) with points 0, +-1, +-2, Lavin & Gray), computed in f64, written
 * as 36 GEMM-packed matrices of depth c (zero bias slots) after the bias.
 */
export function packWinograd(
  dst: Float32Array,
  offset: number,
  weight: Float32Array,
  bias: Float32Array,
  c: number,
  oc: number,
): void {
  const biasFloats = Math.ceil(oc / 4) * 4;
  const size = packedSize(c, oc);
  dst.fill(0, offset, offset + winogradSize(c, oc));
  dst.set(bias.subarray(0, oc), offset);
  const base = offset + biasFloats;
  for (let o = 0; o < oc; o++) {
    const panel = Math.floor(o / PANEL_WIDTH) * (c + 1) * PANEL_WIDTH + (o % PANEL_WIDTH);
    transformColumn(dst, base + panel + PANEL_WIDTH, size, weight, o * c * 9, c);
  }
}

// U = G g G^T for the c kernels of one output channel (weight[at + 9 ci ..]),
// written to row ci of packed column `out` of each of the 36 matrices (`size` apart).
function transformColumn(
  dst: Float32Array,
  out: number,
  size: number,
  weight: Float32Array,
  at: number,
  c: number,
): void {
  const gg = new Float64Array(18);
  for (let ci = 0; ci < c; ci++) {
    const g = at + ci * 9;
    // gg = G g (6 x 3); G's rows applied to (a, b, d) are
    // a/4, -(a+b+d)/6, -(a-b+d)/6, a/24+b/12+d/6, a/24-b/12+d/6, d.
    for (let col = 0; col < 3; col++) {
      const a = weight[g + col], b = weight[g + 3 + col], d = weight[g + 6 + col];
      gg[col] = a / 4;
      gg[col + 3] = -(a + b + d) / 6;
      gg[col + 6] = -(a - b + d) / 6;
      gg[col + 9] = a / 24 + b / 12 + d / 6;
      gg[col + 12] = a / 24 - b / 12 + d / 6;
      gg[col + 15] = d;
    }
    const at0 = out + ci * PANEL_WIDTH;
    for (let i = 0; i < 6; i++) {
      // Row i of U: the same G rows applied to row i of gg.
      const a = gg[i * 3], b = gg[i * 3 + 1], d = gg[i * 3 + 2];
      const row = at0 + i * 6 * size;
      dst[row] = a / 4;
      dst[row + size] = -(a + b + d) / 6;
      dst[row + 2 * size] = -(a - b + d) / 6;
      dst[row + 3 * size] = a / 24 + b / 12 + d / 6;
      dst[row + 4 * size] = a / 24 - b / 12 + d / 6;
      dst[row + 5 * size] = d;
    }
  }
}
