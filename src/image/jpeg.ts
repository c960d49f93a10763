/**
 * JPEG reading: the marker scan that finds the frame size and EXIF
 * orientation without decoding, and the decoding itself (jpeg-js).
 *
 * @module
 */

import jpeg from "npm:jpeg-js@0.4.4";
import { ImageError } from "../errors.ts";
import { readExifOrientation } from "./orientation.ts";
import type { RgbImage } from "./pixels.ts";

/** What the JPEG headers declare, read before any pixel is decoded. */
export interface JpegHeader {
  /** Width in pixels, from the frame header (SOF). */
  readonly width: number;
  /** Height in pixels, from the frame header (SOF). */
  readonly height: number;
  /** EXIF orientation 1 to 8 from the first Exif APP1 segment, 1 when absent. */
  readonly orientation: number;
}

const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"

/**
 * Scans the marker segments of a JPEG up to the first scan (SOS) for the
 * frame size and the EXIF orientation.
 *
 * @param bytes The JPEG file, starting with the SOI marker.
 * @returns The declared size and orientation.
 * @throws {ImageError} When a segment is truncated or no frame header precedes the image data.
 *
 * @example
 * ```ts
 * import { readJpegHeader } from "./jpeg.ts";
 * const bytes = await Deno.readFile("assets/chelsea.jpg");
 * console.log(readJpegHeader(bytes)); // { width: 451, height: 300, orientation: 1 }
 * ```
 */
export function readJpegHeader(bytes: Uint8Array): JpegHeader {
  let orientation = 0;
  for (let offset = 2; offset + 4 <= bytes.length;) {
    if (bytes[offset] !== 0xff) {
      throw new ImageError(`Malformed JPEG: expected a marker at byte ${offset}`);
    }
    const marker = bytes[offset + 1];
    if (marker === 0xff || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      offset += marker === 0xff ? 1 : 2; // fill byte or a marker without a segment
      continue;
    }
    if (marker === 0xda || marker === 0xd9) break;
    const start = offset + 4;
    const end = offset + 2 + ((bytes[offset + 2] << 8) | bytes[offset + 3]);
    if (end < start || end > bytes.length) {
      throw new ImageError(
        `Truncated JPEG: segment 0xff${marker.toString(16)} at byte ${offset} ends past the file`,
      );
    }
    if (marker === 0xe1 && orientation === 0 && EXIF_ID.every((b, i) => bytes[start + i] === b)) {
      orientation = readExifOrientation(bytes.subarray(start + 6, end));
    }
    if (isFrameHeader(marker) && end - start >= 5) {
      const height = (bytes[start + 1] << 8) | bytes[start + 2];
      const width = (bytes[start + 3] << 8) | bytes[start + 4];
      return { width, height, orientation: orientation || 1 };
    }
    offset = end;
  }
  throw new ImageError(
    "Truncated or malformed JPEG: expected a frame header (SOF) before the image data",
  );
}

/**
 * Decodes a JPEG (baseline or progressive, greyscale or colour) to 8-bit RGB,
 * as stored (no EXIF orientation applied).
 *
 * @param bytes The JPEG file.
 * @param maxPixels Pixel limit passed on to jpeg-js's own size and memory guards.
 * @returns The decoded image.
 * @throws {ImageError} When the data is corrupt, truncated or unsupported.
 *
 * @example
 * ```ts
 * import { decodeJpeg } from "./jpeg.ts";
 * const image = decodeJpeg(await Deno.readFile("assets/chelsea.jpg"), 64_000_000);
 * console.log(image.width, image.height); // 451 300
 * ```
 */
export function decodeJpeg(bytes: Uint8Array, maxPixels: number): RgbImage {
  try {
    const { data, width, height } = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: maxPixels / 1e6,
      // Coefficient blocks, component lines and output take about 20 bytes a pixel.
      maxMemoryUsageInMB: Math.ceil((maxPixels * 24) / 2 ** 20),
    });
    return { data, width, height };
  } catch (error) {
    throw new ImageError(
      `Cannot decode JPEG: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** SOF0-SOF15 except DHT (0xc4), JPG (0xc8) and DAC (0xcc). */
function isFrameHeader(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
    marker !== 0xcc;
}
