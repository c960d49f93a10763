/**
 * GoogLeNet (Inception v1) as `tools/reference/seed_googlenet.py` defines it,
 * on the Wasm SIMD kernels.
 *
 * @module
 */

import type { Plan, WinogradVariant } from "../graph/ops.ts";
import { PlanBuilder, type Value } from "../graph/planner.ts";
import type { Backend } from "../backend/backend.ts";
import { packedSize, unpackGemm, winogradSize } from "../backend/pack.ts";
import { type BackendChoice, createBackend } from "../backend/select.ts";
import { BackendError, DisposedError, ShapeError, StateDictError } from "../errors.ts";
import { shapeSize, Tensor } from "../tensor.ts";
import {
  BasicConv2d,
  Conv2d,
  type GemmLayer,
  Inception,
  InceptionAux,
  Linear,
  lowerAdaptiveAvgPool,
  MaxPool2d,
  packLayer,
  pushDropout,
} from "./layers.ts";
import { Random } from "./random.ts";
import { TRANSFORM_INPUT, type Variant, variantByName, type VariantName } from "./variant.ts";

/** Options of {@linkcode GoogLeNet.create}. */
export interface GoogLeNetOptions {
  /** Classes of the final layer (default 1000). */
  numClasses?: number;
  /** Build the two auxiliary heads, used in training mode (default true). */
  auxLogits?: boolean;
  /**
   * Initialise like the reference's `_initialize_weights` (Kaiming normal
   * fan-out for convolutions, N(0, 0.01) for linear layers, zero biases)
   * instead of PyTorch's default initialisation (default false).
   */
  initWeights?: boolean;
  /**
   * Which definition to build: `"seed"`, the project's reference (default), or
   * `"torchvision"`, torchvision's `googlenet` (BatchNorm folded at load, 3x3
   * branch3), whose ImageNet weights are `googlenet-1378be20.pth`.
   */
  variant?: VariantName;
  /**
   * Re-normalise ImageNet-normalised input to torchvision's [-1, 1] scheme
   * (torchvision's `transform_input`); default true for `"torchvision"`,
   * false for `"seed"`.
   */
  transformInput?: boolean;
  /**
   * Weights to start with instead of an initialisation (PyTorch names and
   * layouts, loaded strictly as by {@linkcode GoogLeNet.loadStateDict}).
   */
  stateDict?: StateDictInput;
  /** Seed of the weight initialisation and the dropout masks (default 0). */
  seed?: number;
  /**
   * Where to run: `"auto"` (default) takes WebGPU on a hardware adapter and the
   * Wasm SIMD kernels otherwise (no adapter, or a software one such as llvmpipe);
   * `"webgpu"` insists (a `BackendError` without an adapter); `"wasm"` never
   * touches WebGPU.
   */
  backend?: BackendChoice;
  /** Wasm threads, including the calling one (default `navigator.hardwareConcurrency`). */
  threads?: number;
  /** A precompiled kernel module, for runtimes that cannot compile Wasm at run time. */
  wasmModule?: WebAssembly.Module;
  /** Most bytes of Wasm memory the model may use (default 2 GiB). */
  memoryLimit?: number;
  /**
   * What the Wasm kernels trade: `"memory"` (default) keeps the 3x3
   * convolutions of the 14x14 and 7x7 maps in F(2x2, 3x3) Winograd form, 60 MB
   * of Wasm memory at batch 1 (under edge runtimes' 64 MiB); `"speed"` keeps
   * every 3x3 convolution in F(4x4, 3x3) form, 4-10 % faster for 23 MB more.
   */
  prefer?: Preference;
}

/** The trade-off of {@linkcode GoogLeNetOptions.prefer}. */
export type Preference = "memory" | "speed";

/** Options of {@linkcode GoogLeNet.loadStateDict}. */
export interface LoadStateDictOptions {
  /** Require exactly the model's keys (default true), as PyTorch's `strict`. */
  strict?: boolean;
}

/** Options of {@linkcode GoogLeNet.forward}. */
export interface ForwardOptions {
  /** In training mode, apply dropout (default true); false makes it the identity. */
  dropout?: boolean;
}

