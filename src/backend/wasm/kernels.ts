/**
 * The compiled kernel binaries (built from `asm/` by `deno task build`) and
 * their exports. The binary is chosen at run time: relaxed SIMD (fused
 * multiply-add) when the engine validates it, plain SIMD otherwise; the
 * `-threads` builds import a shared memory.
 *
 * @module
 */

import { BackendError } from "../../errors.ts";

/**
 * `gemm_bias` / `gemm_bias_relu` / `gemm_acc`: rows [m0, m1) x panels [p0, p1)
 * of C = A x B + bias (then ReLU, or C += A x B + bias).
 */
export type GemmKernel = (
  n: number,
  k: number,
  a: number,
  lda: number,
  w: number,
  c: number,
  ldc: number,
  m0: number,
  m1: number,
  p0: number,
  p1: number,
) => void;

/**
 * `winograd_{f4x3,f2x5,f2x3}_{bias_relu,bias,acc}`: output tiles [t0, t1)
 * of a stride-1 "same" 3x3 or 5x5 convolution with bias, then ReLU (`_bias_relu`),
 * nothing (`_bias`), or added to y (`_acc`: y += conv + bias).
 */
export type WinogradKernel = (
  x: number,
  xstride: number,
  h: number,
  w: number,
  c: number,
  u: number,
  oc: number,
  y: number,
  ystride: number,
  scratch: number,
  t0: number,
  t1: number,
) => void;

/**
 * `maxpool2d` / `avgpool2d`: output rows [r0, r1) of N * OH, with
 * `maxpool2d_scratch_bytes(w, c)` of scratch (average pools ignore it).
 */
export type PoolKernel = (
  x: number,
  xstride: number,
  h: number,
  w: number,
  c: number,
  k: number,
  s: number,
  p: number,
  oh: number,
  ow: number,
  y: number,
  ystride: number,
  scratch: number,
  r0: number,
  r1: number,
) => void;

/**
 * `conv2d_bias_relu` / `conv2d_bias` / `conv2d_acc`: output pixels [m0, m1)
 * x panels [p0, p1) of an im2col convolution with bias, then ReLU, nothing,
 * or added to y, with `conv2d_scratch_bytes(kh * kw * c)` of scratch.
 */
export type ConvKernel = (
  x: number,
  xstride: number,
  h: number,
  w: number,
  c: number,
  kh: number,
  kw: number,
  sh: number,
  sw: number,
  ph: number,
  pw: number,
  oh: number,
  ow: number,
  wp: number,
  oc: number,
  y: number,
  ystride: number,
  scratch: number,
  m0: number,
  m1: number,
  p0: number,
  p1: number,
) => void;

/**
 * `avgpool2d_backward`-like units: `maxpool2d_backward` takes the pool's
 * input first; units [g0, g1) of N * ceil(C / 16) (image, 16 channels), dx
 * overwritten (`accumulate` 0) or added to (1).
 */
export type PoolBackwardKernel = (
  dy: number,
  dystride: number,
  h: number,
  w: number,
  c: number,
  k: number,
  s: number,
  p: number,
  oh: number,
  ow: number,
  dx: number,
  dxstride: number,
  accumulate: number,
  g0: number,
  g1: number,
) => void;

/**
 * `winograd_f4x3_weight_grad`: dw [oc, 9 * c] += the weight gradient of a 3x3
 * "same" stride-1 convolution of x (NHWC, n x h x w x c) giving dy
 * ([n * h * w, oc]), output channels [o0, o1) x input channels [c0, c1).
 */
export type WinogradWeightGrad = (
  x: number,
  xstride: number,
  n: number,
  h: number,
  w: number,
  c: number,
  dy: number,
  dystride: number,
  oc: number,
  dw: number,
  scratch: number,
  o0: number,
  o1: number,
  c0: number,
  c1: number,
) => void;

