// Pillow's 8-bit resampling passes (ImagingResampleHorizontal_8bpc and
// ImagingResampleVertical_8bpc) on Wasm SIMD for RGB images: the per-pixel
// filter windows and 22-bit fixed-point weights come from the caller
// (src/image/resize.ts computes them exactly as Pillow does); accumulation
// starts at 1 << 21, then >> 22 and clamps to 0-255, as Pillow rounds.

const PRECISION_BITS: i32 = 22;

/**
 * Horizontal pass over `rows` rows of `srcWidth` RGB pixels into rows of
 * `outWidth` pixels. `bounds`: per output pixel the first input pixel and the
 * tap count (i32 pairs); `weights`: `taps` i32 per output pixel. Reads one
 * byte past the last pixel of `src`.
 */
export function resample_horizontal(
  src: usize, srcWidth: i32, rows: i32, dst: usize, outWidth: i32,
  bounds: usize, weights: usize, taps: i32,
): void {
  const half = i32x4.splat(1 << (PRECISION_BITS - 1));
  for (let y = 0; y < rows; y++) {
    const line = src + <usize>(y * srcWidth * 3);
    let o = dst + <usize>(y * outWidth * 3);
    for (let x = 0; x < outWidth; x++) {
      const first = load<i32>(bounds + <usize>(x << 3));
      const count = load<i32>(bounds + <usize>(x << 3), 4);
      const w = weights + <usize>(x * taps * 4);
      let acc = half;
      let p = line + <usize>(first * 3);
      for (let t = 0; t < count; t++) {
        const px = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p)));
        acc = i32x4.add(acc, i32x4.mul(px, i32x4.splat(load<i32>(w + <usize>(t << 2)))));
        p += 3;
      }
      const v = i32x4.shr_s(acc, PRECISION_BITS);
      const b = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(v, v), v128.splat<i16>(0));
      store<u16>(o, i16x8.extract_lane_u(b, 0));
      store<u8>(o, i8x16.extract_lane_u(b, 2), 2);
      o += 3;
    }
  }
}

/**
 * Vertical pass: `outHeight` rows of `rowBytes` bytes from the rows of `src`
 * (same row length), with `bounds` and `weights` as above, per output row.
 */
export function resample_vertical(
  src: usize, rowBytes: i32, dst: usize, outHeight: i32,
  bounds: usize, weights: usize, taps: i32,
): void {
  const half = i32x4.splat(1 << (PRECISION_BITS - 1));
  for (let y = 0; y < outHeight; y++) {
    const first = load<i32>(bounds + <usize>(y << 3));
    const count = load<i32>(bounds + <usize>(y << 3), 4);
    const w = weights + <usize>(y * taps * 4);
    const top = src + <usize>(first * rowBytes);
    const o = dst + <usize>(y * rowBytes);
    let x = 0;
    for (; x + 16 <= rowBytes; x += 16) {
      let a0 = half;
      let a1 = half;
      let a2 = half;
      let a3 = half;
      let p = top + <usize>x;
      for (let t = 0; t < count; t++) {
        const k = i32x4.splat(load<i32>(w + <usize>(t << 2)));
        const v = v128.load(p);
        const lo = i16x8.extend_low_i8x16_u(v);
        const hi = i16x8.extend_high_i8x16_u(v);
        a0 = i32x4.add(a0, i32x4.mul(i32x4.extend_low_i16x8_u(lo), k));
        a1 = i32x4.add(a1, i32x4.mul(i32x4.extend_high_i16x8_u(lo), k));
        a2 = i32x4.add(a2, i32x4.mul(i32x4.extend_low_i16x8_u(hi), k));
        a3 = i32x4.add(a3, i32x4.mul(i32x4.extend_high_i16x8_u(hi), k));
        p += <usize>rowBytes;
      }
      const s0 = i16x8.narrow_i32x4_s(i32x4.shr_s(a0, PRECISION_BITS), i32x4.shr_s(a1, PRECISION_BITS));
      const s1 = i16x8.narrow_i32x4_s(i32x4.shr_s(a2, PRECISION_BITS), i32x4.shr_s(a3, PRECISION_BITS));
      v128.store(o + <usize>x, i8x16.narrow_i16x8_u(s0, s1));
    }
    for (; x < rowBytes; x++) {
      let acc = 1 << (PRECISION_BITS - 1);
      let p = top + <usize>x;
      for (let t = 0; t < count; t++) {
        acc += <i32>load<u8>(p) * load<i32>(w + <usize>(t << 2));
        p += <usize>rowBytes;
      }
      const v = acc >> PRECISION_BITS;
      store<u8>(o + <usize>x, v > 255 ? 255 : v < 0 ? 0 : v);
    }
  }
}