/** A state dict: PyTorch's key names and layouts. */
export type StateDictInput =
  | ReadonlyMap<string, Tensor>
  | Readonly<Record<string, Tensor>>;

/** What `forward` returns in training mode with auxiliary heads: `[logits, aux2, aux1]`. */
export type TrainingOutputs = [logits: Tensor, aux2: Tensor, aux1: Tensor];

const DEFAULT_MEMORY_LIMIT = 2 * 1024 * 1024 * 1024;
const PLAN_CACHE = 8;

/**
 * GoogLeNet with the reference's layers, hyper-parameters and state-dict keys.
 * A new model starts in eval mode (this is an inference runtime; PyTorch starts
 * in training mode): call {@linkcode GoogLeNet.train} for dropout and the aux heads.
 *
 * @example
 * ```ts
 * import { GoogLeNet, Tensor } from "../../mod.ts";
 * const model = await GoogLeNet.create({ seed: 1, threads: 1 });
 * const logits = (await model.forward(Tensor.zeros([1, 3, 224, 224]))) as Tensor; // eval mode
 * console.log(logits.shape); // [1, 1000]
 * await model.dispose();
 * ```
 */
export class GoogLeNet {
  /** Classes of the final layer. */
  readonly numClasses: number;
  /** Whether the auxiliary heads exist. */
  readonly auxLogits: boolean;
  /** The definition built (`"seed"` or `"torchvision"`). */
  readonly variant: VariantName;
  /** Whether the input is re-normalised as torchvision's `transform_input`. */
  readonly transformInput: boolean;
  /** The memory / speed trade-off the weights were laid out for. */
  readonly prefer: Preference;
  private readonly conv1: BasicConv2d;
  private readonly maxpool1: MaxPool2d;
  private readonly conv2: BasicConv2d;
  private readonly conv3: BasicConv2d;
  private readonly maxpool2: MaxPool2d;
  private readonly inception3a: Inception;
  private readonly inception3b: Inception;
  private readonly maxpool3: MaxPool2d;
  private readonly inception4a: Inception;
  private readonly inception4b: Inception;
  private readonly inception4c: Inception;
  private readonly inception4d: Inception;
  private readonly inception4e: Inception;
  private readonly maxpool4: MaxPool2d;
  private readonly inception5a: Inception;
  private readonly inception5b: Inception;
  private readonly aux1: InceptionAux | null;
  private readonly aux2: InceptionAux | null;
  private readonly fc: Linear;
  /** Dropout probability before `fc` in training mode (0.4 seed, 0.2 torchvision). */
  readonly dropoutP: number;

  #backend: Backend | null = null;
  #layers: GemmLayer[];
  #weightFloats: number;
  #training = false;
  /** Draws the initial weights. */
  #random: Random;
  /** Draws the dropout seeds: its own stream, so masks do not depend on how the weights were set. */
  #dropoutRandom: Random;
  #plans = new Map<string, Plan>();
  #queue: Promise<unknown> = Promise.resolve();

  #variant: Variant;

