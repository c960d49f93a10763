/**
 * Hostile input, as a table: each case does one bad thing to one shared model
 * (or to the library around it) and names the error class and message it must
 * get; after every case, failed or not, the model must still give the
 * baseline logits of a known good input, bit for bit.
 *
 * To add a case (do add each new bug found): append a row to `CASES`.
 * `expected: null` means the action must succeed (it asserts what it needs
 * itself). A row with `todo` is a known bug waiting for its fix: its
 * expectation is checked and a failure is printed, not raised, and once the
 * bug is fixed the row fails until the `todo` is removed.
 * The after-case check applies to every row, `todo` or not.
 */

import assert from "node:assert/strict";
import {
  BackendError,
  decodeImage,
  GoogLeNet,
  ImageError,
  MemoryLimitError,
  readSafetensors,
  ShapeError,
  StateDictError,
  Tensor,
  WeightsFormatError,
  writeSafetensors,
} from "../mod.ts";
import { deterministicInput, deterministicStateDict } from "../tools/deterministic.ts";
import {
  jpegBomb,
  jpegScanBomb,
  pngBomb,
  safetensorsWithHeader,
  tinyPng,
  truncatedJpeg,
  withHeaderLength,
} from "./_support/edge_bytes.ts";
import { assertSameBits } from "./_support/edge_child.ts";
import { classify, loadWeights, OptionError, preprocess, readPth, topK, writePth } from "../mod.ts";
import {
  ancillaryBombPng,
  arrayHeaderSafetensors,
  badDepthPng,
  deflatedPicklePth,
  emptyDictsPth,
  greyPng,
  nestedKeyPth,
  reduceBombPth,
  sharedStreamZip,
  twoIhdrPng,
} from "./_support/hostile_bytes.ts";

type ErrorClass = new (...args: never[]) => Error;

interface Context {
  /** The shared model (auxLogits: false, threads: 2, deterministic weights). */
  model: GoogLeNet;
  /** Its weights, to restore after a case that changes them on purpose. */
  stateDict: Map<string, Tensor>;
  /** The known good input and its logits. */
  good: Tensor;
  baseline: Float32Array;
  /** A valid safetensors file of `stateDict`. */
  weightFile: Uint8Array;
}

interface HostileCase {
  name: string;
  /** What the case does; it may throw synchronously or reject. */
  action: (ctx: Context) => unknown;
  /** The error it must raise, or null if it must succeed. */
  expected: { error: ErrorClass; message: RegExp } | null;
  /** Runs after the action, whatever happened (e.g. to restore weights). */
  cleanup?: (ctx: Context) => unknown;
  /** A known bug: what must change, where. */
  todo?: string;
}

const reference: Record<"aux" | "no_aux", [string, number[]][]> = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/state_dict.json", import.meta.url)),
);
const torchvisionKeys: Record<"aux" | "no_aux", [string, number[]][]> = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/torchvision_state_dict.json", import.meta.url)),
);

const shape = (...s: number[]) => Tensor.zeros(s);
/** An object that passes `instanceof Tensor` but lies about its shape or data. */
const fakeTensor = (data: Float32Array, s: number[]): Tensor =>
  Object.assign(Object.create(Tensor.prototype), { data, shape: s });
/** The model's logits for `input`, as a tensor. */
const logits = async (ctx: Context, input: Tensor) => (await ctx.model.forward(input)) as Tensor;
const count = (data: Float32Array, pred: (v: number) => boolean) => data.filter(pred).length;
/** `ctx.stateDict` with `key` replaced. */
const withEntry = (ctx: Context, key: string, t: unknown) =>
  new Map<string, Tensor>([...ctx.stateDict, [key, t as Tensor]]);
/** The good input with one pixel of channel 0 set to `value`. */
const goodWith = (ctx: Context, value: number) => {
  const data = new Float32Array(ctx.good.data);
  data[64 * 30 + 30] = value;
  return new Tensor(data, ctx.good.shape);
};
/** A few ResNet-50 keys with their shapes: a state dict of the wrong network. */
const RESNET: [string, number[]][] = [
  ["conv1.weight", [64, 3, 7, 7]],
  ["bn1.weight", [64]],
  ["bn1.bias", [64]],
  ["layer1.0.conv1.weight", [64, 64, 1, 1]],
  ["layer4.2.conv3.weight", [2048, 512, 1, 1]],
  ["fc.weight", [1000, 2048]],
  ["fc.bias", [1000]],
];
const resnet = () => deterministicStateDict(RESNET);

