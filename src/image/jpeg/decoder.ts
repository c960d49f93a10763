/**
 * A JPEG decoder that gives libjpeg-turbo's pixels as Pillow gets them
 * (`Image.open(...)` with libjpeg's defaults): baseline, extended sequential
 * and progressive Huffman coding, restart intervals, 8-bit samples, the
 * islow IDCT, fancy upsampling and libjpeg's colour conversions. Greyscale
 * comes out as one channel, YCbCr and RGB as RGB, Adobe CMYK and YCCK as
 * Pillow's (inverted) CMYK.
 *
 * Every allocation sized from header values is checked first: the pixel
 * count against `maxPixels`, the block count against the file's length (each
 * block costs at least one bit of entropy-coded data), and the total against
 * `maxBytes`. So is the time: a scan passes over every block of its
 * components whatever its data (a few bytes of end-of-band runs, or data that
 * ends at once, cost as much as a full scan), so the scans together may pass
 * over the frame's blocks at most {@linkcode MAX_PASSES} times.
 *
 * @module
 */

import { ImageError } from "../../errors.ts";
import { type ComponentPlane, upsampleRow, ycckToCmykRow, yccToRgbRow } from "./color.ts";
import {
  buildHuffmanTable,
  decodeScan,
  FAST_AC_BITS,
  fastAcPairs,
  type HuffmanTable,
  NATURAL_ORDER,
  nextMarker,
  type Scan,
  standardHuffmanTables,
} from "./entropy.ts";
import { idctIslow } from "./idct.ts";
import { idctScaled } from "./idct_scaled.ts";
import { type ImageKernels, kernelArena, markResident } from "../simd.ts";

