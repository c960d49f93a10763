import assert from "node:assert/strict";
import { DatasetError, ImageError, OptionError } from "../src/errors.ts";
import { IdxDataset, loadFashionMnist, loadIdxDataset } from "../src/data/idx.ts";
import { ImageFolder } from "../src/data/image_folder.ts";
import { type Batch, DataLoader, LOADER_IDLE_MS } from "../src/data/loader.ts";
import { Random } from "../src/data/random.ts";
import {
  CenterCrop,
  Compose,
  Resize,
  ToTensor,
  trainTransform,
  validationTransform,
} from "../src/data/transforms.ts";
import { type Dataset, decodeRaw, Subset } from "../src/data/dataset.ts";
import { Tensor } from "../src/tensor.ts";

/** `n` random 28x28 grey images with labels `i % 10`. */
function synthetic(n: number): IdxDataset {
  const random = new Random(123);
  return new IdxDataset({
    images: {
      dtype: "uint8",
      shape: [n, 28, 28],
      data: Uint8Array.from({ length: n * 784 }, () => random.randint(0, 256)),
    },
    labels: { dtype: "uint8", shape: [n], data: Uint8Array.from({ length: n }, (_, i) => i % 10) },
  });
}

async function epoch(loader: DataLoader): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of loader) batches.push(batch);
  return batches;
}

Deno.test("DataLoader: 0, 1 and 2 workers give the same seeded, augmented batches", async () => {
  const dataset = synthetic(11);
  const results = [];
  for (const workers of [0, 1, 2]) {
    const loader = new DataLoader(dataset, {
      transform: trainTransform("torchvision", { size: 32 }),
      batchSize: 4,
      shuffle: true,
      seed: 7,
      workers,
    });
    results.push([await epoch(loader), await epoch(loader)]);
  }
  const [zero, one, two] = results;
  for (const other of [one, two]) {
    for (let e = 0; e < 2; e++) {
      assert.equal(other[e].length, 3);
      for (let b = 0; b < 3; b++) {
        assert.deepEqual(other[e][b].input.shape, zero[e][b].input.shape);
        assert.deepEqual(other[e][b].input.data, zero[e][b].input.data);
        assert.deepEqual(other[e][b].labels, zero[e][b].labels);
      }
    }
  }
  assert.deepEqual(zero[0].map((b) => b.input.shape[0]), [4, 4, 3]);
  // A new epoch: a new order and new crops.
  assert.notDeepEqual(zero[0][0].indices, zero[1][0].indices);
  for (const b of zero[0]) {
    assert.deepEqual([...b.labels], [...b.indices].map((i) => i % 10));
  }
});

Deno.test("DataLoader: each epoch visits every sample once; dropLast; a seed repeats its order", () => {
  const dataset = synthetic(10);
  const transform = validationTransform({ size: 8 });
  const a = new DataLoader(dataset, {
    transform,
    batchSize: 3,
    shuffle: true,
    seed: 1,
    workers: 0,
  });
  const b = new DataLoader(dataset, {
    transform,
    batchSize: 3,
    shuffle: true,
    seed: 1,
    workers: 0,
  });
  const c = new DataLoader(dataset, {
    transform,
    batchSize: 3,
    shuffle: true,
    seed: 2,
    workers: 0,
  });
  for (let e = 0; e < 3; e++) {
    assert.deepEqual([...a.order(e)].sort((x, y) => x - y), [...Array(10).keys()]);
    assert.deepEqual(a.order(e), b.order(e));
  }
  assert.notDeepEqual(a.order(0), a.order(1));
  assert.notDeepEqual(a.order(0), c.order(0));
  const plain = new DataLoader(dataset, { transform, batchSize: 3, workers: 0 });
  assert.deepEqual([...plain.order(5)], [...Array(10).keys()]);
  assert.equal(a.length, 4);
  assert.equal(new DataLoader(dataset, { transform, batchSize: 3, dropLast: true }).length, 3);
});

