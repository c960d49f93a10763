import assert from "node:assert/strict";
import { zipSync } from "npm:fflate@0.8.2";
import { WeightsFormatError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { readPth, readSafetensors, writePth } from "../src/weights/mod.ts";
import { PickleEncoder, unpickle } from "../src/weights/pickle.ts";
import { readZipDirectory, readZipEntry, writeZip } from "../src/weights/zip.ts";

const FIXTURES = new URL("./fixtures/weights/", import.meta.url);
const expected = readSafetensors(await Deno.readFile(new URL("expected.safetensors", FIXTURES)));
const fixture = (name: string) => Deno.readFile(new URL(name, FIXTURES));

function assertFormatError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof WeightsFormatError && message.test(e.message));
}

/** Rewrites one entry of a ZIP archive (with a correct CRC), keeping the others. */
function replaceEntry(zip: Uint8Array, suffix: string, data: Uint8Array): Uint8Array {
  return writeZip(
    [...readZipDirectory(zip).values()].map((entry) => ({
      name: entry.name,
      data: entry.name.endsWith(suffix) ? data : readZipEntry(zip, entry),
    })),
  );
}

for (const name of ["dtypes", "views", "module", "protocol4", "nested", "parameter"]) {
  Deno.test(`readPth reads ${name}.pth exactly as torch.save wrote it`, async () => {
    const tensors = readPth(await fixture(`${name}.pth`));
    assert.deepEqual([...tensors.keys()], JSON.parse(expected.metadata[name]));
    for (const [key, tensor] of tensors) {
      const want = expected.tensors.get(`${name}/${key}`)!;
      assert.deepEqual(tensor.shape, want.shape, key);
      assert.deepEqual(tensor.data, want.data, key);
    }
  });
}

Deno.test("readPth keeps aligned float32 storages as views and shares shared storages", async () => {
  const bytes = await fixture("views.pth");
  const tensors = readPth(bytes);
  const a = tensors.get("shared_a")!.data;
  const b = tensors.get("shared_b")!.data;
  assert.equal(a.buffer, bytes.buffer);
  assert.equal(b.byteOffset - a.byteOffset, 8 * 4); // Offsets 2 and 10 of one storage.
  assert.notEqual(tensors.get("transposed")!.data.buffer, bytes.buffer); // Gathered copy.
});

Deno.test("writePth round-trips through readPth, with 64-byte aligned records", () => {
  const tensors = new Map([
    [
      "conv.weight",
      new Tensor(Float32Array.from({ length: 24 }, (_, i) => i / 7 - 1), [2, 3, 2, 2]),
    ],
    ["conv.bias", new Tensor(Float32Array.from([0.5, -0.25]), [2])],
    ["scalar", new Tensor(Float32Array.of(3), [])],
    ["empty", Tensor.zeros([0])],
  ]);
  const bytes = writePth(tensors, { name: "tiny" });
  const read = readPth(bytes);
  assert.deepEqual([...read.keys()], [...tensors.keys()]);
  for (const [key, tensor] of tensors) {
    assert.deepEqual(read.get(key)!.shape, tensor.shape);
    assert.deepEqual(read.get(key)!.data, tensor.data);
  }
  assert.equal(read.get("conv.weight")!.data.byteOffset % 64, 0);
  assert.deepEqual([...readZipDirectory(bytes).keys()], [
    "tiny/data.pkl",
    "tiny/byteorder",
    "tiny/data/0",
    "tiny/data/1",
    "tiny/data/2",
    "tiny/data/3",
    "tiny/version",
  ]);
  assertFormatError(() => writePth(tensors, { name: "a/b" }), /Invalid archive name "a\/b"/);
});

Deno.test("readPth reads deflated archives (re-zipped checkpoints)", async () => {
  const bytes = await fixture("dtypes.pth");
  const files = Object.fromEntries(
    [...readZipDirectory(bytes).values()].map((e) => [e.name, readZipEntry(bytes, e)]),
  );
  const deflated = zipSync(files, { level: 9 });
  assert.deepEqual(readPth(deflated), readPth(bytes));
});

