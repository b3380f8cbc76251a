// winograd_input — the input transform of Winograd F(M×M, 3×3) (src/winograd.rs):
// V = Bᵀ d B for every A×A input tile d (A = M + 2) of a 3×3, stride-1 convolution, into
// A² planes that the GEMM (a grouped 1×1 convolution, A² groups) reads as channels.
//
// Bindings (group 0):
//   0 uniform Params                       runtime sizes (struct below)
//   1 input  : array<f32>        [n, c, h, w]                              read-only
//   2 output : array<vec4<f32>>  [A², c, quads] vec4s = [A²·c, 4·quads] floats of this slab
// Each tensor is bound as the window of its own elements.
//
// Tiles: with dilation (dil_h, dil_w) the outputs split into dil_h·dil_w phases (oy mod
// dil_h, ox mod dil_w), each a dense 3×3 convolution over the input's sub-grid (the
// space-to-batch equivalence, in the index math). Tile (img, phase (pr, pc), ty, tx) covers
// output rows pr + dil_h·(ty·M + i) and columns pc + dil_w·(tx·M + j), i, j < M, so input
// rows pr + dil_h·(ty·M + u) − pad_top and columns pc + dil_w·(tx·M + v) − pad_left, u, v < A
// (outside the image: zero). Tiles are numbered t = ((img·phases + phase)·th + ty)·tw + tx
// (phase = pr·dil_w + pc; without dilation one phase and tw a multiple of 4). The dispatch
// covers tiles [t0, t0 + 4·quads) of the slab, 4 consecutive tiles (a quad) per invocation,
// one channel per invocation: item id = ch·quads + q on a 2-D grid (id = gid.y·row_stride +
// gid.x). Tiles past the last (t ≥ tiles) store zeros. Element ξ = r·A + b of tile t is
// stored at float (ξ·c + ch)·4·quads + (t − t0).
//
// `main` below is the readable loop form; the pipeline cache compiles the same computation
// unrolled by src/winograd.rs (constant coefficients, zeros skipped), replacing the text
// between the `generated` markers.

// specialise:begin
// Output tile size: 2 or 4.
const M: u32 = 4u;
// VIN = 1: the generated form binds the input as array<vec4<f32>> and reads the quad's
// columns as aligned vec4s, the first at position VA of its vec4 (rows a multiple of 4).
const VIN: u32 = 0u;
const VA: u32 = 0u;
// TIN = 1: the generated form reads its input (vec4s or scalars) from an Rgba32Float texture that
// holds the whole input tensor, through textureLoad (see plan::texture_input and
// pipelines::texture_input, which rewrites the binding and the loads).
const TIN: u32 = 0u;
// DIL = 1: dilation > 1, the grid runs in phases (below); the generated form then locates
// each of the quad's tiles on its own (DIL = 0: the 4 tiles share input columns).
// DIL = 2: phases in lane order (winograd::TileGrid::lanes; needs VIN = 1, VA = 0): a quad
// is 4 neighbouring column phases 4j..4j+3 at one tile position, numbered
// t = 4·((((img·dil_h + pr)·dil_w/4 + j)·th + ty)·tw + tx) + i, phase column 4j + i, so
// its 4 tiles read 4 neighbouring input columns, one aligned vec4 per tile element.
const DIL: u32 = 0u;
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
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<vec4<f32>>;

var<private> BT2: array<f32, 16> = array<f32, 16>(
    1.0, 0.0, -1.0, 0.0,
    0.0, 1.0, 1.0, 0.0,
    0.0, -1.0, 1.0, 0.0,
    0.0, 1.0, 0.0, -1.0,
);
var<private> BT4: array<f32, 36> = array<f32, 36>(
    4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
    0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
    0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
    0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
    0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
    0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
);

// Bᵀ[i][j].
fn bt(i: u32, j: u32) -> f32 {
    if M == 2u {
        return BT2[i * 4u + j];
    }
    return BT4[i * 6u + j];
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
    let hin = i32(p.h);
    let win = i32(p.w);
    var vals: array<vec4<f32>, 36>;
    for (var i = 0u; i < 4u; i++) {
        let t = p.t0 + 4u * q + i;
        let live = t < p.tiles;
        let tt = min(t, p.tiles - 1u);
        let vi = tt / per_image;
        let n = vi / phases;
        let ph = vi % phases;
        let oy = ph / p.dil_w + p.dil_h * (((tt % per_image) / p.tw) * M);
        let ox = ph % p.dil_w + p.dil_w * ((tt % p.tw) * M);
        let plane = (n * p.c + ch) * p.h * p.w;
        var d: array<f32, 36>;
        for (var u = 0u; u < A; u++) {
            for (var v = 0u; v < A; v++) {
                let iy = i32(oy + u * p.dil_h) - i32(p.pad_top);
                let ix = i32(ox + v * p.dil_w) - i32(p.pad_left);
                let ok = live && iy >= 0 && iy < hin && ix >= 0 && ix < win;
                let at = plane + u32(clamp(iy, 0, hin - 1)) * p.w + u32(clamp(ix, 0, win - 1));
                d[u * A + v] = select(0.0, input[at], ok);
            }
        }
        var tmp: array<f32, 36>;
        for (var r = 0u; r < A; r++) {
            for (var v = 0u; v < A; v++) {
                var s = 0.0;
                for (var u = 0u; u < A; u++) {
                    s += bt(r, u) * d[u * A + v];
                }
                tmp[r * A + v] = s;
            }
        }
        for (var r = 0u; r < A; r++) {
            for (var b = 0u; b < A; b++) {
                var s = 0.0;
                for (var v = 0u; v < A; v++) {
                    s += tmp[r * A + v] * bt(b, v);
                }
                vals[r * A + b][i] = s;
            }
        }
    }
    for (var xi = 0u; xi < A * A; xi++) {
        output[(xi * p.c + ch) * p.quads + q] = vals[xi];
    }
}
// generated:end
