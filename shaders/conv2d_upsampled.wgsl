// conv2d_upsampled — a forward convolution of the upsampled input (resize-convolution):
// nearest or bilinear (PyTorch align_corners=False) upsampling by integer factors, then any
// Conv2d, fused. The upsampled image is never materialised: every tap reads the real input
// through the upsampling index math. Register-blocked like conv2d_tiled: each invocation
// computes PIX consecutive output pixels of one row × COB4·4 output channels of one group.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below); the convolution's h_in, w_in
//                                     are the upsampled extents src_h·scale_h, src_w·scale_w
//   1 input  : array<f32>        [n, c_in, src_h, src_w]     (the real, small input)
//   2 weight : array<vec4<f32>>  repacked once at layer creation:
//              [groups][blocks_per_group][c_in/groups][k_h][K_W][COB4] vec4s;
//              output channels past c_out/groups in a group's last block are zero.
//   3 bias   : array<f32>        [c_out]                    (zeros if none)
//   4 output : array<f32>        [n, c_out, h_out, w_out]
//
// Grid: x = pixel block within an output plane (oh · blocks_w + ow / PIX), y = channel
// block cb (g = cb / blocks_per_group), z = batch n (as conv2d_tiled).
// Index math. The convolution, over the upsampled image u (taps outside u read zero):
//   out[n, co, oh, ow] = act(bias[co] + Σ_{ci, kh, kw} w[co, ci, kh, kw]
//       · u[n, g·(c_in/groups) + ci, oh·stride_h − pad_top + kh·dil_h, ow·S_W − pad_left + kw·D_W])
// and u at an in-range upsampled coordinate (uh, uw), per axis with scale s, source extent e,
// in unsigned integers only (no negative operand ever reaches / or %):
//   nearest (MODE 0):  u = x[uh / scale_h, uw / scale_w].
//   bilinear (MODE 1): PyTorch's src = max((o + 0.5)/s − 0.5, 0) equals t / 2s with
//                      t = 2o + 1 − s when 2o + 1 ≥ s, else 0. So i0 = t / 2s,
//                      i1 = min(i0 + 1, e − 1), and the weights are the exact integers
//                      f1 = t % 2s for i1 and f0 = 2s − f1 for i0 (out of 2s):
//     U = fy0·(fx0·x[y0, x0] + fx1·x[y0, x1]) + fy1·(fx0·x[y1, x0] + fx1·x[y1, x1]) = 4·scale_h·scale_w·u,
//     and the sum over taps is scaled by inv_area = 1 / (4·scale_h·scale_w) (rounded once on
//     the host) before the bias.
// The column taps of the SEG upsampled columns an invocation touches are computed once; for
// each (kh, ci) the SEG upsampled values of the row segment are formed once and reused across
// all K_W taps, PIX pixels and COB4·4 channels. The activation is a run-time switch on p.act
// (uniform across the dispatch, once per output), which keeps the specialisations few.

// specialise:begin
const PIX: u32 = 4u;
const COB4: u32 = 2u;
const K_W: u32 = 3u;
const S_W: u32 = 1u;
const D_W: u32 = 1u;
const MODE: u32 = 1u;
// specialise:end

struct Params {
    n: u32, c_in: u32, h_in: u32, w_in: u32,
    c_out: u32, h_out: u32, w_out: u32, groups: u32,
    c_in_per_group: u32, c_out_per_group: u32, k_h: u32, k_w: u32,
    stride_h: u32, stride_w: u32, dil_h: u32, dil_w: u32,
    pad_top: u32, pad_left: u32, act: u32, alpha: f32,
    blocks_w: u32, blocks_per_group: u32, tap_step_h: u32, x_end: u32,
    // The chunked kernels' fields (ConvUniforms mirrors them); this kernel
    // always runs whole tensors in one dispatch and reads none of them.
    x0: u32, y0: u32, z0: u32, w_base: u32,
    in_base: u32, in_cstride: u32, out_base: u32, out_cstride: u32,
    grid_x: u32, grid_y: u32, grid_z: u32, disp_x: u32,
    disp_y: u32, ci0: u32, ci1: u32, flags: u32,
    // The upsampling (UpsampleConvUniforms in src/ops/upsample_conv2d.rs).
    src_h: u32, src_w: u32, scale_h: u32, scale_w: u32,
    inv_area: f32, upad1: u32, upad2: u32, upad3: u32,
}

const WG: u32 = 64u;
const SEG: u32 = (PIX - 1u) * S_W + (K_W - 1u) * D_W + 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// Activation codes: 0 none, 1 relu, 2 relu6, 3 leaky_relu(alpha), 4 silu.
fn activate(v: f32) -> f32 {
    switch p.act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return clamp(v, 0.0, 6.0); }
        case 3u: { return select(p.alpha * v, v, v >= 0.0); }
        case 4u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// Bilinear source taps of upsampled coordinate o: (i0, i1, f1) with weights 2s − f1 and f1.
