/**
 * Paths a hostile or careless user hands to the readers that do not go
 * through a caller's stream: a checkpoint's optimizer sidecar (`--resume`)
 * and an IDX file. A FIFO without a writer must be refused (opening it would
 * wait in a call nothing can cancel, and keep the process alive), and an
 * endless device (`/dev/zero`) must stop at the byte budget, not read until
 * memory runs out; each refusal is the reader's own error class. The calls run
 * in a child process that ends without `Deno.exit`, so that a pending open
 * shows as a child that does not exit by itself. The same for the commands
 * that read `classes.json` beside a checkpoint (`classify`, `evaluate`).
 */

import assert from "node:assert/strict";
import { GoogLeNet, writeSafetensors } from "../mod.ts";
import { runDeno } from "./_support/edge_child.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** mkfifo at `path`: true, or why it cannot be made. */
async function mkfifo(path: string): Promise<true | string> {
  return await new Deno.Command("mkfifo", { args: [path], stderr: "piped" }).output().then(
    (o) => o.success || `mkfifo failed: ${new TextDecoder().decode(o.stderr).trim()}`,
    (e) => `mkfifo cannot run: ${e.message}`,
  );
}

Deno.test("readSidecar and readIdx: a FIFO is refused at once and /dev/zero stops at maxBytes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile_paths_" });
  try {
    for (const name of ["fifo.pth.optim.safetensors", "fifo.idx"]) {
      const made = await mkfifo(`${dir}/${name}`);
      if (made !== true) {
        console.log(`SKIPPED the FIFO cases: ${made}`);
        return;
      }
    }
    await Deno.symlink("/dev/zero", `${dir}/zero.pth.optim.safetensors`);
    await Deno.symlink("/dev/zero", `${dir}/zero.idx`);
    const checkpoint = new URL("../src/train/checkpoint.ts", import.meta.url).href;
    const idx = new URL("../src/data/idx.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/child.ts`,
      `import { readSidecar } from ${JSON.stringify(checkpoint)};
import { readIdx } from ${JSON.stringify(idx)};
const dir = ${JSON.stringify(dir)};
const calls = [
  ["sidecar FIFO", () => readSidecar(dir + "/fifo.pth")],
  ["IDX FIFO", () => readIdx(dir + "/fifo.idx")],
  ["sidecar /dev/zero", () => readSidecar(dir + "/zero.pth", { maxBytes: 1 << 20 })],
  ["IDX /dev/zero", () => readIdx(dir + "/zero.idx", { maxBytes: 1 << 20 })],
];
for (const [what, call] of calls) {
  await call().then(
    () => console.log(JSON.stringify({ what, read: true })),
    (e) => console.log(JSON.stringify({ what, name: e.name, message: e.message })),
  );
}
`,
    );
    // The deadline guards against the hang this checks for; it is not a time limit on the reads.
    const out = await runDeno(
      ["run", "--no-config", `--allow-read=${dir},${ROOT},/dev/zero`, `${dir}/child.ts`],
      { cwd: ROOT, timeoutMs: 60_000 },
    );
    const stdout = out.stdout;
    assert.ok(
      !out.timedOut,
      `the child did not exit by itself (killed after 60 s); it printed: ${stdout}`,
    );
    assert.equal(out.code, 0, out.stderr);
    const results = stdout.trim().split("\n").map((line) => JSON.parse(line));
    const expected: [string, string, RegExp][] = [
      [
        "sidecar FIFO",
        "CheckpointError",
        /^Cannot resume from .*fifo\.pth: its optimizer state .*fifo\.pth\.optim\.safetensors cannot be read \(Expected the optimizer state ".*fifo\.pth\.optim\.safetensors" to be a regular file or a device, got a FIFO: .*; copy it to a regular file next to the checkpoint\); expected the sidecar/,
      ],
      [
        "IDX FIFO",
        "DatasetError",
        /^Cannot read IDX file .*fifo\.idx: Expected the IDX file ".*fifo\.idx" to be a regular file or a device, got a FIFO/,
      ],
      [
        "sidecar /dev/zero",
        "CheckpointError",
        /^Cannot resume from .*zero\.pth: its optimizer state .*zero\.pth\.optim\.safetensors cannot be read \(Optimizer state of \d+ bytes or more exceeds maxBytes \(1048576\)\)/,
      ],
      [
        "IDX /dev/zero",
        "DatasetError",
        /^Cannot read IDX file .*zero\.idx: IDX file of \d+ bytes or more exceeds maxBytes \(1048576\)/,
      ],
    ];
    assert.deepEqual(results.map((r) => r.what), expected.map(([what]) => what));
    for (const [i, [what, name, message]] of expected.entries()) {
      assert.equal(results[i].name, name, `${what}: ${results[i].message}`);
      assert.match(results[i].message, message, what);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("classify and evaluate: a FIFO named classes.json beside the weights is an error, not a hang", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hostile_classes_" });
  try {
    const made = await mkfifo(`${dir}/classes.json`);
    if (made !== true) {
      console.log(`SKIPPED the FIFO case: ${made}`);
      return;
    }
    const model = await GoogLeNet.create({ variant: "seed", numClasses: 2, auxLogits: false });
    await Deno.writeFile(`${dir}/w.safetensors`, writeSafetensors(model.stateDict()));
    await model.dispose();
    await Deno.copyFile(`${ROOT}assets/chelsea.jpg`, `${dir}/cat.jpg`);
    await Deno.mkdir(`${dir}/data/a`, { recursive: true });
    // The task's own command line, not `deno task`: killing `deno task` would leave the tool
    // holding the pipes. The deadline guards against the hang this checks for.
    const run = async (args: string[]) => {
      const out = await runDeno(
        ["run", "--allow-read", "--allow-write", "--allow-net", "--allow-env", ...args],
        { cwd: ROOT, timeoutMs: 60_000 },
      );
      return { killed: out.timedOut, code: out.code, stderr: out.stderr };
    };
    const [classify, evaluate] = await Promise.all([
      run([
        "tools/classify.ts",
        "--threads",
        "1",
        "--weights",
        `${dir}/w.safetensors`,
        `${dir}/cat.jpg`,
      ]),
      run(["tools/evaluate.ts", `${dir}/data`, "--weights", `${dir}/w.safetensors`]),
    ]);
    for (const [what, r] of [["classify", classify], ["evaluate", evaluate]] as const) {
      assert.ok(!r.killed, `${what} did not exit by itself (killed after 60 s): ${r.stderr}`);
      assert.notEqual(r.code, 0, what);
      assert.match(
        r.stderr,
        /^Error: Cannot read .*classes\.json.*got a FIFO/m,
        `${what}: ${r.stderr}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
