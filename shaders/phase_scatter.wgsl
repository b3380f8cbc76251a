// phase_scatter — writes one phase of a sub-pixel transposed convolution into its output:
// the phase's tensor [n, c, h_ph, w_ph] holds the output pixels (s_h·i + a, s_w·j + b), so
//   output[n, c, s_h·i + a, s_w·j + b] = phase[n, c, i, j]
// one element per invocation (see src/ops/sub_pixel.rs). The s_h·s_w phases of a layer cover
// every output pixel exactly once.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 phase  : array<f32>  [n, c, h_ph, w_ph]   read-only
//   2 output : array<f32>  [n, c, h_out, w_out] read-write
// Each tensor is bound as the window of its own elements; the host checks that every phase
// pixel lands inside the output (h_ph = ceil((h_out − a) / s_h), likewise along W).
//
// Grid: flat element index e = gid.y · row_stride + gid.x over the phase tensor (two
// dimensions, so that large tensors stay within the per-dimension workgroup limit);
// invocations with e ≥ total return.
//
// `main` below is the form with one element per invocation (V = 1). With V = 4 (phase rows
// a multiple of 4 elements, plan::plan_phase_scatter) the pipeline cache binds the phase as
// array<vec4<f32>> and replaces `main` with codegen::PHASE_SCATTER_VEC4_MAIN: each
// invocation reads one vec4 (4 elements of one phase row) and stores its 4 elements S_W
// apart, `total` then counting vec4s. On lavapipe that divides the index arithmetic (three
// integer divisions by uniforms) and the per-lane storage-load loops by 4.

// specialise:begin
// Phase elements per invocation: 1 or 4.
const V: u32 = 1u;
// TIN = 1 or 2 (with V = 4): the phase is read from a texture copy of it, sampled (1) or a
// read-only storage texture (2), as the convolution kernels read theirs (see
// plan::texture_input, pipelines::texture_input).
const TIN: u32 = 0u;
// specialise:end

struct Params {
    total: u32, row_stride: u32, h_ph: u32, w_ph: u32,
    h_out: u32, w_out: u32, s_h: u32, s_w: u32,
    a: u32, b: u32, pad0: u32, pad1: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> phase: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// generated:begin
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.y * p.row_stride + gid.x;
    if e >= p.total {
        return;
    }
    let j = e % p.w_ph;
    let i = (e / p.w_ph) % p.h_ph;
    let plane = e / (p.w_ph * p.h_ph);
    let oh = p.s_h * i + p.a;
    let ow = p.s_w * j + p.b;
    output[(plane * p.h_out + oh) * p.w_out + ow] = phase[e];
}
// generated:end
