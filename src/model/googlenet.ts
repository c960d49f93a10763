/**
 * GoogLeNet (Inception v1) as `tools/reference/seed_googlenet.py` defines it,
 * on the Wasm SIMD kernels.
 *
 * @module
 */

import { GEMM_KERNELS, type GemmKernel } from "../backend/wasm/calibrate.ts";
import type { GradRef, PackedRef, Plan, WeightLayout, WinogradRef } from "../graph/ops.ts";
import { PlanBuilder, type Value } from "../graph/planner.ts";
import { appendBackward, type LayerGradients } from "../graph/backward.ts";
import { checkLabels, crossEntropy } from "../train/loss.ts";
import {
  checkBoolean,
  checkEnum,
  checkInteger,
  checkNumber,
  checkOptions,
  describeValue,
} from "../validate.ts";
import type { Backend, BackendKind } from "../backend/backend.ts";
import { layoutWeights, type WeightLayerDescriptor } from "../backend/layout.ts";
import { type BackendChoice, createBackend } from "../backend/select.ts";
import { BackendError, DisposedError, OptionError, ShapeError, StateDictError } from "../errors.ts";
import { shapeSize, Tensor } from "../tensor.ts";
import {
  BasicConv2d,
  Conv2d,
  type GemmLayer,
  Inception,
  InceptionAux,
  layerGradients,
  Linear,
  lowerAdaptiveAvgPool,
  MaxPool2d,
  pushDropout,
  repackLayerOf,
  transposedLayout,
  type TransposedRefs,
} from "./layers.ts";
import { Random } from "./random.ts";
import { gatherOf, type RepackLayer, weightPlan } from "../backend/repack.ts";
import {
  inverseGather,
  OptimizerMemory,
  type ParameterStep,
  wasmOptimizerEnabled,
  type WasmParameter,
} from "./optim_state.ts";
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
  /**
   * Which parameters train, as state-dict key prefixes (`["fc."]` fine-tunes
   * the head alone); default all. Frozen layers compute no weight gradients,
   * and no input gradient flows where nothing upstream trains.
   */
  trainable?: readonly string[];
  /**
   * The Wasm GEMM micro-kernel: `"auto"` (default) times each variant once per
   * process, on a few kilobytes for 5-30 ms (100 at most), and takes the fastest;
   * a name forces one, for tests and reproducible benches. Every variant does
   * the same multiply-adds in the same order, so the logits are the same bits
   * whichever runs.
   */
  gemmKernel?: GemmKernel | "auto";
}

/** Options of {@linkcode GoogLeNet.backward}. */
export interface BackwardOptions {
  /** Weight of each auxiliary head's loss in the total (default 0.3, the reference's). */
  auxWeight?: number;
  /** In training mode, apply dropout (default true); false makes it the identity. */
  dropout?: boolean;
}

/** What {@linkcode GoogLeNet.backward} resolves to. */
export interface BackwardResult {
  /** The total loss: `mainLoss + auxWeight * (aux1Loss + aux2Loss)`. */
  loss: number;
  /** Cross-entropy of the main head, mean over the batch. */
  mainLoss: number;
  /** Cross-entropy of aux1 (training mode with aux heads only). */
  aux1Loss?: number;
  /** Cross-entropy of aux2 (training mode with aux heads only). */
  aux2Loss?: number;
  /** The main head's logits `[N, numClasses]`. */
  logits: Tensor;
}

/** A trainable parameter: its state-dict name, its values and its gradient (PyTorch layouts). */
export interface Parameter {
  /** The state-dict key (`inception3a.branch1.conv.weight`). */
  readonly name: string;
  /** The values, live: an update writes them in place. */
  readonly data: Float32Array;
  /**
   * The accumulated gradient (a copy), same layout as `data`; null until a
   * backward pass has reached the parameter (as PyTorch's `.grad` is None).
   */
  readonly grad: Float32Array | null;
  /** PyTorch's shape. */
  readonly shape: readonly number[];
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

/** A training step's plans: the forward half (to the logits) and the backward half, sharing one arena. */
interface TrainingPlan {
  readonly forward: Plan;
  readonly backward: Plan;
  /** The layers whose gradients the backward half accumulates. */
  readonly reached: readonly string[];
}

const DEFAULT_MEMORY_LIMIT = 2 * 1024 * 1024 * 1024;
/** The most threads a model may ask for beyond the machine's cores (each is a worker and a scratch region). */
const MAX_THREADS = 64;
/** Every option {@linkcode GoogLeNet.create} accepts. */
const CREATE_OPTIONS = [
  "numClasses",
  "auxLogits",
  "initWeights",
  "variant",
  "transformInput",
  "stateDict",
  "seed",
  "backend",
  "threads",
  "wasmModule",
  "memoryLimit",
  "prefer",
  "trainable",
  "gemmKernel",
] as const;
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
  /** The layers in blob order with the shapes the backend lays them out by. */
  #descriptors: { layer: GemmLayer; descriptor: WeightLayerDescriptor }[];
  #weightFloats: number;
  /**
   * Every state-dict entry in PyTorch's layout: the source of truth the
   * backend's packed forms derive from. Entries the optimizer kernels have
   * stepped live only in their layer's current staging region instead
   * (`#resident`); read them through `#param`.
   */
  #params = new Map<string, Float32Array>();
  /** Parameters whose values live in their layer's current staging region (weight or bias). */
  #resident = new Map<string, { layer: GemmLayer; bias: boolean }>();
  /** Where training keeps each layer's input-gradient weights and gradients (after the forward weights). */
  #trainLayout: Map<GemmLayer, { transposed: TransposedRefs | null; grad: GradRef | null }>;
  #trainFloats: number;
  /** The layout of the weights (set by #layOut): what the plans are made for. */
  #weightLayout: WeightLayout | null = null;
  /** Whether the training regions are allocated and packed. */
  #trainReady = false;
  /** Floats of the weight region once training started (optimizer state grows it further). */
  #weightEnd = 0;
  /** The optimizer state the Wasm kernels update. */
  #optimizerMemory = new OptimizerMemory();
  #trainable: (key: string) => boolean;
  #trainingPlans = new Map<string, TrainingPlan>();
  /** zeroGrad calls whose zeroing is under way or, called when idle, about to start. */
  #zeroing = 0;
  /** The weight plan that zeroes every gradient (one region: they lie back to back). */
  #zeroPlan: Plan | null = null;
  /** Layers a backward pass has reached (PyTorch's `.grad` is no longer None). */
  #reached = new Set<string>();
  #training = false;
  /** Draws the initial weights. */
  #random: Random;
  /** Draws the dropout seeds: its own stream, so masks do not depend on how the weights were set. */
  #dropoutRandom: Random;
  #plans = new Map<string, Plan>();
  #queue: Promise<unknown> = Promise.resolve();
  /** Calls queued or running: 0 when the model is idle. */
  #pending = 0;
  /** State dicts loaded while calls were queued, applied in queue order (what stateDict() shows). */
  #pendingLoads: Map<string, Float32Array>[] = [];
  /**
   * Gradients of the layers with a folded BatchNorm (torchvision), in PyTorch's
   * layouts: converted by the chain rule with the weights of the backward that
   * made them, as PyTorch's `.grad` is, then accumulated here.
   */
  #unfoldedGrads = new Map<GemmLayer, Map<string, Float32Array>>();

