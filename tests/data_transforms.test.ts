import assert from "node:assert/strict";
import { OptionError, ShapeError } from "../src/errors.ts";
import { decodeImage } from "../src/image/decode.ts";
import type { RgbImage } from "../src/image/pixels.ts";
import { Random, type RandomSource } from "../src/data/random.ts";
import {
  CenterCrop,
  Compose,
  crop,
  hflip,
  Normalize,
  RandomHorizontalFlip,
  RandomResizedCrop,
  randomResizedCropBox,
  Resize,
  resizedCrop,
  ToTensor,
  trainTransform,
  transformFromSpec,
} from "../src/data/transforms.ts";
import { Tensor } from "../src/tensor.ts";

const DATA = new URL("./fixtures/data/", import.meta.url);
const IMAGES = new URL("./fixtures/images/", import.meta.url);
const fixtures = JSON.parse(await Deno.readTextFile(new URL("transforms.json", DATA)));

/** The bound of tests/image_preprocess.test.ts, in 8-bit levels: PNG exact, JPEG decoders differ. */
const TOLERANCE = { png: { max: 0, mean: 0 }, jpg: { max: 36, mean: 1 } };

const inputs = new Map<string, RgbImage>();
async function input(name: string): Promise<RgbImage> {
  if (!inputs.has(name)) inputs.set(name, decodeImage(await Deno.readFile(new URL(name, IMAGES))));
  return inputs.get(name)!;
}

function run(image: RgbImage, c: Record<string, unknown>): RgbImage {
  const box = () => {
    const [top, left, height, width] = c.box as number[];
    return { top, left, height, width };
  };
  switch (c.op) {
    case "resized_crop":
      return resizedCrop(image, box(), c.size as [number, number]);
    case "resized_crop_hflip":
      return hflip(resizedCrop(image, box(), c.size as [number, number])) as RgbImage;
    case "resize":
      return new Resize(c.size as number).apply(image);
    case "resize_center_crop":
      return new CenterCrop(c.crop as [number, number]).apply(
        new Resize(c.size as number).apply(image),
      );
  }
  throw new Error(`Unknown fixture op ${c.op}`);
}

for (const c of fixtures.cases) {
  const { input: name, op, expected } = c;
  const args = JSON.stringify({ box: c.box, size: c.size, crop: c.crop });
  Deno.test(`transforms equal torchvision 0.14 + PIL: ${op} ${args} of ${name}`, async () => {
    const ours = run(await input(name), c);
    const reference = decodeImage(await Deno.readFile(new URL(expected, DATA)));
    assert.deepEqual([ours.width, ours.height], [reference.width, reference.height]);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < ours.data.length; i++) {
      const diff = Math.abs(ours.data[i] - reference.data[i]);
      max = Math.max(max, diff);
      sum += diff;
    }
    const mean = sum / ours.data.length;
    const bound = TOLERANCE[name.endsWith(".png") ? "png" : "jpg"];
    console.log(`${expected}: max ${max}, mean ${mean.toFixed(4)} levels`);
    assert(
      max <= bound.max && mean <= bound.mean,
      `max ${max} mean ${mean} over ${bound.max}/${bound.mean}`,
    );
  });
}

Deno.test("ToTensor + Normalize equal torchvision's float32 values", async () => {
  const t = fixtures.tensor;
  const [top, left, height, width] = t.box;
  const image = resizedCrop(await input(t.input), { top, left, height, width }, t.size);
  const pipeline = new Compose([new ToTensor(), new Normalize({ mean: t.mean, std: t.std })]);
  const out = pipeline.tensor(image);
  assert.deepEqual(out.shape, [3, ...t.size]);
  let max = 0;
  for (let i = 0; i < out.data.length; i++) {
    max = Math.max(max, Math.abs(out.data[i] - t.values[i]));
  }
  console.log(`${out.data.length} values, max |ours - torch| ${max}`);
  assert.equal(max, 0);
});

/** Replays the draws torch made, in order, failing on any extra or different draw. */
class Replay implements RandomSource {
  #draws: [string, number][];
  constructor(draws: [string, number][]) {
    this.#draws = [...draws];
  }
  #next(kind: string): number {
    const draw = this.#draws.shift();
    assert(draw !== undefined, `an extra ${kind} draw that torch did not make`);
    assert.equal(draw[0], kind);
    return draw[1];
  }
  uniform(): number {
    return this.#next("uniform");
  }
  randint(low: number, high: number): number {
    const value = this.#next("randint");
    assert(value >= low && value < high, `randint(${low}, ${high}) replayed ${value}`);
    return value;
  }
  get left(): number {
    return this.#draws.length;
  }
}

