/**
 * The WGSL compute kernels of the WebGPU backend, one per operation kind of
 * the plan (`src/graph/ops.ts`), with the Wasm kernels' exact semantics
 * (`asm/`): convolutions and linear layers as one tiled GEMM over the packed
 * weight blob (bias, optional ReLU that keeps NaN), PyTorch's max, average and
 * adaptive average pools, and inverted dropout from a host-computed mask.
 *
 * Every kernel reads its parameters from a uniform struct whose fields are
 * listed once here ({@linkcode KERNEL_FIELDS}); the host packs the same list
 * with {@linkcode packParams}, so the two sides cannot disagree.
 *
 * @module
 */

/** The fields of each kernel's parameter struct, all `i32`, in order. */
export const KERNEL_FIELDS = {
  gemm: [
    "m",
    "n",
    "k",
    "npad",
    "xoff",
    "xstride",
    "yoff",
    "ystride",
    "n1",
    "yoff1",
    "ystride1",
    "n2",
    "yoff2",
    "ystride2",
    "woff",
    "relu",
    "h",
    "w",
    "c",
    "kw",
    "sh",
    "sw",
    "ph",
    "pw",
    "oh",
    "ow",
  ],
  pool: [
    "total",
    "c",
    "xoff",
    "xstride",
    "yoff",
    "ystride",
    "h",
    "w",
    "k",
    "s",
    "p",
    "oh",
    "ow",
  ],
  dropout: ["count", "xoff", "moff"],
} as const;

/** A kernel family: the key of {@linkcode KERNEL_FIELDS}. */
export type KernelFamily = keyof typeof KERNEL_FIELDS;

/** The parameter values of one dispatch of a kernel family. */
export type KernelParams<F extends KernelFamily> = {
  [K in (typeof KERNEL_FIELDS)[F][number]]: number;
};

/** Bytes of the largest parameter struct (every dispatch gets a slot this large, aligned). */
export const PARAMS_BYTES = Math.max(...Object.values(KERNEL_FIELDS).map((f) => f.length)) * 4;

/**
 * Packs `params` in the order of `family`'s struct, as `i32`s.
 *
 * @param family The kernel family.
 * @param params A value for every field of the family's struct.
 * @returns The struct's bytes, as 32-bit integers.
 *
 * @example
 * ```ts
 * import { packParams } from "./shaders.ts";
 * const words = packParams("dropout", { count: 8, xoff: 0, moff: 0 });
 * console.log(words.length); // 3
 * ```
 */
export function packParams<F extends KernelFamily>(family: F, params: KernelParams<F>): Int32Array {
  const fields = KERNEL_FIELDS[family] as readonly string[];
  return Int32Array.from(fields, (f) => (params as Record<string, number>)[f]);
}

function paramsStruct(family: KernelFamily): string {
  const fields = KERNEL_FIELDS[family].map((f) => `  ${f}: i32,`).join("\n");
  return `struct Params {\n${fields}\n}\n@group(0) @binding(3) var<uniform> p: Params;\n`;
}

/** Output rows and columns of one GEMM workgroup (16 x 16 threads, 4 x 4 outputs each). */
export const GEMM_TILE = 64;
/** Depth of one shared-memory step of the GEMM. */
const GEMM_TK = 16;
/** Threads per workgroup of the element-wise kernels. */
export const ELEMENTWISE_GROUP = 64;

/** How the GEMM kernel reads its A matrix. */
export interface GemmVariant {
  /** True: unfold a convolution's input (im2col index math); false: A is the input rows themselves. */
  readonly im2col: boolean;
  /** True: read A four channels at a time (`vec4`); needs C, the stride and offsets divisible by 4. */
  readonly vec4: boolean;
}

/**
 * The GEMM kernel: `y[m, n] = act(bias[n] + sum_k A[m, k] B[k, n])` with B in
 * the packed panel layout of `src/backend/pack.ts` read straight from the
 * weight blob, and A either the rows of a (strided) input or, for a
 * convolution, the implicit im2col of an NHWC view (row k ordered kh, kw, c).
 * A 64 x 64 output tile per workgroup, staged through shared memory 16 deep;
 * each thread accumulates a 4 x 4 block in registers, starting from the bias
 * and adding k in order, like the Wasm micro-kernel.
 *
 * @param variant How A is read.
 * @returns WGSL source.
 *
 * @example
 * ```ts
 * import { gemmShader } from "./shaders.ts";
 * console.log(gemmShader({ im2col: true, vec4: true }).includes("fn main")); // true
 * ```
 */
