// Pooling on NHWC activations, vectorised over channels. Rows are
// r = n * OH + oy; the caller computes OH, OW with PyTorch's rules
// (ceil_mode, and the last window must start inside the input or left padding).

// y[0..c) += x[0..c), 4 lanes at a time.
@inline function add_row(y: usize, x: usize, c: i32): void {
  let i = 0;
  for (; i + 4 <= c; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), v128.load(x + o)));
  }
  for (; i < c; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + load<f32>(x + o));
  }
}

@inline function scale_row(y: usize, s: f32, c: i32): void {
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= c; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.mul(v128.load(y + o), vs));
  }
  for (; i < c; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) * s);
  }
}

/** Scratch bytes one thread needs for `maxpool2d` on rows of `w` pixels of `c` channels. */
export function maxpool2d_scratch_bytes(w: i32, c: i32): usize {
  return (<usize>w * <usize>((c + 3) & ~3)) << 2;
}

// dst[0..c) = the lane-wise maximum of the `count` channel rows at src, src + step, ...
@inline function max_across(dst: usize, src: usize, step: usize, count: i32, c: i32): void {
  const c4 = c & ~3;
  let i = 0;
  if (count == 3) {
    for (; i < c4; i += 4) {
      const o = <usize>i << 2;
      const a = v128.load(src + o), b = v128.load(src + step + o), d = v128.load(src + 2 * step + o);
      v128.store(dst + o, f32x4.max(f32x4.max(a, b), d));
    }
  } else {
    for (; i < c4; i += 4) {
      const o = <usize>i << 2;
      let v = v128.load(src + o);
      for (let j = 1; j < count; j++) v = f32x4.max(v, v128.load(src + <usize>j * step + o));
      v128.store(dst + o, v);
    }
  }
  for (; i < c; i++) {
    const o = <usize>i << 2;
    let v = load<f32>(src + o);
    for (let j = 1; j < count; j++) v = max<f32>(v, load<f32>(src + <usize>j * step + o));
    store<f32>(dst + o, v);
  }
}

/**
 * Max pool, kernel k x k, stride s, padding p (padding never wins: it is not
 * part of any window), NaN propagates. Rows [r0, r1) of N * OH. Separable:
 * for each output row, the maxima down the window's input rows go to
 * `scratch` (`maxpool2d_scratch_bytes(w, c)`, owned by the calling thread),
 * then each output pixel takes the maximum across its window's columns of it.
 */
export function maxpool2d(
  x: usize, xstride: i32, h: i32, w: i32, c: i32, k: i32, s: i32, p: i32, oh: i32, ow: i32,
  y: usize, ystride: i32, scratch: usize, r0: i32, r1: i32,
): void {
  const xb = <usize>xstride << 2, yb = <usize>ystride << 2;
  const tb = <usize>((c + 3) & ~3) << 2; // bytes per scratch pixel
  const rb = <usize>w * xb; // bytes per input row
  // Bottom row first: the convolution before the pool wrote its rows top
  // down, and its last rows are the ones still in L2 (conv1's 3.2 MB output
  // is larger than L2).
  for (let r = r1 - 1; r >= r0; r--) {
    const img = r / oh;
    const oy = r - img * oh;
    const y0 = max(oy * s - p, 0), y1 = min(oy * s - p + k, h);
    const top = x + (<usize>img * <usize>h + <usize>y0) * rb;
    // 1. Maxima down the window's rows, every input column.
    for (let ix = 0; ix < w; ix++) {
      max_across(scratch + <usize>ix * tb, top + <usize>ix * xb, rb, y1 - y0, c);
    }
    // 2. Maxima across each window's columns.
    let out = y + <usize>r * <usize>ow * yb;
    for (let ox = 0; ox < ow; ox++, out += yb) {
      const x0 = max(ox * s - p, 0), x1 = min(ox * s - p + k, w);
      max_across(out, scratch + <usize>x0 * tb, tb, x1 - x0, c);
    }
  }
}

/**
 * Average pool, kernel k x k, stride s, padding p, PyTorch's default
 * count_include_pad = true: the divisor counts padded positions but not
 * positions past the padding. Rows [r0, r1) of N * OH. `scratch` is unused
 * (every pool kernel takes the same arguments).
 */
