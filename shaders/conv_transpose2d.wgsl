// conv_transpose2d — transposed convolution (PyTorch ConvTranspose2d, ONNX
// ConvTranspose) as a gather: each output pixel sums the input taps that reach
// it. No atomics, no scatter races, no col2im scratch buffer.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>        [n, c_in, h_in, w_in]
//   2 weight : array<vec4<f32>>  repacked once at layer creation from the PyTorch layout
//              [c_in, c_out/groups, k_h, k_w] into
//              [groups][blocks_per_group][c_in/groups][k_h][K_W][COB4] vec4s
//              (output channels past c_out/groups in a group's last block are zero).
//   3 bias   : array<f32>        [c_out]                    (zeros if none)
//   4 output : array<f32>        [n, c_out, h_out, w_out]
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
// Definition: input pixel (ih, iw) adds x · w[ci, co, kh, kw] to output
//   (ih·stride_h − pad_top + kh·dil_h, iw·S_W − pad_left + kw·D_W).
// Gather, per output pixel: tap kh reaches row oh from ih = (oh + pad_top − kh·dil_h) / stride_h
// when that division is exact and 0 ≤ ih < h_in. Phase arithmetic: the exact taps form an
// arithmetic progression in kh with step tap_step_h = stride_h / gcd(stride_h, dil_h) (host),
// so the kernel finds the first valid tap and then steps. Along W the same holds per kw;
// an invocation takes PIX output columns of every phase, ow = ph + S_W·(q0 + px) for
// ph < S_W; the columns of one phase share their valid kw taps and read consecutive input
// columns iw = q0 + px + (ph + pad_left − kw·D_W) / S_W. Each kw feeds exactly one phase.
// Outputs no tap reaches get exactly bias, then the activation.
//
// Grid: x = (oh, column block) with blocks_w blocks of PIX·S_W columns per row,
// y = channel block cb (g = cb / blocks_per_group), z = batch n.
//
// `main` below is the readable loop form; the pipeline cache compiles the same
// computation unrolled by src/codegen.rs (between the `generated` markers), where
// PLR = pad_left mod S_W fixes at compile time which taps feed which phase.

