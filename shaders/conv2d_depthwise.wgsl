// conv2d_depthwise — depthwise convolution (one input channel per group),
// with channel multiplier m = c_out / c_in. Each invocation computes a tile of
// PH output rows × PIX consecutive output columns of one output channel.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>  [n, c_in, h_in, w_in]
//   2 weight : array<f32>  [c_out, 1, K_H, K_W]              (PyTorch layout)
//   3 bias   : array<f32>  [c_out]                            (zeros if none)
//   4 output : array<f32>  [n, c_out, h_out, w_out]
//
// Chunks and folding (host side: src/chunk.rs). One dispatch runs one chunk of the grid
// below: x items [x0, x_end) (whole rows of tiles), y units from y0, images from z0, as the
// logical grid (grid_x, grid_y, grid_z) that logical_wid() recovers from the (possibly folded)
// dispatch. Indices are computed in global coordinates; each storage binding is a window of its
// tensor: element i of the binding is global element i + in_base / w_base / out_base (in the
// binding's element type), and input / output channel planes are in_cstride / out_cstride
// elements apart (h·w, or rows·w for a row band the host staged through a scratch buffer).
// The host guarantees that every index this kernel computes lies inside its window.
//
// Grid: x = tile within an output plane ((oh / PH) · blocks_w + ow / PIX), y = output
// channel co, z = batch n; weight loads are uniform across a workgroup.
// Index math (input channel ci = co / m; taps outside the input read zero):
//   out[n, co, oh, ow] = act(bias[co] + Σ_{kh, kw} w[co, 0, kh, kw]
//       · x[n, ci, oh·S_H − pad_top + kh·D_H, ow·S_W − pad_left + kw·D_W])
// Kernel size, stride and dilation are specialisation constants. Each input row the
// tile needs is loaded once (SEG values) and reused across the K_W taps, the PIX
// columns and every (output row, kh) pair that reads it.
//
// `main` below is the readable loop form; the pipeline cache compiles the same
// computation fully unrolled by src/codegen.rs (between the `generated` markers).

// specialise:begin
const PIX: u32 = 4u;
const PH: u32 = 2u;
const K_H: u32 = 3u;
const K_W: u32 = 3u;
const S_H: u32 = 1u;
const S_W: u32 = 1u;
const D_H: u32 = 1u;
const D_W: u32 = 1u;
const ACT: u32 = 0u;
// VIN = 1: the generated form binds the input as array<vec4<f32>> and reads the tile's
// columns as aligned vec4s, the first column at position VA of its vec4 (see
// plan::depthwise_vec4_input); the loop form below always reads scalars.
const VIN: u32 = 0u;
const VA: u32 = 0u;
// TIN = 1: the generated form reads its input (vec4s or scalars) from an Rgba32Float texture that
// holds the whole input tensor, through textureLoad (see plan::texture_input and
// pipelines::texture_input, which rewrites the binding and the loads).
const TIN: u32 = 0u;
// VOUT = 1: the generated form binds the output as array<vec4<f32>> and stores each tile
// row's PIX columns as aligned vec4s (see plan::depthwise_vec4_output); the loop form
// below always stores scalars.
const VOUT: u32 = 0u;
// specialise:end

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
const SEG: u32 = (PIX - 1u) * S_W + (K_W - 1u) * D_W + 1u;

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
fn activate(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return clamp(v, 0.0, 6.0); }
        case 3u: { return select(p.alpha * v, v, v >= 0.0); }
        case 4u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// generated:begin
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lw = logical_wid(wid);
    if lw.z >= p.grid_z {
        return;
    }
    let item = p.x0 + lw.x * WG + lid;
    if item >= p.x_end {
        return;
    }
    let oh0 = (item / p.blocks_w) * PH;
    let ow0 = (item % p.blocks_w) * PIX;
    let co = p.y0 + lw.y;
    let n = p.z0 + lw.z;
    let ci = co / p.c_out_per_group;
    let x_plane = (n * p.c_in + ci) * p.in_cstride;
    let hin = i32(p.h_in);
    let win = i32(p.w_in);
    let iw0 = i32(ow0 * S_W) - i32(p.pad_left);
    let b = bias[co];

    for (var y = 0u; y < PH; y++) {
        let oh = oh0 + y;
        if oh >= p.h_out {
            break;
        }
        let ih0 = i32(oh * S_H) - i32(p.pad_top);
        var acc: array<f32, PIX>;
        for (var kh = 0u; kh < K_H; kh++) {
            let ih = ih0 + i32(kh * D_H);
            if ih >= 0 && ih < hin {
                let row = x_plane + u32(ih) * p.w_in - p.in_base;
                var seg: array<f32, SEG>;
                for (var s = 0u; s < SEG; s++) {
                    let iw = iw0 + i32(s);
                    let v = input[row + u32(clamp(iw, 0, win - 1))];
                    seg[s] = select(0.0, v, iw >= 0 && iw < win);
                }
                for (var kw = 0u; kw < K_W; kw++) {
                    let w = weight[(co * K_H + kh) * K_W + kw - p.w_base];
                    for (var px = 0u; px < PIX; px++) {
                        acc[px] += seg[px * S_W + kw * D_W] * w;
                    }
                }
            }
        }
        for (var px = 0u; px < PIX; px++) {
            let ow = ow0 + px;
            if ow >= p.w_out {
                break;
            }
            output[(n * p.c_out + co) * p.out_cstride + oh * p.w_out + ow - p.out_base] = activate(acc[px] + b);
        }
    }
}
// generated:end
