/**
 * The operation table under test: each fixture case of
 * `tests/fixtures/kernels.safetensors` becomes a one-operation plan with its
 * packed weights, runnable on any backend. The Wasm and WebGPU tests share it.
 *
 * @module
 */

import type { Backend } from "../../src/backend/backend.ts";
import { packedSize, winogradSize } from "../../src/backend/pack.ts";
import type { Plan, WinogradVariant } from "../../src/graph/ops.ts";
import { PlanBuilder } from "../../src/graph/planner.ts";
import {
  AvgPool2d,
  Conv2d,
  type GemmLayer,
  Linear,
  lowerAdaptiveAvgPool,
  MaxPool2d,
  repackLayerOf,
} from "../../src/model/layers.ts";
import { packLayer } from "../../src/backend/repack.ts";
import { Tensor } from "../../src/tensor.ts";
import { deterministicInput, deterministicParameter } from "../../tools/deterministic.ts";

/** Parameters of one case, as the fixture script wrote them. */
export interface OpCase {
  op: string;
  shape: number[];
  [param: string]: unknown;
}

/** A case made runnable: its plan, its input (NCHW) and its GEMM layer, if any. */
export interface PreparedCase {
  plan: Plan;
  input: Tensor;
  layer: GemmLayer | null;
}

/** Builds the one-operation plan of a case. */
export function prepareCase(name: string, c: OpCase): PreparedCase {
  const [n, ch, h = 1, w = 1] = c.shape;
  const input = deterministicInput(`${name}.x`, c.shape);
  const b = new PlanBuilder();
  const x = b.alloc(n, h, w, ch, "input");
  let layer: GemmLayer | null = null;
  let y;
  switch (c.op) {
    case "conv2d": {
      const conv = new Conv2d(name, ch, c.oc as number, {
        kernelSize: c.k as number,
        stride: c.s as number,
        padding: c.p as number,
      });
      layer = packAtZero(conv);
      if (c.winograd) {
        const variant = c.winograd as WinogradVariant;
        conv.winograd = { offset: packedSize(conv.k, conv.n), k: conv.k, n: conv.n, variant };
      }
      y = conv.lower(b, x);
      break;
    }
    case "linear": {
      const fc = new Linear(name, ch, c.n as number);
      layer = packAtZero(fc);
      y = fc.lower(b, x, c.relu as boolean);
      break;
    }
    case "maxpool2d":
      y = new MaxPool2d(name, c.k as number, c.s as number, c.p as number, c.ceil as boolean).lower(
        b,
        x,
      );
      break;
    case "avgpool2d":
      y = new AvgPool2d(name, c.k as number, c.s as number, c.p as number).lower(b, x);
      break;
    case "adaptive_avgpool2d":
      y = lowerAdaptiveAvgPool(b, x, c.oh as number, c.ow as number, name);
      break;
    default:
      throw new Error(`No plan for op ${c.op}`);
  }
  const plan = b.build(x, [{ value: y, shape: [y.n, y.h, y.w, y.c] }]);
  return { plan, input: new Tensor(input.data, [n, ch, h, w]), layer };
}

function packAtZero<L extends GemmLayer>(layer: L): L {
  layer.packed = { offset: 0, k: layer.k, n: layer.n };
  return layer;
}

/** Floats of packed weights a case needs. */
export function caseWeightFloats(prepared: PreparedCase): number {
  const { layer } = prepared;
  if (!layer) return 0;
  const winograd = layer instanceof Conv2d && layer.winograd
    ? winogradSize(layer.inChannels, layer.n, layer.winograd.variant)
    : 0;
  return packedSize(layer.k, layer.n) + winograd;
}

/** Packs the case's deterministic weights into the backend and runs it. */
export async function runCase(
  backend: Backend,
  name: string,
  prepared: PreparedCase,
): Promise<Float32Array> {
  const { layer } = prepared;
  if (layer) {
    const weight = deterministicParameter(`${name}.weight`, layer.weightShape);
    const bias = deterministicParameter(`${name}.bias`, [layer.n]);
    packLayer(backend.weights(), repackLayerOf(layer, null), [weight.data, bias.data]);
    backend.weightsChanged();
  }
  const [out] = await backend.run(prepared.plan, prepared.input, []);
  return out;
}
