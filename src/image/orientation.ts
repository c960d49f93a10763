/**
 * EXIF orientation: reading the Orientation tag of a JPEG's APP1 segment and
 * turning the decoded pixels upright like Pillow's `ImageOps.exif_transpose`.
 *
 * @module
 */

import type { RgbImage } from "./pixels.ts";

/**
 * Reads the EXIF Orientation tag (0x0112) from a TIFF structure (the payload
 * of a JPEG APP1 segment after `"Exif\0\0"`).
 *
 * @param tiff The TIFF header and IFDs.
 * @returns The orientation 1 to 8, or 1 when the tag is missing or malformed.
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
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > tiff.length) return 1;
    if (view.getUint16(entry, little) === 0x0112) {
      const value = view.getUint16(entry + 8, little);
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}

/**
 * Turns an image upright according to its EXIF orientation, with the same
 * flips and rotations as Pillow's `ImageOps.exif_transpose` (2: mirror,
 * 3: rotate 180, 4: flip, 5: transpose, 6: rotate 90 clockwise,
 * 7: transverse, 8: rotate 90 counter-clockwise).
 *
 * @param image The image as stored.
 * @param orientation The EXIF orientation, 1 to 8.
 * @returns The upright image (`image` itself for orientation 1).
 *
 * @example
 * ```ts
 * import { applyOrientation } from "./orientation.ts";
 * const image = { data: new Uint8Array([1, 1, 1, 2, 2, 2]), width: 2, height: 1 };
 * const upright = applyOrientation(image, 6);
 * console.log(upright.width, upright.height, upright.data); // 1 2 Uint8Array(6) [1, 1, 1, 2, 2, 2]
 * ```
 */
export function applyOrientation(image: RgbImage, orientation: number): RgbImage {
  if (orientation < 2 || orientation > 8) return image;
  const { data, width: w, height: h } = image;
  const swap = orientation >= 5;
  const width = swap ? h : w;
  const height = swap ? w : h;
  const [origin, stepX, stepY] = steps(orientation, w, h);
  const out = new Uint8Array(data.length);
  for (let y = 0, o = 0; y < height; y++) {
    for (let x = 0, s = (origin + y * stepY) * 3; x < width; x++, s += stepX * 3, o += 3) {
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { data: out, width, height };
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