export function gemmShader(variant: GemmVariant): string {
  const { im2col, vec4 } = variant;
  const xType = vec4 ? "vec4<f32>" : "f32";
  // The (kh, kw, c) tap of depth index `kk` for the current row, as a float index or -1 (padding).
  const tap = im2col
    ? `
fn a_index(kk: i32) -> i32 {
  let ch = kk % p.c;
  let t = kk / p.c;
  let i = t / p.kw;
  let iy = row_iy + i;
  let ix = row_ix + t - i * p.kw;
  if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) { return -1; }
  return row_base + (iy * p.w + ix) * p.xstride + ch;
}`
    : `
fn a_index(kk: i32) -> i32 {
  return row_base + kk;
}`;
  const loadA = vec4
    ? `
    if (a_ok && k0 + ak < p.k) {
      let at = a_index(k0 + ak);
      if (at >= 0) { a = x[at / 4]; }
    }`
    : `
    if (a_ok) {
      for (var j = 0; j < 4; j++) {
        let kk = k0 + ak + j;
        if (kk < p.k) {
          let at = a_index(kk);
          if (at >= 0) { a[j] = x[at]; }
        }
      }
    }`;
  return `${paramsStruct("gemm")}
@group(0) @binding(0) var<storage, read_write> x: array<${xType}>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;

var<workgroup> As: array<array<vec4<f32>, 16>, ${GEMM_TK}>;
var<workgroup> Bs: array<array<vec4<f32>, 16>, ${GEMM_TK}>;
var<private> row_base: i32;
var<private> row_iy: i32;
var<private> row_ix: i32;
${tap}

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let tile_m = i32(wid.y + wid.z * nwg.y) * ${GEMM_TILE};
  if (tile_m >= p.m) { return; }
  let tile_n = i32(wid.x) * ${GEMM_TILE};
  let t = i32(li);
  let tx = i32(lid.x);
  let ty = i32(lid.y);

  // This thread stages A row (t / 4), depth ak..ak+3 of each step.
  let am_local = t / 4;
  let am = tile_m + am_local;
  let ak = (t % 4) * 4;
  let a_ok = am < p.m;
  ${
    im2col
      ? `let plane = p.oh * p.ow;
  let img = am / plane;
  let rem = am - img * plane;
  let oy = rem / p.ow;
  row_iy = oy * p.sh - p.ph;
  row_ix = (rem - oy * p.ow) * p.sw - p.pw;
  row_base = p.xoff + img * p.h * p.w * p.xstride;`
      : `row_base = p.xoff + am * p.xstride;`
  }

  // ... and B depth (t / 16), columns bn..bn+3.
  let bk = t / 16;
  let bn = tile_n + (t % 16) * 4;
  let b_ok = bn < p.npad;
  let panel_b = p.woff + (bn / 8) * (p.k + 1) * 8 + bn % 8;

  let col = tile_n + tx * 4;
  var bias = vec4<f32>(0.0);
  if (col < p.npad) { bias = wt[(p.woff + (col / 8) * (p.k + 1) * 8 + col % 8) / 4]; }
  var acc = array<vec4<f32>, 4>(bias, bias, bias, bias);

  for (var k0 = 0; k0 < p.k; k0 += ${GEMM_TK}) {
    var a = vec4<f32>(0.0);${loadA}
    As[ak][am_local / 4][am_local % 4] = a.x;
    As[ak + 1][am_local / 4][am_local % 4] = a.y;
    As[ak + 2][am_local / 4][am_local % 4] = a.z;
    As[ak + 3][am_local / 4][am_local % 4] = a.w;
    var b = vec4<f32>(0.0);
    if (b_ok && k0 + bk < p.k) { b = wt[(panel_b + (k0 + bk + 1) * 8) / 4]; }
    Bs[bk][t % 16] = b;
    workgroupBarrier();
    for (var kk = 0; kk < ${GEMM_TK}; kk++) {
      let av = As[kk][ty];
      let bv = Bs[kk][tx];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }

  for (var i = 0; i < 4; i++) {
    let row = tile_m + ty * 4 + i;
    if (row >= p.m) { break; }
    for (var j = 0; j < 4; j++) {
      if (col + j >= p.n) { break; }
      var v = acc[i][j];
      // ReLU that keeps NaN (NaN < 0 is false), as PyTorch and the Wasm kernels.
      if (p.relu != 0 && v < 0.0) { v = 0.0; }
      // Columns [0, n1) go to the first output, [n1, n2) to the second, [n2, n) to the third
      // (a fused 1x1 convolution; n1 = n2 = n otherwise).
      let cc = col + j;
      var at = p.yoff + row * p.ystride + cc;
      if (cc >= p.n2) {
        at = p.yoff2 + row * p.ystride2 + cc - p.n2;
      } else if (cc >= p.n1) {
        at = p.yoff1 + row * p.ystride1 + cc - p.n1;
      }
      y[at] = v;
    }
  }
}
`;
}

