// The image kernels' entry point (their own binary, separate from the model's
// kernels in asm/index.ts): JPEG decoding's hot paths and Pillow's resampling.

export { convert_image, idct_islow_blocks } from "./jpeg";
export { resample_horizontal, resample_horizontal_grey, resample_vertical } from "./resize";
export { decode_scan } from "./huffman";
export { idct_reduced_blocks } from "./idct_reduced";
export { normalize_to_chw } from "./normalize";
