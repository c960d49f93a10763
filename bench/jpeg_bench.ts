/**
 * JPEG photo to model input: `preprocess(bytes)` against Pillow +
 * torchvision's `Resize(256)`, `CenterCrop(224)`, `ToTensor()`, `Normalize()`
 * (Debian's Pillow on libjpeg-turbo, torch on one thread), timed by a Python
 * child process in the same run, median of 7 each, on a 451x300 JPEG
 * (assets/chelsea.jpg), a 3000x2000 JPEG and a 4000x3000 progressive JPEG
 * (skimage photos upscaled by Pillow, made by tools/make_jpeg_corpus.py
 * --large). Prints a table of the medians and the ratios when the run ends,
 * by wall time and by CPU time (`process.cpuUsage`, Python's
 * `time.process_time`), which a machine shared with other jobs skews less.
 * The host line (CPU model, cores, load average) heads the table, and each
 * large photo's fast path is checked against the goal (at least 5x
 * faster than Pillow + torchvision: CPU ratio <= 0.20). Without
 * /usr/bin/python3, Pillow or torchvision the rows are skipped with the
 * reason printed.
 *
 * @module
 */

import process from "node:process";
import { decodeJpegPixels } from "../src/image/jpeg.ts";
import { preprocess } from "../src/image/preprocess.ts";
import { hostLine, startRun } from "./_record.ts";

const PYTHON = "/usr/bin/python3";
const ROOT = new URL("../", import.meta.url);
const RUNS = 7;

const PIL_TIMER = `
import io, json, statistics, sys, time
import torch
torch.set_num_threads(1)
from PIL import Image
import torchvision.transforms as T
t = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
               T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
def decode(data):
    image = Image.open(io.BytesIO(data))
    image.load()
def timed(f, data):
    f(data)  # warm-up
    times, cpu = [], []
    for _ in range(int(sys.argv[1])):
        start, start_cpu = time.perf_counter(), time.process_time()
        f(data)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return [statistics.median(times), statistics.median(cpu)]
out = {}
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    out[path] = {
        "preprocess": timed(lambda d: t(Image.open(io.BytesIO(d)).convert("RGB")), data),
        "decode": timed(decode, data),
    }
print(json.dumps(out))
`;

async function run(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stderr: "piped" })
    .output();
  if (code !== 0) throw new Error(new TextDecoder().decode(stderr).trim().split("\n").at(-1));
  return new TextDecoder().decode(stdout);
}

interface Photo {
  label: string;
  path: string;
  bytes: Uint8Array;
}

async function photos(): Promise<
  { photos: Photo[]; pil: Record<string, { preprocess: number[]; decode: number[] }> } | string
> {
  const dir = await Deno.makeTempDir({ prefix: "jpeg_bench_" });
  try {
    await run(PYTHON, [new URL("tools/make_jpeg_corpus.py", ROOT).pathname, dir, "--large"]);
  } catch (error) {
    return `cannot make the photos with ${PYTHON}: ${(error as Error).message}`;
  }
  const list = [
    ["451x300 baseline (chelsea.jpg)", new URL("assets/chelsea.jpg", ROOT).pathname],
    ["3000x2000 baseline", `${dir}/large_3000x2000.jpg`],
    ["4000x3000 progressive", `${dir}/large_4000x3000_progressive.jpg`],
  ];
  const result = await Promise.all(
    list.map(async ([label, path]) => ({ label, path, bytes: await Deno.readFile(path) })),
  );
  try {
    const pil = JSON.parse(
      await run(PYTHON, ["-c", PIL_TIMER, String(RUNS), ...list.map(([, path]) => path)]),
    );
    return { photos: result, pil };
  } catch (error) {
    return `cannot time Pillow + torchvision: ${(error as Error).message}`;
  }
}

