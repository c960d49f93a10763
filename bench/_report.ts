/**
 * Collects the timings of the bench functions and prints one table when the
 * run ends: ms per image, images/s, GFLOP/s and each runtime's time relative
 * to ours. `deno bench` prints its own per-bench lines; this adds the figures
 * it cannot know (image count, FLOPs, peak).
 *
 * @module
 */

/** One measured configuration. */
interface Row {
  group: string;
  name: string;
  images: number;
  samples: number[];
  /** Which of our configurations this is (`"ours"`, `"ours, prefer speed"`), or null for a peer. */
  ours: string | null;
  threads: number;
}

const rows = new Map<string, Row>();
const notes: string[] = [];

/**
 * Records one timed call of `name` (on `threads` threads) in `group` that
 * processed `images` images. `ours` labels one of our configurations (true:
 * `"ours"`); each peer is compared with each of our configurations of the
 * same thread count, one column per label.
 */
export function record(
  group: string,
  name: string,
  images: number,
  ms: number,
  options: { ours?: boolean | string; threads?: number } = {},
): void {
  const key = `${group}\u0000${name}`;
  let row = rows.get(key);
  if (!row) {
    const ours = options.ours === true ? "ours" : options.ours || null;
    row = { group, name, images, samples: [], ours, threads: options.threads ?? 1 };
    rows.set(key, row);
  }
  row.samples.push(ms);
}

/** Adds a line printed under the table. */
export function note(line: string): void {
  notes.push(line);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Every row measured so far, for the run's record (bench/_record.ts): the
 * median ms per image and the samples (ms per call).
 */
export function recordedRows(): {
  group: string;
  name: string;
  images: number;
  msPerImage: number;
  ours: string | null;
  threads: number;
  samples: number[];
}[] {
  return [...rows.values()].filter((r) => r.samples.length).map((r) => ({
    group: r.group,
    name: r.name,
    images: r.images,
    msPerImage: median(r.samples) / r.images,
    ours: r.ours,
    threads: r.threads,
    samples: r.samples,
  }));
}

/** The lines added with {@linkcode note} so far. */
export function recordedNotes(): string[] {
  return [...notes];
}

/** Prints the table; `gflopPerImage` converts image rates into GFLOP/s. */
export function printReport(gflopPerImage: number): void {
  const groups = [...new Set([...rows.values()].map((r) => r.group))];
  const labels = [...new Set([...rows.values()].flatMap((r) => r.ours ? [r.ours] : []))];
  const lines = [
    "",
    `GoogLeNet, ${
      gflopPerImage.toFixed(3)
    } GFLOP per 224x224 image (counted from the layer shapes)`,
    `| group | runtime | ms / image | images / s | GFLOP/s | ${
      labels.map((l) => `${l} / theirs (same threads)`).join(" | ")
    } |`,
    `|---|---|---:|---:|---:|${labels.map(() => "---:").join("|")}|`,
  ];
  for (const group of groups) {
    const members = [...rows.values()].filter((r) => r.group === group && r.samples.length);
    const oursMs = (label: string, threads: number) => {
      const ours = members.find((r) => r.ours === label && r.threads === threads);
      return ours ? median(ours.samples) / ours.images : NaN;
    };
    for (const r of members) {
      const ms = median(r.samples) / r.images;
      const ratios = labels.map((l) => {
        const ratio = oursMs(l, r.threads) / ms;
        return r.ours || Number.isNaN(ratio) ? "" : ratio.toFixed(2);
      });
      lines.push(
        `| ${group} | ${r.name} | ${ms.toFixed(1)} | ${(1000 / ms).toFixed(1)} | ` +
          `${(gflopPerImage * 1000 / ms).toFixed(1)} | ${ratios.join(" | ")} |`,
      );
    }
  }
  console.log([...lines, "", ...notes].join("\n"));
}