  private constructor(
    numClasses: number,
    auxLogits: boolean,
    seed: number,
    variant: Variant,
    transformInput: boolean,
    prefer: Preference,
  ) {
    this.numClasses = numClasses;
    this.prefer = prefer;
    this.auxLogits = auxLogits;
    this.variant = variant.name;
    this.#variant = variant;
    this.transformInput = transformInput;
    this.dropoutP = variant.dropout;
    this.#random = new Random(seed);
    this.#dropoutRandom = new Random(seed ^ 0x5bd1e995);
    const v = variant;
    this.conv1 = new BasicConv2d("conv1", 3, 64, { kernelSize: 7, stride: 2, padding: 3 }, v);
    this.maxpool1 = new MaxPool2d("maxpool1", 3, 2, 0, true);
    this.conv2 = new BasicConv2d("conv2", 64, 64, { kernelSize: 1 }, v);
    this.conv3 = new BasicConv2d("conv3", 64, 192, { kernelSize: 3, padding: 1 }, v);
    this.maxpool2 = new MaxPool2d("maxpool2", 3, 2, 0, true);
    this.inception3a = new Inception("inception3a", 192, 64, 96, 128, 16, 32, 32, v);
    this.inception3b = new Inception("inception3b", 256, 128, 128, 192, 32, 96, 64, v);
    this.maxpool3 = new MaxPool2d("maxpool3", 3, 2, 0, true);
    this.inception4a = new Inception("inception4a", 480, 192, 96, 208, 16, 48, 64, v);
    this.inception4b = new Inception("inception4b", 512, 160, 112, 224, 24, 64, 64, v);
    this.inception4c = new Inception("inception4c", 512, 128, 128, 256, 24, 64, 64, v);
    this.inception4d = new Inception("inception4d", 512, 112, 144, 288, 32, 64, 64, v);
    this.inception4e = new Inception("inception4e", 528, 256, 160, 320, 32, 128, 128, v);
    this.maxpool4 = new MaxPool2d("maxpool4", v.maxpool4Kernel, 2, 0, true);
    this.inception5a = new Inception("inception5a", 832, 256, 160, 320, 32, 128, 128, v);
    this.inception5b = new Inception("inception5b", 832, 384, 192, 384, 48, 128, 128, v);
    this.aux1 = auxLogits ? new InceptionAux("aux1", 512, numClasses, v) : null;
    this.aux2 = auxLogits ? new InceptionAux("aux2", 528, numClasses, v) : null;
    this.fc = new Linear("fc", 1024, numClasses);

    // Parameters in PyTorch's registration order, packed back to back.
    const blocks = [
      this.inception3a,
      this.inception3b,
      this.inception4a,
      this.inception4b,
      this.inception4c,
      this.inception4d,
      this.inception4e,
      this.inception5a,
      this.inception5b,
    ];
    this.#layers = [
      this.conv1.conv,
      this.conv2.conv,
      this.conv3.conv,
      ...blocks.flatMap((b) => [
        b.branch1.conv,
        b.branch2[0].conv,
        b.branch2[1].conv,
        b.branch3[0].conv,
        b.branch3[1].conv,
        b.branch4[1].conv,
      ]),
      ...[this.aux1, this.aux2].flatMap((a) => a ? [a.conv.conv, a.fc1, a.fc2] : []),
      this.fc,
    ];
    // The blob keeps each block's 1x1 convolutions of the block input adjacent,
    // so that they run as one GEMM (see Inception.fusable).
    const movedUp = new Set<GemmLayer>(
      blocks.flatMap((b) => [b.branch2[0].conv, b.branch3[0].conv]),
    );
    const blobOrder: GemmLayer[] = [];
    for (const layer of this.#layers) {
      const block = blocks.find((b) => b.branch1.conv === layer);
      if (block) blobOrder.push(layer, block.branch2[0].conv, block.branch3[0].conv);
      else if (!movedUp.has(layer)) blobOrder.push(layer);
    }
    let offset = 0;
    for (const layer of blobOrder) {
      layer.packed = { offset, k: layer.k, n: layer.n };
      offset += packedSize(layer.k, layer.n);
      const variant = layer instanceof Conv2d ? winogradVariant(layer, prefer) : null;
      if (layer instanceof Conv2d && variant) {
        layer.winograd = { offset, k: layer.k, n: layer.n, variant };
        offset += winogradSize(layer.inChannels, layer.n, variant);
      }
    }
    this.#weightFloats = offset;
  }

  /**
   * Builds the model, its backend and its initial weights.
   *
   * @param options Architecture, initialisation and runtime options.
   * @returns A model in eval mode.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ auxLogits: false, threads: 1 });
   * console.log(model.stateDict().size); // 116
   * await model.dispose();
   * ```
   */
  static async create(options: GoogLeNetOptions = {}): Promise<GoogLeNet> {
    const numClasses = options.numClasses ?? 1000;
    if (!Number.isSafeInteger(numClasses) || numClasses < 1) {
      throw new ShapeError(`numClasses must be a positive integer, got ${numClasses}`);
    }
    const threads = options.threads ?? navigatorThreads();
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new BackendError(`threads must be a positive integer, got ${threads}`);
    }
    const memoryLimit = options.memoryLimit ?? DEFAULT_MEMORY_LIMIT;
    if (typeof memoryLimit !== "number" || !(memoryLimit > 0)) {
      throw new BackendError(`memoryLimit must be a positive number of bytes, got ${memoryLimit}`);
    }
    const variantName = options.variant ?? "seed";
    if (variantName !== "seed" && variantName !== "torchvision") {
      throw new ShapeError(
        `variant must be "seed" or "torchvision", got ${JSON.stringify(variantName)}`,
      );
    }
    const variant = variantByName(variantName);
    const prefer = options.prefer ?? "memory";
    if (prefer !== "memory" && prefer !== "speed") {
      throw new BackendError(`prefer must be "memory" or "speed", got ${JSON.stringify(prefer)}`);
    }
    const model = new GoogLeNet(
      numClasses,
      options.auxLogits ?? true,
      options.seed ?? 0,
      variant,
      options.transformInput ?? variant.transformInput,
      prefer,
    );
    model.#backend = await createBackend(options.backend ?? "auto", {
      weightFloats: model.#weightFloats,
      threads,
      wasmModule: options.wasmModule,
      memoryLimit,
      // Workers may be refused (no read permission for their modules): with the
      // default thread count, run on the calling thread; an explicit count is an error.
      threadsOptional: options.threads === undefined,
      // The eval plan of one 224x224 image: what a model is most often first run on.
      reserve: model.#plan(1, 224, 224, false, false),
    });
    try {
      // The Wasm backend's workers boot while the weights are packed.
      if (options.stateDict) model.loadStateDict(options.stateDict);
      else model.#initialize(options.initWeights ?? false);
      await model.#backend.ready();
    } catch (error) {
      await model.dispose();
      throw error;
    }
    return model;
  }

  /** Whether the model is in training mode. */
  get training(): boolean {
    return this.#training;
  }

  /** The backend running the model. */
  get backend(): Backend {
    return this.#live();
  }

  /**
   * Sets training mode (dropout, and the aux heads' outputs) or eval mode.
   *
   * @param mode True for training mode.
   * @returns This model.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1 });
   * console.log(model.train().training); // true
   * await model.dispose();
   * ```
   */
  train(mode = true): this {
    this.#training = mode;
    return this;
  }

  /**
   * Sets eval mode: `forward` returns the logits alone, without dropout.
   *
   * @returns This model.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1 });
   * console.log(model.train().eval().training); // false
   * await model.dispose();
   * ```
   */
  eval(): this {
    return this.train(false);
  }

  /**
   * The parameters under PyTorch's key names and layouts (conv OIHW, linear
   * [out, in]), in PyTorch's order; copies, unpacked from the kernels' layout.
   *
   * @returns A new map of key to tensor.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1 });
   * console.log(model.stateDict().get("conv1.conv.weight")?.shape); // [64, 3, 7, 7]
   * await model.dispose();
   * ```
   */
  stateDict(): Map<string, Tensor> {
    const blob = this.#live().weights();
    const out = new Map<string, Tensor>();
    for (const layer of this.#layers) {
      for (const [key, t] of unpackLayer(blob, layer)) out.set(key, t);
    }
    return out;
  }

  /**
   * Loads parameters with PyTorch's key names and layouts, all or nothing: on
   * any error the model keeps its previous weights.
   *
   * @param stateDict A map or record of key to tensor.
   * @param options `strict` (default true) rejects missing and unexpected keys.
   * @throws {StateDictError} Naming the key, and both shapes for a shape mismatch.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const a = await GoogLeNet.create({ seed: 1, threads: 1 });
   * const b = await GoogLeNet.create({ seed: 2, threads: 1 });
   * b.loadStateDict(a.stateDict());
   * await a.dispose();
   * await b.dispose();
   * ```
   */
  loadStateDict(stateDict: StateDictInput, options: LoadStateDictOptions = {}): void {
    const strict = options.strict ?? true;
    const entries = toMap(stateDict);
    const shapes = new Map(this.#layers.flatMap((l) => l.entries));
    const problems: string[] = [];
    if (strict) {
      const missing = [...shapes.keys()].filter((k) => !entries.has(k));
      const unexpected = [...entries.keys()].filter((k) => !shapes.has(k) && !this.#ignorable(k));
      if (missing.length) problems.push(`missing keys ${list(missing)}`);
      if (unexpected.length) problems.push(`unexpected keys ${list(unexpected)}`);
    }
    for (const [key, shape] of shapes) {
      const t = entries.get(key);
      const problem = t === undefined ? null : checkTensor(t, shape);
      if (problem) problems.push(`"${key}": ${problem}`);
    }
    if (problems.length) {
      throw new StateDictError(
        `Cannot load the state dict (nothing was changed): ${problems.join("; ")}`,
      );
    }
    const blob = this.#live().weights();
    for (const layer of this.#layers) {
      const given = layer.entries.filter(([key]) => entries.has(key));
      if (given.length === 0) continue;
      // A non-strict partial update keeps the layer's other entries.
      const current = given.length < layer.entries.length ? unpackLayer(blob, layer) : null;
      const { weight, bias } = layer.fold((key) => (entries.get(key) ?? current!.get(key)!).data);
      packLayer(blob, layer, weight, bias);
    }
    this.#backend!.weightsChanged();
  }

  /** Keys a strict load may carry without a matching parameter. */
  #ignorable(key: string): boolean {
    // torchvision's pretrained file always holds the aux heads; googlenet(weights=...) drops them.
    return this.#variant.name === "torchvision" && !this.auxLogits && /^aux[12]\./.test(key);
  }

  /**
   * Runs the network on a batch `[N, 3, H, W]` (NCHW, like PyTorch).
   *
   * @param input The batch; any N >= 1 and any H, W the network accepts.
   * @param options Dropout control in training mode.
   * @returns Eval mode: logits `[N, numClasses]`. Training mode with aux heads:
   * `[logits, aux2, aux1]`.
   * @throws {ShapeError} For a wrong rank, channel count or a too small image.
   *
   * @example
   * ```ts
   * import { GoogLeNet, Tensor } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1 });
   * const logits = (await model.forward(Tensor.zeros([2, 3, 160, 192]))) as Tensor;
   * console.log(logits.shape); // [2, 1000]
   * await model.dispose();
   * ```
   */
  forward(input: Tensor, options: ForwardOptions = {}): Promise<Tensor | TrainingOutputs> {
    const backend = this.#live();
    const [n, h, w] = checkInput(input);
    const training = this.#training;
    const dropout = training && (options.dropout ?? true);
    const plan = this.#plan(n, h, w, training && this.auxLogits, dropout);
    const seeds = Array.from(
      { length: plan.dropoutStreams },
      () => this.#dropoutRandom.nextUint32(),
    );
    const result = this.#queue.then(async () => {
      if (this.#backend === null) {
        throw new DisposedError("GoogLeNet was disposed while a forward call waited");
      }
      const outputs = await backend.run(plan, input, seeds);
      const tensors = outputs.map((data, i) => new Tensor(data, plan.outputs[i].shape));
      return tensors.length === 1 ? tensors[0] : (tensors as TrainingOutputs);
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /**
   * Releases the backend (workers, memory, GPU buffers). Any later call throws
   * {@linkcode DisposedError}.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1 });
   * await model.dispose();
   * ```
   */
  async dispose(): Promise<void> {
    const backend = this.#backend;
    if (!backend) return;
    await this.#queue;
    this.#backend = null;
    this.#plans.clear();
    await backend.dispose();
  }

  #live(): Backend {
    if (!this.#backend) throw new DisposedError("GoogLeNet was disposed: create a new model");
    return this.#backend;
  }

  #initialize(referenceInit: boolean): void {
    const blob = this.#live().weights();
    for (const layer of this.#layers) {
      const values = new Map<string, Float32Array>();
      for (const [key, shape] of layer.entries) {
        values.set(key, this.#initialValue(layer, key, shape, referenceInit));
      }
      const { weight, bias } = layer.fold((key) => values.get(key)!);
      packLayer(blob, layer, weight, bias);
    }
    this.#backend!.weightsChanged();
  }

  #initialValue(
    layer: GemmLayer,
    key: string,
    shape: readonly number[],
    referenceInit: boolean,
  ): Float32Array {
    const size = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(size);
    const isWeight = shape.length >= 2;
    if (key.endsWith("running_var") || (key.endsWith(".bn.weight"))) return out.fill(1);
    if (key.includes(".bn.")) return out; // bias, running_mean, num_batches_tracked
    if (referenceInit) {
      // The reference's _initialize_weights: Kaiming normal (fan_out, ReLU) convs, N(0, 0.01) linears, zero biases.
      if (!isWeight) return out;
      const std = layer instanceof Conv2d ? Math.sqrt(2 / layer.fanOut) : 0.01;
      return this.#random.normal(out, 0, std);
    }
    // PyTorch's default: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias alike.
    const bound = 1 / Math.sqrt(layer.k);
    return this.#random.uniform(out, -bound, bound);
  }

  /**
   * The compiled plan `forward` runs for an input of `shape` in the current
   * mode: the operations, in order, and the arena layout. For benches and tools.
   *
   * @param shape The input shape `[N, 3, H, W]`.
   * @returns The plan (cached per shape and mode).
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ auxLogits: false, threads: 1 });
   * console.log(model.plan([1, 3, 224, 224]).ops.length); // 54
   * await model.dispose();
   * ```
   */
  plan(shape: readonly number[]): Plan {
    this.#live();
    const [n, h, w] = checkShape(shape);
    return this.#plan(n, h, w, this.#training && this.auxLogits, this.#training);
  }

  #plan(n: number, h: number, w: number, aux: boolean, dropout: boolean): Plan {
    const key = `${n}x${h}x${w}:${aux}:${dropout}`;
    let plan = this.#plans.get(key);
    if (plan) {
      this.#plans.delete(key);
      this.#plans.set(key, plan);
      return plan;
    }
    plan = this.#lower(n, h, w, aux, dropout);
    this.#plans.set(key, plan);
    if (this.#plans.size > PLAN_CACHE) this.#plans.delete(this.#plans.keys().next().value!);
    return plan;
  }

  #lower(n: number, h: number, w: number, aux: boolean, dropout: boolean): Plan {
    const b = new PlanBuilder();
    const input = b.alloc(n, h, w, 3, "input");
    let x: Value = this.conv1.lower(b, input);
    x = this.maxpool1.lower(b, x);
    x = this.conv2.lower(b, x);
    x = this.conv3.lower(b, x);
    x = this.maxpool2.lower(b, x);
    x = this.inception3a.lower(b, x);
    x = this.inception3b.lower(b, x);
    x = this.maxpool3.lower(b, x);
    x = this.inception4a.lower(b, x);
    const aux1 = aux ? this.aux1!.lower(b, x, dropout) : null;
    x = this.inception4b.lower(b, x);
    x = this.inception4c.lower(b, x);
    x = this.inception4d.lower(b, x);
    const aux2 = aux ? this.aux2!.lower(b, x, dropout) : null;
    x = this.inception4e.lower(b, x);
    x = this.maxpool4.lower(b, x);
    x = this.inception5a.lower(b, x);
    x = this.inception5b.lower(b, x);
    const pooled = lowerAdaptiveAvgPool(b, x, 1, 1, "avgpool");
    if (dropout) pushDropout(b, pooled, this.dropoutP, "dropout");
    const logits = this.fc.lower(b, pooled);
    const shape = [n, this.numClasses];
    const outputs = [{ value: logits, shape }];
    if (aux1 && aux2) outputs.push({ value: aux2, shape }, { value: aux1, shape });
    return b.build(input, outputs, this.transformInput ? TRANSFORM_INPUT : null);
  }
}

