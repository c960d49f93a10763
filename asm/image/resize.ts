// Pillow's 8-bit resampling passes (ImagingResampleHorizontal_8bpc and
// ImagingResampleVertical_8bpc) on Wasm SIMD for RGB and grey images: the per-pixel
// filter windows and 22-bit fixed-point weights come from the caller
// (src/image/resize.ts computes them exactly as Pillow does); accumulation
// starts at 1 << 21, then >> 22 and clamps to 0-255, as Pillow rounds.

const PRECISION_BITS: i32 = 22;

/**
 * Horizontal pass over `rows` rows of RGB pixels (`stride` bytes apart) into
 * rows of `outWidth` pixels. `bounds`: per output pixel the first input pixel and the
 * tap count (i32 pairs); `weights`: per output pixel `pairs` pairs of taps,
 * 32 bytes each: i16 lanes (w[t] >> 11, w[t + 1] >> 11) three times, then
 * two zero lanes, and the same with w & 2047 (a weight past the count is 0).
 * Each pair of taps is then two 16-bit dot products per channel (pmaddwd),
 * and (high << 11) + low is the 32-bit sum of pixel x weight that Pillow
 * accumulates, exactly (weights are 22-bit, never negative); the low sums
 * start at Pillow's 1 << 21 (an addition per row and pixel saved). Four rows at a
 * time (then two, then one) share each pair's weight loads. Reads 8 bytes
 * from the first pixel of each pair (16 in a last odd row): `src` needs 16
 * bytes of slack; writes a pixel as 4 bytes (the fourth is the next pixel's,
 * or the output's slack after the last row): `dst` needs 1 byte of slack.
 */