const CASES: HostileCase[] = [
  // ---- forward: shapes ----
  {
    name: "rank 3 input (a single image without its batch dimension)",
    action: ({ model }) => model.forward(shape(3, 64, 64)),
    expected: { error: ShapeError, message: /rank 4 \[N, 3, H, W\], got rank 3 \[3, 64, 64\]/ },
  },
  {
    name: "rank 5 input",
    action: ({ model }) => model.forward(shape(1, 1, 3, 32, 32)),
    expected: { error: ShapeError, message: /got rank 5/ },
  },
  {
    name: "rank 0 input (a scalar)",
    action: ({ model }) => model.forward(shape()),
    expected: { error: ShapeError, message: /got rank 0 \[\]/ },
  },
  {
    name: "1 channel (grayscale)",
    action: ({ model }) => model.forward(shape(1, 1, 64, 64)),
    expected: { error: ShapeError, message: /Expected 3 input channels .* got 1/ },
  },
  {
    name: "4 channels (RGBA)",
    action: ({ model }) => model.forward(shape(1, 4, 64, 64)),
    expected: { error: ShapeError, message: /Expected 3 input channels .* got 4/ },
  },
  {
    name: "channels last [N, H, W, 3]",
    action: ({ model }) => model.forward(shape(1, 64, 64, 3)),
    expected: { error: ShapeError, message: /Expected 3 input channels .* got 64/ },
  },
  {
    name: "empty batch",
    action: ({ model }) => model.forward(shape(0, 3, 64, 64)),
    expected: { error: ShapeError, message: /non-empty input/ },
  },
  {
    name: "empty image (height 0)",
    action: ({ model }) => model.forward(shape(1, 3, 0, 64)),
    expected: { error: ShapeError, message: /non-empty input/ },
  },
  {
    name: "image too small for the network (16x16)",
    action: ({ model }) => model.forward(shape(1, 3, 16, 16)),
    expected: { error: ShapeError, message: /too small for this network/ },
  },
  // ---- forward: not tensors ----
  {
    name: "a plain object with data and shape instead of a Tensor",
    action: ({ model, good }) => model.forward({ data: good.data, shape: good.shape } as never),
    expected: { error: ShapeError, message: /forward expects a Tensor/ },
  },
  {
    name: "null input",
    action: ({ model }) => model.forward(null as never),
    expected: { error: ShapeError, message: /forward expects a Tensor/ },
  },
  {
    name: "nested arrays instead of a Tensor",
    action: ({ model }) => model.forward([[[[0, 0, 0]]]] as never),
    expected: { error: ShapeError, message: /forward expects a Tensor/ },
  },
  // ---- the Tensor constructor ----
  {
    name: "Tensor data as a Float64Array",
    action: () => new Tensor(new Float64Array(12) as never, [1, 3, 2, 2]),
    expected: { error: ShapeError, message: /must be a Float32Array, got Float64Array/ },
  },
  {
    name: "Tensor data as a number[]",
    action: () => new Tensor(new Array(12).fill(0) as never, [1, 3, 2, 2]),
    expected: { error: ShapeError, message: /must be a Float32Array, got Array/ },
  },
  {
    name: "Tensor data as a Uint8Array (image bytes)",
    action: () => new Tensor(new Uint8Array(12) as never, [1, 3, 2, 2]),
    expected: { error: ShapeError, message: /must be a Float32Array, got Uint8Array/ },
  },
  {
    name: "Tensor shape and data length mismatch",
    action: () => new Tensor(new Float32Array(10), [1, 3, 2, 2]),
    expected: { error: ShapeError, message: /has 10 elements but shape \[1, 3, 2, 2\] needs 12/ },
  },
  {
    name: "Tensor with a negative dimension",
    action: () => Tensor.zeros([1, 3, -1, 5]),
    expected: { error: ShapeError, message: /invalid dimension -1/ },
  },
  {
    name: "Tensor with a fractional dimension",
    action: () => Tensor.zeros([1, 3, 1.5, 2]),
    expected: { error: ShapeError, message: /invalid dimension 1\.5/ },
  },
  {
    name: "Tensor with a NaN dimension",
    action: () => Tensor.zeros([1, 3, NaN, 2]),
    expected: { error: ShapeError, message: /invalid dimension NaN/ },
  },
  {
    name: "Tensor shape as a string",
    action: () => Tensor.zeros("1,3,2,2" as never),
    expected: { error: ShapeError, message: /Shape must be an array/ },
  },
  {
    name: "Tensor shape of more than 2^53 elements",
    action: () => Tensor.zeros([2 ** 30, 2 ** 30, 2 ** 30]),
    expected: { error: ShapeError, message: /too many elements/ },
  },
  // ---- forward: values (no error: NaN and Infinity propagate like PyTorch) ----
  {
    name:
      "a NaN pixel in image 0 of a batch of 2: all of image 0's logits are NaN, image 1's are exact",
    action: async (ctx) => {
      // PyTorch: conv spreads the NaN over a window, ReLU and max pooling keep NaN, 1x1 convs
      // mix it into every channel, the average pool and fc into every logit of that image.
      const data = new Float32Array(2 * ctx.good.size);
      data.set(ctx.good.data, ctx.good.size);
      data[100] = NaN;
      const out = await logits(ctx, new Tensor(data, [2, 3, 64, 64]));
      assert.equal(count(out.data.subarray(0, 1000), Number.isNaN), 1000);
      assertSameBits(out.data.subarray(1000), ctx.baseline, "the other image of the batch");
    },
    expected: null,
  },
  {
    name: "an all-NaN image: every logit is NaN",
    action: async (ctx) => {
      const out = await logits(
        ctx,
        new Tensor(new Float32Array(ctx.good.size).fill(NaN), [1, 3, 64, 64]),
      );
      assert.equal(count(out.data, Number.isNaN), 1000);
    },
    expected: null,
  },
  ...[Infinity, -Infinity].map((value): HostileCase => ({
    name: `a ${value} pixel: every logit is NaN (Inf - Inf once channels mix, as in PyTorch)`,
    action: async (ctx) => {
      const out = await logits(ctx, goodWith(ctx, value));
      assert.equal(count(out.data, Number.isNaN), 1000);
    },
    expected: null,
  })),
  {
    // Finite in, but float32 sums overflow to +-Inf inside the network, then Inf - Inf gives NaN.
    name: "the largest finite float32 as a pixel: no error, every logit NaN (float32 overflow)",
    action: async (ctx) => {
      const out = await logits(ctx, goodWith(ctx, 3.4028234663852886e38));
      assert.equal(count(out.data, Number.isNaN), 1000);
    },
    expected: null,
  },
  {
    name: "subnormal pixels: finite logits",
    action: async (ctx) => {
      const out = await logits(
        ctx,
        new Tensor(new Float32Array(ctx.good.size).fill(1e-45), [1, 3, 64, 64]),
      );
      assert.equal(count(out.data, (v) => !Number.isFinite(v)), 0);
    },
    expected: null,
  },
  // ---- sizes past 32-bit offsets ----
  {
    // A real [1, 3, 40000, 40000] tensor needs 19 GB; the planner and the memory check only read
    // the shape, so an object that passes `instanceof Tensor` with 12 floats exercises that path.
    name:
      "an input claiming [1, 3, 40000, 40000] with 12 floats of data is refused before any copy",
    action: ({ model }) => model.forward(fakeTensor(new Float32Array(12), [1, 3, 40000, 40000])),
    expected: {
      error: ShapeError,
      message: /Input data has 12 elements but shape \[1, 3, 40000, 40000\] needs 4800000000/,
    },
  },
  {
    name: "plan() of a shape whose input alone exceeds a typed array ([1, 3, 2^20, 2^20])",
    action: ({ model }) => model.plan([1, 3, 2 ** 20, 2 ** 20]),
    expected: null,
  },
  // ---- forward: tensors whose data lies about their shape ----
  {
    name: "a Tensor-like object whose data is shorter than its shape",
    action: ({ model }) => model.forward(fakeTensor(new Float32Array(12), [1, 3, 64, 64])),
    expected: { error: ShapeError, message: /elements/ },
  },
  {
    name: "an input whose buffer was transferred (detached) after construction",
    action: ({ model }) => {
      const t = Tensor.zeros([1, 3, 64, 64]);
      (t.data.buffer as ArrayBuffer).transfer(); // detaches t.data
      return model.forward(t);
    },
    expected: { error: ShapeError, message: /elements|detached/ },
  },
  // ---- create options ----
  {
    name: "threads: 0",
    action: () => GoogLeNet.create({ threads: 0 }),
    expected: {
      error: BackendError,
      message: /Expected threads to be an integer from 1 to \d+, got 0/,
    },
  },
  {
    name: "threads: 1.5",
    action: () => GoogLeNet.create({ threads: 1.5 }),
    expected: {
      error: BackendError,
      message: /Expected threads to be an integer from 1 to \d+, got 1\.5/,
    },
  },
  {
    name: 'threads: "2" (a string)',
    action: () => GoogLeNet.create({ threads: "2" as never }),
    expected: {
      error: BackendError,
      message: /Expected threads to be an integer from 1 to \d+, got "2"/,
    },
  },
  {
    name: "numClasses: 0",
    action: () => GoogLeNet.create({ numClasses: 0, threads: 1 }),
    expected: {
      error: ShapeError,
      message: /Expected numClasses to be an integer from 1 to \d+, got 0/,
    },
  },
  {
    name: 'variant: "resnet50"',
    action: () => GoogLeNet.create({ variant: "resnet50" as never, threads: 1 }),
    expected: {
      error: ShapeError,
      message: /Expected variant to be "seed" or "torchvision", got "resnet50"/,
    },
  },
  {
    name: 'prefer: "fast"',
    action: () => GoogLeNet.create({ prefer: "fast" as never, threads: 1 }),
    expected: {
      error: BackendError,
      message: /Expected prefer to be "memory" or "speed", got "fast"/,
    },
  },
  {
    name: "memoryLimit below the weights",
    action: () => GoogLeNet.create({ memoryLimit: 1024 * 1024, threads: 1 }),
    expected: { error: MemoryLimitError, message: /weights need .* memoryLimit is 1\.0 MiB/ },
  },
  // ---- issue 14 class 4: the model's options, checked at the boundary, nothing coerced ----
  {
    name: "threads: 1000 (more than the cap)",
    action: () => GoogLeNet.create({ threads: 1000 }),
    expected: {
      error: BackendError,
      message: /Expected threads to be an integer from 1 to \d+, got 1000/,
    },
  },
  {
    name: 'auxLogits: "false" (a string)',
    action: () => GoogLeNet.create({ auxLogits: "false" as never, threads: 1 }),
    expected: { error: OptionError, message: /auxLogits.*got "false"/ },
  },
  {
    name: "seed: 1.5",
    action: () => GoogLeNet.create({ seed: 1.5, threads: 1 }),
    expected: { error: OptionError, message: /seed.*integer.*got 1\.5/ },
  },
  {
    name: "seed: 10n (a bigint)",
    action: () => GoogLeNet.create({ seed: 10n as never, threads: 1 }),
    expected: { error: OptionError, message: /seed.*got 10n/ },
  },
  {
    name: "create(null)",
    action: () => GoogLeNet.create(null as never),
    expected: { error: OptionError, message: /GoogLeNet\.create/ },
  },
  {
    name: "an unknown option name lists the valid ones",
    action: () => GoogLeNet.create({ thread: 1 } as never),
    expected: {
      error: OptionError,
      message: /Unknown option "thread" of GoogLeNet\.create: expected one of .*"threads"/,
    },
  },
  {
    name: "loadStateDict(sd, null)",
    action: ({ model }) => model.loadStateDict(model.stateDict(), null as never),
    expected: { error: StateDictError, message: /loadStateDict/ },
  },
  {
    name: "forward with an unknown option",
    action: ({ model, good }) => model.forward(good, { dropuot: false } as never),
    expected: { error: ShapeError, message: /Unknown option "dropuot" of forward/ },
  },
  {
    name: "backward with a label out of range",
    action: ({ model, good }) => model.backward(good, [1000]),
    expected: {
      error: ShapeError,
      message: /Label 0 is 1000: expected an integer class index in \[0, 1000\)/,
    },
  },
  {
    name: "backward with a fractional label",
    action: ({ model, good }) => model.backward(good, [1.5]),
    expected: { error: ShapeError, message: /Label 0 is 1\.5/ },
  },
  {
    name: "backward with a label given as a string",
    action: ({ model, good }) => model.backward(good, ["1"] as never),
    expected: { error: ShapeError, message: /Label 0 is "1": expected an integer class index/ },
  },
  {
    name: "backward with too few labels",
    action: ({ model, good }) => model.backward(good, []),
    expected: { error: ShapeError, message: /Expected 1 labels \(one per image\), got 0/ },
  },
  {
    name: "trainable prefixes that match nothing",
    action: () => GoogLeNet.create({ trainable: ["fcc."], threads: 1 }),
    expected: { error: StateDictError, message: /"fcc\." match no parameter/ },
  },
  {
    name: "memoryLimit: NaN",
    action: () => GoogLeNet.create({ memoryLimit: NaN, threads: 1 }),
    expected: {
      error: BackendError,
      message: /Expected memoryLimit to be a finite number > 0, got NaN/,
    },
  },
  {
    name: "wasmModule that is not a WebAssembly.Module",
    action: () => GoogLeNet.create({ wasmModule: {} as never, threads: 1 }),
    expected: { error: BackendError, message: /must be a WebAssembly\.Module/ },
  },
  {
    name: "wasmModule of an unrelated (empty) Wasm module",
    action: () =>
      GoogLeNet.create({
        wasmModule: new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])),
        threads: 1,
      }),
    expected: { error: BackendError, message: /not a googlenet-wasm kernel module/ },
  },
  {
    name: "wasmModule with the kernel names the old check looked for but not the others",
    action: () =>
      GoogLeNet.create({
        wasmModule: moduleExporting(["conv2d_bias_relu", "gemm_bias", "conv2d_weight_grad"]),
        threads: 1,
      }),
    expected: {
      error: BackendError,
      message: /has no gemm_bias_relu, gemm_acc, .* or \d+ more; compile/,
    },
  },
  // ---- state dicts ----
  {
    name: "state dict with a wrong shape",
    action: (ctx) => ctx.model.loadStateDict(withEntry(ctx, "fc.weight", shape(1000, 512))),
    expected: {
      error: StateDictError,
      message: /"fc\.weight": expected shape \[1000, 1024\], got \[1000, 512\]/,
    },
  },
  {
    name: "state dict with a missing key",
    action: (ctx) => {
      const sd = new Map(ctx.stateDict);
      sd.delete("inception4c.branch2.1.conv.weight");
      ctx.model.loadStateDict(sd);
    },
    expected: {
      error: StateDictError,
      message: /missing keys "inception4c\.branch2\.1\.conv\.weight"/,
    },
  },
  {
    name: "state dict with an unexpected key",
    action: (ctx) => ctx.model.loadStateDict(withEntry(ctx, "fc.weights", shape(1))),
    expected: { error: StateDictError, message: /unexpected keys "fc\.weights"/ },
  },
  ...[
    ["a string", "0.5"],
    ["null", null],
    ["a bare Float32Array", new Float32Array(1000)],
    ["a plain {data, shape} object", { data: new Float32Array(1000), shape: [1000] }],
  ].map(([what, value]): HostileCase => ({
    name: `state dict value that is ${what}, not a Tensor`,
    action: (ctx) => ctx.model.loadStateDict(withEntry(ctx, "fc.bias", value)),
    expected: { error: StateDictError, message: /"fc\.bias": expected a Tensor/ },
  })),
  {
    name: "state dict that is null",
    action: ({ model }) => model.loadStateDict(null as never),
    expected: { error: StateDictError, message: /must be a Map or a record/ },
  },
  {
    name: "state dict that is a file name",
    action: ({ model }) => model.loadStateDict("googlenet.pth" as never),
    expected: { error: StateDictError, message: /must be a Map or a record/ },
  },
  {
    name: 'state dict record with a "__proto__" key (from JSON)',
    action: (ctx) =>
      ctx.model.loadStateDict({
        ...Object.fromEntries(ctx.stateDict),
        ...JSON.parse('{"__proto__": {"polluted": true}}'),
      }),
    expected: { error: StateDictError, message: /unexpected keys "__proto__"/ },
    cleanup: () => assert.equal(({} as Record<string, unknown>).polluted, undefined),
  },
  {
    name: "state dict of the wrong network (ResNet-50 keys)",
    action: ({ model }) => model.loadStateDict(resnet()),
    expected: {
      error: StateDictError,
      message:
        /missing keys "conv1\.conv\.weight".* unexpected keys "conv1\.weight", "bn1\.weight"/,
    },
  },
  {
    name: "state dict of the wrong network, strict: false (fc shapes differ)",
    action: ({ model }) => model.loadStateDict(resnet(), { strict: false }),
    expected: {
      error: StateDictError,
      message: /"fc\.weight": expected shape \[1000, 1024\], got \[1000, 2048\]/,
    },
  },
  {
    name: "torchvision's GoogLeNet state dict (BatchNorm keys) into the seed variant",
    action: ({ model }) => model.loadStateDict(deterministicStateDict(torchvisionKeys.no_aux)),
    expected: { error: StateDictError, message: /unexpected keys "conv1\.bn\.weight"/ },
  },
  {
    name: "a NaN in fc.bias loads; exactly that logit becomes NaN",
    action: async (ctx) => {
      const bias = new Float32Array(ctx.stateDict.get("fc.bias")!.data);
      bias[7] = NaN;
      ctx.model.loadStateDict(withEntry(ctx, "fc.bias", new Tensor(bias, [1000])));
      const out = await logits(ctx, ctx.good);
      assert.ok(Number.isNaN(out.data[7]));
      out.data[7] = ctx.baseline[7];
      assertSameBits(out.data, ctx.baseline, "the other logits");
    },
    expected: null,
    cleanup: (ctx) => ctx.model.loadStateDict(ctx.stateDict),
  },
  {
    name: "a NaN in conv1's weights loads; every logit becomes NaN",
    action: async (ctx) => {
      const w = ctx.stateDict.get("conv1.conv.weight")!;
      const data = new Float32Array(w.data);
      data[0] = NaN;
      ctx.model.loadStateDict(withEntry(ctx, "conv1.conv.weight", new Tensor(data, w.shape)));
      assert.equal(count((await logits(ctx, ctx.good)).data, Number.isNaN), 1000);
    },
    expected: null,
    cleanup: (ctx) => ctx.model.loadStateDict(ctx.stateDict),
  },
  {
    name: "a Tensor-like state-dict value whose data is shorter than its shape",
    action: (ctx) =>
      ctx.model.loadStateDict(
        withEntry(ctx, "fc.bias", fakeTensor(new Float32Array(3), [1000])),
      ),
    expected: { error: StateDictError, message: /"fc\.bias"/ },
    cleanup: (ctx) => ctx.model.loadStateDict(ctx.stateDict),
  },
  // ---- images (src/image/) ----
  {
    name: "image: bytes that are not an image",
    action: () => decodeImage(new TextEncoder().encode("<html>not an image</html>")),
    expected: { error: ImageError, message: /PNG|JPEG|format|signature|recogni/i },
  },
  {
    name: "image: no bytes at all",
    action: () => decodeImage(new Uint8Array()),
    expected: { error: ImageError, message: /\S/ },
  },
  {
    name: "image: a PNG truncated in its image data",
    action: async () => {
      const png = await tinyPng();
      return decodeImage(png.subarray(0, png.length - 20));
    },
    expected: { error: ImageError, message: /trunc|end|short|incomplete|IDAT|corrupt/i },
  },
  {
    name: "image: a PNG header declaring 100000x100000 pixels (decompression bomb)",
    action: async () => decodeImage(await pngBomb()),
    expected: { error: ImageError, message: /large|exceed|pixels|dimension|limit/i },
  },
  {
    name: "image: a JPEG truncated in its frame header",
    action: () => decodeImage(truncatedJpeg()),
    expected: { error: ImageError, message: /trunc|end|short|incomplete|corrupt/i },
  },
  {
    name: "image: a JPEG declaring 65500x65500 pixels (decompression bomb)",
    action: () => decodeImage(jpegBomb()),
    expected: { error: ImageError, message: /large|exceed|pixels|dimension|limit/i },
  },
  {
    name:
      "image: a progressive JPEG of 200 scans of one byte, each a pass over its blocks (time bomb)",
    action: () => decodeImage(jpegScanBomb(200)),
    expected: { error: ImageError, message: /pass over the frame's 64 blocks more than 100 times/ },
  },
  // ---- weight files (src/weights/) ----
  {
    name: "weights: a valid safetensors file parses (control case)",
    action: async (ctx) => {
      const parsed = await readSafetensors(ctx.weightFile) as
        | Map<string, Tensor>
        | { tensors: Map<string, Tensor> };
      ctx.model.loadStateDict(parsed instanceof Map ? parsed : parsed.tensors);
    },
    expected: null,
    cleanup: (ctx) => ctx.model.loadStateDict(ctx.stateDict),
  },
  {
    name: "weights: a safetensors file truncated in its data",
    action: (ctx) => readSafetensors(ctx.weightFile.subarray(0, ctx.weightFile.length - 100)),
    expected: { error: WeightsFormatError, message: /trunc|short|exceed|bytes|offset|end/i },
  },
  {
    name: "weights: a safetensors file truncated in its header",
    action: (ctx) => readSafetensors(ctx.weightFile.subarray(0, 40)),
    expected: { error: WeightsFormatError, message: /trunc|short|header|bytes/i },
  },
  {
    name: "weights: fewer than 8 bytes",
    action: () => readSafetensors(new Uint8Array([1, 2, 3])),
    expected: { error: WeightsFormatError, message: /\S/ },
  },
  {
    name: "weights: a header length of 2^60 (must not allocate it)",
    action: (ctx) => readSafetensors(withHeaderLength(ctx.weightFile, 2n ** 60n)),
    expected: { error: WeightsFormatError, message: /header/i },
  },
  {
    name: "weights: a header that is not JSON",
    action: (ctx) => {
      const bad = new Uint8Array(ctx.weightFile);
      bad.set(new TextEncoder().encode("%PDF-1.7"), 8);
      return readSafetensors(bad);
    },
    expected: { error: WeightsFormatError, message: /JSON|header/i },
  },
  {
    name: "weights: data_offsets past the end of the file",
    action: () =>
      readSafetensors(
        safetensorsWithHeader({ w: { dtype: "F32", shape: [4], data_offsets: [0, 1 << 20] } }, 16),
      ),
    expected: { error: WeightsFormatError, message: /offset|exceed|bytes|end|trunc/i },
  },
  {
    name: "weights: data_offsets disagreeing with the shape",
    action: () =>
      readSafetensors(
        safetensorsWithHeader({ w: { dtype: "F32", shape: [4], data_offsets: [0, 12] } }, 16),
      ),
    expected: { error: WeightsFormatError, message: /\S/ },
  },
  {
    name: "weights: an unknown dtype",
    action: () =>
      readSafetensors(
        safetensorsWithHeader({ w: { dtype: "Q4_K", shape: [4], data_offsets: [0, 16] } }, 16),
      ),
    expected: { error: WeightsFormatError, message: /dtype|Q4_K/ },
  },
  // ---- issue 14, class 1: small inputs that expand without bound (also run capped in
  // tests/bombs_capped.test.ts, at full size) ----
  {
    name: "weights: a .pth whose ZIP directory points 100 storages at one 4 MiB deflate stream",
    action: async () => readPth(await sharedStreamZip(100, 4 << 20)),
    expected: { error: WeightsFormatError, message: /share bytes .* decompression bomb/ },
  },
  {
    name: "weights: a .pth whose pickle copies a strided 1 MiB view 5000 times (memoised REDUCE)",
    action: () => readPth(reduceBombPth(5000, 512)),
    expected: { error: WeightsFormatError, message: /makes more tensor data than it holds/ },
  },
  {
    name: "weights: a .pth whose deflated data.pkl claims 64 MiB (of EMPTY_DICT opcodes)",
    action: async () => readPth(await deflatedPicklePth(64 << 20)),
    expected: {
      error: WeightsFormatError,
      message: /data\.pkl" inflates to 67108867 bytes, more than/,
    },
  },
  {
    name: "weights: a pickle of 600 000 empty dicts (one byte of pickle, ~200 bytes of heap each)",
    action: () => readPth(emptyDictsPth(600_000)),
    expected: { error: WeightsFormatError, message: /more than 500000 objects/ },
  },
  {
    name:
      "weights: a safetensors header of 4 MB of empty arrays (1.3 M, tens of bytes of heap each)",
    action: () => readSafetensors(arrayHeaderSafetensors(4_000_000)),
    expected: { error: WeightsFormatError, message: /opens 1333333 arrays and objects/ },
  },
  {
    name: "image: iCCP, zTXt and iTXt chunks of 64 MiB each are skipped, not inflated",
    action: async () => {
      const plain = decodeImage(await greyPng(8, 8));
      assert.deepEqual(decodeImage(await ancillaryBombPng(64 << 20)).data, plain.data);
    },
    expected: null,
  },
  {
    name: "image: a 1 x 100000 PNG preprocesses without making the 256 x 25600000 resize",
    action: async () =>
      assert.deepEqual((await preprocess(await greyPng(1, 100_000))).shape, [1, 3, 224, 224]),
    expected: null,
  },
  {
    name: 'weights: loadWeights("/dev/zero") stops at maxBytes',
    action: () => loadWeights("/dev/zero", { maxBytes: 1 << 20 }),
    expected: { error: WeightsFormatError, message: /exceeds maxBytes \(1048576\)/ },
  },
  {
    name: "image: preprocess(url) of a server that never answers gives up at its timeout",
    action: async () => {
      const controller = new AbortController();
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {} },
        () =>
          new Promise<Response>((resolve) =>
            controller.signal.onabort = () => resolve(new Response())
          ),
      );
      try {
        await preprocess(`http://127.0.0.1:${server.addr.port}/x.png`, { timeout: 200 });
      } finally {
        controller.abort();
        await server.finished;
      }
    },
    expected: {
      error: ImageError,
      message: /Timed out reading the image after 200 ms \(timeout\)/,
    },
  },
  // ---- issue 14, class 5: wrong results without an error ----
  {
    name: "topK with NaN logits ranks NaN first, as torch.topk does",
    action: () => {
      const top = topK(Float32Array.of(1, NaN, 3, NaN), 4, ["a", "b", "c", "d"]);
      assert.deepEqual(top.map((p) => p.index), [1, 3, 2, 0]);
    },
    expected: null,
  },
  {
    name: "classify with a NaN logit (NaN in fc.bias[7]) ranks class 7 first, as torch.topk does",
    action: async (ctx) => {
      const bias = new Float32Array(ctx.stateDict.get("fc.bias")!.data);
      bias[7] = NaN;
      ctx.model.loadStateDict(withEntry(ctx, "fc.bias", new Tensor(bias, [1000])));
      const rows = await classify(ctx.model, await greyPng(64, 64), { top: 3 });
      assert.equal(rows[0].index, 7);
      assert.ok(rows.every((row) => Number.isNaN(row.probability)));
    },
    expected: null,
    cleanup: (ctx) => ctx.model.loadStateDict(ctx.stateDict),
  },
  {
    name: "image: a PNG with two IHDR chunks",
    action: async () => decodeImage(await twoIhdrPng()),
    expected: { error: ImageError, message: /expected one IHDR chunk, found a second/ },
  },
  {
    name: "image: a PNG declaring RGB at bit depth 1",
    action: async () => decodeImage(await badDepthPng()),
    expected: { error: ImageError, message: /colour type 2 at bit depth 1/ },
  },
  {
    name: 'weights: writeSafetensors with dtype "F64" reads back exactly',
    action: () => {
      const values = Float32Array.of(1 / 3, -2.5, 1e-40);
      const file = writeSafetensors(new Map([["x", new Tensor(values, [3])]]), { dtype: "F64" });
      assertSameBits(readSafetensors(file).tensors.get("x")!.data, values, "F64 round trip");
    },
    expected: null,
  },
  {
    name: 'weights: writeSafetensors with dtype "F8_E4M3"',
    action: () => writeSafetensors(new Map(), { dtype: "F8_E4M3" as never }),
    expected: {
      error: OptionError,
      message: /dtype to be one of "F64", "F32", "F16" or "BF16", got "F8_E4M3"/,
    },
  },
  ...(["Int8Array", "DataView", "SharedArrayBuffer"] as const).map((kind): HostileCase => ({
    name: `weights: loadWeights of a ${kind} loads`,
    action: async (ctx) => {
      const file = writePth(new Map([["w", ctx.stateDict.get("fc.bias")!]]));
      const shared = new SharedArrayBuffer(file.length);
      new Uint8Array(shared).set(file);
      const source = kind === "Int8Array"
        ? new Int8Array(file.buffer)
        : kind === "DataView"
        ? new DataView(file.buffer)
        : shared;
      const loaded = await loadWeights(source);
      assertSameBits(loaded.get("w")!.data, ctx.stateDict.get("fc.bias")!.data, kind);
    },
    expected: null,
  })),
  {
    name: "weights: a pickle dict key nested 5000 deep",
    action: () => readPth(nestedKeyPth(5000)),
    expected: { error: WeightsFormatError, message: /No state dict in the checkpoint/ },
  },
  // ---- issue 14, class 4: arguments and options (image, weights and labels functions) ----
  {
    name: "preprocess(null)",
    action: () => preprocess(null as never),
    expected: { error: OptionError, message: /Expected the image as PNG\/JPEG bytes, .* got null/ },
  },
  {
    name: 'preprocess with resize: "256" (a string)',
    action: async () => preprocess(await greyPng(8, 8), { resize: "256" as never }),
    expected: {
      error: OptionError,
      message: /Expected resize to be an integer from 1 to 65536, got "256"/,
    },
  },
  {
    name: "preprocess with an unknown option name",
    action: async () => preprocess(await greyPng(8, 8), { size: 224 } as never),
    expected: {
      error: OptionError,
      message: /Unknown option "size" of preprocess: expected one of "maxPixels"/,
    },
  },
  {
    name: "loadWeights with maxBytes: NaN (used to turn the limit off)",
    action: (ctx) => loadWeights(ctx.weightFile, { maxBytes: NaN }),
    expected: { error: OptionError, message: /Expected maxBytes to be an integer >= 0, got NaN/ },
  },
  {
    name: "loadWeights(null)",
    action: () => loadWeights(null as never),
    expected: {
      error: OptionError,
      message: /Expected the weights source to be bytes .* got null/,
    },
  },
  {
    name: 'topK with k: "5"',
    action: () => topK(new Float32Array(3), "5" as never, ["a", "b", "c"]),
    expected: { error: OptionError, message: /Expected k to be an integer >= 1, got "5"/ },
  },
];

