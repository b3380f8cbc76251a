// conv2d_shared — forward convolution as an implicit GEMM with workgroup-memory
// tiling: the classic GPU GEMM. Per (image n, group g):
//   M = h_out·w_out output pixels, N = c_out/groups output channels,
//   K = (c_in/groups)·K_H·K_W, with k = (ci·K_H + kh)·K_W + kw.
// A workgroup of WG = 256 invocations computes a BM × BN tile (BM = 16·TM pixels,
// BN = 16·TN channels); invocation (tm, tn) = (lid % 16, lid / 16) holds the TM × TN
// outputs at pixels m0 + tm + 16·i and channels n0 + tn + 16·j in registers. K is
// walked in steps of BK = 16: each step the workgroup cooperatively loads the
// im2col'd input tile A[BK][BM] (index math below; there is no im2col buffer) and the
// weight tile B[BK][BN] into workgroup memory, barrier, accumulates, barrier.
// Workgroup memory: BK·(BM + BN)·4 bytes ≤ 8 KiB (TM = TN = 4), within the 16 KiB
// WebGPU guarantees; 256 invocations is WebGPU's guaranteed maximum too.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>        [n, c_in, h_in, w_in]
//   2 weight : array<vec4<f32>>  repacked once at layer creation (WeightLayout::Blocked
//              with cob4 = BN / 4): [groups][blocks_per_group][K][BN] floats, i.e. for
//              each block of BN output channels a K-major [K][BN] matrix; output channels
//              past c_out/groups in a group's last block are zero.
//   3 bias   : array<f32>        [c_out]                    (zeros if none)
//   4 output : array<f32>        [n, c_out, h_out, w_out]
//
// Chunks and folding (host side: src/chunk.rs). One dispatch runs one chunk of the grid
// below: x items [x0, x_end) (items are output pixels oh·w_out + ow, whole output rows),
// y units from y0, images from z0, as the logical grid (grid_x, grid_y, grid_z) that
// logical_wid() recovers from the (possibly folded) dispatch. Indices are computed in global
// coordinates; each storage binding is a window of its tensor: element i of the binding is
// global element i + in_base / w_base / out_base (in the binding's element type), and input /
// output channel planes are in_cstride / out_cstride elements apart (h·w, or rows·w for a row
// band the host staged through a scratch buffer). The host guarantees that every index this
// kernel computes for a load or store it performs lies inside its window.
//
// Grid: x = pixel tile (m0 = x0 + lw.x·BM; the chunk's M range is [x0, x_end)), y = channel
// block cb = y0 + lw.y (g = cb / blocks_per_group, n0 = (cb % blocks_per_group)·BN),
// z = batch n = z0 + lw.z. blocks_w = w_out (items per output row).
// Index math of A[kk][mm] (k = k0 + kk, m = m0 + mm; reads zero when m ≥ x_end, k ≥ K or the
// tap falls in the padding — asymmetric padding needs only pad_top / pad_left here,
// the bottom / right padding is implied by h_out / w_out):
//   ci = k / (K_H·K_W), kh = (k % (K_H·K_W)) / K_W, kw = k % K_W, oh = m / w_out, ow = m % w_out
//   ih = oh·stride_h − pad_top + kh·dil_h,   iw = ow·stride_w − pad_left + kw·dil_w
//   A[kk][mm] = x[n, g·(c_in/groups) + ci, ih, iw]   (loaded only when 0 ≤ ih < h_in, 0 ≤ iw < w_in)
// Only non-negative values are divided (ih, iw are compared as i32 and used as u32 only
// when in range): `/` and `%` on negative integers are undefined in GLSL.
//   out[n, g·(c_out/groups) + co, oh, ow] = act(bias + Σ_k A[k][m] · B[k][co])
//
// Workgroup memory is fully written before it is read: every K step each invocation
// writes exactly its TM elements of A (lid + WG·i covers all BK·BM) and the loop over
// B's BK·BN/4 vec4s covers all of B, zeros included for out-of-range k; the barrier
// follows. The pipeline cache turns off zero-initialisation of workgroup memory, so
// this invariant is what makes that correct. Every barrier is in uniform control
// flow: the K loop's bound comes from the uniform, and out-of-range invocations load
// zeros and skip only the final store; padding workgroups of a folded dispatch
// (lw.z ≥ grid_z) return as a whole, before any barrier.

// specialise:begin
// Outputs per invocation along M (pixels) and N (channels): BM = 16·TM, BN = 16·TN.
const TM: u32 = 4u;
const TN: u32 = 4u;
const K_H: u32 = 3u;
const K_W: u32 = 3u;
const ACT: u32 = 0u;
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

