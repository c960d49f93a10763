/**
 * From decoded component planes to interleaved samples as libjpeg-turbo
 * does it with its defaults: "fancy" (triangular) upsampling for 2:1
 * subsampled chroma (`jdsample.c`: h2v1, h1v2, h2v2; plain replication for
 * other integral factors and for planes at most 2 samples wide), then the
 * fixed-point colour conversions of `jdcolor.c` (YCbCr to RGB, YCCK to CMYK).
 *
 * @module
 */

/** One decoded component: its sample plane and how it maps to the image. */
export interface ComponentPlane {
  /** Samples, `stride` per row. */
  readonly data: Uint8Array;
  /** Samples per row of `data`. */
  readonly stride: number;
  /** Columns holding image samples (libjpeg's `downsampled_width`). */
  readonly width: number;
  /** Rows holding image samples (libjpeg's `downsampled_height`). */
  readonly height: number;
  /** Image pixels per sample horizontally (`max_h_samp_factor / h`). */
  readonly hExpand: number;
  /** Image pixels per sample vertically (`max_v_samp_factor / v`). */
  readonly vExpand: number;
  /** Plain replication even where libjpeg would upsample fancily (`do_fancy_upsampling` off). */
  readonly plain?: boolean;
}

/** libjpeg's colour-conversion tables, 16-bit fixed point (`jdcolor.c`). */
const SCALEBITS = 16;
const ONE_HALF = 1 << (SCALEBITS - 1);
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (91881 * x + ONE_HALF) >> SCALEBITS; // FIX(1.40200)
  CB_B[i] = (116130 * x + ONE_HALF) >> SCALEBITS; // FIX(1.77200)
  CR_G[i] = -46802 * x; // -FIX(0.71414)
  CB_G[i] = -22554 * x + ONE_HALF; // -FIX(0.34414), rounding folded in
}

/**
 * Writes image row `y` of a component, upsampled to at least `columns`
 * samples, into `out`, choosing libjpeg's method from the plane's factors.
 *
 * @param plane The component.
 * @param y Image row, from 0.
 * @param out Receives the row; at least `plane.width * plane.hExpand` long.
 * @returns The row: `out`, or a view of the plane itself when it is full size.
 *
 * @example
 * ```ts
 * import { upsampleRow } from "./color.ts";
 * const plane = { data: new Uint8Array([0, 100, 200]), stride: 3, width: 3, height: 1, hExpand: 2, vExpand: 1 };
 * console.log(upsampleRow(plane, 0, new Uint8Array(6))); // Uint8Array(6) [0, 25, 75, 125, 175, 200]
 * ```
 */
export function upsampleRow(plane: ComponentPlane, y: number, out: Uint8Array): Uint8Array {
  const { data, stride, width, height, hExpand, vExpand } = plane;
  if (hExpand === 1 && vExpand === 1) return data.subarray(y * stride, y * stride + width);
  const fancy = !plane.plain;
  if (fancy && vExpand === 1 && hExpand === 2 && width > 2) {
    h2v1Fancy(data, y * stride, width, out);
  } else if (fancy && vExpand === 2 && hExpand === 1) {
    const r = y >> 1;
    const far = (y & 1) === 0 ? Math.max(r - 1, 0) : Math.min(r + 1, height - 1);
    const near = r * stride;
    const other = far * stride;
    const bias = (y & 1) === 0 ? 1 : 2;
    for (let x = 0; x < width; x++) out[x] = (data[near + x] * 3 + data[other + x] + bias) >> 2;
  } else if (fancy && vExpand === 2 && hExpand === 2 && width > 2) {
    const r = y >> 1;
    const far = (y & 1) === 0 ? Math.max(r - 1, 0) : Math.min(r + 1, height - 1);
    h2v2Fancy(data, r * stride, far * stride, width, out);
  } else {
    // Plain replication (libjpeg's h2v1_upsample, h2v2_upsample, int_upsample).
    const start = Math.floor(y / vExpand) * stride;
    for (let x = 0, o = 0; x < width; x++) {
      const v = data[start + x];
      for (let k = 0; k < hExpand; k++) out[o++] = v;
    }
  }
  return out;
}