/** Rewrites a `writeZip` archive's directory in ZIP64 form (all sizes and offsets in extra fields). */
function toZip64(zip: Uint8Array): Uint8Array {
  const entries = [...readZipDirectory(zip).values()];
  const dataEnd = new DataView(zip.buffer, zip.byteOffset).getUint32(zip.length - 6, true);
  const names = entries.map((e) => new TextEncoder().encode(e.name));
  const directorySize = names.reduce((a, n) => a + 46 + n.length + 28, 0);
  const out = new Uint8Array(dataEnd + directorySize + 56 + 20 + 22);
  const view = new DataView(out.buffer);
  out.set(zip.subarray(0, dataEnd));
  let at = dataEnd;
  entries.forEach((entry, i) => {
    view.setUint32(at, 0x02014b50, true);
    view.setUint16(at + 6, 45, true);
    view.setUint16(at + 10, entry.method, true);
    view.setUint32(at + 16, entry.crc32, true);
    for (const field of [20, 24, 42]) view.setUint32(at + field, 0xffffffff, true);
    view.setUint16(at + 28, names[i].length, true);
    view.setUint16(at + 30, 28, true);
    out.set(names[i], at + 46);
    const extra = at + 46 + names[i].length;
    view.setUint16(extra, 1, true);
    view.setUint16(extra + 2, 24, true);
    view.setBigUint64(extra + 4, BigInt(entry.size), true);
    view.setBigUint64(extra + 12, BigInt(entry.compressedSize), true);
    view.setBigUint64(extra + 20, BigInt(entry.headerOffset), true);
    at = extra + 28;
  });
  const record = at;
  view.setUint32(record, 0x06064b50, true);
  view.setBigUint64(record + 4, 44n, true);
  view.setBigUint64(record + 24, BigInt(entries.length), true);
  view.setBigUint64(record + 32, BigInt(entries.length), true);
  view.setBigUint64(record + 40, BigInt(directorySize), true);
  view.setBigUint64(record + 48, BigInt(dataEnd), true);
  view.setUint32(record + 56, 0x07064b50, true);
  view.setBigUint64(record + 64, BigInt(record), true);
  view.setUint32(record + 72, 1, true);
  const end = record + 76;
  view.setUint32(end, 0x06054b50, true);
  view.setUint16(end + 8, 0xffff, true);
  view.setUint16(end + 10, 0xffff, true);
  view.setUint32(end + 12, 0xffffffff, true);
  view.setUint32(end + 16, 0xffffffff, true);
  return out;
}

Deno.test("readPth reads ZIP64 archives", async () => {
  const bytes = await fixture("views.pth");
  assert.deepEqual(readPth(toZip64(bytes)), readPth(bytes));
});

Deno.test("readPth reads legacy files and explains TorchScript and non-checkpoint files", async () => {
  assertFormatError(() => readPth(new Uint8Array(0)), /^Not a PyTorch checkpoint: expected a ZIP/);
  // torch.save({"w": values([2])}, f, _use_new_zipfile_serialization=False): tests/weights_legacy.test.ts.
  const legacy = readPth(await fixture("legacy.pth"));
  assert.deepEqual(legacy.get("w")!.data, Float32Array.of(-1.5, -1.13));
  const script = await fixture("torchscript.pt");
  assertFormatError(
    () => readPth(script),
    /^TorchScript archive \(torch\.jit\.save\) is not supported/,
  );
  const one = new Uint8Array(1);
  assertFormatError(() => readPth(writeZip([{ name: "a/x", data: one }])), /has no "a\/data\.pkl"/);
  assertFormatError(
    () => readPth(writeZip([{ name: "a/data.pkl", data: one }, { name: "b/x", data: one }])),
    /expected every ZIP entry in one folder/,
  );
});

Deno.test("readPth refuses globals outside the allow-list without running them", async () => {
  const evil = await fixture("evil.pth");
  assertFormatError(
    () => readPth(evil),
    /refused global __builtin__\.print: nothing in a file is executed/,
  );
  const os = new PickleEncoder().proto().global("os", "system").string("echo").reduce().stop();
  assertFormatError(() => unpickle(os.finish(), { globals: {} }), /refused global os\.system/);
});

