/**
 * classifyBatch's pipeline (issue 16 item 4): images decoded in workers while
 * the kernels run the previous batch give the calling thread's results bit
 * for bit, at most `batchSize` images ahead; decode errors keep their class,
 * a worker that throws, dies or hangs rejects with BackendError (never a
 * hang), no Worker means the calling thread, and idle workers let the process
 * exit. And the fast path (`draft: true`, item 3): Pillow's `draft()` +
 * torchvision's transform within float rounding, and its effect on the seed
 * model's top-5 against the exact path over 64 photos of mixed sizes.
 *
 * There are no pretrained weights here: the model is the seed GoogLeNet with
 * the deterministic weights of tools/deterministic.ts (He-uniform convs,
 * BatchNorm around 1), so agreement figures are about this model's
 * sensitivity to the input, not ImageNet accuracy.
 */

import assert from "node:assert/strict";
import {
  BackendError,
  classifyBatch,
  GoogLeNet,
  ImageError,
  preprocess,
  type Tensor,
} from "../mod.ts";
import { DecodePool, decodeSettings, injectDecodeFault } from "../src/image/decode_pool.ts";
import { checkLoadOptions } from "../src/image/load.ts";
import { evalTransform } from "../src/image/preprocess.ts";
import { deterministicStateDict } from "../tools/deterministic.ts";
import { makePhotoSet } from "../tools/photo_set.ts";

const ROOT = new URL("../", import.meta.url);
const PYTHON = "/usr/bin/python3";

async function seedModel(threads: number): Promise<GoogLeNet> {
  const model = await GoogLeNet.create({ threads, auxLogits: false });
  const shapes = [...model.stateDict()].map(([key, t]) => [key, t.shape] as const);
  model.loadStateDict(deterministicStateDict(shapes));
  return model;
}

/** 17 images of every kind of source: paths, URLs, bytes, an ArrayBuffer, pixels, PNG, odd sizes. */
async function mixedSources() {
  const jpeg = (name: string) => new URL(`tests/fixtures/jpeg/${name}`, ROOT);
  const image = (name: string) => new URL(`tests/fixtures/images/${name}`, ROOT);
  const chelsea = await Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
  const pixels = {
    data: Uint8Array.from({ length: 40 * 30 * 3 }, (_, i) => (i * 37) % 256),
    width: 40,
    height: 30,
  };
  return [
    chelsea,
    image("coffee_rgb.png"),
    jpeg("cmyk_progressive.jpg").pathname,
    jpeg("odd_17x33_420.jpg"),
    jpeg("restart_5_444.jpg"),
    pixels,
    await Deno.readFile(jpeg("sampling_411.jpg")),
    (await Deno.readFile(jpeg("sampling_440.jpg"))).buffer,
    jpeg("size_1x1_420.jpg"),
    jpeg("size_3x4095_422.jpg"),
    jpeg("size_4095x3_420.jpg"),
    jpeg("size_7x9_420.jpg"),
    image("chelsea_exif6.jpg"),
    image("rocket_progressive.jpg"),
    image("camera_grey_q90.jpg"),
    image("astronaut_baseline.jpg"),
    image("chelsea_palette.png"),
  ];
}

Deno.test("classifyBatch with decode workers gives the calling thread's top-10 and probabilities bit for bit", async () => {
  const sources = await mixedSources();
  for (const threads of [1, 2]) {
    const model = await seedModel(threads);
    // The path before the pipeline: every image decoded here, one forward pass.
    const reference = await classifyBatch(model, sources, {
      top: 10,
      decodeWorkers: 0,
      batchSize: sources.length,
    });
    for (const [batchSize, decodeWorkers] of [[3, 1], [4, 2], [16, 1]]) {
      const rows = await classifyBatch(model, sources, { top: 10, batchSize, decodeWorkers });
      assert.deepEqual(
        rows,
        reference,
        `threads ${threads}, batch ${batchSize}, ${decodeWorkers} workers`,
      );
    }
    const draftHere = await classifyBatch(model, sources, { draft: true, decodeWorkers: 0 });
    const draftThere = await classifyBatch(model, sources, {
      draft: true,
      batchSize: 5,
      decodeWorkers: 1,
    });
    assert.deepEqual(draftThere, draftHere, `draft, threads ${threads}`);
    await model.dispose();
  }
});