/** `jdsample.c` h2v1_fancy_upsample: 3/4 nearer + 1/4 further, alternating rounding. */
function h2v1Fancy(data: Uint8Array, start: number, width: number, out: Uint8Array): void {
  let v = data[start];
  out[0] = v;
  out[1] = (v * 3 + data[start + 1] + 2) >> 2;
  let o = 2;
  for (let x = 1; x < width - 1; x++) {
    v = data[start + x] * 3;
    out[o++] = (v + data[start + x - 1] + 1) >> 2;
    out[o++] = (v + data[start + x + 1] + 2) >> 2;
  }
  v = data[start + width - 1];
  out[o++] = (v * 3 + data[start + width - 2] + 1) >> 2;
  out[o] = v;
}

/** `jdsample.c` h2v2_fancy_upsample: 9/16, 3/16, 3/16, 1/16 with its rounding. */
function h2v2Fancy(
  data: Uint8Array,
  near: number,
  far: number,
  width: number,
  out: Uint8Array,
): void {
  let thisSum = data[near] * 3 + data[far];
  let nextSum = data[near + 1] * 3 + data[far + 1];
  out[0] = (thisSum * 4 + 8) >> 4;
  out[1] = (thisSum * 3 + nextSum + 7) >> 4;
  let lastSum = thisSum;
  thisSum = nextSum;
  let o = 2;
  for (let x = 2; x < width; x++) {
    nextSum = data[near + x] * 3 + data[far + x];
    out[o++] = (thisSum * 3 + lastSum + 8) >> 4;
    out[o++] = (thisSum * 3 + nextSum + 7) >> 4;
    lastSum = thisSum;
    thisSum = nextSum;
  }
  out[o++] = (thisSum * 3 + lastSum + 8) >> 4;
  out[o] = (thisSum * 4 + 7) >> 4;
}

/**
 * `jdcolor.c` ycc_rgb_convert for one row: libjpeg's tables and rounding.
 *
 * @param y Luma row.
 * @param cb Blue-difference row.
 * @param cr Red-difference row.
 * @param out Interleaved RGB output.
 * @param outOffset Index of the row's first sample in `out`.
 * @param width Pixels in the row.
 *
 * @example
 * ```ts
 * import { yccToRgbRow } from "./color.ts";
 * const out = new Uint8Array(3);
 * yccToRgbRow(new Uint8Array([128]), new Uint8Array([128]), new Uint8Array([255]), out, 0, 1);
 * console.log(out); // Uint8Array(3) [ 255, 37, 128 ]
 * ```
 */
export function yccToRgbRow(
  y: Uint8Array,
  cb: Uint8Array,
  cr: Uint8Array,
  out: Uint8Array,
  outOffset: number,
  width: number,
): void {
  for (let x = 0, o = outOffset; x < width; x++, o += 3) {
    const l = y[x];
    const b = cb[x];
    const r = cr[x];
    out[o] = clamp(l + CR_R[r]);
    out[o + 1] = clamp(l + ((CB_G[b] + CR_G[r]) >> SCALEBITS));
    out[o + 2] = clamp(l + CB_B[b]);
  }
}

/**
 * `jdcolor.c` ycck_cmyk_convert for one row (C, M, Y are the inverted RGB of
 * the YCC triple; K passes through), then inverted again as Pillow reads
 * Adobe CMYK ("CMYK;I").
 *
 * @param y Luma row.
 * @param cb Blue-difference row.
 * @param cr Red-difference row.
 * @param k Black row.
 * @param out Interleaved CMYK output.
 * @param outOffset Index of the row's first sample in `out`.
 * @param width Pixels in the row.
 *
 * @example
 * ```ts
 * import { ycckToCmykRow } from "./color.ts";
 * const out = new Uint8Array(4);
 * const one = (v: number) => new Uint8Array([v]);
 * ycckToCmykRow(one(128), one(128), one(128), one(10), out, 0, 1);
 * console.log(out); // Uint8Array(4) [ 128, 128, 128, 245 ]
 * ```
 */
export function ycckToCmykRow(
  y: Uint8Array,
  cb: Uint8Array,
  cr: Uint8Array,
  k: Uint8Array,
  out: Uint8Array,
  outOffset: number,
  width: number,
): void {
  for (let x = 0, o = outOffset; x < width; x++, o += 4) {
    const l = y[x];
    const b = cb[x];
    const r = cr[x];
    // 255 - clamp(255 - v) is clamp(v).
    out[o] = clamp(l + CR_R[r]);
    out[o + 1] = clamp(l + ((CB_G[b] + CR_G[r]) >> SCALEBITS));
    out[o + 2] = clamp(l + CB_B[b]);
    out[o + 3] = 255 - k[x];
  }
}

function clamp(x: number): number {
  return x < 0 ? 0 : x > 255 ? 255 : x;
}