/** The pooling kernels. */
export type PoolKind = "maxpool2d" | "avgpool2d" | "adaptive_avgpool2d";

/**
 * A pooling kernel, one thread per output element (pixel, channel), with the
 * Wasm kernels' semantics: max ignores padding and propagates NaN; average
 * divides by the window clipped to the padded input (count_include_pad);
 * adaptive average uses PyTorch's bins `[floor(i h / oh), ceil((i + 1) h / oh))`.
 *
 * @param kind Which pool.
 * @returns WGSL source.
 *
 * @example
 * ```ts
 * import { poolShader } from "./shaders.ts";
 * console.log(poolShader("maxpool2d").includes("fn main")); // true
 * ```
 */
export function poolShader(kind: PoolKind): string {
  const window = {
    maxpool2d: `
  let y0 = max(oy * p.s - p.p, 0);
  let y1 = min(oy * p.s - p.p + p.k, p.h);
  let x0 = max(ox * p.s - p.p, 0);
  let x1 = min(ox * p.s - p.p + p.k, p.w);
  var r = x[base + (y0 * p.w + x0) * p.xstride];
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) {
      let v = x[base + (iy * p.w + ix) * p.xstride];
      // NaN wins, tested on the bits (WGSL may assume floats are finite).
      if (v > r || (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) { r = v; }
    }
  }`,
    avgpool2d: `
  let ys = oy * p.s - p.p;
  let ye = min(ys + p.k, p.h + p.p);
  let xs = ox * p.s - p.p;
  let xe = min(xs + p.k, p.w + p.p);
  let y0 = max(ys, 0);
  let y1 = min(ye, p.h);
  let x0 = max(xs, 0);
  let x1 = min(xe, p.w);
  var r = 0.0;
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) { r += x[base + (iy * p.w + ix) * p.xstride]; }
  }
  r *= 1.0 / f32((ye - ys) * (xe - xs));`,
    adaptive_avgpool2d: `
  let y0 = (oy * p.h) / p.oh;
  let y1 = ((oy + 1) * p.h + p.oh - 1) / p.oh;
  let x0 = (ox * p.w) / p.ow;
  let x1 = ((ox + 1) * p.w + p.ow - 1) / p.ow;
  var r = 0.0;
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) { r += x[base + (iy * p.w + ix) * p.xstride]; }
  }
  r *= 1.0 / f32((y1 - y0) * (x1 - x0));`,
  }[kind];
  return `${paramsStruct("pool")}
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(${ELEMENTWISE_GROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let idx = i32((wid.x + wid.y * nwg.x) * ${ELEMENTWISE_GROUP}u + li);
  if (idx >= p.total) { return; }
  let ch = idx % p.c;
  let pix = idx / p.c;
  let ox = pix % p.ow;
  let r_ = pix / p.ow;
  let oy = r_ % p.oh;
  let img = r_ / p.oh;
  let base = p.xoff + img * p.h * p.w * p.xstride + ch;${window}
  y[p.yoff + pix * p.ystride + ch] = r;
}
`;
}

/**
 * Inverted dropout in place: `x[i] = mask[i] == 0 ? 0 : x[i] * mask[i]`, where
 * the host fills the mask with 0 or `1 / (1 - p)` from the Wasm kernel's
 * xorshift32 stream (`./dropout.ts`), so both backends drop the same values.
 *
 * @returns WGSL source.
 *
 * @example
 * ```ts
 * import { dropoutShader } from "./shaders.ts";
 * console.log(dropoutShader().includes("fn main")); // true
 * ```
 */
export function dropoutShader(): string {
  return `${paramsStruct("dropout")}
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;

@compute @workgroup_size(${ELEMENTWISE_GROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = i32((wid.x + wid.y * nwg.x) * ${ELEMENTWISE_GROUP}u + li);
  if (i >= p.count) { return; }
  let m = mask[p.moff + i];
  x[p.xoff + i] = select(x[p.xoff + i] * m, 0.0, m == 0.0);
}
`;
}