Deno.test("classifyBatch hands the workers at most batchSize images beyond the batch that runs", async () => {
  const model = await seedModel(1);
  const sources = Array.from({ length: 11 }, () => new URL("assets/chelsea.jpg", ROOT));
  const original = DecodePool.prototype.decode;
  let submitted = 0;
  const seen: number[] = [];
  const forward = model.forward.bind(model);
  DecodePool.prototype.decode = function (...args) {
    submitted++;
    return original.apply(this, args);
  };
  model.forward = (input, options) => {
    seen.push(submitted);
    return forward(input, options);
  };
  try {
    await classifyBatch(model, sources, { batchSize: 3, decodeWorkers: 1 });
  } finally {
    DecodePool.prototype.decode = original;
  }
  // Batches [0,3) [3,6) [6,9) [9,11): before batch k runs, images up to the end of batch k + 1
  // are queued (the calling thread takes back from the queue those of batch k no worker started).
  assert.deepEqual(seen, [6, 9, 11, 11]);
  await model.dispose();
});

Deno.test("DecodePool: the calling thread can take back an image no worker has claimed", async () => {
  const pool = new DecodePool(1);
  try {
    const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
    const bytes = await Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
    const expected = (await preprocess(bytes)).data;
    const jobs = [0, 1, 2].map(() => pool.decode(bytes.slice(), settings));
    // The worker has not even received them yet.
    const taken = pool.withdraw(jobs[1]);
    assert.ok(taken instanceof Uint8Array, "an unclaimed image comes back");
    assert.deepEqual(taken, bytes, "untouched (copied to the worker, not transferred)");
    assert.equal(pool.withdraw(jobs[1]), undefined, "only once");
    assert.deepEqual(await jobs[0], expected);
    assert.deepEqual(await jobs[2], expected, "the worker skipped the one taken back");
    assert.equal(pool.withdraw(jobs[0]), undefined, "a decoded image is not taken back");
  } finally {
    pool.close();
  }
});

Deno.test("DecodePool: a worker writes the tensor into shared memory where it is asked to", async () => {
  const pool = new DecodePool(1);
  try {
    const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
    const bytes = await Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
    const expected = (await preprocess(bytes)).data;
    const batch = new Float32Array(new SharedArrayBuffer(2 * expected.length * 4)).fill(7);
    const into = batch.subarray(expected.length);
    const data = await pool.decode(bytes.slice(), settings, into);
    assert.equal(data, into, "the view asked for comes back");
    assert.deepEqual(batch.subarray(expected.length), expected, "written in place");
    assert.ok(batch.subarray(0, expected.length).every((v) => v === 7), "nothing else written");
    // Without shared memory the tensor comes back in a new array.
    const plain = await pool.decode(bytes.slice(), settings, new Float32Array(expected.length));
    assert.deepEqual(plain, expected);
  } finally {
    pool.close();
  }
});

Deno.test("DecodePool on Web Workers (browsers, a library imported by URL): the same bits, in place, faults caught", async () => {
  const pool = new DecodePool(1, { webWorker: true });
  try {
    assert.equal(pool.unrefable, false, "a Web Worker cannot let the process exit");
    const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
    const bytes = await Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
    const expected = (await preprocess(bytes)).data;
    const into = new Float32Array(new SharedArrayBuffer(expected.length * 4));
    assert.equal(await pool.decode(bytes.slice(), settings, into), into);
    assert.deepEqual(into, expected);
    assert.deepEqual(await pool.decode(bytes.slice(), settings), expected);
    injectDecodeFault("exit");
    const error = await pool.decode(bytes.slice(), settings).catch((e) => e);
    assert.ok(error instanceof BackendError && /died/.test(error.message), String(error));
    assert.equal(pool.failed, true);
  } finally {
    injectDecodeFault(undefined);
    pool.close();
  }
});

