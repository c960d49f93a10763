// JPEG Huffman entropy decoding on Wasm, a port of src/image/jpeg/entropy.ts
// (libjpeg-turbo's jdhuff.c and jdphuff.c): sequential scans, progressive DC
// and AC first and refinement scans, restart intervals; coefficients (i16,
// natural order, 64 per block) land in the decoder's arrays in this memory.
//
// A Huffman table at `t` (13824 bytes): u16 lookup[512] ((length << 8) |
// symbol for 9-bit prefixes, 0 when longer) at 0, i32 maxCode[18] at 1024,
// i32 valOffset[18] at 1096, u8 values[256] at 1168, i32 fastAc[2048] at
// 1536 ((value << 16) | (run << 8) | bits for an 11-bit prefix holding a
// whole AC coefficient, a run of 16 zeros (value 0, run 15) or an end of
// block (value 0, run 63), else 0), u16 fastAcPair[2048] at 9728 (the symbol
// after that one in the same prefix: bits | (step << 4) | (value << 11), see
// entropy.ts's fastAcPairs; written for sequential scans only).
//
// A scan descriptor at `d`: i32 count, mcusWide, mcusHigh, restartInterval,
// progressive, ss, se, ah, al (9 words, 48 bytes reserved), then per
// component (48 bytes each): coef, paddedBlocksWide, blocksWide, blocksHigh,
// h, v, dcTable, acTable, nonzero (progressive AC scans: a u64 per block,
// bit k set where the coefficient at zig-zag index k is not 0, so that a
// refinement finds them without reading all 63), blockShift (log2 of the
// bytes per block: 7, or 1 for a component kept as its DC terms alone),
// clear (1 when a sequential scan clears each block before writing it: the
// component's first scan; a later one writes its terms over the earlier's).
// At `d + 256`: 128 bytes, the zig-zag to natural order table with entries
// of 63 after position 63 (a sequential scan's end of block lands there). At
// `d + 384`: 336 bytes of scratch (the block plan of an interleaved DC or
// sequential scan).
//
// Word 9 (`d + 36`), when not 0, is the address of a stream descriptor: a
// sequential scan of every component then keeps one MCU row of coefficients
// (at each component's `coef`) and inverse-transforms each row into the
// component's plane as soon as it is decoded, while it is in cache. Per
// component 32 bytes: quant (64 i32), plane, stride, IDCT size (8, 4, 2, 1),
// and the blocks to transform (first and one past the last column, first
// and one past the last row: the rest of the plane is left unset); then at
// +128 the reduced IDCTs' scratch (128 bytes; 512 reserved).
//
// Words 10 and 11 (`d + 40`, `d + 44`): the MCU columns and rows (first | one
// past the last << 16) whose coefficients are read afterwards (the blocks the
// caller's region needs); a progressive scan stores no coefficient of an MCU
// outside them. Their codes and bits are read all the same (the DC
// predictors, the bit position and the non-zero marks, which later scans
// parse by, stay exact), but their coefficients are neither read nor written.

import { idct_islow_blocks } from "./jpeg";
import { idct_reduced_blocks } from "./idct_reduced";

const LOOKAHEAD: i32 = 9;
const FAST_BITS: i32 = 11; // entropy.ts FAST_AC_BITS
// A table's fastAc and fastAcPair (decoder.ts writes them there).
const FAST_AT: usize = 1536;
const PAIR_AT: usize = FAST_AT + (4 << FAST_BITS);

// Bit reader state: the low `bits` bits of `acc` are unread.
let data: usize = 0;
let dataEnd: usize = 0;
let pos: usize = 0;
let acc: u64 = 0;
let bits: i32 = 0;
let atMarker: bool = false;
let pastEnd: i32 = 0;
// Zero bits supplied at a marker since the scan's start or last restart: the
// decoder ran out of data (libjpeg's insufficient_data) when it has consumed
// any, that is when `zeros > bits` (see `starved`).
let zeros: i32 = 0;
let failure: i32 = 0; // 1: a code matches no symbol
let natural: usize = 0;

// The next byte of entropy-coded data, with the stuffing and marker rules of
// entropy.ts: a stuffed 0xff00 gives 0xff, fill bytes are skipped, and at a
// marker or past the data's end it gives zeros (counted in `zeros` at a marker,
// in `pastEnd` past the end).
@inline function nextByte(): u64 {
  if (atMarker) {
    zeros += 8;
    return 0;
  }
  if (pos >= dataEnd) {
    pastEnd += 8;
    return 0;
  }
  const v = <u64>load<u8>(pos);
  if (v != 0xff) {
    pos++;
    return v;
  }
  let skip: usize = 1;
  while (pos + skip < dataEnd && load<u8>(pos + skip) == 0xff) skip++; // fill bytes
  if (pos + skip >= dataEnd) {
    pastEnd += 8;
    pos = dataEnd;
    return 0;
  }
  if (load<u8>(pos + skip) == 0) {
    pos += skip + 1;
    return 0xff; // a stuffed zero
  }
  atMarker = true;
  zeros += 8;
  pos += skip - 1; // the last 0xff before the marker code
  return 0;
}

