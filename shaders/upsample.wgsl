// upsample — nearest-neighbour or bilinear (PyTorch align_corners=False) upsampling by
// integer scale factors, one output element per invocation.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>  [n, c, h_in, w_in]
//   2 output : array<f32>  [n, c, h_out, w_out] = [n, c, h_in·scale_h, w_in·scale_w]
//
// Grid: flat output index i = gid.y · row_stride + gid.x (two dimensions, so that large
// tensors stay within the per-dimension workgroup limit), i = (plane·h_out + oh)·w_out + ow
// with plane = n·c + channel.
// Index math, per axis with scale s, input extent e and output coordinate o, in unsigned
// integers only (no negative operand ever reaches / or %):
//   nearest (MODE 0):  i0 = o / s; out = x[y0, x0].
//   bilinear (MODE 1): PyTorch's src = max((o + 0.5)/s − 0.5, 0) equals t / 2s with
//                      t = 2o + 1 − s when 2o + 1 ≥ s, else 0. So i0 = t / 2s,
//                      i1 = min(i0 + 1, e − 1), and the weights are the exact integers
//                      f1 = t % 2s for i1 and f0 = 2s − f1 for i0 (out of 2s):
//     out = (fy0·(fx0·x[y0, x0] + fx1·x[y0, x1]) + fy1·(fx0·x[y1, x0] + fx1·x[y1, x1])) · inv_area
//     with inv_area = 1 / (4·scale_h·scale_w), rounded once on the host.

// specialise:begin
const MODE: u32 = 1u;
// specialise:end

struct Params {
    h_in: u32, w_in: u32, h_out: u32, w_out: u32,
    scale_h: u32, scale_w: u32, total: u32, row_stride: u32,
    inv_area: f32, pad0: u32, pad1: u32, pad2: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// Bilinear source taps of output coordinate o: (i0, i1, f1) with weights 2s − f1 and f1.
fn taps(o: u32, s: u32, e: u32) -> vec3<u32> {
    let two_o1 = 2u * o + 1u;
    let t = select(0u, two_o1 - s, two_o1 >= s);
    let i0 = t / (2u * s);
    let f1 = t - i0 * (2u * s);
    return vec3<u32>(i0, min(i0 + 1u, e - 1u), f1);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if i >= p.total {
        return;
    }
    let ow = i % p.w_out;
    let rest = i / p.w_out;
    let oh = rest % p.h_out;
    let plane = (rest / p.h_out) * p.h_in * p.w_in;
    if MODE == 0u {
        output[i] = input[plane + (oh / p.scale_h) * p.w_in + ow / p.scale_w];
        return;
    }
    let ty = taps(oh, p.scale_h, p.h_in);
    let tx = taps(ow, p.scale_w, p.w_in);
    let fy1 = f32(ty.z);
    let fy0 = f32(2u * p.scale_h) - fy1;
    let fx1 = f32(tx.z);
    let fx0 = f32(2u * p.scale_w) - fx1;
    let r0 = plane + ty.x * p.w_in;
    let r1 = plane + ty.y * p.w_in;
    let top = fx0 * input[r0 + tx.x] + fx1 * input[r0 + tx.y];
    let bottom = fx0 * input[r1 + tx.x] + fx1 * input[r1 + tx.y];
    output[i] = (fy0 * top + fy1 * bottom) * p.inv_area;
}