const info = await startRun();
const setup = await photos();
if (typeof setup === "string") {
  console.log(`SKIPPED jpeg bench: ${setup}`);
} else {
  const timings = new Map<string, number[]>();
  const cpuTimings = new Map<string, number[]>();
  const cpu = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const rows: { label: string; path: string; name: string }[] = [];
  for (const photo of setup.photos) {
    const cases: [string, () => unknown][] = [
      ["preprocess", () => preprocess(photo.bytes)],
      ["preprocess, fast path (draft: true)", () => preprocess(photo.bytes, { draft: true })],
      ["decode", () => decodeJpegPixels(photo.bytes)],
      ["decode, TypeScript path", () => decodeJpegPixels(photo.bytes, { simd: false })],
    ];
    for (const [name, fn] of cases) {
      const key = `${photo.label}: ${name}`;
      timings.set(key, []);
      cpuTimings.set(key, []);
      rows.push({ label: photo.label, path: photo.path, name });
      Deno.bench({
        name: key,
        group: `jpeg ${photo.label}`,
        n: RUNS,
        warmup: 1,
        async fn(b) {
          b.start();
          const start = performance.now();
          const startCpu = cpu();
          await fn();
          timings.get(key)!.push(performance.now() - start);
          cpuTimings.get(key)!.push(cpu() - startCpu);
          b.end();
        },
      });
    }
  }
  const preprocessedSync = new Map<string, Float32Array>();
  const preprocessedFast = new Map<string, Float32Array>();
  for (const photo of setup.photos) {
    preprocessedSync.set(photo.label, (await preprocess(photo.bytes)).data);
    preprocessedFast.set(photo.label, (await preprocess(photo.bytes, { draft: true })).data);
  }
  globalThis.addEventListener("unload", () => {
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    info.loadAverage.end = Deno.loadavg().map((v) => Math.round(v * 100) / 100);
    const goals: string[] = [];
    const lines = [
      "",
      `JPEG to a [1, 3, 224, 224] tensor, one thread, median of ${RUNS}; Pillow + torchvision timed by ${PYTHON} in this run`,
      hostLine(info),
      "| photo | ours | ms | Pillow ms (preprocess: + torchvision) | ours / theirs | CPU ms | Pillow CPU ms | ours / theirs, CPU |",
      "|---|---|---:|---:|---:|---:|---:|---:|",
    ];
    for (const { label, path, name } of rows) {
      const samples = timings.get(`${label}: ${name}`)!;
      if (samples.length === 0) continue;
      const ms = median(samples);
      const cpuMs = median(cpuTimings.get(`${label}: ${name}`)!);
      const [theirs, theirsCpu] =
        setup.pil[path][name.startsWith("decode") ? "decode" : "preprocess"];
      if (name.includes("fast path") && !label.includes("451x300")) {
        const ratio = cpuMs / theirsCpu;
        goals.push(
          `- ${label}: fast path at ${ratio.toFixed(2)} of Pillow + torchvision's CPU time (${
            (1 / ratio).toFixed(1)
          }x faster): goal <= 0.20 ${ratio <= 0.2 ? "met" : "NOT met"}`,
        );
      }
      lines.push(
        `| ${label} | ${name} | ${ms.toFixed(1)} | ${theirs.toFixed(1)} | ${
          (ms / theirs).toFixed(2)
        } | ${cpuMs.toFixed(1)} | ${theirsCpu.toFixed(1)} | ${(cpuMs / theirsCpu).toFixed(2)} |`,
      );
    }
    lines.push("", "Goal of the fast path (issue 16):", ...goals);
    lines.push(
      "",
      "Fast path against the exact path (the tensors differ: it resizes a smaller decode):",
    );
    for (const photo of setup.photos) {
      const exact = preprocessedSync.get(photo.label);
      const fast = preprocessedFast.get(photo.label);
      if (!exact || !fast) continue;
      let max = 0;
      let sum = 0;
      for (let i = 0; i < exact.length; i++) {
        const d = Math.abs(exact[i] - fast[i]);
        max = Math.max(max, d);
        sum += d;
      }
      lines.push(
        `- ${photo.label}: max |diff| ${max.toFixed(3)}, mean ${
          (sum / exact.length).toFixed(4)
        } (normalised units)`,
      );
    }
    console.log(lines.join("\n"));
  });
}