Deno.test("DataLoader: a seed or epoch past 32 bits is refused, not run as the one it aliases", async () => {
  // Seeds and epochs enter mixSeed as 32-bit words: seed 2^32 shuffled as seed 0 did, and
  // epoch 2^32 repeated epoch 0's order and augmentation.
  const dataset = synthetic(10);
  const transform = validationTransform({ size: 8 });
  const make = (seed: unknown) =>
    new DataLoader(dataset, { transform, shuffle: true, seed: seed as number, workers: 0 });
  for (const seed of [2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER, -(2 ** 31) - 1, 0.5, NaN, "1"]) {
    assert.throws(
      () => make(seed),
      (e: Error) =>
        e instanceof OptionError &&
        e.message.startsWith("Expected seed to be an integer from -2147483648 to 4294967295, got "),
      String(seed),
    );
  }
  // The 32-bit range is kept: -1 and 2^32 - 1 are one word, as documented.
  assert.deepEqual(make(-1).order(3), make(2 ** 32 - 1).order(3));
  const loader = make(7);
  const last = 2 ** 32 - 1;
  assert.equal(loader.order(last).length, 10);
  const message = /Expected epoch to be an integer from 0 to 4294967295, got 4294967296$/;
  assert.throws(() => loader.order(2 ** 32), message);
  assert.throws(() => (loader.epoch = 2 ** 32), message);
  assert.throws(() => loader.seek(2 ** 32, 0), message);
  assert.throws(() => loader.order(1.5), /got 1\.5$/);
  // The last epoch runs; the one after it is refused, and the loader stays there.
  loader.epoch = last;
  assert.equal((await epoch(loader)).length, 10);
  assert.equal(loader.epoch, 2 ** 32);
  await assert.rejects(() => epoch(loader), message);
  assert.equal(loader.epoch, 2 ** 32);
});

Deno.test("DataLoader: dropLast leaves out the short batch; epoch can be set to resume", async () => {
  const loader = new DataLoader(synthetic(10), {
    transform: validationTransform({ size: 8 }),
    batchSize: 4,
    dropLast: true,
    shuffle: true,
    workers: 1,
  });
  const first = await epoch(loader);
  assert.deepEqual(first.map((b) => b.labels.length), [4, 4]);
  assert.equal(loader.epoch, 1);
  loader.epoch = 0;
  const again = await epoch(loader);
  assert.deepEqual(again.map((b) => [...b.indices]), first.map((b) => [...b.indices]));
  assert.throws(() => (loader.epoch = -1), /integer from 0 to 4294967295, got -1/);
});

