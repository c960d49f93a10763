/**
 * The operation table: the few operations GoogLeNet lowers to, on NHWC
 * activations. Every backend (Wasm, WebGPU) runs exactly these records, so
 * one test table checks them all.
 *
 * Activations live in one arena. A {@linkcode View} addresses a channel slice
 * of a buffer: pixel `p`, channel `c` is at float
 * `offset(buffer) + p * stride + channelOffset + c`. A convolution writing
 * into the slice of an Inception block's output makes concatenation free.
 *
 * @module
 */

/** A channel slice of an arena buffer. */
export interface View {
  /** Buffer id (an index into {@linkcode Plan.buffers}). */
  readonly buffer: number;
  /** First channel of the slice. */
  readonly channelOffset: number;
  /** Floats between consecutive pixels (the buffer's channel count). */
  readonly stride: number;
}

/** Where a packed weight matrix lives in the weight blob. */
export interface PackedRef {
  /** Offset of the first panel, in floats from the start of the weight blob. */
  readonly offset: number;
  /** Depth of the GEMM (KH * KW * C for a convolution, in_features for a linear). */
  readonly k: number;
  /** Output columns (out channels or out features). */
  readonly n: number;
}

/**
 * A Winograd minimal-filtering algorithm: F(4x4, 3x3) and F(2x2, 5x5) on 6x6
 * transform tiles, F(2x2, 3x3) on 4x4 ones (weights 16/9, not 36/9, the size
 * of the kernel's).
 */
export type WinogradVariant = "f4x3" | "f2x5" | "f2x3";

/** Where a convolution's Winograd-transformed weights live, and for which algorithm. */
export interface WinogradRef extends PackedRef {
  /** The algorithm the weights were transformed for. */
  readonly variant: WinogradVariant;
}

/** The geometry of a convolution: batch, input map, kernel, stride, padding, output map. */
export interface ConvGeometry {
  /** Batch size (rows for a linear layer seen as a 1x1 convolution). */
  readonly n: number;
  /** Input height. */
  readonly h: number;
  /** Input width. */
  readonly w: number;
  /** Input channels. */
  readonly c: number;
  /** Kernel height. */
  readonly kh: number;
  /** Kernel width. */
  readonly kw: number;
  /** Vertical stride. */
  readonly sh: number;
  /** Horizontal stride. */
  readonly sw: number;
  /** Zero padding above and below. */
  readonly ph: number;
  /** Zero padding left and right. */
  readonly pw: number;
  /** Output height. */
  readonly oh: number;
  /** Output width. */
  readonly ow: number;
}

/** Convolution + bias + ReLU, any kernel, stride and padding (NHWC, OIHW weights packed). */
export interface Conv2dOp extends ConvGeometry {
  /** Which operation this is. */
  readonly kind: "conv2d";
  /** Layer name for messages (`inception3a.branch2.1`). */
  readonly name: string;
  /** The input view. */
  readonly x: View;
  /** The output view (a channel slice of a wider buffer when it feeds a concatenation). */
  readonly y: View;
  /** The packed weight matrix (bias in front of each panel). */
  readonly weights: PackedRef;
  /**
   * Further outputs of a fused 1x1 convolution: the GEMM's columns after the
   * first `weights.n - sum(channels)` (which go to `y`) go, in order, to these
   * views. Empty for an ordinary convolution. The Inception block's three 1x1
   * convolutions that read the same input run as one such GEMM.
   */
  readonly moreOutputs: readonly { readonly y: View; readonly channels: number }[];
  /**
   * The layers whose weights the GEMM holds, by state-dict prefix, in output
   * order (`y`'s first, then each of `moreOutputs`'): what the backward pass
   * derives each part's gradients for.
   */
  readonly layers: readonly string[];
  /**
   * The same weights transformed for a Winograd algorithm (3x3 kernels with
   * padding 1 or 5x5 ones with padding 2; stride 1), when the model keeps
   * them: backends that have the kernels use them, others use `weights`.
   */
  readonly winograd: WinogradRef | null;
}

/** y = x W^T + b (optionally ReLU) over m rows. */
export interface LinearOp {
  /** Which operation this is. */
  readonly kind: "linear";
  /** The layer it comes from (`inception3a.branch2.1.conv`), for messages and profiles. */
  readonly name: string;
  /** The input view. */
  readonly x: View;
  /** The output view (a channel slice of a wider buffer when it feeds a concatenation). */
  readonly y: View;
  /** Rows (images). */
  readonly m: number;
  /** The packed weight matrix (bias in front of each panel). */
  readonly weights: PackedRef;
  /** Whether ReLU follows. */
  readonly relu: boolean;
  /** The layer whose weights these are, by state-dict prefix (`fc`). */
  readonly layer: string;
}

