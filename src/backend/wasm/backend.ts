/**
 * The Wasm backend: one linear memory holding the packed weights, a
 * per-thread im2col scratch and the activation arena of the current plan;
 * kernels from `asm/`, run on the calling thread and an optional pool of
 * workers sharing that memory.
 *
 * Memory map (bytes): [0, 64) unused | weights | scratch x threads | arena.
 *
 * @module
 */

import type { Plan, WeightLayout } from "../../graph/ops.ts";
import { BackendError, MemoryLimitError, ShapeError } from "../../errors.ts";
import type { Tensor } from "../../tensor.ts";
import { type Backend, checkPlanLayout, copyInput } from "../backend.ts";
import {
  type LayerValues,
  packLayer,
  type RepackLayer,
  type StagedLayer,
  type SwappedLayer,
  wasmRepackEnabled,
  WeightStaging,
} from "../repack.ts";
import {
  type ChunkTrace,
  type MemoryLayout,
  runChunk,
  runSerial,
  type Schedule,
  schedule,
  scratchBytes,
  TRACE_FIELDS,
  weightKernels,
} from "./executor.ts";
import {
  type CompiledKernels,
  compileKernels,
  describeModule,
  instantiateKernels,
  type KernelExports,
} from "./kernels.ts";
import {
  calibrateGemm,
  CALIBRATION_BYTES,
  GEMM_KERNELS,
  type GemmCalibration,
  type GemmKernel,
  gemmVariantIndex,
} from "./calibrate.ts";
import { ThreadPool, threadsAvailable } from "./thread_pool.ts";
import { optimKernels } from "./optim.ts";

const PAGE = 65536;
const WEIGHTS_AT = 64;
/** Plans kept installed on the workers (as many as a model keeps plans). */
const INSTALLED_PLANS = 8;
/** The most a 32-bit Wasm memory can hold. */
export const MAX_WASM_MEMORY = 4 * 1024 * 1024 * 1024 - PAGE;

/** One operation's or chunk's time from {@linkcode WasmBackend.profile}. */
export interface ProfiledChunk {
  /** The operation's layer. */
  readonly name: string;
  /** The operation's kind. */
  readonly kind: string;
  /** Milliseconds on the calling thread. */
  readonly ms: number;
  /** The plan step it belongs to. */
  readonly step: number;
  /** The thread whose list holds it. */
  readonly thread: number;
}

/** One chunk (or barrier wait) of a traced run, from {@linkcode WasmBackend.trace}. */
export interface TracedChunk {
  /** The operation's layer, or "barrier" for a thread's wait at the end of a step. */
  readonly name: string;
  /** The operation's kind, or "barrier". */
  readonly kind: string;
  /** The operation's index in the plan, -1 for a barrier. */
  readonly op: number;
  /** The plan step it belongs to. */
  readonly step: number;
  /** The thread that ran it. */
  readonly thread: number;
  /** Start and end, in ms since the epoch. */
  readonly start: number;
  readonly end: number;
}

/** Options of {@linkcode WasmBackend.create}. */
export interface WasmBackendOptions {
  /** Floats of packed weights to reserve. */
  weightFloats: number;
  /**
   * The layout of the model's weights (what its plans were made for): runs
   * of plans made for another are refused. None by default (kernel tests).
   */
  weightLayout?: WeightLayout | null;
  /** Threads including the caller; 1 runs without workers. */
  threads: number;
  /** A precompiled kernel module (for runtimes that cannot compile Wasm at run time). */
  wasmModule?: WebAssembly.Module;
  /** Most bytes of Wasm memory to use. */
  memoryLimit: number;
  /**
   * A plan the first runs will likely use: a threaded backend, whose shared
   * memory has a fixed size, sizes it for this plan up front.
   */
  reserve?: Plan;
  /**
   * Run on the calling thread alone when the workers cannot start (the
   * thread count was a default, not a demand). Otherwise {@linkcode WasmBackend.ready}
   * rejects.
   */
  threadsOptional?: boolean;
  /**
   * The GEMM micro-kernel: `"auto"` (default) measures the variants once per
   * process (calibrate.ts); a name forces one (tests, reproducible benches).
   */
  gemmKernel?: GemmKernel | "auto";
}

