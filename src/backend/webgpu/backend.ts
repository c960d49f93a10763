/**
 * The WebGPU backend: the packed weight blob in one storage buffer (uploaded
 * once, again only after `weightsChanged()`), the activations in one arena
 * buffer laid out by the planner (so Inception's concatenation is free), and
 * WGSL kernels (`./shaders.ts`) compiled once per variant. A plan is lowered
 * once (`./program.ts`) to pipelines, parameter uniforms and bind groups,
 * cached; a forward call is one input upload, one command buffer with every
 * dispatch and the output copies, and one readback.
 *
 * Errors: device loss, validation, out-of-memory and shader compilation
 * failures surface as {@linkcode BackendError}; nothing waits on a lost device.
 *
 * @module
 */

import type { Plan, WeightLayout } from "../../graph/ops.ts";
import { BackendError } from "../../errors.ts";
import type { Tensor } from "../../tensor.ts";
import { type Backend, checkPlanLayout, copyInput } from "../backend.ts";
import {
  type LayerValues,
  packLayer,
  type RepackLayer,
  type StagedLayer,
  type SwappedLayer,
} from "../repack.ts";
import { compilePipeline, findAdapter, message, requestDevice, withErrorScopes } from "./device.ts";
import { dropoutMask } from "./dropout.ts";
import {
  arenaBufferBytes,
  type BindingLimits,
  type LoweredPlan,
  lowerPlan,
  mib,
} from "./program.ts";
import { PARAMS_BYTES } from "./shaders.ts";

/** Options of {@linkcode WebGpuBackend.create}. */
export interface WebGpuBackendOptions {
  /** Floats of packed weights to reserve. */
  weightFloats: number;
  /**
   * The layout of the model's weights (what its plans were made for): runs
   * of plans made for another are refused. None by default (op tests).
   */
  weightLayout?: WeightLayout | null;
  /** The adapter to request a device from (default: `navigator.gpu.requestAdapter()`). */
  adapter?: GPUAdapter;
  /** A device to use instead of requesting one; the backend then does not destroy it. */
  device?: GPUDevice;
  /**
   * Lower limits than the device's, to test the limit checks (the device's
   * own limits apply when larger values are given).
   */
  limits?: Partial<Pick<BindingLimits, "maxStorageBufferBindingSize" | "maxBufferSize">>;
}

/** A plan made runnable on this device. */
interface Program {
  readonly lowered: LoweredPlan;
  readonly pipelines: readonly GPUComputePipeline[];
  readonly bindGroups: readonly GPUBindGroup[];
  readonly uniforms: GPUBuffer;
  readonly mask: GPUBuffer | null;
  readonly maskData: Float32Array<ArrayBuffer>;
  readonly input: Float32Array<ArrayBuffer>;
  /** The arena the bind groups point into (a grown arena makes the program stale). */
  readonly arena: GPUBuffer;
}

/** Plans whose GPU objects stay cached (as the model's plan cache). */
const PROGRAM_CACHE = 8;

/**
 * Runs plans on WebGPU compute shaders (f32).
 *
 * @example
 * ```ts
 * import { WebGpuBackend } from "./backend.ts";
 * import { findAdapter } from "./device.ts";
 * if (await findAdapter()) {
 *   const backend = await WebGpuBackend.create({ weightFloats: 1024 });
 *   console.log(backend.kind); // "webgpu"
 *   await backend.dispose();
 * }
 * ```
 */
export class WebGpuBackend implements Backend {
  readonly kind = "webgpu" as const;
  readonly threads = 1;
  /** The layout of the model's weights the blob holds; null when made without one. */
  readonly weightLayout: WeightLayout | null;
  /** The device the backend runs on. */
  readonly device: GPUDevice;
  #ownsDevice: boolean;
  #limits: BindingLimits;
  #blob: Float32Array<ArrayBuffer>;
  #weights: GPUBuffer;
  #weightsDirty = true;
  #arena: GPUBuffer | null = null;
  #readback: GPUBuffer | null = null;
  #pipelines = new Map<string, Promise<GPUComputePipeline>>();
  #programs = new Map<Plan, Program>();
  #queue: Promise<unknown> = Promise.resolve();
  #lost: string | null = null;
  #lostSignal: Promise<never>;
  #disposed = false;