/** Max or average pooling (average counts padding, PyTorch's default). */
export interface Pool2dOp {
  /** Which operation this is. */
  readonly kind: "maxpool2d" | "avgpool2d";
  /** The layer it comes from (`inception3a.branch2.1.conv`), for messages and profiles. */
  readonly name: string;
  /** The input view. */
  readonly x: View;
  /** The output view (a channel slice of a wider buffer when it feeds a concatenation). */
  readonly y: View;
  /** Batch size. */
  readonly n: number;
  /** Input height. */
  readonly h: number;
  /** Input width. */
  readonly w: number;
  /** Input channels. */
  readonly c: number;
  /** Square kernel size. */
  readonly k: number;
  /** Stride. */
  readonly s: number;
  /** Zero padding on every side. */
  readonly p: number;
  /** Output height. */
  readonly oh: number;
  /** Output width. */
  readonly ow: number;
}

/** Adaptive average pool to oh x ow (PyTorch's bins); 1x1 is the global average pool. */
export interface AdaptiveAvgPoolOp {
  /** Which operation this is. */
  readonly kind: "adaptive_avgpool2d";
  /** The layer it comes from (`inception3a.branch2.1.conv`), for messages and profiles. */
  readonly name: string;
  /** The input view. */
  readonly x: View;
  /** The output view (a channel slice of a wider buffer when it feeds a concatenation). */
  readonly y: View;
  /** Batch size. */
  readonly n: number;
  /** Input height. */
  readonly h: number;
  /** Input width. */
  readonly w: number;
  /** Input channels. */
  readonly c: number;
  /** Output height. */
  readonly oh: number;
  /** Output width. */
  readonly ow: number;
}

/** Inverted dropout in place over `count` floats of a dense buffer. */
export interface DropoutOp {
  /** Which operation this is. */
  readonly kind: "dropout";
  /** The layer it comes from (`inception3a.branch2.1.conv`), for messages and profiles. */
  readonly name: string;
  /** The input view. */
  readonly x: View;
  /** Floats the mask covers. */
  readonly count: number;
  /** Probability of zeroing each value. */
  readonly p: number;
  /** Which of the forward call's seeds this op draws its mask from. */
  readonly stream: number;
}

/**
 * Where a layer's gradients live in the weight blob: `dW` dense `[n, k]`
 * (columns in the packed row order, as the forward GEMM's B rows), then `db`
 * `[n]`. Backward operations accumulate into it, like PyTorch's `.grad`.
 */
export interface GradRef {
  /** Offset of `dW`, in floats from the start of the weight blob. */
  readonly offset: number;
  /** Depth of the layer's GEMM (columns of `dW`). */
  readonly k: number;
  /** Output columns of the layer's GEMM (rows of `dW`, length of `db`). */
  readonly n: number;
}

/**
 * Backward-data of a stride-1 convolution (or a linear layer, as a 1x1 one
 * over `n` rows): `dx (+)= conv(dy, W^T flipped)`, a forward convolution of
 * the output gradient with the transposed, flipped weights (packed apart, bias
 * zero), without ReLU. Its geometry is that transposed convolution's: `h`,
 * `w`, `c` are the output gradient's, `oh`, `ow`, `oc` the input gradient's,
 * stride 1, padding kh - 1 - the layer's.
 */
export interface Conv2dGradInputOp extends ConvGeometry {
  /** Which operation this is. */
  readonly kind: "conv2d_grad_input";
  /** The layer it comes from, for messages and profiles. */
  readonly name: string;
  /** The output gradient (pre-activation: after the ReLU's backward). */
  readonly dy: View;
  /** The input gradient it writes, or adds to when `accumulate`. */
  readonly dx: View;
  /** Input-gradient channels (the layer's inputs). */
  readonly oc: number;
  /** The transposed, flipped weights, GEMM-packed (depth kh * kw * c, oc columns, zero bias). */
  readonly weights: PackedRef;
  /** The same in a Winograd form, when the backend keeps one. */
  readonly winograd: WinogradRef | null;
  /** Add to `dx` (another consumer wrote it first) instead of overwriting it. */
  readonly accumulate: boolean;
}

/**
 * Weight and bias gradients of a convolution (or a linear layer, as a 1x1 one
 * over `n` rows of `c` features): `dW[o, k] += sum_p dy[p, o] * im2col(x)[p, k]`
 * and `db[o] += sum_p dy[p, o]`, summed in ascending output pixel order.
 */