/** Calibrations made in this process, by kernel binary. */
const calibrations = new Map<string, GemmCalibration>();

/**
 * Selects the GEMM variant on `kernels`: the one named, or the process's
 * calibration for this binary (measured on `kernels` the first time).
 */
function chooseGemm(
  kernels: KernelExports,
  memory: WebAssembly.Memory,
  isa: string,
  kernel: GemmKernel | "auto" = "auto",
): GemmCalibration {
  const none = Object.fromEntries(GEMM_KERNELS.map((k) => [k, NaN])) as Record<GemmKernel, number>;
  if (kernel !== "auto") {
    kernels.gemm_variant(gemmVariantIndex(kernel));
    const measured = calibrations.get(isa);
    return { kernel, rates: measured?.rates ?? none, ms: 0, source: "forced" };
  }
  let calibration = calibrations.get(isa);
  // The probe runs on the fresh (all-zero) memory's first bytes, and leaves them zero.
  if (!calibration && memory.buffer.byteLength >= CALIBRATION_BYTES) {
    calibration = calibrateGemm(kernels);
    calibrations.set(isa, calibration);
  }
  kernels.gemm_variant(gemmVariantIndex(calibration?.kernel ?? GEMM_KERNELS[0]));
  return calibration ?? { kernel: GEMM_KERNELS[0], rates: none, ms: 0, source: "default" };
}