export function avgpool2d(
  x: usize, xstride: i32, h: i32, w: i32, c: i32, k: i32, s: i32, p: i32, oh: i32, ow: i32,
  y: usize, ystride: i32, scratch: usize, r0: i32, r1: i32,
): void {
  const xb = <usize>xstride << 2, yb = <usize>ystride << 2, rowBytes = <usize>c << 2;
  for (let r = r0; r < r1; r++) {
    const img = r / oh;
    const oy = r - img * oh;
    const ys = oy * s - p, ye = min(ys + k, h + p);
    const y0 = max(ys, 0), y1 = min(ye, h);
    const ximg = x + <usize>img * <usize>h * <usize>w * xb;
    let out = y + <usize>r * <usize>ow * yb;
    for (let ox = 0; ox < ow; ox++, out += yb) {
      const xs = ox * s - p, xe = min(xs + k, w + p);
      const x0 = max(xs, 0), x1 = min(xe, w);
      memory.fill(out, 0, rowBytes);
      for (let iy = y0; iy < y1; iy++) {
        for (let ix = x0; ix < x1; ix++) {
          add_row(out, ximg + (<usize>iy * <usize>w + <usize>ix) * xb, c);
        }
      }
      scale_row(out, <f32>1 / <f32>((ye - ys) * (xe - xs)), c);
    }
  }
}

/**
 * Adaptive average pool to OH x OW with PyTorch's bins: output row oy averages
 * input rows [floor(oy * h / oh), ceil((oy + 1) * h / oh)), columns alike.
 * Rows [r0, r1) of N * OH. OH = OW = 1 is the global average pool.
 */
export function adaptive_avgpool2d(
  x: usize, xstride: i32, h: i32, w: i32, c: i32, oh: i32, ow: i32,
  y: usize, ystride: i32, r0: i32, r1: i32,
): void {
  const xb = <usize>xstride << 2, yb = <usize>ystride << 2, rowBytes = <usize>c << 2;
  for (let r = r0; r < r1; r++) {
    const img = r / oh;
    const oy = r - img * oh;
    const y0 = (oy * h) / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
    const ximg = x + <usize>img * <usize>h * <usize>w * xb;
    let out = y + <usize>r * <usize>ow * yb;
    for (let ox = 0; ox < ow; ox++, out += yb) {
      const x0 = (ox * w) / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
      memory.fill(out, 0, rowBytes);
      for (let iy = y0; iy < y1; iy++) {
        for (let ix = x0; ix < x1; ix++) {
          add_row(out, ximg + (<usize>iy * <usize>w + <usize>ix) * xb, c);
        }
      }
      scale_row(out, <f32>1 / <f32>((y1 - y0) * (x1 - x0)), c);
    }
  }
}

// The backward pools work in units of one image and 16 channels: unit g of
// N * ceil(C / 16) is image g / groups, channels 16 * (g % groups) .. +16
// (clipped to C), and owns those channels of the image's whole dx. A range
// of units is walked image by image, each output pixel once for all the
// range's channels of that image (so each pixel's channels are read and
// written together, not once per unit); every dx float still receives its
// gradients in output order, so any split into units is bit-identical, and
// no two units touch the same floats. Without `accumulate`, dx rows are
// zeroed just before the first window that reaches them (then the rows no
// window reaches).

/** Channels per unit of the backward pools. */
const POOL_UNIT: i32 = 16;

// dx rows [from, to) of w pixels, channels [0, cn) at dx, set to zero.
@inline function zero_rows(dx: usize, dxb: usize, w: i32, from: i32, to: i32, cn: i32): void {
  for (let i = from * w, end = to * w; i < end; i++) {
    const p = dx + <usize>i * dxb;
    let j = 0;
    for (; j + 4 <= cn; j += 4) v128.store(p + (<usize>j << 2), f32x4.splat(0));
    for (; j < cn; j++) store<f32>(p + (<usize>j << 2), 0);
  }
}

// dx[iy, ix, 0..cn) += g[0..cn) * scale for the window rows [y0, y1), columns [x0, x1).
@inline function add_window(
  dx: usize, dxb: usize, w: i32, y0: i32, y1: i32, x0: i32, x1: i32, g: usize, scale: f32, cn: i32,
): void {
  for (let iy = y0; iy < y1; iy++) {
    for (let ix = x0; ix < x1; ix++) {
      const q = dx + (<usize>iy * <usize>w + <usize>ix) * dxb;
      let i = 0;
      for (; i + 4 <= cn; i += 4) {
        const o = <usize>i << 2;
        v128.store(q + o, f32x4.add(v128.load(q + o), f32x4.mul(v128.load(g + o), f32x4.splat(scale))));
      }
      for (; i < cn; i++) {
        const o = <usize>i << 2;
        store<f32>(q + o, load<f32>(q + o) + load<f32>(g + o) * scale);
      }
    }
  }
}

