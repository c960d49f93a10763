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
import { mutate, prng } from "./_support/mutate.ts";

const FIXTURES = new URL("./fixtures/weights/", import.meta.url);
const ITERATIONS = 4000;

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