export interface Conv2dGradWeightOp extends ConvGeometry {
  /** Which operation this is. */
  readonly kind: "conv2d_grad_weight";
  /** The layer it comes from, for messages and profiles. */
  readonly name: string;
  /** The layer's input (as the forward read it). */
  readonly x: View;
  /** The output gradient (pre-activation). */
  readonly dy: View;
  /** Output channels. */
  readonly oc: number;
  /** Where the gradients accumulate. */
  readonly grad: GradRef;
}

/** ReLU's backward from its output: `dy = y > 0 ? dy : 0`, in place. */
export interface ReluGradOp {
  /** Which operation this is. */
  readonly kind: "relu_grad";
  /** The layer it comes from, for messages and profiles. */
  readonly name: string;
  /** The ReLU's output. */
  readonly y: View;
  /** Its gradient, masked in place. */
  readonly dy: View;
  /** Pixels (rows). */
  readonly pixels: number;
  /** Channels. */
  readonly c: number;
}

/**
 * Backward of a max or average pool: the output gradient scattered to each
 * window's first maximum (max, PyTorch's rule) or spread over the window
 * (average, `count_include_pad`). Geometry as the forward {@linkcode Pool2dOp}.
 */
export interface Pool2dGradOp {
  /** Which operation this is. */
  readonly kind: "maxpool2d_grad" | "avgpool2d_grad";
  /** The layer it comes from, for messages and profiles. */
  readonly name: string;
  /** The forward input (read by the max pool to find each window's maximum). */
  readonly x: View;
  /** The output gradient. */
  readonly dy: View;
  /** The input gradient. */
  readonly dx: View;
  /** Batch size. */
  readonly n: number;
  /** Input height. */
  readonly h: number;
  /** Input width. */
  readonly w: number;
  /** Input channels. */
  readonly c: number;
  /** Square kernel size. */
  readonly k: number;
  /** Stride. */
  readonly s: number;
  /** Zero padding on every side. */
  readonly p: number;
  /** Output height. */
  readonly oh: number;
  /** Output width. */
  readonly ow: number;
  /** Add to `dx` instead of overwriting it. */
  readonly accumulate: boolean;
  /**
   * Max pool only: `x` is a ReLU's output, and `dx` leaves masked as that
   * ReLU's `relu_grad` would leave it (`x <= 0 ? 0 : dx`), which is then not emitted.
   */
  readonly relu?: boolean;
}

/** Backward of an adaptive average pool (geometry as {@linkcode AdaptiveAvgPoolOp}). */
export interface AdaptiveAvgPoolGradOp {
  /** Which operation this is. */
  readonly kind: "adaptive_avgpool2d_grad";
  /** The layer it comes from, for messages and profiles. */
  readonly name: string;
  /** The output gradient. */
  readonly dy: View;
  /** The input gradient. */
  readonly dx: View;
  /** Batch size. */
  readonly n: number;
  /** Input height. */
  readonly h: number;
  /** Input width. */
  readonly w: number;
  /** Input channels. */
  readonly c: number;
  /** Output height. */
  readonly oh: number;
  /** Output width. */
  readonly ow: number;
  /** Add to `dx` instead of overwriting it. */
  readonly accumulate: boolean;
}

/** The forward operations. */
export type ForwardOp = Conv2dOp | LinearOp | Pool2dOp | AdaptiveAvgPoolOp | DropoutOp;

/**
 * The backward operations (`src/graph/backward.ts` derives them from the
 * forward ones; a dropout's backward is a {@linkcode DropoutOp} replaying its
 * mask on the gradient).
 */
export type BackwardOp =
  | Conv2dGradInputOp
  | Conv2dGradWeightOp
  | ReluGradOp
  | Pool2dGradOp
  | AdaptiveAvgPoolGradOp;

/**
 * How an index of a packed matrix maps to a float of a staged weight:
 * `x -> (x % c) * a + floor(x / c) * b` (`b` may be negative: taps walked
 * backwards for the flipped input-gradient weights).
 */
export interface Gather {
  /** The modulus. */
  readonly c: number;
  /** Floats per unit of `x % c`. */
  readonly a: number;
  /** Floats per unit of `floor(x / c)`. */
  readonly b: number;
}

/**
 * Packs a weight staged in the weight blob (a PyTorch layout) into GEMM
 * panels, `packGemm`'s layout and bits: packed row r, column j is
 * `blob[source + base + gather(r, rows) + gather(j, cols)]`. Training's
 * repack after an optimizer step; it reads and writes only the weight blob.
 */
