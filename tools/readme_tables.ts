/**
 * Renders the README's result tables from a bench run's record
 * (bench/results/latest.json, written by `deno task bench`; see
 * bench/_record.ts) into README.md between marker comments, so that the
 * tables are never edited by hand:
 *
 *     deno run --allow-read --allow-write tools/readme_tables.ts           # rewrite README.md
 *     deno run --allow-read tools/readme_tables.ts --check                 # exit 1 if stale
 *
 * Each block sits between `<!-- tables:NAME -->` and `<!-- /tables:NAME -->`:
 * `results` (batch 1 on 1 and all threads, the README's first table), `speed`
 * (every inference row with the ratios to ours) and `training` (training
 * step against PyTorch, with the per-op profile). tests/readme_tables.test.ts
 * fails when README.md differs from what this renders from the committed
 * record.
 *
 * @module
 */

/** One inference row: a runtime's median time in a group (batch 1, batch 8, webgpu). */
export interface InferenceRow {
  group: string;
  name: string;
  images: number;
  msPerImage: number;
  /** Which of our configurations (`"ours"`, `"ours, prefer speed"`), or null for a peer. */
  ours: string | null;
  threads: number;
}

/** The `"inference"` section of the record (googlenet_bench.ts). */
export interface InferenceSection {
  host: { cpu: string; cores: number };
  commit: string;
  date: string;
  gflopPerImage: number;
  /** npm package versions of the peers. */
  peers: Record<string, string>;
  rows: InferenceRow[];
  /** Peers that could not run, with a short reason for the table. */
  skipped: { name: string; reason: string; short?: string }[];
}

/** One training configuration: ours and PyTorch per image, and the per-round ratios. */
export interface TrainingRow {
  mode: "full" | "head";
  threads: number;
  oursMsPerImage: number | null;
  theirsMsPerImage: number | null;
  ratio: { median: number; min: number; max: number } | null;
  oursParts: { backwardMsPerImage: number | null; optimizerMs: number; zeroGradMs: number };
  memoryBytes: number;
}

/** The `"training"` section of the record (bench/training.ts). */
export interface TrainingSection {
  host: { cpu: string; cores: number };
  commit: string;
  date: string;
  loadAverage: { start: number[]; end: number[] };
  batch: number;
  size: number;
  rounds: number;
  torch: string | null;
  rows: TrainingRow[];
  profile: {
    forwardMs: number;
    backwardMs: number;
    backwardByKind: Record<string, number>;
    backwardTop: { name: string; kind: string; ms: number }[];
    optimizerMs: number;
    repackMs: number;
    zeroGradMs: number;
    peakWasmBytes: number;
    activationsMBPerImage: number;
  } | null;
}

/** A bench record: one section per bench file. */
export interface BenchRecord {
  inference?: InferenceSection;
  training?: TrainingSection;
}

/** Column alignment of {@linkcode markdownTable}. */
export type Align = "left" | "right";

/**
 * A Markdown table laid out as `deno fmt` lays it out (cells padded to the
 * column's width, right-aligned columns padded on the left).
 *
 * @example
 * ```ts
 * import { markdownTable } from "./readme_tables.ts";
 * console.log(markdownTable(["a", "b"], ["left", "right"], [["x", "1.0"]]));
 * // | a   |   b |
 * // | --- | --: |
 * // | x   | 1.0 |
 * ```
 */