export function resample_horizontal(
  src: usize, stride: i32, rows: i32, dst: usize, outWidth: i32,
  bounds: usize, weights: usize, pairs: i32,
): void {
  // V8 rebuilds a v128 constant (a shuffle's mask too) at each use in a loop:
  // made from a zero it cannot see (outWidth >= 0), they are made once, and
  // the byte shuffles are swizzles (an index of 16 or more gives 0).
  const z = i32x4.splat(outWidth >> 31);
  const half = v128.or(i32x4.splat(1 << (PRECISION_BITS - 1)), z);
  const zero = i32x4.splat(0);
  const pairMask = v128.or(i8x16(0, 3, 1, 4, 2, 5, 6, 7, 8, 11, 9, 12, 10, 13, 14, 15), z);
  const oneMask = v128.or(i8x16(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1), z);
  const rowBytes = outWidth * 3;
  let y = 0;
  for (; y + 4 <= rows; y += 4) {
    const line = src + <usize>(y * stride);
    let o = dst + <usize>(y * rowBytes);
    for (let x = 0; x < outWidth; x++) {
      const first = load<i32>(bounds + <usize>(x << 3));
      const count = load<i32>(bounds + <usize>(x << 3), 4);
      let w = weights + <usize>(x * pairs * 32);
      let high0 = zero;
      let low0 = half;
      let high1 = zero;
      let low1 = half;
      let high2 = zero;
      let low2 = half;
      let high3 = zero;
      let low3 = half;
      let p = line + <usize>(first * 3);
      for (let t = 0; t < count; t += 2) {
        const both01 = i8x16.swizzle(v128.load64_lane(p + <usize>stride, v128.load64_zero(p), 1), pairMask);
        const p2 = p + <usize>(2 * stride);
        const both23 = i8x16.swizzle(v128.load64_lane(p2 + <usize>stride, v128.load64_zero(p2), 1), pairMask);
        const wh = v128.load(w);
        const wl = v128.load(w, 16);
        const px0 = i16x8.extend_low_i8x16_u(both01);
        const px1 = i16x8.extend_high_i8x16_u(both01);
        const px2 = i16x8.extend_low_i8x16_u(both23);
        const px3 = i16x8.extend_high_i8x16_u(both23);
        high0 = i32x4.add(high0, i32x4.dot_i16x8_s(px0, wh));
        low0 = i32x4.add(low0, i32x4.dot_i16x8_s(px0, wl));
        high1 = i32x4.add(high1, i32x4.dot_i16x8_s(px1, wh));
        low1 = i32x4.add(low1, i32x4.dot_i16x8_s(px1, wl));
        high2 = i32x4.add(high2, i32x4.dot_i16x8_s(px2, wh));
        low2 = i32x4.add(low2, i32x4.dot_i16x8_s(px2, wl));
        high3 = i32x4.add(high3, i32x4.dot_i16x8_s(px3, wh));
        low3 = i32x4.add(low3, i32x4.dot_i16x8_s(px3, wl));
        p += 6;
        w += 32;
      }
      const v0 = i32x4.shr_s(i32x4.add(i32x4.shl(high0, 11), low0), PRECISION_BITS);
      const v1 = i32x4.shr_s(i32x4.add(i32x4.shl(high1, 11), low1), PRECISION_BITS);
      const v2 = i32x4.shr_s(i32x4.add(i32x4.shl(high2, 11), low2), PRECISION_BITS);
      const v3 = i32x4.shr_s(i32x4.add(i32x4.shl(high3, 11), low3), PRECISION_BITS);
      // Bytes 0-2, 4-6, 8-10, 12-14: the four rows' pixels.
      const b = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v0, v1), i16x8.narrow_i32x4_s(v2, v3));
      if (x + 1 < outWidth) {
        v128.store32_lane(o, b, 0);
        v128.store32_lane(o + <usize>rowBytes, b, 1);
        v128.store32_lane(o + <usize>(2 * rowBytes), b, 2);
      } else {
        // The fourth byte would be the next row's first pixel, already written.
        store<u16>(o, i16x8.extract_lane_u(b, 0));
        store<u8>(o, i8x16.extract_lane_u(b, 2), 2);
        store<u16>(o + <usize>rowBytes, i16x8.extract_lane_u(b, 2));
        store<u8>(o + <usize>rowBytes, i8x16.extract_lane_u(b, 6), 2);
        store<u16>(o + <usize>(2 * rowBytes), i16x8.extract_lane_u(b, 4));
        store<u8>(o + <usize>(2 * rowBytes), i8x16.extract_lane_u(b, 10), 2);
      }
      v128.store32_lane(o + <usize>(3 * rowBytes), b, 3);
      o += 3;
    }
  }
  for (; y + 2 <= rows; y += 2) {
    const line = src + <usize>(y * stride);
    let o = dst + <usize>(y * rowBytes);
    for (let x = 0; x < outWidth; x++) {
      const first = load<i32>(bounds + <usize>(x << 3));
      const count = load<i32>(bounds + <usize>(x << 3), 4);
      let w = weights + <usize>(x * pairs * 32);
      let high0 = zero;
      let low0 = half;
      let high1 = zero;
      let low1 = half;
      let p = line + <usize>(first * 3);
      for (let t = 0; t < count; t += 2) {
        // Bytes 0-7 of this row's pair of pixels, 8-15 of the next row's,
        // each as R0 R1 G0 G1 B0 B1 and two bytes the zero weights cancel.
        const both = v128.load64_lane(p + <usize>stride, v128.load64_zero(p), 1);
        const px = i8x16.swizzle(both, pairMask);
        const px0 = i16x8.extend_low_i8x16_u(px);
        const px1 = i16x8.extend_high_i8x16_u(px);
        const wh = v128.load(w);
        const wl = v128.load(w, 16);
        high0 = i32x4.add(high0, i32x4.dot_i16x8_s(px0, wh));
        low0 = i32x4.add(low0, i32x4.dot_i16x8_s(px0, wl));
        high1 = i32x4.add(high1, i32x4.dot_i16x8_s(px1, wh));
        low1 = i32x4.add(low1, i32x4.dot_i16x8_s(px1, wl));
        p += 6;
        w += 32;
      }
      const v0 = i32x4.shr_s(i32x4.add(i32x4.shl(high0, 11), low0), PRECISION_BITS);
      const v1 = i32x4.shr_s(i32x4.add(i32x4.shl(high1, 11), low1), PRECISION_BITS);
      // Bytes 0-2 this row's pixel, 4-6 the next row's.
      const b = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v0, v1), v128.splat<i16>(0));
      if (x + 1 < outWidth) {
        v128.store32_lane(o, b, 0);
      } else {
        // The fourth byte would be the next row's first pixel, already written.
        store<u16>(o, i16x8.extract_lane_u(b, 0));
        store<u8>(o, i8x16.extract_lane_u(b, 2), 2);
      }
      v128.store32_lane(o + <usize>rowBytes, b, 1);
      o += 3;
    }
  }
  for (; y < rows; y++) {
    const line = src + <usize>(y * stride);
    let o = dst + <usize>(y * rowBytes);
    for (let x = 0; x < outWidth; x++) {
      const first = load<i32>(bounds + <usize>(x << 3));
      const count = load<i32>(bounds + <usize>(x << 3), 4);
      let w = weights + <usize>(x * pairs * 32);
      let high = zero;
      let low = half;
      let p = line + <usize>(first * 3);
      for (let t = 0; t < count; t += 2) {
        // R0 R1 G0 G1 B0 B1 as 16-bit lanes, then two zero lanes.
        const px = i8x16.swizzle(v128.load(p), oneMask);
        high = i32x4.add(high, i32x4.dot_i16x8_s(px, v128.load(w)));
        low = i32x4.add(low, i32x4.dot_i16x8_s(px, v128.load(w, 16)));
        p += 6;
        w += 32;
      }
      const v = i32x4.shr_s(i32x4.add(i32x4.shl(high, 11), low), PRECISION_BITS);
      const b = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v, v), v128.splat<i16>(0));
      v128.store32_lane(o, b, 0);
      o += 3;
    }
  }
}

