import assert from "node:assert/strict";
import { gzipSync } from "npm:fflate@0.8.2";
import { DatasetError, OptionError } from "../src/errors.ts";
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  IdxDataset,
  loadFashionMnist,
  loadIdxDataset,
  parseIdx,
  readIdx,
} from "../src/data/idx.ts";

/** An IDX file: magic, big-endian dimensions, then `body` as given. */
function idx(type: number, shape: number[], body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + body.length);
  const view = new DataView(out.buffer);
  out[2] = type;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(body, 4 + 4 * shape.length);
  return out;
}

const IMAGES = idx(0x08, [3, 2, 2], Uint8Array.from({ length: 12 }, (_, i) => i * 20));
const LABELS = idx(0x08, [3], new Uint8Array([2, 0, 1]));

Deno.test("readIdx: raw and gzip give the same uint8 array", async () => {
  for (const bytes of [IMAGES, gzipSync(IMAGES)]) {
    const { dtype, shape, data } = await readIdx(bytes);
    assert.equal(dtype, "uint8");
    assert.deepEqual(shape, [3, 2, 2]);
    assert.deepEqual([...data], Array.from({ length: 12 }, (_, i) => i * 20));
  }
});

Deno.test("readIdx: big-endian element types", () => {
  const body = (size: number, write: (v: DataView, i: number) => void) => {
    const b = new Uint8Array(3 * size);
    const v = new DataView(b.buffer);
    for (let i = 0; i < 3; i++) write(v, i);
    return b;
  };
  const values = [-2, 1.5, 300];
  const cases: [number, string, number, (v: DataView, i: number) => void, number[]][] = [
    [0x09, "int8", 1, (v, i) => v.setInt8(i, [-2, 1, 100][i]), [-2, 1, 100]],
    [0x0b, "int16", 2, (v, i) => v.setInt16(2 * i, [-2, 1, 300][i]), [-2, 1, 300]],
    [0x0c, "int32", 4, (v, i) => v.setInt32(4 * i, [-2, 1, 70000][i]), [-2, 1, 70000]],
    [0x0d, "float32", 4, (v, i) => v.setFloat32(4 * i, values[i]), values],
    [0x0e, "float64", 8, (v, i) => v.setFloat64(8 * i, values[i] / 3), values.map((x) => x / 3)],
  ];
  for (const [type, dtype, size, write, expected] of cases) {
    const parsed = parseIdx(idx(type, [3], body(size, write)));
    assert.equal(parsed.dtype, dtype);
    assert.deepEqual([...parsed.data], expected, dtype);
  }
});

Deno.test("readIdx: truncated, too long, lying and foreign input is a DatasetError", () => {
  const truncated = IMAGES.subarray(0, IMAGES.length - 1);
  const long = new Uint8Array([...IMAGES, 0]);
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "truncated data",
      truncated,
      /Truncated IDX data: the header declares 12 bytes of elements, got 11/,
    ],
    ["truncated data, gzip", gzipSync(truncated), /Truncated IDX data/],
    ["trailing data", long, /13 bytes, longer than the 12 bytes/],
    ["trailing data, gzip", gzipSync(long), /longer than the 12 bytes/],
    [
      "truncated header",
      IMAGES.subarray(0, 9),
      /Truncated IDX header: expected at least 16 bytes, got 9/,
    ],
    ["truncated header, gzip", gzipSync(IMAGES.subarray(0, 9)), /Truncated IDX header/],
    ["empty", new Uint8Array(0), /Truncated IDX header/],
    ["not IDX", new TextEncoder().encode("hello world"), /Not an IDX file: expected magic 00 00/],
    ["unknown type", idx(0x07, [1], new Uint8Array(1)), /Unsupported IDX element type 0x07/],
    [
      "corrupt gzip",
      new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]),
      /gzip|IDX/,
    ],
    // 4 x 2^32-1 elements: refused from the header, long before any allocation.
    [
      "lying header",
      idx(0x08, [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], new Uint8Array(4)),
      /expected at most 536870912 bytes \(maxBytes\)/,
    ],
    [
      "lying header, gzip",
      gzipSync(idx(0x0d, [60000, 28, 28, 1000], new Uint8Array(16))),
      /maxBytes/,
    ],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => parseIdx(bytes), (e: Error) => {
      assert(e instanceof DatasetError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
  }
});

Deno.test("readIdx: a gzip bomb stops at the size its header declares", () => {
  // 10 declared bytes followed by 64 MB of zeros that inflate from ~64 KB.
  const bomb = new Uint8Array(4 + 4 + 64 * 1024 * 1024);
  bomb.set(idx(0x08, [10], new Uint8Array(0)));
  const compressed = gzipSync(bomb, { level: 9 });
  assert(compressed.length < 200_000);
  assert.throws(() => parseIdx(compressed), /IDX data is \d+ bytes, longer than the 10 bytes/);
});

