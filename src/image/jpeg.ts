/**
 * JPEG reading: the marker scan that finds the frame size and EXIF
 * orientation without decoding, and the decoding itself, bit-exact with
 * libjpeg-turbo as Pillow uses it ({@link ./jpeg/decoder.ts}).
 *
 * @module
 */

import { ImageError } from "../errors.ts";
import { decodeJpegPixels, type JpegPixels, type JpegRegion } from "./jpeg/decoder.ts";
import { nextMarker } from "./jpeg/entropy.ts";
import { applyOrientation, readExifOrientation } from "./orientation.ts";
import { type DecodedImage, interleavedToRgb, type RgbImage, rgbOf } from "./pixels.ts";

/** What the JPEG headers declare, read before any pixel is decoded. */
export interface JpegHeader {
  /** Width in pixels, from the frame header (SOF). */
  readonly width: number;
  /** Height in pixels, from the frame header (SOF). */
  readonly height: number;
  /**
   * EXIF orientation 1 to 8 from the first Exif APP1 segment before the first scan, 1 when
   * absent or malformed.
   */
  readonly orientation: number;
}

const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0]; // "Exif\0", as Pillow's APP handler matches it

/**
 * Scans the marker segments of a JPEG up to the first scan (SOS) for the
 * frame size and the EXIF orientation: the first frame header's size (the
 * decoder refuses a second) and the first Exif APP1 segment's orientation,
 * before or after the frame header, as Pillow reads them.
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
  let size: { width: number; height: number } | undefined;
  for (let at = 2; at + 4 <= bytes.length;) {
    // The next marker as the decoder and libjpeg's next_marker find it: bytes other than a
    // marker before it (extraneous data, libjpeg's JWRN_EXTRANEOUS_DATA warning; Pillow skips
    // them too), fill bytes and stuffed zeros are passed over.
    const { code: marker, pos: offset } = nextMarker(bytes, at);
    if (marker < 0 || offset + 4 > bytes.length) break;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at = offset + 2; // a marker without a segment
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
    if (
      marker === 0xe1 && orientation === 0 && end - start >= EXIF_ID.length &&
      EXIF_ID.every((b, i) => bytes[start + i] === b)
    ) {
      // Pillow keeps the first APP1 that starts "Exif\0" (before or after the frame header) and
      // finds no orientation in it unless "Exif\0\0" precedes its TIFF data.
      orientation = end - start >= 6 && bytes[start + 5] === 0
        ? readExifOrientation(bytes.subarray(start + 6, end))
        : 1;
    }
    if (isFrameHeader(marker) && end - start >= 5 && !size) {
      const height = (bytes[start + 1] << 8) | bytes[start + 2];
      const width = (bytes[start + 3] << 8) | bytes[start + 4];
      size = { width, height };
    }
    at = end;
  }
  if (size) return { ...size, orientation: orientation || 1 };
  throw new ImageError(
    "Truncated or malformed JPEG: expected a frame header (SOF) before the image data",
  );
}

/**
 * Decodes a JPEG (baseline or progressive; greyscale, YCbCr, RGB, CMYK or
 * YCCK) to 8-bit RGB, as stored (no EXIF orientation applied), with the bytes
 * Pillow gives for `Image.open(...).convert("RGB")`: libjpeg-turbo's pixels
 * (islow IDCT, fancy upsampling, fixed-point YCbCr), grey replicated, and
 * Adobe CMYK converted with Pillow's `cmyk2rgb` (`255 - k` scaled by
 * `255 - c`, no colour management).
 *
 * @param bytes The JPEG file.
 * @param maxPixels Largest `width * height` accepted; the decoder's memory
 * budget is 40 bytes per allowed pixel.
 * @param region The pixels the caller will read; the others may be left unset.
 * @param inPlace The pixels may be a view of the kernels' memory, valid until the next image
 * kernel call (see `JpegDecodeOptions.inPlace`).
 * @param frameSize The size {@linkcode readJpegHeader} read (see `JpegDecodeOptions.frameSize`).
 * @returns The decoded image.
 * @throws {ImageError} When the data is corrupt, truncated, unsupported or over budget.
 *
 * @example
 * ```ts
 * import { decodeJpeg } from "./jpeg.ts";
 * const image = decodeJpeg(await Deno.readFile("assets/chelsea.jpg"), 64_000_000);
 * console.log(image.width, image.height); // 451 300
 * ```
 */