/** Decoded JPEG samples, interleaved, in the mode Pillow opens the file in. */
export interface JpegPixels {
  /** `width * height * channels` samples, row by row. */
  readonly data: Uint8Array;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** 1 (Pillow's "L"), 3 ("RGB") or 4 ("CMYK", Adobe polarity as Pillow reads it). */
  readonly channels: 1 | 3 | 4;
}

/** Options of {@linkcode decodeJpegPixels}. */
export interface JpegDecodeOptions {
  /** Largest `width * height` accepted. @default {64_000_000} */
  maxPixels?: number;
  /**
   * Largest number of bytes the decoder may allocate for coefficients, sample
   * planes and output together, checked before allocating.
   *
   * @default {40 * maxPixels}
   */
  maxBytes?: number;
  /**
   * Run the IDCT, upsampling and colour conversion on the Wasm SIMD kernels
   * when the runtime can compile them (the TypeScript path gives the same
   * bytes, slower).
   *
   * @default {true}
   */
  simd?: boolean;
  /**
   * Decode at `1/scale` of the size (1, 2, 4 or 8) in the DCT domain, as
   * libjpeg's `scale_denom` and Pillow's `draft()` do: reduced IDCTs
   * (`jidctred.c`), chroma scaled less where that spares upsampling, fancy
   * upsampling except at 1/8. The output is `ceil(width / scale)` x
   * `ceil(height / scale)` and equals Pillow's after `draft("RGB", ...)`
   * chose the same scale; it is not the full-size decode made smaller, so a
   * model input made from it is not torchvision's. At 1/8, components made of
   * DC terms alone (luma, or all of a 4:4:4 file) have their progressive AC
   * scans skipped without decoding them.
   *
   * @default {1}
   */
  scale?: 1 | 2 | 4 | 8;
  /**
   * Greyscale comes out as RGB, each sample three times (Pillow's
   * `convert("RGB")` of "L"), made where the samples are made.
   *
   * @default {false}
   */
  rgb?: boolean;
  /**
   * Output pixels the caller will read (columns `left` to `right`, rows
   * `top` to `bottom`, exclusive, at the decoded scale): the Wasm path then
   * inverse-transforms and converts only what they need and leaves the rest
   * of `data` unspecified. The whole image by default.
   */
  region?: JpegRegion;
  /**
   * On the Wasm path, `data` is a view of the kernels' memory where the
   * samples were made, not a copy: valid only until the next image kernel
   * call (any decode, resize or normalisation), which may overwrite or detach
   * it. For a caller that uses the pixels at once, synchronously (the
   * evaluation transform, whose resize reads them where they are): it saves
   * copying out every row made (several MB for a large photo).
   *
   * @default {false}
   */
  inPlace?: boolean;
  /**
   * The frame size the caller expects (what `readJpegHeader` read, from which
   * it computed `region`): a frame header of another size is refused before
   * anything is allocated, since the header scan and the decoder then read
   * different segments and the region would not be the caller's.
   */
  frameSize?: { readonly width: number; readonly height: number };
}

/** A rectangle of output pixels: columns `left` to `right`, rows `top` to `bottom` (exclusive). */
export interface JpegRegion {
  /** First column. */
  readonly left: number;
  /** First row. */
  readonly top: number;
  /** One past the last column. */
  readonly right: number;
  /** One past the last row. */
  readonly bottom: number;
}

/** libjpeg's `jpeg_natural_order` inverse: zig-zag index of each natural position. */
const ZIGZAG = new Uint8Array([
  0,
  1,
  5,
  6,
  14,
  15,
  27,
  28,
  2,
  4,
  7,
  13,
  16,
  26,
  29,
  42,
  3,
  8,
  12,
  17,
  25,
  30,
  41,
  43,
  9,
  11,
  18,
  24,
  31,
  40,
  44,
  53,
  10,
  19,
  23,
  32,
  39,
  45,
  52,
  54,
  20,
  22,
  33,
  38,
  46,
  51,
  55,
  60,
  21,
  34,
  37,
  47,
  50,
  56,
  59,
  61,
  35,
  36,
  48,
  49,
  57,
  58,
  62,
  63,
]);

interface Component {
  readonly id: number;
  readonly h: number;
  readonly v: number;
  readonly tq: number;
  /** Samples per row and rows holding image data (`downsampled_width/height`). */
  readonly width: number;
  readonly height: number;
  readonly blocksWide: number;
  readonly blocksHigh: number;
  readonly paddedBlocksWide: number;
  readonly paddedBlocksHigh: number;
  coefficients: Int16Array;
  /** The quantisation table latched at the component's first scan. */
  quant: Uint16Array | undefined;
  /** Whether a scan has brought its DC coefficients. */
  hasDc: boolean;
  /** Whether its plane was filled while its (only) scan was decoded (Wasm path). */
  streamed: boolean;
}

interface Frame {
  readonly width: number;
  readonly height: number;
  readonly progressive: boolean;
  readonly components: Component[];
  readonly maxH: number;
  readonly maxV: number;
  readonly mcusWide: number;
  readonly mcusHigh: number;
  /** The Wasm memory holding coefficients, planes and output, when the kernels run. */
  readonly arena: Arena | undefined;
  /** Blocks of all components (`blocksWide * blocksHigh` each). */
  readonly blocks: number;
}

/** Where things live in the kernels' memory (byte offsets). */
interface Arena {
  readonly memory: WebAssembly.Memory;
  readonly kernels: ImageKernels;
  readonly coefficients: number[];
  /**
   * Per component of a progressive frame (not kept as DC terms alone), the u64
   * per block marking its non-zero AC terms, or 0; a mark of 0 also says that
   * the block's memory was never cleared (see `createArena`).
   */
  readonly nonzero: number[];
  /**
   * Per component of a progressive frame, its DC terms apart (i16 per block, the
   * coefficients' block layout), or 0: a DC scan then touches 2 bytes per block
   * instead of a block's cache line, and the IDCT puts each into its block.
   */
  readonly dcs: number[];
  /** Per component, whether it is kept as its DC terms alone (2 bytes per block). */
  readonly dcOnly: readonly boolean[];
  readonly planes: number[];
  readonly rows: number[];
  /** Column-sum rows of the SIMD fancy upsampling. */
  readonly sums: number[];
  readonly output: number;
  /** Where the file's bytes are. */
  readonly data: number;
}

const QUANT_AT = 0; // 4 tables of 64 i32
const SCRATCH_AT = 1024; // scratch of the reduced IDCTs (128 bytes; 512 kept)
const DESCRIPTORS_AT = 1536; // 4 x 48 bytes
const TABLES_AT = 2048; // 8 Huffman tables of TABLE_BYTES (asm/image/huffman.ts's layout)
const TABLE_BYTES = 1536 + 6 * (1 << FAST_AC_BITS);
/** A streamed scan's descriptor: 4 x 32 bytes, 512 bytes of IDCT scratch, 4 quantisation tables. */
const STREAM_AT = TABLES_AT + 8 * TABLE_BYTES;
const STREAM_QUANT_AT = STREAM_AT + 640;
/** A scan descriptor: a 48-byte header, 48 bytes per component (4), the natural order at 256, scratch at 384. */
const SCAN_AT = STREAM_QUANT_AT + 4 * 256;
const ARENA_START = SCAN_AT + 768;
/** The pair tables of the AC tables sequential scans have used (entropy.ts's `fastAcPairs`). */
const AC_PAIRS = new WeakMap<HuffmanTable, Uint16Array>();
/**
 * The natural order with entries of 63 up to 127: the Wasm decoder's
 * end-of-block entry moves the position 63 on before storing its 0.
 */
const NATURAL_ORDER_128 = new Uint8Array(128).fill(63);
NATURAL_ORDER_128.set(NATURAL_ORDER);
/**
 * How many times the scans may pass over the frame's blocks, counted as the
 * blocks of each scan's components over those of all components: libjpeg's
 * progressive files make 3-6 passes (10 scans, most of one component), a
 * sequential file 1. libjpeg-turbo's `djpeg -maxscans` guards the same way.
 */
export const MAX_PASSES = 100;
/** The largest Wasm memory the kernels ask for; larger frames take the TypeScript path. */
const MAX_ARENA_BYTES = 2 ** 31;

/**
 * Decodes a JPEG to the samples Pillow's `Image.open(...)` holds after
 * `load()` (libjpeg-turbo, default settings): "L", "RGB" or "CMYK".
 *
 * @param bytes The JPEG file.
 * @param options Pixel and memory budgets.
 * @returns The samples and their layout, as stored (no EXIF orientation).
 * @throws {ImageError} When the data is corrupt, truncated, unsupported
 * (arithmetic, lossless, hierarchical or 12-bit coding) or over budget.
 *
 * @example
 * ```ts
 * import { decodeJpegPixels } from "./decoder.ts";
 * const image = decodeJpegPixels(await Deno.readFile("assets/chelsea.jpg"));
 * console.log(image.width, image.height, image.channels); // 451 300 3
 * ```
 */
export function decodeJpegPixels(bytes: Uint8Array, options: JpegDecodeOptions = {}): JpegPixels {
  const maxPixels = options.maxPixels ?? 64_000_000;
  const scale = options.scale ?? 1;
  if (scale !== 1 && scale !== 2 && scale !== 4 && scale !== 8) {
    throw new RangeError(`Expected scale 1, 2, 4 or 8, got ${scale}`);
  }
  const maxBytes = options.maxBytes ?? 40 * maxPixels;
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) {
    throw new ImageError("Not a JPEG: expected the SOI marker (ff d8) at byte 0");
  }
  const quantTables: (Uint16Array | undefined)[] = [];
  const dcTables: (HuffmanTable | undefined)[] = [];
  const acTables: (HuffmanTable | undefined)[] = [];
  let frame: Frame | undefined;
  let restartInterval = 0;
  let jfif = false;
  let adobeTransform = -1;
  let sawEoi = false;
  /** A sequential frame whose first scan held every component (libjpeg then expects EOI). */
  let singleScan = false;
  /** Blocks the scans so far pass over (see MAX_PASSES). */
  let passed = 0;
  let pos = 2;
  while (pos < bytes.length) {
    const marker = nextMarker(bytes, pos);
    if (marker.code < 0) break;
    const code = marker.code;
    pos = marker.pos + 2;
    if (code === 0xd9) {
      sawEoi = true;
      break;
    }
    if (code === 0xd8) {
      // libjpeg's JERR_SOI_DUPLICATE (a header scan that skips it reads other segments)
      throw new ImageError(`Corrupt JPEG: a second SOI marker (ff d8) at byte ${marker.pos}`);
    }
    if (code === 0x01 || (code >= 0xd0 && code <= 0xd7)) continue; // no segment
    if (pos + 2 > bytes.length) throw truncated(code, marker.pos);
    const end = pos + ((bytes[pos] << 8) | bytes[pos + 1]);
    if (end < pos + 2 || end > bytes.length) throw truncated(code, marker.pos);
    const segment = bytes.subarray(pos + 2, end);
    pos = end;
    switch (code) {
      case 0xc0:
      case 0xc1:
      case 0xc2:
        if (frame) throw new ImageError("Corrupt JPEG: expected one frame header (SOF), got two");
        frame = readFrame(segment, code === 0xc2, bytes, {
          maxPixels,
          maxBytes,
          simd: options.simd ?? true,
          scale,
          rgb: options.rgb ?? false,
          frameSize: options.frameSize,
        });
        break;
      case 0xc4:
        readHuffmanTables(segment, dcTables, acTables);
        break;
      case 0xdb:
        readQuantTables(segment, quantTables);
        break;
      case 0xdd:
        if (segment.length !== 2) {
          // libjpeg's JERR_BAD_LENGTH, as for the frame and scan headers
          throw new ImageError(
            `Corrupt JPEG: DRI segment of ${segment.length} bytes, expected 2`,
          );
        }
        restartInterval = (segment[0] << 8) | segment[1];
        break;
      case 0xe0:
        if (segment.length >= 14 && isText(segment, "JFIF\0")) jfif = true;
        break;
      case 0xee:
        if (segment.length >= 12 && isText(segment, "Adobe")) adobeTransform = segment[11];
        break;
      case 0xda: {
        if (!frame) {
          throw new ImageError("Corrupt JPEG: a scan (SOS) before the frame header (SOF)");
        }
        if (singleScan) {
          // libjpeg's JERR_EOI_EXPECTED: its first scan held every component, so it reads no other
          throw new ImageError(
            "Corrupt JPEG: expected the end of the image (EOI) after a sequential scan of every component, got another scan (SOS)",
          );
        }
        // A sequential frame's first scan holding every component is inverse-transformed
        // one MCU row at a time as it is decoded (Wasm path).
        const stream = frame.arena !== undefined && !frame.progressive &&
          frame.components.every((c) => !c.hasDc);
        // The components no scan has brought yet: a sequential scan clears their blocks first.
        const fresh = frame.components.filter((c) => !c.hasDc).map((c) => c.coefficients);
        const scan = readScan(segment, frame, restartInterval, quantTables, dcTables, acTables);
        singleScan = !frame.progressive && fresh.length === frame.components.length &&
          scan.components.length === frame.components.length;
        for (const c of scan.components) passed += c.blocksWide * c.blocksHigh;
        if (passed > MAX_PASSES * frame.blocks) {
          throw new ImageError(
            `Unsupported JPEG: its scans pass over the frame's ${frame.blocks} blocks more than ${MAX_PASSES} times (expected at most ${MAX_PASSES}; each scan costs a pass over its components' blocks whatever its data): refusing a possible decompression bomb`,
          );
        }
        const only = frame.components.find((c) =>
          c.coefficients === scan.components[0].coefficients
        );
        if (scan.progressive && scan.ss > 0 && componentLayout(frame, only!, scale).size === 1) {
          // A component reconstructed from DC terms alone (jpeg_idct_1x1, at 1/8):
          // its AC scans are skipped, not decoded.
          pos = nextMarker(bytes, pos).pos;
          break;
        }
        const streamed = stream && scan.components.length === frame.components.length;
        pos = frame.arena
          ? decodeScanWasm(
            frame.arena,
            bytes.length,
            pos,
            scan,
            { frame, scale, region: options.region },
            streamed,
            fresh,
          )
          : decodeScan(bytes, pos, scan);
        for (const c of frame.components) {
          if (scan.components.some((s) => s.coefficients === c.coefficients)) c.streamed = streamed;
        }
        break;
      }
      case 0xdc:
        // DNL: the frame's height is in its header (a height of 0 is refused there), so the
        // segment is passed over, as libjpeg's read_markers does.
        break;
      default:
        if ((code >= 0xc3 && code <= 0xcf) && code !== 0xc8 && code !== 0xcc) {
          throw new ImageError(
            `Unsupported JPEG coding (SOF${
              code - 0xc0
            }): expected baseline, extended sequential or progressive Huffman (SOF0-SOF2)`,
          );
        }
        if (
          code < 0xc0 || code === 0xc8 || code === 0xde || code === 0xdf ||
          (code >= 0xf0 && code <= 0xfd)
        ) {
          // libjpeg's JERR_UNKNOWN_MARKER (reserved, JPG, DHP, EXP, JPGn): often a byte of the
          // image data changed to 0xff, which ended the scan early
          throw new ImageError(
            `Corrupt JPEG: unknown marker 0xff${
              code.toString(16).padStart(2, "0")
            } at byte ${marker.pos}`,
          );
        }
        // DAC, APPn and COM carry nothing the pixels depend on.
    }
  }
  if (!frame) {
    throw new ImageError("Truncated or malformed JPEG: expected a frame header (SOF)");
  }
  for (const c of frame.components) {
    if (!c.hasDc) {
      throw new ImageError(
        `Truncated JPEG: no scan holds the data of component ${c.id} (expected one before the end)`,
      );
    }
  }
  if (frame.progressive && !sawEoi) {
    throw new ImageError("Truncated JPEG: a progressive image ends before its EOI marker");
  }
  return render(
    frame,
    colorSpace(frame, jfif, adobeTransform),
    scale,
    options.rgb ?? false,
    options.region,
    options.inPlace ?? false,
  );
}

