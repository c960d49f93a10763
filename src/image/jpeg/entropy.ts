/**
 * JPEG Huffman entropy decoding as libjpeg-turbo does it (`jdhuff.c`,
 * `jdphuff.c`): sequential scans, the four kinds of progressive scan
 * (DC first and refinement, AC first and refinement with end-of-band runs),
 * restart intervals, and the stuffed-byte and marker rules of the bit stream.
 *
 * Coefficients land in `Int16Array`s (libjpeg's `JCOEF`), 64 per block in
 * natural (row-major) order, so that every store truncates as libjpeg's does.
 *
 * @module
 */

import { ImageError } from "../../errors.ts";

/**
 * Zig-zag position to natural position, with 16 extra entries of 63 so that
 * a corrupt run length cannot write outside the block (libjpeg's
 * `jpeg_natural_order`).
 *
 * @example
 * ```ts
 * import { NATURAL_ORDER } from "./entropy.ts";
 * console.log(NATURAL_ORDER[2], NATURAL_ORDER[79]); // 8 63
 * ```
 */
export const NATURAL_ORDER = new Uint8Array([
  0,
  1,
  8,
  16,
  9,
  2,
  3,
  10,
  17,
  24,
  32,
  25,
  18,
  11,
  4,
  5,
  12,
  19,
  26,
  33,
  40,
  48,
  41,
  34,
  27,
  20,
  13,
  6,
  7,
  14,
  21,
  28,
  35,
  42,
  49,
  56,
  57,
  50,
  43,
  36,
  29,
  22,
  15,
  23,
  30,
  37,
  44,
  51,
  58,
  59,
  52,
  45,
  38,
  31,
  39,
  46,
  53,
  60,
  61,
  54,
  47,
  55,
  62,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
  63,
]);

/** Bits the first-level lookup table of a Huffman table resolves. */
const LOOKAHEAD = 9;
/** Bits of the AC tables' one-lookup coefficient table (`fastAc`). */
export const FAST_AC_BITS = 11;

/**
 * A decoding table built from a DHT segment: a 9-bit lookahead table for the
 * short codes and libjpeg's `maxcode`/`valoffset` arrays for the long ones.
 */
export interface HuffmanTable {
  /** `(length << 8) | symbol` for each 9-bit prefix whose code is at most 9 bits, else 0. */
  readonly lookup: Uint16Array;
  /** Largest code of each length 1-16 (index 17 is a sentinel), -1 when none. */
  readonly maxCode: Int32Array;
  /** Per length, the symbol index of the first code minus that code. */
  readonly valOffset: Int32Array;
  /** The symbols in code order. */
  readonly values: Uint8Array;
  /**
   * For AC tables of sequential scans, per {@linkcode FAST_AC_BITS}-bit
   * prefix holding a whole coefficient (a code of a non-zero size and its
   * extra bits), a run of 16 zeros (value 0, run 15) or an end of block (value
   * 0, run 63): `(value << 16) | (run << 8) | bits`, else 0 (the Wasm
   * decoder's one-lookup path; stb_image's `fast_ac`).
   */
  readonly fastAc: Int32Array;
}

/**
 * The Huffman tables of JPEG Annex K.3 (libjpeg's `std_huff_tables`) as DHT
 * bodies: DC luminance (class 0, id 0), DC chrominance (0, 1), AC luminance
 * (1, 0) and AC chrominance (1, 1). libjpeg-turbo decodes with them where a
 * file defines no table of that class and id (Motion-JPEG frames leave them out).
 */
const STANDARD_HUFFMAN_HEX =
  "0000010501010101010100000000000000000102030405060708090a0b0100030101010101010101010000000000" +
  "000102030405060708090a0b100002010303020403050504040000017d0102030004110512213141061351610722" +
  "7114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748" +
  "494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4" +
  "a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3" +
  "f4f5f6f7f8f9fa110002010204040304070504040001027700010203110405213106124151076171132232810814" +
  "4291a1b1c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a5354" +
  "55565758595a636465666768696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7" +
  "a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8" +
  "f9fa";