const WG: u32 = 256u;
const BK: u32 = 16u;
const BM: u32 = 16u * TM;
const BN: u32 = 16u * TN;
const TAPS: u32 = K_H * K_W;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// A[kk][mm] at a_tile[kk·BM + mm]; B[kk][nn] at b_tile[kk·BN + nn].
var<workgroup> a_tile: array<f32, BK * BM>;
var<workgroup> b_tile: array<f32, BK * BN>;

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

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    // Uniform across the workgroup: a padding workgroup leaves before any barrier.
    let lw = logical_wid(wid);
    if lw.z >= p.grid_z {
        return;
    }
    let k_total = p.c_in_per_group * TAPS;
    let m0 = p.x0 + lw.x * BM;
    let cb = p.y0 + lw.y;
    let n = p.z0 + lw.z;
    let g = cb / p.blocks_per_group;
    let n0 = (cb % p.blocks_per_group) * BN;

    // The one pixel this invocation loads A for: WG is a multiple of BM, so
    // element lid + WG·i of the A tile is always column mm = lid % BM, row
    // kk = lid / BM + i·(WG / BM).
    let a_mm = lid % BM;
    let a_kk0 = lid / BM;
    let a_m = m0 + a_mm;
    let a_m_ok = a_m < p.x_end;
    let a_mc = min(a_m, p.x_end - 1u);
    let a_oh = a_mc / p.w_out;
    let a_ow = a_mc % p.w_out;
    let ih_base = i32(a_oh * p.stride_h) - i32(p.pad_top);
    let iw_base = i32(a_ow * p.stride_w) - i32(p.pad_left);
    let hin = i32(p.h_in);
    let win = i32(p.w_in);
    let x_base = (n * p.c_in + g * p.c_in_per_group) * p.in_cstride;
    // This block's [K][BN] weight matrix, in vec4s.
    let w_at = cb * k_total * (BN / 4u);

    let tm = lid % 16u;
    let tn = lid / 16u;
    var acc: array<f32, TM * TN>;
    for (var i = 0u; i < TM * TN; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        // A: TM elements per invocation.
        for (var i = 0u; i < TM; i++) {
            let kk = a_kk0 + i * (WG / BM);
            let k = k0 + kk;
            let ci = k / TAPS;
            let r = k % TAPS;
            let ih = ih_base + i32((r / K_W) * p.dil_h);
            let iw = iw_base + i32((r % K_W) * p.dil_w);
            var v = 0.0;
            if a_m_ok && k < k_total && ih >= 0 && ih < hin && iw >= 0 && iw < win {
                v = input[x_base + ci * p.in_cstride + u32(ih) * p.w_in + u32(iw) - p.in_base];
            }
            a_tile[kk * BM + a_mm] = v;
        }
        // B: BK·BN/4 vec4s, contiguous in the weight buffer.
        for (var e = lid; e < BK * BN / 4u; e += WG) {
            let kk = e / (BN / 4u);
            var v = vec4<f32>(0.0);
            if k0 + kk < k_total {
                v = weight[w_at + k0 * (BN / 4u) + e - p.w_base];
            }
            b_tile[e * 4u] = v.x;
            b_tile[e * 4u + 1u] = v.y;
            b_tile[e * 4u + 2u] = v.z;
            b_tile[e * 4u + 3u] = v.w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, TM>;
            for (var i = 0u; i < TM; i++) {
                a[i] = a_tile[kk * BM + tm + 16u * i];
            }
            for (var j = 0u; j < TN; j++) {
                let b = b_tile[kk * BN + tn + 16u * j];
                for (var i = 0u; i < TM; i++) {
                    acc[i * TN + j] = fma(a[i], b, acc[i * TN + j]);
                }
            }
        }
        workgroupBarrier();
    }

    // Output element of (co, m) with m = oh·w_out + ow: (n·c_out + co)·out_cstride + m − out_base.
    let out_at = (n * p.c_out + g * p.c_out_per_group) * p.out_cstride;
    for (var j = 0u; j < TN; j++) {
        let co = n0 + tn + 16u * j;
        if co < p.c_out_per_group {
            let b = bias[g * p.c_out_per_group + co];
            for (var i = 0u; i < TM; i++) {
                let m = m0 + tm + 16u * i;
                if m < p.x_end {
                    output[out_at + co * p.out_cstride + m - p.out_base] = activate(acc[i * TN + j] + b);
                }
            }
        }
    }
}