export interface PackGemmOp {
  /** Which operation this is. */
  readonly kind: "pack_gemm";
  /** The layer, for messages and profiles. */
  readonly name: string;
  /** Float offset of the staged weight in the weight blob. */
  readonly source: number;
  /** Added to every source index (the last tap of a flipped kernel). */
  readonly base: number;
  /** How packed rows map to the source. */
  readonly rows: Gather;
  /** How packed columns map to the source. */
  readonly cols: Gather;
  /** Float offset of the staged bias [n], or -1 for a zero bias. */
  readonly bias: number;
  /** Where the packed matrix goes. */
  readonly weights: PackedRef;
}

/**
 * Transforms a staged r x r convolution weight into its Winograd form,
 * `packWinograd`'s layout and bits (U = G g G^T in f64, rounded once): tap t
 * (row-major) of output o, input ci is
 * `blob[source + base + o * os + ci * cs + t * ts]`.
 */
export interface PackWinogradOp {
  /** Which operation this is. */
  readonly kind: "pack_winograd";
  /** The layer, for messages and profiles. */
  readonly name: string;
  /** Float offset of the staged weight in the weight blob. */
  readonly source: number;
  /** Added to every source index. */
  readonly base: number;
  /** Floats between outputs. */
  readonly os: number;
  /** Floats between inputs. */
  readonly cs: number;
  /** Floats between taps. */
  readonly ts: number;
  /** Float offset of the staged bias [oc], or -1 for a zero bias. */
  readonly bias: number;
  /** Input channels (the depth of each packed matrix). */
  readonly c: number;
  /** Where the Winograd form goes (`n` output channels) and for which algorithm. */
  readonly weights: WinogradRef;
}

/**
 * PyTorch 1.13's SGD update of one parameter, as f32 constants (`f32` of each
 * hyper-parameter expression, as `src/train/sgd.ts` computes them).
 */
export interface SgdRule {
  /** Which rule. */
  readonly kind: "sgd";
  /** Weight decay (0: none). */
  readonly weightDecay: number;
  /** Momentum (0: no buffer). */
  readonly momentum: number;
  /** 1 - dampening. */
  readonly keep: number;
  /** -lr. */
  readonly step: number;
  /** Nesterov momentum. */
  readonly nesterov: boolean;
  /** The momentum buffer does not exist yet: it starts from the gradient. */
  readonly first: boolean;
}

/**
 * PyTorch 1.13's Adam or AdamW update of one parameter at its step t, as the
 * f32 constants `src/train/adam.ts` computes (bias corrections in f64, then rounded).
 */
export interface AdamRule {
  /** Which rule. */
  readonly kind: "adam";
  /** beta1. */
  readonly b1: number;
  /** beta2. */
  readonly b2: number;
  /** 1 - beta1. */
  readonly a1: number;
  /** 1 - beta2. */
  readonly a2: number;
  /** Weight decay (0: none). */
  readonly weightDecay: number;
  /** Added to the denominator. */
  readonly eps: number;
  /** -lr / (1 - beta1^t). */
  readonly stepSize: number;
  /** sqrt(1 - beta2^t). */
  readonly bc2: number;
  /** 1 - lr * weightDecay (AdamW's decoupled decay). */
  readonly shrink: number;
  /** AdamW: the decay shrinks the parameter instead of entering the gradient. */
  readonly decoupled: boolean;
}

/** An element-wise optimizer rule. */
export type UpdateRule = SgdRule | AdamRule;

/**
 * One optimizer step of one parameter in the weight blob: the parameter (PyTorch
 * layout, read at `x` and written at `xOut`, in place when they are equal), its
 * gradient, and its state tensors (the
 * parameter's layout: `[momentum_buffer]` for SGD with momentum,
 * `[exp_avg, exp_avg_sq]` for Adam). Element `o * k + s` reads the gradient at
 * `grad + o * k + gather(s)` (`gather` null: `grad + o * k + s`), which undoes
 * the backend's row order without a converted copy.
 */
export interface OptimStepOp {
  /** Which operation this is. */
  readonly kind: "optim_step";
  /** The parameter's state-dict key. */
  readonly name: string;
  /** Float offset of the parameter. */
  readonly x: number;
  /** Float offset the updated parameter is written to (`x`: in place; else a region of the same size). */
  readonly xOut: number;
  /** Float offset of its gradient. */
  readonly grad: number;
  /** Elements. */
  readonly size: number;
  /** Row length of the gather (a multiple of every chunk bound). */
  readonly k: number;
  /** How element s of a row maps to its gradient (`b` is 1), or null for contiguous. */
  readonly gather: Gather | null;
  /** Float offsets of the state tensors the rule reads and writes. */
  readonly state: readonly number[];
  /** Which update rule. */
  readonly rule: UpdateRule["kind"];
  /**
   * Float offset of the rule's constants for this step (`ruleConstants` in
   * `src/backend/wasm/optim.ts`), written there before each run: the
   * operation, and so its plan, is the same from step to step.
   */
  readonly constants: number;
}