/**
 * Which Winograd form, if any, a convolution keeps beside its GEMM weights
 * (chosen by its map size for a 224x224 input; every form runs at any size).
 * Measured on one thread at 224x224:
 * - 3x3 on 56x56 and 28x28 maps (conv3, inception3*): F(4x4, 3x3), 2.8-3x
 *   faster than the direct GEMM.
 * - 3x3 on 14x14 and 7x7 maps (inception4*, inception5*): F(2x2, 3x3) when
 *   preferring memory: weights 16/9 instead of 36/9 the kernel's size, 23 MB
 *   less, and 11-18 % faster than the direct GEMM on 7x7. F(4x4, 3x3) when
 *   preferring speed: 30 % (14x14) and 40 % (7x7) faster than F(2x2, 3x3) on
 *   one thread, as its 4x4 tiles do fewer multiplications even where they
 *   overhang the map.
 * - 5x5 (every branch3.1): F(2x2, 5x5), 1.4-2.3x faster than the direct GEMM.
 */
function winogradVariant(conv: Conv2d, prefer: Preference): WinogradVariant | null {
  if (!conv.winogradEligible) return null;
  if (conv.kernelSize === 5) return "f2x5";
  if (prefer === "speed") return "f4x3";
  const large = conv.key.startsWith("conv3") || conv.key.startsWith("inception3");
  return large ? "f4x3" : "f2x3";
}