/** Runs plans on the Wasm SIMD kernels. */
export class WasmBackend implements Backend {
  readonly kind = "wasm" as const;
  /** The layout of the model's weights the blob holds; null when made without one. */
  readonly weightLayout: WeightLayout | null;
  /** The kernel binary's instruction set. */
  readonly isa: string;
  /** The GEMM micro-kernel in use, and what the start-up calibration measured. */
  readonly gemm: GemmCalibration;
  #memory: WebAssembly.Memory;
  /** Whether the memory has a fixed size (not a caller's module): a larger plan moves to a new one. */
  #fixed: boolean;
  #kernels: KernelExports;
  /** Training's staged layers and repack plans. */
  #staging = new WeightStaging();
  #pool: ThreadPool | null = null;
  #threads: number;
  #booting: Promise<void>;
  #bootError: BackendError | null = null;
  #weightFloats: number;
  #memoryLimit: number;
  #layouts = new WeakMap<Plan, MemoryLayout>();
  #schedules = new WeakMap<Plan, Schedule>();
  /** The plans installed on the workers, least recently run first. */
  #installed: Plan[] = [];
  #disposed = false;
  /**
   * The run or weight growth in progress: they go one at a time, since a
   * larger plan moves the memory (weights copied, arena not) and a threaded
   * run owns the workers' control block until it ends.
   */
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(
    memory: WebAssembly.Memory,
    kernels: KernelExports,
    booting: { threads: number; pool: Promise<ThreadPool> } | null,
    options: WasmBackendOptions,
    isa: string,
    fixed: boolean,
    gemm: GemmCalibration,
  ) {
    this.gemm = gemm;
    this.weightLayout = options.weightLayout ?? null;
    this.#memory = memory;
    this.#fixed = fixed;
    this.#kernels = kernels;
    this.#weightFloats = options.weightFloats;
    this.#memoryLimit = options.memoryLimit;
    this.#threads = booting?.threads ?? 1;
    this.isa = isa;
    // Workers boot in the background; a failure is kept for ready() (never
    // an unhandled rejection), or, when threads are optional, means one thread.
    this.#booting = booting
      ? booting.pool.then((pool) => {
        if (this.#disposed) pool.dispose();
        else this.#pool = pool;
      }, (cause) => {
        this.#threads = 1;
        if (!options.threadsOptional) {
          this.#bootError = cause instanceof BackendError
            ? cause
            : new BackendError(`Cannot start the kernel workers: ${cause}`, { cause });
        }
      })
      : Promise.resolve();
  }

  /** Threads including the caller (the requested count while workers boot; 1 if they could not). */
  get threads(): number {
    return this.#threads;
  }

  /**
   * Compiles (or takes) the kernels and allocates the weights; starts the
   * workers without waiting for them (see {@linkcode WasmBackend.ready}), so
   * that they boot while the caller writes the weights.
   */
  static async create(options: WasmBackendOptions): Promise<WasmBackend> {
    const wantThreads = options.threads > 1 && threadsAvailable();
    const weightBytes = WEIGHTS_AT + options.weightFloats * 4;
    if (weightBytes > options.memoryLimit) {
      throw new MemoryLimitError(
        `The weights need ${mb(weightBytes)} of Wasm memory but memoryLimit is ${
          mb(options.memoryLimit)
        }`,
      );
    }
    const limit = Math.min(options.memoryLimit, MAX_WASM_MEMORY);
    let compiled: CompiledKernels;
    let memory: WebAssembly.Memory;
    let kernels: KernelExports;
    if (options.wasmModule) {
      compiled = describeModule(options.wasmModule);
      // Up to the page the limit falls in: a plan that passes the limit
      // check (in bytes) must be able to grow into it, as a fixed memory of
      // whole pages holds it.
      const growable = (shared: boolean) =>
        allocate(Math.ceil(weightBytes / PAGE), shared, Math.ceil(limit / PAGE));
      memory = growable(compiled.shared);
      try {
        kernels = instantiateKernels(compiled.module, memory);
      } catch (cause) {
        // A caller-supplied threads build imports a shared memory.
        if (!(cause instanceof WebAssembly.LinkError) || !threadsAvailable()) {
          throw new BackendError(`Cannot instantiate the kernel module: ${cause}`, { cause });
        }
        memory = growable(true);
        compiled = { ...compiled, shared: true };
        kernels = instantiateKernels(compiled.module, memory);
      }
    } else {
      // A memory of fixed size (see withFixedMemory), shared for the threads
      // build, for the weights and, when it fits the limit, the first plan the
      // caller expects; a larger plan moves to a new one (#move). On one thread
      // too: V8 then compares each load's index with a constant instead of the
      // memory's current size, and the kernels run 3-5 % faster (docs/kernels.md).
      const threads = wantThreads ? options.threads : 1;
      let bytes = weightBytes;
      if (options.reserve) {
        const sizing = instantiateKernels(
          (await compileKernels(wantThreads, 1)).module,
          allocate(1, wantThreads, 1),
        );
        const layout = layoutOf(sizing, options.reserve, options.weightFloats, threads);
        const end = planEnd(layout, options.reserve);
        if (end <= limit) bytes = end;
      }
      const pages = Math.ceil(bytes / PAGE);
      compiled = await compileKernels(wantThreads, pages);
      memory = allocate(pages, wantThreads, pages);
      kernels = instantiateKernels(compiled.module, memory);
    }
    const gemm = chooseGemm(kernels, memory, compiled.isa, options.gemmKernel);
    const booting = wantThreads && compiled.shared
      ? {
        threads: options.threads,
        pool: ThreadPool.create(options.threads, compiled.module, memory, kernels, [
          WEIGHTS_AT,
          weightBytes,
        ]),
      }
      : null;
    const fixed = !options.wasmModule;
    return new WasmBackend(memory, kernels, booting, options, compiled.isa, fixed, gemm);
  }

  /** Settles when the workers are up (or, with `threadsOptional`, given up on). */
  async ready(): Promise<void> {
    await this.#booting;
    if (this.#bootError) throw this.#bootError;
  }

  /** The kernel exports (for benches and kernel tests). */
  get kernels(): KernelExports {
    return this.#kernels;
  }

  /** The linear memory. */
  get memory(): WebAssembly.Memory {
    return this.#memory;
  }

  weights(): Float32Array {
    this.#check();
    return new Float32Array(this.#memory.buffer, WEIGHTS_AT, this.#weightFloats);
  }

  weightsChanged(): void {}

  growWeights(floats: number): Promise<void> {
    this.#check();
    return this.#exclusive(() => this.#growWeights(floats));
  }

  async #growWeights(floats: number): Promise<void> {
    await this.ready();
    this.#check();
    if (floats <= this.#weightFloats) return;
    const oldEnd = WEIGHTS_AT + this.#weightFloats * 4;
    const end = WEIGHTS_AT + floats * 4;
    if (end > this.#memoryLimit || end > MAX_WASM_MEMORY) {
      throw new MemoryLimitError(
        `Training needs ${mb(end)} of Wasm memory for weights and gradients but the limit is ` +
          `${limitText(this.#memoryLimit)}${end > MAX_WASM_MEMORY ? "" : ": raise memoryLimit"}`,
      );
    }
    // Every plan's scratch and arena move up: forget their layouts.
    this.#layouts = new WeakMap();
    for (const plan of this.#installed) this.#pool?.forget(plan);
    this.#installed = [];
    const have = this.#memory.buffer.byteLength;
    // A fixed memory moves once: with the room it had past the weights (the
    // last plan's scratch and arena, which move up by as much), within the
    // limit, so the next run of that plan does not move it again.
    const room = Math.min(end + (have - oldEnd), this.#memoryLimit, MAX_WASM_MEMORY);
    if (end > have && this.#fixed) await this.#move(room, oldEnd);
    else if (end > have) this.#grow(end);
    this.#weightFloats = floats;
    new Uint8Array(this.#memory.buffer, oldEnd, end - oldEnd).fill(0);
  }

  memoryBytes(): number {
    return this.#memory.buffer.byteLength;
  }

  /** Bytes a plan needs in all (weights, scratch, arena), for limit checks. */
  planBytes(plan: Plan): number {
    return planEnd(this.#layout(plan), plan);
  }

  run(plan: Plan, input: Tensor, seeds: readonly number[]): Promise<Float32Array[]> {
    this.#check();
    return this.#exclusive(() => {
      checkPlanLayout(plan, this.weightLayout, this.kind);
      return this.#run(plan, input, seeds);
    });
  }

  /** Runs `task` after the runs and weight growths called before it. */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#busy.then(task);
    this.#busy = result.catch(() => {});
    return result;
  }

  /**
   * Runs a plan of weight operations (`pack_gemm`, `pack_winograd`: training's
   * repack), which read and write only the weight blob, on every thread.
   *
   * @param plan Weight operations in steps; no input, no outputs, an arena of one float.
   * @throws {BackendError} When the kernel module has no weight-packing exports.
   */
  runWeights(plan: Plan): Promise<void> {
    this.#check();
    weightKernels(this.#kernels);
    return this.#exclusive(() => this.#run(plan, null, [])).then(() => {});
  }

  /**
   * Stages the trainable layers whose packing has a gather when the kernels
   * can pack (and the `setRepackInWasm` hook is on): two regions for those
   * the optimizer kernels can step, one for the others.
   *
   * @param layers The trainable layers, in blob order.
   * @param floats Where the free part of the weight blob starts.
   * @returns The end of the staging (floats).
   */
  stageLayers(layers: readonly RepackLayer[], floats: number): number {
    const on = this.packsWeights && wasmRepackEnabled();
    return this.#staging.stage(on ? layers : [], floats, this.updatesParameters);
  }

  /**
   * A layer's staging regions, or null when it is not staged.
   *
   * @param key The layer's key.
   * @returns Its regions.
   */
  staged(key: string): StagedLayer | null {
    return this.#staging.get(key);
  }

  /**
   * The GEMM panels of staged layers that the repack does not rewrite (those
   * of weights with a Winograd form, which no kernel reads), as float ranges
   * of the weight blob: a test poisons them to show nothing reads them.
   *
   * @returns `[offset, offset + floats)` ranges, empty before training stages layers.
   *
   * @example
   * ```ts ignore
   * for (const { offset, floats } of backend.unreadPanels()) backend.weights().fill(NaN, offset, offset + floats);
   * ```
   */
  unreadPanels(): { offset: number; floats: number }[] {
    return this.#staging.unread();
  }

  /**
   * Makes the regions the optimizer kernels wrote current, carrying over
   * what they did not write.
   *
   * @param layers Stepped layers' keys and what stepped.
   */
  swap(layers: readonly SwappedLayer[]): void {
    this.#staging.swap(this.weights(), layers);
  }

  /**
   * Packs the layers it does not stage in TypeScript at once; stages the
   * others' new tensors, then packs those from their current regions on
   * every thread (through {@linkcode WasmBackend.runWeights}).
   *
   * @param layers The layers and their new tensors.
   */
  async repack(layers: readonly LayerValues[]): Promise<void> {
    const blob = this.weights();
    const staged: LayerValues[] = [];
    for (const values of layers) {
      if (this.#staging.get(values.layer.key)) staged.push(values);
      else packLayer(blob, values.layer, values.tensors!);
    }
    if (staged.length) {
      this.#staging.write(blob, staged);
      await this.runWeights(this.#staging.plan(staged.map((v) => v.layer.key)));
    }
    this.weightsChanged();
  }

  /** Whether the kernels can pack weights ({@linkcode WasmBackend.runWeights}). */
  get packsWeights(): boolean {
    return typeof this.#kernels.pack_gemm === "function" &&
      typeof this.#kernels.pack_winograd === "function" &&
      typeof this.#kernels.fold_batchnorm === "function";
  }

  /** Whether the kernels can run optimizer steps (`optim_step` in {@linkcode WasmBackend.runWeights}). */
  get updatesParameters(): boolean {
    return this.packsWeights && optimKernels(this.#kernels) !== null;
  }

  async #run(
    plan: Plan,
    input: Tensor | null,
    seeds: readonly number[],
    trace: ChunkTrace | null = null,
  ): Promise<Float32Array[]> {
    await this.ready();
    this.#check();
    // Copied in as it comes: another size would run over the input buffer into the next
    // ones (or past the memory's end), or leave part of the previous input in place.
    const inputSize = plan.buffers[plan.input]?.size;
    if (input && input.size !== inputSize) {
      throw new ShapeError(
        `Expected an input of ${inputSize} values for this plan (the shape it was made for), ` +
          `got [${input.shape.join(", ")}] (${input.size} values)`,
      );
    }
    const layout = this.#layout(plan);
    const end = planEnd(layout, plan);
    if (end > this.#memoryLimit || end > MAX_WASM_MEMORY) {
      throw new MemoryLimitError(
        `Input [${input?.shape.join(", ")}] needs ${mb(end)} of Wasm memory but the limit is ` +
          `${limitText(this.#memoryLimit)}: use a smaller batch or image${
            end > MAX_WASM_MEMORY ? "" : ", or raise memoryLimit"
          }`,
      );
    }
    const have = this.#memory.buffer.byteLength;
    if (end > have && this.#fixed) await this.#move(end, WEIGHTS_AT + this.#weightFloats * 4);
    else if (end > have) this.#grow(end);
    // After each wait: dispose() may have come meanwhile (it lets the pool go).
    this.#check();
    const pool = this.#pool;
    if (pool) {
      // Keep a few plans on the workers, so that alternating shapes (batch 1
      // and batch 8 requests) do not post a plan on every switch.
      const at = this.#installed.indexOf(plan);
      if (at >= 0) {
        this.#installed.splice(at, 1);
      } else {
        await pool.install(plan, layout);
        this.#check();
        if (this.#installed.length >= INSTALLED_PLANS) pool.forget(this.#installed.shift()!);
      }
      this.#installed.push(plan);
      // Idle workers end (so that they do not keep the host alive) and failed ones are let go.
      await pool.wake();
      this.#check();
    }
    const heap = new Float32Array(this.#memory.buffer);
    if (input) copyInput(plan, input, heap, layout.arena / 4 + plan.buffers[plan.input].offset);
    if (pool) {
      try {
        await pool.run(plan, layout, seeds, trace);
      } finally {
        this.#check();
      }
    } else {
      try {
        runSerial(this.#kernels, plan, layout, this.#serial(plan), seeds);
      } catch (cause) {
        throw new BackendError(`A kernel failed while running the plan: ${cause}`, { cause });
      }
    }
    const out = new Float32Array(this.#memory.buffer);
    return plan.outputs.map(({ buffer }) => {
      const start = layout.arena / 4 + plan.buffers[buffer].offset;
      return out.slice(start, start + plan.buffers[buffer].size);
    });
  }

  /**
   * Runs `plan` on every thread as {@linkcode WasmBackend.run} does, and
   * returns what each thread ran and when: each chunk, and each wait at the
   * barrier after a step (for benches; not for serving). On one thread, the
   * plan runs without a trace and the result is empty.
   */
  trace(plan: Plan, input: Tensor, seeds: readonly number[]): Promise<TracedChunk[]> {
    this.#check();
    return this.#exclusive(async () => {
      checkPlanLayout(plan, this.weightLayout, this.kind);
      if (!this.#pool) {
        await this.#run(plan, input, seeds);
        return [];
      }
      const threads = this.#pool.threads;
      // Per thread: every chunk of every step (at most threads x 16 per operation) and a barrier per step.
      const records = 2 + plan.steps.length + plan.ops.length * threads * 16;
      const buffer = new Float64Array(
        new SharedArrayBuffer(threads * records * TRACE_FIELDS * 8),
      );
      const done = new Int32Array(new SharedArrayBuffer(threads * 4));
      await this.#run(plan, input, seeds, { buffer, records, done });
      // Each worker writes its last barrier's record after leaving it, which
      // may be after this thread left: wait (microseconds) for its flag,
      // without blocking this thread's event loop.
      for (let t = 0; t < threads; t++) {
        const wait = Atomics.waitAsync(done, t, 0, 5000);
        if (wait.async && await wait.value === "timed-out") {
          throw new BackendError(`Thread ${t} did not finish its trace within 5 s of the run`);
        }
      }
      const chunks: TracedChunk[] = [];
      for (let t = 0; t < threads; t++) {
        const base = t * records * TRACE_FIELDS;
        for (let i = 1; i <= buffer[base]; i++) {
          const [op, step, start, end, thread] = buffer.subarray(
            base + i * TRACE_FIELDS,
            base + (i + 1) * TRACE_FIELDS,
          );
          const o = op >= 0 ? plan.ops[op] : null;
          chunks.push({
            name: o?.name ?? "barrier",
            kind: o?.kind ?? "barrier",
            op,
            step,
            thread,
            start,
            end,
          });
        }
      }
      return chunks;
    });
  }

  /**
   * Runs `plan` on the calling thread one operation at a time and returns
   * each operation's time in milliseconds (for benches; not for serving).
   * With `chunksOf` > 1, runs and times the chunks that `chunksOf` threads
   * would share instead, one by one, each with its step and the thread whose
   * list holds it (bench/thread_balance.ts replays them).
   */
  profile(plan: Plan, input: Tensor, chunksOf = 1): Promise<ProfiledChunk[]> {
    this.#check();
    return this.#exclusive(() => this.#profile(plan, input, chunksOf));
  }

  async #profile(plan: Plan, input: Tensor, chunksOf: number): Promise<ProfiledChunk[]> {
    checkPlanLayout(plan, this.weightLayout, this.kind);
    await this.#run(plan, input, new Array(plan.dropoutStreams).fill(1));
    const layout = this.#layout(plan);
    const seeds = new Array(plan.dropoutStreams).fill(1);
    // One thread's schedule has one chunk per operation; more threads' chunks run here one by one.
    const steps = chunksOf === 1 ? this.#serial(plan) : schedule(this.#kernels, plan, chunksOf);
    return steps.flatMap((lists, step) =>
      lists.flatMap((list, thread) =>
        list.map((chunk) => {
          const op = plan.ops[chunk.op];
          const start = performance.now();
          runChunk(this.#kernels, plan, layout, chunk, layout.scratch, seeds);
          return { name: op.name, kind: op.kind, ms: performance.now() - start, step, thread };
        })
      )
    );
  }

  /**
   * Moves to a new fixed-size memory (shared for the threads build) of `end` bytes: compiles the
   * kernels for its size, has every thread switch to it, and copies the
   * weights (the first `weightBytes`). A pool whose workers cannot switch is let go: the backend goes
   * on on one thread. The old memory stays in use if the new one cannot be
   * made.
   */
  async #move(end: number, weightBytes: number): Promise<void> {
    const pages = Math.ceil(end / PAGE);
    const shared = this.#memory.buffer instanceof SharedArrayBuffer;
    const compiled = await compileKernels(shared, pages);
    // Disposed while compiling: allocate nothing more.
    this.#check();
    const memory = allocate(pages, shared, pages);
    const kernels = instantiateKernels(compiled.module, memory, this.#kernels.gemm_variant(-1));
    if (this.#pool) {
      try {
        // The workers fault in the fresh pages from the far end while this thread copies.
        await this.#pool.rebind(compiled.module, memory, kernels, [WEIGHTS_AT, pages * PAGE]);
      } catch {
        // A worker that cannot switch cannot run with the others: go on alone
        // (unless dispose() let the pool go meanwhile).
        this.#pool?.dispose();
        this.#pool = null;
        if (!this.#disposed) this.#threads = 1;
      }
    }
    new Uint8Array(memory.buffer).set(new Uint8Array(this.#memory.buffer, 0, weightBytes));
    this.#memory = memory;
    this.#kernels = kernels;
  }

  #serial(plan: Plan): Schedule {
    let steps = this.#schedules.get(plan);
    if (!steps) {
      steps = schedule(this.#kernels, plan, 1);
      this.#schedules.set(plan, steps);
    }
    return steps;
  }

  #layout(plan: Plan): MemoryLayout {
    let layout = this.#layouts.get(plan);
    if (!layout) {
      layout = layoutOf(this.#kernels, plan, this.#weightFloats, this.threads);
      this.#layouts.set(plan, layout);
    }
    return layout;
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    this.#pool?.dispose();
    this.#pool = null;
    await Promise.resolve();
  }

  #check(): void {
    if (this.#disposed) throw new BackendError("The Wasm backend was disposed");
  }

  /** Grows a caller-module's memory (not fixed) to `end` bytes. */
  #grow(end: number): void {
    const have = this.#memory.buffer.byteLength;
    try {
      this.#memory.grow(Math.ceil((end - have) / PAGE));
    } catch (cause) {
      throw new MemoryLimitError(
        `Cannot grow the Wasm memory from ${mb(have)} to ${mb(end)} (${cause}): use a smaller ` +
          "batch or image, or fewer threads",
        { cause },
      );
    }
  }
}

/** Where `plan` lives in memory: weights | scratch x threads | arena. */
function layoutOf(
  kernels: KernelExports,
  plan: Plan,
  weightFloats: number,
  threads: number,
): MemoryLayout {
  const weights = WEIGHTS_AT;
  const scratch = align(weights + weightFloats * 4, 64);
  const perThread = scratchBytes(kernels, plan);
  const arena = align(scratch + perThread * threads, 64);
  return { weights, scratch, scratchBytes: perThread, arena };
}

/** The byte just past `plan`'s arena in `layout`: the memory a run needs. */
function planEnd(layout: MemoryLayout, plan: Plan): number {
  return layout.arena + plan.arenaSize * 4;
}

/** A new memory of `pages` pages that may grow to `maximum`. */
function allocate(pages: number, shared: boolean, maximum: number): WebAssembly.Memory {
  try {
    return new WebAssembly.Memory({ initial: pages, maximum, shared });
  } catch (cause) {
    throw new MemoryLimitError(
      `Cannot allocate ${mb(pages * PAGE)} of Wasm memory (${cause}): use a smaller batch or ` +
        "image, or fewer threads",
      { cause },
    );
  }
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Bytes in MiB, labelled so (1 MiB = 1,048,576 bytes). */
function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** The effective limit: `memoryLimit`, or Wasm32's 4 GiB when that is lower (no option raises it). */
function limitText(memoryLimit: number): string {
  return memoryLimit > MAX_WASM_MEMORY
    ? `${mb(MAX_WASM_MEMORY)} (the most a 32-bit Wasm memory can address)`
    : mb(memoryLimit);
}
