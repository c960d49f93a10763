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

/** Floats of a Winograd F(4x4, 3x3) weight region: bias (padded to 4), then 36 packed matrices. */
export function winogradSize(c: number, oc: number): number {
  return Math.ceil(oc / 4) * 4 + 36 * packedSize(c, oc);
}

// G of F(4x4, 3x3) with points 0, +-1, +-2 (Lavin & Gray).
const G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];

/**
 * Packs a 3x3 convolution (OIHW `weight` [oc, c, 3, 3], `bias` [oc]) for
 * `winograd_f4x3_bias_relu`: U = G g G^T per (out, in) channel pair, computed
 * in f64, as 36 GEMM matrices of depth c (zero bias slots) after the bias.
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
  dst.fill(0, offset, offset + biasFloats);
  dst.set(bias.subarray(0, oc), offset);
  const u = Array.from({ length: 36 }, () => new Float32Array(oc * c));
  const gg = new Float64Array(18);
  for (let o = 0; o < oc; o++) {
    for (let ci = 0; ci < c; ci++) {
      const g = weight.subarray((o * c + ci) * 9, (o * c + ci) * 9 + 9);
      for (let i = 0; i < 6; i++) {
        for (let col = 0; col < 3; col++) {
          gg[i * 3 + col] = G[i][0] * g[col] + G[i][1] * g[3 + col] + G[i][2] * g[6 + col];
        }
      }
      for (let i = 0; i < 6; i++) {
        for (let j = 0; j < 6; j++) {
          const v = gg[i * 3] * G[j][0] + gg[i * 3 + 1] * G[j][1] + gg[i * 3 + 2] * G[j][2];
          u[i * 6 + j][o * c + ci] = v;
        }
      }
    }
  }
  const zeros = new Float32Array(oc);
  const size = packedSize(c, oc);
  for (let xi = 0; xi < 36; xi++) {
    packGemm(dst, offset + biasFloats + xi * size, u[xi], zeros, c, oc, identityRowOrder);
  }
}
