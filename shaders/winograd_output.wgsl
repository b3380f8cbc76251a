// winograd_output — the output transform of Winograd F(M×M, 3×3) (src/winograd.rs):
// Y = Aᵀ Mt A for every tile, plus the bias, then the activation, into the NCHW output.
//
// Bindings (group 0):
//   0 uniform Params                       runtime sizes (struct below)
//   1 mt     : array<vec4<f32>>  [A², k, quads] vec4s: the GEMM's output for this slab  read-only
//   2 bias   : array<f32>        [k]                                                    read-only
//   3 output : array<f32>        [n, k, h_out, w_out]                                   read-write
// Each tensor is bound as the window of its own elements. In Params, c = k and (h, w) are
// the output's.
//
// Tiles, phases and quads as in winograd_input.wgsl: invocation id = ch·quads + q takes
// output channel ch of the quad of tiles [t0 + 4q, t0 + 4q + 4); element ξ of tile t is
// mt[(ξ·k + ch)·quads + q][t − t0 − 4q]. Tiles past the last are not stored, nor outputs
// past the image's rows or columns (a phase's last tiles may overhang it).
//
// `main` below is the readable loop form; the pipeline cache compiles the same computation
// unrolled by src/winograd.rs, replacing the text between the `generated` markers.

// specialise:begin
// Output tile size: 2 or 4.
const M: u32 = 4u;
// VOUT = 1: the generated form binds the output as array<vec4<f32>> and stores each output
// row of the quad (4·M columns from a multiple of 4) as vec4s (output rows a multiple of 4).
const VOUT: u32 = 0u;
// TIN = 1: the generated form reads Mt from an Rgba32Float texture that holds all of it,
// through textureLoad (see plan::winograd_output_texture and pipelines::texture_input).
const TIN: u32 = 0u;
// DIL = 1: dilation > 1, the grid runs in phases (see winograd_input.wgsl). DIL = 2: phases
// in lane order (needs VOUT = 1): each output of the quad's 4 tiles is one vec4 of 4
// neighbouring columns.
const DIL: u32 = 0u;
const ACT: u32 = 0u;
// specialise:end

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    th: u32, tw: u32, tiles: u32, t0: u32,
    quads: u32, pad_top: u32, pad_left: u32, row_stride: u32,
    items: u32, act: u32, alpha: f32, dil_h: u32,
    dil_w: u32, pad0: u32, pad1: u32, pad2: u32,
}

const WG: u32 = 64u;
const A: u32 = M + 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> mt: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

var<private> AT2: array<f32, 8> = array<f32, 8>(
    1.0, 1.0, 1.0, 0.0,
    0.0, 1.0, -1.0, -1.0,
);
var<private> AT4: array<f32, 24> = array<f32, 24>(
    1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
    0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
    0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
    0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
);

// Aᵀ[i][j].
fn at(i: u32, j: u32) -> f32 {
    if M == 2u {
        return AT2[i * 4u + j];
    }
    return AT4[i * 6u + j];
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

// `activate` of each component (the lane-order form, DIL = 2).
fn activate4(v: vec4<f32>) -> vec4<f32> {
    switch ACT {
        case 1u: { return max(v, vec4<f32>(0.0)); }
        case 2u: { return clamp(v, vec4<f32>(0.0), vec4<f32>(6.0)); }
        case 3u: { return select(p.alpha * v, v, v >= vec4<f32>(0.0)); }
        case 4u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// generated:begin
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.y * p.row_stride + gid.x;
    if id >= p.items {
        return;
    }
    let ch = id / p.quads;
    let q = id % p.quads;
    let per_image = p.th * p.tw;
    let phases = p.dil_h * p.dil_w;
    let bk = bias[ch];
    for (var i = 0u; i < 4u; i++) {
        let t = p.t0 + 4u * q + i;
        if t >= p.tiles {
            return;
        }
        let vi = t / per_image;
        let n = vi / phases;
        let ph = vi % phases;
        let oy0 = ph / p.dil_w + p.dil_h * (((t % per_image) / p.tw) * M);
        let ox0 = ph % p.dil_w + p.dil_w * ((t % p.tw) * M);
        let obase = (n * p.c + ch) * p.h * p.w;
        var tmp: array<f32, 24>;
        for (var r = 0u; r < M; r++) {
            for (var b = 0u; b < A; b++) {
                var s = 0.0;
                for (var k = 0u; k < A; k++) {
                    s += at(r, k) * mt[((k * A + b) * p.c + ch) * p.quads + q][i];
                }
                tmp[r * A + b] = s;
            }
        }
        for (var r = 0u; r < M; r++) {
            for (var c = 0u; c < M; c++) {
                var s = 0.0;
                for (var b = 0u; b < A; b++) {
                    s += tmp[r * A + b] * at(c, b);
                }
                let oy = oy0 + r * p.dil_h;
                let ox = ox0 + c * p.dil_w;
                if oy < p.h && ox < p.w {
                    output[obase + oy * p.w + ox] = activate(s + bk);
                }
            }
        }
    }
}
// generated:end
