/**
 * The README's example, as written, in a child process the way a user runs
 * it: its code block extracted verbatim (only the placeholder URL of the
 * import points at this checkout's `mod.ts`), run with the permissions the
 * README names (`--allow-read`), in a directory holding the two files it
 * names (`googlenet-1378be20.pth`: a state dict laid out as torchvision's
 * published file, aux heads included, in PyTorch's legacy format, written by
 * Debian's PyTorch with random weights, or without PyTorch the same keys by
 * `writePth`; `cat.jpg`: the sample photo), with an empty Deno cache
 * (`DENO_DIR`) and no deno.json. It must print five classes, exit 0 without
 * `dispose()` within a few seconds of printing (idle kernel workers must not
 * keep the process alive), and print nothing on stderr but the cache's
 * download notes.
 */

import assert from "node:assert/strict";
import { GoogLeNet, writePth } from "../mod.ts";

const ROOT = new URL("../", import.meta.url);
/** How long the example may take to exit once it has printed. */
const EXIT_BOUND_MS = 10_000;

const PYTHON = "/usr/bin/python3";

/**
 * Writes a state dict laid out as torchvision's published file (aux heads
 * included, random weights) in PyTorch's legacy format, as that file is.
 * Returns why it could not (no PyTorch), or null.
 */
async function writeLegacyPth(path: string): Promise<string | null> {
  const script = [
    "import sys, torch, torchvision",
    "torch.manual_seed(3)",
    "m = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)",
    "torch.save(m.state_dict(), sys.argv[1], _use_new_zipfile_serialization=False)",
  ].join("\n");
  try {
    const out = await new Deno.Command(PYTHON, { args: ["-c", script, path], stderr: "piped" })
      .output();
    if (out.success) return null;
    return `${PYTHON} could not write it: ${
      new TextDecoder().decode(out.stderr).trim().slice(-300)
    }`;
  } catch (error) {
    return `${PYTHON} cannot be run: ${(error as Error).message}`;
  }
}

/** The README's first ```ts block under "## Example". */
async function readmeExample(): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const match = /^## Example\n[\s\S]*?```ts\n([\s\S]*?)```/m.exec(readme);
  assert.ok(match, 'README.md has a "## Example" section with a ```ts block');
  return match[1];
}

/** `code` with the import URL replaced by this checkout's mod.ts (which must occur exactly once). */
function pointAtCheckout(code: string): string {
  const urls = [...code.matchAll(/from "(https?:\/\/[^"]+\/mod\.ts)"/g)].map((m) => m[1]);
  assert.equal(urls.length, 1, `one URL import of mod.ts in the example, got ${urls.join(", ")}`);
  return code.replace(urls[0], new URL("mod.ts", ROOT).href);
}

Deno.test("README example: runs as written, prints five classes and exits by itself", async () => {
  const code = pointAtCheckout(await readmeExample());
  const dir = await Deno.makeTempDir({ prefix: "readme-example-" });
  try {
    // The files the example names, where it looks for them (its working directory).
    const files = [...code.matchAll(/"([\w.-]+\.(?:pth|jpg|png|safetensors))"/g)].map((m) => m[1]);
    assert.deepEqual(files.sort(), ["cat.jpg", "googlenet-1378be20.pth"]);
    const weights = `${dir}/googlenet-1378be20.pth`;
    const skipped = await writeLegacyPth(weights);
    if (skipped) {
      // Without PyTorch: the same keys (no aux heads) in the ZIP format, written by writePth.
      console.log(`  torchvision's layout in the legacy format skipped: ${skipped}`);
      const model = await GoogLeNet.create({
        variant: "torchvision",
        auxLogits: false,
        initWeights: true,
        seed: 3,
        threads: 1,
        backend: "wasm",
      });
      await Deno.writeFile(weights, writePth(model.stateDict()));
      await model.dispose();
    }
    await Deno.copyFile(new URL("assets/chelsea.jpg", ROOT), `${dir}/cat.jpg`);
    await Deno.writeTextFile(`${dir}/example.ts`, code);
    await Deno.mkdir(`${dir}/deno_dir`);

    const env: Record<string, string> = {
      ...Deno.env.toObject(),
      DENO_DIR: `${dir}/deno_dir`,
      NO_COLOR: "1",
    };
    delete env.XDG_RUNTIME_DIR; // as on a server: Mesa's Vulkan loader would complain
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--no-prompt", "example.ts"],
      cwd: dir,
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    // Read stdout until the example has printed its answer (the last of five rows).
    let stdout = "";
    const decoder = new TextDecoder();
    const reader = child.stdout.getReader();
    const kill = () => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    };
    // A cold cache downloads the npm packages first: a generous bound before the answer.
    let killer = setTimeout(kill, 240_000);
    let printedAt = 0;
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += decoder.decode(value, { stream: true });
      if (!printedAt && /\]\s*$/.test(stdout)) {
        printedAt = performance.now();
        clearTimeout(killer);
        killer = setTimeout(kill, EXIT_BOUND_MS);
      }
    }
    clearTimeout(killer);
    const endedAt = performance.now();
    const status = await child.status;
    const err = await stderr;
    assert.equal(
      status.code,
      0,
      `exit code ${status.code}${
        status.signal ? ` (${status.signal}: did not exit)` : ""
      }\n${err}\n${stdout}`,
    );
    const rows = stdout.match(/label:/g) ?? [];
    assert.equal(rows.length, 5, `five classes printed:\n${stdout}`);
    const exitMs = endedAt - printedAt;
    console.log(`  exited ${exitMs.toFixed(0)} ms after printing`);
    assert.ok(printedAt > 0 && exitMs < EXIT_BOUND_MS, `exited ${exitMs} ms after printing`);
    const noise = err.split("\n").filter((line) => line.trim() && !/^Download /.test(line));
    assert.deepEqual(noise, [], "nothing on stderr but the cache's download notes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
