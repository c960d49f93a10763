/**
 * The legacy `torch.save` format (PyTorch < 1.6; torchvision's
 * `googlenet-1378be20.pth`): files written by PyTorch 1.13 with
 * `_use_new_zipfile_serialization=False` read exactly as the ZIP fixtures of
 * the same objects (tools/make_weight_fixtures.py), storages shared and
 * viewed, both GoogLeNet variants bit for bit (written at test time by
 * tools/legacy_weights.py; skipped with the reason printed when PyTorch is
 * missing), corrupt files refused with what was wrong, and a fuzz pass in
 * which nothing but `WeightsFormatError` escapes.
 */
import assert from "node:assert/strict";
import { GoogLeNet } from "../mod.ts";
import { WeightsFormatError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { isLegacyPth, readLegacyPth } from "../src/weights/legacy.ts";
import { loadWeights, readPth, readSafetensors, type StateDict } from "../src/weights/mod.ts";
import { unpickleAt } from "../src/weights/pickle.ts";
import { TORCH_GLOBALS } from "../src/weights/pth.ts";
import { deterministicStateDict } from "../tools/deterministic.ts";
import { mutate, prng } from "./_support/mutate.ts";

const ROOT = new URL("../", import.meta.url);
const FIXTURES = new URL("tests/fixtures/weights/", ROOT);
const PYTHON = "/usr/bin/python3";
const fixture = (name: string) => Deno.readFile(new URL(name, FIXTURES));
const expected = readSafetensors(await fixture("expected.safetensors"));

function assertFormatError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WeightsFormatError, String(e));
    assert.match(e.message, message);
    return true;
  });
}

function assertSame(read: StateDict, name: string): void {
  assert.deepEqual([...read.keys()], JSON.parse(expected.metadata[name]));
  for (const [key, tensor] of read) {
    const want = expected.tensors.get(`${name}/${key}`)!;
    assert.deepEqual(tensor.shape, want.shape, key);
    assert.deepEqual(tensor.data, want.data, key);
  }
}

/** Where the five pickles and the data of a legacy file start: [magic, protocol, sys, object, keys, data]. */
function sections(bytes: Uint8Array): number[] {
  const inert = Object.fromEntries(
    Object.entries(TORCH_GLOBALS).map((
      [k, v],
    ) => [k, typeof v === "function" ? () => new Map() : v]),
  );
  const starts = [0];
  for (let i = 0; i < 5; i++) {
    starts.push(unpickleAt(bytes, starts[i], { globals: inert, persistentLoad: () => null }).end);
  }
  return starts;
}

function splice(bytes: Uint8Array, from: number, to: number, insert: ArrayLike<number>) {
  return Uint8Array.from([
    ...bytes.subarray(0, from),
    ...Array.from(insert),
    ...bytes.subarray(to),
  ]);
}

/** A protocol-2 pickle of a list of strings: EMPTY_LIST MARK BINUNICODE... APPENDS STOP. */
function keyList(keys: string[]): number[] {
  const out = [0x80, 2, 0x5d, 0x28];
  for (const key of keys) {
    const utf8 = new TextEncoder().encode(key);
    out.push(0x58, utf8.length, 0, 0, 0, ...utf8);
  }
  return [...out, 0x65, 0x2e];
}

for (const name of ["dtypes", "views", "module", "nested", "parameter", "protocol4"]) {
  Deno.test(`readPth reads legacy_${name}.pth (PyTorch 1.13, legacy format) as the ZIP file's values`, async () => {
    const bytes = await fixture(`legacy_${name}.pth`);
    assert.ok(isLegacyPth(bytes));
    assertSame(readPth(bytes), name);
    assertSame(await loadWeights(bytes), name);
  });
}

Deno.test("legacy storages shared between tensors share memory; views of a storage (PyTorch < 0.4) read", async () => {
  const tensors = readLegacyPth(await fixture("legacy_views.pth"));
  const a = tensors.get("shared_a")!.data;
  const b = tensors.get("shared_b")!.data;
  assert.equal(a.buffer, b.buffer);
  assert.equal(b.byteOffset - a.byteOffset, 8 * 4); // Offsets 2 and 10 of one storage.
  // "whole", "part" (view at 10 of 6) and "tail" (view at 20 of 4): checked with torch.load.
  assertSame(readLegacyPth(await fixture("legacy_storage_views.pth")), "legacy_storage_views");
});

