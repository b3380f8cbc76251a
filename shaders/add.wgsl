// add — element-wise sum of two tensors of the same shape with an optional fused activation
// (a residual connection: ResNet/ResNeXt add, then ReLU).
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 a      : array<f32>  [total]   read-only
//   2 b      : array<f32>  [total]   read-only (may be the same buffer as a)
//   3 output : array<f32>  [total]   read-write, never the buffer of a or b
// Each tensor is bound as the window of its own elements; nothing reads arrayLength.
// With V = 4 (the tensors hold a multiple of 4 elements; plan::plan_add) the pipeline cache
// binds all three as array<vec4<f32>> and sets T = vec4<f32>; `total` then counts vec4s.
// With TIN = 1 or 2 (and V = 4) it reads a and b from texture copies of them, sampled (1)
// or read-only storage textures (2), as the convolution kernels read their inputs (see
// plan::texture_input, pipelines::texture_input).
//
// Grid: invocation index j = gid.y · row_stride + gid.x (two dimensions, so that large
// tensors stay within the per-dimension workgroup limit). Workgroup w = j / WG covers the
// WG·E elements from w·WG·E; its invocation l = j % WG takes elements w·WG·E + k·WG + l,
// k < E (neighbouring invocations read neighbouring elements, as a GPU coalesces them), and
// stops at `total`:
//   output[i] = activate(a[i] + b[i])
// Activation codes as in the convolution shaders: 0 none, 1 relu, 2 relu6,
// 3 leaky_relu(alpha), 4 silu; on a vec4 they apply per component, so both forms give the
// same bits.
//
// Why textures: see plan::plan_add (on lavapipe, 256·56·56 elements took 9.5–13 ms from
// storage buffers and 4.1–5.7 ms from textures).

// specialise:begin
// Elements per binding element: 1 (T = f32) or 4 (T = vec4<f32>).
const V: u32 = 1u;
// Binding elements per invocation.
const E: u32 = 1u;
// Inputs read from textures (V = 4 only): 0 no, 1 sampled, 2 read-only storage.
const TIN: u32 = 0u;
// specialise:end

alias T = f32;

struct Params {
    total: u32, row_stride: u32, act: u32, alpha: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

fn activate(v: T, act: u32) -> T {
    switch act {
        case 1u: { return max(v, T(0.0)); }
        case 2u: { return clamp(v, T(0.0), T(6.0)); }
        case 3u: { return select(p.alpha * v, v, v >= T(0.0)); }
        case 4u: { return v / (T(1.0) + exp(-v)); }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.y * p.row_stride + gid.x;
    let first = (j / WG) * (WG * E) + j % WG;
    for (var k = 0u; k < E; k++) {
        let i = first + k * WG;
        if i >= p.total {
            return;
        }
        output[i] = activate(a[i] + b[i], p.act);
    }
}