/** A layer's state-dict entries, unpacked from the blob. */
function unpackLayer(blob: Float32Array, layer: GemmLayer): Map<string, Tensor> {
  const weight = new Float32Array(layer.n * layer.k);
  const bias = new Float32Array(layer.n);
  unpackGemm(blob, layer.packed.offset, weight, bias, layer.k, layer.n, layer.order);
  return layer.unfold(weight, bias);
}

function navigatorThreads(): number {
  const n = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)
    ?.hardwareConcurrency;
  return Number.isSafeInteger(n) && n! > 0 ? n! : 1;
}

function checkInput(input: Tensor): [number, number, number] {
  if (!(input instanceof Tensor)) {
    throw new ShapeError("forward expects a Tensor of shape [N, 3, H, W]");
  }
  const dims = checkShape(input.shape);
  const size = shapeSize(input.shape);
  if (!(input.data instanceof Float32Array) || input.data.length !== size) {
    throw new ShapeError(
      `Input data has ${input.data?.length} elements but shape [${
        input.shape.join(", ")
      }] needs ${size}`,
    );
  }
  return dims;
}

/** Validates an input shape [N, 3, H, W] without touching any data. */
function checkShape(s: readonly number[]): [number, number, number] {
  if (!Array.isArray(s) || s.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new ShapeError(`Expected an input shape of non-negative integers [N, 3, H, W], got ${s}`);
  }
  if (s.length !== 4) {
    throw new ShapeError(
      `Expected input of rank 4 [N, 3, H, W], got rank ${s.length} [${s.join(", ")}]`,
    );
  }
  if (s[1] !== 3) {
    throw new ShapeError(
      `Expected 3 input channels [N, 3, H, W], got ${s[1]} in [${s.join(", ")}]`,
    );
  }
  if (s[0] < 1 || s[2] < 1 || s[3] < 1) {
    throw new ShapeError(
      `Expected a non-empty input [N >= 1, 3, H >= 1, W >= 1], got [${s.join(", ")}]`,
    );
  }
  return [s[0], s[2], s[3]];
}

function toMap(stateDict: StateDictInput): ReadonlyMap<string, Tensor> {
  if (stateDict instanceof Map) return stateDict;
  if (stateDict === null || typeof stateDict !== "object") {
    throw new StateDictError("A state dict must be a Map or a record of key to Tensor");
  }
  return new Map(Object.entries(stateDict));
}

function checkTensor(t: unknown, shape: readonly number[]): string | null {
  if (!(t instanceof Tensor)) return "expected a Tensor";
  const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!same) return `expected shape [${shape.join(", ")}], got [${t.shape.join(", ")}]`;
  const size = shape.reduce((a, b) => a * b, 1);
  if (!(t.data instanceof Float32Array) || t.data.length !== size) {
    return `expected ${size} elements of float32 data, got ${t.data?.length}`;
  }
  return null;
}

function list(keys: string[]): string {
  const shown = keys.slice(0, 8).map((k) => `"${k}"`).join(", ");
  return keys.length > 8 ? `${shown} and ${keys.length - 8} more` : shown;
}