export function markdownTable(
  header: readonly string[],
  align: readonly Align[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, c) => Math.max(3, h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: readonly string[]) =>
    `| ${
      cells.map((cell, c) =>
        align[c] === "right" ? cell.padStart(widths[c]) : cell.padEnd(widths[c])
      )
        .join(" | ")
    } |`;
  const rule = `| ${
    widths.map((w, c) => align[c] === "right" ? "-".repeat(w - 1) + ":" : "-".repeat(w)).join(" | ")
  } |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

const f1 = (v: number) => v.toFixed(1);

/**
 * Wraps a paragraph at `width` columns as `deno fmt` does (greedy, by words),
 * so that the README stays formatted.
 *
 * @example
 * ```ts
 * import { wrapParagraph } from "./readme_tables.ts";
 * console.log(wrapParagraph("one two three", 7)); // "one two\nthree"
 * ```
 */
export function wrapParagraph(text: string, width = 100): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join("\n");
}
const minor = (version: string | undefined) => version?.split(".").slice(0, 2).join(".") ?? "?";

/** The peers of the Results table: the row name's stem and how the README names it. */
const RESULT_PEERS: [string, (peers: Record<string, string>) => string][] = [
  ["onnxruntime-web", (p) => `onnxruntime-web ${minor(p["onnxruntime-web"])}, wasm SIMD`],
  [
    "tfjs-backend-wasm",
    (p) => `TensorFlow.js ${minor(p["@tensorflow/tfjs-backend-wasm"])}, wasm (XNNPACK)`,
  ],
  [
    "onnxruntime-node",
    (p) => `onnxruntime-node ${minor(p["onnxruntime-node"])}, native (the ceiling)`,
  ],
];

/** The README's first table: batch 1, ms per image, on 1 thread and on all cores. */
export function renderResults(section: InferenceSection): string {
  const cores = section.host.cores;
  const threads = cores > 1 ? [1, cores] : [1];
  const batch1 = section.rows.filter((r) => r.group === "batch 1");
  const cell = (row: InferenceRow | undefined, bold: boolean) =>
    row ? (bold ? `**${f1(row.msPerImage)}**` : f1(row.msPerImage)) : null;
  const rows: string[][] = [];
  for (
    const [label, ours] of [
      ["**googlenet-wasm** (default)", "ours"],
      ['**googlenet-wasm**, `prefer: "speed"`', "ours, prefer speed"],
    ]
  ) {
    rows.push([
      label,
      ...threads.map((t) =>
        cell(batch1.find((r) => r.ours === ours && r.threads === t), true) ?? "not run"
      ),
    ]);
  }
  for (const [stem, name] of RESULT_PEERS) {
    const skipText = (t: number) => {
      const skip = section.skipped.find((s) =>
        s.name.startsWith(stem) && s.name.endsWith(`(${t}t)`)
      );
      return skip ? skip.short ?? "not run" : "not run";
    };
    rows.push([
      name(section.peers),
      ...threads.map((t) =>
        cell(batch1.find((r) => !r.ours && r.name.startsWith(stem) && r.threads === t), false) ??
          skipText(t)
      ),
    ]);
  }
  const header = [
    "batch 1, ms per image",
    ...threads.map((t) => t === 1 ? "1 thread" : `${t} threads`),
  ];
  return markdownTable(header, ["left", ...threads.map(() => "right" as const)], rows);
}

/** The Speed table: every row, ms and images per second, GFLOP/s, and each peer against ours. */
export function renderSpeed(section: InferenceSection): string {
  const labels = [...new Set(section.rows.flatMap((r) => r.ours ? [r.ours] : []))];
  const title = (label: string) =>
    `${label === "ours" ? "default" : label.replace(/^ours, /, "")} / theirs`;
  const rows = section.rows.map((r) => {
    const ratios = labels.map((label) => {
      const ours = section.rows.find((o) =>
        o.group === r.group && o.ours === label && o.threads === r.threads
      );
      return r.ours || !ours ? "" : (ours.msPerImage / r.msPerImage).toFixed(2);
    });
    return [
      r.group,
      r.name,
      f1(r.msPerImage),
      f1(1000 / r.msPerImage),
      f1(section.gflopPerImage * 1000 / r.msPerImage),
      ...ratios,
    ];
  });
  return markdownTable(
    ["group", "runtime", "ms / image", "images / s", "GFLOP/s", ...labels.map(title)],
    ["left", "left", "right", "right", "right", ...labels.map(() => "right" as const)],
    rows,
  );
}

/** The training table (ours against PyTorch per image, per-round ratios) and the step's profile. */
export function renderTraining(section: TrainingSection): string {
  const ms = (v: number | null) => v === null ? "not run" : f1(v);
  const table = markdownTable(
    [
      `batch ${section.batch}, ms per image`,
      "threads",
      "googlenet-wasm",
      `PyTorch ${section.torch ?? ""}`.trim(),
      "ours / PyTorch (range)",
    ],
    ["left", "right", "right", "right", "right"],
    section.rows.map((r) => [
      r.mode === "full" ? "training step, all layers" : 'head only (`trainable: ["fc."]`)',
      String(r.threads),
      ms(r.oursMsPerImage),
      ms(r.theirsMsPerImage),
      r.ratio
        ? `${r.ratio.median.toFixed(2)} (${r.ratio.min.toFixed(2)}-${r.ratio.max.toFixed(2)})`
        : "not run",
    ]),
  );
  const lines = [
    table,
    "",
    wrapParagraph(
      `Measured on ${section.host.cpu}, ${section.host.cores} cores, at commit \`${section.commit}\` ` +
        `(${section.date.slice(0, 10)}), load average ${
          section.loadAverage.start[0]
        } at the start and ${section.loadAverage.end[0]} at the end; ${section.rounds} rounds ` +
        `after a warm-up, ours and PyTorch in turn, each figure the median.`,
    ),
  ];
  // Said whenever the run shows it: more threads were slower, so the host was oversubscribed.
  const slower = (["oursMsPerImage", "theirsMsPerImage"] as const).filter((key) =>
    section.rows.some((r) =>
      r.threads > 1 &&
      section.rows.some((o) =>
        o.mode === r.mode && o.threads === 1 && r[key] !== null && o[key] !== null &&
        r[key]! > o[key]!
      )
    )
  ).map((key) => key === "oursMsPerImage" ? "googlenet-wasm" : "PyTorch");
  if (slower.length) {
    lines.push(
      "",
      wrapParagraph(
        `In this run ${slower.join(" and ")} ${slower.length > 1 ? "were" : "was"} slower on ` +
          `more threads than on one: other work held the ${section.host.cores} cores (load ` +
          `average up to ${
            Math.max(section.loadAverage.start[0], section.loadAverage.end[0])
          }), so the multi-thread rows measure the contention more than the code.`,
      ),
    );
  }
  const p = section.profile;
  if (p) {
    const kinds = Object.entries(p.backwardByKind).filter(([, v]) => v >= 0.05 * p.backwardMs);
    const rest = p.backwardMs - kinds.reduce((a, [, v]) => a + v, 0);
    const perImage = (v: number) => f1(v / section.batch);
    lines.push(
      "",
      markdownTable(
        [`one step on 1 thread, batch ${section.batch}`, "ms per step", "ms per image"],
        ["left", "right", "right"],
        [
          ["forward", f1(p.forwardMs), perImage(p.forwardMs)],
          ["backward", f1(p.backwardMs), perImage(p.backwardMs)],
          ...kinds.map(([k, v]) => [`- ${k}`, f1(v), perImage(v)]),
          ...(kinds.length < Object.keys(p.backwardByKind).length
            ? [["- other backward ops", f1(rest), perImage(rest)]]
            : []),
          ["AdamW step, with the repack", f1(p.optimizerMs), perImage(p.optimizerMs)],
          ["- of which the repack kernels", f1(p.repackMs), perImage(p.repackMs)],
          ["zeroGrad", f1(p.zeroGradMs), perImage(p.zeroGradMs)],
        ],
      ),
      "",
      wrapParagraph(
        `Costliest backward operations: ${
          p.backwardTop.slice(0, 5).map((op) => `\`${op.name}\` ${op.kind} ${f1(op.ms)} ms`).join(
            ", ",
          )
        }. The profile runs last (load average ${section.loadAverage.end[0]} at its end), one ` +
          `operation at a time on the calling thread. Wasm memory after a step at batch ${section.batch}: ${
            f1(p.peakWasmBytes / 1e6)
          } MB; activations kept for backward: ${f1(p.activationsMBPerImage)} MB per image.`,
      ),
    );
  }
  return lines.join("\n");
}

/** Every block the record can render, by marker name. */
export function renderTables(record: BenchRecord): Map<string, string> {
  const out = new Map<string, string>();
  if (record.inference) {
    out.set("results", renderResults(record.inference));
    out.set("speed", renderSpeed(record.inference));
  }
  if (record.training) out.set("training", renderTraining(record.training));
  return out;
}

/**
 * Replaces each `<!-- tables:NAME -->` ... `<!-- /tables:NAME -->` block of
 * `readme` with `tables.get(NAME)`.
 *
 * @throws {Error} When a block has no rendering, a rendering has no block, or
 * a marker is unpaired.
 *
 * @example
 * ```ts
 * import { updateReadme } from "./readme_tables.ts";
 * const readme = "# T\n\n<!-- tables:x -->\n\nold\n\n<!-- /tables:x -->\n";
 * console.log(updateReadme(readme, new Map([["x", "new"]])));
 * ```
 */
export function updateReadme(readme: string, tables: ReadonlyMap<string, string>): string {
  const seen = new Set<string>();
  const out = readme.replace(
    /<!-- tables:([a-z]+) -->\n[\s\S]*?<!-- \/tables:([a-z]+) -->/g,
    (_, open: string, close: string) => {
      if (open !== close) throw new Error(`README block "${open}" is closed as "${close}"`);
      const body = tables.get(open);
      if (body === undefined) {
        throw new Error(`README block "${open}" has nothing to render in the record`);
      }
      seen.add(open);
      return `<!-- tables:${open} -->\n\n${body}\n\n<!-- /tables:${open} -->`;
    },
  );
  for (const name of tables.keys()) {
    if (!seen.has(name)) {
      throw new Error(
        `README has no "<!-- tables:${name} -->" ... "<!-- /tables:${name} -->" block`,
      );
    }
  }
  const stray = out.match(/<!-- \/?tables:[a-z]+ -->/g)?.length ?? 0;
  if (stray !== 2 * seen.size) throw new Error("README has an unpaired tables marker");
  return out;
}

/** The committed record and README. */
export const RECORD_URL: URL = new URL("../bench/results/latest.json", import.meta.url);
/** The README the tables go into. */
export const README_URL: URL = new URL("../README.md", import.meta.url);

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const record = JSON.parse(await Deno.readTextFile(RECORD_URL)) as BenchRecord;
  const readme = await Deno.readTextFile(README_URL);
  const updated = updateReadme(readme, renderTables(record));
  if (check) {
    if (updated !== readme) {
      console.error(
        "README.md's tables differ from bench/results/latest.json: run " +
          "deno run --allow-read --allow-write tools/readme_tables.ts",
      );
      Deno.exit(1);
    }
  } else if (updated !== readme) {
    await Deno.writeTextFile(README_URL, updated);
    console.log("README.md: tables rewritten from bench/results/latest.json");
  } else {
    console.log("README.md: tables already match bench/results/latest.json");
  }
}