function truncated(code: number, at: number): ImageError {
  return new ImageError(
    `Truncated JPEG: segment 0xff${code.toString(16)} at byte ${at} ends past the file`,
  );
}

function isText(segment: Uint8Array, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (segment[i] !== text.charCodeAt(i)) return false;
  return true;
}

function readFrame(
  s: Uint8Array,
  progressive: boolean,
  file: Uint8Array,
  options: {
    maxPixels: number;
    maxBytes: number;
    simd: boolean;
    scale: number;
    rgb: boolean;
    frameSize: { readonly width: number; readonly height: number } | undefined;
  },
): Frame {
  if (s.length < 6) throw new ImageError("Corrupt JPEG: frame header (SOF) shorter than 6 bytes");
  const precision = s[0];
  const height = (s[1] << 8) | s[2];
  const width = (s[3] << 8) | s[4];
  const count = s[5];
  if (precision !== 8) {
    throw new ImageError(`Unsupported JPEG: ${precision}-bit samples, expected 8-bit`);
  }
  if (width === 0 || height === 0) {
    throw new ImageError(
      `Unsupported JPEG: frame size ${width}x${height}, expected positive dimensions`,
    );
  }
  const { maxPixels, maxBytes, simd, frameSize } = options;
  if (frameSize && (frameSize.width !== width || frameSize.height !== height)) {
    throw new ImageError(
      `Corrupt JPEG: the frame header declares ${width}x${height}, but the header scan found ${frameSize.width}x${frameSize.height} (expected one frame size)`,
    );
  }
  if (width * height > maxPixels) {
    throw new ImageError(
      `Image is ${width}x${height} (${
        width * height
      } pixels): expected at most ${maxPixels} pixels (maxPixels), refusing to decode a possible decompression bomb`,
    );
  }
  if (count !== 1 && count !== 3 && count !== 4) {
    throw new ImageError(`Unsupported JPEG: ${count} components, expected 1, 3 or 4`);
  }
  if (s.length !== 6 + 3 * count) {
    throw new ImageError(
      `Corrupt JPEG: frame header (SOF) of ${s.length} bytes for ${count} components, expected ${
        6 + 3 * count
      }`,
    );
  }
  let maxH = 1;
  let maxV = 1;
  for (let i = 0; i < count; i++) {
    const h = s[7 + 3 * i] >> 4;
    const v = s[7 + 3 * i] & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) {
      throw new ImageError(`Corrupt JPEG: sampling factors ${h}x${v}, expected 1 to 4 each`);
    }
    maxH = Math.max(maxH, h);
    maxV = Math.max(maxV, v);
  }
  const mcusWide = Math.ceil(width / (8 * maxH));
  const mcusHigh = Math.ceil(height / (8 * maxV));
  const shapes = [];
  let blocks = 0;
  const outputChannels = options.rgb && count === 1 ? 3 : count;
  let planned = width * height * outputChannels;
  for (let i = 0; i < count; i++) {
    const h = s[7 + 3 * i] >> 4;
    const v = s[7 + 3 * i] & 15;
    if (maxH % h !== 0 || maxV % v !== 0) {
      throw new ImageError(
        `Unsupported JPEG: sampling factors ${h}x${v} do not divide the largest (${maxH}x${maxV})`,
      );
    }
    const compWidth = Math.ceil((width * h) / maxH);
    const compHeight = Math.ceil((height * v) / maxV);
    const shape = {
      id: s[6 + 3 * i],
      h,
      v,
      tq: s[8 + 3 * i],
      width: compWidth,
      height: compHeight,
      blocksWide: Math.ceil(compWidth / 8),
      blocksHigh: Math.ceil(compHeight / 8),
      paddedBlocksWide: mcusWide * h,
      paddedBlocksHigh: mcusHigh * v,
    };
    blocks += shape.blocksWide * shape.blocksHigh;
    // Coefficients (2 bytes each) and the sample plane.
    planned += shape.paddedBlocksWide * shape.paddedBlocksHigh * 128 +
      shape.blocksWide * shape.blocksHigh * 64;
    shapes.push(shape);
  }
  const fileLength = file.length;
  if (blocks > 8 * fileLength) {
    throw new ImageError(
      `Truncated JPEG: a ${width}x${height} frame has ${blocks} blocks, but ${fileLength} bytes hold at most ${
        8 * fileLength
      } (one bit each)`,
    );
  }
  if (planned > maxBytes) {
    throw new ImageError(
      `JPEG decoding needs ${planned} bytes for a ${width}x${height} frame: expected at most ${maxBytes} (maxBytes)`,
    );
  }
  // At 1/8 a progressive component reconstructed from DC terms alone keeps
  // only those in the Wasm memory: its AC scans are skipped.
  const dcOnly = shapes.map((c) =>
    progressive && idctSize(maxH, maxV, c.h, c.v, options.scale) === 1
  );
  const arena = simd
    ? createArena(file, progressive, shapes, dcOnly, width * height * outputChannels, maxH)
    : undefined;
  const components: Component[] = shapes.map((shape, i) => ({
    ...shape,
    coefficients: arena
      ? new Int16Array(
        arena.memory.buffer,
        arena.coefficients[i],
        shape.paddedBlocksWide * shape.paddedBlocksHigh * (dcOnly[i] ? 1 : 64),
      )
      : new Int16Array(shape.paddedBlocksWide * shape.paddedBlocksHigh * 64),
    quant: undefined,
    hasDc: false,
    streamed: false,
  }));
  return {
    width,
    height,
    progressive,
    components,
    maxH,
    maxV,
    mcusWide,
    mcusHigh,
    arena,
    blocks,
  };
}

