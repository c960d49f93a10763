import assert from "node:assert/strict";
import { WeightsFormatError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { decodeElements, f16ToNumber, numberToBF16, numberToF16 } from "../src/weights/dtype.ts";
import { readSafetensors, writeSafetensors } from "../src/weights/mod.ts";

const FIXTURES = new URL("./fixtures/weights/", import.meta.url);
const expected = readSafetensors(await Deno.readFile(new URL("expected.safetensors", FIXTURES)));

/** A safetensors file with the given raw header and data bytes. */
function file(header: unknown, dataBytes = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function assertFormatError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof WeightsFormatError && message.test(e.message));
}

Deno.test("readSafetensors converts F16, BF16, F64, I64 and F32 written by Python exactly", async () => {
  const { tensors, metadata } = readSafetensors(
    await Deno.readFile(new URL("mixed.safetensors", FIXTURES)),
  );
  assert.deepEqual(metadata, { format: "pt" });
  assert.deepEqual([...tensors.keys()], JSON.parse(expected.metadata.mixed));
  for (const [key, tensor] of tensors) {
    const want = expected.tensors.get(`mixed/${key}`)!;
    assert.deepEqual(tensor.shape, want.shape, key);
    assert.deepEqual(tensor.data, want.data, key);
  }
});

Deno.test("writeSafetensors round-trips F32 exactly, as views of the file", () => {
  const tensors = new Map([
    ["a", new Tensor(Float32Array.from([1.5, -2, 3e-8, 65504]), [2, 2])],
    ["scalar", new Tensor(Float32Array.from([7]), [])],
    ["empty", Tensor.zeros([0, 4])],
  ]);
  const bytes = writeSafetensors(tensors, { metadata: { note: "x" } });
  assert.equal(new DataView(bytes.buffer).getBigUint64(0, true) % 8n, 0n); // Data 8-byte aligned.
  const read = readSafetensors(bytes);
  assert.deepEqual(read.metadata, { note: "x" });
  assert.deepEqual([...read.tensors.keys()], ["a", "scalar", "empty"]);
  for (const [key, tensor] of tensors) {
    assert.deepEqual(read.tensors.get(key)!.shape, tensor.shape);
    assert.deepEqual(read.tensors.get(key)!.data, tensor.data);
  }
  assert.equal(read.tensors.get("a")!.data.buffer, bytes.buffer);
});

Deno.test("writeSafetensors rounds to F16 and BF16 to nearest even", () => {
  const values = Float32Array.from([1, -2.5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24, 1e6, 0.1]);
  const half = readSafetensors(writeSafetensors(new Map([["x", new Tensor(values, [7])]]), {
    dtype: "F16",
  })).tensors.get("x")!;
  assert.deepEqual([...half.data], [1, -2.5, 1, 1 + 2 ** -9, 2 ** -24, Infinity, 0.0999755859375]);
  const brain = readSafetensors(writeSafetensors(new Map([["x", new Tensor(values, [7])]]), {
    dtype: "BF16",
  })).tensors.get("x")!;
  assert.deepEqual([...brain.data], [1, -2.5, 1, 1, 2 ** -24, 999424, 0.10009765625]);
});

Deno.test("numberToF16 and f16ToNumber agree on every half value", () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const value = f16ToNumber(bits);
    if (Number.isNaN(value)) assert.equal(numberToF16(value) & 0x7c00, 0x7c00);
    else assert.equal(numberToF16(value), bits, `0x${bits.toString(16)}`);
  }
  assert.equal(numberToF16(2 ** -25), 0); // Ties to even: zero.
  assert.equal(numberToF16(3 * 2 ** -26), 1);
  assert.equal(numberToBF16(NaN) & 0x7fc0, 0x7fc0);
  assert.deepEqual(decodeElements(Uint8Array.of(0x80, 0x3f), "BF16", 1), Float32Array.of(1));
  const unaligned = Uint8Array.of(9, 0x00, 0x3c, 0x00, 0xc0, 0, 0, 0x80, 0x3f).subarray(1);
  assert.deepEqual(decodeElements(unaligned, "F16", 2), Float32Array.of(1, -2));
  assert.deepEqual(decodeElements(unaligned.subarray(4), "F32", 1), Float32Array.of(1));
});

Deno.test("readSafetensors reports truncated and inconsistent files", () => {
  const good = { w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  assertFormatError(() => readSafetensors(new Uint8Array(5)), /expected an 8-byte header length/);
  assertFormatError(
    () => readSafetensors(file(good, 8).subarray(0, 20)),
    /^Truncated safetensors file: header says \d+ bytes of JSON, file has 12$/,
  );
  assertFormatError(
    () => readSafetensors(file(good, 3)),
    /^Truncated safetensors file: header says 8 bytes of tensor data, file has 3$/,
  );
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  assertFormatError(() => readSafetensors(huge), /exceeds the 100000000-byte limit/);
  assertFormatError(
    () =>
      readSafetensors(file({ w: { dtype: "F32", shape: [1e6, 1e6], data_offsets: [0, 8] } }, 8)),
    /needs 4000000000000 bytes, data_offsets give 8/,
  );
  assertFormatError(
    () =>
      readSafetensors(file({ w: { dtype: "F32", shape: [1e6, 1e6], data_offsets: [0, 4e12] } })),
    /header says 4000000000000 bytes of tensor data, file has 0/,
  );
  assertFormatError(
    () =>
      readSafetensors(file({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, 12)),
    /"b" starts at byte 4, expected 8 \(no holes or overlaps\)/,
  );
  assertFormatError(
    () => readSafetensors(file({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, 8)),
    /"a" starts at byte 4, expected 0/,
  );
  assertFormatError(
    () => readSafetensors(file({ a: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, 1)),
    /unsupported dtype "F8_E4M3"/,
  );
  assertFormatError(
    () => readSafetensors(file({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, 4)),
    /expected shape to be an array of non-negative integers/,
  );
  assertFormatError(
    () => readSafetensors(file({ a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, 4)),
    /expected data_offsets to be \[begin, end\]/,
  );
  assertFormatError(() => readSafetensors(file({ __metadata__: { n: 1 } })), /must map strings/);
  assertFormatError(() => readSafetensors(file([1, 2])), /expected a JSON object/);
  const badJson = file({ a: 1 });
  badJson[10] = 0xff;
  assertFormatError(() => readSafetensors(badJson), /expected UTF-8 JSON/);
});

Deno.test("writeSafetensors refuses a tensor named __metadata__", () => {
  assertFormatError(
    () => writeSafetensors(new Map([["__metadata__", Tensor.zeros([1])]])),
    /cannot be named "__metadata__"/,
  );
});
