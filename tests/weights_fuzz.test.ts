/**
 * Mutates small valid weight files thousands of times (seeded, so failures
 * reproduce) and checks that every outcome is a valid state dict or a
 * `WeightsFormatError`: never another error, a hang or a huge allocation.
 */
import assert from "node:assert/strict";
import { WeightsFormatError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { loadWeights, type StateDict, writePth } from "../src/weights/mod.ts";
import { readZipDirectory, readZipEntry, writeZip } from "../src/weights/zip.ts";

const FIXTURES = new URL("./fixtures/weights/", import.meta.url);
const ITERATIONS = 4000;

/** Mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0xffffffff, 1e9, 2 ** 31];

/** One random mutation: bit flips, byte or 32-bit overwrites, truncation, insertion or deletion. */
function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  const at = () => Math.floor(random() * bytes.length);
  const out = bytes.slice();
  switch (Math.floor(random() * 6)) {
    case 0:
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) out[at()] ^= 1 << (random() * 8);
      return out;
    case 1:
      out[at()] = INTERESTING[Math.floor(random() * 5)];
      return out;
    case 2: {
      const i = Math.min(at(), out.length - 4);
      const value = INTERESTING[Math.floor(random() * INTERESTING.length)];
      new DataView(out.buffer).setUint32(Math.max(0, i), value >>> 0, true);
      return out;
    }
    case 3:
      return out.subarray(0, at());
    case 4: {
      const i = at();
      const inserted = new Uint8Array(1 + Math.floor(random() * 8)).map(() => random() * 256);
      return Uint8Array.from([...out.subarray(0, i), ...inserted, ...out.subarray(i)]);
    }
    default: {
      const i = at();
      return Uint8Array.from([...out.subarray(0, i), ...out.subarray(i + 1 + random() * 8)]);
    }
  }
}

/** Mutates only `data.pkl`, re-zipped with a correct CRC, so the pickle interpreter is reached. */
function mutatePickle(zip: Uint8Array, random: () => number): Uint8Array {
  return writeZip(
    [...readZipDirectory(zip).values()].map((entry) => {
      const data = readZipEntry(zip, entry);
      return {
        name: entry.name,
        data: entry.name.endsWith("data.pkl") ? mutate(data, random) : data,
      };
    }),
  );
}

function assertValid(dict: StateDict): void {
  for (const [key, tensor] of dict) {
    assert.equal(typeof key, "string");
    assert.ok(tensor instanceof Tensor);
    assert.equal(tensor.data.length, tensor.shape.reduce((a, d) => a * d, 1));
  }
}

async function fuzz(name: string, bytes: Uint8Array, mutator: typeof mutate, seed: number) {
  const random = prng(seed);
  let accepted = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = mutator(bytes, random);
    try {
      assertValid(await loadWeights(input));
      accepted++;
    } catch (error) {
      if (!(error instanceof WeightsFormatError)) {
        throw new Error(`${name}, seed ${seed}, iteration ${i}: ${error}`, { cause: error });
      }
    }
  }
  return accepted;
}

const written = writePth(
  new Map([
    ["a", new Tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3])],
    ["b", new Tensor(Float32Array.of(-1), [])],
  ]),
);

for (const [name, mutator] of [["views.pth", mutate], ["protocol4.pth", mutatePickle]] as const) {
  Deno.test(`fuzz: mutated ${name} (${mutator.name}) is a state dict or a WeightsFormatError`, async () => {
    await fuzz(name, await Deno.readFile(new URL(name, FIXTURES)), mutator, 1);
  });
}

Deno.test("fuzz: mutated pickles of dtypes.pth and writePth output", async () => {
  await fuzz("dtypes.pth", await Deno.readFile(new URL("dtypes.pth", FIXTURES)), mutatePickle, 2);
  await fuzz("writePth", written, mutatePickle, 3);
});

Deno.test("fuzz: mutated safetensors are a state dict or a WeightsFormatError", async () => {
  const bytes = await Deno.readFile(new URL("mixed.safetensors", FIXTURES));
  const accepted = await fuzz("mixed.safetensors", bytes, mutate, 4);
  assert.ok(accepted > 0, "some mutations (in tensor data) must still parse");
});