Deno.test("DataLoader: seek(epoch, k) gives that epoch's batches from k on: same samples, order, augmentation", async () => {
  for (const workers of [0, 1]) {
    const options = {
      transform: trainTransform("torchvision", { size: 16 }),
      batchSize: 3,
      shuffle: true,
      seed: 5,
      workers,
      persistentWorkers: true,
    };
    // 11 samples in batches of 3: 4 batches, the last one of 2.
    const whole = new DataLoader(synthetic(11), options);
    await epoch(whole);
    const epoch1 = await epoch(whole);
    const epoch2 = await epoch(whole);
    whole.close();
    assert.deepEqual(epoch1.map((b) => b.batchIndex), [0, 1, 2, 3]);
    const loader = new DataLoader(synthetic(11), options);
    try {
      for (let k = 0; k < 4; k++) {
        loader.seek(1, k);
        const rest = await epoch(loader);
        assert.deepEqual(
          rest.map((b) => b.batchIndex),
          [0, 1, 2, 3].slice(k),
          `workers ${workers}`,
        );
        rest.forEach((batch, i) => {
          const full = epoch1[k + i];
          assert.deepEqual(batch.indices, full.indices);
          assert.deepEqual(batch.labels, full.labels);
          assert.deepEqual(batch.input.shape, full.input.shape);
          assert.deepEqual(batch.input.data, full.input.data, `batch ${k + i} from ${k}`);
        });
        assert.equal(loader.epoch, 2);
      }
      // The epoch after a seek starts at its first batch.
      const next = await epoch(loader);
      assert.deepEqual(next.map((b) => b.batchIndex), [0, 1, 2, 3]);
      assert.deepEqual(next.map((b) => [...b.indices]), epoch2.map((b) => [...b.indices]));
      assert.deepEqual(next[0].input.data, epoch2[0].input.data);
      // Setting epoch alone drops a seek's batch: the epoch runs whole.
      loader.seek(1, 2);
      loader.epoch = 1;
      assert.deepEqual((await epoch(loader)).map((b) => b.batchIndex), [0, 1, 2, 3]);
    } finally {
      loader.close();
    }
  }

  const loader = new DataLoader(synthetic(11), {
    transform: validationTransform({ size: 8 }),
    batchSize: 3,
    workers: 0,
  });
  for (const batch of [4, -1, 1.5, NaN]) {
    assert.throws(
      () => loader.seek(0, batch),
      (e: unknown) =>
        e instanceof OptionError &&
        e.message ===
          `Expected batch to be an integer from 0 to 3 (the epoch's 4 batches of 3 of 11 samples), got ${batch}`,
    );
  }
  assert.throws(
    () => loader.seek(-1, 0),
    (e: unknown) =>
      e instanceof OptionError &&
      e.message === "Expected epoch to be an integer from 0 to 4294967295, got -1",
  );
  assert.equal(loader.epoch, 0, "a refused seek changes nothing");
  assert.deepEqual((await epoch(loader)).map((b) => b.batchIndex), [0, 1, 2, 3]);
  const empty = new DataLoader(synthetic(0), {
    transform: validationTransform({ size: 8 }),
    workers: 0,
  });
  empty.seek(3, 0);
  assert.deepEqual(await epoch(empty), []);
  assert.throws(() => empty.seek(0, 1), /from 0 to 0 \(the epoch's 0 batches of 1 of 0 samples\)/);
});

Deno.test("DataLoader: a batch whose samples are all skipped is not yielded but keeps its batchIndex", async () => {
  const base = synthetic(6);
  const broken: Dataset = {
    length: base.length,
    classes: base.classes,
    raw: (index) =>
      index === 2 || index === 3
        ? Promise.reject(new ImageError(`sample ${index} is unreadable`))
        : base.raw(index),
    get: (index) => base.get(index),
  };
  const loader = new DataLoader(broken, {
    transform: validationTransform({ size: 8 }),
    batchSize: 2,
    workers: 0,
  });
  const batches = await epoch(loader);
  assert.deepEqual(batches.map((b) => b.batchIndex), [0, 2]);
  assert.deepEqual(batches.map((b) => [...b.indices]), [[0, 1], [4, 5]]);
  assert.equal(loader.skipped.length, 2);
});

Deno.test("DataLoader: corrupt and unreadable images are skipped, counted and named", async () => {
  const root = await Deno.makeTempDir();
  try {
    const copies: [string, string][] = [
      ["cat/a.png", "transform_1.png"],
      ["cat/b.png", "transform_8.png"],
      ["dog/c.png", "transform_8.png"],
    ];
    for (const [path, from] of copies) {
      await Deno.mkdir(`${root}/${path.split("/")[0]}`, { recursive: true });
      await Deno.copyFile(new URL(`./fixtures/data/${from}`, import.meta.url), `${root}/${path}`);
    }
    const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    await Deno.writeFile(`${root}/cat/corrupt.png`, new Uint8Array([...signature, 1, 2, 3]));
    await Deno.writeFile(
      `${root}/dog/truncated.jpg`,
      (await Deno.readFile(new URL("../assets/chelsea.jpg", import.meta.url))).subarray(0, 300),
    );
    const folder = await ImageFolder.open(root);
    await Deno.remove(`${root}/cat/b.png`); // unreadable by the time it is loaded
    for (const workers of [0, 2]) {
      const reported: string[] = [];
      const loader = new DataLoader(folder, {
        transform: validationTransform({ size: 16 }),
        batchSize: 2,
        workers,
        onSkip: (file) => reported.push(file.path),
      });
      const batches = await epoch(loader);
      const kept = batches.flatMap((b) => [...b.indices]);
      assert.deepEqual(kept.map((i) => folder.samples[i][0].slice(root.length + 1)), [
        "cat/a.png",
        "dog/c.png",
      ]);
      assert.equal(loader.skipped.length, 3);
      assert.equal(reported.length, 3);
      const text = loader.skipped.map((s) => `${s.path}: ${s.reason}`).join("\n");
      console.log(`workers ${workers}: ${loader.skipped.length} skipped\n${text}`);
      assert.match(text, /corrupt\.png: /);
      assert.match(text, /truncated\.jpg: /);
      assert.match(text, /cat\/b\.png: Cannot read image .*cat\/b\.png/);
      await epoch(loader); // the same files again are not reported twice
      assert.equal(reported.length, 3);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("DataLoader: a transform that throws rejects the iteration (workers and the calling thread)", async () => {
  for (const workers of [0, 2]) {
    const loader = new DataLoader(synthetic(8), {
      transform: new Compose([new Resize(16)]), // no ToTensor
      batchSize: 2,
      workers,
    });
    await assert.rejects(epoch(loader), (e: Error) => {
      assert(e instanceof DatasetError, String(e));
      assert.match(e.message, /ShapeError: .*end it with ToTensor\(\)|add ToTensor\(\)/);
      return true;
    });
  }
  // Samples of different sizes cannot be stacked.
  const mixed: Dataset = {
    length: 2,
    classes: ["a"],
    raw: (i) =>
      Promise.resolve({
        source: {
          data: new Uint8Array(i ? 12 : 27),
          width: i ? 2 : 3,
          height: i ? 2 : 3,
          channels: 3,
        },
        label: 0,
        name: `image ${i}`,
      }),
    get: async (i) => ({ image: decodeRaw(await mixed.raw(i)), label: 0 }),
  };
  for (const workers of [0, 1, 2]) {
    const loader = new DataLoader(mixed, {
      transform: new Compose([new ToTensor()]),
      batchSize: 2,
      workers,
    });
    await assert.rejects(
      epoch(loader),
      /annot stack samples of shapes \[3, 3, 3\] and \[3, 2, 2\]/,
    );
  }
});

Deno.test("DataLoader: a worker that dies or stops answering rejects, never hangs", async () => {
  const modules = {
    throws:
      `self.onmessage = (e) => { if (e.data.type === "batch") throw new Error("boom in worker"); };`,
    closes: `self.onmessage = (e) => { if (e.data.type === "batch") self.close(); };`,
    fails_to_load: `throw new Error("cannot start");`,
  };
  const Original = globalThis.Worker;
  for (const [what, code] of Object.entries(modules)) {
    const path = await Deno.makeTempFile({ suffix: ".js" });
    await Deno.writeTextFile(path, code);
    globalThis.Worker = class extends Original {
      constructor(_url: string | URL, options?: WorkerOptions) {
        super(new URL(`file://${path}`), options);
      }
    };
    try {
      const loader = new DataLoader(synthetic(6), {
        transform: validationTransform({ size: 8 }),
        batchSize: 2,
        workers: 2,
        timeout: 2000,
      });
      await assert.rejects(epoch(loader), (e: Error) => {
        assert(e instanceof DatasetError, `${what}: ${e}`);
        console.log(`${what}: ${e.message}`);
        assert.match(
          e.message,
          what === "closes"
            ? /finished no sample in 2000 ms/
            : /Loader worker \d died: .*(boom in worker|cannot start)/,
        );
        return true;
      });
    } finally {
      globalThis.Worker = Original;
      await Deno.remove(path);
    }
  }
});

Deno.test("DataLoader: breaking out of an epoch stops its work", async () => {
  const loader = new DataLoader(synthetic(40), {
    transform: validationTransform({ size: 32 }),
    batchSize: 2,
    workers: 2,
  });
  let n = 0;
  for await (const _ of loader) if (++n === 2) break;
  assert.equal(n, 2);
  assert.equal((await epoch(loader)).length, 20); // and the next epoch starts afresh
});

Deno.test("DataLoader: sandboxed workers (no permissions) under --unstable-worker-options", async () => {
  const script = `
import { DataLoader } from "${new URL("../src/data/loader.ts", import.meta.url)}";
import { ImageFolder } from "${new URL("../src/data/image_folder.ts", import.meta.url)}";
import { validationTransform } from "${new URL("../src/data/transforms.ts", import.meta.url)}";
const folder = await ImageFolder.open(Deno.args[0]);
const loader = new DataLoader(folder, { transform: validationTransform({ size: 8 }), workers: 1, sandbox: true });
let n = 0;
for await (const batch of loader) n += batch.labels.length;
console.log(n);
`;
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/a`);
    await Deno.copyFile(
      new URL("./fixtures/data/transform_1.png", import.meta.url),
      `${root}/a/x.png`,
    );
    await Deno.copyFile(
      new URL("./fixtures/data/transform_8.png", import.meta.url),
      `${root}/a/y.png`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-read", "--unstable-worker-options", "-", root],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = out.stdin.getWriter();
    await writer.write(new TextEncoder().encode(script));
    await writer.close();
    const { code, stdout, stderr } = await out.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.equal(new TextDecoder().decode(stdout).trim(), "2");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Runs `script` (imports rewritten to this checkout) in a child `deno run` in `cwd`, killed after `limitMs`. */
async function child(
  script: string,
  flags: string[],
  cwd: string,
  limitMs = 30_000,
): Promise<{ code: number; out: string; err: string; seconds: number }> {
  const src = new URL("../src/", import.meta.url).href;
  const path = `${cwd}/script.ts`;
  await Deno.writeTextFile(path, script.replaceAll("SRC/", src));
  const start = performance.now();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, path],
    cwd,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(limitMs),
  }).output();
  const decoder = new TextDecoder();
  return {
    code,
    out: decoder.decode(stdout),
    err: decoder.decode(stderr),
    seconds: (performance.now() - start) / 1000,
  };
}

Deno.test("DataLoader: an iterator only peeked lets the process exit; idle workers restart on demand", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    // Workers idle for LOADER_IDLE_MS end: the child exits about then, not never (killed at 30 s).
    const { code, out, err, seconds } = await child(
      `
import { DataLoader } from "SRC/data/loader.ts";
import { IdxDataset } from "SRC/data/idx.ts";
import { validationTransform } from "SRC/data/transforms.ts";
const dataset = new IdxDataset({
  images: { dtype: "uint8", shape: [40, 8, 8], data: new Uint8Array(40 * 64) },
  labels: { dtype: "uint8", shape: [40], data: new Uint8Array(40) },
});
const loader = new DataLoader(dataset, { transform: validationTransform({ size: 8 }), batchSize: 2, workers: 2 });
const first = await loader[Symbol.asyncIterator]().next();
console.log("peeked", first.value.input.shape.join("x"));
`,
      ["--allow-read"],
      cwd,
    );
    console.log(`peeked child exited with ${code} after ${seconds.toFixed(1)} s`);
    assert.equal(code, 0, err);
    assert.equal(out.trim(), "peeked 2x3x8x8");
    assert(seconds < 15, `took ${seconds} s`);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
  // In process: a pause longer than the idle period ends the workers; the epoch then goes on.
  const loader = new DataLoader(synthetic(12), {
    transform: validationTransform({ size: 8 }),
    batchSize: 2,
    workers: 2,
    prefetch: 1,
  });
  const reference = await epoch(
    new DataLoader(synthetic(12), {
      transform: validationTransform({ size: 8 }),
      batchSize: 2,
      workers: 0,
    }),
  );
  const iterator = loader[Symbol.asyncIterator]();
  const got: Batch[] = [(await iterator.next()).value as Batch];
  await new Promise((resolve) => setTimeout(resolve, LOADER_IDLE_MS + 1000));
  for (let r = await iterator.next(); !r.done; r = await iterator.next()) got.push(r.value);
  assert.equal(got.length, 6);
  got.forEach((b, i) => assert.deepEqual(b.input.data, reference[i].input.data));
});

Deno.test("DataLoader: options are checked up front (unknown names, types, worker cap, dataset)", () => {
  const dataset = synthetic(4);
  const transform = validationTransform({ size: 8 });
  const cases: [string, () => unknown, RegExp][] = [
    [
      "batch_size: 4",
      () => new DataLoader(dataset, { transform, batch_size: 4 } as never),
      /Unknown option "batch_size" of DataLoader: expected one of "transform", "batchSize", /,
    ],
    [
      'shuffle: "no"',
      () => new DataLoader(dataset, { transform, shuffle: "no" } as never),
      /Expected shuffle to be true or false, got "no"/,
    ],
    [
      'dropLast: "false"',
      () => new DataLoader(dataset, { transform, dropLast: "false" } as never),
      /Expected dropLast to be true or false/,
    ],
    [
      "workers: 1000",
      () => new DataLoader(dataset, { transform, workers: 1000 }),
      /Expected workers to be an integer from 0 to \d+ \(twice the \d+ cores, at least 8/,
    ],
    ["workers: 1.5", () => new DataLoader(dataset, { transform, workers: 1.5 }), /workers/],
    ["batchSize: 0", () => new DataLoader(dataset, { transform, batchSize: 0 }), /batchSize/],
    ["timeout: 0", () => new DataLoader(dataset, { transform, timeout: 0 }), /timeout/],
    [
      "onSkip: 1",
      () => new DataLoader(dataset, { transform, onSkip: 1 } as never),
      /onSkip to be a function/,
    ],
    [
      "dataset null",
      () => new DataLoader(null as never, { transform }),
      /Expected dataset to be a Dataset .*got null/,
    ],
    [
      "dataset without raw()",
      () => new DataLoader({ length: 1, classes: [] } as never, { transform }),
      /Expected dataset to be a Dataset/,
    ],
    [
      "options null",
      () => new DataLoader(dataset, null as never),
      /Expected the options of DataLoader to be an object, got null/,
    ],
  ];
  for (const [what, make, message] of cases) {
    assert.throws(make, (e: Error) => {
      assert(e instanceof OptionError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
  }
});

Deno.test("DataLoader: the workers get copies: a data set's bytes in memory are never detached", async () => {
  // The loader transferred the buffer raw() returned when it was whole: a data set that keeps
  // its files in memory had them detached after one epoch (the next failed with a
  // DataCloneError), as had a one-image IdxDataset; one buffer shared by two samples failed.
  const png = await Deno.readFile(new URL("./fixtures/images/coffee_rgb.png", import.meta.url));
  const inMemory: Dataset = {
    length: 3,
    classes: ["a", "b"],
    raw: (i) => Promise.resolve({ source: png, label: i % 2, name: `png ${i}` }),
    get: () => Promise.reject(new Error("not used")),
  };
  const single = synthetic(1);
  const pixels = (await single.raw(0)).source as { data: Uint8Array };
  for (const dataset of [inMemory, single]) {
    const loader = new DataLoader(dataset, {
      transform: validationTransform({ size: 8 }),
      batchSize: 3,
      workers: 1,
      persistentWorkers: true,
    });
    try {
      for (let e = 0; e < 2; e++) {
        const batches = await epoch(loader);
        assert.equal(batches[0].labels.length, dataset.length, `epoch ${e}`);
      }
    } finally {
      loader.close();
    }
  }
  assert.equal(png.byteLength, 115524);
  assert.equal(pixels.data.byteLength, 784);
});

Deno.test("DataLoader: decode limits are checked up front and used as they were given", async () => {
  const dataset = synthetic(2);
  const transform = validationTransform({ size: 8 });
  // A bad limit failed every sample's decode, each one reported as a skipped file (an epoch of
  // nothing), and the caller's object was read at every batch.
  const cases: [unknown, RegExp][] = [
    [{ maxPixels: 0 }, /^Expected maxPixels to be an integer from 1 to \d+, got 0$/],
    [{ maxPixels: "big" }, /^Expected maxPixels to be an integer from 1 to \d+, got "big"$/],
    [
      { maxPixel: 5 },
      /^Unknown option "maxPixel" of DataLoader's decode: expected one of "maxPixels", "exifOrientation"$/,
    ],
  ];
  for (const [decode, message] of cases) {
    for (const workers of [0, 1]) {
      assert.throws(
        () => new DataLoader(dataset, { transform, workers, decode: decode as never }),
        (e: Error) => e instanceof OptionError && message.test(e.message),
        JSON.stringify(decode),
      );
    }
  }
  const png = await Deno.readFile(new URL("./fixtures/images/coffee_rgb.png", import.meta.url));
  const files: Dataset = {
    length: 2,
    classes: ["a", "b"],
    raw: (i) => Promise.resolve({ source: png.slice(), label: i, name: `png ${i}` }),
    get: () => Promise.reject(new Error("not used")),
  };
  const decode = { maxPixels: 1_000_000 };
  const loader = new DataLoader(files, { transform, batchSize: 2, workers: 0, decode });
  decode.maxPixels = 1;
  assert.equal((await epoch(loader))[0].labels.length, 2);
  assert.deepEqual(loader.skipped, []);
});

Deno.test("DataLoader: a custom transform runs on the calling thread, or is refused with workers > 0", async () => {
  const dataset = synthetic(4);
  const custom = {
    spec: { name: "Custom" },
    apply: () => new Tensor(new Float32Array(12), [3, 2, 2]),
  };
  // Explicit workers: refused up front, not "Unknown transform" inside the workers.
  for (const transform of [custom, new Compose([new Resize(4), custom as never])]) {
    assert.throws(
      () => new DataLoader(dataset, { transform: transform as never, workers: 2 }),
      (e: Error) =>
        e instanceof OptionError &&
        /Expected workers: 0 with this transform .*built-in transforms/.test(e.message),
    );
  }
  // A subclass of a built-in transform: its own apply() would not run in a worker.
  class Shifted extends CenterCrop {}
  assert.throws(
    () => new DataLoader(dataset, { transform: new Shifted(4), workers: 1 }),
    OptionError,
  );
  // Workers left out: the calling thread runs it.
  const loader = new DataLoader(dataset, { transform: custom as never, batchSize: 4 });
  assert.equal(loader.workers, 0);
  const [batch] = await epoch(loader);
  assert.deepEqual(batch.input.shape, [4, 3, 2, 2]);
  // Built-in transforms keep the default workers.
  assert.equal(
    new DataLoader(dataset, { transform: validationTransform({ size: 8 }) }).workers,
    Math.min(2, navigator.hardwareConcurrency),
  );
});

Deno.test("DataLoader: a data set's own failures and bad labels are a DatasetError naming the sample", async () => {
  const base = synthetic(4);
  const broken = (raw: (i: number) => Promise<unknown>): Dataset => ({
    length: 4,
    classes: ["a", "b"],
    raw: raw as Dataset["raw"],
    get: () => Promise.reject(new Error("unused")),
  });
  const cases: [string, Dataset, RegExp][] = [
    [
      "raw() throws a TypeError",
      broken(async (i) => {
        if (i === 2) throw new TypeError("boom");
        return { ...(await base.raw(i)), label: 0 };
      }),
      /Reading sample 2 \(sample 2\) failed: TypeError: boom/,
    ],
    [
      "label 5 of 2 classes",
      broken(async (i) => ({ ...(await base.raw(i)), label: i === 3 ? 5 : 0 })),
      /Sample 3 \(sample 3\) has label 5: expected an integer from 0 to 1 \(the data set's 2 classes\)/,
    ],
    [
      "label -1",
      broken(async (i) => ({ ...(await base.raw(i)), label: -1 })),
      /Sample 0 \(sample 0\) has label -1/,
    ],
    [
      'label "1"',
      broken(async (i) => ({ ...(await base.raw(i)), label: "1" })),
      /has label "1"/,
    ],
    [
      "source a string",
      broken(() => Promise.resolve({ source: "x.png", label: 0, name: "x" })),
      /Sample 0 \(sample 0\) has source "x.png"/,
    ],
  ];
  for (const [what, dataset, message] of cases) {
    for (const workers of [0, 1]) {
      const loader = new DataLoader(dataset, {
        transform: validationTransform({ size: 8 }),
        batchSize: 2,
        workers,
      });
      await assert.rejects(epoch(loader), (e: Error) => {
        assert(e instanceof DatasetError, `${what}: ${e}`);
        assert.match(e.message, message, what);
        return true;
      });
    }
  }
});

Deno.test("DataLoader: sandbox without --unstable-worker-options is an OptionError, not an exit", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const script = `
import { DataLoader } from "SRC/data/loader.ts";
import { IdxDataset } from "SRC/data/idx.ts";
import { validationTransform } from "SRC/data/transforms.ts";
const dataset = new IdxDataset({
  images: { dtype: "uint8", shape: [2, 4, 4], data: new Uint8Array(32) },
  labels: { dtype: "uint8", shape: [2], data: new Uint8Array(2) },
});
try {
  let n = 0;
  for await (const b of new DataLoader(dataset, { transform: validationTransform({ size: 4 }), workers: 1, sandbox: true })) n += b.labels.length;
  console.log("ran", n);
} catch (e) {
  console.log(e.constructor.name, e.message);
}
`;
    // The loader reads the command line from /proc/self/cmdline (Deno allows it under --allow-all)
    // or from ps (--allow-run=ps); with neither it cannot tell and creates the workers.
    for (const flags of [["-A"], ["--allow-read", "--allow-run=ps"]]) {
      const without = await child(script, flags, cwd);
      assert.equal(without.code, 0, without.err);
      console.log(flags.join(" "), "->", without.out.trim());
      assert.match(
        without.out,
        /^OptionError sandbox: true needs Deno's --unstable-worker-options/,
      );
      const flag = await child(script, [...flags, "--unstable-worker-options"], cwd);
      assert.equal(flag.code, 0, flag.err);
      assert.equal(flag.out.trim(), "ran 2");
    }
    // The feature named in the config file counts too.
    await Deno.writeTextFile(`${cwd}/deno.json`, '{ "unstable": ["worker-options"] }');
    const config = await child(script, ["-A"], cwd);
    assert.equal(config.code, 0, config.err);
    assert.equal(config.out.trim(), "ran 2");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

const FASHION = "/usr/share/datasets/fashion-mnist/";
const missing = await Deno.stat(FASHION + "t10k-images-idx3-ubyte.gz").then(
  () => false,
  () => true,
);
if (missing) console.log(`Skipping the Fashion-MNIST loader test: ${FASHION} is absent`);

Deno.test({
  name:
    "DataLoader: Fashion-MNIST upscaled to 224, 3 channels, equal to the transform on the calling thread",
  ignore: missing,
  async fn() {
    const test = await loadIdxDataset({
      images: FASHION + "t10k-images-idx3-ubyte.gz",
      labels: FASHION + "t10k-labels-idx1-ubyte.gz",
    });
    const transform = trainTransform("none", { size: 224 });
    const loader = new DataLoader(test, { transform, batchSize: 16, workers: 2 });
    let n = 0;
    for await (const { input, labels, indices } of loader) {
      assert.deepEqual(input.shape, [16, 3, 224, 224]);
      const size = 3 * 224 * 224;
      for (const k of [0, 15]) {
        const { image, label } = await test.get(indices[k]);
        assert.equal(labels[k], label);
        const expected = transform.tensor(image);
        assert.deepEqual(input.data.subarray(k * size, (k + 1) * size), expected.data);
        // Grey replicated: the three planes are equal.
        const plane = 224 * 224;
        assert.deepEqual(
          expected.data.subarray(0, plane),
          expected.data.subarray(plane, 2 * plane),
        );
      }
      let min = Infinity;
      let max = -Infinity;
      for (const v of input.data) [min, max] = [Math.min(min, v), Math.max(max, v)];
      assert(min >= -1 && max <= 1 && max > min);
      if (++n === 3) break;
    }
  },
});

const torchvision = !missing && await new Deno.Command("/usr/bin/python3", {
  args: ["-c", "import torchvision"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);
if (!missing && !torchvision) {
  console.log(
    "Skipping the torchvision FashionMNIST comparison: /usr/bin/python3 with torchvision is absent",
  );
}

Deno.test({
  name:
    "DataLoader: Fashion-MNIST batches equal torchvision's FashionMNIST + Resize(224) + Normalize(0.5, 0.5)",
  ignore: !torchvision,
  async fn() {
    const pick = [0, 1, 2, 9999];
    const script = `
import gzip, shutil, sys, tempfile, os
import numpy as np
from torchvision import datasets, transforms as T
root = tempfile.mkdtemp()
raw = os.path.join(root, "FashionMNIST", "raw")
os.makedirs(raw)
for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
    with gzip.open("${FASHION}" + name + ".gz") as f, open(os.path.join(raw, name), "wb") as g:
        g.write(f.read())
for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]:
    open(os.path.join(raw, name), "wb").close()  # present (no checksum is checked), never read for train=False
ds = datasets.FashionMNIST(root, train=False, transform=T.Compose([T.Resize(224), T.ToTensor(), T.Normalize([0.5], [0.5])]))
out = np.stack([ds[i][0].numpy()[0] for i in ${JSON.stringify(pick)}]).astype("<f4")
sys.stdout.buffer.write(out.tobytes())
shutil.rmtree(root)
`;
    const out = await new Deno.Command("/usr/bin/python3", { args: ["-c", script] }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    const theirs = new Float32Array(out.stdout.slice().buffer);
    const plane = 224 * 224;
    assert.equal(theirs.length, pick.length * plane);
    const test = await loadFashionMnist({ root: FASHION, train: false });
    const loader = new DataLoader(new Subset(test, pick), {
      transform: trainTransform("none", { size: 224 }),
      batchSize: pick.length,
      workers: 2,
    });
    const [batch] = await epoch(loader);
    assert.deepEqual(batch.input.shape, [pick.length, 3, 224, 224]);
    let max = 0;
    for (let k = 0; k < pick.length; k++) {
      for (let c = 0; c < 3; c++) {
        const ours = batch.input.data.subarray((3 * k + c) * plane, (3 * k + c + 1) * plane);
        for (let i = 0; i < plane; i++) {
          max = Math.max(max, Math.abs(ours[i] - theirs[k * plane + i]));
        }
      }
    }
    console.log(`${pick.length} images x 3 channels: max |ours - torchvision| ${max}`);
    assert.equal(max, 0);
  },
});