/**
 * Lays out coefficients, planes, row buffers and output in the kernels'
 * memory (sizes already within budget); `undefined` when the kernels are
 * unavailable or the memory cannot be had.
 */
function createArena(
  file: Uint8Array,
  progressive: boolean,
  shapes: readonly {
    blocksWide: number;
    blocksHigh: number;
    paddedBlocksWide: number;
    paddedBlocksHigh: number;
    width: number;
    h: number;
  }[],
  dcOnly: readonly boolean[],
  outputBytes: number,
  maxH: number,
): Arena | undefined {
  let at = ARENA_START;
  const take = (bytes: number) => {
    const start = at;
    at += Math.ceil((bytes + 16) / 16) * 16; // 16 bytes of slack for vector loads
    return start;
  };
  const data = take(file.length);
  const blocksOf = (c: { paddedBlocksWide: number; paddedBlocksHigh: number }) =>
    c.paddedBlocksWide * c.paddedBlocksHigh;
  // What a progressive frame clears first: the non-zero marks, the DC terms
  // and the components kept as DC terms alone. Its other coefficient blocks
  // are cleared by the kernels as their first AC term comes, and a block no AC
  // term reaches is never read (its mark is 0), so it is never touched.
  const cleared = at;
  const nonzero = shapes.map((c, i) => progressive && !dcOnly[i] ? take(blocksOf(c) * 8) : 0);
  const dcs = shapes.map((c, i) => progressive && !dcOnly[i] ? take(blocksOf(c) * 2) : 0);
  const coefficients = shapes.map((c, i) => dcOnly[i] ? take(blocksOf(c) * 2) : 0);
  const clearedEnd = at;
  shapes.forEach((c, i) => {
    if (!dcOnly[i]) coefficients[i] = take(blocksOf(c) * 128);
  });
  const planes = shapes.map((c) => take(c.blocksWide * 8 * c.blocksHigh * 8));
  const rows = shapes.map((c) => take(c.width * (maxH / c.h) + 32));
  const sums = shapes.map((c) => take((c.width + 24) * 2));
  const output = take(outputBytes);
  if (at > MAX_ARENA_BYTES) return undefined;
  const arena = kernelArena(at); // undefined: the TypeScript path
  if (!arena) return undefined;
  const { memory, kernels } = arena;
  // A kept memory holds the last image's data: a progressive frame's marks and
  // DC terms start at zero (a sequential scan clears each block itself).
  if (progressive) new Uint8Array(memory.buffer, cleared, clearedEnd - cleared).fill(0);
  new Uint8Array(memory.buffer).set(file, data);
  return { memory, kernels, coefficients, nonzero, dcs, dcOnly, planes, rows, sums, output, data };
}