// Lanes of a where m (all ones or all zeros per lane, from a comparison) is set, else b's:
// blendvps on relaxed-SIMD builds, and-andnot-or otherwise (same lanes for such masks).
@inline function select(a: v128, b: v128, m: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.relaxed_laneselect(a, b, m);
  return v128.bitselect(a, b, m);
}

// The running maximum after v (t = v > b): select(v, b, t), or on relaxed-SIMD builds
// relaxed_max(v, b) (maxps, one instruction for the blend's two or three). The two differ only
// where v or b is NaN (the caller then rescans with PyTorch's rule) and in which zero of -0 and
// +0 they keep, which no comparison tells apart: the argmax is the same.
@inline function greater(v: v128, b: v128, t: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_max(v, b);
  return select(v, b, t);
}

// select(vi, a, t) where vi is greater than every lane of a (offsets grow along the scan) and
// a >= 0: the larger of a and vi where t is set (and + max, for the blend's two or three).
@inline function later(vi: v128, a: v128, t: v128): v128 {
  return i32x4.max_s(a, v128.and(vi, t));
}

// The argmax of each of 16 channels (4 vectors at ximg) over the window rows
// [y0, y1), columns [x0, x1), in one pass (each pixel's address computed
// once), then g's 16 values added to dx at those pixels. The argmax is kept as
// the pixel's byte offset in dx (pixel * dxb). The scan starts from the
// window's first pixel (as from -Infinity: that pixel wins then unless it is
// -Infinity, which leaves the maximum -Infinity at that pixel either way) and
// replaces the maximum when v > max, ignoring NaN, while summing the window's
// values; a sum that is NaN (a NaN in the window, or Infinity - Infinity)
// rescans the window with PyTorch's rule (`v > max || isnan(v)`). Without a
// NaN the two rules pick the same pixels.
@inline function argmax_scatter_16(
  ximg: usize, xb: usize, w: i32, y0: i32, y1: i32, x0: i32, x1: i32, g: usize, dximg: usize, dxb: usize,
  mask: bool,
): void {
  const db = <i32>dxb;
  const first = ximg + (<usize>y0 * <usize>w + <usize>x0) * xb;
  let b0 = v128.load(first), b1 = v128.load(first, 16), b2 = v128.load(first, 32), b3 = v128.load(first, 48);
  let s0 = b0, s1 = b1, s2 = b2, s3 = b3;
  let a0 = i32x4.splat((y0 * w + x0) * db), a1 = a0, a2 = a0, a3 = a0;
  for (let iy = y0; iy < y1; iy++) {
    const from = iy == y0 ? x0 + 1 : x0;
    let q = ximg + (<usize>iy * <usize>w + <usize>from) * xb;
    let at = (iy * w + from) * db;
    for (let ix = from; ix < x1; ix++, q += xb, at += db) {
      const vi = i32x4.splat(at);
      const v0 = v128.load(q), v1 = v128.load(q, 16), v2 = v128.load(q, 32), v3 = v128.load(q, 48);
      const t0 = f32x4.gt(v0, b0), t1 = f32x4.gt(v1, b1), t2 = f32x4.gt(v2, b2), t3 = f32x4.gt(v3, b3);
      b0 = greater(v0, b0, t0); a0 = later(vi, a0, t0); s0 = f32x4.add(s0, v0);
      b1 = greater(v1, b1, t1); a1 = later(vi, a1, t1); s1 = f32x4.add(s1, v1);
      b2 = greater(v2, b2, t2); a2 = later(vi, a2, t2); s2 = f32x4.add(s2, v2);
      b3 = greater(v3, b3, t3); a3 = later(vi, a3, t3); s3 = f32x4.add(s3, v3);
    }
  }
  const nan = v128.or(v128.or(f32x4.ne(s0, s0), f32x4.ne(s1, s1)), v128.or(f32x4.ne(s2, s2), f32x4.ne(s3, s3)));
  if (v128.any_true(nan)) {
    argmax_scatter_n(ximg, xb, w, y0, y1, x0, x1, g, dximg, dxb, POOL_UNIT, mask);
    return;
  }
  scatter_4(dximg, a0, masked_dy(v128.load(g), b0, mask));
  scatter_4(dximg + 16, a1, masked_dy(v128.load(g, 16), b1, mask));
  scatter_4(dximg + 32, a2, masked_dy(v128.load(g, 32), b2, mask));
  scatter_4(dximg + 48, a3, masked_dy(v128.load(g, 48), b3, mask));
}