  private constructor(
    device: GPUDevice,
    ownsDevice: boolean,
    limits: BindingLimits,
    blob: Float32Array<ArrayBuffer>,
    weights: GPUBuffer,
    weightLayout: WeightLayout | null,
  ) {
    this.device = device;
    this.weightLayout = weightLayout;
    this.#ownsDevice = ownsDevice;
    this.#limits = limits;
    this.#blob = blob;
    this.#weights = weights;
    this.#lostSignal = device.lost.then((info) => {
      this.#lost = [info.reason, info.message].filter(Boolean).join(": ") || "no reason given";
      throw this.#lostError();
    });
    this.#lostSignal.catch(() => {});
  }

  /**
   * Requests a device (unless one is given) and allocates the weight buffer.
   *
   * @param options Weight size, adapter or device, and test limits.
   * @returns The backend.
   * @throws {BackendError} Without WebGPU or an adapter, when the weights exceed
   * `maxBufferSize`, or when the device is out of memory.
   *
   * @example
   * ```ts
   * import { WebGpuBackend } from "./backend.ts";
   * import { findAdapter } from "./device.ts";
   * const adapter = await findAdapter();
   * if (adapter) {
   *   const backend = await WebGpuBackend.create({ weightFloats: 0, adapter });
   *   await backend.dispose();
   * }
   * ```
   */
  static async create(options: WebGpuBackendOptions): Promise<WebGpuBackend> {
    let device = options.device;
    if (!device) {
      const adapter = options.adapter ?? await findAdapter();
      if (!adapter) {
        throw new BackendError(
          "WebGPU is not available: navigator.gpu is missing or returned no adapter",
        );
      }
      device = await requestDevice(adapter);
    }
    const dl = device.limits;
    const limits: BindingLimits = {
      maxStorageBufferBindingSize: Math.min(
        dl.maxStorageBufferBindingSize,
        options.limits?.maxStorageBufferBindingSize ?? Infinity,
      ),
      maxBufferSize: Math.min(dl.maxBufferSize, options.limits?.maxBufferSize ?? Infinity),
      minStorageBufferOffsetAlignment: dl.minStorageBufferOffsetAlignment,
      maxComputeWorkgroupsPerDimension: dl.maxComputeWorkgroupsPerDimension,
    };
    const weightBytes = Math.max(16, Math.ceil(options.weightFloats / 4) * 16);
    const release = () => options.device ? undefined : device.destroy();
    if (weightBytes > limits.maxBufferSize) {
      release();
      throw new BackendError(
        `The weights need a ${mib(weightBytes)} GPU buffer but the device's maxBufferSize is ` +
          `${mib(limits.maxBufferSize)}`,
      );
    }
    try {
      const weights = await withErrorScopes(
        device,
        "Allocating the GPU weight buffer",
        () =>
          device.createBuffer({
            label: "weights",
            size: weightBytes,
            usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
          }),
      );
      const blob = new Float32Array(options.weightFloats);
      const layout = options.weightLayout ?? null;
      return new WebGpuBackend(device, !options.device, limits, blob, weights, layout);
    } catch (error) {
      release();
      throw error;
    }
  }

  weights(): Float32Array {
    this.#check();
    return this.#blob;
  }

  weightsChanged(): void {
    this.#weightsDirty = true;
  }

  /** Stages nothing: the model packs every layer and the blob is uploaded again. */
  stageLayers(_layers: readonly RepackLayer[], floats: number): number {
    return floats;
  }

  /** No layer is staged. */
  staged(_key: string): StagedLayer | null {
    return null;
  }

  /** Nothing is staged, so nothing to swap. */
  swap(_layers: readonly SwappedLayer[]): void {}

  /** Packs the layers in TypeScript; the blob is uploaded again before the next run. */
  repack(layers: readonly LayerValues[]): Promise<void> {
    const blob = this.weights();
    for (const { layer, tensors } of layers) packLayer(blob, layer, tensors!);
    this.weightsChanged();
    return Promise.resolve();
  }

  /** No optimizer kernels. */
  get updatesParameters(): boolean {
    return false;
  }

  /** No weight kernels: training runs on the Wasm backend. */
  runWeights(_plan: Plan): Promise<void> {
    return Promise.reject(
      new BackendError(
        'Training runs on the Wasm backend: create the model with backend: "wasm"',
      ),
    );
  }

  /** Training runs on the Wasm kernels only. */
  growWeights(_floats: number): Promise<void> {
    return Promise.reject(
      new BackendError(
        'Training runs on the Wasm backend: create the model with backend: "wasm"',
      ),
    );
  }

  /** The device is ready once created. */
  ready(): Promise<void> {
    return Promise.resolve();
  }

  memoryBytes(): number {
    let bytes = this.#weights.size + (this.#arena?.size ?? 0) + (this.#readback?.size ?? 0);
    for (const p of this.#programs.values()) bytes += p.uniforms.size + (p.mask?.size ?? 0);
    return bytes;
  }

  /**
   * Runs `plan` on an NCHW `input`.
   *
   * @param plan The plan.
   * @param input The input batch, NCHW.
   * @param seeds One u32 per dropout stream of the plan.
   * @returns The plan's outputs, dense.
   * @throws {BackendError} When disposed, when the device is lost, when a buffer exceeds the
   * device's limits, or when the device reports an error.
   */
  run(plan: Plan, input: Tensor, seeds: readonly number[]): Promise<Float32Array[]> {
    try {
      this.#check();
    } catch (error) {
      return Promise.reject(error);
    }
    const result = this.#queue.then(() =>
      this.#run(plan, input, seeds).catch(async (error) => {
        // A destroyed or lost device fails the next calls before `lost` settles: say why.
        if (await this.#lostSoon()) throw this.#lostError();
        throw error;
      })
    );
    this.#queue = result.catch(() => {});
    return result;
  }

  async #run(plan: Plan, input: Tensor, seeds: readonly number[]): Promise<Float32Array[]> {
    this.#check();
    checkPlanLayout(plan, this.weightLayout, this.kind);
    const program = await this.#program(plan);
    const device = this.device, queue = device.queue;
    const arena = program.arena;
    const outputs = plan.outputs.map(({ buffer }) => plan.buffers[buffer]);
    const readBytes = outputs.reduce((sum, b) => sum + b.size * 4, 0);
    const readback = await this.#readbackBuffer(readBytes);
    await withErrorScopes(device, "Running the plan on WebGPU", () => {
      if (this.#weightsDirty) {
        // Deno 2.9 panics on an empty writeBuffer.
        if (this.#blob.length > 0) queue.writeBuffer(this.#weights, 0, this.#blob);
        this.#weightsDirty = false;
      }
      copyInput(plan, input, program.input, 0);
      queue.writeBuffer(arena, plan.buffers[plan.input].offset * 4, program.input);
      if (program.mask) {
        for (const { op, offset } of program.lowered.masks) {
          dropoutMask(program.maskData, offset, op.count, op.p, seeds[op.stream]);
        }
        queue.writeBuffer(program.mask, 0, program.maskData);
      }
      const encoder = device.createCommandEncoder({ label: "forward" });
      const pass = encoder.beginComputePass({ label: "forward" });
      program.lowered.dispatches.forEach((d, i) => {
        pass.setPipeline(program.pipelines[i]);
        pass.setBindGroup(0, program.bindGroups[i]);
        pass.dispatchWorkgroups(...d.groups);
      });
      pass.end();
      let at = 0;
      for (const b of outputs) {
        encoder.copyBufferToBuffer(arena, b.offset * 4, readback, at, b.size * 4);
        at += b.size * 4;
      }
      queue.submit([encoder.finish()]);
    });
    const mapped = readback.mapAsync(GPUMapMode.READ, 0, readBytes);
    mapped.catch(() => {});
    try {
      await Promise.race([mapped, this.#lostSignal]);
    } catch (cause) {
      if (cause instanceof BackendError) throw cause;
      throw new BackendError(`Reading the outputs back from the GPU failed: ${message(cause)}`, {
        cause,
      });
    }
    const data = new Float32Array(readback.getMappedRange(0, readBytes));
    let at = 0;
    const result = outputs.map((b) => data.slice(at, at += b.size));
    readback.unmap();
    return result;
  }

  /** The cached program of `plan`, built (or rebuilt, after the arena grew) on demand. */
  async #program(plan: Plan): Promise<Program> {
    const cached = this.#programs.get(plan);
    if (cached && cached.arena === this.#arena) {
      this.#programs.delete(plan);
      this.#programs.set(plan, cached);
      return cached;
    }
    const lowered = lowerPlan(plan, this.#limits);
    const arena = await this.#arenaBuffer(arenaBufferBytes(plan));
    const pipelines = await Promise.all(lowered.dispatches.map((d) => this.#pipeline(d)));
    const device = this.device;
    const slot = Math.ceil(PARAMS_BYTES / device.limits.minUniformBufferOffsetAlignment) *
      device.limits.minUniformBufferOffsetAlignment;
    const program = await withErrorScopes(device, "Preparing the plan's GPU objects", () => {
      const uniforms = device.createBuffer({
        label: "params",
        size: Math.max(1, lowered.dispatches.length) * slot,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      const params = new Uint8Array(uniforms.size);
      lowered.dispatches.forEach((d, i) => params.set(new Uint8Array(d.params.buffer), i * slot));
      device.queue.writeBuffer(uniforms, 0, params);
      const mask = lowered.maskFloats > 0
        ? device.createBuffer({
          label: "dropout masks",
          size: lowered.maskFloats * 4,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        })
        : null;
      const buffers = { arena, weights: this.#weights, mask };
      const bindGroups = lowered.dispatches.map((d, i) =>
        device.createBindGroup({
          label: d.kernel,
          layout: pipelines[i].getBindGroupLayout(0),
          entries: [
            ...[...d.bindings].map(([binding, w]) => ({
              binding,
              resource: w.size > 0
                ? { buffer: buffers[w.buffer]!, offset: w.offset, size: w.size }
                : { buffer: buffers[w.buffer]! },
            })),
            { binding: 3, resource: { buffer: uniforms, offset: i * slot, size: PARAMS_BYTES } },
          ],
        })
      );
      return {
        lowered,
        pipelines,
        bindGroups,
        uniforms,
        mask,
        maskData: new Float32Array(lowered.maskFloats),
        input: new Float32Array(plan.buffers[plan.input].size),
        arena,
      };
    });
    this.#forget(plan);
    this.#programs.set(plan, program);
    if (this.#programs.size > PROGRAM_CACHE) this.#forget(this.#programs.keys().next().value!);
    return program;
  }

  #forget(plan: Plan): void {
    const program = this.#programs.get(plan);
    if (!program) return;
    this.#programs.delete(plan);
    program.uniforms.destroy();
    program.mask?.destroy();
  }

  #pipeline(d: LoweredPlan["dispatches"][number]): Promise<GPUComputePipeline> {
    let pipeline = this.#pipelines.get(d.kernel);
    if (!pipeline) {
      pipeline = compilePipeline(this.device, d.kernel, d.code());
      this.#pipelines.set(d.kernel, pipeline);
      pipeline.catch(() => this.#pipelines.delete(d.kernel));
    }
    return pipeline;
  }

  /** The pooled arena, grown (and every cached program dropped) when `bytes` exceed it. */
  async #arenaBuffer(bytes: number): Promise<GPUBuffer> {
    if (this.#arena && this.#arena.size >= bytes) return this.#arena;
    for (const plan of [...this.#programs.keys()]) this.#forget(plan);
    this.#arena?.destroy();
    this.#arena = null;
    this.#arena = await withErrorScopes(
      this.device,
      `Allocating a ${mib(bytes)} GPU activation buffer`,
      () =>
        this.device.createBuffer({
          label: "arena",
          size: bytes,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
        }),
    );
    return this.#arena;
  }

  async #readbackBuffer(bytes: number): Promise<GPUBuffer> {
    if (this.#readback && this.#readback.size >= bytes) return this.#readback;
    this.#readback?.destroy();
    this.#readback = null;
    this.#readback = await withErrorScopes(
      this.device,
      "Allocating the readback buffer",
      () =>
        this.device.createBuffer({
          label: "readback",
          size: Math.ceil(bytes / 256) * 256,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        }),
    );
    return this.#readback;
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#queue;
    for (const plan of [...this.#programs.keys()]) this.#forget(plan);
    this.#arena?.destroy();
    this.#readback?.destroy();
    this.#weights.destroy();
    this.#arena = this.#readback = null;
    if (this.#ownsDevice) this.device.destroy();
  }

  #check(): void {
    if (this.#disposed) throw new BackendError("The WebGPU backend was disposed");
    if (this.#lost !== null) throw this.#lostError();
  }

  /** Whether the device is lost, or reports the loss within a task. */
  async #lostSoon(): Promise<boolean> {
    const tick = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 0));
    return this.#lost !== null ||
      await Promise.race([this.#lostSignal.catch(() => true), tick]);
  }

  #lostError(): BackendError {
    return new BackendError(
      `The WebGPU device was lost (${this.#lost}): create a new backend or model`,
    );
  }
}