/** The kernel exports (byte addresses, strides in floats); see `asm/`. */
export interface KernelExports {
  gemm_bias: GemmKernel;
  gemm_bias_relu: GemmKernel;
  /** C += A x B + bias (no ReLU); a last partial panel touches no column past n. */
  gemm_acc: GemmKernel;
  /**
   * `gemm_bias` and `gemm_acc` with rows outer (each tile of rows takes every
   * panel): the same bits, faster for shallow depths (a 1x1 convolution's
   * input gradient with few output channels). Absent from modules built before them.
   */
  gemm_bias_by_rows?: GemmKernel;
  /** See `gemm_bias_by_rows`. */
  gemm_acc_by_rows?: GemmKernel;
  conv2d_bias_relu: ConvKernel;
  /** y = conv + bias (no ReLU). */
  conv2d_bias: ConvKernel;
  /** y += conv + bias (no ReLU). */
  conv2d_acc: ConvKernel;
  conv2d_scratch_bytes(k: number): number;
  winograd_f4x3_bias_relu: WinogradKernel;
  winograd_f2x5_bias_relu: WinogradKernel;
  winograd_f2x3_bias_relu: WinogradKernel;
  winograd_f4x3_bias: WinogradKernel;
  winograd_f2x5_bias: WinogradKernel;
  winograd_f2x3_bias: WinogradKernel;
  winograd_f4x3_acc: WinogradKernel;
  winograd_f2x5_acc: WinogradKernel;
  winograd_f2x3_acc: WinogradKernel;
  winograd_scratch_bytes(c: number, oc: number): number;
  winograd_block_tiles(nn: number, c: number, oc: number): number;
  maxpool2d: PoolKernel;
  maxpool2d_scratch_bytes(w: number, c: number): number;
  avgpool2d: PoolKernel;
  adaptive_avgpool2d(
    x: number,
    xstride: number,
    h: number,
    w: number,
    c: number,
    oh: number,
    ow: number,
    y: number,
    ystride: number,
    r0: number,
    r1: number,
  ): void;
  /**
   * Units [g0, g1) of N * ceil(C / 16): dx = (accumulate ? dx : 0) + each dy
   * at its window's argmax (PyTorch 1.13's: first maximum, NaN wins); with
   * `relu` (x is a ReLU's output; 0 when left out), then `x <= 0 ? 0 : dx`.
   */
  maxpool2d_backward(
    x: number,
    xstride: number,
    h: number,
    w: number,
    c: number,
    k: number,
    s: number,
    p: number,
    oh: number,
    ow: number,
    dy: number,
    dystride: number,
    dx: number,
    dxstride: number,
    accumulate: number,
    g0: number,
    g1: number,
    relu?: number,
  ): void;
  /** The adjoint of `avgpool2d` (count_include_pad); units as `maxpool2d_backward`. */
  avgpool2d_backward: PoolBackwardKernel;
  /** The adjoint of `adaptive_avgpool2d`; units as `maxpool2d_backward`. */
  adaptive_avgpool2d_backward(
    dy: number,
    dystride: number,
    h: number,
    w: number,
    c: number,
    oh: number,
    ow: number,
    dx: number,
    dxstride: number,
    accumulate: number,
    g0: number,
    g1: number,
  ): void;
  /**
   * dw[o, kk] += sum over output pixels of dy[m, o] * im2col(x)[m, kk] for
   * rows [o0, o1) and columns [q0, q1) of the dense [oc, kh * kw * c] dw
   * (kk = (i * kw + j) * c + ch); bit-identical for any split into chunks.
   * scratch: `conv2d_weight_grad_scratch_bytes(c, kh, kw, ow, oc)` bytes per thread.
   */
  conv2d_weight_grad(
    x: number,
    xstride: number,
    n: number,
    h: number,
    w: number,
    c: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    ph: number,
    pw: number,
    oh: number,
    ow: number,
    dy: number,
    dystride: number,
    oc: number,
    dw: number,
    scratch: number,
    o0: number,
    o1: number,
    q0: number,
    q1: number,
  ): void;
  conv2d_weight_grad_scratch_bytes(
    c: number,
    kh: number,
    kw: number,
    ow: number,
    oc: number,
  ): number;
  /**
   * The weight gradient of a 3x3 (padding 1) convolution by Winograd F(4x4, 3x3),
   * accumulated into the dense [oc, 9 * c] dw for output channels [o0, o1) and
   * input channels [c0, c1) (dU = sum of V^T dM over tiles, then G^T dU G in f64);
   * bit-identical for any split into chunks. c, oc, o0, c0 multiples of 4.
   * scratch: `winograd_weight_grad_scratch_bytes()` bytes per thread. Absent from
   * modules built before Winograd weight gradients.
   */
  winograd_f4x3_weight_grad?: WinogradWeightGrad;
  /** Scratch bytes of `winograd_f4x3_weight_grad`. */
  winograd_weight_grad_scratch_bytes?(): number;
  /**
   * The weight and bias gradient of a 1x1 stride-1 convolution or a linear
   * layer: dw[o, q] += sum over pixels m of dy[m, o] * x[m, q] for rows
   * [o0, o1) and columns [q0, q1) of the dense [oc, c] dw, and when db is not
   * 0, db[o] += sum_m dy[m, o] for o in [o0, o1); the bits of
   * `conv2d_weight_grad` and `bias_grad` for any split into chunks.
   * scratch: `gemm_weight_grad_scratch_bytes(c, oc)` bytes per thread. Absent
   * from modules built before it.
   */
  gemm_weight_grad?(
    x: number,
    xstride: number,
    pixels: number,
    c: number,
    dy: number,
    dystride: number,
    oc: number,
    dw: number,
    db: number,
    scratch: number,
    o0: number,
    o1: number,
    q0: number,
    q1: number,
  ): void;
  /** Scratch bytes of `gemm_weight_grad`. */
  gemm_weight_grad_scratch_bytes?(c: number, oc: number): number;
  /**
   * The weight gradient of a 5x5 (padding 2) convolution by Winograd F(2x2, 5x5),
   * accumulated into the dense [oc, 25 * c] dw, as `winograd_f4x3_weight_grad`.
   * scratch: `winograd_f2x5_weight_grad_scratch_bytes()` bytes per thread. Absent
   * from modules built before it.
   */
  winograd_f2x5_weight_grad?: WinogradWeightGrad;
  /** Scratch bytes of `winograd_f2x5_weight_grad`. */
  winograd_f2x5_weight_grad_scratch_bytes?(): number;
  /** db[o] += sum over pixels [0, pixels) of dy[p, o] for o in [o0, o1). */
  bias_grad(dy: number, dystride: number, pixels: number, db: number, o0: number, o1: number): void;
  dropout(x: number, n: number, p: number, seed: number): void;
  relu(x: number, n: number): void;
  /** dy = y <= 0 ? 0 : dy for pixels [r0, r1), channels [0, c), in place (NaN y passes dy, as torch). */
  relu_backward(
    dy: number,
    dystride: number,
    y: number,
    ystride: number,
    c: number,
    r0: number,
    r1: number,
  ): void;
  softmax(x: number, rows: number, cols: number): void;
  /**
   * Panels [p0, p1) of a GEMM-packed matrix (`packGemm`'s layout) of depth k
   * and n columns at `dst`, packed row r, column j read from
   * `src[base + gather(r; rc, ra, rb) + gather(j; cc, ca, cb)]` with
   * `gather(x; c, a, b) = (x % c) * a + floor(x / c) * b`; `bias` 0 is a zero
   * bias. Absent from modules built before training repacked in Wasm.
   */
  pack_gemm?(
    src: number,
    base: number,
    k: number,
    n: number,
    rc: number,
    ra: number,
    rb: number,
    cc: number,
    ca: number,
    cb: number,
    bias: number,
    dst: number,
    p0: number,
    p1: number,
  ): void;
  /**
   * Panels [p0, p1) (and the bias when p0 is 0) of the Winograd form of an r x r
   * convolution (`packWinograd`'s layout and bits), tap t of output o, input ci
   * at `src[base + o * os + ci * cs + t * ts]`.
   */
  pack_winograd?(
    src: number,
    base: number,
    os: number,
    cs: number,
    ts: number,
    bias: number,
    c: number,
    oc: number,
    n: number,
    r: number,
    dst: number,
    scratch: number,
    p0: number,
    p1: number,
  ): void;
  /** Scratch bytes of `pack_winograd`. */
  pack_winograd_scratch_bytes?(): number;
  /**
   * Output channels [o0, o1) of a convolution with an eval-mode BatchNorm
   * folded in (`foldBatchNorm`'s bits): gamma, beta, mean, var at `bn`, n
   * floats each; W [n, k] at `w`; the folded weight to `dw`, bias to `db`.
   */
  fold_batchnorm?(
    w: number,
    bn: number,
    eps: number,
    n: number,
    k: number,
    dw: number,
    db: number,
    o0: number,
    o1: number,
  ): void;
  fma_peak(iters: number, at: number): number;
  /**
   * The pure multiply-add rate: 12 independent chains on registers, no loads
   * (the hardware's ceiling, for the bench's ratios).
   */
  fma_pure(iters: number, at: number): number;
  /**
   * Selects this instance's GEMM micro-kernel variant (an index of
   * `GEMM_KERNELS` in calibrate.ts; out of range only reads) and returns the one in use.
   */
  gemm_variant(variant: number): number;
  GEMM_MR: WebAssembly.Global;
  GEMM_NR: WebAssembly.Global;
}