function readQuantTables(s: Uint8Array, tables: (Uint16Array | undefined)[]): void {
  for (let p = 0; p < s.length;) {
    const precision = s[p] >> 4;
    const id = s[p] & 15;
    const size = precision === 0 ? 64 : 128;
    if (precision > 1 || id > 3 || p + 1 + size > s.length) {
      throw new ImageError(
        `Corrupt JPEG: bad quantization table (precision ${precision}, id ${id}): expected 8- or 16-bit, id 0-3, 64 values`,
      );
    }
    const table = new Uint16Array(64);
    for (let i = 0; i < 64; i++) {
      table[i] = precision === 0 ? s[p + 1 + ZIGZAG[i]] : (s[p + 1 + 2 * ZIGZAG[i]] << 8) |
        s[p + 2 + 2 * ZIGZAG[i]];
    }
    tables[id] = table;
    p += 1 + size;
  }
}

function readHuffmanTables(
  s: Uint8Array,
  dcTables: (HuffmanTable | undefined)[],
  acTables: (HuffmanTable | undefined)[],
): void {
  for (let p = 0; p < s.length;) {
    if (p + 17 > s.length) throw new ImageError("Corrupt JPEG: DHT segment ends inside a table");
    const cls = s[p] >> 4;
    const id = s[p] & 15;
    const counts = s.subarray(p + 1, p + 17);
    let total = 0;
    for (const n of counts) total += n;
    if (cls > 1 || id > 3 || total > 256 || p + 17 + total > s.length) {
      throw new ImageError(
        `Corrupt JPEG: bad Huffman table (class ${cls}, id ${id}, ${total} symbols): expected class 0-1, id 0-3, at most 256 symbols`,
      );
    }
    const values = s.slice(p + 17, p + 17 + total);
    if (cls === 0 && values.some((v) => v > 15)) {
      throw new ImageError("Corrupt JPEG: a DC Huffman table has a symbol above 15");
    }
    (cls === 0 ? dcTables : acTables)[id] = cachedHuffmanTable(s.subarray(p + 1, p + 17 + total));
    p += 17 + total;
  }
}

/** Tables built from the DHT bodies (counts and symbols) seen last, most recent last. */
const HUFFMAN_CACHE = new Map<string, HuffmanTable>();
const HUFFMAN_CACHE_SIZE = 32;

/**
 * The table of a DHT body's 16 counts and its symbols, built once for the last
 * {@linkcode HUFFMAN_CACHE_SIZE} distinct bodies: most encoders write the same few tables into
 * every file (Annex K's, or one per quality), and a table with its fast and pair tables takes
 * longer to build than a small photo's scans take to read. Tables are never written to.
 */
function cachedHuffmanTable(body: Uint8Array): HuffmanTable {
  const key = String.fromCharCode.apply(null, body as unknown as number[]);
  let table = HUFFMAN_CACHE.get(key);
  if (table) {
    HUFFMAN_CACHE.delete(key);
  } else {
    table = buildHuffmanTable(body.subarray(0, 16), body.slice(16));
    if (HUFFMAN_CACHE.size >= HUFFMAN_CACHE_SIZE) {
      HUFFMAN_CACHE.delete(HUFFMAN_CACHE.keys().next().value!);
    }
  }
  HUFFMAN_CACHE.set(key, table);
  return table;
}

let standardTables: { dc: HuffmanTable[]; ac: HuffmanTable[] } | undefined;

/**
 * libjpeg-turbo's `std_huff_tables`: the Annex K table of this class and id (0 or 1) for a scan
 * whose file defines none (Motion-JPEG frames leave them out); built once.
 */
function standardTable(ac: boolean, id: number): HuffmanTable | undefined {
  if (id > 1) return undefined;
  if (!standardTables) {
    const dc: HuffmanTable[] = [], acs: HuffmanTable[] = [];
    readHuffmanTables(standardHuffmanTables(), dc, acs);
    standardTables = { dc, ac: acs };
  }
  return (ac ? standardTables.ac : standardTables.dc)[id];
}

