// conv2d_direct — forward convolution, one output element per invocation.
// The fallback kernel: every parameter is read from the uniform at run time,
// so one pipeline serves every shape.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>  [n, c_in, h_in, w_in]
//   2 weight : array<f32>  [c_out, c_in/groups, k_h, k_w]   (PyTorch layout)
//   3 bias   : array<f32>  [c_out]                          (zeros if none)
//   4 output : array<f32>  [n, c_out, h_out, w_out]
//
// Chunks and folding (host side: src/chunk.rs). One dispatch runs one chunk of the grid
// below: x items [x0, x_end) (whole output rows), y units from y0, images from z0, as the
// logical grid (grid_x, grid_y, grid_z) that logical_wid() recovers from the (possibly folded)
// dispatch. Indices are computed in global coordinates; each storage binding is a window of its
// tensor: element i of the binding is global element i + in_base / w_base / out_base (in the
// binding's element type), and input / output channel planes are in_cstride / out_cstride
// elements apart (h·w, or rows·w for a row band the host staged through a scratch buffer).
// The host guarantees that every index this kernel computes lies inside its window.
//
// Grid: x = output pixel (oh * w_out + ow) in workgroups of WG, y = output channel co, z = batch n.
// Index math, with g = co / (c_out/groups) and taps outside the input reading zero:
//   out[n, co, oh, ow] = act(bias[co] + Σ_{ci < c_in/groups, kh < k_h, kw < k_w}
//       x[n, g·(c_in/groups) + ci, oh·stride_h − pad_top + kh·dil_h, ow·stride_w − pad_left + kw·dil_w]
//       · w[co, ci, kh, kw])

struct Params {
    n: u32, c_in: u32, h_in: u32, w_in: u32,
    c_out: u32, h_out: u32, w_out: u32, groups: u32,
    c_in_per_group: u32, c_out_per_group: u32, k_h: u32, k_w: u32,
    stride_h: u32, stride_w: u32, dil_h: u32, dil_w: u32,
    pad_top: u32, pad_left: u32, act: u32, alpha: f32,
    blocks_w: u32, blocks_per_group: u32, tap_step_h: u32, x_end: u32,
    // Chunk origin and windows (set per chunk by the host; see the header comment).
    x0: u32, y0: u32, z0: u32, w_base: u32,
    in_base: u32, in_cstride: u32, out_base: u32, out_cstride: u32,
    // Logical grid of this chunk and the dispatch it is folded into.
    grid_x: u32, grid_y: u32, grid_z: u32, disp_x: u32,
    disp_y: u32, ci0: u32, ci1: u32, flags: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// Logical workgroup id within this chunk's grid (grid_x, grid_y, grid_z), unfolded from the
// dispatch (disp_x, disp_y, ·) the host folded it into when a dimension exceeded the device's
// workgroups-per-dimension limit. z >= grid_z marks a padding workgroup, which must return.
fn logical_wid(wid: vec3<u32>) -> vec3<u32> {
    let l = (wid.z * p.disp_y + wid.y) * p.disp_x + wid.x;
    let gxy = p.grid_x * p.grid_y;
    return vec3<u32>(l % p.grid_x, (l % gxy) / p.grid_x, l / gxy);
}

// Activation codes: 0 none, 1 relu, 2 relu6, 3 leaky_relu(alpha), 4 silu.
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
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lw = logical_wid(wid);
    if lw.z >= p.grid_z {
        return;
    }
    let pixel = p.x0 + lw.x * WG + lid;
    if pixel >= p.x_end {
        return;
    }
    let co = p.y0 + lw.y;
    let n = p.z0 + lw.z;
    let oh = pixel / p.w_out;
    let ow = pixel % p.w_out;
    let g = co / p.c_out_per_group;
    let ih0 = i32(oh * p.stride_h) - i32(p.pad_top);
    let iw0 = i32(ow * p.stride_w) - i32(p.pad_left);
    var acc = 0.0;
    for (var ci = 0u; ci < p.c_in_per_group; ci++) {
        let x_plane = (n * p.c_in + g * p.c_in_per_group + ci) * p.in_cstride;
        let w_plane = (co * p.c_in_per_group + ci) * p.k_h;
        for (var kh = 0u; kh < p.k_h; kh++) {
            let ih = ih0 + i32(kh * p.dil_h);
            if ih < 0 || ih >= i32(p.h_in) {
                continue;
            }
            let row = x_plane + u32(ih) * p.w_in - p.in_base;
            for (var kw = 0u; kw < p.k_w; kw++) {
                let iw = iw0 + i32(kw * p.dil_w);
                if iw < 0 || iw >= i32(p.w_in) {
                    continue;
                }
                acc += input[row + u32(iw)] * weight[(w_plane + kh) * p.k_w + kw - p.w_base];
            }
        }
    }
    output[(n * p.c_out + co) * p.out_cstride + oh * p.w_out + ow - p.out_base] = activate(acc + bias[co], p.act);
}
