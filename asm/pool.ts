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
  for (let r = r0; r < r1; r++) {
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
// (clipped to C), and owns those channels of the image's whole dx. Each
// output's gradient is added in output order, so any split into units is
// bit-identical and no two units touch the same floats.

/** Channels per unit of the backward pools. */
const POOL_UNIT: i32 = 16;

// dx[0..h*w pixels, 0..cn) = 0 at pixel stride dxb bytes.
@inline function zero_unit(dx: usize, dxb: usize, pixels: i32, cn: i32): void {
  for (let i = 0; i < pixels; i++) zero_floats_at(dx + <usize>i * dxb, cn);
}

@inline function zero_floats_at(p: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), f32x4.splat(0));
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), 0);
}

// dx[iy, ix, 0..cn) += g[0..cn) * scale for the window rows [y0, y1), columns [x0, x1).
@inline function add_window(
  dx: usize, dxb: usize, w: i32, y0: i32, y1: i32, x0: i32, x1: i32, g: usize, scale: f32, cn: i32,
): void {
  let i = 0;
  for (; i + 4 <= cn; i += 4) {
    const o = <usize>i << 2;
    const gv = f32x4.mul(v128.load(g + o), f32x4.splat(scale));
    for (let iy = y0; iy < y1; iy++) {
      for (let ix = x0; ix < x1; ix++) {
        const q = dx + (<usize>iy * <usize>w + <usize>ix) * dxb + o;
        v128.store(q, f32x4.add(v128.load(q), gv));
      }
    }
  }
  for (; i < cn; i++) {
    const o = <usize>i << 2;
    const gs = load<f32>(g + o) * scale;
    for (let iy = y0; iy < y1; iy++) {
      for (let ix = x0; ix < x1; ix++) {
        const q = dx + (<usize>iy * <usize>w + <usize>ix) * dxb + o;
        store<f32>(q, load<f32>(q) + gs);
      }
    }
  }
}

/**
 * Max pool's backward: for units [g0, g1) of N * ceil(C / 16) (see above),
 * dx = (accumulate != 0 ? dx : 0) + each dy added at its window's argmax.
 * The argmax is PyTorch 1.13's (CPU): the window clipped to the input,
 * scanned in row-major order, the running maximum replaced when
 * `v > max || isnan(v)` (the first maximum wins ties, the last NaN wins).
 * x: the pool's input (NHWC, `xstride`); dy: [N, OH, OW] (`dystride`); dx:
 * [N, H, W] (`dxstride`); OH, OW as the forward computed them (ceil_mode).
 */
export function maxpool2d_backward(
  x: usize, xstride: i32, h: i32, w: i32, c: i32, k: i32, s: i32, p: i32, oh: i32, ow: i32,
  dy: usize, dystride: i32, dx: usize, dxstride: i32, accumulate: i32, g0: i32, g1: i32,
): void {
  const groups = (c + POOL_UNIT - 1) / POOL_UNIT;
  const xb = <usize>xstride << 2, dyb = <usize>dystride << 2, dxb = <usize>dxstride << 2;
  for (let g = g0; g < g1; g++) {
    const img = g / groups, c0 = (g - img * groups) * POOL_UNIT, cn = min(POOL_UNIT, c - c0);
    const plane = <usize>img * <usize>h * <usize>w;
    const ximg = x + plane * xb + (<usize>c0 << 2);
    const dximg = dx + plane * dxb + (<usize>c0 << 2);
    let out = dy + <usize>img * <usize>oh * <usize>ow * dyb + (<usize>c0 << 2);
    if (accumulate == 0) zero_unit(dximg, dxb, h * w, cn);
    for (let oy = 0; oy < oh; oy++) {
      const y0 = max(oy * s - p, 0), y1 = min(oy * s - p + k, h);
      for (let ox = 0; ox < ow; ox++, out += dyb) {
        const x0 = max(ox * s - p, 0), x1 = min(ox * s - p + k, w);
        if (y0 >= y1 || x0 >= x1) continue;
        let i = 0;
        for (; i + 4 <= cn; i += 4) {
          const o = <usize>i << 2;
          let best = f32x4.splat(-Infinity);
          let at = i32x4.splat(y0 * w + x0);
          for (let iy = y0; iy < y1; iy++) {
            for (let ix = x0; ix < x1; ix++) {
              const v = v128.load(ximg + (<usize>iy * <usize>w + <usize>ix) * xb + o);
              const take = v128.or(f32x4.gt(v, best), f32x4.ne(v, v));
              best = v128.bitselect(v, best, take);
              at = v128.bitselect(i32x4.splat(iy * w + ix), at, take);
            }
          }
          const gv = v128.load(out + o);
          scatter_lane(dximg + o, dxb, i32x4.extract_lane(at, 0), f32x4.extract_lane(gv, 0));
          scatter_lane(dximg + o + 4, dxb, i32x4.extract_lane(at, 1), f32x4.extract_lane(gv, 1));
          scatter_lane(dximg + o + 8, dxb, i32x4.extract_lane(at, 2), f32x4.extract_lane(gv, 2));
          scatter_lane(dximg + o + 12, dxb, i32x4.extract_lane(at, 3), f32x4.extract_lane(gv, 3));
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
          scatter_lane(dximg + o, dxb, at, load<f32>(out + o));
        }
      }
    }
  }
}

// dx[pixel, channel at base] += g.
@inline function scatter_lane(base: usize, dxb: usize, pixel: i32, g: f32): void {
  const q = base + <usize>pixel * dxb;
  store<f32>(q, load<f32>(q) + g);
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
  for (let g = g0; g < g1; g++) {
    const img = g / groups, c0 = (g - img * groups) * POOL_UNIT, cn = min(POOL_UNIT, c - c0);
    const dximg = dx + <usize>img * <usize>h * <usize>w * dxb + (<usize>c0 << 2);
    let out = dy + <usize>img * <usize>oh * <usize>ow * dyb + (<usize>c0 << 2);
    if (accumulate == 0) zero_unit(dximg, dxb, h * w, cn);
    for (let oy = 0; oy < oh; oy++) {
      const ys = oy * s - p, ye = min(ys + k, h + p);
      const y0 = max(ys, 0), y1 = min(ye, h);
      for (let ox = 0; ox < ow; ox++, out += dyb) {
        const xs = ox * s - p, xe = min(xs + k, w + p);
        const x0 = max(xs, 0), x1 = min(xe, w);
        add_window(dximg, dxb, w, y0, y1, x0, x1, out, <f32>1 / <f32>((ye - ys) * (xe - xs)), cn);
      }
    }
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
  for (let g = g0; g < g1; g++) {
    const img = g / groups, c0 = (g - img * groups) * POOL_UNIT, cn = min(POOL_UNIT, c - c0);
    const dximg = dx + <usize>img * <usize>h * <usize>w * dxb + (<usize>c0 << 2);
    let out = dy + <usize>img * <usize>oh * <usize>ow * dyb + (<usize>c0 << 2);
    if (accumulate == 0) zero_unit(dximg, dxb, h * w, cn);
    for (let oy = 0; oy < oh; oy++) {
      const y0 = (oy * h) / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
      for (let ox = 0; ox < ow; ox++, out += dyb) {
        const x0 = (ox * w) / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
        add_window(dximg, dxb, w, y0, y1, x0, x1, out, <f32>1 / <f32>((y1 - y0) * (x1 - x0)), cn);
      }
    }
  }
}
