/**
 * Bombs of issue 14 (small inputs that expand without bound, endless or
 * silent sources), each run in a child Deno with a V8 heap cap, a resident
 * memory cap and a deadline, so that a regression fails its test instead of
 * taking the test runner (or CI) down with it.
 *
 * The memory cap is a watchdog: the parent reads the child's resident set
 * (`VmRSS` in `/proc/<pid>/status`) every 10 ms and kills it past
 * `CAP_MB`. An address-space limit (`ulimit -v`, `prlimit --as`) cannot
 * serve: V8 reserves tens of GB of address space up front, and Deno 2.9 does
 * not start under a 16 GB limit. Array buffers live outside the V8 heap, so
 * `--max-old-space-size` alone would not catch them either.
 */

import assert from "node:assert/strict";

const CAP_MB = 400;
const HEAP_MB = 256;
const DEADLINE_MS = 60_000;
const SCRIPT = new URL("./_support/bomb_case.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

interface Expected {
  /** What the case does, for the test's name. */
  name: string;
  /** The error class and message it must end with, or null for success. */
  error: { name: string; message: RegExp } | null;
}

const CASES: Record<string, Expected> = {
  "zip-shared-stream": {
    name: ".pth of 96 KB whose ZIP directory points 400 storages at one 16 MiB deflate stream",
    error: { name: "WeightsFormatError", message: /share bytes .* decompression bomb/ },
  },
  "pickle-deflated": {
    name: ".pth of 1 MB whose deflated data.pkl claims 1 GiB (of EMPTY_DICT opcodes)",
    error: {
      name: "WeightsFormatError",
      message: /data\.pkl" inflates to 1073741827 bytes, more than the \d+ allowed/,
    },
  },
  "pickle-objects": {
    name: ".pth of 8 MB whose pickle makes 8 000 000 empty dicts (1.6 GB of heap)",
    error: { name: "WeightsFormatError", message: /more than 500000 objects/ },
  },
  "safetensors-header": {
    name:
      "safetensors of a 60 MB header of 20 000 000 empty arrays (gigabytes of heap once parsed)",
    error: {
      name: "WeightsFormatError",
      message: /opens 19999999 arrays and objects: expected at most 1000000/,
    },
  },
  "pickle-reduce": {
    name: ".pth of 2 MB whose pickle copies a 1 MiB strided view 200 000 times (memoised REDUCE)",
    error: { name: "WeightsFormatError", message: /makes more tensor data than it holds/ },
  },
  "png-ancillary": {
    name:
      "8x8 PNG with iCCP, zTXt and iTXt chunks each inflating to 512 MiB: decoded, not inflated",
    error: null,
  },
  "thin-image": {
    name: "1 x 1 000 000 PNG through preprocess (the full resize would be 256 x 256 000 000)",
    error: null,
  },
  "weights-device-file": {
    name: 'loadWeights("/dev/zero", { maxBytes: 64 MiB }): a file that never ends',
    error: { name: "WeightsFormatError", message: /exceeds maxBytes \(67108864\)/ },
  },
  "image-endless-body": {
    name: "preprocess(url) of an endless HTTP body, maxBytes 32 MiB",
    error: { name: "ImageError", message: /exceeds maxBytes \(33554432\)/ },
  },
  "image-silent-server": {
    name: "preprocess(url) of a server that never answers, timeout 300 ms",
    error: { name: "ImageError", message: /Timed out reading the image after 300 ms/ },
  },
  "weights-endless-body": {
    name: "loadWeights(url) of an endless HTTP body, maxBytes 64 MiB",
    error: { name: "WeightsFormatError", message: /exceeds maxBytes \(67108864\)/ },
  },
  "weights-silent-server": {
    name: "loadWeights(url) of a server that never answers, timeout 300 ms",
    error: {
      name: "WeightsFormatError",
      message: /Timed out reading the weight file after 300 ms/,
    },
  },
  "weights-abort": {
    name: "loadWeights(url) of a server that never answers, aborted by its signal after 300 ms",
    error: { name: "WeightsFormatError", message: /Aborted reading the weight file: stopped by/ },
  },
};

interface CappedRun {
  code: number | null;
  /** Why the parent killed it, if it did. */
  killed?: string;
  /** Highest resident set seen, in MB (0 when /proc is not readable). */
  peakMb: number;
  stdout: string;
  stderr: string;
}

/** The child's resident set in MB, or undefined when /proc cannot tell. */
function residentMb(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

async function runCapped(name: string): Promise<CappedRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--v8-flags=--max-old-space-size=${HEAP_MB}`,
      "--allow-read",
      "--allow-net=127.0.0.1",
      SCRIPT,
      name,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed: string | undefined;
  let peakMb = 0;
  const kill = (why: string) => {
    killed ??= why;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  };
  const watchdog = setInterval(() => {
    const mb = residentMb(child.pid);
    if (mb === undefined) return;
    peakMb = Math.max(peakMb, mb);
    if (mb > CAP_MB) kill(`resident memory ${mb.toFixed(0)} MB passed the ${CAP_MB} MB cap`);
  }, 10);
  const deadline = setTimeout(() => kill(`still running after ${DEADLINE_MS} ms`), DEADLINE_MS);
  try {
    const out = await child.output();
    return {
      code: out.code,
      killed,
      peakMb,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearInterval(watchdog);
    clearTimeout(deadline);
  }
}

const canWatch = residentMb(Deno.pid) !== undefined;
if (!canWatch) {
  console.log(
    `  bombs: /proc/<pid>/status is not readable here, so the ${CAP_MB} MB resident cap is off; ` +
      `the ${HEAP_MB} MB V8 heap cap and the ${DEADLINE_MS / 1000} s deadline still apply`,
  );
}

for (const [id, expected] of Object.entries(CASES)) {
  Deno.test(`bomb, capped at ${CAP_MB} MB and ${DEADLINE_MS / 1000} s: ${expected.name}`, async () => {
    const run = await runCapped(id);
    const context = `\n--- stderr ---\n${run.stderr.slice(-3000)}\n--- stdout ---\n${
      run.stdout.slice(-1000)
    }`;
    assert.equal(run.killed, undefined, `${id}: killed, ${run.killed}${context}`);
    assert.equal(run.code, 0, `${id}: exited with code ${run.code}${context}`);
    const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
    if (expected.error === null) {
      assert.equal(
        result.ok,
        true,
        `${id}: expected success, got ${result.error}: ${result.message}`,
      );
    } else {
      assert.equal(result.ok, false, `${id}: expected ${expected.error.name}, but it succeeded`);
      assert.equal(result.error, expected.error.name, `${id}: ${result.message}`);
      assert.match(result.message, expected.error.message);
    }
    console.log(`  ${id}: peak resident ${run.peakMb.toFixed(0)} MB`);
  });
}