Deno.test("legacy files are told apart from ZIP checkpoints and other pickles", async () => {
  assert.ok(!isLegacyPth(await fixture("views.pth")));
  assert.ok(!isLegacyPth(new Uint8Array([0x80, 2, 0x4e, 0x2e]))); // A pickle of None.
  assert.ok(isLegacyPth(await fixture("legacy_protocol4.pth"))); // PROTO 4, FRAME, magic.
  assertFormatError(() => readLegacyPth(new Uint8Array(3)), /^Not a legacy PyTorch checkpoint/);
});

Deno.test("legacy files that are corrupt are refused with what was wrong", async () => {
  const good = await fixture("legacy_views.pth");
  const [, protocol, sys, , keys, data] = sections(good);
  const keyNames = unpickleAt(good, keys, { globals: {} }).value as string[];

  const version = splice(good, protocol, sys, [0x80, 2, 0x4d, 0xea, 0x03, 0x2e]); // 1002
  assertFormatError(() => readPth(version), /protocol 1002: expected 1001$/);

  const bigEndian = [
    0x80,
    2,
    0x7d,
    0x58,
    13,
    0,
    0,
    0,
    ...new TextEncoder().encode("little_endian"),
  ];
  const big = splice(good, sys, sys + (sections(good)[3] - sys), [...bigEndian, 0x89, 0x73, 0x2e]);
  assertFormatError(() => readPth(big), /expected system information .*little_endian false$/);

  assertFormatError(
    () => readPth(good.subarray(0, good.length - 1)),
    /^Truncated legacy checkpoint: storage ".+" needs \d+ bytes at byte \d+, the file has \d+ left$/,
  );
  assertFormatError(
    () => readPth(good.subarray(0, data + 4)),
    /^Truncated legacy checkpoint: expected the element count of storage/,
  );
  const count = good.slice();
  new DataView(count.buffer).setBigInt64(data, 7n, true);
  assertFormatError(
    () => readPth(count),
    /has 7 elements at byte \d+, its persistent id says \d+$/,
  );
  const huge = good.slice();
  new DataView(huge.buffer).setBigInt64(data, -1n, true);
  assertFormatError(() => readPth(huge), /has -1 elements/);

  const twice = splice(good, keys, data, keyList([keyNames[0], ...keyNames]));
  assertFormatError(() => readPth(twice), /storage key ".+" is listed twice$/);
  const unknown = splice(good, keys, data, keyList(["nope", ...keyNames]));
  assertFormatError(() => readPth(unknown), /storage key "nope" is listed but no tensor uses it$/);
  const none = splice(good, keys, data, keyList([]));
  assertFormatError(() => readPth(none), /is used by a tensor but has no data$/);

  const evil = await fixture("legacy_evil.pth");
  assertFormatError(() => readPth(evil), /refused global (__builtin__|builtins)\.print/);
});

Deno.test("fuzz: mutated legacy files are a state dict or a WeightsFormatError", async () => {
  const check = (dict: StateDict) => {
    for (const [key, tensor] of dict) {
      assert.equal(typeof key, "string");
      assert.ok(tensor instanceof Tensor);
      assert.equal(tensor.data.length, tensor.shape.reduce((a, d) => a * d, 1));
    }
  };
  let seed = 10;
  for (const name of ["legacy_views.pth", "legacy_dtypes.pth", "legacy_storage_views.pth"]) {
    const bytes = await fixture(name);
    const [, , , object, keys] = sections(bytes);
    // Whole-file mutations, then mutations inside the object pickle only (to reach the interpreter).
    for (
      const mutator of [
        (random: () => number) => mutate(bytes, random),
        (random: () => number) =>
          splice(bytes, object, keys, mutate(bytes.subarray(object, keys), random)),
      ]
    ) {
      const random = prng(++seed);
      let accepted = 0;
      for (let i = 0; i < 3000; i++) {
        const input = mutator(random);
        try {
          check(readPth(input));
          accepted++;
        } catch (error) {
          if (!(error instanceof WeightsFormatError)) {
            throw new Error(`${name}, seed ${seed}, iteration ${i}: ${error}`, { cause: error });
          }
        }
      }
      console.log(`  ${name} (seed ${seed}): ${accepted} of 3000 mutations still read`);
    }
  }
});