Deno.test("readIdx: maxBytes bounds the file and the declared elements", async () => {
  assert.throws(() => parseIdx(IMAGES, { maxBytes: 11 }), /expected at most 11/);
  // A 12-byte file under a 100-byte budget that declares 1000 elements.
  assert.throws(
    () => parseIdx(idx(0x08, [1000], new Uint8Array(4)), { maxBytes: 100 }),
    /declares shape \[1000\] of uint8 \(1000 bytes\): expected at most 100 bytes \(maxBytes\)/,
  );
  assert.throws(() => parseIdx(IMAGES, { maxBytes: 0 }), OptionError);
  const path = await Deno.makeTempFile({ suffix: ".idx" });
  try {
    await Deno.writeFile(path, IMAGES);
    assert.equal((await readIdx(path)).shape[0], 3);
    await assert.rejects(readIdx(path, { maxBytes: 20 }), /is 28 bytes: expected at most 20/);
    await assert.rejects(readIdx(path + ".missing"), /Cannot read IDX file/);
    await Deno.writeFile(path, IMAGES.subarray(0, 20));
    await assert.rejects(readIdx(path), (e: Error) => {
      assert(e instanceof DatasetError);
      assert(e.message.startsWith(path), e.message);
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("readIdx, loadIdxDataset, loadFashionMnist: options are checked, a misspelt maxBytes too", async () => {
  // Each was accepted: "maxbytes" was ignored (the file read under the 512 MiB default, not the
  // budget asked for), "1" and 100.5 compared as numbers, null threw a TypeError, and
  // train: "false" loaded the training split.
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    [
      "maxbytes",
      () => readIdx(IMAGES, { maxbytes: 10 } as never),
      /^Unknown option "maxbytes" of readIdx: expected one of "maxBytes"$/,
    ],
    [
      'maxBytes "100"',
      () => readIdx(IMAGES, { maxBytes: "100" as never }),
      /^Expected maxBytes to be an integer >= 1, got "100"$/,
    ],
    ["maxBytes 100.5", () => readIdx(IMAGES, { maxBytes: 100.5 }), /got 100\.5$/],
    [
      "options null",
      () => readIdx(IMAGES, null as never),
      /^Expected the options of readIdx to be an object, got null$/,
    ],
    [
      "a number source",
      () => readIdx(5 as never),
      /^Expected an IDX file's bytes \(a Uint8Array\), path or file: URL, got 5$/,
    ],
    [
      "loadIdxDataset maxbytes",
      () => loadIdxDataset({ images: IMAGES, labels: LABELS, maxbytes: 10 } as never),
      /^Unknown option "maxbytes" of loadIdxDataset: expected one of "images", "labels", "classes", "maxBytes"$/,
    ],
    [
      "loadIdxDataset without files",
      () => loadIdxDataset(undefined as never),
      /^Expected an IDX file's bytes .*got undefined$/,
    ],
    [
      'train: "false"',
      () => loadFashionMnist({ root: "/nonexistent", train: "false" as never }),
      /^Expected train to be true or false, got "false"$/,
    ],
    [
      "loadFashionMnist maxbytes",
      () => loadFashionMnist({ root: "/nonexistent", maxbytes: 1 } as never),
      /^Unknown option "maxbytes" of loadFashionMnist/,
    ],
  ];
  for (const [what, call, message] of cases) {
    await assert.rejects(
      call,
      (e: Error) => e instanceof OptionError && message.test(e.message),
      what,
    );
  }
  // The budget given is the one applied.
  await assert.rejects(
    loadIdxDataset({ images: IMAGES, labels: LABELS, maxBytes: 20 }),
    /expected at most 20 \(maxBytes\)/,
  );
});

Deno.test("IdxDataset: pairs images and labels, grey replicated to RGB", async () => {
  const dataset = await loadIdxDataset({ images: gzipSync(IMAGES), labels: LABELS });
  assert.equal(dataset.length, 3);
  assert.deepEqual(dataset.classes, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  const { image, label } = await dataset.get(1);
  assert.equal(label, 0);
  assert.equal(image.width, 2);
  assert.equal(image.height, 2);
  assert.deepEqual([...image.data], [80, 80, 80, 100, 100, 100, 120, 120, 120, 140, 140, 140]);
  const raw = await dataset.raw(2);
  assert.equal(raw.label, 1);
  assert.equal(raw.name, "image 2");
  await assert.rejects(dataset.get(3), OptionError);
  await assert.rejects(dataset.get(-1), OptionError);
  await assert.rejects(dataset.get(0.5), OptionError);
  const named = await loadIdxDataset({ images: IMAGES, labels: LABELS, classes: ["a", "b", "c"] });
  assert.deepEqual(named.classes, ["a", "b", "c"]);
});

Deno.test("IdxDataset: files that do not pair up are a DatasetError", async () => {
  const cases: [Uint8Array, Uint8Array, RegExp, string[]?][] = [
    [IMAGES, idx(0x08, [2], new Uint8Array(2)), /Expected 3 labels for 3 images, got 2/],
    [LABELS, LABELS, /Expected IDX images of type uint8 and shape \[N, H, W\], got uint8 \[3\]/],
    [IMAGES, IMAGES, /Expected IDX labels of type uint8 and shape \[N\], got uint8 \[3, 2, 2\]/],
    [IMAGES, idx(0x08, [3], new Uint8Array([0, 1, 2])), /Label 2 has no class name/, ["a", "b"]],
  ];
  for (const [images, labels, message, classes] of cases) {
    await assert.rejects(loadIdxDataset({ images, labels, classes }), (e: Error) => {
      assert(e instanceof DatasetError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
  // More than ten label values: names up to the largest.
  const many = new IdxDataset({
    images: parseIdx(idx(0x08, [2, 1, 1], new Uint8Array(2))),
    labels: parseIdx(idx(0x08, [2], new Uint8Array([0, 12]))),
  });
  assert.equal(many.classes.length, 13);
});

const FASHION = "/usr/share/datasets/fashion-mnist/";
const missing = await Deno.stat(FASHION + "train-images-idx3-ubyte.gz").then(
  () => false,
  () => true,
);
if (missing) {
  console.log(
    `Skipping the Fashion-MNIST tests: ${FASHION} is absent (apt install dataset-fashion-mnist)`,
  );
}

Deno.test({
  name: "Fashion-MNIST: the real files, checked against Python's gzip + numpy",
  ignore: missing,
  async fn() {
    const train = await loadIdxDataset({
      images: FASHION + "train-images-idx3-ubyte.gz",
      labels: FASHION + "train-labels-idx1-ubyte.gz",
    });
    const test = await loadIdxDataset({
      images: FASHION + "t10k-images-idx3-ubyte.gz",
      labels: FASHION + "t10k-labels-idx1-ubyte.gz",
    });
    assert.equal(train.length, 60000);
    assert.equal(test.length, 10000);
    assert.deepEqual(train.classes, FASHION_MNIST_CLASSES);
    assert.deepEqual(test.classes, FASHION_MNIST_CLASSES);
    assert.equal(train.width, 28);
    assert.equal(train.height, 28);
    // Mean and std of all training pixels, against the documented constants.
    let sum = 0;
    let squares = 0;
    const counts = new Array(10).fill(0);
    for (let i = 0; i < train.length; i++) {
      const raw = await train.raw(i);
      counts[raw.label]++;
      for (const v of (raw.source as { data: Uint8Array }).data) {
        sum += v;
        squares += v * v;
      }
    }
    const n = train.length * 784;
    const mean = sum / n / 255;
    const std = Math.sqrt(squares / n / 65025 - mean * mean);
    console.log(`Fashion-MNIST train: mean ${mean}, std ${std}, per class ${counts}`);
    assert(Math.abs(mean - FASHION_MNIST_MEAN) < 1e-5);
    assert(Math.abs(std - FASHION_MNIST_STD) < 1e-5);
    assert.deepEqual(counts, new Array(10).fill(6000));
    // An independent reader: Python's gzip + numpy, on a few test images.
    const pick = [0, 1, 4321, 9999];
    const script = `
import gzip, json, numpy as np
d = "${FASHION}"
x = np.frombuffer(gzip.open(d + "t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 28, 28)
y = np.frombuffer(gzip.open(d + "t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
print(json.dumps([[int(y[i]), int(x[i].sum()), int(x[i, 14].astype(np.int64) @ np.arange(28))] for i in ${
      JSON.stringify(pick)
    }]))
`;
    let reference: number[][] | undefined;
    try {
      const out = await new Deno.Command("/usr/bin/python3", { args: ["-c", script] }).output();
      if (out.success) reference = JSON.parse(new TextDecoder().decode(out.stdout));
    } catch { /* no python */ }
    if (reference === undefined) {
      console.log("Skipping the numpy comparison: /usr/bin/python3 with numpy is not available");
      return;
    }
    for (const [k, i] of pick.entries()) {
      const { image, label } = await test.get(i);
      let total = 0;
      let row = 0;
      for (let p = 0; p < 784; p++) {
        assert.equal(image.data[3 * p], image.data[3 * p + 1]);
        assert.equal(image.data[3 * p], image.data[3 * p + 2]);
        total += image.data[3 * p];
      }
      for (let x = 0; x < 28; x++) row += image.data[3 * (14 * 28 + x)] * x;
      assert.deepEqual([label, total, row], reference[k], `test image ${i}`);
    }
  },
});

Deno.test({
  name: "loadFashionMnist: the test split from Debian's folder; a missing folder is a DatasetError",
  ignore: missing,
  async fn() {
    const test = await loadFashionMnist({ train: false });
    assert.equal(test.length, 10000);
    assert.deepEqual(test.classes, FASHION_MNIST_CLASSES);
    assert.equal((await test.get(0)).label, 9); // an ankle boot
    await assert.rejects(
      loadFashionMnist({ root: "/nonexistent" }),
      /Fashion-MNIST file train-images-idx3-ubyte\(\.gz\) not found in \/nonexistent/,
    );
  },
});
