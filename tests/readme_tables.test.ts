/**
 * The README's result tables are what tools/readme_tables.ts renders from
 * the committed bench record (bench/results/latest.json), and the renderer
 * reacts to the record: a changed row changes the table, a block without a
 * rendering or a rendering without a block is refused.
 */

import assert from "node:assert/strict";
import {
  type BenchRecord,
  markdownTable,
  README_URL,
  RECORD_URL,
  renderTables,
  updateReadme,
} from "../tools/readme_tables.ts";

const record = JSON.parse(await Deno.readTextFile(RECORD_URL)) as BenchRecord;
const readme = await Deno.readTextFile(README_URL);

Deno.test("README's tables equal what tools/readme_tables.ts renders from the committed record", () => {
  const tables = renderTables(record);
  assert.deepStrictEqual([...tables.keys()].sort(), ["results", "speed", "training"]);
  const updated = updateReadme(readme, tables);
  if (updated !== readme) {
    // The first differing line, to say what is stale.
    const a = readme.split("\n"), b = updated.split("\n");
    const at = a.findIndex((line, i) => line !== b[i]);
    throw new Error(
      `README.md line ${at + 1} differs from the record's rendering:\n  README: ${a[at]}\n` +
        `  record: ${b[at]}\nRun deno task readme-tables (after a bench run) and commit both`,
    );
  }
});

Deno.test("The tables follow the record: a changed row changes the rendering", () => {
  const changed = structuredClone(record);
  const row = changed.inference!.rows.find((r) => r.group === "batch 1" && r.ours === "ours")!;
  row.msPerImage *= 2;
  const before = renderTables(record), after = renderTables(changed);
  assert.notStrictEqual(after.get("results"), before.get("results"));
  assert.notStrictEqual(after.get("speed"), before.get("speed"));
  assert(after.get("results")!.includes(`**${row.msPerImage.toFixed(1)}**`));
  assert.notStrictEqual(updateReadme(readme, after), readme);

  const training = structuredClone(record);
  training.training!.rows[0].theirsMsPerImage = 12345.6;
  assert(renderTables(training).get("training")!.includes("12345.6"));
});

Deno.test("Ratios in the Speed table are ours over theirs on the same thread count", () => {
  const speed = renderTables(record).get("speed")!;
  const inference = record.inference!;
  for (const peer of inference.rows.filter((r) => !r.ours && r.group === "batch 1")) {
    const ours = inference.rows.find((r) =>
      r.group === "batch 1" && r.ours === "ours" && r.threads === peer.threads
    )!;
    const line = speed.split("\n").find((l) => l.includes(`| ${peer.name} `))!;
    const cells = line.split("|").map((c) => c.trim());
    assert.strictEqual(cells[6], (ours.msPerImage / peer.msPerImage).toFixed(2), line);
  }
});

Deno.test("updateReadme refuses unmatched blocks and renderings", () => {
  const doc = "# T\n\n<!-- tables:x -->\n\nold\n\n<!-- /tables:x -->\n";
  assert.deepStrictEqual(
    updateReadme(doc, new Map([["x", "new"]])),
    "# T\n\n<!-- tables:x -->\n\nnew\n\n<!-- /tables:x -->\n",
  );
  assert.throws(() => updateReadme(doc, new Map()), /block "x" has nothing to render/);
  assert.throws(
    () => updateReadme(doc, new Map([["x", "a"], ["y", "b"]])),
    /no "<!-- tables:y -->"/,
  );
  assert.throws(
    () => updateReadme("<!-- tables:x -->\n<!-- /tables:y -->\n", new Map([["x", "a"]])),
    /closed as "y"/,
  );
  assert.throws(
    () => updateReadme(doc + "<!-- tables:z -->\n", new Map([["x", "a"]])),
    /unpaired/,
  );
});

Deno.test("markdownTable lays out columns as deno fmt does", async () => {
  const table = markdownTable(["name", "ms"], ["left", "right"], [["a", "1.5"], [
    "longer",
    "10.0",
  ]]);
  assert.deepStrictEqual(
    table,
    "| name   |   ms |\n| ------ | ---: |\n| a      |  1.5 |\n| longer | 10.0 |",
  );
  // deno fmt leaves a rendered README block as it is.
  const doc = `# T\n\n${table}\n`;
  const fmt = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = fmt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(doc));
  await writer.close();
  assert.deepStrictEqual(new TextDecoder().decode((await fmt.output()).stdout), doc);
});
