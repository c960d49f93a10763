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
  ours: boolean;
  threads: number;
}

const rows = new Map<string, Row>();
const notes: string[] = [];

/**
 * Records one timed call of `name` (on `threads` threads) in `group` that
 * processed `images` images; each peer is compared with our row of the same
 * thread count.
 */
export function record(
  group: string,
  name: string,
  images: number,
  ms: number,
  options: { ours?: boolean; threads?: number } = {},
): void {
  const key = `${group}\u0000${name}`;
  let row = rows.get(key);
  if (!row) {
    row = {
      group,
      name,
      images,
      samples: [],
      ours: options.ours ?? false,
      threads: options.threads ?? 1,
    };
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

/** Prints the table; `gflopPerImage` converts image rates into GFLOP/s. */
export function printReport(gflopPerImage: number): void {
  const groups = [...new Set([...rows.values()].map((r) => r.group))];
  const lines = [
    "",
    `GoogLeNet, ${
      gflopPerImage.toFixed(3)
    } GFLOP per 224x224 image (counted from the layer shapes)`,
    "| group | runtime | ms / image | images / s | GFLOP/s | our time / theirs (same threads) |",
    "|---|---|---:|---:|---:|---:|",
  ];
  for (const group of groups) {
    const members = [...rows.values()].filter((r) => r.group === group && r.samples.length);
    const oursMs = (threads: number) => {
      const ours = members.find((r) => r.ours && r.threads === threads);
      return ours ? median(ours.samples) / ours.images : NaN;
    };
    for (const r of members) {
      const ms = median(r.samples) / r.images;
      const ratio = r.ours ? "" : (oursMs(r.threads) / ms).toFixed(2);
      lines.push(
        `| ${group} | ${r.name} | ${ms.toFixed(1)} | ${(1000 / ms).toFixed(1)} | ` +
          `${(gflopPerImage * 1000 / ms).toFixed(1)} | ${ratio} |`,
      );
    }
  }
  console.log([...lines, "", ...notes].join("\n"));
}
