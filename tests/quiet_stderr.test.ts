/**
 * A successful run prints nothing on stderr, on the default path
 * (`backend: "auto"`, default threads, no `dispose()`), in a child process
 * with `XDG_RUNTIME_DIR` unset as on a server (CI exports it; these children
 * do not inherit it). With Mesa's Vulkan drivers installed, WebGPU's adapter
 * probe alone prints `error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment.` twice there: the first test shows that this machine
 * reproduces it (so that the others can fail), the others that the library's
 * default path stays quiet with the README's permissions and with all.
 */

import assert from "node:assert/strict";

const MOD = new URL("../mod.ts", import.meta.url).href;
const MESA_ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

/** Runs `code` as a module in a child Deno with `flags`, without XDG_RUNTIME_DIR. */
async function runQuiet(code: string, flags: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "quiet-stderr-" });
  try {
    await Deno.writeTextFile(`${dir}/main.ts`, code);
    const env = Deno.env.toObject();
    delete env.XDG_RUNTIME_DIR;
    env.NO_COLOR = "1";
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, "--no-prompt", "main.ts"],
      cwd: dir,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function mesaInstalled(): Promise<boolean> {
  return await Deno.stat(MESA_ICD).then(() => true, () => false);
}

Deno.test("this machine reproduces the noise: a bare WebGPU probe without XDG_RUNTIME_DIR", async () => {
  if (Deno.build.os !== "linux" || !(await mesaInstalled())) {
    console.log(`  skipped: needs Linux with Mesa's Vulkan drivers (${MESA_ICD})`);
    return;
  }
  const { code, stderr } = await runQuiet(
    "const a = await navigator.gpu?.requestAdapter(); console.log(a?.info?.description);",
    ["--allow-read"],
  );
  assert.equal(code, 0, stderr);
  console.log(`  the bare probe printed ${JSON.stringify(stderr.trim())}`);
  assert.match(stderr, /XDG_RUNTIME_DIR/, "the probe is noisy here, so the tests below can fail");
});

const DEFAULT_PATH = `
import { GoogLeNet, Tensor } from "${MOD}";
const model = await GoogLeNet.create({ auxLogits: false, seed: 1 });
const y = await model.forward(new Tensor(new Float32Array(3 * 64 * 64).fill(0.5), [1, 3, 64, 64]));
console.log(JSON.stringify({ kind: model.backend.kind, logits: y.data.length }));
`;

for (const flags of [["--allow-read"], ["--allow-all"]]) {
  Deno.test(`the default path prints nothing on stderr and exits (${flags.join(" ")}, no XDG_RUNTIME_DIR)`, async () => {
    const { code, stdout, stderr } = await runQuiet(DEFAULT_PATH, flags);
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    console.log(`  backend ${result.kind}, ${result.logits} logits`);
    assert.equal(result.logits, 1000);
    assert.equal(stderr, "", "stderr is empty");
  });
}
