// global_avg_pool — the mean of each (image, channel) plane: [n, c, h, w] -> [n, c, 1, 1]
// (PyTorch AdaptiveAvgPool2d(1)), one plane per invocation.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>  [planes, plane_len] = [n·c, h·w]   read-only
//   2 output : array<f32>  [planes]                           read-write
// Each tensor is bound as the window of its own elements; nothing reads arrayLength.
//
// Grid: plane index q = gid.y · row_stride + gid.x (two dimensions, so that large tensors stay
// within the per-dimension workgroup limit); invocations with q ≥ planes return.
// Each invocation reads its plane once, input[q·plane_len + j] for j < plane_len, into four
// independent partial sums (j mod 4; shorter dependency chains), then
//   output[q] = ((s0 + s1) + (s2 + s3)) · inv_area,  inv_area = 1 / plane_len rounded once on
//   the host.
// One invocation per plane suits CNN heads (n·c in the hundreds to thousands, planes of 7×7 to
// 33×33) and CPU drivers, which run an invocation's loop without barriers.

struct Params {
    planes: u32, plane_len: u32, row_stride: u32, inv_area: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.y * p.row_stride + gid.x;
    if q >= p.planes {
        return;
    }
    let base = q * p.plane_len;
    let end4 = p.plane_len & ~3u;
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var j = 0u;
    for (; j < end4; j += 4u) {
        s0 += input[base + j];
        s1 += input[base + j + 1u];
        s2 += input[base + j + 2u];
        s3 += input[base + j + 3u];
    }
    for (; j < p.plane_len; j++) {
        s0 += input[base + j];
    }
    output[q] = ((s0 + s1) + (s2 + s3)) * p.inv_area;
}