/** Which instruction set a kernel binary uses. */
export type KernelIsa = "relaxed-simd" | "simd";

/** A compiled kernel module and what it needs. */
export interface CompiledKernels {
  /** The compiled module (can be posted to workers). */
  readonly module: WebAssembly.Module;
  /** Whether it imports a shared memory (the threads build). */
  readonly shared: boolean;
  /** Its instruction set, when known. */
  readonly isa: KernelIsa | "unknown";
}

/** URL of one kernel binary next to this module. */
export function kernelUrl(isa: KernelIsa, shared: boolean): URL {
  const name = `kernels-${isa === "relaxed-simd" ? "relaxed" : "simd"}${
    shared ? "-threads" : ""
  }.wasm`;
  return new URL(`./kernels/${name}`, import.meta.url);
}

async function fetchBytes(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (cause) {
    throw new BackendError(
      `Cannot fetch the kernel binary ${url.href}: grant read/net access to it, or pass a ` +
        "precompiled module as `wasmModule`",
      { cause },
    );
  }
  if (!response.ok) {
    throw new BackendError(`Cannot fetch the kernel binary ${url.href}: HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

const binaries = new Map<boolean, Promise<{ bytes: Uint8Array<ArrayBuffer>; isa: KernelIsa }>>();

/** The best kernel binary this engine validates, and its instruction set (cached per process). */
function kernelBinary(
  shared: boolean,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; isa: KernelIsa }> {
  let entry = binaries.get(shared);
  if (!entry) {
    entry = (async () => {
      const relaxed = await fetchBytes(kernelUrl("relaxed-simd", shared));
      const isa: KernelIsa = WebAssembly.validate(relaxed) ? "relaxed-simd" : "simd";
      const bytes = isa === "relaxed-simd" ? relaxed : await fetchBytes(kernelUrl("simd", shared));
      if (!WebAssembly.validate(bytes)) {
        throw new BackendError(
          "This engine cannot run the kernels: WebAssembly SIMD (v128) is required",
        );
      }
      return { bytes, isa };
    })();
    entry.catch(() => binaries.delete(shared));
    binaries.set(shared, entry);
  }
  return entry;
}

/** Compiled modules kept per process (most recently used last): one per memory size in use. */
const modules = new Map<string, Promise<CompiledKernels>>();
const MODULE_CACHE = 8;

/**
 * Compiles the best kernel binary this engine validates.
 *
 * @param shared Whether to take the threads build (imports a shared memory).
 * @param pages The exact size, in 64 KiB pages, of the memory it will
 * import (see {@linkcode withFixedMemory}). Without it the module imports a
 * memory of any size.
 */
export function compileKernels(shared: boolean, pages?: number): Promise<CompiledKernels> {
  const key = `${shared}:${pages ?? "any"}`;
  let entry = modules.get(key);
  if (entry) {
    modules.delete(key);
  } else {
    entry = (async () => {
      const { bytes, isa } = await kernelBinary(shared);
      const binary = pages !== undefined ? withFixedMemory(bytes, pages) : bytes;
      return { module: await WebAssembly.compile(binary), shared, isa };
    })();
    entry.catch(() => modules.delete(key));
  }
  modules.set(key, entry);
  if (modules.size > MODULE_CACHE) modules.delete(modules.keys().next().value!);
  return entry;
}

/**
 * A copy of kernel binary `bytes` whose imported memory is declared with
 * exactly `pages` pages (minimum = maximum). V8 reloads the size of a shared
 * memory that can grow before every bounds-checked access (another thread may
 * grow it), which made the threads build about 10 % slower than the private
 * one; and of a fixed size it makes each load's limit a constant, which took
 * 3-5 % off the one-thread GEMMs on an Intel Xeon as well (docs/kernels.md).
 *
 * @throws {BackendError} When `bytes` is not a module whose only imports are memories.
 */
export function withFixedMemory(bytes: Uint8Array, pages: number): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(pages) || pages < 0 || pages > 65536) {
    throw new BackendError(`A Wasm memory has 0 to 65536 pages, got ${pages}`);
  }
  const fail = (what: string): never => {
    throw new BackendError(`Cannot fix the memory size of the kernel binary: ${what}`);
  };
  let at = 8;
  const u32 = () => {
    let value = 0;
    for (let shift = 0;; shift += 7) {
      if (at >= bytes.length || shift > 28) fail("truncated LEB128");
      const byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
  };
  const leb = (value: number, out: number[]) => {
    do {
      const low = value & 0x7f;
      value = Math.floor(value / 128);
      out.push(value > 0 ? low | 0x80 : low);
    } while (value > 0);
  };
  const out: number[] = [...bytes.subarray(0, 8)];
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = u32();
    const start = at, end = at + size;
    if (end > bytes.length) fail("a section runs past the end");
    if (id !== 2) {
      out.push(id);
      leb(size, out);
      for (let i = start; i < end; i++) out.push(bytes[i]);
      at = end;
      continue;
    }
    // The import section: names, then for a memory (kind 2) its limits:
    // flags (bit 0: has a maximum, bit 1: shared), minimum[, maximum].
    const body: number[] = [];
    const count = u32();
    leb(count, body);
    for (let i = 0; i < count; i++) {
      for (let name = 0; name < 2; name++) {
        const length = u32();
        leb(length, body);
        for (let j = 0; j < length; j++) body.push(bytes[at + j]);
        at += length;
      }
      if (bytes[at++] !== 2) fail("an import other than a memory");
      const flags = bytes[at++];
      if (flags > 3) fail(`unknown memory limits flags ${flags}`);
      u32();
      if (flags & 1) u32();
      body.push(2, flags | 1);
      leb(pages, body);
      leb(pages, body);
    }
    if (at !== end) fail("the import section has trailing bytes");
    out.push(id);
    leb(body.length, out);
    out.push(...body);
  }
  return new Uint8Array(out);
}

/**
 * The exports every run may call (the optional ones, such as the Winograd
 * weight gradient and the repack kernels, have fallbacks): a caller-supplied
 * module lacking one is refused when the model is created, not at a forward.
 */
const REQUIRED_EXPORTS: readonly (keyof KernelExports)[] = [
  "gemm_bias",
  "gemm_bias_relu",
  "gemm_acc",
  "conv2d_bias_relu",
  "conv2d_bias",
  "conv2d_acc",
  "conv2d_scratch_bytes",
  "winograd_f4x3_bias_relu",
  "winograd_f2x5_bias_relu",
  "winograd_f2x3_bias_relu",
  "winograd_f4x3_bias",
  "winograd_f2x5_bias",
  "winograd_f2x3_bias",
  "winograd_f4x3_acc",
  "winograd_f2x5_acc",
  "winograd_f2x3_acc",
  "winograd_scratch_bytes",
  "winograd_block_tiles",
  "maxpool2d",
  "maxpool2d_scratch_bytes",
  "avgpool2d",
  "adaptive_avgpool2d",
  "maxpool2d_backward",
  "avgpool2d_backward",
  "adaptive_avgpool2d_backward",
  "conv2d_weight_grad",
  "conv2d_weight_grad_scratch_bytes",
  "bias_grad",
  "dropout",
  "relu_backward",
  "softmax",
  "gemm_variant",
];

/** Describes a caller-supplied precompiled module (edge runtimes). */
export function describeModule(module: WebAssembly.Module): CompiledKernels {
  // Not `instanceof`: a host may compile the module in another realm (Vercel's
  // edge-runtime compiles outside the context that runs the code), and such a
  // module fails `instanceof` there while the engine accepts it.
  let imports: WebAssembly.ModuleImportDescriptor[];
  let exportList: WebAssembly.ModuleExportDescriptor[];
  try {
    imports = WebAssembly.Module.imports(module);
    exportList = WebAssembly.Module.exports(module);
  } catch {
    throw new BackendError(
      "`wasmModule` must be a WebAssembly.Module compiled from a kernels-*.wasm file",
    );
  }
  const memory = imports.find((i) => i.kind === "memory");
  const exports = new Set(exportList.map((e) => e.name));
  if (!memory || !exports.has("conv2d_bias_relu") || !exports.has("gemm_bias")) {
    throw new BackendError(
      "`wasmModule` is not a googlenet-wasm kernel module: expected one compiled from " +
        "src/backend/wasm/kernels/kernels-*.wasm",
    );
  }
  const missing = REQUIRED_EXPORTS.filter((name) => !exports.has(name));
  if (missing.length > 0) {
    const training = missing.includes("conv2d_weight_grad")
      ? " (it lacks the training kernels)"
      : "";
    throw new BackendError(
      `\`wasmModule\` was compiled from another version of kernels-*.wasm${training}: it has no ${
        missing.slice(0, 6).join(", ")
      }${
        missing.length > 6 ? ` or ${missing.length - 6} more` : ""
      }; compile src/backend/wasm/kernels/kernels-*.wasm of this version`,
    );
  }
  // A threads build cannot be told apart by its imports' descriptors here; try a private memory first.
  return { module, shared: false, isa: "unknown" };
}

/**
 * Instantiates `module` over `memory`, with GEMM micro-kernel variant
 * `gemmVariant` (see calibrate.ts; every variant gives the same bits).
 */
export function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  gemmVariant = 0,
): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const kernels = instance.exports as unknown as KernelExports;
  kernels.gemm_variant(gemmVariant);
  return kernels;
}
