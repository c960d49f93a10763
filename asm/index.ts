// The kernel library's entry point: every export here is a Wasm export.
// Kernels take byte addresses into the one linear memory that JS owns and
// allocate nothing (runtime stub, no data segments), so any number of
// instances can share one memory across threads.

export {
  GEMM_MR,
  GEMM_NR,
  gemm_acc,
  gemm_acc_by_rows,
  gemm_bias,
  gemm_bias_by_rows,
  gemm_bias_relu,
  gemm_variant,
} from "./gemm";
export { conv2d_acc, conv2d_bias, conv2d_bias_relu, conv2d_scratch_bytes } from "./conv";
export { bias_grad, conv2d_weight_grad, conv2d_weight_grad_scratch_bytes } from "./conv_grad";
export { gemm_weight_grad, gemm_weight_grad_scratch_bytes } from "./gemm_grad";
export {
  adaptive_avgpool2d,
  adaptive_avgpool2d_backward,
  avgpool2d,
  avgpool2d_backward,
  maxpool2d,
  maxpool2d_backward,
  maxpool2d_scratch_bytes,
} from "./pool";
export { dropout, fma_peak, fma_pure, relu, relu_backward, softmax } from "./ops";
export {
  winograd_f2x3_acc,
  winograd_f2x3_bias,
  winograd_f2x3_bias_relu,
  winograd_f2x5_acc,
  winograd_f2x5_bias,
  winograd_f2x5_bias_relu,
  winograd_block_tiles,
  winograd_f4x3_acc,
  winograd_f4x3_bias,
  winograd_f4x3_bias_relu,
  winograd_scratch_bytes,
} from "./winograd";
export { fold_batchnorm, pack_gemm, pack_winograd, pack_winograd_scratch_bytes } from "./pack";
export { winograd_f4x3_weight_grad, winograd_weight_grad_scratch_bytes } from "./winograd_grad";
export { winograd_f2x5_weight_grad, winograd_f2x5_weight_grad_scratch_bytes } from "./winograd_grad5";
export { adam_update, sgd_update, zero_fill } from "./optim";
