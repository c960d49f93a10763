/**
 * One bomb case of `tests/bombs_capped.test.ts`, run in a child Deno whose
 * memory and time the parent caps: `deno run ... bomb_case.ts <case>`. Prints
 * one JSON line, `{ ok, error, message, detail }`, and exits 0 whatever the
 * outcome; a regression shows as the parent killing it (memory, time) or as
 * the wrong outcome.
 *
 * @module
 */

import { preprocess } from "../../src/image/preprocess.ts";
import { decodeImage } from "../../src/image/decode.ts";
import { loadWeights } from "../../src/weights/load.ts";
import { readPth } from "../../src/weights/pth.ts";
import { readSafetensors } from "../../src/weights/safetensors.ts";
import {
  ancillaryBombPng,
  arrayHeaderSafetensors,
  deflatedPicklePth,
  emptyDictsPth,
  greyPng,
  reduceBombPth,
  sharedStreamZip,
} from "./hostile_bytes.ts";

/** A loopback server for one case; `handler` answers every request. */
function serve(handler: (request: Request) => Response | Promise<Response>): string {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  return `http://127.0.0.1:${server.addr.port}/file`;
}

/** A body that never ends: 1 MiB of zeros per pull. */
function endless(): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(1 << 20);
  return new ReadableStream({ pull: (controller) => controller.enqueue(chunk) });
}

const never = () => new Promise<Response>(() => {});

const CASES: Record<string, () => Promise<unknown>> = {
  "zip-shared-stream": async () => readPth(await sharedStreamZip(400, 16 << 20)),
  "pickle-deflated": async () => readPth(await deflatedPicklePth(2 ** 30)),
  "pickle-objects": () => Promise.resolve().then(() => readPth(emptyDictsPth(8_000_000))),
  "safetensors-header": () =>
    Promise.resolve().then(() => readSafetensors(arrayHeaderSafetensors(60_000_000))),
  "pickle-reduce": () => Promise.resolve().then(() => readPth(reduceBombPth(200_000, 512))),
  "png-ancillary": async () => {
    const image = decodeImage(await ancillaryBombPng(512 << 20));
    return `${image.width}x${image.height}`;
  },
  "thin-image": async () => {
    const input = await preprocess(await greyPng(1, 1_000_000));
    // Grey 128 everywhere: every value of channel 0 is (128 / 255 - 0.485) / 0.229.
    const expected = Math.fround(Math.fround(128 / 255) - Math.fround(0.485)) / Math.fround(0.229);
    const wrong = input.data.subarray(0, 224 * 224).findIndex((v) => Math.abs(v - expected) > 1e-6);
    if (wrong >= 0) throw new Error(`value ${input.data[wrong]} at ${wrong}, expected ${expected}`);
    return input.shape.join("x");
  },
  "weights-device-file": () => loadWeights("/dev/zero", { maxBytes: 64 << 20 }),
  "image-endless-body": () =>
    preprocess(serve(() => new Response(endless())), { maxBytes: 32 << 20 }),
  "image-silent-server": () => preprocess(serve(never), { timeout: 300 }),
  "weights-endless-body": () =>
    loadWeights(serve(() => new Response(endless())), { maxBytes: 64 << 20 }),
  "weights-silent-server": () => loadWeights(serve(never), { timeout: 300 }),
  "weights-abort": () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stopped by the caller")), 300);
    return loadWeights(serve(never), { signal: controller.signal, timeout: Infinity });
  },
};

const name = Deno.args[0];
const run = CASES[name];
if (!run) {
  console.error(`Unknown case ${name}: expected one of ${Object.keys(CASES).join(", ")}`);
  Deno.exit(2);
}
let result: Record<string, unknown>;
try {
  const value = await run();
  result = { ok: true, detail: typeof value === "string" ? value : undefined };
} catch (error) {
  result = {
    ok: false,
    error: error instanceof Error ? error.constructor.name : typeof error,
    message: error instanceof Error ? error.message : String(error),
  };
}
console.log(JSON.stringify(result));
Deno.exit(0);