Deno.test("a lowPriority pool's workers run at nice 19 where the runtime allows it (Linux, --allow-sys)", async () => {
  let tasks: string[];
  try {
    tasks = [...Deno.readDirSync("/proc/self/task")].map((entry) => entry.name);
  } catch {
    console.log("SKIPPED: no /proc/self/task (not Linux) to read the threads' nice values");
    return;
  }
  const nice = () =>
    tasks.map((id) => {
      try {
        return Number(
          Deno.readTextFileSync(`/proc/self/task/${id}/stat`).split(") ")[1].split(" ")[16],
        );
      } catch {
        return 0; // a thread that ended
      }
    });
  const pool = new DecodePool(2, { lowPriority: true });
  try {
    const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
    const bytes = await Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
    await Promise.all([pool.decode(bytes.slice(), settings), pool.decode(bytes.slice(), settings)]);
    tasks = [...Deno.readDirSync("/proc/self/task")].map((entry) => entry.name);
    const values = nice();
    // At least this pool's two (a shared pool of an earlier test may still be ending).
    assert.ok(values.filter((n) => n === 19).length >= 2, `nice values ${values}`);
    assert.ok(values.includes(0), "the calling thread keeps its priority");
  } finally {
    pool.close();
  }
});

Deno.test("classifyBatch with decode workers rejects a bad image with the calling thread's ImageError", async () => {
  const model = await seedModel(1);
  const good = new URL("assets/chelsea.jpg", ROOT);
  const bad = new Uint8Array([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0, 4, 0, 4, 3]); // truncated SOF
  const list = [good, good, good, good, bad, good, good];
  const here = await classifyBatch(model, list, { decodeWorkers: 0, batchSize: 2 }).catch((e) => e);
  const there = await classifyBatch(model, list, { batchSize: 2, decodeWorkers: 1 })
    .catch((e) => e);
  assert.ok(here instanceof ImageError, String(here));
  assert.ok(there instanceof ImageError, String(there));
  assert.equal(there.message, here.message);
  const after = await classifyBatch(model, [good, good, good], { batchSize: 1, decodeWorkers: 1 });
  assert.deepEqual(after, await classifyBatch(model, [good, good, good], { decodeWorkers: 0 }));
  await model.dispose();
});

Deno.test("concurrent classifyBatch calls share the decode workers; one that fails leaves the other's results alone", async () => {
  const model = await seedModel(1);
  const good = new URL("assets/chelsea.jpg", ROOT);
  const list = [good, new URL("tests/fixtures/images/coffee_rgb.png", ROOT), good, good, good];
  const reference = await classifyBatch(model, list, { decodeWorkers: 0 });
  const bad = [good, good, new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), good, good];
  const [a, b, c] = await Promise.allSettled([
    classifyBatch(model, list, { batchSize: 2, decodeWorkers: 1 }),
    classifyBatch(model, bad, { batchSize: 2, decodeWorkers: 1 }),
    classifyBatch(model, list, { batchSize: 1, decodeWorkers: 1 }),
  ]);
  assert.deepEqual(a, { status: "fulfilled", value: reference });
  assert.equal(b.status, "rejected");
  assert.ok((b as PromiseRejectedResult).reason instanceof ImageError);
  assert.deepEqual(c, { status: "fulfilled", value: reference });
  await model.dispose();
});

Deno.test("a decode worker that throws or dies rejects the call with BackendError, and the next call works", async () => {
  const model = await seedModel(1);
  const list = Array.from({ length: 6 }, () => new URL("assets/chelsea.jpg", ROOT));
  const reference = await classifyBatch(model, list, { decodeWorkers: 0 });
  for (const fault of ["throw", "exit"] as const) {
    injectDecodeFault(fault);
    const error = await classifyBatch(model, list, { batchSize: 2, decodeWorkers: 1 })
      .catch((e) => e);
    injectDecodeFault(undefined);
    assert.ok(error instanceof BackendError, `${fault}: ${error}`);
    assert.match(error.message, fault === "throw" ? /Injected decode worker fault/ : /died/);
    assert.deepEqual(
      await classifyBatch(model, list, { batchSize: 2, decodeWorkers: 1 }),
      reference,
      fault,
    );
  }
  await model.dispose();
});

Deno.test("a decode worker that answers nothing fails its images with BackendError instead of hanging", async () => {
  const pool = new DecodePool(1, { silenceMs: 400 });
  const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
  const bytes = await Deno.readFile(new URL("assets/chelsea.jpg", ROOT));
  // A worker stuck in Atomics.wait: it neither answers nor fires an error event.
  injectDecodeFault("hang");
  const stuck = pool.decode(bytes.slice(), settings);
  const queued = pool.decode(bytes, settings);
  const [a, b] = await Promise.allSettled([stuck, queued]);
  assert.equal(a.status, "rejected");
  assert.equal(b.status, "rejected");
  const reason = (a as PromiseRejectedResult).reason;
  assert.ok(reason instanceof BackendError, String(reason));
  assert.match(reason.message, /answered nothing in 400 ms/);
  assert.equal(pool.failed, true);
});