// With `mask`, dy where the window's maximum (its argmax's input) is <= 0 becomes +0: the ReLU
// mask of a gradient that only this pool writes, applied as it is added. Every window that adds to
// a pixel has that pixel's input as its maximum, so all or none of them are masked, and +0 added
// to the zeroed pixel leaves the +0 that masking the sum would leave (a NaN maximum passes).
@inline function masked_dy(g: v128, best: v128, mask: bool): v128 {
  return mask ? v128.andnot(g, f32x4.le(best, f32x4.splat(0))) : g;
}

// The argmax and scatter for cn channels with PyTorch's rule throughout: 4 at a time, then one
// at a time.
@inline function argmax_scatter_n(
  ximg: usize, xb: usize, w: i32, y0: i32, y1: i32, x0: i32, x1: i32, g: usize, dximg: usize, dxb: usize,
  cn: i32, mask: bool,
): void {
  const db = <i32>dxb;
  let i = 0;
  for (; i + 4 <= cn; i += 4) {
    const o = <usize>i << 2;
    let best = f32x4.splat(-Infinity);
    let at = i32x4.splat((y0 * w + x0) * db);
    for (let iy = y0; iy < y1; iy++) {
      for (let ix = x0; ix < x1; ix++) {
        const v = v128.load(ximg + (<usize>iy * <usize>w + <usize>ix) * xb + o);
        const take = v128.or(f32x4.gt(v, best), f32x4.ne(v, v));
        best = select(v, best, take);
        at = select(i32x4.splat((iy * w + ix) * db), at, take);
      }
    }
    scatter_4(dximg + o, at, masked_dy(v128.load(g + o), best, mask));
  }
  for (; i < cn; i++) {
    const o = <usize>i << 2;
    let best: f32 = -Infinity;
    let at = y0 * w + x0;
    for (let iy = y0; iy < y1; iy++) {
      for (let ix = x0; ix < x1; ix++) {
        const v = load<f32>(ximg + (<usize>iy * <usize>w + <usize>ix) * xb + o);
        if (v > best || isNaN(v)) {
          best = v;
          at = iy * w + ix;
        }
      }
    }
    scatter_lane(dximg + o, at * db, mask && best <= 0 ? 0 : load<f32>(g + o));
  }
}

// dx[lane i's byte offset in at, channel i at base] += g lane i, for the 4 lanes.
@inline function scatter_4(base: usize, at: v128, g: v128): void {
  scatter_lane(base, i32x4.extract_lane(at, 0), f32x4.extract_lane(g, 0));
  scatter_lane(base + 4, i32x4.extract_lane(at, 1), f32x4.extract_lane(g, 1));
  scatter_lane(base + 8, i32x4.extract_lane(at, 2), f32x4.extract_lane(g, 2));
  scatter_lane(base + 12, i32x4.extract_lane(at, 3), f32x4.extract_lane(g, 3));
}

// The float at base + offset (a pixel's byte offset in dx) += g.
@inline function scatter_lane(base: usize, offset: i32, g: f32): void {
  const q = base + <usize>offset;
  store<f32>(q, load<f32>(q) + g);
}

/**
 * Max pool's backward: for units [g0, g1) of N * ceil(C / 16) (see above),
 * dx = (accumulate != 0 ? dx : 0) + each dy added at its window's argmax.
 * The argmax is PyTorch 1.13's (CPU): the window clipped to the input,
 * scanned in row-major order, the running maximum replaced when
 * `v > max || isnan(v)` (the first maximum wins ties, the last NaN wins).
 * x: the pool's input (NHWC, `xstride`); dy: [N, OH, OW] (`dystride`); dx:
 * [N, H, W] (`dxstride`); OH, OW as the forward computed them (ceil_mode).
 * relu != 0 (x is a ReLU's output): then dx = x <= 0 ? 0 : dx, as
 * `relu_backward` would do after this kernel: overwriting, each dy is masked
 * as it is added (by its window's maximum, the input it goes to); adding,
 * each row is masked as soon as no later window reaches it (while it is
 * still in cache).
 */