function readScan(
  s: Uint8Array,
  frame: Frame,
  restartInterval: number,
  quantTables: (Uint16Array | undefined)[],
  dcTables: (HuffmanTable | undefined)[],
  acTables: (HuffmanTable | undefined)[],
) {
  const count = s[0];
  if (count < 1 || count > 4 || s.length !== 4 + 2 * count) {
    // Its length must be exact (libjpeg's JERR_BAD_LENGTH): a longer one moved the image data's
    // start, and its bytes decoded to other pixels without an error.
    throw new ImageError(
      `Corrupt JPEG: scan header (SOS) of ${s.length} bytes for ${count} components, expected 1 to 4 components and ${
        4 + 2 * Math.min(Math.max(count, 1), 4)
      } bytes`,
    );
  }
  const q = 1 + 2 * count;
  const ss = s[q];
  const se = s[q + 1];
  const ah = s[q + 2] >> 4;
  const al = s[q + 2] & 15;
  if (frame.progressive) {
    const bad = ss === 0 ? se !== 0 : se < ss || se > 63 || count !== 1;
    if (bad || (ah !== 0 && al !== ah - 1) || al > 13) {
      throw new ImageError(
        `Corrupt JPEG: invalid progressive scan (Ss ${ss}, Se ${se}, Ah ${ah}, Al ${al}, ${count} components)`,
      );
    }
  }
  let blocksPerMcu = 0;
  const components = [];
  const named: number[] = []; // the frame components' places the scan has named
  for (let i = 0; i < count; i++) {
    const id = s[1 + 2 * i];
    // libjpeg-turbo's get_sos: the first frame component with this id whose place is not yet
    // taken (place k is taken once the scan has named k + 1 components), so a frame whose
    // components share ids maps them in order (Pillow decodes such files), and a component named
    // twice or out of the frame's order is refused (JERR_BAD_COMPONENT_ID).
    const index = frame.components.findIndex((c, k) => c.id === id && k >= i);
    const c = frame.components[index];
    if (!c) {
      throw new ImageError(
        frame.components.some((c) => c.id === id)
          ? `Corrupt JPEG: a scan names component ${id} twice or out of the frame's order`
          : `Corrupt JPEG: a scan names component ${id}, not in the frame`,
      );
    }
    if (named.includes(index)) {
      throw new ImageError(`Corrupt JPEG: a scan names component ${id} twice`);
    }
    named.push(index);
    const dcId = s[2 + 2 * i] >> 4;
    const acId = s[2 + 2 * i] & 15;
    // A DC refinement scan reads bare bits; a sequential scan ignores Ah and Al.
    const needDc = !frame.progressive || (ss === 0 && ah === 0);
    const needAc = !frame.progressive || ss !== 0;
    const dcTable = needDc ? dcTables[dcId] ?? standardTable(false, dcId) : undefined;
    const acTable = needAc ? acTables[acId] ?? standardTable(true, acId) : undefined;
    if ((needDc && !dcTable) || (needAc && !acTable)) {
      throw new ImageError(
        `Corrupt JPEG: a scan uses Huffman table ${
          needAc && !acTable ? `AC ${acId}` : `DC ${dcId}`
        }, which was not defined`,
      );
    }
    if (!c.quant) {
      const table = quantTables[c.tq];
      if (!table) {
        throw new ImageError(
          `Corrupt JPEG: component ${id} uses quantization table ${c.tq}, which was not defined`,
        );
      }
      c.quant = table.slice();
    }
    if (!frame.progressive || ss === 0) c.hasDc = true;
    blocksPerMcu += c.h * c.v;
    components.push({ ...c, dcTable, acTable });
  }
  if (count > 1 && blocksPerMcu > 10) {
    throw new ImageError(`Corrupt JPEG: ${blocksPerMcu} blocks per MCU, expected at most 10`);
  }
  return {
    components,
    mcusWide: frame.mcusWide,
    mcusHigh: frame.mcusHigh,
    restartInterval,
    progressive: frame.progressive,
    ss,
    se: frame.progressive ? se : 63,
    ah: frame.progressive ? ah : 0,
    al: frame.progressive ? al : 0,
  };
}

type ColorSpace = "grey" | "ycc" | "rgb" | "cmyk" | "ycck";

/** libjpeg's `default_decompress_parms`: the colour space from markers and component ids. */
function colorSpace(frame: Frame, jfif: boolean, adobeTransform: number): ColorSpace {
  const ids = frame.components.map((c) => c.id);
  if (ids.length === 1) return "grey";
  if (ids.length === 3) {
    if (jfif) return "ycc";
    if (adobeTransform >= 0) return adobeTransform === 0 ? "rgb" : "ycc";
    return ids[0] === 82 && ids[1] === 71 && ids[2] === 66 ? "rgb" : "ycc";
  }
  return adobeTransform > 0 ? "ycck" : "cmyk"; // transform 2, or unknown (libjpeg warns)
}

/**
 * {@linkcode decodeScan} on the Wasm kernels, with the same errors. A
 * progressive scan stores only the coefficients of the blocks that
 * `view.region`'s pixels need at `1/scale` (the others' codes are read all the
 * same). With `streamed`, the scan (sequential, of every component) keeps one
 * MCU row of coefficients and inverse-transforms each row into the
 * components' planes as it goes (only the blocks the region needs).
 */