Deno.test("classifyBatch decodes on the calling thread where Worker does not exist", async () => {
  // The library keeps the Worker it saw when loaded, so the runtime without one is a child that
  // deletes it before loading the library (as an edge runtime that never had it).
  const script = `
    delete globalThis.Worker;
    const { classifyBatch, GoogLeNet } = await import("${new URL("mod.ts", ROOT)}");
    const { DecodePool } = await import("${new URL("src/image/decode_pool.ts", ROOT)}");
    let sent = 0;
    const original = DecodePool.prototype.decode;
    DecodePool.prototype.decode = function (...args) {
      sent++;
      return original.apply(this, args);
    };
    const model = await GoogLeNet.create({ threads: 1, auxLogits: false });
    const list = Array(5).fill("${new URL("assets/chelsea.jpg", ROOT).pathname}");
    const piped = await classifyBatch(model, list, { batchSize: 2, decodeWorkers: 1 });
    const here = await classifyBatch(model, list, { decodeWorkers: 0 });
    console.log(sent, JSON.stringify(piped) === JSON.stringify(here));
  `;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const stderr = new TextDecoder().decode(child.stderr);
  assert.equal(child.code, 0, stderr);
  assert.equal(new TextDecoder().decode(child.stdout).trim(), "0 true", "no image sent to a pool");
  // And where it does, the same call does use it (in Deno, node:worker_threads Workers).
  const model = await seedModel(1);
  const list = Array.from({ length: 5 }, () => new URL("assets/chelsea.jpg", ROOT));
  const reference = await classifyBatch(model, list, { decodeWorkers: 0 });
  const original = DecodePool.prototype.decode;
  let sent = 0;
  DecodePool.prototype.decode = function (...args) {
    sent++;
    return original.apply(this, args);
  };
  try {
    assert.deepEqual(
      await classifyBatch(model, list, { batchSize: 2, decodeWorkers: 2 }),
      reference,
    );
  } finally {
    DecodePool.prototype.decode = original;
  }
  assert.equal(sent, 5);
  await model.dispose();
});

Deno.test("a program that classifies with decode workers and never disposes still exits", async () => {
  const script = `
    import { classifyBatch, GoogLeNet } from "${new URL("mod.ts", ROOT)}";
    const model = await GoogLeNet.create({ threads: 1, auxLogits: false });
    const rows = await classifyBatch(model, Array(5).fill("${
    new URL("assets/chelsea.jpg", ROOT).pathname
  }"), { batchSize: 2, decodeWorkers: 2 });
    console.log(rows.length);
  `;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000), // a process kept alive by its workers is killed here
  }).output();
  const stderr = new TextDecoder().decode(child.stderr);
  assert.equal(child.signal, null, `killed: the workers kept the process alive\n${stderr}`);
  assert.equal(child.code, 0, stderr);
  assert.equal(new TextDecoder().decode(child.stdout).trim(), "5");
});

Deno.test("decode workers hold the process while they owe images and never when idle", async () => {
  // Nothing else keeps this child alive: with workers that held it while idle it would never
  // exit (the pool is never closed), and with workers that did not hold it while busy, the
  // top-level await would end the process with an error before the image came back.
  const script = `
    import { DecodePool, decodeSettings } from "${new URL("src/image/decode_pool.ts", ROOT)}";
    import { evalTransform } from "${new URL("src/image/preprocess.ts", ROOT)}";
    import { checkLoadOptions } from "${new URL("src/image/load.ts", ROOT)}";
    const pool = new DecodePool(2);
    const settings = decodeSettings(evalTransform({}), checkLoadOptions({}));
    const bytes = Deno.readFileSync("${new URL("assets/chelsea.jpg", ROOT).pathname}");
    const first = await pool.decode(bytes.slice(), settings);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the started pool idle a while
    const data = await Promise.all([pool.decode(bytes.slice(), settings), pool.decode(bytes, settings)]);
    console.log(pool.unrefable, first.length, data[0].length, data[1].length);
  `;
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000), // a process kept alive by idle workers is killed here
  }).output();
  const stderr = new TextDecoder().decode(child.stderr);
  assert.equal(child.signal, null, `killed: the idle workers kept the process alive\n${stderr}`);
  assert.equal(child.code, 0, stderr);
  assert.equal(new TextDecoder().decode(child.stdout).trim(), "true 150528 150528 150528");
});

