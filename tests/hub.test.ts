/**
 * Pretrained weights on first use (src/weights/hub.ts) against a local HTTP
 * server on 127.0.0.1: downloaded once into the cache and verified against the
 * hash in the file name, a wrong hash refused without touching the cache, a
 * server that never answers timed out, no network and HTTP errors reported as
 * `DownloadError`, and the platform cache directories.
 */
import assert from "node:assert/strict";
import { DownloadError } from "../src/errors.ts";
import { loadWeights } from "../src/weights/mod.ts";
import {
  CACHE_ENV,
  cacheDir,
  downloadWeights,
  pretrainedWeights,
  WEIGHTS_URL_ENV,
} from "../src/weights/hub.ts";
import { serveFiles, sha256 } from "./_support/file_server.ts";

const file = await Deno.readFile(new URL("./fixtures/weights/legacy_views.pth", import.meta.url));
const hash = (await sha256(file)).slice(0, 8);
const good = `/weights-${hash}.pth`;

async function withCache(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(`${dir}/cache`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listing(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function rejectsWith(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DownloadError, String(e));
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("downloadWeights fetches once into the cache, verified, and the file loads", async () => {
  const server = serveFiles({ [good]: file });
  try {
    await withCache(async (dir) => {
      const seen: [number, number | undefined][] = [];
      const path = await downloadWeights(server.origin + good, {
        cacheDir: dir,
        progress: (received, total) => seen.push([received, total]),
      });
      assert.equal(path, `${dir}/weights-${hash}.pth`);
      assert.deepEqual(await Deno.readFile(path), file);
      assert.deepEqual(seen[0], [0, file.length]);
      assert.deepEqual(seen.at(-1), [file.length, file.length]);
      assert.deepEqual(await listing(dir), [`weights-${hash}.pth`], "no temporary file left");
      assert.deepEqual(
        [...(await loadWeights(path)).keys()],
        ["transposed", "shared_a", "shared_b", "stepped"],
      );
      assert.equal(await downloadWeights(server.origin + good, { cacheDir: dir }), path);
      assert.equal(server.hits.get(good), 1, "the second call is served from the cache");
    });
  } finally {
    await server.close();
  }
});

Deno.test("downloadWeights refuses a file whose SHA-256 does not match its name, cache untouched", async () => {
  const bad = "/weights-00000000.pth";
  const server = serveFiles({ [bad]: file });
  try {
    await withCache(async (dir) => {
      await rejectsWith(
        downloadWeights(server.origin + bad, { cacheDir: dir }),
        new RegExp(
          `^Downloaded .*/weights-00000000\\.pth has SHA-256 ${hash}[0-9a-f]{56}, expected one ` +
            "starting with 00000000 \\(the hash in its name\\): the file was not saved$",
        ),
      );
      assert.deepEqual(await listing(dir), []);
    });
  } finally {
    await server.close();
  }
});

Deno.test("downloadWeights gives up on a server that never answers, and honours a signal", async () => {
  const server = serveFiles({ "/hang-12345678.pth": "hang" });
  try {
    await withCache(async (dir) => {
      const url = `${server.origin}/hang-12345678.pth`;
      await rejectsWith(
        downloadWeights(url, { cacheDir: dir, timeout: 200 }),
        /^Could not download .*hang-12345678\.pth: no data from the server for 0\.2 s$/,
      );
      const controller = new AbortController();
      const pending = downloadWeights(url, { cacheDir: dir, signal: controller.signal });
      setTimeout(() => controller.abort(new Error("Stopped by the caller")), 50);
      await assert.rejects(pending, /^Error: Stopped by the caller$/);
      assert.deepEqual(await listing(dir), []);
    });
  } finally {
    await server.close();
  }
});

Deno.test("downloadWeights reports no network, HTTP errors and oversized files as DownloadError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  const server = serveFiles({ [good]: file });
  try {
    await withCache(async (dir) => {
      await rejectsWith(
        downloadWeights(`http://127.0.0.1:${closedPort}${good}`, { cacheDir: dir }),
        /^Could not download http:\/\/127\.0\.0\.1:\d+\/weights-\w+\.pth: .*Connection refused/,
      );
      // ".invalid" never resolves (RFC 6761), online or not.
      await rejectsWith(
        downloadWeights(`http://googlenet-wasm.invalid${good}`, { cacheDir: dir }),
        /^Could not download http:\/\/googlenet-wasm\.invalid\/weights-\w+\.pth: .*dns error/,
      );
      await rejectsWith(
        downloadWeights(`${server.origin}/missing-12345678.pth`, { cacheDir: dir }),
        /: HTTP 404 Not Found, expected 200 OK$/,
      );
      await rejectsWith(
        downloadWeights(server.origin + good, { cacheDir: dir, maxBytes: 100 }),
        new RegExp(`: ${file.length} bytes or more exceeds maxBytes \\(100\\)$`),
      );
      await rejectsWith(
        downloadWeights("ftp://example.com/w.pth", { cacheDir: dir }),
        /expected an http: or https: URL that ends in a file name$/,
      );
      assert.deepEqual(await listing(dir), []);
    });
  } finally {
    await server.close();
  }
});

Deno.test("pretrainedWeights takes its URL from GOOGLENET_WASM_WEIGHTS_URL when set", async () => {
  const server = serveFiles({ [good]: file });
  const before = Deno.env.get(WEIGHTS_URL_ENV);
  try {
    Deno.env.set(WEIGHTS_URL_ENV, server.origin + good);
    await withCache(async (dir) => {
      const path = await pretrainedWeights("torchvision", { cacheDir: dir });
      assert.equal(path, `${dir}/weights-${hash}.pth`);
      assert.equal(server.hits.get(good), 1);
    });
    await rejectsWith(
      pretrainedWeights("resnet" as "torchvision"),
      /^Unknown pretrained weights "resnet": expected "torchvision"$/,
    );
  } finally {
    if (before === undefined) Deno.env.delete(WEIGHTS_URL_ENV);
    else Deno.env.set(WEIGHTS_URL_ENV, before);
    await server.close();
  }
});

Deno.test("cacheDir follows each platform's convention and GOOGLENET_WASM_CACHE", () => {
  const dir = (os: typeof Deno.build.os, vars: Record<string, string>) =>
    cacheDir({ os, env: (name) => vars[name] });
  const home = { HOME: "/home/ada" };
  assert.equal(dir("linux", home), "/home/ada/.cache/googlenet-wasm");
  assert.equal(dir("linux", { ...home, XDG_CACHE_HOME: "/xdg" }), "/xdg/googlenet-wasm");
  assert.equal(dir("linux", { ...home, XDG_CACHE_HOME: "" }), "/home/ada/.cache/googlenet-wasm");
  assert.equal(dir("freebsd", home), "/home/ada/.cache/googlenet-wasm");
  assert.equal(dir("darwin", { HOME: "/Users/ada" }), "/Users/ada/Library/Caches/googlenet-wasm");
  assert.equal(
    dir("windows", { LOCALAPPDATA: "C:\\Users\\ada\\AppData\\Local" }),
    "C:\\Users\\ada\\AppData\\Local\\googlenet-wasm",
  );
  assert.equal(
    dir("windows", { USERPROFILE: "C:\\Users\\ada" }),
    "C:\\Users\\ada\\AppData\\Local\\googlenet-wasm",
  );
  assert.equal(dir("darwin", { ...home, [CACHE_ENV]: "/tmp/w" }), "/tmp/w");
  assert.throws(
    () => dir("linux", {}),
    (e: unknown) =>
      e instanceof DownloadError &&
      e.message === "Cannot find a cache directory: set GOOGLENET_WASM_CACHE (or HOME)",
  );
});

/** Where `script` (util-linux) is, to run a child on a pseudo-terminal; undefined if absent. */
async function scriptCommand(): Promise<string | undefined> {
  try {
    const { success } = await new Deno.Command("script", { args: ["--version"], stdout: "null" })
      .output();
    return success ? "script" : undefined;
  } catch {
    return undefined;
  }
}

const script = await scriptCommand();
if (!script) {
  console.log("Skipping the terminal progress bar test: `script` (util-linux) not found");
}

Deno.test({
  name: "the progress bar is drawn on a terminal and nothing is written to a pipe",
  ignore: script === undefined,
  async fn() {
    const server = serveFiles({ [good]: file });
    try {
      await withCache(async (dir) => {
        const child = `${dir}.child.ts`;
        await Deno.writeTextFile(
          child,
          `import { downloadWeights } from ${
            JSON.stringify(new URL("../src/weights/hub.ts", import.meta.url).href)
          };
await downloadWeights(Deno.args[0], { cacheDir: Deno.args[1] });`,
        );
        const args = ["run", "-A", child, server.origin + good];
        const piped = await new Deno.Command(Deno.execPath(), {
          args: [...args, `${dir}/piped`],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(piped.success);
        assert.equal(new TextDecoder().decode(piped.stderr), "");
        const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
        const tty = await new Deno.Command(script!, {
          args: [
            "-qec",
            [Deno.execPath(), ...args, `${dir}/tty`].map(quote).join(" "),
            "/dev/null",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const output = new TextDecoder().decode(tty.stdout);
        assert.ok(tty.success, output);
        assert.match(
          output,
          new RegExp(`\\rDownloading weights-${hash}\\.pth \\[#{30}\\] 100% 0\\.0/0\\.0 MB\\r?\\n`),
        );
      });
    } finally {
      await server.close();
    }
  },
});
