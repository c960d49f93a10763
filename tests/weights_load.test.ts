import assert from "node:assert/strict";
import { WeightsFormatError } from "../src/errors.ts";
import { Tensor } from "../src/tensor.ts";
import { loadWeights, type StateDict, writePth, writeSafetensors } from "../src/weights/mod.ts";

const FIXTURES = new URL("./fixtures/weights/", import.meta.url);
const tensors: StateDict = new Map([
  ["fc.weight", new Tensor(Float32Array.from({ length: 6 }, (_, i) => i - 2.5), [2, 3])],
  ["fc.bias", new Tensor(Float32Array.of(0.125, -8), [2])],
]);
const pth = writePth(tensors);
const safetensors = writeSafetensors(tensors);

function assertSame(actual: StateDict): void {
  assert.deepEqual([...actual.keys()], [...tensors.keys()]);
  for (const [key, tensor] of tensors) {
    assert.deepEqual(actual.get(key)!.shape, tensor.shape);
    assert.deepEqual(actual.get(key)!.data, tensor.data);
  }
}

function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at += size));
    },
  });
}

Deno.test("loadWeights detects the format of bytes and ArrayBuffers", async () => {
  assertSame(await loadWeights(pth));
  assertSame(await loadWeights(safetensors));
  assertSame(await loadWeights(safetensors.buffer));
});

Deno.test("loadWeights reads paths, file: URLs and file: URL strings", async () => {
  const path = await Deno.makeTempFile({ suffix: ".pth" });
  try {
    await Deno.writeFile(path, pth);
    const url = new URL(`file://${path}`);
    assertSame(await loadWeights(path));
    assertSame(await loadWeights(url));
    assertSame(await loadWeights(url.href));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loadWeights reads Responses and streams into one buffer", async () => {
  const response = new Response(chunked(safetensors, 7), {
    headers: { "content-length": String(safetensors.length) },
  });
  assertSame(await loadWeights(response));
  assertSame(await loadWeights(new Response(chunked(pth, 1000))));
  assertSame(await loadWeights(chunked(pth, 13)));
  await assert.rejects(
    loadWeights(chunked(pth, 100), { maxBytes: 500 }),
    (e: unknown) => e instanceof WeightsFormatError && /exceeds maxBytes \(500\)$/.test(e.message),
  );
  await assert.rejects(
    loadWeights(new Response("missing", { status: 404, statusText: "Not Found" })),
    (e: unknown) =>
      e instanceof WeightsFormatError && /HTTP 404 Not Found, expected 200 OK$/.test(e.message),
  );
});

Deno.test("loadWeights fetches http URLs", async () => {
  const controller = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: controller.signal, onListen() {} },
    () => new Response(pth),
  );
  try {
    assertSame(await loadWeights(`http://127.0.0.1:${server.addr.port}/w.pth`));
  } finally {
    controller.abort();
    await server.finished;
  }
});

Deno.test("loadWeights names the accepted formats for unknown files", async () => {
  await assert.rejects(
    loadWeights(new TextEncoder().encode("GIF89a...")),
    (e: unknown) =>
      e instanceof WeightsFormatError &&
      e.message ===
        "Unrecognised weight file: expected a PyTorch checkpoint (torch.save ZIP, PyTorch >= 1.6) " +
          "or safetensors, got 9 bytes starting 47 49 46 38 39 61 2e 2e",
  );
  // The legacy (pre-1.6) format is read (tests/weights_legacy.test.ts), not refused.
  assert.deepEqual(
    (await loadWeights(new URL("legacy.pth", FIXTURES))).get("w")?.data,
    Float32Array.of(-1.5, -1.13),
  );
});