Deno.test("RandomResizedCrop's box equals get_params' for torch's own draws", () => {
  let fallbacks = 0;
  for (const record of fixtures.boxes) {
    const replay = new Replay(record.draws);
    const box = randomResizedCropBox(record.width, record.height, record, replay);
    const where = `${record.width}x${record.height} scale ${record.scale} ratio ${record.ratio}`;
    assert.deepEqual([box.top, box.left, box.height, box.width], record.box, where);
    assert.equal(replay.left, 0, `${where}: torch drew more`);
    if (!record.draws.some((d: [string, number]) => d[0] === "randint")) fallbacks++;
  }
  console.log(`${fixtures.boxes.length} boxes equal, ${fallbacks} of them the fallback`);
  assert(fallbacks >= 3 && fallbacks < fixtures.boxes.length);
});

Deno.test("RandomResizedCrop: seeded boxes stay inside, repeat per seed and vary between seeds", () => {
  const image = { data: new Uint8Array(64 * 48 * 3), width: 64, height: 48 };
  const boxes = new Set<string>();
  let shareSum = 0;
  for (let seed = 0; seed < 500; seed++) {
    const box = randomResizedCropBox(64, 48, {}, new Random(seed));
    assert.deepEqual(box, randomResizedCropBox(64, 48, {}, new Random(seed)));
    assert(
      box.top >= 0 && box.left >= 0 && box.top + box.height <= 48 && box.left + box.width <= 64,
    );
    const ratio = box.width / box.height;
    // Rounding to whole pixels moves the ratio a little outside [3/4, 4/3].
    assert(ratio > 0.6 && ratio < 1.6, `ratio ${ratio}`);
    boxes.add(JSON.stringify(box));
    shareSum += (box.width * box.height) / (64 * 48);
  }
  console.log(
    `500 seeds: ${boxes.size} distinct boxes, mean area share ${(shareSum / 500).toFixed(3)}`,
  );
  assert(boxes.size > 300);
  // torchvision's get_params under torch.manual_seed(0..4999) on a 64x48 image: mean share 0.437
  // (large tries that do not fit are redrawn, pulling it below uniform [0.08, 1]'s 0.54).
  assert(Math.abs(shareSum / 500 - 0.437) < 0.03, `mean share ${shareSum / 500}`);
  const out = new RandomResizedCrop([20, 30]).apply(image, new Random(1));
  assert.deepEqual([out.width, out.height], [30, 20]);
});

Deno.test("RandomHorizontalFlip: p = 0 never, p = 1 always, p = 0.5 about half", () => {
  const image = { data: new Uint8Array([1, 1, 1, 2, 2, 2]), width: 2, height: 1 };
  const flips = (p: number) => {
    const random = new Random(42);
    let n = 0;
    for (let i = 0; i < 2000; i++) {
      const out = new RandomHorizontalFlip(p).apply(image, random) as RgbImage;
      if (out.data[0] === 2) n++;
    }
    return n;
  };
  assert.equal(flips(0), 0);
  assert.equal(flips(1), 2000);
  const half = flips(0.5);
  console.log(`p = 0.5: ${half} of 2000 flipped`);
  assert(half > 900 && half < 1100);
  const t = new Tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 2, 3]);
  assert.deepEqual([...(hflip(t) as Tensor).data], [3, 2, 1, 6, 5, 4]);
});

Deno.test("Compose: a spec rebuilt from JSON gives the same output for the same seed", () => {
  const image = {
    data: Uint8Array.from({ length: 40 * 30 * 3 }, (_, i) => i % 251),
    width: 40,
    height: 30,
  };
  const pipeline = trainTransform("torchvision", { size: 16, mean: [0.2860], std: [0.3530] });
  const copy = transformFromSpec(JSON.parse(JSON.stringify(pipeline.spec))) as Compose;
  const a = pipeline.tensor(image, new Random(9));
  const b = copy.tensor(image, new Random(9));
  assert.deepEqual(a.shape, [3, 16, 16]);
  assert.deepEqual(a.data, b.data);
  const c = pipeline.tensor(image, new Random(10));
  assert.notDeepEqual(a.data, c.data);
  assert.deepEqual(trainTransform("none", { size: 8 }).tensor(image, new Random(1)).shape, [
    3,
    8,
    8,
  ]);
  assert.deepEqual(trainTransform("flip", { size: 8 }).tensor(image, new Random(1)).shape, [
    3,
    8,
    8,
  ]);
});

Deno.test("Resize: shorter side, maxSize and [h, w]; CenterCrop pads a small image with black", () => {
  const image = { data: new Uint8Array(30 * 20 * 3).fill(200), width: 30, height: 20 };
  const shorter = new Resize(10).apply(image);
  assert.deepEqual([shorter.width, shorter.height], [15, 10]);
  const capped = new Resize(10, { maxSize: 12 }).apply(image);
  assert.deepEqual([capped.width, capped.height], [12, 8]);
  assert.equal(new Resize([20, 30]).apply(image), image);
  const padded = new CenterCrop([24, 30]).apply(image);
  assert.deepEqual([padded.width, padded.height], [30, 24]);
  assert.equal(padded.data[0], 0); // 2 black rows on top
  assert.equal(padded.data[2 * 30 * 3], 200);
  assert.equal(padded.data[22 * 30 * 3], 0); // and 2 below
});