Deno.test("draft: true equals Pillow's draft() + torchvision's transform, and changes only large JPEGs", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "classify_pipeline_" });
  try {
    const photos = await makePhotoSet(dir);
    if (typeof photos === "string") {
      console.log(`SKIPPED: ${photos}`);
      return;
    }
    const model = await seedModel(1);
    const exact = await classifyBatch(model, photos, { top: 5 });
    const fast = await classifyBatch(model, photos, { top: 5, draft: true });
    let top1 = 0, top5 = 0, drafted = 0, maxDiff = 0, sumDiff = 0, count = 0;
    for (let i = 0; i < photos.length; i++) {
      const [w, h] = photos[i].match(/(\d+)x(\d+)\.jpg$/)!.slice(1).map(Number);
      const a = (await preprocess(photos[i])).data;
      const b = (await preprocess(photos[i], { draft: true })).data;
      let diff = 0;
      for (let j = 0; j < a.length; j++) {
        diff = Math.max(diff, Math.abs(a[j] - b[j]));
        sumDiff += Math.abs(a[j] - b[j]);
      }
      count += a.length;
      maxDiff = Math.max(maxDiff, diff);
      if (Math.min(w, h) < 512) {
        assert.equal(diff, 0, `${photos[i]} is below 2 x 256: the draft path must not change it`);
        assert.deepEqual(fast[i], exact[i]);
        continue;
      }
      drafted++;
      assert.ok(diff > 0, `${photos[i]} is decoded at a reduced scale, so its tensor differs`);
      if (fast[i][0].index === exact[i][0].index) top1++;
      const set = new Set(exact[i].map((r) => r.index));
      top5 += fast[i].filter((r) => set.has(r.index)).length;
    }
    console.log(
      `draft vs exact on ${drafted} of ${photos.length} photos decoded at reduced scale ` +
        `(seed model, deterministic weights): top-1 agrees on ${top1}/${drafted}, top-5 overlap ` +
        `${(top5 / (5 * drafted) * 100).toFixed(1)} %; tensor max |diff| ${maxDiff.toFixed(3)}, ` +
        `mean |diff| ${(sumDiff / count).toExponential(2)} (normalised units, all 64 photos)`,
    );
    assert.ok(drafted >= 32, `expected most photos to take the fast path, got ${drafted}`);
    // A sanity bound, not a goal: the drafted image is a blurrier start, not another picture.
    assert.ok(top5 / (5 * drafted) >= 0.5, `top-5 overlap ${top5 / (5 * drafted)}`);
    await model.dispose();

    await t.step("tensors equal Pillow draft('RGB', (256, 256)) + torchvision", async () => {
      const chosen = photos.filter((_, i) => i % 8 >= 5).slice(0, 8); // the 1280-2048 px ones
      const script = `
import json, sys
import torch, torchvision.transforms as T
from PIL import Image, ImageOps
t = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
               T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
for path in sys.argv[1:]:
    image = Image.open(path)
    image.draft("RGB", (256, 256))
    image = ImageOps.exif_transpose(image).convert("RGB")
    sys.stdout.buffer.write(t(image).numpy().astype("<f4").tobytes())
`;
      let out;
      try {
        out = await new Deno.Command(PYTHON, { args: ["-c", script, ...chosen], stderr: "piped" })
          .output();
      } catch (error) {
        console.log(`SKIPPED: cannot run ${PYTHON}: ${(error as Error).message}`);
        return;
      }
      if (out.code !== 0) {
        const reason = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
        console.log(`SKIPPED: Pillow + torchvision unavailable: ${reason}`);
        return;
      }
      const reference = new Float32Array(out.stdout.slice().buffer);
      const size = 3 * 224 * 224;
      assert.equal(reference.length, chosen.length * size);
      let worst = 0;
      for (let k = 0; k < chosen.length; k++) {
        const ours = (await preprocess(chosen[k], { draft: true }) as Tensor).data;
        for (let j = 0; j < size; j++) {
          worst = Math.max(worst, Math.abs(ours[j] - reference[k * size + j]));
        }
      }
      console.log(
        `draft path vs Pillow draft() + torchvision on ${chosen.length} photos: max |diff| ${worst}`,
      );
      assert.ok(worst <= 1e-6, `max |diff| ${worst}`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