function decodeScanWasm(
  arena: Arena,
  length: number,
  pos: number,
  scan: Scan,
  view: { frame: Frame; scale: number; region: JpegRegion | undefined },
  streamed: boolean,
  fresh: readonly Int16Array[],
): number {
  const stream = streamed ? view : null;
  const { memory, kernels } = arena;
  const words = new Int32Array(memory.buffer);
  const bytes = new Uint8Array(memory.buffer);
  const tables = new Map<HuffmanTable, number>();
  const place = (table: HuffmanTable | undefined) => {
    if (!table) return 0;
    let at = tables.get(table);
    if (at === undefined) {
      at = TABLES_AT + tables.size * TABLE_BYTES;
      tables.set(table, at);
      bytes.set(new Uint8Array(table.lookup.buffer, table.lookup.byteOffset, 1024), at);
      words.set(table.maxCode, (at + 1024) / 4);
      words.set(table.valOffset, (at + 1096) / 4);
      bytes.set(table.values, at + 1168);
      words.set(table.fastAc, (at + 1536) / 4);
      if (!scan.progressive) {
        // Only sequential scans read the pair table: progressive ones leave it as it is.
        let pairs = AC_PAIRS.get(table);
        if (!pairs) AC_PAIRS.set(table, pairs = fastAcPairs(table.fastAc));
        new Uint16Array(memory.buffer, at + 1536 + 4 * (1 << FAST_AC_BITS), 1 << FAST_AC_BITS)
          .set(pairs);
      }
    }
    return at;
  };
  const d = SCAN_AT / 4;
  // The MCU columns and rows that hold blocks the region needs (all of them without a region):
  // a progressive scan reads the others' codes but not their coefficients.
  const keep = { left: 0, right: 0xffff, top: 0, bottom: 0xffff };
  if (view.region && scan.progressive) {
    Object.assign(keep, { left: 0xffff, right: 0, top: 0xffff, bottom: 0 });
    const single = scan.components.length === 1;
    for (const sc of scan.components) {
      const c = view.frame.components.find((c) => c.coefficients === sc.coefficients)!;
      const blocks = blockRange(view.frame, c, view.scale, view.region);
      if (blocks.right <= blocks.left || blocks.bottom <= blocks.top) continue;
      const [h, v] = single ? [1, 1] : [c.h, c.v];
      keep.left = Math.min(keep.left, Math.floor(blocks.left / h));
      keep.right = Math.max(keep.right, Math.ceil(blocks.right / h));
      keep.top = Math.min(keep.top, Math.floor(blocks.top / v));
      keep.bottom = Math.max(keep.bottom, Math.ceil(blocks.bottom / v));
    }
  }
  words.set([
    scan.components.length,
    scan.mcusWide,
    scan.mcusHigh,
    scan.restartInterval,
    scan.progressive ? 1 : 0,
    scan.ss,
    scan.se,
    scan.ah,
    scan.al,
    stream ? STREAM_AT : 0,
    keep.left | (keep.right << 16),
    keep.top | (keep.bottom << 16),
  ], d);
  if (stream) {
    scan.components.forEach((sc, i) => {
      const c = stream.frame.components.find((c) => c.coefficients === sc.coefficients)!;
      const index = stream.frame.components.indexOf(c);
      const layout = componentLayout(stream.frame, c, stream.scale);
      words.set(c.quant!, (STREAM_QUANT_AT + 256 * i) / 4);
      const blocks = blockRange(stream.frame, c, stream.scale, stream.region);
      words.set(
        [
          STREAM_QUANT_AT + 256 * i,
          arena.planes[index],
          layout.stride,
          layout.size,
          blocks.left,
          blocks.right,
          blocks.top,
          blocks.bottom,
        ],
        (STREAM_AT + 32 * i) / 4,
      );
    });
  }
  scan.components.forEach((c, i) => {
    const index = arena.coefficients.indexOf(c.coefficients.byteOffset);
    // A progressive DC scan writes the component's DC terms apart (2 bytes per block).
    const dc = scan.progressive && scan.ss === 0 && arena.dcs[index] !== 0;
    words.set([
      dc ? arena.dcs[index] : c.coefficients.byteOffset,
      c.paddedBlocksWide,
      c.blocksWide,
      c.blocksHigh,
      c.h,
      c.v,
      place(c.dcTable),
      place(c.acTable),
      arena.nonzero[index],
      arena.dcOnly[index] || dc ? 1 : 7,
      fresh.includes(c.coefficients) ? 1 : 0,
    ], d + 12 + 12 * i);
  });
  bytes.set(NATURAL_ORDER_128, SCAN_AT + 256);
  const end = kernels.decode_scan(arena.data, length, pos, SCAN_AT);
  if (end >= 0) return end;
  if (end === -1) throw new ImageError("Corrupt JPEG: a Huffman code matches no symbol");
  if (end === -2) {
    throw new ImageError("Truncated JPEG: the image data ends before the last block");
  }
  const mcu = -end - 3;
  const interval = scan.restartInterval;
  throw new ImageError(
    `Corrupt JPEG: expected restart marker RST${(mcu / interval - 1) & 7} after MCU ${mcu}`,
  );
}

const SPACE_CODES: Record<ColorSpace, number> = { grey: 0, ycc: 1, rgb: 2, cmyk: 3, ycck: 4 };
/** convert_image's code for greyscale replicated to RGB. */
const GREY_TO_RGB = 5;

/**
 * How a component is reconstructed at `1/scale` (libjpeg's
 * `jpeg_core_output_dimensions`): its IDCT size (8, 4, 2 or 1 samples per
 * block side; chroma is scaled less when that spares upsampling) and its
 * plane and upsampling factors.
 */
function componentLayout(frame: Frame, c: Component, scale: number) {
  const { width, height, maxH, maxV } = frame;
  const min = 8 / scale;
  const size = idctSize(maxH, maxV, c.h, c.v, scale);
  const hExpand = (maxH * min) / (c.h * size);
  const vExpand = (maxV * min) / (c.v * size);
  if (!Number.isInteger(hExpand) || !Number.isInteger(vExpand)) {
    throw new ImageError(
      `Unsupported JPEG: sampling ${c.h}x${c.v} of ${maxH}x${maxV} cannot be scaled by 1/${scale}`,
    );
  }
  return {
    size,
    stride: c.blocksWide * size,
    width: Math.ceil((width * c.h * size) / (maxH * 8)),
    height: Math.ceil((height * c.v * size) / (maxV * 8)),
    hExpand,
    vExpand,
  };
}

/**
 * The blocks of a component that the output pixels of `region` (the whole
 * image when undefined) depend on: its samples under them, one more on each
 * side for fancy upsampling's neighbours, rounded out to whole blocks.
 */
function blockRange(frame: Frame, c: Component, scale: number, region: JpegRegion | undefined) {
  const layout = componentLayout(frame, c, scale);
  if (!region) return { left: 0, right: c.blocksWide, top: 0, bottom: c.blocksHigh };
  const span = (from: number, to: number, expand: number, samples: number, blocks: number) => {
    const first = Math.max(0, Math.floor(from / expand) - 1);
    const last = Math.min(samples, Math.floor((to - 1) / expand) + 2);
    return [
      Math.min(blocks, Math.floor(first / layout.size)),
      Math.min(blocks, Math.ceil(last / layout.size)),
    ];
  };
  const [left, right] = span(region.left, region.right, layout.hExpand, layout.width, c.blocksWide);
  const [top, bottom] = span(
    region.top,
    region.bottom,
    layout.vExpand,
    layout.height,
    c.blocksHigh,
  );
  return { left, right: Math.max(left, right), top, bottom: Math.max(top, bottom) };
}

/** A component's IDCT size at `1/scale` (see {@linkcode componentLayout}). */
function idctSize(maxH: number, maxV: number, h: number, v: number, scale: number): number {
  const min = 8 / scale;
  let size = min;
  while (size < 8 && (maxH * min) % (h * size * 2) === 0 && (maxV * min) % (v * size * 2) === 0) {
    size *= 2;
  }
  return size;
}