export function maxpool2d_backward(
  x: usize, xstride: i32, h: i32, w: i32, c: i32, k: i32, s: i32, p: i32, oh: i32, ow: i32,
  dy: usize, dystride: i32, dx: usize, dxstride: i32, accumulate: i32, g0: i32, g1: i32,
  relu: i32,
): void {
  // Overwriting, the mask goes on each dy as it is added (masked_dy); adding to dx, on the rows.
  // Two copies of the kernel: `mask` is a constant in each.
  const rows = relu != 0 && accumulate != 0;
  if (relu != 0 && accumulate == 0) {
    maxpool_backward_units(x, xstride, h, w, c, k, s, p, oh, ow, dy, dystride, dx, dxstride, 0, g0, g1, true, false);
  } else {
    maxpool_backward_units(x, xstride, h, w, c, k, s, p, oh, ow, dy, dystride, dx, dxstride, accumulate, g0, g1, false, rows);
  }
}

@inline function maxpool_backward_units(
  x: usize, xstride: i32, h: i32, w: i32, c: i32, k: i32, s: i32, p: i32, oh: i32, ow: i32,
  dy: usize, dystride: i32, dx: usize, dxstride: i32, accumulate: i32, g0: i32, g1: i32,
  mask: bool, rows: bool,
): void {
  const groups = (c + POOL_UNIT - 1) / POOL_UNIT;
  const xb = <usize>xstride << 2, dyb = <usize>dystride << 2, dxb = <usize>dxstride << 2;
  for (let g = g0; g < g1;) {
    // This image's units in the range: channels [c0, c0 + cn).
    const img = g / groups, gEnd = min(g1, (img + 1) * groups);
    const c0 = (g - img * groups) * POOL_UNIT, cn = min((gEnd - img * groups) * POOL_UNIT, c) - c0;
    g = gEnd;
    const plane = <usize>img * <usize>h * <usize>w;
    const ximg = x + plane * xb + (<usize>c0 << 2);
    const dximg = dx + plane * dxb + (<usize>c0 << 2);
    let out = dy + <usize>img * <usize>oh * <usize>ow * dyb + (<usize>c0 << 2);
    let zeroed = accumulate != 0 ? h : 0;
    let masked = 0;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = max(oy * s - p, 0), y1 = min(oy * s - p + k, h);
      if (zeroed < y1) {
        zero_rows(dximg, dxb, w, zeroed, y1, cn);
        zeroed = y1;
      }
      for (let ox = 0; ox < ow; ox++, out += dyb) {
        const x0 = max(ox * s - p, 0), x1 = min(ox * s - p + k, w);
        if (y0 >= y1 || x0 >= x1) continue;
        let i = 0;
        for (; i + POOL_UNIT <= cn; i += POOL_UNIT) {
          const o = <usize>i << 2;
          argmax_scatter_16(ximg + o, xb, w, y0, y1, x0, x1, out + o, dximg + o, dxb, mask);
        }
        if (i < cn) {
          const o = <usize>i << 2;
          argmax_scatter_n(ximg + o, xb, w, y0, y1, x0, x1, out + o, dximg + o, dxb, cn - i, mask);
        }
      }
      if (rows && oy + 1 < oh) {
        // Rows above the next output row's window are final (and zeroed: zeroed >= y1 > them).
        const done = min(max((oy + 1) * s - p, 0), zeroed);
        if (masked < done) {
          relu_mask_rows(dximg, dxb, ximg, xb, w, masked, done, cn);
          masked = done;
        }
      }
    }
    zero_rows(dximg, dxb, w, zeroed, h, cn);
    if (rows) relu_mask_rows(dximg, dxb, ximg, xb, w, masked, h, cn);
  }
}

// dx = x <= 0 ? 0 : dx (relu_backward's rule: a NaN x passes) for rows [from, to) of w pixels, cn channels.
@inline function relu_mask_rows(
  dx: usize, dxb: usize, x: usize, xb: usize, w: i32, from: i32, to: i32, cn: i32,
): void {
  const zero = f32x4.splat(0);
  for (let i = from * w, end = to * w; i < end; i++) {
    const d = dx + <usize>i * dxb, v = x + <usize>i * xb;
    let j = 0;
    for (; j + 4 <= cn; j += 4) {
      const o = <usize>j << 2;
      v128.store(d + o, v128.andnot(v128.load(d + o), f32x4.le(v128.load(v + o), zero)));
    }
    for (; j < cn; j++) {
      const o = <usize>j << 2;
      if (load<f32>(v + o) <= 0) store<f32>(d + o, 0);
    }
  }
}

