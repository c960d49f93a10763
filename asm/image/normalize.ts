// torchvision's ToTensor then Normalize of an RGB image on Wasm SIMD: 8-bit
// interleaved RGB (or grey, each sample standing for three equal channels) to
// planar CHW float32, x / 255, then (x - mean) / std, each step an IEEE
// single operation as torch does it in float32 (and as the TypeScript path's
// Math.fround steps give: double rounding of a single division or
// subtraction is exact).

/**
 * Normalises `pixels` pixels of `channels` samples (3: R, G, B; 1: grey, used
 * for all three planes) at `src` (readable 16 bytes past the last pixel's
 * first sample) into three float32 planes at `out` (plane c at
 * `out + 4 * c * pixels`).
 */
export function normalize_to_chw(
  src: usize, pixels: i32, channels: i32, out: usize,
  mean0: f32, mean1: f32, mean2: f32, std0: f32, std1: f32, std2: f32,
): void {
  const k255 = f32x4.splat(255);
  for (let c = 0; c < 3; c++) {
    const mean: f32 = c == 0 ? mean0 : c == 1 ? mean1 : mean2;
    const std: f32 = c == 0 ? std0 : c == 1 ? std1 : std2;
    const vm = f32x4.splat(mean);
    const vs = f32x4.splat(std);
    // This plane's samples of four pixels into the low byte of each lane; index 16 gives 0.
    const s = channels == 1 ? 0 : c;
    const pick = i32x4(
      s | 0x10101000, (s + channels) | 0x10101000,
      (s + 2 * channels) | 0x10101000, (s + 3 * channels) | 0x10101000,
    );
    const plane = out + (<usize>(c * pixels) << 2);
    let i = 0;
    for (; i + 4 <= pixels; i += 4) {
      const bytes = i8x16.swizzle(v128.load(src + <usize>(i * channels)), pick);
      const x = f32x4.div(f32x4.convert_i32x4_u(bytes), k255);
      v128.store(plane + (<usize>i << 2), f32x4.div(f32x4.sub(x, vm), vs));
    }
    for (; i < pixels; i++) {
      const x = <f32>load<u8>(src + <usize>(i * channels + s)) / <f32>255;
      store<f32>(plane + (<usize>i << 2), (x - mean) / std);
    }
  }
}
