/**
 * EXIF orientation: reading the Orientation tag of a JPEG's APP1 segment and
 * turning the decoded pixels upright like Pillow's `ImageOps.exif_transpose`.
 *
 * @module
 */

import { channelsOf, type DecodedImage } from "./pixels.ts";

/**
 * Bytes per value of each TIFF field type Pillow reads as a number (Pillow
 * 9.4's `TiffImagePlugin` loaders): SHORT, LONG, RATIONAL, SBYTE, SSHORT,
 * SLONG, SRATIONAL, FLOAT, DOUBLE, IFD, LONG8. BYTE, ASCII and UNDEFINED
 * values are bytes or text there, which no orientation equals.
 */
const NUMERIC_SIZES: Record<number, number> = {
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
  13: 4,
  16: 8,
};
/** Every type Pillow 9.4 reads (others: the entry is skipped). */
const KNOWN_TYPES = new Set([1, 2, 7, ...Object.keys(NUMERIC_SIZES).map(Number)]);

/**
 * Reads the EXIF Orientation tag (0x0112) from a TIFF structure (the payload
 * of a JPEG APP1 segment after `"Exif\0\0"`) as Pillow's `getexif()` does:
 * IFD0's last Orientation entry of a type Pillow reads whose data lies in the
 * structure wins; its first value counts, read by its type (a LONG, a
 * RATIONAL 12/2 or a DOUBLE 6.0 is 6; BYTE, ASCII or UNDEFINED data is none).
 *
 * @param tiff The TIFF header and IFDs.
 * @returns The orientation 1 to 8, or 1 when the tag is missing, malformed or another value.
 *
 * @example
 * ```ts
 * import { readExifOrientation } from "./orientation.ts";
 * // "MM", 42, IFD0 at 8, one entry: tag 0x0112, SHORT, count 1, value 6.
 * const tiff = new Uint8Array([
 *   0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
 * ]);
 * console.log(readExifOrientation(tiff)); // 6
 * ```
 */
export function readExifOrientation(tiff: Uint8Array): number {
  if (tiff.length < 8) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const order = view.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return 1;
  const little = order === 0x4949;
  if (view.getUint16(2, little) !== 42) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > tiff.length) return 1;
  const entries = view.getUint16(ifd, little);
  let orientation = NaN;
  // Pillow reads the entries up to a truncated one, a later entry of a tag replacing an earlier.
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > tiff.length) break;
    if (view.getUint16(entry, little) !== 0x0112) continue;
    const type = view.getUint16(entry + 2, little);
    const count = view.getUint32(entry + 4, little);
    if (!KNOWN_TYPES.has(type)) continue;
    const size = NUMERIC_SIZES[type] ?? 1;
    // Data of more than 4 bytes lies at an offset; past the end, Pillow skips the entry.
    const at = size * count > 4 ? view.getUint32(entry + 8, little) : entry + 8;
    if (at + size * count > tiff.length) continue;
    orientation = count === 0 || NUMERIC_SIZES[type] === undefined
      ? NaN
      : numericValue(view, at, type, little);
  }
  return Number.isInteger(orientation) && orientation >= 1 && orientation <= 8 ? orientation : 1;
}

/** The TIFF value of numeric `type` at `at`. */
function numericValue(view: DataView, at: number, type: number, little: boolean): number {
  switch (type) {
    case 3:
      return view.getUint16(at, little);
    case 4:
    case 13:
      return view.getUint32(at, little);
    case 5:
      return view.getUint32(at, little) / view.getUint32(at + 4, little);
    case 6:
      return view.getInt8(at);
    case 8:
      return view.getInt16(at, little);
    case 9:
      return view.getInt32(at, little);
    case 10:
      return view.getInt32(at, little) / view.getInt32(at + 4, little);
    case 11:
      return view.getFloat32(at, little);
    case 12:
      return view.getFloat64(at, little);
    default: // 16, LONG8
      return Number(view.getBigUint64(at, little));
  }
}

/**
 * Turns an image upright according to its EXIF orientation, with the same
 * flips and rotations as Pillow's `ImageOps.exif_transpose` (2: mirror,
 * 3: rotate 180, 4: flip, 5: transpose, 6: rotate 90 clockwise,
 * 7: transverse, 8: rotate 90 counter-clockwise).
 *
 * @param image The image as stored, RGB or grey.
 * @param orientation The EXIF orientation, 1 to 8.
 * @returns The upright image, RGB or grey as `image` (`image` itself for orientation 1).
 *
 * @example
 * ```ts
 * import { applyOrientation } from "./orientation.ts";
 * const image = { data: new Uint8Array([1, 1, 1, 2, 2, 2]), width: 2, height: 1 };
 * const upright = applyOrientation(image, 6);
 * console.log(upright.width, upright.height, upright.data); // 1 2 Uint8Array(6) [1, 1, 1, 2, 2, 2]
 * ```
 */
export function applyOrientation(image: DecodedImage, orientation: number): DecodedImage {
  if (orientation < 2 || orientation > 8) return image;
  const { data, width: w, height: h } = image;
  const channels = channelsOf(image);
  const swap = orientation >= 5;
  const width = swap ? h : w;
  const height = swap ? w : h;
  const [origin, stepX, stepY] = steps(orientation, w, h);
  const out = new Uint8Array(data.length);
  for (let y = 0, o = 0; y < height; y++) {
    const row = (origin + y * stepY) * channels;
    for (let x = 0, s = row; x < width; x++, s += stepX * channels) {
      for (let c = 0; c < channels; c++, o++) out[o] = data[s + c];
    }
  }
  return channels === 1 ? { data: out, width, height, channels } : { data: out, width, height };
}

/**
 * Where upright pixel (x, y) lies in the stored `w`x`h` image, as a pixel
 * index `origin + x * stepX + y * stepY`.
 */
function steps(orientation: number, w: number, h: number): [number, number, number] {
  const last = (h - 1) * w;
  switch (orientation) {
    case 2:
      return [w - 1, -1, w];
    case 3:
      return [last + w - 1, -1, -w];
    case 4:
      return [last, 1, -w];
    case 5:
      return [0, w, 1];
    case 6:
      return [last, -w, 1];
    case 7:
      return [last + w - 1, -w, -1];
    default:
      return [w - 1, w, -1];
  }
}
