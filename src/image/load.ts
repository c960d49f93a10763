/**
 * Image sources: encoded bytes, a file path, a URL or decoded pixels, all
 * turned into an upright 8-bit RGB image.
 *
 * @module
 */

import { ImageError } from "../errors.ts";
import { decodeImage, type DecodeOptions } from "./decode.ts";
import { type PixelData, type RgbImage, toRgb } from "./pixels.ts";

/**
 * Anything {@linkcode loadImage} accepts: PNG/JPEG bytes, a file path, an
 * `http:`, `https:` or `file:` URL (as a `URL` or a string), or decoded pixels.
 */
export type ImageSource = Uint8Array | ArrayBuffer | string | URL | PixelData;

/**
 * Reads, fetches or decodes `source` into an upright 8-bit RGB image.
 *
 * @param source Encoded bytes, a path, a URL or decoded pixels.
 * @param options Decoding options (pixel limit, EXIF handling).
 * @returns The RGB image.
 * @throws {ImageError} When the image cannot be fetched or decoded or is too large.
 * @throws {ShapeError} When decoded pixels have inconsistent dimensions.
 *
 * @example
 * ```ts
 * import { loadImage } from "./load.ts";
 * const image = await loadImage("assets/chelsea.jpg");
 * console.log(image.width, image.height); // 451 300
 * ```
 */
export async function loadImage(source: ImageSource, options?: DecodeOptions): Promise<RgbImage> {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    return decodeImage(source, options);
  }
  if (typeof source === "string" || source instanceof URL) {
    return decodeImage(await readSource(source), options);
  }
  return toRgb(source);
}

/** The bytes at a path or `file:` URL (read) or an `http(s):` URL (fetched). */
async function readSource(source: string | URL): Promise<Uint8Array> {
  const remote = /^https?:/i.test(String(source));
  try {
    if (!remote) {
      return await Deno.readFile(/^file:/i.test(String(source)) ? new URL(source) : source);
    }
    const response = await fetch(source);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`expected HTTP status 200, got ${response.status}`);
    }
    return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    throw new ImageError(
      `Cannot ${remote ? "fetch" : "read"} image ${source}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}
