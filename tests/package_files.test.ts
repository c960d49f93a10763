/**
 * What the published package holds, as `deno publish --dry-run` lists it: the
 * LICENSE (MIT, as deno.json says), README.md and every file that README.md,
 * ARCHITECTURE.md and docs/ link to (docs/EDGE.md was excluded once), and
 * none of the tests, bench, tools or the dev configuration.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const DOCS = ["README.md", "ARCHITECTURE.md", "docs/EDGE.md"];

/** Relative file links (`[text](path#anchor)`) of a Markdown file, as repository paths. */
async function relativeLinks(doc: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(doc, ROOT));
  const base = new URL(doc, ROOT);
  return [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)]
    .map((m) => m[1])
    .filter((link) => !/^[a-z]+:/i.test(link))
    .map((link) => new URL(link, base).pathname.slice(ROOT.pathname.length));
}

Deno.test("LICENSE is the MIT license that deno.json names", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.equal(config.license, "MIT");
  const license = await Deno.readTextFile(new URL("LICENSE", ROOT));
  assert.match(license, /^MIT License\n/);
  assert.match(license, /Permission is hereby granted, free of charge/);
});

Deno.test("the published files hold the LICENSE and every document the README links to", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty", "--allow-slow-types", "--no-check"],
    cwd: ROOT.pathname,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, log);
  const files = new Set(
    [...log.matchAll(/file:\/\/(\S+)/g)].map((m) => m[1].slice(ROOT.pathname.length)),
  );
  console.log(`  ${files.size} files`);
  for (const required of ["LICENSE", "README.md", "mod.ts"]) {
    assert.ok(files.has(required), `${required} is published`);
  }
  for (const doc of DOCS) {
    for (const link of await relativeLinks(doc)) {
      assert.ok(files.has(link), `${doc} links to ${link}, which is published`);
    }
  }
  for (const file of files) {
    assert.ok(!/^(tests|bench|tools|\.ci)\//.test(file), `${file} is not published`);
    assert.ok(!file.startsWith("deno.dev."), `${file} is not published`);
  }
});