/**
 * A DHT segment's body holding the four standard tables of JPEG Annex K.3, which a decoder
 * uses for a table (class and id 0 or 1) the file does not define.
 *
 * @returns The body, 416 bytes.
 *
 * @example
 * ```ts
 * import { standardHuffmanTables } from "./entropy.ts";
 * console.log(standardHuffmanTables().length); // 416
 * ```
 */
export function standardHuffmanTables(): Uint8Array {
  return Uint8Array.from(
    { length: STANDARD_HUFFMAN_HEX.length / 2 },
    (_, i) => parseInt(STANDARD_HUFFMAN_HEX.slice(2 * i, 2 * i + 2), 16),
  );
}

/**
 * Builds a decoding table from the 16 code-length counts and the symbols of a
 * DHT segment (JPEG Annex C), refusing counts that overflow the code space.
 *
 * @param counts Number of codes of each length 1 to 16.
 * @param values The symbols, `sum(counts)` of them.
 * @returns The decoding table.
 * @throws {ImageError} When the counts describe more codes than fit.
 *
 * @example
 * ```ts
 * import { buildHuffmanTable } from "./entropy.ts";
 * const counts = new Uint8Array(16);
 * counts[0] = 1; // code "0" -> symbol 5
 * counts[1] = 1; // code "10" -> symbol 7
 * const table = buildHuffmanTable(counts, new Uint8Array([5, 7]));
 * console.log(table.lookup[0] & 0xff, table.lookup[0x100] & 0xff); // 5 7
 * ```
 */
export function buildHuffmanTable(counts: Uint8Array, values: Uint8Array): HuffmanTable {
  const maxCode = new Int32Array(18).fill(-1);
  const valOffset = new Int32Array(18);
  const lookup = new Uint16Array(1 << LOOKAHEAD);
  const fastAc = new Int32Array(1 << FAST_AC_BITS);
  let code = 0;
  let index = 0;
  for (let length = 1; length <= 16; length++) {
    const n = counts[length - 1];
    const before = index;
    if (n > 0) {
      valOffset[length] = index - code;
      for (let i = 0; i < n; i++, code++, index++) {
        if (length <= LOOKAHEAD) {
          const shift = LOOKAHEAD - length;
          const entry = (length << 8) | values[index];
          for (let j = 0; j < 1 << shift; j++) lookup[(code << shift) | j] = entry;
        }
        const size = values[index] & 15;
        if (size === 0 && length <= FAST_AC_BITS) {
          // A run of 16 zeros (a 0 stored 15 on), or the end of the block in a
          // sequential scan (run 63 takes the position past 63).
          const run = values[index] === 0xf0 ? 15 : 63;
          const shift = FAST_AC_BITS - length;
          const entry = (run << 8) | length;
          for (let j = 0; j < 1 << shift; j++) fastAc[(code << shift) | j] = entry;
        }
        if (size !== 0 && length + size <= FAST_AC_BITS) {
          const shift = FAST_AC_BITS - length - size;
          for (let x = 0; x < 1 << size; x++) {
            const value = x < 1 << (size - 1) ? x - (1 << size) + 1 : x;
            const entry = (value << 16) | ((values[index] & 0xf0) << 4) | (length + size);
            const first = ((code << size) | x) << shift;
            for (let j = 0; j < 1 << shift; j++) fastAc[first | j] = entry;
          }
        }
      }
      maxCode[length] = code - 1;
    }
    // libjpeg refuses code counts that overflow the code space (jdhuff.c).
    if (before < values.length && code >= 1 << length) {
      throw new ImageError(`Corrupt JPEG: a Huffman table has too many codes of length ${length}`);
    }
    code <<= 1;
  }
  maxCode[17] = 0x7fffffff; // sentinel: ends the slow search
  return { lookup, maxCode, valOffset, values, fastAc };
}

