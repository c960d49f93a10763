/**
 * Hostile byte strings for the image and weight-file cases of
 * `tests/hostile_input.test.ts`: a valid tiny PNG (to truncate), a PNG whose
 * header declares a gigapixel image over a few bytes of data (a
 * decompression bomb), JPEG headers cut short or declaring 65500x65500
 * pixels, and safetensors files truncated or corrupted in each field.
 *
 * @module
 */

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function zlib(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const PNG_SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);

function ihdr(width: number, height: number): Uint8Array {
  const data = new Uint8Array(13);
  const view = new DataView(data.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  data.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, no interlace
  return chunk("IHDR", data);
}

/** A valid `width` x `height` RGB PNG of a gradient. */
export async function tinyPng(width = 8, height = 8): Promise<Uint8Array<ArrayBuffer>> {
  const raw = new Uint8Array(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width * 3; x++) raw[y * (1 + width * 3) + 1 + x] = (x * 16 + y * 8) & 255;
  }
  return concat([
    PNG_SIGNATURE,
    ihdr(width, height),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array()),
  ]);
}

/**
 * A PNG whose header declares `side` x `side` pixels (100 000 squared: 30 GB
 * of RGB) over one compressed row: a decoder must refuse it from the header.
 */
export async function pngBomb(side = 100_000): Promise<Uint8Array<ArrayBuffer>> {
  return concat([
    PNG_SIGNATURE,
    ihdr(side, side),
    chunk("IDAT", await zlib(new Uint8Array(1 + side * 3))),
    chunk("IEND", new Uint8Array()),
  ]);
}

/** SOI, a JFIF APP0 and a baseline SOF0 declaring `width` x `height`, then `tail`. */
function jpegHead(width: number, height: number, tail: number[]): Uint8Array<ArrayBuffer> {
  const app0 = [0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];
  const sof0 = [
    0xff,
    0xc0,
    0,
    17,
    8,
    height >> 8,
    height & 255,
    width >> 8,
    width & 255,
    3,
    ...[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1],
  ];
  return new Uint8Array([0xff, 0xd8, ...app0, ...sof0, ...tail]);
}

/** A JPEG cut off inside its frame header. */
export function truncatedJpeg(): Uint8Array<ArrayBuffer> {
  return jpegHead(64, 64, []).slice(0, 30);
}

/** A JPEG declaring 65500 x 65500 pixels (12.9 GB of RGB), then EOI. */
export function jpegBomb(): Uint8Array<ArrayBuffer> {
  return jpegHead(65500, 65500, [0xff, 0xd9]);
}

/**
 * A 64x64 greyscale progressive JPEG of `scans` scans: a DC scan, then AC
 * scans of one byte each (an end-of-band run over the 64 blocks), each of
 * which costs a pass over the blocks (a time bomb when the frame is large).
 */
export function jpegScanBomb(scans = 200): Uint8Array<ArrayBuffer> {
  const segment = (code: number, body: number[]) => [0xff, code, 0, body.length + 2, ...body];
  const bytes = [0xff, 0xd8, ...segment(0xdb, [0, ...Array(64).fill(16)])];
  bytes.push(...segment(0xc2, [8, 0, 64, 0, 64, 1, 1, 0x11, 0]));
  bytes.push(...segment(0xc4, [0x00, 1, ...Array(15).fill(0), 0])); // DC: "0" is 0
  bytes.push(...segment(0xc4, [0x10, 1, ...Array(15).fill(0), 0x60])); // AC: "0" a run of 64-127
  bytes.push(...segment(0xda, [1, 1, 0, 0, 0, 0x01]), ...Array(8).fill(0));
  bytes.push(...segment(0xda, [1, 1, 0, 1, 63, 0x01]), 0x00); // "0" + "000000": a run of 64
  for (let i = 2; i < scans; i++) bytes.push(...segment(0xda, [1, 1, 0, 1, 63, 0x10]), 0x00);
  return new Uint8Array([...bytes, 0xff, 0xd9]);
}

/** `bytes` with the u64 header length of a safetensors file replaced by `length`. */
export function withHeaderLength(bytes: Uint8Array, length: bigint): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes);
  new DataView(out.buffer).setBigUint64(0, length, true);
  return out;
}

/** A safetensors file with the given header object and `dataBytes` zero bytes of data. */
export function safetensorsWithHeader(header: unknown, dataBytes = 0): Uint8Array<ArrayBuffer> {
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const encoded = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + encoded.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(encoded.length), true);
  out.set(encoded, 8);
  return out;
}