Deno.test("transforms: an output over 64 megapixels is refused before it is allocated", () => {
  // Each was allocated (a typo such as 22400 for 224 ended the process when memory ran out);
  // the sizes here are just over the cap, so that a regression allocates only ~200 MB.
  const image = { data: new Uint8Array(2 * 1 * 3), width: 2, height: 1 };
  const over =
    /would be 8001x8000 \(64008000 pixels\): expected at most 64000000 pixels \(the decoders' default maxPixels\)/;
  assert.throws(() => new CenterCrop([8000, 8001]), over);
  assert.throws(() => new RandomResizedCrop([8000, 8001]), over);
  assert.throws(() => new Resize([8000, 8001]), over);
  assert.throws(() => trainTransform("torchvision", { size: 8001 }), /would be 8001x8001/);
  assert.throws(
    () => crop(image, { top: 0, left: 0, height: 8000, width: 8001 }),
    (e: Error) => e instanceof OptionError && over.test(e.message) && /^The crop/.test(e.message),
  );
  // An integer size gives the shorter side: the longer one follows the image's shape.
  assert.throws(
    () => new Resize(5700).apply(image),
    (e: Error) =>
      e instanceof OptionError &&
      e.message ===
        "Resize(5700) of a 2x1 image would be 11400x5700 (64980000 pixels): expected at most " +
          "64000000 pixels (the decoders' default maxPixels); pass maxSize to cap the longer side",
  );
  const capped = new Resize(4000, { maxSize: 8000 }).apply(image);
  assert.deepEqual([capped.width, capped.height], [8000, 4000]);
  assert.equal(new CenterCrop(8000).spec.size[0], 8000, "64 megapixels exactly is allowed");
  // And a probability given as a string was kept as one.
  assert.throws(
    () => new RandomHorizontalFlip("0.5" as never),
    /Expected p in \[0, 1\], got "0\.5"/,
  );
});

Deno.test("transforms: an image over 64 megapixels (a raised maxPixels) may be cropped and resized to no more than its own size", () => {
  // decode's maxPixels goes up to 2^30: RandomResizedCrop of a 100-megapixel photo refused
  // about 4 boxes in 10. 8002x8000 is just over the cap (192 MB, a second for the copy).
  const image = { data: new Uint8Array(8002 * 8000 * 3), width: 8002, height: 8000 };
  image.data.fill(9, (7999 * 8002 + 8000) * 3); // the last row's last 2 pixels
  const cropped = crop(image, { top: 0, left: 1, height: 8000, width: 8001 });
  assert.deepEqual([cropped.width, cropped.height], [8001, 8000]);
  assert.equal(cropped.data[(7999 * 8001 + 7999) * 3], 9);
  assert.equal(cropped.data[(7999 * 8001 + 7998) * 3], 0);
  const same = new Resize(8000).apply(image);
  assert.deepEqual([same.width, same.height], [8002, 8000]);
  // Larger than the input, and over the cap: still refused before it is allocated.
  assert.throws(
    () => crop(image, { top: 0, left: 0, height: 8000, width: 8003 }),
    (e: Error) =>
      e instanceof OptionError &&
      e.message ===
        "The crop would be 8003x8000 (64024000 pixels): expected at most 64016000 pixels (the input's pixels)",
  );
});

Deno.test("transforms: wrong input kinds and options are clear errors", () => {
  const image = { data: new Uint8Array(3), width: 1, height: 1 };
  const tensor = new ToTensor().apply(image);
  assert.throws(() => new Resize(4).apply(tensor), ShapeError);
  assert.throws(() => new Resize(4).apply(tensor), /Resize expects an RGB image, got a tensor/);
  assert.throws(() => new Normalize().apply(image), /Normalize expects a \[C, H, W\] tensor/);
  assert.throws(() => new Compose([new Resize(2)]).tensor(image), /add ToTensor\(\)/);
  assert.throws(() => new Resize(0), OptionError);
  assert.throws(() => new Resize([2, 2], { maxSize: 3 }), /maxSize only with an integer size/);
  assert.throws(() => new RandomResizedCrop(4, { scale: [1, 0.5] }), /scale to be \[min, max\]/);
  assert.throws(() => new RandomHorizontalFlip(2), /p in \[0, 1\]/);
  assert.throws(() => new Normalize({ std: [0] }), /non-zero std/);
  assert.throws(() => new Normalize({ mean: [1, 2] }), /1 or 3 finite numbers/);
  assert.throws(
    () => transformFromSpec({ name: "ColorJitter" } as never),
    /Unknown transform "ColorJitter"/,
  );
  assert.throws(() => resizedCrop(image, { top: 0, left: 0, height: 0, width: 1 }, 2), OptionError);
  assert.throws(() => trainTransform("mixup" as never), /expected "torchvision", "flip" or "none"/);
});