/**
 * A convolution's weight and bias with an eval-mode BatchNorm folded in,
 * from the staged PyTorch tensors (`foldBatchNorm`'s bits: per output channel
 * `s = gamma / sqrt(var + eps)` in f64, `W' = W s`, `b' = beta - mean s`,
 * each rounded once), written where the repack packs from.
 */
export interface FoldBatchNormOp {
  /** Which operation this is. */
  readonly kind: "fold_batchnorm";
  /** The convolution's state-dict prefix. */
  readonly name: string;
  /** Float offset of `conv.weight` `[n, k]` (OIHW flattened). */
  readonly weight: number;
  /** Float offset of `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var`, n floats each. */
  readonly batchNorm: number;
  /** The BatchNorm's eps. */
  readonly eps: number;
  /** Output channels. */
  readonly n: number;
  /** Fan-in. */
  readonly k: number;
  /** Float offset of the folded weight `[n, k]`. */
  readonly outWeight: number;
  /** Float offset of the folded bias `[n]`. */
  readonly outBias: number;
}

/** Sets floats `[offset, offset + size)` of the weight blob to zero (the gradients, for `zeroGrad`). */
export interface ZeroOp {
  /** Which operation this is. */
  readonly kind: "zero";
  /** What is zeroed, for messages. */
  readonly name: string;
  /** Float offset of the first float. */
  readonly offset: number;
  /** Floats. */
  readonly size: number;
}

/**
 * Operations on the weight blob alone (training's repack, optimizer and
 * gradient zeroing), run as a plan of their own.
 */
export type WeightOp = PackGemmOp | PackWinogradOp | FoldBatchNormOp | OptimStepOp | ZeroOp;

/** One operation of a plan. */
export type Op = ForwardOp | BackwardOp | WeightOp;

/** An arena buffer: its size and where the planner placed it. */
export interface BufferSpec {
  /** Size in floats. */
  readonly size: number;
  /** Offset in floats from the arena base. */
  readonly offset: number;
}

/**
 * A compiled forward pass for one input shape and mode: the operations in
 * order, the arena layout, and which buffers hold the input and outputs.
 */
export interface Plan {
  /** The operations, in execution order. */
  readonly ops: readonly Op[];
  /**
   * The operations grouped into steps, as indices into `ops`, in order: no
   * operation of a step writes memory that another one of the same step reads
   * or writes, so a backend may run a step's operations in any order or at
   * once, and needs to synchronise only between steps (an Inception block is
   * two steps: its 1x1 convolutions with the max pool, then the rest).
   */
  readonly steps: readonly (readonly number[])[];
  /** Every arena buffer, indexed by buffer id. */
  readonly buffers: readonly BufferSpec[];
  /** Arena size in floats. */
  readonly arenaSize: number;
  /** The NHWC input buffer [n, h, w, 3]. */
  readonly input: number;
  /** Output buffers, dense [n, features], in the order forward returns them. */
  readonly outputs: readonly { readonly buffer: number; readonly shape: readonly number[] }[];
  /** Number of dropout seeds a call needs. */
  readonly dropoutStreams: number;
  /** Per-channel `x * scale + shift` applied to the input as it is copied in (torchvision's transform_input). */
  readonly inputTransform:
    | { readonly scale: readonly number[]; readonly shift: readonly number[] }
    | null;
  /**
   * The weight layout the operations' weight offsets were made for (a
   * model's plans), or null for a plan that names its own offsets (kernel
   * tests). A backend runs a plan only when it holds the same layout
   * (`Backend.weightLayout`): a plan of another model or backend kind would
   * read other layers' weights, or past them. Weight plans
   * (`Backend.runWeights`) are not checked.
   */
  readonly weightLayout: WeightLayout | null;
}

/**
 * Where a model's weights lie in a backend's weight blob: the backend kind
 * whose forms they are and each layer's packed forms and training regions.
 * Two layouts with equal fields place every layer alike, so a plan made for
 * one runs on a backend holding the other.
 */
export interface WeightLayout {
  /** The backend kind whose kernels read these forms. */
  readonly backend: "wasm" | "webgpu";
  /** Floats of the blob, training's regions included. */
  readonly floats: number;
  /** Each layer's forms, one line each in blob order (`"fc: packed 6998528 (1024x10)"`). */
  readonly layers: readonly string[];
}