export function decodeJpeg(
  bytes: Uint8Array,
  maxPixels: number,
  region?: JpegRegion,
  inPlace = false,
  frameSize?: { readonly width: number; readonly height: number },
): RgbImage {
  return jpegPixelsToRgb(
    decodeJpegPixels(bytes, { maxPixels, rgb: true, region, inPlace, frameSize }),
  );
}

/**
 * Pillow's `convert("RGB")` of decoded JPEG samples: "L" replicated, "RGB"
 * as is, "CMYK" through `cmyk2rgb` (`nk - nk * c / 255` with `nk = 255 - k`,
 * in Pillow's rounding).
 *
 * @param pixels Samples from {@linkcode decodeJpegPixels}.
 * @returns The RGB image.
 *
 * @example
 * ```ts
 * import { jpegPixelsToRgb } from "./jpeg.ts";
 * const cmyk = { data: new Uint8Array([0, 255, 128, 55]), width: 1, height: 1, channels: 4 as const };
 * console.log(jpegPixelsToRgb(cmyk).data); // Uint8Array(3) [ 200, 0, 100 ]
 * ```
 */
export function jpegPixelsToRgb(pixels: JpegPixels): RgbImage {
  const { data, width, height, channels } = pixels;
  if (channels !== 4) return { data: interleavedToRgb(data, channels), width, height };
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < data.length; i += 4, o += 3) {
    const nk = 255 - data[i + 3];
    for (let c = 0; c < 3; c++) {
      const t = data[i + c] * nk + 128;
      out[o + c] = nk - (((t >> 8) + t) >> 8); // never negative
    }
  }
  return { data: out, width, height };
}

/**
 * {@linkcode jpegPixelsToRgb}, except that "L" stays one channel (a
 * `GreyImage`, for a caller that replicates it later).
 *
 * @param pixels Samples from {@linkcode decodeJpegPixels}.
 * @returns The grey or RGB image.
 *
 * @example
 * ```ts
 * import { jpegPixelsToSamples } from "./jpeg.ts";
 * const grey = { data: new Uint8Array([9]), width: 1, height: 1, channels: 1 as const };
 * console.log(jpegPixelsToSamples(grey).data); // Uint8Array(1) [9]
 * ```
 */
export function jpegPixelsToSamples(pixels: JpegPixels): DecodedImage {
  const { data, width, height, channels } = pixels;
  return channels === 1 ? { data, width, height, channels } : jpegPixelsToRgb(pixels);
}

export {
  decodeJpegPixels,
  type JpegDecodeOptions,
  type JpegPixels,
  type JpegRegion,
} from "./jpeg/decoder.ts";

/** Options of {@linkcode decodeJpegDraft}. */
export interface JpegDraftOptions {
  /** The shorter side must stay at least this long (torchvision's `Resize` size). @default {256} */
  minSide?: number;
  /** Largest `width * height` accepted (of the full-size frame). @default {64_000_000} */
  maxPixels?: number;
  /** Turn the image upright by its EXIF orientation. @default {true} */
  exifOrientation?: boolean;
}