/**
 * The pair table of a sequential scan's AC table, beside its `fastAc` (the
 * Wasm decoder's): per {@linkcode FAST_AC_BITS}-bit prefix whose `fastAc`
 * entry is a coefficient or a run of 16 zeros, the symbol after it when that
 * one too lies whole in the prefix and is an end of block, a run of 16 zeros
 * or a coefficient of at most 4 extra bits: `bits | (step << 4) | (value <<
 * 11)` (bits: both symbols'; step: the second's run plus 1, 16 for a run of 16
 * zeros, 64 for the end of the block; value: 5-bit two's complement), else the
 * first symbol's bits (step 0); 0 where `fastAc` is 0 or an end of block. The
 * decoder takes both symbols of such a prefix with one lookup.
 *
 * @param fastAc A table's {@linkcode HuffmanTable.fastAc}.
 * @returns The pair table, as long as `fastAc`.
 *
 * @example
 * ```ts
 * import { buildHuffmanTable, FAST_AC_BITS, fastAcPairs } from "./entropy.ts";
 * const counts = new Uint8Array(16);
 * counts[1] = 2; // "00" end of block, "01" run 0 size 1
 * const pairs = fastAcPairs(buildHuffmanTable(counts, new Uint8Array([0x00, 0x01])).fastAc);
 * // "011" (a 1), then "00" (the end of the block): 5 bits, step 64, value 0
 * console.log(pairs[0b01100 << (FAST_AC_BITS - 5)] === (5 | (64 << 4))); // true
 * ```
 */
export function fastAcPairs(fastAc: Int32Array): Uint16Array {
  const pair = new Uint16Array(fastAc.length);
  for (let i = 0; i < fastAc.length; i++) {
    const first = fastAc[i];
    const bits = first & 0xff;
    // Not after an end of block (run 63), and only a symbol whose bits all lie in the prefix.
    if (first === 0 || ((first >> 8) & 63) === 63) continue;
    pair[i] = bits;
    if (bits >= FAST_AC_BITS) continue;
    const second = fastAc[(i << bits) & (fastAc.length - 1)];
    const secondBits = second & 0xff;
    const value = second >> 16;
    if (second === 0 || bits + secondBits > FAST_AC_BITS || value < -16 || value > 15) continue;
    pair[i] = (bits + secondBits) | ((((second >> 8) & 63) + 1) << 4) | ((value & 31) << 11);
  }
  return pair;
}

/** One component's part in a scan. */
export interface ScanComponent {
  /** Coefficients of the component's padded block grid, 64 per block. */
  readonly coefficients: Int16Array;
  /** Blocks per row of the padded grid (interleaved MCUs cover it). */
  readonly paddedBlocksWide: number;
  /** Blocks per row holding image samples (a non-interleaved scan's width). */
  readonly blocksWide: number;
  /** Block rows holding image samples (a non-interleaved scan's height). */
  readonly blocksHigh: number;
  /** Horizontal sampling factor. */
  readonly h: number;
  /** Vertical sampling factor. */
  readonly v: number;
  /** DC table of this scan (DC scans and sequential scans). */
  readonly dcTable: HuffmanTable | undefined;
  /** AC table of this scan (AC scans and sequential scans). */
  readonly acTable: HuffmanTable | undefined;
}

/** A scan's header (SOS) and the frame facts needed to decode it. */
export interface Scan {
  /** The components of the scan, in scan order. */
  readonly components: readonly ScanComponent[];
  /** MCUs per row of an interleaved scan. */
  readonly mcusWide: number;
  /** MCU rows of an interleaved scan. */
  readonly mcusHigh: number;
  /** Restart interval in MCUs, 0 for none. */
  readonly restartInterval: number;
  /** Whether the frame is progressive (SOF2). */
  readonly progressive: boolean;
  /** Spectral selection start. */
  readonly ss: number;
  /** Spectral selection end. */
  readonly se: number;
  /** Successive approximation high bit (0 in a first scan). */
  readonly ah: number;
  /** Successive approximation low bit (the point transform). */
  readonly al: number;
}

/**
 * Reads the entropy-coded bits of one scan. A marker (`0xff` followed by
 * neither `0x00` nor `0xff`) ends the data: from there on zero bits are
 * supplied, as libjpeg does (`zeros` counts them: see `starved`), and running
 * out of the file itself is an error.
 */
class BitReader {
  #data: Uint8Array;
  /** Position of the next byte to read. */
  pos: number;
  /** Buffered bits: the low `bits` bits of `acc` are unread. */
  acc = 0;
  bits = 0;
  /** Whether a marker stopped the data. */
  atMarker = false;
  /** Zero bits supplied past the end of the file. */
  pastEnd = 0;
  /** Zero bits supplied at a marker since the last restart. */
  zeros = 0;