fn taps(o: u32, s: u32, e: u32) -> vec3<u32> {
    let two_o1 = 2u * o + 1u;
    let t = select(0u, two_o1 - s, two_o1 >= s);
    let i0 = t / (2u * s);
    let f1 = t - i0 * (2u * s);
    return vec3<u32>(i0, min(i0 + 1u, e - 1u), f1);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let item = gid.x;
    if item >= p.h_out * p.blocks_w {
        return;
    }
    let oh = item / p.blocks_w;
    let ow0 = (item % p.blocks_w) * PIX;
    let cb = wid.y;
    let n = wid.z;
    let g = cb / p.blocks_per_group;
    let co_in_group0 = (cb % p.blocks_per_group) * (COB4 * 4u);
    let cpg = p.c_in_per_group;
    let src_plane = p.src_h * p.src_w;
    let ih0 = i32(oh * p.stride_h) - i32(p.pad_top);
    let iw0 = i32(ow0 * S_W) - i32(p.pad_left);
    let hup = i32(p.h_in);
    let wup = i32(p.w_in);

    // Source columns (and bilinear weights) of the upsampled columns iw0 + s. Columns in the
    // padding are clamped to a valid one for the load and zeroed by col_ok.
    var cx0: array<u32, SEG>;
    var cx1: array<u32, SEG>;
    var fx1: array<f32, SEG>;
    var col_ok: array<bool, SEG>;
    for (var s = 0u; s < SEG; s++) {
        let iw = iw0 + i32(s);
        col_ok[s] = iw >= 0 && iw < wup;
        let uw = u32(clamp(iw, 0, wup - 1));
        if MODE == 0u {
            cx0[s] = uw / p.scale_w;
        } else {
            let t = taps(uw, p.scale_w, p.src_w);
            cx0[s] = t.x;
            cx1[s] = t.y;
            fx1[s] = f32(t.z);
        }
    }
    let two_sw = f32(2u * p.scale_w);

    var acc: array<vec4<f32>, PIX * COB4>;
    let taps_n = p.k_h * K_W;
    let x_group = (n * p.c_in + g * cpg) * src_plane;
    let w_group = cb * cpg * taps_n * COB4;
    for (var kh = 0u; kh < p.k_h; kh++) {
        let ih = ih0 + i32(kh * p.dil_h);
        if ih < 0 || ih >= hup {
            continue;
        }
        // Source rows of upsampled row ih (offsets within a plane) and their weights.
        var ry0: u32;
        var ry1: u32;
        var fy0: f32;
        var fy1: f32;
        if MODE == 0u {
            ry0 = (u32(ih) / p.scale_h) * p.src_w;
        } else {
            let t = taps(u32(ih), p.scale_h, p.src_h);
            ry0 = t.x * p.src_w;
            ry1 = t.y * p.src_w;
            fy1 = f32(t.z);
            fy0 = f32(2u * p.scale_h) - fy1;
        }
        var x_plane = x_group;
        var w_at = w_group + kh * K_W * COB4;
        for (var ci = 0u; ci < cpg; ci++) {
            var seg: array<f32, SEG>;
            for (var s = 0u; s < SEG; s++) {
                var v: f32;
                if MODE == 0u {
                    v = input[x_plane + ry0 + cx0[s]];
                } else {
                    let fx0 = two_sw - fx1[s];
                    let r0 = x_plane + ry0;
                    let r1 = x_plane + ry1;
                    let top = fx0 * input[r0 + cx0[s]] + fx1[s] * input[r0 + cx1[s]];
                    let bottom = fx0 * input[r1 + cx0[s]] + fx1[s] * input[r1 + cx1[s]];
                    v = fy0 * top + fy1 * bottom;
                }
                seg[s] = select(0.0, v, col_ok[s]);
            }
            for (var kw = 0u; kw < K_W; kw++) {
                for (var c = 0u; c < COB4; c++) {
                    let w = weight[w_at + kw * COB4 + c];
                    for (var px = 0u; px < PIX; px++) {
                        acc[px * COB4 + c] += seg[px * S_W + kw * D_W] * w;
                    }
                }
            }
            x_plane += src_plane;
            w_at += taps_n * COB4;
        }
    }

    for (var px = 0u; px < PIX; px++) {
        let ow = ow0 + px;
        if ow >= p.w_out {
            break;
        }
        for (var c = 0u; c < COB4; c++) {
            var sum = acc[px * COB4 + c];
            if MODE == 1u {
                sum *= p.inv_area;
            }
            for (var j = 0u; j < 4u; j++) {
                let co_local = co_in_group0 + c * 4u + j;
                if co_local < p.c_out_per_group {
                    let co = g * p.c_out_per_group + co_local;
                    output[((n * p.c_out + co) * p.h_out + oh) * p.w_out + ow] = activate(sum[j] + bias[co]);
                }
            }
        }
    }
}
