/**
 * The two GoogLeNets this library builds: the project's reference
 * (`tools/reference/seed_googlenet.py`) and torchvision's (whose ImageNet
 * weights users have). Every difference between them is listed here, in one
 * place; the layers read it.
 *
 * @module
 */

/** Which GoogLeNet definition to build. */
export type VariantName = "seed" | "torchvision";

/** The architectural differences between the variants. */
export interface Variant {
  readonly name: VariantName;
  /** BasicConv2d is conv (no bias) + BatchNorm(eps) + ReLU instead of conv (bias) + ReLU. */
  readonly batchNormEps: number | null;
  /** Kernel of the second convolution of branch3 (torchvision keeps a 3x3 for its weights). */
  readonly branch3Kernel: 3 | 5;
  /** Kernel of maxpool4 (stride 2, ceil mode in both). */
  readonly maxpool4Kernel: 2 | 3;
  /** Aux head's first pool: AvgPool2d(5, stride 3), or adaptive average pool to 4x4. */
  readonly auxPool: "avgpool5s3" | "adaptive4x4";
  /** Dropout before `fc`. */
  readonly dropout: number;
  /** Aux head dropout: probability, and whether it also precedes fc1 (else only fc2). */
  readonly auxDropout: { readonly p: number; readonly beforeFc1: boolean };
  /** Default of `transformInput`. */
  readonly transformInput: boolean;
}

/** The reference network: conv + bias + ReLU, 5x5 branch3, AvgPool(5, 3) aux heads. */
export const SEED: Variant = {
  name: "seed",
  batchNormEps: null,
  branch3Kernel: 5,
  maxpool4Kernel: 3,
  auxPool: "avgpool5s3",
  dropout: 0.4,
  auxDropout: { p: 0.5, beforeFc1: true },
  transformInput: false,
};

/** torchvision 0.14's `googlenet`: BatchNorm (folded into the conv at load), 3x3 branch3. */
export const TORCHVISION: Variant = {
  name: "torchvision",
  batchNormEps: 0.001,
  branch3Kernel: 3,
  maxpool4Kernel: 2,
  auxPool: "adaptive4x4",
  dropout: 0.2,
  auxDropout: { p: 0.7, beforeFc1: false },
  transformInput: true,
};

/**
 * torchvision's `transform_input`: maps an ImageNet-normalised input to the
 * [-1, 1] normalisation its weights were trained with, per channel
 * `x * scale + shift` with scale = std / 0.5 and shift = (mean - 0.5) / 0.5.
 */
export const TRANSFORM_INPUT = {
  scale: [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5],
  shift: [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5],
} as const;

/** Looks a variant up by name. */
export function variantByName(name: VariantName): Variant {
  return name === "torchvision" ? TORCHVISION : SEED;
}