  constructor(data: Uint8Array, pos: number) {
    this.#data = data;
    this.pos = pos;
  }

  /** Tops the buffer up to at least 25 bits. */
  fill(): void {
    const data = this.#data;
    while (this.bits <= 24) {
      let byte = 0;
      if (!this.atMarker) {
        const pos = this.pos;
        if (pos >= data.length) {
          this.pastEnd += 8;
        } else if (data[pos] !== 0xff) {
          byte = data[pos];
          this.pos = pos + 1;
        } else {
          let skip = 1;
          while (data[pos + skip] === 0xff) skip++; // fill bytes
          const next = data[pos + skip];
          if (next === 0) {
            byte = 0xff; // a stuffed zero
            this.pos = pos + skip + 1;
          } else if (next === undefined) {
            this.pastEnd += 8;
            this.pos = data.length;
          } else {
            this.atMarker = true;
            this.pos = pos + skip - 1; // the last 0xff before the marker code
          }
        }
      }
      if (this.atMarker) this.zeros += 8;
      this.acc = (this.acc << 8) | byte;
      this.bits += 8;
    }
  }

  /**
   * Whether the decoder consumed zero bits supplied at a marker: libjpeg's
   * `insufficient_data`, after which its decoders leave the MCUs up to the
   * next restart as they are (zero in a sequential scan: grey).
   */
  get starved(): boolean {
    return this.zeros > this.bits;
  }

  /** Reads `n` (0 to 16) bits as an unsigned number. */
  get(n: number): number {
    if (this.bits < n) this.fill();
    this.bits -= n;
    return (this.acc >>> this.bits) & ((1 << n) - 1);
  }

  /** Reads one bit. */
  bit(): number {
    if (this.bits < 1) this.fill();
    this.bits--;
    return (this.acc >>> this.bits) & 1;
  }

