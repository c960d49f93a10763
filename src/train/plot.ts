/**
 * Pictures of a training run as standalone SVG text: a confusion matrix and
 * a loss curve. No dependencies; open the files in a browser.
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/** Escapes text for SVG. */
function escape(text: string): string {
  return text.replace(
    /[&<>"]/g,
    (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot" }[c]};`,
  );
}

/**
 * A confusion matrix as SVG: rows are true classes, columns predicted ones,
 * each cell shaded by its share of the row and labelled with its count.
 *
 * @param matrix `matrix[true][predicted]` counts, square.
 * @param classes One name per row.
 * @param title A title above the picture.
 * @returns The SVG document.
 * @throws {OptionError} When the matrix is not square or the names do not match it.
 *
 * @example
 * ```ts
 * import { confusionMatrixSvg } from "./plot.ts";
 * const svg = confusionMatrixSvg([[5, 1], [2, 7]], ["cat", "dog"], "Validation");
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function confusionMatrixSvg(
  matrix: readonly (readonly number[])[],
  classes: readonly string[],
  title = "Confusion matrix",
): string {
  const n = classes.length;
  if (matrix.length !== n || matrix.some((row) => row.length !== n)) {
    throw new OptionError(`Expected a ${n}x${n} matrix for ${n} class names`);
  }
  const cell = 44, left = 150, top = 60, labelRoom = 130;
  const width = left + n * cell + 20, height = top + n * cell + labelRoom;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16">${escape(title)}</text>`,
    `<text x="${left + (n * cell) / 2}" y="${
      height - 8
    }" text-anchor="middle">predicted class</text>`,
    `<text transform="translate(14 ${
      top + (n * cell) / 2
    }) rotate(-90)" text-anchor="middle">true class</text>`,
  ];
  for (let i = 0; i < n; i++) {
    const total = matrix[i].reduce((a, b) => a + b, 0);
    const y = top + i * cell;
    parts.push(
      `<text x="${left - 6}" y="${y + cell / 2 + 4}" text-anchor="end">${
        escape(classes[i])
      }</text>`,
    );
    for (let j = 0; j < n; j++) {
      const share = total ? matrix[i][j] / total : 0;
      const x = left + j * cell;
      const shade = Math.round(255 * (1 - share));
      const fill = i === j
        ? `rgb(${shade},${Math.round(255 - 120 * share)},${shade})`
        : `rgb(255,${shade},${shade})`;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#ccc"/>`,
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" fill="${
          share > 0.6 ? "white" : "black"
        }">${matrix[i][j]}</text>`,
      );
    }
    const x = left + i * cell + cell / 2, y0 = top + n * cell + 8;
    parts.push(
      `<text transform="translate(${x + 4} ${y0}) rotate(60)" text-anchor="start">${
        escape(classes[i])
      }</text>`,
    );
  }
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/** A named series of a {@linkcode lossCurveSvg}. */
export interface CurveSeries {
  /** Legend text. */
  name: string;
  /** `[x, y]` points, in x order. */
  points: readonly (readonly [number, number])[];
  /** Stroke colour. */
  color: string;
}

/** Options of {@linkcode lossCurveSvg}. */
export interface LossCurveOptions {
  /** Title above the plot. */
  title?: string;
  /** Label of the x axis. @default {"step"} */
  xLabel?: string;
  /** Label of the y axis. @default {"loss"} */
  yLabel?: string;
  /** A logarithmic y axis (non-positive values left out), for losses that span decades. @default {false} */
  logY?: boolean;
}

/**
 * Line plots sharing axes (a training loss per step, a validation loss per
 * epoch...) as SVG, with ticks and a legend.
 *
 * @param series The curves.
 * @param options Title and axis labels.
 * @returns The SVG document.
 * @throws {OptionError} When no series has a finite point.
 *
 * @example
 * ```ts
 * import { lossCurveSvg } from "./plot.ts";
 * const svg = lossCurveSvg([{ name: "train", color: "#1f77b4", points: [[1, 2.3], [2, 1.9], [3, 1.2]] }]);
 * console.log(svg.includes("polyline")); // true
 * ```
 */
export function lossCurveSvg(
  series: readonly CurveSeries[],
  options: LossCurveOptions = {},
): string {
  const { title = "Training loss", xLabel = "step", yLabel = "loss", logY = false } = options;
  const valid = ([x, y]: readonly [number, number]) =>
    isFinite(x) && isFinite(y) && (!logY || y > 0);
  const all = series.flatMap((s) => s.points).filter(valid);
  if (all.length === 0) throw new OptionError("Expected at least one finite point to plot");
  const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = logY
    ? [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))]
    : [Math.min(0, ...ys), Math.max(...ys)];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) y1 = y0 + 1;
  const width = 720, height = 420, left = 64, right = 20, top = 40, bottom = 56;
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const py = (value: number) => {
    const y = logY ? Math.log10(value) : value;
    return top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  };
  const base = logY ? 10 ** y0 : y0;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16">${escape(title)}</text>`,
    `<line x1="${left}" y1="${py(base)}" x2="${width - right}" y2="${py(base)}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="black"/>`,
    `<text x="${(left + width - right) / 2}" y="${height - 14}" text-anchor="middle">${
      escape(xLabel)
    }</text>`,
    `<text transform="translate(16 ${
      (top + height - bottom) / 2
    }) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
  ];
  for (
    const [value, at, horizontal] of [
      ...niceTicks(x0, x1).map((v) => [v, px(v), false] as const),
      ...(logY ? logTicks(y0, y1) : niceTicks(y0, y1)).map((v) => [v, py(v), true] as const),
    ]
  ) {
    const label = escape(String(Number(value.toPrecision(6))));
    parts.push(
      horizontal
        ? `<line x1="${left}" y1="${at}" x2="${width - right}" y2="${at}" stroke="#eee"/>` +
          `<text x="${left - 6}" y="${at + 4}" text-anchor="end">${label}</text>`
        : `<line x1="${at}" y1="${py(base)}" x2="${at}" y2="${py(base) + 5}" stroke="black"/>` +
          `<text x="${at}" y="${py(base) + 18}" text-anchor="middle">${label}</text>`,
    );
  }
  series.forEach((s, i) => {
    const points = s.points.filter(valid);
    const coords = points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    parts.push(
      `<polyline fill="none" stroke="${escape(s.color)}" stroke-width="1.5" points="${coords}"/>`,
    );
    if (points.length < 30) {
      for (const [x, y] of points) {
        parts.push(
          `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${
            escape(s.color)
          }"/>`,
        );
      }
    }
    const ly = top + 8 + 18 * i;
    parts.push(
      `<line x1="${width - right - 150}" y1="${ly}" x2="${
        width - right - 126
      }" y2="${ly}" stroke="${escape(s.color)}" stroke-width="2"/>`,
      `<text x="${width - right - 120}" y="${ly + 4}">${escape(s.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/** About six round tick values covering [lo, hi]. */
function niceTicks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 6;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return ticks;
}

/** 1, 2 and 5 times each power of ten from 10^lo to 10^hi. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let k = lo; k <= hi; k++) {
    for (const m of k === hi ? [1] : [1, 2, 5]) ticks.push(m * 10 ** k);
  }
  return ticks;
}