// ---- the runner ----

/** Settles `fn()` whether it throws synchronously or rejects. */
async function outcome(fn: () => unknown): Promise<{ ok: true } | { ok: false; error: unknown }> {
  try {
    await fn();
    return { ok: true };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Why `result` does not meet `expected`, or null. */
/** A Wasm module importing env.memory and exporting empty functions under `names`. */
function moduleExporting(names: string[]): WebAssembly.Module {
  const text = (t: string) => [t.length, ...new TextEncoder().encode(t)];
  const section = (id: number, body: number[]) => [id, body.length, ...body];
  const imports = [1, ...text("env"), ...text("memory"), 2, 0, 1];
  const exports = [names.length, ...names.flatMap((n, i) => [...text(n), 0, i])];
  const code = [names.length, ...names.flatMap(() => [2, 0, 0x0b])];
  return new WebAssembly.Module(
    new Uint8Array([
      ...[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
      ...section(1, [1, 0x60, 0, 0]),
      ...section(2, imports),
      ...section(3, [names.length, ...names.map(() => 0)]),
      ...section(7, exports),
      ...section(10, code),
    ]),
  );
}

function mismatch(
  result: { ok: true } | { ok: false; error: unknown },
  expected: HostileCase["expected"],
): string | null {
  if (expected === null) {
    return result.ok ? null : `expected success, got ${describe(result.error)}`;
  }
  if (result.ok) return `expected ${expected.error.name}, but it succeeded`;
  const e = result.error;
  if (!(e instanceof expected.error) || !expected.message.test((e as Error).message)) {
    return `expected ${expected.error.name} matching ${expected.message}, got ${describe(e)}`;
  }
  return null;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}` : String(e);
}

Deno.test("hostile input: each case fails (or succeeds) as specified, and the model still gives the baseline logits after it", async (t) => {
  const model = await GoogLeNet.create({ auxLogits: false, threads: 2 });
  const stateDict = deterministicStateDict(reference.no_aux);
  model.loadStateDict(stateDict);
  const good = deterministicInput("good", [1, 3, 64, 64]);
  const ctx: Context = {
    model,
    stateDict,
    good,
    baseline: ((await model.forward(good)) as Tensor).data,
    weightFile: writeSafetensors(stateDict),
  };
  const todos: string[] = [];
  try {
    for (const c of CASES) {
      await t.step({
        name: c.todo ? `${c.name} [known bug]` : c.name,
        fn: async () => {
          const result = await outcome(() => c.action(ctx));
          let problem = mismatch(result, c.expected);
          if (c.cleanup) await c.cleanup(ctx);
          // The model must be unharmed, whatever the case did.
          assertSameBits(
            ((await model.forward(good)) as Tensor).data,
            ctx.baseline,
            `logits of the good input after "${c.name}"`,
          );
          if (c.todo) {
            if (problem === null) {
              problem = `fixed: remove the todo of "${c.name}" (it now behaves as expected)`;
            } else {
              todos.push(`${c.name}: ${problem}\n    needs: ${c.todo}`);
              problem = null;
            }
          }
          if (problem) assert.fail(problem);
        },
      });
    }
  } finally {
    await model.dispose();
  }
  if (todos.length) console.log(`  KNOWN BUGS (${todos.length}):\n  - ${todos.join("\n  - ")}`);
});