// Whether the decoder consumed zero bits supplied at a marker (`b` unread
// bits): libjpeg's decoders then leave the MCUs up to the next restart as
// they are (jdhuff.c and jdphuff.c's decode_mcu; a sequential scan's are
// zero, grey).
@inline function starved(b: i32): bool {
  return zeros > b;
}

// Tops the buffer up: four bytes at once when none of them is 0xff,
// else byte by byte with the stuffing and marker rules of entropy.ts.
function fill(): void {
  if (bits <= 32 && !atMarker && pos + 4 <= dataEnd) {
    const w = load<u32>(pos);
    const v = ~w;
    if (((v - 0x01010101) & ~v & 0x80808080) == 0) {
      acc = (acc << 32) | <u64>bswap<u32>(w);
      bits += 32;
      pos += 4;
      return;
    }
  }
  while (bits <= 56) {
    const byte = nextByte();
    acc = (acc << 8) | byte;
    bits += 8;
  }
}

@inline function getBits(n: i32): i32 {
  if (bits < n) fill();
  bits -= n;
  return <i32>(acc >> <u64>bits) & ((1 << n) - 1);
}

@inline function getBit(): i32 {
  if (bits < 1) fill();
  bits--;
  return <i32>(acc >> <u64>bits) & 1;
}

@inline function decodeSymbol(t: usize): i32 {
  if (bits < 16) fill();
  return decodeFilled(t);
}

