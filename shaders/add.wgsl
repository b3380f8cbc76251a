// add — element-wise sum of two tensors of the same shape with an optional fused activation
// (a residual connection: ResNet/ResNeXt add, then ReLU), one element per invocation.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 a      : array<f32>  [total]   read-only
//   2 b      : array<f32>  [total]   read-only (may be the same buffer as a)
//   3 output : array<f32>  [total]   read-write, never the buffer of a or b
// Each tensor is bound as the window of its own `total` elements; nothing reads arrayLength.
//
// Grid: flat element index i = gid.y · row_stride + gid.x (two dimensions, so that large
// tensors stay within the per-dimension workgroup limit); invocations with i ≥ total return.
//   output[i] = activate(a[i] + b[i])
// Activation codes as in the convolution shaders: 0 none, 1 relu, 2 relu6,
// 3 leaky_relu(alpha), 4 silu.

struct Params {
    total: u32, row_stride: u32, act: u32, alpha: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

fn activate(v: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return clamp(v, 0.0, 6.0); }
        case 3u: { return select(p.alpha * v, v, v >= 0.0); }
        case 4u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if i >= p.total {
        return;
    }
    output[i] = activate(a[i] + b[i], p.act);
}