// specialise:begin
const PIX: u32 = 4u;
const COB4: u32 = 1u;
const K_W: u32 = 3u;
const S_W: u32 = 2u;
const D_W: u32 = 1u;
// pad_left mod S_W (the generated form needs it as a constant).
const PLR: u32 = 0u;
const ACT: u32 = 0u;
// VOUT = 1: the generated form binds the output as array<vec4<f32>> and stores each channel's
// S_W·PIX neighbouring columns as aligned vec4s (see plan::transposed_vec4_output).
const VOUT: u32 = 0u;
// VIN = 1: the generated form binds the input as array<vec4<f32>> and reads an invocation's
// input columns as aligned vec4s, the first at position VA of its vec4 (see
// plan::transposed_vec4_input); the loop form below always reads scalars.
const VIN: u32 = 0u;
const VA: u32 = 0u;
// TIN = 1: the generated form reads its input (vec4s or scalars) from an Rgba32Float texture that
// holds the whole input tensor, through textureLoad (see plan::texture_input and
// pipelines::texture_input, which rewrites the binding and the loads). TIN = 2: the same
// through a read-only storage texture (see plan::storage_texture_reads).
const TIN: u32 = 0u;
// TWT = 1: the weight is read from an Rgba32Float texture copy of the layer's weight buffer
// (made once per layer), through textureLoad (see plan::weight_texture); TWT = 2: a read-only
// storage texture.
const TWT: u32 = 0u;
// SG > 0: the device runs subgroups of exactly SG invocations, each subgroup takes SG
// consecutive tiles of one output row, and the generated form reads the weights once per
// subgroup and broadcasts them (see plan::transposed_subgroups); the loop form below reads
// them directly.
const SG: u32 = 0u;
// KHU: the generated form unrolls the KHU taps that can reach an output row (⌈k_h /
// tap_step_h⌉), each behind its own test, instead of looping over them; 0: the loop. See
// plan::unrolled_taps; the loop form below ignores it.
const KHU: u32 = 0u;
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
// Whole strides that cover the largest tap offset (K_W − 1)·D_W.
const W_BIAS: u32 = ((K_W - 1u) * D_W + S_W - 1u) / S_W;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
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
    let oh = item / p.blocks_w;
    let q0 = (item % p.blocks_w) * PIX;
    let cb = p.y0 + lw.y;
    let n = p.z0 + lw.z;
    let g = cb / p.blocks_per_group;
    let co_in_group0 = (cb % p.blocks_per_group) * (COB4 * 4u);
    let cpg = p.c_in_per_group;
    let plane = p.in_cstride;
    let win = i32(p.w_in);

    // First tap kh whose row offset oh + pad_top − kh·dil_h is a non-negative multiple of
    // stride_h. (Only non-negative operands reach % and /: GLSL leaves them undefined
    // for negative ones.)
    let th = i32(oh + p.pad_top);
    var kh0 = p.k_h;
    for (var k = 0u; k < min(p.tap_step_h, p.k_h); k++) {
        let t = th - i32(k * p.dil_h);
        if t < 0 {
            break;
        }
        if u32(t) % p.stride_h == 0u {
            kh0 = k;
            break;
        }
    }

    var acc: array<vec4<f32>, S_W * PIX * COB4>;
    var x_plane = (n * p.c_in + g * cpg) * plane;
    let w_ci_stride = p.k_h * K_W * COB4;
    var w_at = cb * cpg * w_ci_stride - p.w_base;
    for (var ci = 0u; ci < cpg; ci++) {
        for (var kh = kh0; kh < p.k_h; kh += p.tap_step_h) {
            let t = th - i32(kh * p.dil_h);
            if t < 0 {
                break;
            }
            let ih = u32(t) / p.stride_h;
            if ih >= p.h_in {
                continue;
            }
            let row = x_plane + ih * p.w_in - p.in_base;
            for (var ph = 0u; ph < S_W; ph++) {
                for (var kw = 0u; kw < K_W; kw++) {
                    // r = ph + pad_left − kw·D_W, shifted by W_BIAS strides to stay non-negative.
                    let r = ph + p.pad_left + W_BIAS * S_W - kw * D_W;
                    if r % S_W != 0u {
                        continue;
                    }
                    let off = i32(r / S_W) - i32(W_BIAS);
                    var xs: array<f32, PIX>;
                    for (var px = 0u; px < PIX; px++) {
                        let iw = i32(q0 + px) + off;
                        let v = input[row + u32(clamp(iw, 0, win - 1))];
                        xs[px] = select(0.0, v, iw >= 0 && iw < win);
                    }
                    for (var c = 0u; c < COB4; c++) {
                        let w = weight[w_at + (kh * K_W + kw) * COB4 + c];
                        for (var px = 0u; px < PIX; px++) {
                            acc[(ph * PIX + px) * COB4 + c] += xs[px] * w;
                        }
                    }
                }
            }
        }
        x_plane += plane;
        w_at += w_ci_stride;
    }

    for (var ph = 0u; ph < S_W; ph++) {
        for (var px = 0u; px < PIX; px++) {
            let ow = ph + S_W * (q0 + px);
            if ow >= p.w_out {
                break;
            }
            for (var c = 0u; c < COB4; c++) {
                for (var j = 0u; j < 4u; j++) {
                    let co_local = co_in_group0 + c * 4u + j;
                    if co_local < p.c_out_per_group {
                        let co = g * p.c_out_per_group + co_local;
                        let v = acc[(ph * PIX + px) * COB4 + c][j] + bias[co];
                        output[(n * p.c_out + co) * p.out_cstride + oh * p.w_out + ow - p.out_base] = activate(v);
                    }
                }
            }
        }
    }
}
// generated:end
