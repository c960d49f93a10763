/**
 * The seed GoogLeNet (`tools/reference/seed_googlenet.py`, eval mode, no aux
 * heads) as data, so that every peer builds its graph from one description:
 * the stages in forward order, the state-dict keys and shapes they read, and
 * the input size the peers accept.
 *
 * @module
 */

import { ShapeError, StateDictError } from "../../src/errors.ts";
import type { Tensor } from "../../src/tensor.ts";

/** A `BasicConv2d`: convolution with bias, then ReLU. */
export interface ConvSpec {
  /** State-dict prefix of the convolution, e.g. `"inception3a.branch2.1.conv"`. */
  readonly key: string;
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Square kernel size. */
  readonly kernel: number;
  /** Stride, both axes. */
  readonly stride: number;
  /** Zero padding, all four sides. */
  readonly padding: number;
}

/** An `Inception` block: four branches concatenated along channels. */
export interface InceptionSpec {
  /** Module name, e.g. `"inception3a"`. */
  readonly name: string;
  /** branch1 (1x1), branch2 (1x1 then 3x3), branch3 (1x1 then 5x5). */
  readonly convBranches: readonly (readonly ConvSpec[])[];
  /** branch4: MaxPool2d(3, stride 1, padding 1) then this 1x1 convolution. */
  readonly poolProjection: ConvSpec;
  /** Output channels (sum over the branches). */
  readonly outChannels: number;
}

/** One stage of the trunk, in forward order. */
export type SeedStage =
  | { readonly kind: "conv"; readonly conv: ConvSpec }
  /** MaxPool2d(3, stride 2, ceil_mode=True), no padding. */
  | { readonly kind: "maxpool" }
  | { readonly kind: "inception"; readonly block: InceptionSpec };

/** Spatial input size every peer accepts: inputs are `[N, 3, 224, 224]`. */
export const SEED_INPUT_SIZE = 224;
/** Output classes of `fc`. */
export const SEED_CLASSES = 1000;
/** Channels entering the average pool and `fc`. */
export const SEED_FEATURES = 1024;

function conv(
  key: string,
  inChannels: number,
  outChannels: number,
  kernel: number,
  stride = 1,
  padding = 0,
): ConvSpec {
  return { key: `${key}.conv`, inChannels, outChannels, kernel, stride, padding };
}

function inception(
  name: string,
  inC: number,
  ch1x1: number,
  ch3x3red: number,
  ch3x3: number,
  ch5x5red: number,
  ch5x5: number,
  poolProj: number,
): SeedStage {
  const block: InceptionSpec = {
    name,
    convBranches: [
      [conv(`${name}.branch1`, inC, ch1x1, 1)],
      [
        conv(`${name}.branch2.0`, inC, ch3x3red, 1),
        conv(`${name}.branch2.1`, ch3x3red, ch3x3, 3, 1, 1),
      ],
      [
        conv(`${name}.branch3.0`, inC, ch5x5red, 1),
        conv(`${name}.branch3.1`, ch5x5red, ch5x5, 5, 1, 2),
      ],
    ],
    poolProjection: conv(`${name}.branch4.1`, inC, poolProj, 1),
    outChannels: ch1x1 + ch3x3 + ch5x5 + poolProj,
  };
  return { kind: "inception", block };
}

/** The trunk, `conv1` to `inception5b`; the head (average pool, flatten, `fc`) follows. */
export const SEED_STAGES: readonly SeedStage[] = [
  { kind: "conv", conv: conv("conv1", 3, 64, 7, 2, 3) },
  { kind: "maxpool" },
  { kind: "conv", conv: conv("conv2", 64, 64, 1) },
  { kind: "conv", conv: conv("conv3", 64, 192, 3, 1, 1) },
  { kind: "maxpool" },
  inception("inception3a", 192, 64, 96, 128, 16, 32, 32),
  inception("inception3b", 256, 128, 128, 192, 32, 96, 64),
  { kind: "maxpool" },
  inception("inception4a", 480, 192, 96, 208, 16, 48, 64),
  inception("inception4b", 512, 160, 112, 224, 24, 64, 64),
  inception("inception4c", 512, 128, 128, 256, 24, 64, 64),
  inception("inception4d", 512, 112, 144, 288, 32, 64, 64),
  inception("inception4e", 528, 256, 160, 320, 32, 128, 128),
  { kind: "maxpool" },
  inception("inception5a", 832, 256, 160, 320, 32, 128, 128),
  inception("inception5b", 832, 384, 192, 384, 48, 128, 128),
];

/** Every convolution of the trunk in state-dict order. */
export function seedConvs(): ConvSpec[] {
  return SEED_STAGES.flatMap((stage) => {
    if (stage.kind === "conv") return [stage.conv];
    if (stage.kind === "maxpool") return [];
    return [...stage.block.convBranches.flat(), stage.block.poolProjection];
  });
}

/**
 * The seed GoogLeNet's (`aux_logits=False`) state-dict keys and shapes, in
 * PyTorch's order: conv weights OIHW, then biases; `fc.weight` is `[out, in]`.
 *
 * @example
 * ```ts
 * import { seedStateDictShapes } from "./seed_architecture.ts";
 * import { deterministicStateDict } from "../../tools/deterministic.ts";
 * const stateDict = deterministicStateDict(seedStateDictShapes());
 * console.log(stateDict.size); // 116
 * ```
 */
export function seedStateDictShapes(): [string, number[]][] {
  const out: [string, number[]][] = [];
  for (const c of seedConvs()) {
    out.push([`${c.key}.weight`, [c.outChannels, c.inChannels, c.kernel, c.kernel]]);
    out.push([`${c.key}.bias`, [c.outChannels]]);
  }
  out.push(["fc.weight", [SEED_CLASSES, SEED_FEATURES]], ["fc.bias", [SEED_CLASSES]]);
  return out;
}

/**
 * Returns the state-dict entry `key`, checking its shape.
 *
 * @throws {StateDictError} When the key is missing or its shape differs.
 */
export function stateDictEntry(
  stateDict: ReadonlyMap<string, Tensor>,
  key: string,
  shape: readonly number[],
): Tensor {
  const t = stateDict.get(key);
  if (!t) throw new StateDictError(`Missing key "${key}"`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new StateDictError(
      `"${key}" has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`,
    );
  }
  return t;
}

/**
 * Checks that `input` is `[N, 3, 224, 224]` and returns N.
 *
 * @throws {ShapeError} For any other shape.
 */
export function checkSeedInput(input: Tensor): number {
  const [n, c, h, w] = input.shape;
  if (
    input.shape.length !== 4 || n < 1 || c !== 3 || h !== SEED_INPUT_SIZE ||
    w !== SEED_INPUT_SIZE
  ) {
    throw new ShapeError(
      `Expected input [N, 3, ${SEED_INPUT_SIZE}, ${SEED_INPUT_SIZE}], got [${
        input.shape.join(", ")
      }]`,
    );
  }
  return n;
}