// decodeSymbol with at least 16 bits in the buffer.
@inline function decodeFilled(t: usize): i32 {
  const peek = <i32>(acc >> <u64>(bits - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1);
  const entry = <i32>load<u16>(t + (<usize>peek << 1));
  if (entry != 0) {
    bits -= entry >> 8;
    return entry & 0xff;
  }
  let length = LOOKAHEAD + 1;
  let code = <i32>(acc >> <u64>(bits - length)) & ((1 << length) - 1);
  while (code > load<i32>(t + 1024 + (<usize>length << 2))) {
    length++;
    if (length > 16) {
      failure = 1;
      return 0;
    }
    code = <i32>(acc >> <u64>(bits - length)) & ((1 << length) - 1);
  }
  bits -= length;
  return <i32>load<u8>(t + 1168 + <usize>(code + load<i32>(t + 1096 + (<usize>length << 2))));
}

@inline function receive(s: i32): i32 {
  const r = getBits(s);
  return r < 1 << (s - 1) ? r - (1 << s) + 1 : r;
}

// Whether `i` lies in the range packed in `range` (first | one past the last << 16).
@inline function within(i: i32, range: u32): bool {
  return <u32>i >= (range & 0xffff) && <u32>i < range >> 16;
}

@inline function zz(k: i32): usize {
  return <usize>load<u8>(natural + <usize>k) << 1;
}

// ---------------------------------------------------------------- blocks

// Sequential scans keep the bit buffer the other way round: the `bits`
// unread bits are the top of `acc` (MSB first), so a lookup takes the top
// bits with a shift by a constant and a code is consumed by one shift left.
// The bits under them are 0 or the stream's next bits (a refill ORs those
// same bits again), so whole bytes can be ORed in without clearing.

// A block of a component's first sequential scan, which writes each block
// once: it is cleared here, in cache, instead of clearing all coefficients
// before the scan (a later scan's blocks go to baselineOver).
function baseline(out: usize, dc: usize, ac: usize, pred: i32): i32 {
  clearBlock(out);
  // The bit buffer lives in locals here (globals would go through memory
  // on every code). At least 32 bits before each code: a code (16 bits at
  // most) and its extra bits (15 at most) without another check.
  let a = acc;
  let b = bits;
  if (b < 32) {
    a = refillTop(a, b);
    b = bits;
  }
  let e = <i32>load<u16>(dc + (<usize>(a >> <u64>(64 - LOOKAHEAD)) << 1));
  let t = e & 0xff;
  let n = e >> 8;
  if (e == 0) {
    t = slowSymbolTop(dc, a);
    n = slowLength;
  }
  a <<= <u64>n;
  b -= n;
  let value = pred;
  if (t != 0) {
    const x = <i32>(a >> <u64>(64 - t));
    a <<= <u64>t;
    b -= t;
    value += x + (((x - (1 << (t - 1))) >> 31) & ((-1 << t) + 1));
  }
  store<i16>(out, <i16>value);
  const fast = ac + FAST_AT;
  const pair = ac + PAIR_AT;
  const nat = natural;
  for (let k = 1; k < 64; k++) {
    if (b < 32) {
      // Whole bytes while none of the next 8 is 0xff (no stuffing, no
      // marker): as many as fit in 63 bits, 4 to 7, without a call.
      const w = load<u64>(pos);
      const v = ~w;
      if (
        pos + 8 <= dataEnd && ((v - 0x0101010101010101) & ~v & 0x8080808080808080) == 0 &&
        !atMarker
      ) {
        a |= bswap<u64>(w) >> <u64>b;
        const m = (63 - b) & ~7;
        b += m;
        pos += <usize>(m >> 3);
      } else {
        a = refillTop(a, b);
        b = bits;
      }
    }
    // One lookup resolves a coefficient with its extra bits, a run of 16
    // zeros (a 0 stored 15 on) or the end of the block (run 63: k passes 63,
    // the 0 stored lands on position 63 through the natural order's tail).
    const index = <usize>(a >> <u64>(64 - FAST_BITS));
    const f = load<i32>(fast + (index << 2));
    if (f != 0) {
      // The symbol after it, when the same prefix holds it too (fastAcPair):
      // taken unless the first filled the block (position 63, or past it by
      // a run of 16 zeros: the next code is the next block's).
      const g = <i32>load<u16>(pair + (index << 1));
      k += (f >> 8) & 63;
      store<i16>(out + (<usize>load<u8>(nat + <usize>k) << 1), <i16>(f >> 16));
      let n = f & 0xff;
      if (k < 63) {
        // Both symbols' bits (the first's alone when there is no second: step 0, and
        // f's value stored again where it is).
        n = g & 15;
        const step = (g >> 4) & 127;
        k += step;
        store<i16>(
          out + (<usize>load<u8>(nat + <usize>k) << 1),
          <i16>select<i32>((g << 16) >> 27, f >> 16, step != 0),
        );
      }
      a <<= <u64>n;
      b -= n;
      continue;
    }
    e = <i32>load<u16>(ac + (<usize>(a >> <u64>(64 - LOOKAHEAD)) << 1));
    let rs = e & 0xff;
    n = e >> 8;
    if (e == 0) {
      rs = slowSymbolTop(ac, a);
      n = slowLength;
    }
    a <<= <u64>n;
    b -= n;
    const s = rs & 15;
    const r = rs >> 4;
    if (s == 0) {
      if (r != 15) break;
      k += 15;
      continue;
    }
    k += r;
    const x = <i32>(a >> <u64>(64 - s));
    a <<= <u64>s;
    b -= s;
    store<i16>(
      out + (<usize>load<u8>(nat + <usize>k) << 1),
      <i16>(x + (((x - (1 << (s - 1))) >> 31) & ((-1 << s) + 1))),
    );
  }
  acc = a;
  bits = b;
  return value;
}

// A block of a later sequential scan of its component: as libjpeg's
// coefficient buffer keeps them, its DC term and its non-zero AC terms
// replace those in the block and the others stay, so nothing is stored for
// a run of 16 zeros or an end of block (baseline's one-lookup entries store
// 0s there, harmless only in a block just cleared). One symbol at a time
// through the 9-bit lookup: such scans are rare.
function baselineOver(out: usize, dc: usize, ac: usize, pred: i32): i32 {
  let a = acc;
  let b = bits;
  if (b < 32) {
    a = refillTop(a, b);
    b = bits;
  }
  let e = <i32>load<u16>(dc + (<usize>(a >> <u64>(64 - LOOKAHEAD)) << 1));
  let t = e & 0xff;
  let n = e >> 8;
  if (e == 0) {
    t = slowSymbolTop(dc, a);
    n = slowLength;
  }
  a <<= <u64>n;
  b -= n;
  let value = pred;
  if (t != 0) {
    const x = <i32>(a >> <u64>(64 - t));
    a <<= <u64>t;
    b -= t;
    value += x + (((x - (1 << (t - 1))) >> 31) & ((-1 << t) + 1));
  }
  store<i16>(out, <i16>value);
  const nat = natural;
  for (let k = 1; k < 64; k++) {
    if (b < 32) {
      a = refillTop(a, b);
      b = bits;
    }
    e = <i32>load<u16>(ac + (<usize>(a >> <u64>(64 - LOOKAHEAD)) << 1));
    let rs = e & 0xff;
    n = e >> 8;
    if (e == 0) {
      rs = slowSymbolTop(ac, a);
      n = slowLength;
    }
    a <<= <u64>n;
    b -= n;
    const s = rs & 15;
    const r = rs >> 4;
    if (s == 0) {
      if (r != 15) break;
      k += 15;
      continue;
    }
    k += r;
    const x = <i32>(a >> <u64>(64 - s));
    a <<= <u64>s;
    b -= s;
    store<i16>(
      out + (<usize>load<u8>(nat + <usize>k) << 1),
      <i16>(x + (((x - (1 << (s - 1))) >> 31) & ((-1 << s) + 1))),
    );
  }
  acc = a;
  bits = b;
  return value;
}

// fill() for a sequential scan's top-aligned buffer in locals: byte by byte
// with the stuffing and marker rules, up to 57-64 bits. Returns the new
// `acc`; the new bit count is in `bits`.
@inline function refillTop(a: u64, b: i32): u64 {
  a &= ~(<u64>-1 >> <u64>b); // the bits under the unread ones may be stale: clear them
  while (b <= 56) {
    const byte = nextByte();
    a |= byte << <u64>(56 - b);
    b += 8;
  }
  bits = b;
  return a;
}

let slowLength: i32 = 0;

// A code longer than the lookahead from the top of a sequential scan's
// buffer (at least 16 bits): the symbol, its length in `slowLength` (0 and
// `failure` set when no code matches).
@inline function slowSymbolTop(t: usize, a: u64): i32 {
  let length = LOOKAHEAD + 1;
  let code = <i32>(a >> <u64>(64 - length));
  while (code > load<i32>(t + 1024 + (<usize>length << 2))) {
    length++;
    if (length > 16) {
      failure = 1;
      slowLength = 0;
      return 0;
    }
    code = <i32>(a >> <u64>(64 - length));
  }
  slowLength = length;
  return <i32>load<u8>(t + 1168 + <usize>(code + load<i32>(t + 1096 + (<usize>length << 2))));
}

// fill() for a caller holding the buffer in locals: returns the new `acc`
// (the new bit count is in `bits`).
function refill(a: u64, b: i32): u64 {
  acc = a;
  bits = b;
  fill();
  return acc;
}

// fill's fast path without a call, for the progressive AC scans (the buffer
// in locals, under 32 bits): the next four bytes, big-endian, taken when none
// of them is 0xff (no stuffing, no marker) and they are there; else -1,
// nothing taken (the caller then calls refill).
@inline function takeWord(): i64 {
  const w = !atMarker && pos + 4 <= dataEnd ? load<u32>(pos) : 0xffffffff;
  const v = ~w;
  if (((v - 0x01010101) & ~v & 0x80808080) != 0) return -1;
  pos += 4;
  return <i64>bswap<u32>(w);
}

// A code longer than the lookahead, for a caller holding the buffer in
// locals (at least 16 bits): the symbol, the new bit count in `bits`.
function slowSymbol(t: usize, a: u64, b: i32): i32 {
  acc = a;
  bits = b;
  return decodeFilled(t);
}

let eobrun: i32 = 0;


// The zig-zag bit of index `k` (indices past 63 are position 63, as the
// natural order table maps them).
@inline function zbit(k: i32): u64 {
  return <u64>1 << <u64>(k < 63 ? k : 63);
}

// A progressive frame's coefficient blocks are not cleared before its scans:
// a block is cleared when its first AC term is stored (its non-zero mark is
// then 0: its coefficients were never written or are all 0; its DC term
// lives apart), and the IDCT takes a block whose mark is 0 as DC alone,
// without reading it. So a block no AC term reaches is never touched.
@inline function clearBlock(out: usize): void {
  const zero = i64x2.splat(0);
  v128.store(out, zero, 0);
  v128.store(out, zero, 16);
  v128.store(out, zero, 32);
  v128.store(out, zero, 48);
  v128.store(out, zero, 64);
  v128.store(out, zero, 80);
  v128.store(out, zero, 96);
  v128.store(out, zero, 112);
}

// Progressive AC scans hold the bit buffer in locals (`a`, `b`: the low `b`
// bits of `a` unread, as `acc` and `bits`), refilled through `refill`, and
// write it back at the end of each block.

// A progressive AC first scan's block; `keep` false: its coefficients are
// not stored (only its non-zero marks).
function acFirst(out: usize, ac: usize, ss: i32, se: i32, al: i32, m: usize, keep: bool): void {
  if (eobrun > 0) {
    eobrun--;
    return;
  }
  let nz = load<u64>(m);
  let a = acc;
  let b = bits;
  const fast = ac + 1536;
  for (let k = ss; k <= se; k++) {
    // At least 32 bits: a code (16 at most) and its extra bits (14 at most).
    if (b < 32) {
      const w = takeWord();
      if (w >= 0) {
        a = (a << 32) | <u64>w;
        b += 32;
      } else {
        a = refill(a, b);
        b = bits;
      }
    }
    // One lookup resolves most coefficients with their extra bits (a fast
    // entry whose value is 0 is a run or an end of band: the table's).
    const f = load<i32>(fast + ((<usize>(a >> <u64>(b - FAST_BITS)) & ((1 << FAST_BITS) - 1)) << 2));
    if (f >> 16 != 0) {
      b -= f & 0xff;
      k += (f >> 8) & 15;
      const value = <i16>((f >> 16) << al);
      if (keep) {
        if (nz == 0) clearBlock(out);
        store<i16>(out + zz(k), value);
      }
      nz = value != 0 ? nz | zbit(k) : nz & ~zbit(k);
      continue;
    }
    const e = symbolLength(ac, a, b);
    b -= e >> 8;
    const s = e & 15;
    const r = (e >> 4) & 15;
    if (s != 0) {
      k += r;
      b -= s;
      const x = <i32>(a >> <u64>b) & ((1 << s) - 1);
      const value = <i16>((x + (((x - (1 << (s - 1))) >> 31) & ((-1 << s) + 1))) << al);
      if (keep) {
        if (nz == 0) clearBlock(out);
        store<i16>(out + zz(k), value);
      }
      nz = value != 0 ? nz | zbit(k) : nz & ~zbit(k);
    } else if (r == 15) {
      k += 15;
    } else {
      eobrun = (1 << r) - 1;
      if (r != 0) {
        b -= r;
        eobrun += <i32>(a >> <u64>b) & ((1 << r) - 1);
      }
      break;
    }
  }
  acc = a;
  bits = b;
  store<u64>(m, nz);
}

// The code at the top of the `b` unread bits of `a` (at least 16): its
// length and symbol as `(length << 8) | symbol` (0 and `failure` set when no
// code matches).
@inline function symbolLength(t: usize, a: u64, b: i32): i32 {
  const e = <i32>load<u16>(t + ((<usize>(a >> <u64>(b - LOOKAHEAD)) & ((1 << LOOKAHEAD) - 1)) << 1));
  if (e != 0) return e;
  const symbol = slowSymbol(t, a, b);
  return ((b - bits) << 8) | symbol;
}

// A progressive AC refinement scan's block; `keep` false: its coefficients
// are neither read nor stored (the bits are read and its non-zero marks kept).
// Each code's run of zeros is found in the non-zero marks (the bits of the
// zero positions cleared one by one, not position by position), and the
// non-zero coefficients passed on the way read one correction bit each.
@inline function acRefine(out: usize, ac: usize, ss: i32, se: i32, al: i32, m: usize, keep: bool): void {
  const p1 = 1 << al;
  const m1 = -1 << al;
  let nz = load<u64>(m);
  let k = ss;
  let a = acc;
  let b = bits;
  const band = <u64>-1 >> <u64>(63 - se); // positions 0 to se
  if (eobrun == 0) {
    for (; k <= se; k++) {
      // At least 32 bits: a code (16 at most), then a sign bit or the end-of-band run's bits (14).
      if (b < 32) {
        const w = takeWord();
        if (w >= 0) {
          a = (a << 32) | <u64>w;
          b += 32;
        } else {
          a = refill(a, b);
          b = bits;
        }
      }
      const e = symbolLength(ac, a, b);
      b -= e >> 8;
      const r = (e >> 4) & 15;
      let s = e & 15;
      if (s != 0) {
        b--;
        s = <i32>(a >> <u64>b) & 1 ? p1 : m1;
      } else if (r != 15) {
        eobrun = 1 << r;
        if (r != 0) {
          b -= r;
          eobrun += <i32>(a >> <u64>b) & ((1 << r) - 1);
        }
        break;
      }
      // The code's position: the (r + 1)-th zero from k (jdphuff.c's loop
      // stops there), or se + 1 when the band has fewer.
      const from = <u64>-1 << <u64>k;
      let zeros = ~nz & from & band;
      // Runs of up to 3 zeros (92 % of the codes in the bench's photos) without a branch.
      zeros = select<u64>(zeros & (zeros - 1), zeros, r > 0);
      zeros = select<u64>(zeros & (zeros - 1), zeros, r > 1);
      zeros = select<u64>(zeros & (zeros - 1), zeros, r > 2);
      for (let i = 3; i < r; i++) zeros &= zeros - 1;
      // The non-zero coefficients passed on the way read a correction bit each.
      const passed = nz & from & band & ((zeros & (~zeros + 1)) - 1);
      bits = b;
      if (keep) {
        a = refineAll(out, passed, a, p1, m1);
      } else {
        a = skipBits(<i32>popcnt(passed), a);
      }
      b = bits;
      k = zeros != 0 ? <i32>ctz(zeros) : se + 1;
      if (s != 0) {
        if (keep) {
          if (nz == 0) clearBlock(out);
          store<i16>(out + zz(k), <i16>s);
        }
        nz |= zbit(k);
      }
    }
  }
  if (eobrun > 0) {
    // In an end-of-band run only the non-zero coefficients read a bit.
    if (k <= se) {
      const passed = nz & (<u64>-1 << <u64>k) & band;
      bits = b;
      a = keep ? refineAll(out, passed, a, p1, m1) : skipBits(<i32>popcnt(passed), a);
      b = bits;
    }
    eobrun--;
  }
  acc = a;
  bits = b;
  store<u64>(m, nz);
}

// Reads a correction bit for each non-zero coefficient marked in `passed`
// (zig-zag positions, in order) and applies it (jdphuff.c). The bit buffer:
// `a` and `bits` in, the new `a` returned and the new count in `bits`.
@inline function refineAll(out: usize, passed: u64, a: u64, p1: i32, m1: i32): u64 {
  let b = bits;
  while (passed != 0) {
    const at = out + zz(<i32>ctz(passed));
    passed &= passed - 1;
    if (b < 1) {
      a = refill(a, b);
      b = bits;
    }
    b--;
    const coef = <i32>load<i16>(at);
    const apply = (<i32>(a >> <u64>b) & 1) != 0 && (coef & p1) == 0;
    store<i16>(at, <i16>select<i32>(coef + select<i32>(p1, m1, coef >= 0), coef, apply));
  }
  bits = b;
  return a;
}

// Consumes `n` bits (correction bits nothing applies). The bit buffer as refineAll's.
@inline function skipBits(n: i32, a: u64): u64 {
  let b = bits;
  while (n > b) {
    n -= b;
    a = refill(a, 0);
    b = bits;
  }
  bits = b - n;
  return a;
}

// ---------------------------------------------------------------- scans

/** Finds the marker at or after `p`: returns its position (0xff), or `dataEnd`. */
function findMarker(p: usize): usize {
  for (; p + 1 < dataEnd; p++) {
    if (load<u8>(p) != 0xff) continue;
    const next = load<u8>(p + 1);
    if (next != 0 && next != 0xff) return p;
  }
  return dataEnd;
}

// The end of restart interval number `restarts` (from 0): empties the bit
// buffer and steps over the RSTn marker that must come next. False when the
// next marker is another one (the scan is corrupt).
@inline function takeRestart(restarts: i32): bool {
  acc = 0;
  bits = 0;
  atMarker = false;
  zeros = 0;
  const m = findMarker(pos);
  if (m + 1 >= dataEnd || <i32>load<u8>(m + 1) != 0xd0 + (restarts & 7)) return false;
  pos = m + 2;
  return true;
}

/**
 * Decodes one scan of the `length` bytes at `start`, from offset `offset`.
 * Returns the offset where the entropy-coded data ends (a marker or the end),
 * or -1 for a code that matches no symbol, -2 for data past the end of the
 * file, -(3 + mcu) for a missing restart marker before MCU `mcu`.
 */
export function decode_scan(start: usize, length: i32, offset: i32, d: usize): i32 {
  data = start;
  dataEnd = start + <usize>length;
  pos = start + <usize>offset;
  acc = 0;
  bits = 0;
  atMarker = false;
  pastEnd = 0;
  zeros = 0;
  failure = 0;
  eobrun = 0;
  natural = d + 256;
  const count = load<i32>(d, 0);
  const progressive = load<i32>(d, 16) != 0;
  const ss = load<i32>(d, 20);
  const ah = load<i32>(d, 28);
  const al = load<i32>(d, 32);
  const single = count == 1;
  const c0 = d + 48;
  const mcusWide = single ? load<i32>(c0, 8) : load<i32>(d, 4);
  const mcusHigh = single ? load<i32>(c0, 12) : load<i32>(d, 8);
  const total = mcusWide * mcusHigh;
  const interval = load<i32>(d, 12) > 0 ? load<i32>(d, 12) : total;
  // kind: 0 sequential, 1 DC first, 2 DC refine, 3 AC first, 4 AC refine
  const kind = !progressive ? 0 : ss == 0 ? (ah == 0 ? 1 : 2) : (ah == 0 ? 3 : 4);
  const coef0 = <usize>load<i32>(c0, 0);
  const padded0 = load<i32>(c0, 4);
  const shift0 = <usize>load<i32>(c0, 36);
  const dc0 = <usize>load<i32>(c0, 24);
  const ac0 = <usize>load<i32>(c0, 28);
  const clear0 = load<i32>(c0, 40) != 0;
  let pred0 = 0;
  const stream = <usize>load<i32>(d, 36);
  const rows = stream != 0 ? 0 : 1; // block rows advance with the MCU row unless streaming
  const keepX = load<u32>(d, 40);
  const keepY = load<u32>(d, 44);
  if (!single && (kind == 1 || kind == 2)) {
    return dcInterleaved(d, count, mcusWide, total, interval, kind == 2, al, keepX, keepY);
  }
  if (!single && kind == 0) return sequentialInterleaved(d, count, mcusWide, total, interval, rows);
  // A progressive AC scan names one component (readScan refuses others): nothing else is interleaved.
  if (!single) return -1;
  // A progressive frame is never streamed (decoder.ts streams sequential frames
  // only): its AC scans all run in acScan, the one caller of acFirst and acRefine.
  if (kind == 3 || kind == 4) return acScan(d, kind == 4, mcusWide, total, interval);
  let restarts = 0;
  let untilRestart = interval;
  let mx = 0;
  let my = 0;
  let skip = false; // starved earlier in this restart interval
  for (let mcu = 0; mcu < total; mcu++) {
    if (untilRestart == 0) {
      if (pastEnd > bits) return -2;
      if (!takeRestart(restarts)) return -(3 + mcu);
      restarts++;
      pred0 = 0;
      eobrun = 0;
      untilRestart = interval;
      skip = false;
    }
    untilRestart--;
    // A non-interleaved scan: one block per MCU, the descriptor in locals.
    const index = <usize>(my * rows * padded0 + mx);
    const out = coef0 + (index << shift0);
    const keep = within(mx, keepX) && within(my, keepY);
    if (skip) {
      if (kind == 0 && clear0) clearBlock(out);
    } else if (kind == 0) {
      pred0 = clear0 ? baseline(out, dc0, ac0, pred0) : baselineOver(out, dc0, ac0, pred0);
    } else if (kind == 1) {
      const t = decodeSymbol(dc0);
      if (t != 0) pred0 += receive(t);
      if (keep) store<i16>(out, <i16>(pred0 << al));
    } else {
      // kind 2, a DC refinement
      if (getBit() && keep) store<i16>(out, <i16>(<i32>load<i16>(out) | (1 << al)));
    }
    if (failure != 0) return -1;
    skip = skip || starved(bits);
    if (++mx == mcusWide) {
      if (stream != 0) flushRow(d, stream, count, my, true);
      mx = 0;
      my++;
    }
  }
  if (pastEnd > bits) return -2;
  return <i32>((atMarker ? pos : findMarker(pos)) - data);
}

/**
 * A progressive AC scan (one component, one block per MCU) in a loop of its
 * own, whose few live values stay in registers around the block calls (in
 * decode_scan's loop V8 spilled and reloaded dozens per block). Returns as
 * decode_scan.
 */
function acScan(d: usize, refine: bool, mcusWide: i32, total: i32, interval: i32): i32 {
  const c0 = d + 48;
  const coef = <usize>load<i32>(c0, 0);
  const padded = load<i32>(c0, 4);
  const ac = <usize>load<i32>(c0, 28);
  const marks = <usize>load<i32>(c0, 32);
  const shift = <usize>load<i32>(c0, 36);
  const ss = load<i32>(d, 20);
  const se = load<i32>(d, 24);
  const al = load<i32>(d, 32);
  const keepX = load<u32>(d, 40);
  const keepY = load<u32>(d, 44);
  // Positions ss to se as bits.
  const band = (<u64>-1 << <u64>(ss & 63)) & (<u64>-1 >> <u64>((63 - se) & 63));
  let restarts = 0;
  let untilRestart = interval;
  let mx = 0;
  let my = 0;
  let skip = false; // starved earlier in this restart interval
  for (let mcu = 0; mcu < total; mcu++) {
    if (untilRestart == 0) {
      if (pastEnd > bits) return -2;
      if (!takeRestart(restarts)) return -(3 + mcu);
      restarts++;
      eobrun = 0;
      untilRestart = interval;
      skip = false;
    }
    untilRestart--;
    if (skip || (!refine && eobrun > 0)) {
      // Blocks that read and store nothing are passed over at once: the rest
      // of the restart interval once the data ran out, or of an end-of-band
      // run in an AC first scan.
      const n = skip
        ? min(untilRestart + 1, total - mcu)
        : min(eobrun, min(untilRestart + 1, total - mcu));
      if (!skip) eobrun -= n;
      untilRestart -= n - 1;
      mcu += n - 1;
      mx += n;
      while (mx >= mcusWide) {
        mx -= mcusWide;
        my++;
      }
      continue;
    }
    const index = <usize>(my * padded + mx);
    const out = coef + (index << shift);
    const m = marks + (index << 3);
    const keep = within(mx, keepX) && within(my, keepY);
    if (!refine) {
      acFirst(out, ac, ss, se, al, m, keep);
    } else if (eobrun > 0 && (load<u64>(m) & band) == 0) {
      // In an end-of-band run a refinement reads a bit per non-zero term
      // of the band: a block with none reads nothing.
      eobrun--;
    } else {
      acRefine(out, ac, ss, se, al, m, keep);
    }
    if (failure != 0) return -1;
    skip = starved(bits);
    if (++mx == mcusWide) {
      mx = 0;
      my++;
    }
  }
  if (pastEnd > bits) return -2;
  return <i32>((atMarker ? pos : findMarker(pos)) - data);
}

// Inverse-transforms MCU row `my` of a streamed scan (the block rows held at
// each component's `coef`) into the components' planes.
function flushRow(d: usize, stream: usize, count: i32, my: i32, single: bool): void {
  for (let ci = 0; ci < count; ci++) {
    const c = d + 48 + <usize>(ci * 48);
    const s = stream + <usize>(ci << 5);
    const coef = <usize>load<i32>(c, 0);
    const padded = load<i32>(c, 4);
    const v = single ? 1 : load<i32>(c, 20);
    const quant = <usize>load<i32>(s, 0);
    const plane = <usize>load<i32>(s, 4);
    const stride = load<i32>(s, 8);
    const size = load<i32>(s, 12);
    const bx0 = load<i32>(s, 16);
    const wide = load<i32>(s, 20) - bx0;
    const by0 = load<i32>(s, 24);
    const by1 = load<i32>(s, 28);
    if (wide <= 0) continue;
    for (let r = 0; r < v; r++) {
      const by = my * v + r;
      if (by < by0) continue;
      if (by >= by1) break;
      const src = coef + (<usize>(r * padded + bx0) << 7);
      const dst = plane + <usize>(by * size * stride + bx0 * size);
      if (size == 8) {
        idct_islow_blocks(src, padded, wide, 1, quant, dst, stride, 0, 0);
      } else {
        idct_reduced_blocks(src, padded, wide, 1, quant, dst, stride, size, stream + 128, false, 0, 0);
      }
    }
  }
}

/**
 * An interleaved sequential scan: the blocks of an MCU planned once (as in
 * dcInterleaved, with each block's tables and its component's DC
 * predictor). Returns as decode_scan.
 */
function sequentialInterleaved(
  d: usize, count: i32, mcusWide: i32, total: i32, interval: i32, rows: i32,
): i32 {
  // Per block of an MCU, 32 bytes: the block at MCU (0, 0), the step per MCU
  // across and per MCU row, the DC and AC tables, the address of its
  // component's predictor (4 i32 after the 10 blocks), whether it is cleared.
  const plan = d + 384;
  const preds = plan + 320;
  const stream = <usize>load<i32>(d, 36);
  let blocks = 0;
  for (let ci = 0; ci < count; ci++) {
    const c = d + 48 + <usize>(ci * 48);
    const coef = load<i32>(c, 0);
    const padded = load<i32>(c, 4);
    const h = load<i32>(c, 16);
    const v = load<i32>(c, 20);
    for (let bv = 0; bv < v; bv++) {
      for (let bh = 0; bh < h; bh++) {
        const p = plan + <usize>(blocks << 5);
        store<i32>(p, coef + ((bv * padded + bh) << 7), 0);
        store<i32>(p, h << 7, 4);
        store<i32>(p, (rows * v * padded) << 7, 8);
        store<i32>(p, load<i32>(c, 24), 12);
        store<i32>(p, load<i32>(c, 28), 16);
        store<i32>(p, <i32>preds + (ci << 2), 20);
        store<i32>(p, load<i32>(c, 40), 24);
        blocks++;
      }
    }
  }
  const end = plan + <usize>(blocks << 5);
  v128.store(preds, i64x2.splat(0));
  let restarts = 0;
  let untilRestart = interval;
  let mx = 0;
  let my = 0;
  let skip = false; // starved earlier in this restart interval
  for (let mcu = 0; mcu < total; mcu++) {
    if (untilRestart == 0) {
      if (pastEnd > bits) return -2;
      if (!takeRestart(restarts)) return -(3 + mcu);
      restarts++;
      v128.store(preds, i64x2.splat(0));
      untilRestart = interval;
      skip = false;
    }
    untilRestart--;
    for (let p = plan; p < end; p += 32) {
      const out = <usize>(load<i32>(p, 0) + mx * load<i32>(p, 4) + my * load<i32>(p, 8));
      const clear = load<i32>(p, 24) != 0;
      if (skip) {
        if (clear) clearBlock(out);
        continue;
      }
      const pred = <usize>load<i32>(p, 20);
      const dc = <usize>load<i32>(p, 12);
      const ac = <usize>load<i32>(p, 16);
      const value = load<i32>(pred);
      store<i32>(pred, clear ? baseline(out, dc, ac, value) : baselineOver(out, dc, ac, value));
    }
    if (failure != 0) return -1;
    skip = skip || starved(bits);
    if (++mx == mcusWide) {
      if (stream != 0) flushRow(d, stream, count, my, false);
      mx = 0;
      my++;
    }
  }
  if (pastEnd > bits) return -2;
  return <i32>((atMarker ? pos : findMarker(pos)) - data);
}

/**
 * An interleaved progressive DC scan (first or refinement): the blocks of an
 * MCU planned once, the bit buffer in locals (see baseline). Returns as
 * decode_scan.
 */
function dcInterleaved(
  d: usize, count: i32, mcusWide: i32, total: i32, interval: i32, refine: bool, al: i32,
  keepX: u32, keepY: u32,
): i32 {
  // Per block of an MCU, 16 bytes: the block at MCU (0, 0), the step per MCU
  // across and per MCU row, the component index (its DC table in the high bits).
  const plan = d + 384;
  let blocks = 0;
  for (let ci = 0; ci < count; ci++) {
    const c = d + 48 + <usize>(ci * 48);
    const coef = load<i32>(c, 0);
    const padded = load<i32>(c, 4);
    const h = load<i32>(c, 16);
    const v = load<i32>(c, 20);
    const shift = load<i32>(c, 36);
    for (let bv = 0; bv < v; bv++) {
      for (let bh = 0; bh < h; bh++) {
        const p = plan + <usize>(blocks << 4);
        store<i32>(p, coef + ((bv * padded + bh) << shift), 0);
        store<i32>(p, h << shift, 4);
        store<i32>(p, (v * padded) << shift, 8);
        store<i32>(p, ci, 12);
        blocks++;
      }
    }
  }
  const bit = 1 << al;
  let pred0 = 0;
  let pred1 = 0;
  let pred2 = 0;
  let pred3 = 0;
  let restarts = 0;
  let untilRestart = interval;
  let mx = 0;
  let my = 0;
  let a = acc;
  let b = bits;
  let keepRow = within(0, keepY);
  let skip = false; // starved earlier in this restart interval
  for (let mcu = 0; mcu < total; mcu++) {
    if (untilRestart == 0) {
      bits = b;
      if (pastEnd > bits) return -2;
      if (!takeRestart(restarts)) return -(3 + mcu);
      a = 0;
      b = 0;
      restarts++;
      pred0 = pred1 = pred2 = pred3 = 0;
      untilRestart = interval;
      skip = false;
    }
    untilRestart--;
    const keep = keepRow && within(mx, keepX);
    for (let k = 0; k < blocks && !skip; k++) {
      const p = plan + <usize>(k << 4);
      const out = <usize>(load<i32>(p, 0) + mx * load<i32>(p, 4) + my * load<i32>(p, 8));
      if (refine) {
        if (b < 1) {
          a = refill(a, b);
          b = bits;
        }
        b--;
        if (<i32>(a >> <u64>b) & 1 && keep) store<i16>(out, <i16>(<i32>load<i16>(out) | bit));
        continue;
      }
      if (b < 32) {
        a = refill(a, b);
        b = bits;
      }
      const ci = load<i32>(p, 12);
      const dc = <usize>load<i32>(d + 48 + <usize>(ci * 48), 24);
      const e = <i32>load<u16>(dc + ((<usize>(a >> <u64>(b - LOOKAHEAD)) & 511) << 1));
      let t = e & 0xff;
      if (e != 0) {
        b -= e >> 8;
      } else {
        t = slowSymbol(dc, a, b);
        b = bits;
        if (failure != 0) return -1;
      }
      let diff = 0;
      if (t != 0) {
        b -= t;
        const x = <i32>(a >> <u64>b) & ((1 << t) - 1);
        diff = x + (((x - (1 << (t - 1))) >> 31) & ((-1 << t) + 1));
      }
      let pred: i32;
      if (ci == 0) pred = pred0 += diff;
      else if (ci == 1) pred = pred1 += diff;
      else if (ci == 2) pred = pred2 += diff;
      else pred = pred3 += diff;
      if (keep) store<i16>(out, <i16>(pred << al));
    }
    skip = starved(b);
    if (++mx == mcusWide) {
      mx = 0;
      my++;
      keepRow = within(my, keepY);
    }
  }
  acc = a;
  bits = b;
  if (pastEnd > bits) return -2;
  return <i32>((atMarker ? pos : findMarker(pos)) - data);
}
