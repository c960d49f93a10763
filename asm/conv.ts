// 2-D convolution on NHWC activations as an im2col GEMM, one cache block at a
// time: a block of output pixels is unfolded into a small per-thread scratch
// (rows of KH*KW*C values, ordered kh, kw, c) and multiplied by the packed
// weights at once, so the unfolded matrix never exists in full.
// 1x1 stride-1 convolutions skip this and call the GEMM on the input itself.

import {
  EPILOGUE_ACC, EPILOGUE_BIAS, EPILOGUE_RELU, gemm_acc, gemm_bias, gemm_bias_relu, gemm_block_rows,
} from "./gemm";
import { copy_floats, zero_floats } from "./simd";

/** Scratch bytes one thread needs for `conv2d_bias_relu` (or `_bias`, `_acc`) with depth k = KH*KW*C. */
export function conv2d_scratch_bytes(k: i32): usize {
  return <usize>gemm_block_rows(k) * (<usize>k << 2);
}

// Unfolds output pixels [m0, m1) into rows of k = kh*kw*c floats at `dst`,
// `ld` floats apart; only kernel rows [i0, i1) (columns [i0 * kw * c,
// i1 * kw * c)) are written, the rest of each row is left as it was.
@inline export function im2col_rows(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32, ld: i32, i0: i32, i1: i32,
  dst: usize, m0: i32, m1: i32,
): void {
  const rowBytes = <usize>c << 2;
  const pixelBytes = <usize>xstride << 2;
  const plane = oh * ow;
  // Windows wholly inside the input, of dense pixels, all kernel rows: each
  // kernel row is one contiguous span of kw * c floats (conv1: 21).
  const span = kw * c, spanBytes = <usize>span << 2, inRow = <usize>w * pixelBytes;
  const fast = xstride == c && i0 == 0 && i1 == kh && span >= 4;
  let img = m0 / plane;
  let oy = (m0 - img * plane) / ow;
  let ox = m0 - img * plane - oy * ow;
  for (let m = m0; m < m1; m++) {
    const base = x + <usize>img * <usize>h * <usize>w * pixelBytes;
    const next = dst + (<usize>ld << 2);
    const iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    if (fast && iy0 >= 0 && iy0 + kh <= h && ix0 >= 0 && ix0 + kw <= w) {
      let src = base + (<usize>iy0 * <usize>w + <usize>ix0) * pixelBytes;
      for (let i = 0; i < kh; i++, src += inRow, dst += spanBytes) copy_span(dst, src, span);
    } else {
      dst += rowBytes * <usize>(i0 * kw);
      for (let i = i0; i < i1; i++) {
        const iy = iy0 + i;
        if (<u32>iy >= <u32>h) {
          zero_floats(dst, c * kw);
          dst += rowBytes * <usize>kw;
          continue;
        }
        // The kw taps of one kernel row are adjacent pixels: zeros left of the
        // input, one copy of the pixels inside (when the channels are dense), zeros right.
        const left = min(max(-ix0, 0), kw);
        const right = min(max(ix0 + kw - w, 0), kw - left);
        const inside = kw - left - right;
        zero_floats(dst, c * left);
        dst += rowBytes * <usize>left;
        const src = base + (<usize>iy * <usize>w + <usize>(ix0 + left)) * pixelBytes;
        if (xstride == c) {
          copy_floats(dst, src, c * inside);
          dst += rowBytes * <usize>inside;
        } else {
          for (let j = 0; j < inside; j++, dst += rowBytes) copy_floats(dst, src + <usize>j * pixelBytes, c);
        }
        zero_floats(dst, c * right);
        dst += rowBytes * <usize>right;
      }
    }
    dst = next;
    if (++ox == ow) {
      ox = 0;
      if (++oy == oh) {
        oy = 0;
        img++;
      }
    }
  }
}

// Copies n >= 4 floats from src to dst (no overlap): vectors, the last one
// ending at the last float (it rewrites up to 3 floats before it with the
// same values) instead of a scalar tail.
@inline function copy_span(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  if (i < n) {
    const o = <usize>(n - 4) << 2;
    v128.store(dst + o, v128.load(src + o));
  }
}

/**
 * y = relu(conv2d(x, w) + bias) for output pixels [m0, m1) of all N images
 * (pixel m = (n * OH + oy) * OW + ox) and output-channel panels [p0, p1).
 * x: NHWC with `xstride` floats between pixels (a channel slice of a wider
 * tensor is read in place); y: NHWC with `ystride` floats between pixels.
 * w: weights packed for a GEMM of depth KH*KW*C (order kh, kw, c) and oc columns.
 * scratch: `conv2d_scratch_bytes(KH*KW*C)` bytes owned by the calling thread.
 */
export function conv2d_bias_relu(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32,
  wp: usize, oc: i32, y: usize, ystride: i32, scratch: usize, m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  conv2d_tiles(
    x, xstride, h, w, c, kh, kw, sh, sw, ph, pw, oh, ow, wp, oc, y, ystride, scratch, m0, m1, p0, p1,
    EPILOGUE_RELU,
  );
}

/** y = conv2d(x, w) + bias (no ReLU); arguments as for `conv2d_bias_relu`. */
export function conv2d_bias(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32,
  wp: usize, oc: i32, y: usize, ystride: i32, scratch: usize, m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  conv2d_tiles(
    x, xstride, h, w, c, kh, kw, sh, sw, ph, pw, oh, ow, wp, oc, y, ystride, scratch, m0, m1, p0, p1,
    EPILOGUE_BIAS,
  );
}

/** y += conv2d(x, w) + bias (no ReLU); arguments as for `conv2d_bias_relu`. */
export function conv2d_acc(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32,
  wp: usize, oc: i32, y: usize, ystride: i32, scratch: usize, m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  conv2d_tiles(
    x, xstride, h, w, c, kh, kw, sh, sw, ph, pw, oh, ow, wp, oc, y, ystride, scratch, m0, m1, p0, p1,
    EPILOGUE_ACC,
  );
}

// The driver, specialised at compile time by its epilogue (an EPILOGUE_*
// constant): it calls the GEMM export of that epilogue (one copy of each GEMM
// in the binary).
@inline function conv2d_tiles(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32,
  wp: usize, oc: i32, y: usize, ystride: i32, scratch: usize, m0: i32, m1: i32, p0: i32, p1: i32,
  epilogue: i32,
): void {
  const k = kh * kw * c;
  const mb = gemm_block_rows(k);
  for (let mStart = m0; mStart < m1; mStart += mb) {
    const rows = min(mb, m1 - mStart);
    im2col_rows(x, xstride, h, w, c, kh, kw, sh, sw, ph, pw, oh, ow, k, 0, kh, scratch, mStart, mStart + rows);
    const c = y + <usize>mStart * (<usize>ystride << 2);
    if (epilogue == EPILOGUE_RELU) {
      gemm_bias_relu(oc, k, scratch, k, wp, c, ystride, 0, rows, p0, p1);
    } else if (epilogue == EPILOGUE_ACC) {
      gemm_acc(oc, k, scratch, k, wp, c, ystride, 0, rows, p0, p1);
    } else {
      gemm_bias(oc, k, scratch, k, wp, c, ystride, 0, rows, p0, p1);
    }
  }
}