/**
 * Horizontal pass over `rows` rows of grey samples (one byte per pixel,
 * `stride` bytes apart) into rows of `outWidth` samples, with `bounds` as
 * above and `weights` per output pixel `chunks` groups of eight taps, 32
 * bytes each: i16 lanes w[t] >> 11 for t = 8j to 8j + 7, then w[t] & 2047 (a
 * weight past the count is 0). Four rows at a time (a last group of fewer
 * repeats its last row and stores only its own) and four output pixels at a
 * time (see greyPixel), stored as four bytes per row. Reads 8 bytes from the
 * first sample of each group: `src` needs 8 bytes of slack.
 */
export function resample_horizontal_grey(
  src: usize, stride: i32, rows: i32, dst: usize, outWidth: i32,
  bounds: usize, weights: usize, chunks: i32,
): void {
  const z = i32x4.splat(outWidth >> 31); // a zero V8 cannot see (see resample_horizontal)
  const half = v128.or(i32x4.splat(1 << (PRECISION_BITS - 1)), z);
  // Bytes (pixel, row) in pixel-major order to row-major: a 4x4 transpose.
  const transpose = v128.or(i8x16(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), z);
  const wStep = <usize>(chunks * 32);
  for (let y = 0; y < rows; y += 4) {
    const left = rows - y;
    const line0 = src + <usize>(y * stride);
    // Rows y + 1 to y + 3, or the last row again past the end.
    const line1 = line0 + <usize>(min(1, left - 1) * stride);
    const line2 = line0 + <usize>(min(2, left - 1) * stride);
    const line3 = line0 + <usize>(min(3, left - 1) * stride);
    const o = dst + <usize>(y * outWidth);
    let b = bounds;
    let w = weights;
    let x = 0;
    for (; x + 4 <= outWidth; x += 4) {
      const v0 = greyPixel(line0, line1, line2, line3, b, w, half, z);
      const v1 = greyPixel(line0, line1, line2, line3, b + 8, w + wStep, half, z);
      const v2 = greyPixel(line0, line1, line2, line3, b + 16, w + 2 * wStep, half, z);
      const v3 = greyPixel(line0, line1, line2, line3, b + 24, w + 3 * wStep, half, z);
      const bytes = i8x16.swizzle(
        i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v0, v1), i16x8.narrow_i32x4_s(v2, v3)),
        transpose,
      );
      const to = o + <usize>x;
      v128.store32_lane(to, bytes, 0);
      if (left >= 4) {
        v128.store32_lane(to + <usize>outWidth, bytes, 1);
        v128.store32_lane(to + <usize>(2 * outWidth), bytes, 2);
        v128.store32_lane(to + <usize>(3 * outWidth), bytes, 3);
      } else {
        if (left > 1) v128.store32_lane(to + <usize>outWidth, bytes, 1);
        if (left > 2) v128.store32_lane(to + <usize>(2 * outWidth), bytes, 2);
      }
      b += 32;
      w += 4 * wStep;
    }
    for (; x < outWidth; x++) {
      const v = greyPixel(line0, line1, line2, line3, b, w, half, z);
      const bytes = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v, v), z);
      const to = o + <usize>x;
      v128.store8_lane(to, bytes, 0);
      if (left > 1) v128.store8_lane(to + <usize>outWidth, bytes, 1);
      if (left > 2) v128.store8_lane(to + <usize>(2 * outWidth), bytes, 2);
      if (left > 3) v128.store8_lane(to + <usize>(3 * outWidth), bytes, 3);
      b += 8;
      w += wStep;
    }
  }
}