/** The inverse DCT of a component's blocks into `data` (`size` samples per block side). */
function inverseTransform(c: Component, size: number, data: Uint8Array, stride: number): void {
  const quant = c.quant!;
  for (let by = 0; by < c.blocksHigh; by++) {
    for (let bx = 0; bx < c.blocksWide; bx++) {
      const offset = (by * c.paddedBlocksWide + bx) * 64;
      const at = by * size * stride + bx * size;
      if (size === 8) idctIslow(c.coefficients, offset, quant, data, at, stride);
      else idctScaled(size, c.coefficients, offset, quant, data, at, stride);
    }
  }
}

/** {@linkcode render} on the Wasm kernels. */
function renderWasm(
  frame: Frame,
  arena: Arena,
  space: ColorSpace,
  scale: number,
  rgb: boolean,
  region: JpegRegion | undefined,
  inPlace: boolean,
): JpegPixels {
  const { components } = frame;
  const { memory, kernels } = arena;
  const words = new Int32Array(memory.buffer);
  components.forEach((c, i) => {
    const layout = componentLayout(frame, c, scale);
    words.set(c.quant!, QUANT_AT / 4);
    const blocks = blockRange(frame, c, scale, region);
    const wide = blocks.right - blocks.left;
    const high = blocks.bottom - blocks.top;
    const firstBlock = blocks.top * c.paddedBlocksWide + blocks.left;
    const first = firstBlock * (arena.dcOnly[i] ? 2 : 128);
    const dc = arena.dcs[i] === 0 ? 0 : arena.dcs[i] + firstBlock * 2;
    const marks = arena.nonzero[i] === 0 ? 0 : arena.nonzero[i] + firstBlock * 8;
    const at = arena.planes[i] + blocks.top * layout.size * layout.stride +
      blocks.left * layout.size;
    if (c.streamed || wide <= 0 || high <= 0) {
      // Inverse-transformed while its scan was decoded, or nothing of it is read.
    } else if (layout.size === 8) {
      kernels.idct_islow_blocks(
        arena.coefficients[i] + first,
        c.paddedBlocksWide,
        wide,
        high,
        QUANT_AT,
        at,
        layout.stride,
        dc,
        marks,
      );
    } else {
      kernels.idct_reduced_blocks(
        arena.coefficients[i] + first,
        c.paddedBlocksWide,
        wide,
        high,
        QUANT_AT,
        at,
        layout.stride,
        layout.size,
        SCRATCH_AT,
        arena.dcOnly[i],
        dc,
        marks,
      );
    }
    words.set([
      arena.planes[i],
      layout.stride,
      layout.width,
      layout.height,
      layout.hExpand,
      layout.vExpand,
      arena.rows[i],
      scale === 8 ? 1 : 0, // libjpeg: no fancy upsampling when blocks are 1x1
      arena.sums[i],
      0,
      0,
      0,
    ], DESCRIPTORS_AT / 4 + 12 * i);
  });
  const width = Math.ceil(frame.width / scale);
  const height = Math.ceil(frame.height / scale);
  const greyToRgb = rgb && space === "grey";
  const code = greyToRgb ? GREY_TO_RGB : SPACE_CODES[space];
  const top = Math.max(0, Math.min(region?.top ?? 0, height));
  const bottom = Math.max(top, Math.min(region?.bottom ?? height, height));
  const left = Math.max(0, Math.min(region?.left ?? 0, width));
  const right = Math.max(left, Math.min(region?.right ?? width, width));
  kernels.convert_image(DESCRIPTORS_AT, code, arena.output, width, top, bottom, left, right);
  const channels = greyToRgb ? 3 : components.length as 1 | 3 | 4;
  const rowBytes = width * channels;
  let data: Uint8Array;
  if (inPlace) {
    data = new Uint8Array(memory.buffer, arena.output, height * rowBytes);
  } else {
    // Only the rows made are copied out: the others' pages of the new (zeroed)
    // array are never touched, so they cost no page faults.
    data = new Uint8Array(width * height * channels);
    data.set(
      new Uint8Array(memory.buffer, arena.output + top * rowBytes, (bottom - top) * rowBytes),
      top * rowBytes,
    );
  }
  markResident(memory, data, arena.output); // the resize may read it where it is
  return { data, width, height, channels };
}

/** Inverse DCT of every block, upsampling and colour conversion, at `1/scale` (grey as RGB with `rgb`). */
function render(
  frame: Frame,
  space: ColorSpace,
  scale: number,
  rgb: boolean,
  region: JpegRegion | undefined,
  inPlace: boolean,
): JpegPixels {
  if (frame.arena) return renderWasm(frame, frame.arena, space, scale, rgb, region, inPlace);
  const { components } = frame;
  const width = Math.ceil(frame.width / scale);
  const height = Math.ceil(frame.height / scale);
  const planes: ComponentPlane[] = components.map((c) => {
    const layout = componentLayout(frame, c, scale);
    const data = new Uint8Array(layout.stride * c.blocksHigh * layout.size);
    inverseTransform(c, layout.size, data, layout.stride);
    c.coefficients = new Int16Array(0); // let the coefficients go
    return { data, ...layout, plain: scale === 8 };
  });
  const channels = space === "grey" ? (rgb ? 3 : 1) : space === "cmyk" || space === "ycck" ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  const rowBuffers = planes.map((p) => new Uint8Array(p.width * p.hExpand + 8));
  const rows = new Array<Uint8Array>(planes.length);
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < planes.length; i++) rows[i] = upsampleRow(planes[i], y, rowBuffers[i]);
    const o = y * width * channels;
    if (space === "ycc") {
      yccToRgbRow(rows[0], rows[1], rows[2], out, o, width);
    } else if (space === "ycck") {
      ycckToCmykRow(rows[0], rows[1], rows[2], rows[3], out, o, width);
    } else if (space === "grey" && !rgb) {
      out.set(rows[0].subarray(0, width), o);
    } else if (space === "grey") {
      const row = rows[0];
      for (let x = 0, j = o; x < width; x++, j += 3) out[j] = out[j + 1] = out[j + 2] = row[x];
    } else {
      for (let x = 0, j = o; x < width; x++) {
        for (let c = 0; c < channels; c++, j++) {
          // Pillow reads Adobe CMYK inverted ("CMYK;I"); RGB is copied.
          out[j] = channels === 4 ? 255 - rows[c][x] : rows[c][x];
        }
      }
    }
  }
  return { data: out, width, height, channels };
}
