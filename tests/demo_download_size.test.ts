/**
 * `deno task demo` on an empty Deno cache downloads only what the library and
 * the demo use. `deno task` installs every npm package of the lock file of the
 * configuration it runs under, so the bench's and the build's packages
 * (onnxruntime-web, onnxruntime-node, TensorFlow.js, AssemblyScript, binaryen:
 * about 700 MB) live in deno.dev.jsonc and deno.dev.lock, never in deno.json
 * and deno.lock. The demo runs in a child process with a fresh `DENO_DIR`
 * and a fresh weights cache; its pretrained-weights URL points at a loopback
 * server that answers 503 (this test measures the Deno cache, not the
 * weights), and the test measures what the Deno cache holds afterwards.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;
/** The most the demo may bring into an empty Deno cache (npm packages and remote modules). */
const BOUND_MB = 20;
/** Packages of the bench and the build, which the demo must never download. */
const DEV_PACKAGES = [
  "onnxruntime-web",
  "onnxruntime-node",
  "@tensorflow",
  "binaryen",
  "assemblyscript",
];

/** Bytes of the files under `path` (0 when it does not exist). */
async function sizeOf(path: string): Promise<number> {
  let bytes = 0;
  try {
    for await (const entry of Deno.readDir(path)) {
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory) bytes += await sizeOf(child);
      else if (entry.isFile) bytes += (await Deno.lstat(child)).size;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return bytes;
}

Deno.test("deno.lock holds none of the bench's or the build's packages (deno task would install them)", async () => {
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}deno.lock`));
  const names = Object.keys(lock.npm ?? {});
  const dev = names.filter((n) => DEV_PACKAGES.some((d) => n.startsWith(d)));
  assert.deepEqual(
    dev,
    [],
    "deno.lock holds dev packages: something resolved them under deno.json; run bench/ and the " +
      "build with --config deno.dev.jsonc, and remove them from deno.lock",
  );
  const dev2 = JSON.parse(await Deno.readTextFile(`${ROOT}deno.dev.lock`));
  for (const name of ["onnxruntime-web", "binaryen", "assemblyscript"]) {
    assert.ok(
      Object.keys(dev2.npm).some((n) => n.startsWith(`${name}@`)),
      `deno.dev.lock: ${name}`,
    );
  }
});

Deno.test("deno task demo on an empty DENO_DIR downloads only the library's and the demo's packages", async () => {
  const dir = await Deno.makeTempDir({ prefix: "demo-download-" });
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    requests.push(new URL(req.url).pathname);
    return new Response("unavailable", { status: 503 });
  });
  try {
    const env = {
      ...Deno.env.toObject(),
      DENO_DIR: `${dir}/deno_dir`,
      GOOGLENET_WASM_CACHE: `${dir}/weights`,
      GOOGLENET_WASM_WEIGHTS_URL: `http://127.0.0.1:${server.addr.port}/googlenet-1378be20.pth`,
      NO_COLOR: "1",
    };
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo"],
      cwd: ROOT,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    // It got past loading its modules: it asked for the weights, or (without a download) finished.
    assert.ok(
      requests.length > 0 || out.code === 0,
      `the demo ran (exit code ${out.code}, weights requests ${requests.length})\n${stderr}`,
    );
    const npmDir = `${dir}/deno_dir/npm/registry.npmjs.org`;
    const packages: string[] = [];
    try {
      for await (const e of Deno.readDir(npmDir)) packages.push(e.name);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const npm = await sizeOf(`${dir}/deno_dir/npm`);
    const remote = await sizeOf(`${dir}/deno_dir/remote`);
    const total = await sizeOf(`${dir}/deno_dir`);
    const mb = (b: number) => (b / 1e6).toFixed(1);
    console.log(
      `  exit code ${out.code}; npm ${mb(npm)} MB (${packages.sort().join(", ")}), ` +
        `remote ${mb(remote)} MB; DENO_DIR in all ${mb(total)} MB (with its compile cache)`,
    );
    for (const name of DEV_PACKAGES) {
      assert.ok(!packages.includes(name), `the demo downloaded ${name}`);
    }
    assert.ok((npm + remote) / 1e6 < BOUND_MB, `downloads ${mb(npm + remote)} MB < ${BOUND_MB} MB`);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
