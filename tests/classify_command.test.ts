/**
 * `deno task classify` and `deno task demo` as a user runs them: a child
 * process started in another directory (paths resolve from there), weights
 * from a file (format and variant detected) or downloaded on first use from a
 * local HTTP server standing in for download.pytorch.org (the PyTorch top-5 of
 * the sample photo with those weights, the cache, a wrong hash, no network),
 * unreadable images reported one by one, one-line errors without stack
 * traces, and nothing on stderr when a run succeeds.
 */

import assert from "node:assert/strict";
import { classifyBatch, GoogLeNet, writePth } from "../mod.ts";
import { deterministicStateDict } from "../tools/deterministic.ts";
import { serveFiles, sha256 } from "./_support/file_server.ts";

const ROOT = new URL("../", import.meta.url);
const CONFIG = new URL("deno.json", ROOT).pathname;
const PYTHON = "/usr/bin/python3";
const photo = new URL("assets/chelsea.jpg", ROOT).pathname;
const keys: [string, number[]][] = JSON.parse(
  await Deno.readTextFile(new URL("tests/fixtures/torchvision_state_dict.json", ROOT)),
).aux;
const cores = navigator.hardwareConcurrency || 1;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno task -q <task> ...args` started in `cwd` (-q: without Deno's "Task ..." line). */
async function task(
  cwd: string,
  name: "classify" | "demo",
  args: string[],
  env: Record<string, string> = {},
): Promise<Run> {
  // A user's shell has no INIT_CWD; under `deno task test` this process has one, which
  // the child's `deno task` would keep instead of recording `cwd`.
  const inherited = Deno.env.toObject();
  delete inherited.INIT_CWD;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--config", CONFIG, "-q", name, ...args],
    cwd,
    clearEnv: true,
    env: { ...inherited, GOOGLENET_WASM_CACHE: `${cwd}/cache`, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** A temporary directory holding `cat.jpg` and `sub/cat.jpg` (copies of the sample photo). */
async function withWorkDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/sub`);
    await Deno.copyFile(photo, `${dir}/cat.jpg`);
    await Deno.copyFile(photo, `${dir}/sub/cat.jpg`);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertOneLineError(run: Run, message: RegExp): void {
  assert.equal(run.code, 1, run.stdout + run.stderr);
  const lines = run.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line, no stack trace:\n${run.stderr}`);
  assert.match(lines[0], message);
}

Deno.test("classify --weights FILE --json: paths from the caller's directory, what classifyBatch returns", async () => {
  await withWorkDir(async (dir) => {
    const stateDict = deterministicStateDict(keys);
    await Deno.writeFile(`${dir}/sub/tv.pth`, writePth(stateDict));
    const images = ["cat.jpg", "sub/cat.jpg", "cat.jpg"];
    const run = await task(dir, "classify", [
      ...["--weights", "sub/tv.pth", "--json", "--top", "3", "--batch", "2"],
      ...images,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "", "a successful run prints nothing on stderr (not a terminal)");
    const report = JSON.parse(run.stdout);
    assert.equal(report.variant, "torchvision", "BatchNorm keys mean torchvision's definition");
    assert.equal(report.threads, cores);
    assert.equal(report.msPerImage, Math.round(report.msPerImage * 10) / 10, "rounded to 0.1 ms");
    assert.deepEqual(report.results.map((r: { image: string }) => r.image), images);
    const model = await GoogLeNet.create({
      variant: "torchvision",
      auxLogits: false,
      threads: 1,
      stateDict,
    });
    const expected = await classifyBatch(model, [photo, photo, photo], { top: 3 });
    await model.dispose();
    assert.deepEqual(report.results.map((r: { predictions: unknown }) => r.predictions), expected);
  });
});

Deno.test("classify reports an unreadable image alone, prints the others and exits 1", async () => {
  await withWorkDir(async (dir) => {
    const run = await task(dir, "classify", [
      "--top",
      "2",
      "cat.jpg",
      "missing.jpg",
      "sub/cat.jpg",
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /^cat\.jpg\n {2}1\. .*%.*\n {2}2\. .*\nsub\/cat\.jpg\n {2}1\. /);
    assert.match(run.stdout, /\n2 image\(s\), [\d.]+ ms per image .*; 1 could not be read\n$/);
    const errors = run.stderr.split("\n").filter((line) => line.startsWith("Error"));
    assert.equal(errors.length, 1, run.stderr);
    assert.match(errors[0], /^Error: missing\.jpg: .*missing\.jpg.*No such file/);
    assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
    assert.match(run.stderr, /random initial weights and these predictions\nare meaningless/);
    assert.match(run.stderr, /--weights torchvision/);
  });
});

Deno.test("classify: missing weights, bad arguments and too many threads get one line", async () => {
  await withWorkDir(async (dir) => {
    assertOneLineError(
      await task(dir, "classify", ["--weights", "missing.pth", "cat.jpg"]),
      /^Error: .*missing\.pth.*: No such file or directory/,
    );
    assertOneLineError(
      await task(dir, "classify", ["--weights", "cat.jpg", "cat.jpg"]),
      /^Error: Unrecognised weight file: expected a PyTorch checkpoint/,
    );
    assertOneLineError(
      await task(dir, "classify", ["--top", "0", "cat.jpg"]),
      /^Error: --top must be a positive integer, got "0"$/,
    );
    assertOneLineError(
      await task(dir, "classify", ["--variant", "resnet", "cat.jpg"]),
      /^Error: --variant must be "seed" or "torchvision", got "resnet"$/,
    );
    assertOneLineError(
      await task(dir, "classify", ["--colour", "cat.jpg"]),
      /^Error: Unknown option '--colour'/,
    );
    const usage = await task(dir, "classify", []);
    assert.equal(usage.code, 2);
    assert.match(usage.stdout, /^Usage: deno task classify/);

    const many = cores + 14;
    const run = await task(dir, "classify", ["--threads", String(many), "--json", "cat.jpg"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`^Note: --threads ${many} is more than the ${cores} cores here; using ${cores}\n`),
    );
    assert.equal(JSON.parse(run.stdout).threads, cores);
  });
});

Deno.test("classify --weights torchvision: a wrong hash is refused and no network is one line", async () => {
  const file = await Deno.readFile(new URL("tests/fixtures/weights/legacy_views.pth", ROOT));
  const server = serveFiles({ "/googlenet-00000000.pth": file });
  try {
    await withWorkDir(async (dir) => {
      const env = { GOOGLENET_WASM_WEIGHTS_URL: `${server.origin}/googlenet-00000000.pth` };
      assertOneLineError(
        await task(dir, "classify", ["--weights", "torchvision", "cat.jpg"], env),
        /^Error: Downloaded .*googlenet-00000000\.pth has SHA-256 [0-9a-f]{64}, expected one starting with 00000000 .*the file was not saved\. Pass --weights FILE to use a local copy of googlenet-1378be20\.pth$/,
      );
      await assert.rejects(Deno.stat(`${dir}/cache`), Deno.errors.NotFound, "nothing cached");
      // ".invalid" never resolves (RFC 6761): what a machine without network sees.
      const offline = {
        GOOGLENET_WASM_WEIGHTS_URL: "http://googlenet-wasm.invalid/googlenet-1378be20.pth",
      };
      assertOneLineError(
        await task(dir, "demo", [], offline),
        /^Error: Could not download http:\/\/googlenet-wasm\.invalid\/googlenet-1378be20\.pth: .*dns error.*\. Pass --weights FILE to use a local copy of googlenet-1378be20\.pth$/,
      );
    });
  } finally {
    await server.close();
  }
});

/** Why torchvision's layout cannot be written in the legacy format by PyTorch here, or undefined. */
async function skipReason(): Promise<string | undefined> {
  try {
    const { success, stderr } = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch, torchvision, PIL"],
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
if (reason) console.log(`Skipping the download of PyTorch-written weights: ${reason}`);

async function python(...args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(PYTHON, { args, cwd: ROOT }).output();
  const decoder = new TextDecoder();
  assert.ok(success, decoder.decode(stderr));
  return decoder.decode(stdout);
}

Deno.test({
  name: "demo and classify --weights torchvision download once, cache, and print PyTorch's top-5",
  ignore: reason !== undefined,
  async fn() {
    await withWorkDir(async (dir) => {
      // torchvision's layout and format (legacy .pth), deterministic weights, as the real file is served.
      await python("tools/legacy_weights.py", "save", "torchvision", `${dir}/weights.pth`);
      const bytes = await Deno.readFile(`${dir}/weights.pth`);
      const name = `/googlenet-${(await sha256(bytes)).slice(0, 8)}.pth`;
      const torch: [number, number][] = JSON.parse(
        await python("tools/legacy_weights.py", "top5", photo),
      );
      const server = serveFiles({ [name]: bytes });
      try {
        const env = { GOOGLENET_WASM_WEIGHTS_URL: server.origin + name };
        const first = await task(
          dir,
          "classify",
          ["--weights", "torchvision", "--json", "cat.jpg"],
          env,
        );
        assert.equal(first.code, 0, first.stderr);
        assert.equal(first.stderr, "", "no progress bar when stderr is not a terminal");
        assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/cache`), (e) => e.name), [
          name.slice(1),
        ]);
        const report = JSON.parse(first.stdout);
        assert.equal(report.variant, "torchvision");
        const ours: { index: number; probability: number }[] = report.results[0].predictions;
        console.log(`  PyTorch: ${JSON.stringify(torch)}`);
        console.log(`  ours:    ${JSON.stringify(ours.map((p) => [p.index, p.probability]))}`);
        assert.deepEqual(ours.map((p) => p.index), torch.map(([index]) => index), "same top-5");
        for (const [i, [, p]] of torch.entries()) {
          assert.ok(Math.abs(ours[i].probability - p) <= 1e-4 * p, `probability ${i}`);
        }

        const demo = await task(dir, "demo", [], env);
        assert.equal(demo.code, 0, demo.stderr);
        assert.equal(demo.stderr, "");
        assert.equal(server.hits.get(name), 1, "the demo read the cached file");
        const table = demo.stdout.split("\n");
        assert.equal(table[0], "assets/chelsea.jpg");
        for (const [i, [index]] of torch.entries()) {
          assert.match(table[i + 1], new RegExp(`^ {2}${i + 1}\\. .* %  .+ \\(${index}\\)$`));
        }

        const other = await task(
          dir,
          "classify",
          ["--weights", "torchvision", "--cache-dir", "sub/cache", "--top", "1", "cat.jpg"],
          env,
        );
        assert.equal(other.code, 0, other.stderr);
        assert.ok(
          (await Deno.stat(`${dir}/sub/cache${name}`)).isFile,
          "--cache-dir, from INIT_CWD",
        );
        assert.equal(server.hits.get(name), 2);
      } finally {
        await server.close();
      }
    });
  },
});