/** Why the PyTorch-written GoogLeNet files cannot be made here, or undefined. */
async function skipReason(): Promise<string | undefined> {
  try {
    const { success, stderr } = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch, torchvision"],
      stdout: "null",
      stderr: "piped",
    }).output();
    return success
      ? undefined
      : `PyTorch is not importable by ${PYTHON}: ${
        new TextDecoder().decode(stderr).trim().split("\n").at(-1)
      }`;
  } catch (error) {
    return `${PYTHON} cannot be run: ${(error as Error).message}`;
  }
}

const reason = await skipReason();
if (reason) console.log(`Skipping the legacy GoogLeNet files written by PyTorch: ${reason}`);

for (
  const [variant, keysFile] of [["seed", "state_dict.json"], [
    "torchvision",
    "torchvision_state_dict.json",
  ]]
) {
  Deno.test({
    name:
      `readPth reads the ${variant} GoogLeNet saved by PyTorch in the legacy format bit for bit`,
    ignore: reason !== undefined,
    async fn() {
      const dir = await Deno.makeTempDir();
      try {
        const path = `${dir}/${variant}.pth`;
        const { success, stderr } = await new Deno.Command(PYTHON, {
          args: ["tools/legacy_weights.py", "save", variant, path],
          cwd: ROOT,
          stderr: "piped",
        }).output();
        assert.ok(success, new TextDecoder().decode(stderr));
        const bytes = await Deno.readFile(path);
        assert.ok(isLegacyPth(bytes));
        const read = readPth(bytes);
        const shapes: [string, number[]][] = JSON.parse(
          await Deno.readTextFile(new URL(`tests/fixtures/${keysFile}`, ROOT)),
        ).aux;
        assert.deepEqual([...read].map(([k, t]) => [k, t.shape]), shapes);
        const want = deterministicStateDict(shapes);
        let counters = 0;
        for (const [key, tensor] of read) {
          if (key.endsWith("num_batches_tracked")) {
            assert.deepEqual(tensor.data, Float32Array.of(0), key); // int64 0 in the file.
            counters++;
          } else {
            assert.deepEqual(tensor.data, want.get(key)!.data, key);
          }
        }
        assert.equal(counters, shapes.filter(([k]) => k.endsWith("num_batches_tracked")).length);
        assert.equal(counters > 0, variant === "torchvision", "torchvision's BatchNorm counters");
        // Float32 storages are views of one buffer (the file, or one aligned copy of its data).
        const buffers = new Set(
          [...read].filter(([k]) => !k.endsWith("num_batches_tracked")).map(([, t]) =>
            t.data.buffer
          ),
        );
        assert.equal(buffers.size, 1);
        const model = await GoogLeNet.create({
          variant: variant as "seed" | "torchvision",
          auxLogits: true,
          threads: 1,
        });
        model.loadStateDict(read); // Strict: every key and shape.
        await model.dispose();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "a legacy file rebuilding one storage as 2000 transposed views is refused by the budget",
  ignore: reason !== undefined,
  async fn() {
    const path = await Deno.makeTempFile({ suffix: ".pth" });
    try {
      // A real torch.save output: 1 MiB of data, and 2000 non-contiguous views of it that this
      // reader must copy (2 GiB): readPth's budget (8 x the file) refuses it early.
      const { success, stderr } = await new Deno.Command(PYTHON, {
        args: [
          "-c",
          "import sys, torch; base = torch.zeros(512, 512); " +
          "torch.save({f't{i}': base.t() for i in range(2000)}, sys.argv[1], " +
          "_use_new_zipfile_serialization=False)",
          path,
        ],
        stderr: "piped",
      }).output();
      assert.ok(success, new TextDecoder().decode(stderr));
      const bytes = await Deno.readFile(path);
      assert.ok(bytes.length < 2 ** 21, `${bytes.length} bytes`);
      assertFormatError(() => readPth(bytes), /makes more tensor data than it holds/);
    } finally {
      await Deno.remove(path);
    }
  },
});