  #variant: Variant;

  private constructor(
    numClasses: number,
    auxLogits: boolean,
    seed: number,
    variant: Variant,
    transformInput: boolean,
    prefer: Preference,
    trainable: readonly string[] | null,
  ) {
    this.numClasses = numClasses;
    this.#trainable = trainable === null
      ? () => true
      : (key) => trainable.some((prefix) => key.startsWith(prefix));
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
    // The map each convolution runs on for a 224x224 input, stage by stage:
    // the backend picks its kernels from these shapes.
    const stages: [GemmLayer[], number][] = [
      [[this.conv1.conv], 224],
      [[this.conv2.conv, this.conv3.conv], 56],
      ...blocks.map((b, i): [GemmLayer[], number] => [
        [b.branch1, ...b.branch2, ...b.branch3, b.branch4[1]].map((c) => c.conv),
        i < 2 ? 28 : i < 7 ? 14 : 7,
      ]),
      ...[this.aux1, this.aux2].map((a): [GemmLayer[], number] => [a ? [a.conv.conv] : [], 4]),
    ];
    const mapSize = new Map(stages.flatMap(([layers, size]) => layers.map((l) => [l, size])));
    this.#descriptors = blobOrder.map((layer) => ({
      layer,
      descriptor: {
        key: layer.key,
        k: layer.k,
        n: layer.n,
        conv: layer instanceof Conv2d
          ? {
            kernelSize: layer.kernelSize,
            stride: layer.stride,
            padding: layer.padding,
            inChannels: layer.inChannels,
            outChannels: layer.outChannels,
            mapSize: mapSize.get(layer)!,
          }
          : null,
      },
    }));
    this.#trainLayout = new Map();
    this.#weightFloats = 0;
    this.#trainFloats = 0;
    this.#layOut("wasm");
  }

  /**
   * Lays the weight blob out for `backend` (`layoutWeights`: the backend's
   * forms and kernels, chosen from the layers' shapes), then training's
   * regions after it; forgets the plans made for another layout.
   */
  #layOut(
    backend: BackendKind,
  ): { weightFloats: number; reserve?: Plan; weightLayout: WeightLayout } {
    const { layers, floats } = layoutWeights(
      this.#descriptors.map((d) => d.descriptor),
      backend,
      this.prefer,
    );
    for (const { layer } of this.#descriptors) {
      const refs = layers.get(layer.key)!;
      layer.packed = refs.packed;
      if (layer instanceof Conv2d) layer.winograd = refs.winograd;
    }
    this.#weightFloats = floats;
    let offset = floats;
    this.#plans.clear();
    this.#trainingPlans.clear();

    // Training's regions, allocated on the first backward: input-gradient
    // weights (every layer but conv1, whose input is the image), then gradients.
    this.#trainLayout.clear();
    for (const layer of this.#layers) {
      let transposed: TransposedRefs | null = null;
      if (layer !== this.conv1.conv) {
        const { refs, end } = transposedLayout(layer, offset);
        transposed = refs;
        offset = align16(end);
      }
      this.#trainLayout.set(layer, { transposed, grad: null });
    }
    for (const layer of this.#layers) {
      if (!layer.entries.some(([key]) => this.#isTrainable(key))) continue;
      this.#trainLayout.get(layer)!.grad = { offset, k: layer.k, n: layer.n };
      offset = align16(offset + layer.n * layer.k + layer.n);
    }
    this.#trainFloats = offset;
    // What the plans remember, and the backend checks them against: every layer's forms, then
    // training's regions (so that a difference in the forms a forward pass reads is named first).
    const place = (what: string, r: PackedRef | WinogradRef | null | undefined) =>
      r ? [`${what} ${r.offset} (${r.k}x${r.n}${"variant" in r ? ` ${r.variant}` : ""})`] : [];
    const line = (key: string, places: string[]) => `${key}: ${places.join(", ") || "none"}`;
    const blob = this.#descriptors.map(({ layer }) => layer);
    this.#weightLayout = Object.freeze({
      backend,
      floats: offset,
      layers: Object.freeze([
        ...blob.map((layer) =>
          line(layer.key, [
            ...place("packed", layer.packed),
            ...place("winograd", layer instanceof Conv2d ? layer.winograd : null),
          ])
        ),
        ...blob.map((layer) => {
          const train = this.#trainLayout.get(layer)!;
          return line(`${layer.key} training`, [
            ...place("transposed", train.transposed?.packed),
            ...place("transposed winograd", train.transposed?.winograd),
            ...place("grad", train.grad),
          ]);
        }),
      ]),
    });
    const weightLayout = this.#weightLayout;
    // The Wasm backend sizes its memory for the eval plan of one 224x224 image.
    return backend === "wasm"
      ? { weightFloats: floats, reserve: this.#plan(1, 224, 224, false, false), weightLayout }
      : { weightFloats: floats, weightLayout };
  }

  /** Whether a state-dict key is a parameter that trains (running statistics never do). */
  #isTrainable(key: string): boolean {
    return !/\.(running_mean|running_var|num_batches_tracked)$/.test(key) && this.#trainable(key);
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
    const o = checkOptions("GoogLeNet.create", options, CREATE_OPTIONS);
    const numClasses = checkInteger("numClasses", o.numClasses, {
      min: 1,
      max: 1 << 20,
      default: 1000,
      error: ShapeError,
    });
    // Threads beyond the cores only cost memory (a scratch region and a worker each).
    const cores = navigatorThreads();
    const threads = checkInteger("threads", o.threads, {
      min: 1,
      max: Math.max(MAX_THREADS, cores),
      default: cores,
      error: BackendError,
    });
    const memoryLimit = checkNumber("memoryLimit", o.memoryLimit, {
      min: 0,
      exclusiveMin: true,
      default: DEFAULT_MEMORY_LIMIT,
      error: BackendError,
    });
    const variantName = checkEnum("variant", o.variant, ["seed", "torchvision"] as const, {
      default: "seed",
      error: ShapeError,
    });
    const variant = variantByName(variantName);
    const prefer = checkEnum("prefer", o.prefer, ["memory", "speed"] as const, {
      default: "memory",
      error: BackendError,
    });
    const gemmKernel = checkEnum("gemmKernel", o.gemmKernel, ["auto", ...GEMM_KERNELS] as const, {
      default: "auto",
      error: BackendError,
    });
    const auxLogits = checkBoolean("auxLogits", o.auxLogits, { default: true });
    const initWeights = checkBoolean("initWeights", o.initWeights, { default: false });
    const transformInput = checkBoolean("transformInput", o.transformInput, {
      default: variant.transformInput,
    });
    const seed = checkInteger("seed", o.seed, { min: 0, max: 2 ** 32 - 1, default: 0 });
    const backend = checkEnum("backend", o.backend, ["auto", "wasm", "webgpu"] as const, {
      default: "auto",
      error: BackendError,
    });
    if (o.stateDict !== undefined && (o.stateDict === null || typeof o.stateDict !== "object")) {
      throw new StateDictError(
        `stateDict must be a Map or a record of key to Tensor, got ${describeValue(o.stateDict)}`,
      );
    }
    const trainable = o.trainable ?? null;
    if (
      trainable !== null &&
      (!Array.isArray(trainable) || trainable.some((p) => typeof p !== "string" || p === ""))
    ) {
      throw new StateDictError(
        `trainable must be an array of non-empty state-dict key prefixes such as ["fc."], got ${
          describeValue(trainable)
        }`,
      );
    }
    const model = new GoogLeNet(
      numClasses,
      auxLogits,
      seed,
      variant,
      transformInput,
      prefer,
      trainable === null ? null : [...trainable],
    );
    if (trainable !== null) {
      const keys = model.#layers.flatMap((l) => l.entries.map(([key]) => key));
      const unmatched = trainable.filter((p) => !keys.some((k) => k.startsWith(p)));
      if (unmatched.length > 0) {
        throw new StateDictError(
          `trainable prefixes ${
            unmatched.map((p) => JSON.stringify(p)).join(", ")
          } match no parameter; keys look like "fc.weight", "inception5b.branch1.conv.weight"`,
        );
      }
      if (!keys.some((k) => model.#isTrainable(k))) {
        throw new StateDictError(
          `trainable ${
            JSON.stringify(trainable)
          } selects no parameter that trains (running statistics never do); give prefixes of ` +
            'parameter keys such as ["fc."]',
        );
      }
    }
    model.#backend = await createBackend(backend, {
      weightFloats: model.#weightFloats,
      threads,
      wasmModule: o.wasmModule,
      memoryLimit,
      // Workers may be refused (no read permission for their modules): with the
      // default thread count, run on the calling thread; an explicit count is an error.
      threadsOptional: o.threads === undefined,
      gemmKernel,
      // The eval plan of one 224x224 image: what a model is most often first run on.
      reserve: model.#plan(1, 224, 224, false, false),
      // Each backend lays out the weights its kernels read.
      layout: (kind) => model.#layOut(kind),
    });
    try {
      // The Wasm backend's workers boot while the weights are packed.
      if (o.stateDict) model.loadStateDict(o.stateDict);
      else model.#initialize(initWeights);
      await model.#queue;
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

  /**
   * The state of the generator that draws the dropout masks' seeds: four
   * 32-bit words, advanced by every training-mode `forward` and `backward`
   * with dropout, when it is called (not when the call runs). Save it with a
   * checkpoint and set it on the model that resumes, and that model draws the
   * masks the uninterrupted run would have (with `seed` alone it starts the
   * stream again).
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1, seed: 3 });
   * const saved = model.dropoutState;
   * console.log(saved.length); // 4
   * model.dropoutState = saved;
   * await model.dispose();
   * ```
   */
  get dropoutState(): number[] {
    return this.#dropoutRandom.state;
  }

  /**
   * Continues the dropout masks from a state {@linkcode GoogLeNet.dropoutState} returned.
   *
   * @param state Four integers from 0 to 2^32 - 1, not all 0.
   * @throws {OptionError} For anything else.
   */
  set dropoutState(state: readonly number[]) {
    // Read each word once, into a copy that is checked and used: a getter or proxy could
    // hand the check one value and the generator another (an all-zero state never moves).
    // Four reads, not Array.from: a length of 2^32 - 1 would allocate before the check.
    const words = Array.isArray(state) && state.length === 4
      ? [state[0], state[1], state[2], state[3]]
      : [];
    if (
      words.length !== 4 ||
      !words.every((w) => Number.isSafeInteger(w) && w >= 0 && w < 2 ** 32) ||
      words.every((w) => w === 0)
    ) {
      throw new OptionError(
        `Expected dropoutState to be 4 integers from 0 to 2^32 - 1, not all 0 (what ` +
          `model.dropoutState returns), got ${describeValue(state)}`,
      );
    }
    this.#dropoutRandom.state = words;
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
    this.#training = checkBoolean("mode", mode, { error: ShapeError });
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
    this.#live();
    const out = new Map<string, Tensor>();
    for (const layer of this.#layers) {
      for (const [key, shape] of layer.entries) {
        const pending = this.#pendingLoads.findLast((load) => load.has(key))?.get(key);
        out.set(key, new Tensor(new Float32Array(pending ?? this.#param(key)), shape));
      }
    }
    return out;
  }

  /**
   * Loads parameters with PyTorch's key names and layouts, all or nothing: on
   * any error the model keeps its previous weights. The tensors are copied
   * when called; calls queued before this one still run on the previous
   * weights, calls made after it on these.
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
    this.#live();
    const o = checkOptions("loadStateDict", options, ["strict"], { error: StateDictError });
    const strict = checkBoolean("strict", o.strict, { default: true, error: StateDictError });
    // One read of each entry: what is checked is what is loaded.
    const entries = toMap(stateDict);
    const shapes = new Map(this.#layers.flatMap((l) => l.entries));
    const problems: string[] = [];
    if (strict) {
      const missing = [...shapes.keys()].filter((k) => !entries.has(k));
      const unexpected = [...entries.keys()].filter((k) => !shapes.has(k) && !this.#ignorable(k));
      if (missing.length) problems.push(`missing keys ${list(missing)}`);
      if (unexpected.length) problems.push(`unexpected keys ${list(unexpected)}`);
    }
    const copies = new Map<string, Float32Array>();
    for (const [key, shape] of shapes) {
      if (!entries.has(key)) continue;
      const t = entries.get(key);
      const problem = checkTensor(t, shape);
      if (problem) {
        problems.push(`"${key}": ${problem}`);
        continue;
      }
      const copy = new Float32Array((t as Tensor).data);
      if (copy.length !== shapeSize(shape)) {
        problems.push(`"${key}": its data changed size while being read`);
        continue;
      }
      copies.set(key, copy);
    }
    if (problems.length) {
      throw new StateDictError(
        `Cannot load the state dict (nothing was changed): ${problems.join("; ")}`,
      );
    }
    const changed = this.#layers.filter((l) => l.entries.some(([key]) => copies.has(key)));
    const apply = () => {
      for (const [key, value] of copies) {
        this.#resident.delete(key);
        this.#params.set(key, value);
      }
    };
    if (this.#pending === 0) {
      apply();
      this.#enqueue(() => this.#repack(changed));
      return;
    }
    // Calls are queued: they run on the weights they were made with; this load
    // applies after them (stateDict() shows it from now on).
    this.#pendingLoads.push(copies);
    this.#enqueue(() => {
      this.#pendingLoads.shift();
      apply();
      return this.#repack(changed);
    });
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
    const o = checkOptions("forward", options, ["dropout"], { error: ShapeError });
    // The call runs on the input as it is now, whatever happens to it while queued.
    const x = snapshot(input, "forward");
    const [n, h, w] = checkShape(x.shape);
    const training = this.#training;
    const dropout = training && checkBoolean("dropout", o.dropout, { default: true });
    const plan = this.#plan(n, h, w, training && this.auxLogits, dropout);
    const seeds = this.#seeds(plan);
    return this.#enqueue(async () => {
      const outputs = await backend.run(plan, x, seeds);
      const tensors = outputs.map((data, i) => new Tensor(data, plan.outputs[i].shape));
      return tensors.length === 1 ? tensors[0] : (tensors as TrainingOutputs);
    });
  }

  /**
   * Runs the network forward and backward on a batch: the cross-entropy of
   * the main head plus `auxWeight` times each auxiliary head's (training mode
   * with aux heads), whose gradients are added to every trainable parameter's
   * (like PyTorch's `loss.backward()`: they accumulate across calls until
   * {@linkcode GoogLeNet.zeroGrad}). In eval mode the main head alone, no
   * dropout. Runs on the Wasm backend.
   *
   * @param input The batch `[N, 3, H, W]` (with aux heads in training mode, H and W near 224).
   * @param labels N class indices.
   * @param options `auxWeight` (default 0.3) and `dropout` (default true).
   * @returns The losses (numbers) and the main head's logits.
   * @throws {ShapeError} For a bad input shape or labels.
   * @throws {BackendError} On the WebGPU backend.
   *
   * @example
   * ```ts
   * import { GoogLeNet, Tensor } from "../../mod.ts";
   * const model = await GoogLeNet.create({ numClasses: 10, auxLogits: false, threads: 1 });
   * model.train();
   * const { loss } = await model.backward(Tensor.zeros([2, 3, 64, 64]), [3, 7]);
   * console.log(loss > 0, model.gradients().get("fc.bias")?.shape); // true [ 10 ]
   * await model.dispose();
   * ```
   */
  backward(
    input: Tensor,
    labels: Int32Array | readonly number[],
    options: BackwardOptions = {},
  ): Promise<BackwardResult> {
    const backend = this.#live();
    const o = checkOptions("backward", options, ["auxWeight", "dropout"]);
    const x = snapshot(input, "backward");
    const [n, h, w] = checkShape(x.shape);
    checkLabels(labels, n, this.numClasses);
    // Checked and used as they are now: one read of each label.
    const given = Array.from(labels);
    checkLabels(given, n, this.numClasses);
    const targets = Int32Array.from(given);
    const auxWeight = checkNumber("auxWeight", o.auxWeight, { min: 0, default: 0.3 });
    const training = this.#training;
    const dropout = training && checkBoolean("dropout", o.dropout, { default: true });
    const aux = training && this.auxLogits;
    const plans = this.#trainingPlan(n, h, w, aux, dropout);
    const seeds = this.#seeds(plans.forward);
    return this.#enqueue(async () => {
      await this.#startTraining();
      const heads = await backend.run(plans.forward, x, seeds);
      const classes = this.numClasses;
      const tensors = heads.map((data) => new Tensor(data, [n, classes]));
      // Outputs are [logits, aux2, aux1], like the reference's forward.
      const weights = [1, auxWeight, auxWeight];
      const losses = tensors.map((t, i) => crossEntropy(t, targets, weights[i]));
      const grads = new Float32Array(n * classes * heads.length);
      losses.forEach(({ grad }, head) => {
        for (let i = 0; i < n; i++) {
          grads.set(
            grad.subarray(i * classes, (i + 1) * classes),
            (i * heads.length + head) * classes,
          );
        }
      });
      await backend.run(
        plans.backward,
        new Tensor(grads, [n, classes * heads.length, 1, 1]),
        seeds,
      );
      for (const key of plans.reached) this.#reached.add(key);
      this.#unfoldGradients(plans.reached);
      const mainLoss = losses[0].loss;
      if (!aux) return { loss: mainLoss, mainLoss, logits: tensors[0] };
      const aux2Loss = losses[1].loss, aux1Loss = losses[2].loss;
      return {
        loss: mainLoss + auxWeight * (aux1Loss + aux2Loss),
        mainLoss,
        aux1Loss,
        aux2Loss,
        logits: tensors[0],
      };
    });
  }

  /**
   * Sets every gradient to zero (PyTorch's `zero_grad`), after the calls
   * already queued: a {@linkcode GoogLeNet.backward} called before it is
   * cleared, one called after it adds to zero. When nothing is queued the
   * gradients read as zeros at once. On the Wasm backend the kernels zero
   * them on every thread.
   *
   * @returns Settles when the gradients are zeroed (it never rejects; later
   * calls wait for it anyway, so awaiting it is only needed for timing).
   *
   * @example
   * ```ts
   * import { GoogLeNet, Tensor } from "../../mod.ts";
   * const model = await GoogLeNet.create({ numClasses: 2, auxLogits: false, threads: 1 });
   * await model.backward(Tensor.zeros([1, 3, 64, 64]), [1]);
   * model.zeroGrad();
   * console.log(model.gradients().get("fc.bias")); // Tensor of zeros
   * await model.dispose();
   * ```
   */
  zeroGrad(): Promise<void> {
    this.#live();
    // After the calls already queued, as a PyTorch loop that does not await expects. The
    // gradients read as zeros from the call on when nothing is queued, else from when the
    // zeroing starts (the kernels zero them on every thread meanwhile).
    const idle = this.#pending === 0;
    if (idle) this.#zeroing++;
    return this.#enqueue(async () => {
      if (!idle) this.#zeroing++;
      try {
        await this.#zeroGradients();
      } finally {
        this.#zeroing--;
      }
    }).catch(() => {}); // disposed meanwhile: nothing left to zero
  }

  async #zeroGradients(): Promise<void> {
    if (!this.#trainReady) return;
    for (const grads of this.#unfoldedGrads.values()) for (const g of grads.values()) g.fill(0);
    const backend = this.#live();
    if (this.#zeroPlan && backend.updatesParameters) {
      try {
        return await backend.runWeights(this.#zeroPlan);
      } catch {
        // Zeroed below on this thread, so that the next backward starts from zero whatever failed.
      }
    }
    const blob = this.#live().weights();
    for (const { grad } of this.#trainLayout.values()) {
      if (grad) blob.fill(0, grad.offset, grad.offset + grad.n * grad.k + grad.n);
    }
  }

  /**
   * Moves the gradients of the layers with a folded BatchNorm out of the
   * blob into PyTorch's layouts, by the chain rule with the current weights
   * (those of the backward that made them), adding them up there.
   */
  #unfoldGradients(reached: readonly string[]): void {
    const blob = this.#live().weights();
    for (const layer of this.#layers) {
      if (!(layer instanceof Conv2d) || !layer.batchNorm || !reached.includes(layer.key)) continue;
      const grad = this.#trainLayout.get(layer)!.grad;
      if (!grad) continue;
      const end = grad.offset + grad.n * grad.k;
      const dw = blob.subarray(grad.offset, end), db = blob.subarray(end, end + grad.n);
      const fresh = layerGradients(layer, dw, db, (key) => this.#param(key));
      const total = this.#unfoldedGrads.get(layer);
      if (!total) this.#unfoldedGrads.set(layer, fresh);
      else {
        for (const [key, g] of fresh) {
          const sum = total.get(key)!;
          for (let i = 0; i < g.length; i++) sum[i] += g[i];
        }
      }
      blob.fill(0, grad.offset, end + grad.n);
    }
  }

  /**
   * The accumulated gradients of the trainable parameters, keyed by their
   * state-dict names, in PyTorch's layouts (copies). A parameter no backward
   * pass has reached yet (PyTorch's `.grad is None`: every one before the
   * first {@linkcode GoogLeNet.backward}, the aux heads' after eval-mode
   * passes only) is absent.
   *
   * @returns A new map of key to gradient.
   *
   * @example
   * ```ts
   * import { GoogLeNet, Tensor } from "../../mod.ts";
   * const model = await GoogLeNet.create({ trainable: ["fc."], auxLogits: false, threads: 1 });
   * await model.backward(Tensor.zeros([1, 3, 64, 64]), [3]);
   * console.log([...model.gradients().keys()]); // ["fc.weight", "fc.bias"]
   * await model.dispose();
   * ```
   */
  gradients(): Map<string, Tensor> {
    const shapes = new Map(this.#layers.flatMap((l) => l.entries));
    const out = new Map<string, Tensor>();
    for (const p of this.#parameterList()) {
      if (p.grad) out.set(p.name, new Tensor(p.grad, shapes.get(p.name)!));
    }
    return out;
  }

  /**
   * The trainable parameters with their gradients, in PyTorch's order (what
   * an optimizer updates). `data` arrays are the model's own: change them
   * only inside {@linkcode GoogLeNet.updateParameters}. Take them anew after
   * each call into the model: where the optimizer kernels step a layer, its
   * values move to the layer's other region of Wasm memory at each step (and
   * to a new memory when a larger batch moves it), so an array held across a
   * step keeps showing the values from before it.
   *
   * @returns One record per trainable parameter.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ auxLogits: false, threads: 1 });
   * console.log(model.parameters().length); // 116
   * await model.dispose();
   * ```
   */
  parameters(): Parameter[] {
    return this.#parameterList();
  }

  /**
   * Changes parameters in place after every queued call, then derives the
   * backend's packed weights from them (the optimizers' step). Calls made
   * after this one see the new weights.
   *
   * @param update Receives the trainable parameters with their gradients; writes `data`
   * (awaited when it returns a promise). If it throws, what it wrote is still repacked,
   * so `stateDict()` and the kernels agree, and the call rejects.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ trainable: ["fc."], threads: 1 });
   * await model.updateParameters((params) => params.forEach((p) => p.data.fill(0)));
   * console.log(model.stateDict().get("fc.bias")?.data[0]); // 0
   * await model.dispose();
   * ```
   */
  updateParameters(
    update: (params: readonly Parameter[]) => void | Promise<void>,
  ): Promise<void> {
    this.#live();
    if (typeof update !== "function") {
      throw new StateDictError("updateParameters expects a function of the parameter list");
    }
    return this.#enqueue(async () => {
      try {
        await update(this.#parameterList());
      } finally {
        // Whatever the update wrote, even if it then threw, is what the kernels run.
        await this.#repack(
          this.#layers.filter((l) => l.entries.some(([key]) => this.#isTrainable(key))),
        );
      }
    });
  }

  /**
   * One optimizer step over the trainable parameters that have a gradient,
   * after every queued call, then the repack of the packed weights (what
   * the optimizers' `step()` calls). On the
   * Wasm backend the kernels update each layer's staged weight and bias in
   * place on every thread, reading the gradients in the backend's layout and
   * the state tensors from Wasm memory; elsewhere (torchvision's folded
   * BatchNorm layers, other backends, kernel modules without the optimizer
   * kernels) `request.update` runs in TypeScript.
   *
   * @param request The optimizer's state tensors and callbacks.
   *
   * @example
   * ```ts
   * import { GoogLeNet, SGD, Tensor } from "../../mod.ts";
   * const model = await GoogLeNet.create({ numClasses: 2, trainable: ["fc."], threads: 1 });
   * await model.backward(Tensor.zeros([1, 3, 64, 64]), [1]);
   * await new SGD(model, { lr: 0.1 }).step(); // calls model.stepParameters
   * await model.dispose();
   * ```
   */
  stepParameters(request: ParameterStep): Promise<void> {
    this.#live();
    if (
      !request || typeof request !== "object" || !Array.isArray(request.slots) ||
      typeof request.rule !== "function" || typeof request.update !== "function"
    ) {
      throw new StateDictError("stepParameters expects an optimizer's step request");
    }
    return this.#enqueue(async () => {
      const backend = this.#live();
      const trainable = this.#layers.filter((l) =>
        l.entries.some(([key]) => this.#isTrainable(key))
      );
      const reached = trainable.filter((l) => this.#reached.has(l.key));
      const kernels = backend.updatesParameters && this.#trainReady && wasmOptimizerEnabled();
      const inWasm = kernels ? reached.filter((l) => this.#wasmParameters(l) !== null) : [];
      const inTs = reached.filter((l) => !inWasm.includes(l));
      const wasmParams = inWasm.flatMap((l) => this.#wasmParameters(l)!);
      let stepped = false;
      try {
        const memory = this.#optimizerMemory;
        const missing = memory.missing(wasmParams, request.slots);
        if (missing.length) {
          const end = this.#weightEnd + OptimizerMemory.floats(missing);
          await backend.growWeights(end);
          this.#weightEnd = memory.place(missing, this.#weightEnd);
        }
        const blob = backend.weights();
        memory.claim(request, blob, new Map(wasmParams.map((p) => [p.name, p])));
        if (wasmParams.length) {
          const ops = wasmParams.map((p) => memory.stepOp(p, blob));
          await backend.runWeights(memory.plan(ops));
        }
        // The TypeScript rule runs once the kernels are done, with no await until the
        // stepped regions become current: while they run (and if they fail) every
        // parameter, these included, still reads as before the step.
        const now = backend.weights();
        for (const p of this.#parametersOf(inTs)) {
          memory.release(p, now);
          request.update(p);
        }
        stepped = true;
      } finally {
        // The kernels wrote each layer's other staging region: it becomes the current one
        // (nothing is copied back). If they failed, the parameters stay as they were.
        if (stepped) this.#takeStepped(inWasm, wasmParams);
        await this.#repack(trainable, stepped ? new Set(inWasm) : new Set());
      }
    });
  }

  /**
   * A copy of `owner`'s optimizer state tensor `slot` of parameter `name`
   * when it lives in the model's Wasm memory (see
   * {@linkcode GoogLeNet.stepParameters}), else null.
   *
   * @param owner The optimizer.
   * @param name The parameter's state-dict key.
   * @param slot The state tensor (`"exp_avg"`).
   * @returns The values in the parameter's layout, or null.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ numClasses: 2, threads: 1 });
   * console.log(model.optimizerState({}, "fc.weight", "exp_avg")); // null
   * await model.dispose();
   * ```
   */
  optimizerState(owner: object, name: string, slot: string): Float32Array | null {
    const backend = this.#live();
    const size = this.#params.has(name) || this.#resident.has(name)
      ? this.#param(name).length
      : undefined;
    if (size === undefined || !this.#optimizerMemory.holds(owner)) return null;
    return this.#optimizerMemory.read(owner, name, slot, size, backend.weights());
  }

  /**
   * Replaces `owner`'s optimizer state after every queued call (at once when
   * none is): forgets what its steps left in the model's Wasm memory, then
   * calls `restore`, which makes the owner's own tensors its state (an
   * optimizer's `loadStateDict`, ordered like its steps).
   *
   * @param owner The optimizer.
   * @param restore Installs the owner's new state.
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ numClasses: 2, threads: 1 });
   * let restored = false;
   * model.restoreOptimizerState({}, () => (restored = true));
   * console.log(restored); // true (nothing was queued)
   * await model.dispose();
   * ```
   */
  restoreOptimizerState(owner: object, restore: () => void): void {
    this.#live();
    const apply = () => {
      this.#optimizerMemory.forget(owner);
      restore();
    };
    if (this.#pending === 0) apply();
    // A model disposed while this waited has no state left to replace.
    else this.#enqueue(apply).catch(() => {});
  }

  /** Where the Wasm kernels find a layer's parameters, or null when they cannot update them. */
  #wasmParameters(layer: GemmLayer): WasmParameter[] | null {
    const stage = this.#live().staged(layer.key);
    const grad = this.#trainLayout.get(layer)!.grad;
    if (!stage || stage.regions.length !== 2 || !grad) return null;
    const rows = gatherOf(layer.order, layer.k);
    if (!rows || rows.b !== 1) return null;
    const { n, k } = layer;
    const shapes = new Map(layer.entries);
    const params: WasmParameter[] = [
      {
        name: `${layer.key}.weight`,
        shape: shapes.get(`${layer.key}.weight`)!,
        x: stage.now.weight,
        xOut: stage.next.weight,
        grad: grad.offset,
        size: n * k,
        k,
        gather: inverseGather(rows),
      },
      {
        name: `${layer.key}.bias`,
        shape: [n],
        x: stage.now.bias,
        xOut: stage.next.bias,
        grad: grad.offset + n * k,
        size: n,
        k: n,
        gather: null,
      },
    ];
    return params.filter((p) => this.#isTrainable(p.name));
  }

  /**
   * After the optimizer kernels wrote `layers`' other staging regions: a
   * parameter among them that did not step (a frozen bias) is carried over,
   * the regions become current, and the layers' parameters live there from
   * now on (their TypeScript copies are dropped).
   */
  #takeStepped(layers: readonly GemmLayer[], stepped: readonly WasmParameter[]): void {
    const names = new Set(stepped.map((p) => p.name));
    this.#live().swap(layers.map((layer) => ({
      key: layer.key,
      weight: names.has(`${layer.key}.weight`),
      bias: names.has(`${layer.key}.bias`),
    })));
    for (const layer of layers) {
      for (const bias of [false, true]) {
        const key = `${layer.key}.${bias ? "bias" : "weight"}`;
        this.#resident.set(key, { layer, bias });
        this.#params.delete(key);
      }
    }
  }

  /**
   * A parameter's current values: the model's own array, or a view of its
   * layer's current staging region (valid until the next call into the backend).
   */
  #param(key: string): Float32Array {
    const resident = this.#resident.get(key);
    if (!resident) return this.#params.get(key)!;
    const { layer, bias } = resident;
    const backend = this.#live();
    const now = backend.staged(layer.key)!.now;
    const at = bias ? now.bias : now.weight;
    return backend.weights().subarray(at, at + (bias ? layer.n : layer.n * layer.k));
  }

  #parameterList(): Parameter[] {
    return this.#parametersOf(this.#layers);
  }

  /** The trainable parameters of `layers` with their gradients (PyTorch layouts, copies). */
  #parametersOf(layers: readonly GemmLayer[]): Parameter[] {
    const blob = this.#live().weights();
    const out: Parameter[] = [];
    for (const layer of layers) {
      const trainable = layer.entries.filter(([key]) => this.#isTrainable(key));
      if (trainable.length === 0) continue;
      const reached = this.#reached.has(layer.key);
      if (this.#zeroing > 0) {
        // Being zeroed (PyTorch's zero_grad has happened): zeros, in PyTorch's shapes.
        for (const [key, shape] of trainable) {
          const grad = reached ? new Float32Array(shapeSize(shape)) : null;
          out.push({ name: key, data: this.#param(key), grad, shape });
        }
        continue;
      }
      const grad = this.#trainLayout.get(layer)!.grad!;
      const dw = this.#trainReady
        ? blob.subarray(grad.offset, grad.offset + grad.n * grad.k)
        : new Float32Array(grad.n * grad.k);
      const db = this.#trainReady
        ? blob.subarray(grad.offset + grad.n * grad.k, grad.offset + grad.n * grad.k + grad.n)
        : new Float32Array(grad.n);
      const unfolded = this.#unfoldedGrads.get(layer);
      const grads = unfolded ?? layerGradients(layer, dw, db, (key) => this.#param(key));
      for (const [key, shape] of trainable) {
        const grad = reached ? new Float32Array(grads.get(key)!) : null;
        out.push({ name: key, data: this.#param(key), grad, shape });
      }
    }
    return out;
  }

  /** Allocates training's regions (input-gradient weights, zero gradients) once. */
  async #startTraining(): Promise<void> {
    if (this.#trainReady) return;
    const backend = this.#live();
    // The backend stages the trainable layers it repacks itself after the gradients
    // (allocated with them, so inference never pays).
    const floats = backend.stageLayers(
      this.#layers.filter((l) => l.entries.some(([key]) => this.#isTrainable(key)))
        .map((l) => this.#repackLayer(l, true)),
      this.#trainFloats,
    );
    try {
      await backend.growWeights(floats);
    } catch (error) {
      backend.stageLayers([], this.#trainFloats); // nothing staged in memory that is not there
      throw error;
    }
    this.#weightEnd = floats;
    const grads = [...this.#trainLayout.values()].flatMap(({ grad }) => grad ? [grad] : []);
    const start = Math.min(...grads.map((g) => g.offset));
    const end = Math.max(...grads.map((g) => g.offset + g.n * g.k + g.n));
    this.#zeroPlan = grads.length
      ? weightPlan([{ kind: "zero", name: "gradients", offset: start, size: end - start }])
      : null;
    this.#trainReady = true;
    // Staged layers too: the optimizer kernels update the staged copies in place.
    await this.#repack(
      this.#layers.filter((l) => this.#trainLayout.get(l)!.transposed || backend.staged(l.key)),
    );
  }

  /** `layer` as the backend's repack needs it (its input-gradient forms once `training`). */
  #repackLayer(layer: GemmLayer, training = this.#trainReady): RepackLayer {
    return repackLayerOf(layer, training ? this.#trainLayout.get(layer)!.transposed : null);
  }

  #seeds(plan: Plan): number[] {
    return Array.from({ length: plan.dropoutStreams }, () => this.#dropoutRandom.nextUint32());
  }

  /** What the backward pass needs of the layer with state-dict prefix `key`. */
  #layerGradients(key: string): LayerGradients {
    const layer = this.#layers.find((l) => l.key === key);
    const refs = layer && this.#trainLayout.get(layer);
    if (!refs) throw new Error(`Internal: no layer "${key}"`);
    return {
      grad: refs.grad,
      transposed: refs.transposed?.packed ?? { offset: -1, k: 0, n: 0 },
      transposedWinograd: refs.transposed?.winograd ?? null,
    };
  }

  /** The forward and backward halves of a training step for a shape and mode (cached). */
  #trainingPlan(
    n: number,
    h: number,
    w: number,
    aux: boolean,
    dropout: boolean,
  ): TrainingPlan {
    const key = `${n}x${h}x${w}:${aux}:${dropout}`;
    let plans = this.#trainingPlans.get(key);
    if (plans) {
      this.#trainingPlans.delete(key);
      this.#trainingPlans.set(key, plans);
      return plans;
    }
    const b = new PlanBuilder();
    const { input, outputs } = this.#lowerForward(b, n, h, w, aux, dropout);
    const { gradOutputs, start } = appendBackward(b, {
      heads: outputs.map((o) => o.value),
      layer: (key) => this.#layerGradients(key),
    });
    const full = b.build(input, outputs, {
      inputTransform: this.transformInput ? TRANSFORM_INPUT : null,
      stepBreak: start,
      weightLayout: this.#weightLayout,
    });
    plans = {
      forward: { ...full, steps: full.steps.filter((step) => step[0] < start) },
      backward: {
        ...full,
        steps: full.steps.filter((step) => step[0] >= start),
        input: gradOutputs.view.buffer,
        outputs: [],
        inputTransform: null,
      },
      reached: full.ops.flatMap((op) => op.kind === "conv2d_grad_weight" ? [op.name] : []),
    };
    this.#trainingPlans.set(key, plans);
    if (this.#trainingPlans.size > PLAN_CACHE / 2) {
      this.#trainingPlans.delete(this.#trainingPlans.keys().next().value!);
    }
    return plans;
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
    for (const layer of this.#layers) {
      for (const [key, shape] of layer.entries) {
        this.#params.set(key, this.#initialValue(layer, key, shape, referenceInit));
      }
    }
    // Packed in TypeScript before this returns: nothing is staged before training.
    void this.#repack(this.#layers);
  }

  /**
   * Derives the backend's packed forms of `layers` from the parameters: the
   * forward GEMM panels and Winograd forms and, once training has started,
   * the input-gradient weights.
   */
  #repack(
    layers: readonly GemmLayer[],
    fresh: ReadonlySet<GemmLayer> = new Set(),
  ): Promise<void> {
    // The backend folds and packs (staged layers on every thread); a layer the optimizer kernels
    // just stepped has its tensors in its current staging region already.
    return this.#live().repack(layers.map((layer) => ({
      layer: this.#repackLayer(layer),
      tensors: fresh.has(layer) ? null : this.#layerTensors(layer),
    })));
  }

  /**
   * A layer's PyTorch tensors as the backend's repack takes them: `weight`,
   * `bias`, or for a folded BatchNorm `conv.weight` and the BatchNorm's four vectors.
   */
  #layerTensors(layer: GemmLayer): Float32Array[] {
    const bn = layer instanceof Conv2d ? layer.batchNorm?.key : undefined;
    const keys = bn === undefined ? [`${layer.key}.weight`, `${layer.key}.bias`] : [
      `${layer.key}.weight`,
      ...["weight", "bias", "running_mean", "running_var"].map((n) => `${bn}.${n}`),
    ];
    return keys.map((key) => this.#param(key));
  }

  /** Runs `task` after every call queued before it. */
  #enqueue<T>(task: () => T | Promise<T>): Promise<T> {
    this.#pending++;
    const result = this.#queue.then(() => {
      if (this.#backend === null) {
        throw new DisposedError("GoogLeNet was disposed while a call waited");
      }
      return task();
    }).finally(() => this.#pending--);
    this.#queue = result.catch(() => {});
    return result;
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

  /**
   * The plans {@linkcode GoogLeNet.backward} runs for an input of `shape` in
   * the current mode: the forward half (to the logits) and the backward half,
   * one operation list and arena; each half's `steps` index into it. For
   * benches, tools and tests.
   *
   * @param shape The input shape `[N, 3, H, W]`.
   * @returns Both halves (cached per shape and mode).
   *
   * @example
   * ```ts
   * import { GoogLeNet } from "../../mod.ts";
   * const model = await GoogLeNet.create({ threads: 1 });
   * const { forward, backward } = model.train().trainingPlan([1, 3, 224, 224]);
   * console.log(forward.ops === backward.ops, backward.outputs.length); // true 0
   * await model.dispose();
   * ```
   */
  trainingPlan(shape: readonly number[]): { forward: Plan; backward: Plan } {
    this.#live();
    const [n, h, w] = checkShape(shape);
    const plans = this.#trainingPlan(n, h, w, this.#training && this.auxLogits, this.#training);
    return { forward: plans.forward, backward: plans.backward };
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
    const { input, outputs } = this.#lowerForward(b, n, h, w, aux, dropout);
    return b.build(input, outputs, {
      inputTransform: this.transformInput ? TRANSFORM_INPUT : null,
      weightLayout: this.#weightLayout,
    });
  }

  /** Appends the forward pass; returns the input and the outputs (`[logits, aux2, aux1]`). */
  #lowerForward(
    b: PlanBuilder,
    n: number,
    h: number,
    w: number,
    aux: boolean,
    dropout: boolean,
  ): { input: Value; outputs: { value: Value; shape: number[] }[] } {
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
    return { input, outputs };
  }
}

function navigatorThreads(): number {
  const n = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)
    ?.hardwareConcurrency;
  return Number.isSafeInteger(n) && n! > 0 ? n! : 1;
}

/** A copy of `input` taken now, so that a queued call runs on what it was given. */
function snapshot(input: Tensor, fn: string): Tensor {
  if (!(input instanceof Tensor)) {
    throw new ShapeError(
      `${fn} expects a Tensor of shape [N, 3, H, W], got ${describeValue(input)}`,
    );
  }
  const shape = [...input.shape];
  checkShape(shape);
  const size = shapeSize(shape);
  const data = input.data;
  if (!(data instanceof Float32Array) || data.length !== size) {
    throw new ShapeError(
      `Input data has ${(data as { length?: number })?.length} elements but shape [${
        shape.join(", ")
      }] needs ${size}`,
    );
  }
  return new Tensor(data.slice(), shape);
}

/** Rounds a float offset up to a multiple of 16 (64 bytes). */
function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
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
