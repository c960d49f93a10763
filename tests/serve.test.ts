/**
 * Serving the library for URL imports, as the README says: `tools/serve.ts`
 * started as a user starts it lets a fresh Deno import `mod.ts` (and its
 * kernels) by URL; Python's `http.server` does not (it sends `.ts` with the
 * system's MIME type for translation or video files, which Deno refuses),
 * which is why the README names a server instead of "any static server".
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function waitFor(url: string): Promise<string | null> {
  for (let i = 0; i < 100; i++) {
    try {
      const response = await fetch(url, { method: "HEAD" });
      await response.body?.cancel();
      return response.headers.get("content-type");
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return null;
}

/** A fresh Deno importing `base/mod.ts`: prints the type of GoogLeNet, or fails. */
async function importFrom(base: string): Promise<{ code: number; out: string }> {
  const host = new URL(base).host;
  const denoDir = await Deno.makeTempDir({ prefix: "serve-deno-dir-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `--allow-import=${host}`,
        `--allow-net=${host}`,
        `const m = await import("${base}mod.ts"); console.log(typeof m.GoogLeNet);`,
      ],
      cwd: denoDir,
      env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    return { code: out.code, out: stdout || new TextDecoder().decode(out.stderr).trim() };
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

Deno.test("tools/serve.ts serves the library so that a fresh Deno imports it by URL", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-read", "tools/serve.ts", "--port", `${port}`],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const base = `http://127.0.0.1:${port}/`;
    assert.equal(await waitFor(`${base}mod.ts`), "application/typescript");
    assert.equal(
      await waitFor(`${base}src/backend/wasm/kernels/kernels-simd.wasm`),
      "application/wasm",
    );
    const { code, out } = await importFrom(base);
    assert.equal(code, 0, out);
    assert.equal(out, "function");
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("Python's http.server is not enough: Deno refuses the .ts files it sends", async () => {
  const port = freePort();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("/usr/bin/python3", {
      args: ["-m", "http.server", `${port}`, "--bind", "127.0.0.1"],
      cwd: ROOT,
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch {
    console.log("  skipped: /usr/bin/python3 is not available");
    return;
  }
  try {
    const base = `http://127.0.0.1:${port}/`;
    const type = await waitFor(`${base}mod.ts`);
    console.log(`  Python's http.server sends mod.ts as ${type}`);
    const { code, out } = await importFrom(base);
    assert.notEqual(code, 0, `Deno imported mod.ts served as ${type}: ${out}`);
  } finally {
    child.kill();
    await child.status;
  }
});
