/**
 * The README's training snippet (the second `ts` block under "## Example"),
 * as written, in a child process from the repository root with the
 * permission a checkout needs (`--allow-read`): it must print a finite
 * positive loss near ln(10) (10 classes, `initWeights`) and exit 0.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("the README's training loop runs as written and prints a plausible loss", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const section = /^## Example\n([\s\S]*?)^## /m.exec(readme);
  assert.ok(section, 'README.md has a "## Example" section');
  const blocks = [...section[1].matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const code = blocks.find((b) => b.includes("backward("));
  assert.ok(code, "the Example section has a training snippet");
  const file = new URL("readme_training_snippet.ts", ROOT);
  await Deno.writeTextFile(file, code);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", file.pathname],
      cwd: ROOT.pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 0, `exit ${out.code}: ${stderr}`);
    const loss = Number(stdout.split("\n").at(-1));
    console.log(`  the snippet printed loss ${loss}`);
    // Zero images give equal logits up to the biases (zero under initWeights): ln(10) per head,
    // main + 0.3 x two aux heads.
    assert.ok(Number.isFinite(loss) && Math.abs(loss - 1.6 * Math.log(10)) < 0.5, stdout);
  } finally {
    await Deno.remove(file);
  }
});
