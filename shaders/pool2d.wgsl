// pool2d — max or average pooling (PyTorch MaxPool2d / AvgPool2d with no padding, no
// dilation, floor mode), one output element per invocation.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>  [n, c, h_in, w_in]     read-only
//   2 output : array<f32>  [n, c, h_out, w_out]   read-write
// Each tensor is bound as the window of its own elements; nothing reads arrayLength.
//
// Grid: flat output index i = gid.y · row_stride + gid.x (two dimensions, so that large
// tensors stay within the per-dimension workgroup limit), i < total = n·c·h_out·w_out, with
// i = (plane·h_out + oh)·w_out + ow and plane = n·c + channel.
// Window: rows oh·stride_h + kh, columns ow·stride_w + kw, kh < k_h, kw < k_w; the host checks
// (h_out − 1)·stride_h + k_h ≤ h_in (and likewise for w), so every tap is inside the plane.
//   MODE 0 (max): output[i] = max over the window.
//   MODE 1 (avg): output[i] = (Σ window) · inv_area, inv_area = 1 / (k_h·k_w) rounded once
//                 on the host.

// specialise:begin
const MODE: u32 = 0u;
// specialise:end

struct Params {
    h_in: u32, w_in: u32, h_out: u32, w_out: u32,
    k_h: u32, k_w: u32, stride_h: u32, stride_w: u32,
    total: u32, row_stride: u32, inv_area: f32, pad0: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_stride + gid.x;
    if i >= p.total {
        return;
    }
    let ow = i % p.w_out;
    let rest = i / p.w_out;
    let oh = rest % p.h_out;
    let plane = rest / p.h_out;
    let origin = (plane * p.h_in + oh * p.stride_h) * p.w_in + ow * p.stride_w;
    if MODE == 0u {
        var m = input[origin];
        for (var kh = 0u; kh < p.k_h; kh++) {
            let row = origin + kh * p.w_in;
            for (var kw = 0u; kw < p.k_w; kw++) {
                m = max(m, input[row + kw]);
            }
        }
        output[i] = m;
        return;
    }
    var s = 0.0;
    for (var kh = 0u; kh < p.k_h; kh++) {
        let row = origin + kh * p.w_in;
        for (var kw = 0u; kw < p.k_w; kw++) {
            s += input[row + kw];
        }
    }
    output[i] = s * p.inv_area;
}