/**
 * Average pool's backward, the adjoint of `avgpool2d` (count_include_pad:
 * the same divisor, multiplied by its f32 reciprocal as the forward does):
 * for units [g0, g1) of N * ceil(C / 16), dx = (accumulate != 0 ? dx : 0)
 * + each dy / divisor over its window. dy: [N, OH, OW] (`dystride`); dx:
 * [N, H, W] (`dxstride`).
 */
export function avgpool2d_backward(
  dy: usize, dystride: i32, h: i32, w: i32, c: i32, k: i32, s: i32, p: i32, oh: i32, ow: i32,
  dx: usize, dxstride: i32, accumulate: i32, g0: i32, g1: i32,
): void {
  const groups = (c + POOL_UNIT - 1) / POOL_UNIT;
  const dyb = <usize>dystride << 2, dxb = <usize>dxstride << 2;
  for (let g = g0; g < g1;) {
    const img = g / groups, gEnd = min(g1, (img + 1) * groups);
    const c0 = (g - img * groups) * POOL_UNIT, cn = min((gEnd - img * groups) * POOL_UNIT, c) - c0;
    g = gEnd;
    const dximg = dx + <usize>img * <usize>h * <usize>w * dxb + (<usize>c0 << 2);
    let out = dy + <usize>img * <usize>oh * <usize>ow * dyb + (<usize>c0 << 2);
    let zeroed = accumulate != 0 ? h : 0;
    let masked = 0;
    for (let oy = 0; oy < oh; oy++) {
      const ys = oy * s - p, ye = min(ys + k, h + p);
      const y0 = max(ys, 0), y1 = min(ye, h);
      if (zeroed < y1) {
        zero_rows(dximg, dxb, w, zeroed, y1, cn);
        zeroed = y1;
      }
      for (let ox = 0; ox < ow; ox++, out += dyb) {
        const xs = ox * s - p, xe = min(xs + k, w + p);
        const x0 = max(xs, 0), x1 = min(xe, w);
        add_window(dximg, dxb, w, y0, y1, x0, x1, out, <f32>1 / <f32>((ye - ys) * (xe - xs)), cn);
      }
    }
    zero_rows(dximg, dxb, w, zeroed, h, cn);
  }
}

/**
 * Adaptive average pool's backward, the adjoint of `adaptive_avgpool2d`
 * (PyTorch's bins, which may overlap): for units [g0, g1) of
 * N * ceil(C / 16), dx = (accumulate != 0 ? dx : 0) + each dy / bin size
 * over its bin. dy: [N, OH, OW] (`dystride`); dx: [N, H, W] (`dxstride`).
 */
export function adaptive_avgpool2d_backward(
  dy: usize, dystride: i32, h: i32, w: i32, c: i32, oh: i32, ow: i32,
  dx: usize, dxstride: i32, accumulate: i32, g0: i32, g1: i32,
): void {
  const groups = (c + POOL_UNIT - 1) / POOL_UNIT;
  const dyb = <usize>dystride << 2, dxb = <usize>dxstride << 2;
  for (let g = g0; g < g1;) {
    const img = g / groups, gEnd = min(g1, (img + 1) * groups);
    const c0 = (g - img * groups) * POOL_UNIT, cn = min((gEnd - img * groups) * POOL_UNIT, c) - c0;
    g = gEnd;
    const dximg = dx + <usize>img * <usize>h * <usize>w * dxb + (<usize>c0 << 2);
    let out = dy + <usize>img * <usize>oh * <usize>ow * dyb + (<usize>c0 << 2);
    let zeroed = accumulate != 0 ? h : 0;
    let masked = 0;
    for (let oy = 0; oy < oh; oy++) {
      const y0 = (oy * h) / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
      if (zeroed < y1) {
        zero_rows(dximg, dxb, w, zeroed, y1, cn);
        zeroed = y1;
      }
      for (let ox = 0; ox < ow; ox++, out += dyb) {
        const x0 = (ox * w) / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
        add_window(dximg, dxb, w, y0, y1, x0, x1, out, <f32>1 / <f32>((y1 - y0) * (x1 - x0)), cn);
      }
    }
    zero_rows(dximg, dxb, w, zeroed, h, cn);
  }
}