/**
 * The opt-in fast path for large photos: decodes at the smallest of 1/1,
 * 1/2, 1/4, 1/8 scale that keeps the shorter side at least `minSide` pixels,
 * in the DCT domain (Pillow's `draft()`; the pixels equal Pillow's at that
 * scale), then converts to upright RGB. Feeding the result to `preprocess`
 * is several times faster on multi-megapixel photos, but it is not
 * torchvision's transform of the full-size image: the resize starts from a
 * different image.
 *
 * @param bytes The JPEG file.
 * @param options The size to keep, the pixel limit and EXIF handling.
 * @returns The upright RGB image at the chosen scale.
 * @throws {ImageError} When the data is corrupt, truncated, unsupported or over budget.
 *
 * @example
 * ```ts
 * import { decodeJpegDraft } from "./jpeg.ts";
 * const image = decodeJpegDraft(await Deno.readFile("assets/chelsea.jpg"), { minSide: 100 });
 * console.log(image.width, image.height); // 226 150
 * ```
 */
export function decodeJpegDraft(bytes: Uint8Array, options: JpegDraftOptions = {}): RgbImage {
  return rgbOf(decodeJpegDraftReading(bytes, options));
}

/**
 * What a caller inside the library asks of a decode beyond its options: `reads`, the region it
 * will read of a `width` x `height` image (the rest may be left unset); `inPlace`, pixels that may
 * be a view of the kernels' memory until the next image kernel call; `grey`, a greyscale JPEG as one
 * channel (a `GreyImage`), not replicated to RGB.
 */
export interface DecodeHow {
  reads?: (width: number, height: number) => JpegRegion;
  inPlace?: boolean;
  grey?: boolean;
}

/**
 * {@linkcode decodeJpegDraft} for a caller that reads only part of the
 * result (the evaluation transform reads its crop's part): `reads` gives,
 * for an image stored upright (or with `exifOrientation` off), the pixels
 * it will read of the `width` x `height` image decoded; the others may be
 * left unset.
 *
 * @param bytes The JPEG file.
 * @param options As {@linkcode decodeJpegDraft}'s.
 * @param how `reads`: the region read, from the decoded size; `inPlace`: the pixels may be a
 * view of the kernels' memory, valid until the next image kernel call (see
 * `JpegDecodeOptions.inPlace`); `grey`: a greyscale JPEG comes out as one channel (a
 * `GreyImage`), not replicated to RGB.
 * @returns The upright image at the chosen scale: RGB, or grey with `grey`.
 * @throws {ImageError} As {@linkcode decodeJpegDraft}.
 *
 * @example
 * ```ts
 * import { decodeJpegDraftReading } from "./jpeg.ts";
 * const bytes = await Deno.readFile("assets/chelsea.jpg");
 * const image = decodeJpegDraftReading(bytes, { minSide: 100 }, {
 *   reads: (w, h) => ({ left: 0, top: 0, right: w >> 1, bottom: h }),
 * });
 * console.log(image.width, image.height); // 226 150
 * ```
 */
export function decodeJpegDraftReading(
  bytes: Uint8Array,
  options: JpegDraftOptions,
  how: DecodeHow = {},
): DecodedImage {
  const { minSide = 256, maxPixels = 64_000_000, exifOrientation = true } = options;
  const { reads, inPlace = false, grey = false } = how;
  const header = readJpegHeader(bytes);
  const short = Math.min(header.width, header.height);
  const scale = ([8, 4, 2] as const).find((s) => Math.floor(short / s) >= minSide) ?? 1;
  const upright = !exifOrientation || header.orientation === 1;
  const region = reads && upright
    ? reads(Math.ceil(header.width / scale), Math.ceil(header.height / scale))
    : undefined;
  const image = jpegPixelsToSamples(
    decodeJpegPixels(bytes, {
      maxPixels,
      scale,
      rgb: !grey,
      region,
      inPlace,
      frameSize: header,
    }),
  );
  return exifOrientation ? applyOrientation(image, header.orientation) : image;
}

/** SOF0-SOF15 except DHT (0xc4), JPG (0xc8) and DAC (0xcc). */
function isFrameHeader(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
    marker !== 0xcc;
}