  /** Decodes one Huffman symbol. */
  decode(table: HuffmanTable): number {
    if (this.bits < 16) this.fill();
    const peek = (this.acc >>> (this.bits - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1);
    const entry = table.lookup[peek];
    if (entry !== 0) {
      this.bits -= entry >> 8;
      return entry & 0xff;
    }
    // Longer than the lookahead: libjpeg's jpeg_huff_decode slow path.
    let length = LOOKAHEAD + 1;
    let code = (this.acc >>> (this.bits - length)) & ((1 << length) - 1);
    const maxCode = table.maxCode;
    while (code > maxCode[length]) {
      length++;
      if (length > 16) throw new ImageError("Corrupt JPEG: a Huffman code matches no symbol");
      code = (this.acc >>> (this.bits - length)) & ((1 << length) - 1);
    }
    this.bits -= length;
    return table.values[code + table.valOffset[length]];
  }

  /** Reads `s` bits and sign-extends them as JPEG's `HUFF_EXTEND` does. */
  receive(s: number): number {
    const r = this.get(s);
    return r < 1 << (s - 1) ? r - (1 << s) + 1 : r;
  }

  /** Throws when the decoder consumed bits that lie past the end of the file. */
  checkEnd(): void {
    if (this.pastEnd > 0 && this.pastEnd > this.bits) {
      throw new ImageError("Truncated JPEG: the image data ends before the last block");
    }
  }

  /**
   * Drops the buffered bits and steps over the next marker, which must be
   * `expected` (a restart marker); returns whether it was.
   */
  restart(expected: number): boolean {
    this.checkEnd();
    this.acc = 0;
    this.bits = 0;
    this.atMarker = false;
    this.zeros = 0;
    const marker = nextMarker(this.#data, this.pos);
    if (marker.code !== expected) return false;
    this.pos = marker.pos + 2;
    return true;
  }
}

/**
 * Finds the marker at or after `pos`, skipping entropy-coded bytes (libjpeg's
 * `next_marker`): returns its code and the position of its `0xff`, or code
 * -1 at the end of the file.
 *
 * @param data The JPEG file.
 * @param pos Where to start looking.
 * @returns The marker code and position.
 *
 * @example
 * ```ts
 * import { nextMarker } from "./entropy.ts";
 * console.log(nextMarker(new Uint8Array([0x12, 0xff, 0x00, 0xff, 0xd9]), 0)); // { code: 217, pos: 3 }
 * ```
 */
export function nextMarker(data: Uint8Array, pos: number): { code: number; pos: number } {
  for (let i = pos; i + 1 < data.length; i++) {
    if (data[i] !== 0xff) continue;
    const next = data[i + 1];
    if (next !== 0 && next !== 0xff) return { code: next, pos: i };
  }
  return { code: -1, pos: data.length };
}

/**
 * Decodes one scan into the components' coefficient arrays.
 *
 * @param data The JPEG file.
 * @param pos Offset of the first entropy-coded byte (just after the SOS segment).
 * @param scan The scan header and its components.
 * @returns The offset where the entropy-coded data ends (a marker or the end of the file).
 * @throws {ImageError} When the data is corrupt or truncated.
 *
 * @example
 * ```ts
 * import { buildHuffmanTable, decodeScan } from "./entropy.ts";
 * const counts = new Uint8Array(16);
 * counts[0] = 1; // one 1-bit code "0" for symbol 0: DC difference 0, AC end of block
 * const table = buildHuffmanTable(counts, new Uint8Array([0]));
 * const coefficients = new Int16Array(64);
 * const component = {
 *   coefficients, paddedBlocksWide: 1, blocksWide: 1, blocksHigh: 1, h: 1, v: 1,
 *   dcTable: table, acTable: table,
 * };
 * const scan = {
 *   components: [component], mcusWide: 1, mcusHigh: 1, restartInterval: 0,
 *   progressive: false, ss: 0, se: 63, ah: 0, al: 0,
 * };
 * console.log(decodeScan(new Uint8Array([0x00, 0xff, 0xd9]), 0, scan)); // 1
 * ```
 */
export function decodeScan(data: Uint8Array, pos: number, scan: Scan): number {
  const reader = new BitReader(data, pos);
  const { components, progressive, ss, se, ah, al } = scan;
  const single = components.length === 1;
  const mcusWide = single ? components[0].blocksWide : scan.mcusWide;
  const mcusHigh = single ? components[0].blocksHigh : scan.mcusHigh;
  const total = mcusWide * mcusHigh;
  const interval = scan.restartInterval || total;
  const preds = new Int32Array(components.length);
  const eob = { run: 0 };
  let decodeBlock: (c: ScanComponent, offset: number, ci: number) => void;
  if (!progressive) {
    decodeBlock = (c, offset, ci) => {
      preds[ci] = decodeBaseline(reader, c, c.coefficients, offset, preds[ci]);
    };
  } else if (ss === 0) {
    decodeBlock = ah === 0
      ? (c, offset, ci) => {
        preds[ci] = decodeDcFirst(reader, c, c.coefficients, offset, preds[ci], al);
      }
      : (c, offset) => {
        if (reader.bit()) c.coefficients[offset] |= 1 << al;
      };
  } else {
    decodeBlock = ah === 0
      ? (c, offset) => decodeAcFirst(reader, c.acTable!, c.coefficients, offset, ss, se, al, eob)
      : (c, offset) => decodeAcRefine(reader, c.acTable!, c.coefficients, offset, ss, se, al, eob);
  }
  let restarts = 0;
  // libjpeg's insufficient_data: the data ran out (a marker came) within an earlier MCU of this
  // restart interval, so this one is left as it is (jdhuff.c and jdphuff.c's decode_mcu).
  let starved = false;
  for (let mcu = 0; mcu < total; mcu++) {
    if (mcu > 0 && mcu % interval === 0) {
      if (!reader.restart(0xd0 + (restarts & 7))) {
        throw new ImageError(
          `Corrupt JPEG: expected restart marker RST${restarts & 7} after MCU ${mcu}`,
        );
      }
      restarts++;
      preds.fill(0);
      eob.run = 0;
      starved = false;
    }
    if (starved) continue; // the coefficients of a sequential scan are zero already
    const my = Math.floor(mcu / mcusWide);
    const mx = mcu - my * mcusWide;
    if (single) {
      const c = components[0];
      decodeBlock(c, (my * c.paddedBlocksWide + mx) * 64, 0);
      starved = reader.starved;
      continue;
    }
    for (let ci = 0; ci < components.length; ci++) {
      const c = components[ci];
      for (let v = 0; v < c.v; v++) {
        const row = (my * c.v + v) * c.paddedBlocksWide + mx * c.h;
        for (let h = 0; h < c.h; h++) decodeBlock(c, (row + h) * 64, ci);
      }
    }
    starved = reader.starved;
  }
  reader.checkEnd();
  return reader.atMarker ? reader.pos : nextMarker(data, reader.pos).pos;
}

/** One block of a sequential scan; returns the new DC predictor. */
function decodeBaseline(
  reader: BitReader,
  c: ScanComponent,
  out: Int16Array,
  offset: number,
  pred: number,
): number {
  const t = reader.decode(c.dcTable!);
  const dc = (t === 0 ? pred : pred + reader.receive(t)) | 0;
  out[offset] = dc;
  const ac = c.acTable!;
  for (let k = 1; k < 64; k++) {
    const rs = reader.decode(ac);
    const s = rs & 15;
    const r = rs >> 4;
    if (s === 0) {
      if (r !== 15) break;
      k += 15;
      continue;
    }
    k += r;
    out[offset + NATURAL_ORDER[k]] = reader.receive(s);
  }
  return dc;
}

/** One block of a progressive DC first scan; returns the new DC predictor. */
function decodeDcFirst(
  reader: BitReader,
  c: ScanComponent,
  out: Int16Array,
  offset: number,
  pred: number,
  al: number,
): number {
  const t = reader.decode(c.dcTable!);
  const dc = (t === 0 ? pred : pred + reader.receive(t)) | 0;
  out[offset] = dc << al;
  return dc;
}

/** One block of a progressive AC first scan (end-of-band runs in `eob`). */
function decodeAcFirst(
  reader: BitReader,
  table: HuffmanTable,
  out: Int16Array,
  offset: number,
  ss: number,
  se: number,
  al: number,
  eob: { run: number },
): void {
  if (eob.run > 0) {
    eob.run--;
    return;
  }
  for (let k = ss; k <= se; k++) {
    const rs = reader.decode(table);
    const s = rs & 15;
    const r = rs >> 4;
    if (s !== 0) {
      k += r;
      out[offset + NATURAL_ORDER[k]] = reader.receive(s) * (1 << al);
    } else if (r === 15) {
      k += 15;
    } else {
      eob.run = (1 << r) - 1;
      if (r !== 0) eob.run += reader.get(r);
      break;
    }
  }
}

/** One block of a progressive AC refinement scan (jdphuff.c `decode_mcu_AC_refine`). */
function decodeAcRefine(
  reader: BitReader,
  table: HuffmanTable,
  out: Int16Array,
  offset: number,
  ss: number,
  se: number,
  al: number,
  eob: { run: number },
): void {
  const p1 = 1 << al;
  const m1 = -1 << al;
  let k = ss;
  if (eob.run === 0) {
    for (; k <= se; k++) {
      const rs = reader.decode(table);
      let r = rs >> 4;
      let s = rs & 15;
      if (s !== 0) {
        s = reader.bit() ? p1 : m1; // a newly non-zero coefficient is +-1 << al
      } else if (r !== 15) {
        eob.run = 1 << r;
        if (r !== 0) eob.run += reader.get(r);
        break;
      }
      // Skip r zero coefficients, refining the non-zero ones passed on the way.
      do {
        const at = offset + NATURAL_ORDER[k];
        const coef = out[at];
        if (coef !== 0) {
          if (reader.bit() && (coef & p1) === 0) out[at] = coef >= 0 ? coef + p1 : coef + m1;
        } else if (--r < 0) {
          break;
        }
        k++;
      } while (k <= se);
      if (s !== 0) out[offset + NATURAL_ORDER[k]] = s;
    }
  }
  if (eob.run > 0) {
    for (; k <= se; k++) {
      const at = offset + NATURAL_ORDER[k];
      const coef = out[at];
      if (coef !== 0 && reader.bit() && (coef & p1) === 0) {
        out[at] = coef >= 0 ? coef + p1 : coef + m1;
      }
    }
    eob.run--;
  }
}