/**
 * One output pixel of four grey rows (`bound`: its first input pixel and tap
 * count; `w`: its weights), as i32 lanes 0-3: per group of eight taps, each
 * row's eight samples (one 8-byte load) times the high and the low weights by
 * two dot products, whose i32 lanes each sum two taps; then
 * (high << 11) + low per lane (exact: all of a row's lanes together stay
 * under 2^30), the four lanes of each row summed across, Pillow's rounding
 * term added and the sum shifted down (not yet clamped).
 */
@inline function greyPixel(
  line0: usize, line1: usize, line2: usize, line3: usize, bound: usize, w: usize,
  half: v128, zero: v128,
): v128 {
  const first = <usize>load<i32>(bound);
  const count = load<i32>(bound, 4);
  let high0 = zero;
  let low0 = zero;
  let high1 = zero;
  let low1 = zero;
  let high2 = zero;
  let low2 = zero;
  let high3 = zero;
  let low3 = zero;
  for (let t = 0; t < count; t += 8) {
    const at = first + <usize>t;
    const wh = v128.load(w);
    const wl = v128.load(w, 16);
    const px0 = v128.load8x8_u(line0 + at);
    const px1 = v128.load8x8_u(line1 + at);
    const px2 = v128.load8x8_u(line2 + at);
    const px3 = v128.load8x8_u(line3 + at);
    high0 = i32x4.add(high0, i32x4.dot_i16x8_s(px0, wh));
    low0 = i32x4.add(low0, i32x4.dot_i16x8_s(px0, wl));
    high1 = i32x4.add(high1, i32x4.dot_i16x8_s(px1, wh));
    low1 = i32x4.add(low1, i32x4.dot_i16x8_s(px1, wl));
    high2 = i32x4.add(high2, i32x4.dot_i16x8_s(px2, wh));
    low2 = i32x4.add(low2, i32x4.dot_i16x8_s(px2, wl));
    high3 = i32x4.add(high3, i32x4.dot_i16x8_s(px3, wh));
    low3 = i32x4.add(low3, i32x4.dot_i16x8_s(px3, wl));
    w += 32;
  }
  const s0 = i32x4.add(i32x4.shl(high0, 11), low0);
  const s1 = i32x4.add(i32x4.shl(high1, 11), low1);
  const s2 = i32x4.add(i32x4.shl(high2, 11), low2);
  const s3 = i32x4.add(i32x4.shl(high3, 11), low3);
  const s01 = i32x4.add(i32x4.shuffle(s0, s1, 0, 1, 4, 5), i32x4.shuffle(s0, s1, 2, 3, 6, 7));
  const s23 = i32x4.add(i32x4.shuffle(s2, s3, 0, 1, 4, 5), i32x4.shuffle(s2, s3, 2, 3, 6, 7));
  const sums = i32x4.add(
    half,
    i32x4.add(i32x4.shuffle(s01, s23, 0, 2, 4, 6), i32x4.shuffle(s01, s23, 1, 3, 5, 7)),
  );
  return i32x4.shr_s(sums, PRECISION_BITS);
}