Deno.test("readPth reports corrupt archives and storages", async () => {
  const bytes = await fixture("views.pth");
  const flipped = bytes.slice();
  const entry = readZipDirectory(bytes).get("views/data/0")!;
  flipped[entry.headerOffset + 30 + "views/data/0".length + 70] ^= 1; // Inside the storage.
  assertFormatError(() => readPth(flipped), /CRC-32 mismatch in "views\/data\/0"/);
  assertFormatError(() => readPth(bytes.subarray(0, 600)), /Corrupt ZIP archive|Truncated ZIP/);
  const short = replaceEntry(bytes, "data/0", new Uint8Array(8));
  assertFormatError(
    () => readPth(short),
    /Storage "0" of \d+ F32 elements needs \d+ bytes, its record has 8/,
  );
  const pickle = readZipEntry(bytes, readZipDirectory(bytes).get("views/data.pkl")!);
  assertFormatError(
    () => readPth(replaceEntry(bytes, "data.pkl", pickle.subarray(0, pickle.length - 1))),
    /^Truncated data\.pkl: expected 1 more bytes at byte \d+, 0 left$/,
  );
});

Deno.test("readPth bounds what a file can claim", () => {
  // A deflated entry claiming 1 GB from 10 bytes is refused before inflating.
  const zip = writeZip([{ name: "a/data.pkl", data: new Uint8Array(10) }]);
  const view = new DataView(zip.buffer);
  const central = readZipDirectory(zip).get("a/data.pkl")!;
  const directory = zip.length - 22 - 46 - "a/data.pkl".length;
  view.setUint16(directory + 10, 8, true); // Method: deflate.
  view.setUint32(directory + 24, 1e9, true); // Uncompressed size.
  assert.equal(central.size, 10);
  assertFormatError(() => readPth(zip), /claims 1000000000 bytes from 10 deflated bytes/);

  const marks = new Uint8Array(100_002).fill(0x28);
  marks.set([0x80, 2]);
  assertFormatError(() => unpickle(marks, { globals: {} }), /more than 10000 nested marks/);
  assertFormatError(
    () => unpickle(Uint8Array.of(0x80, 2, 0x68, 5, 0x2e), { globals: {} }),
    /memo entry 5 is not defined/,
  );
  assertFormatError(
    () =>
      unpickle(Uint8Array.of(0x80, 2, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), {
        globals: {},
      }),
    /^Truncated pickle: expected Infinity more bytes/,
  );
  assertFormatError(
    () => unpickle(Uint8Array.of(0x80, 2, 0x49, 0x2e), { globals: {} }),
    /^Invalid pickle at byte 2: unsupported opcode 0x49/,
  );
});

Deno.test("readPth refuses expanded tensors and tensors past their storage", () => {
  const stored = (shape: number[], stride: number[], numel: number) => {
    const pickle = new PickleEncoder().proto().global("collections", "OrderedDict")
      .tuple(() => {}).reduce().mark().string("t").global("torch._utils", "_rebuild_tensor_v2")
      .tuple((p) => {
        p.tuple((pid) => {
          pid.string("storage").global("torch", "FloatStorage").string("0").string("cpu")
            .int(numel);
        }).persistentId().int(0);
        p.tuple((s) => shape.forEach((d) => s.int(d)));
        p.tuple((s) => stride.forEach((d) => s.int(d)));
        p.false().global("collections", "OrderedDict").tuple(() => {}).reduce();
      }).reduce().setItems().stop();
    return writeZip([
      { name: "a/data.pkl", data: pickle.finish() },
      { name: "a/data/0", data: new Uint8Array(numel * 4) },
    ]);
  };
  assert.deepEqual(readPth(stored([2, 2], [1, 2], 4)).get("t")!.shape, [2, 2]);
  assertFormatError(() => readPth(stored([2, 3], [0, 1], 3)), /expanded tensors are not supported/);
  assertFormatError(
    () => readPth(stored([2, 2], [2, 1], 3)),
    /Tensor of shape \[2, 2\] \(stride \[2, 1\], offset 0\) does not fit storage "0" of 3 elements$/,
  );
});