/**
 * Vertical pass: `outHeight` rows of `rowBytes` bytes from the rows of `src`
 * (same row length), with `bounds` as above and `weights` per output row
 * `pairs` pairs of taps, 8 bytes each: i32 (w[t] >> 11) | (w[t + 1] >> 11) << 16,
 * then (w[t] & 2047) | (w[t + 1] & 2047) << 16 (a weight past the count is 0).
 * Each pair of input rows is interleaved byte by byte, so that one dot
 * product per four bytes of a row sums both taps of a split weight, and
 * (high << 11) + low is Pillow's sum exactly; the low sums start at its 1 << 21.
 */
export function resample_vertical(
  src: usize, rowBytes: i32, dst: usize, outHeight: i32,
  bounds: usize, weights: usize, pairs: i32,
): void {
  const z = i32x4.splat(outHeight >> 31); // a zero V8 cannot see (see resample_horizontal)
  const half = v128.or(i32x4.splat(1 << (PRECISION_BITS - 1)), z);
  for (let y = 0; y < outHeight; y++) {
    const first = load<i32>(bounds + <usize>(y << 3));
    const count = load<i32>(bounds + <usize>(y << 3), 4);
    const w = weights + <usize>(y * pairs * 8);
    const top = src + <usize>(first * rowBytes);
    const o = dst + <usize>(y * rowBytes);
    let x = 0;
    for (; x + 16 <= rowBytes; x += 16) {
      let high0 = z;
      let low0 = half;
      let high1 = z;
      let low1 = half;
      let high2 = z;
      let low2 = half;
      let high3 = z;
      let low3 = half;
      let p = top + <usize>x;
      let k = w;
      for (let t = 0; t < count; t += 2) {
        // The pair's second row, or its first again when the count is odd (its weight is 0).
        const next = t + 1 < count ? <usize>rowBytes : 0;
        const a = v128.load(p);
        const b = v128.load(p + next);
        const wh = v128.load32_splat(k);
        const wl = v128.load32_splat(k, 4);
        const ab0 = i8x16.shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const ab1 = i8x16.shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        const px0 = i16x8.extend_low_i8x16_u(ab0);
        const px1 = i16x8.extend_high_i8x16_u(ab0);
        const px2 = i16x8.extend_low_i8x16_u(ab1);
        const px3 = i16x8.extend_high_i8x16_u(ab1);
        high0 = i32x4.add(high0, i32x4.dot_i16x8_s(px0, wh));
        low0 = i32x4.add(low0, i32x4.dot_i16x8_s(px0, wl));
        high1 = i32x4.add(high1, i32x4.dot_i16x8_s(px1, wh));
        low1 = i32x4.add(low1, i32x4.dot_i16x8_s(px1, wl));
        high2 = i32x4.add(high2, i32x4.dot_i16x8_s(px2, wh));
        low2 = i32x4.add(low2, i32x4.dot_i16x8_s(px2, wl));
        high3 = i32x4.add(high3, i32x4.dot_i16x8_s(px3, wh));
        low3 = i32x4.add(low3, i32x4.dot_i16x8_s(px3, wl));
        p += <usize>(2 * rowBytes);
        k += 8;
      }
      const v0 = i32x4.shr_s(i32x4.add(i32x4.shl(high0, 11), low0), PRECISION_BITS);
      const v1 = i32x4.shr_s(i32x4.add(i32x4.shl(high1, 11), low1), PRECISION_BITS);
      const v2 = i32x4.shr_s(i32x4.add(i32x4.shl(high2, 11), low2), PRECISION_BITS);
      const v3 = i32x4.shr_s(i32x4.add(i32x4.shl(high3, 11), low3), PRECISION_BITS);
      v128.store(o + <usize>x, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v0, v1), i16x8.narrow_i32x4_s(v2, v3)));
    }
    for (; x < rowBytes; x++) {
      let acc = 1 << (PRECISION_BITS - 1);
      let p = top + <usize>x;
      for (let t = 0; t < count; t++) {
        const at = w + <usize>((t >> 1) << 3) + <usize>((t & 1) << 1);
        const weight = (<i32>load<u16>(at) << 11) + <i32>load<u16>(at, 4);
        acc += <i32>load<u8>(p) * weight;
        p += <usize>rowBytes;
      }
      const v = acc >> PRECISION_BITS;
      store<u8>(o + <usize>x, v > 255 ? 255 : v);
    }
  }
}
