//! Winograd minimal filtering, F(m×m, 3×3) for m = 2 and 4 (Lavin & Gray,
//! *Fast Algorithms for Convolutional Neural Networks*, 2016).
//!
//! A 3×3 stride-1 convolution computes each `m×m` output tile from the
//! `α×α` input tile under it (`α = m + 2`) as
//!
//! `Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A`
//!
//! so that the sum over input channels — the multiply-adds — becomes `α²`
//! independent GEMMs with `α²/m²` as many products per output as the direct
//! form's 9: 4 for F(2×2, 3×3) (2.25× fewer) and 2.25 for F(4×4, 3×3) (4×
//! fewer). wgconv runs it as three kernels: `winograd_input` (the `Bᵀ d B`
//! of every tile, into `α²` planes), the GEMMs as one grouped 1×1
//! convolution through the ordinary planner (`α²` groups; on a CPU driver
//! that is `conv2d_tiled` with uniform weights), and `winograd_output`
//! (`Aᵀ M A`, bias and activation). The weight transform `G g Gᵀ` is done
//! once, in f64, when the layer is created.
//!
//! Numerically the transforms add rounding steps and cancellation: the
//! error bound is `γ_L` times a magnitude taken through the transforms with
//! their absolute values ([`bound`]), which the tests and `verify` use in
//! place of the direct form's `Σ|x·w|`.

use std::fmt::Write as _;

/// The Winograd tile sizes wgconv implements.
pub const TILES: [u32; 2] = [2, 4];

/// The transform matrices of F(m×m, 3×3), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrices {
    /// Output tile size `m`.
    pub m: usize,
    /// Input tile size `α = m + 2`.
    pub alpha: usize,
    /// `Bᵀ`, `α × α`.
    pub bt: Vec<f64>,
    /// `G`, `α × 3`.
    pub g: Vec<f64>,
    /// `Aᵀ`, `m × α`.
    pub at: Vec<f64>,
}

/// The matrices of F(m×m, 3×3), or `None` for an `m` not in [`TILES`]. The
/// interpolation points are 0, ±1 and ∞ (m = 2) and 0, ±1, ±2 and ∞ (m = 4),
/// Lavin & Gray's choice; `Bᵀ` and `Aᵀ` have small integer entries (exact
/// in f32), `G` the fractions.
pub fn matrices(m: u32) -> Option<Matrices> {
    let (bt, g, at): (Vec<f64>, Vec<f64>, Vec<f64>) = match m {
        2 => (
            vec![
                1., 0., -1., 0., //
                0., 1., 1., 0., //
                0., -1., 1., 0., //
                0., 1., 0., -1.,
            ],
            vec![
                1., 0., 0., //
                0.5, 0.5, 0.5, //
                0.5, -0.5, 0.5, //
                0., 0., 1.,
            ],
            vec![
                1., 1., 1., 0., //
                0., 1., -1., -1.,
            ],
        ),
        4 => (
            vec![
                4., 0., -5., 0., 1., 0., //
                0., -4., -4., 1., 1., 0., //
                0., 4., -4., -1., 1., 0., //
                0., -2., -1., 2., 1., 0., //
                0., 2., -1., -2., 1., 0., //
                0., 4., 0., -5., 0., 1.,
            ],
            vec![
                1. / 4.,
                0.,
                0., //
                -1. / 6.,
                -1. / 6.,
                -1. / 6., //
                -1. / 6.,
                1. / 6.,
                -1. / 6., //
                1. / 24.,
                1. / 12.,
                1. / 6., //
                1. / 24.,
                -1. / 12.,
                1. / 6., //
                0.,
                0.,
                1.,
            ],
            vec![
                1., 1., 1., 1., 1., 0., //
                0., 1., -1., 2., -2., 0., //
                0., 1., 1., 4., 4., 0., //
                0., 1., -1., 8., -8., 1.,
            ],
        ),
        _ => return None,
    };
    let m = m as usize;
    Some(Matrices {
        m,
        alpha: m + 2,
        bt,
        g,
        at,
    })
}

impl Matrices {
    /// `G g Gᵀ` (`α × α`) of one 3×3 kernel `g` (row-major), in f64.
    pub fn kernel(&self, g: &[f64]) -> Vec<f64> {
        let a = self.alpha;
        let mut t = vec![0.0; a * 3];
        for i in 0..a {
            for j in 0..3 {
                t[i * 3 + j] = (0..3).map(|k| self.g[i * 3 + k] * g[k * 3 + j]).sum();
            }
        }
        let mut u = vec![0.0; a * a];
        for i in 0..a {
            for j in 0..a {
                u[i * a + j] = (0..3).map(|k| t[i * 3 + k] * self.g[j * 3 + k]).sum();
            }
        }
        u
    }

    /// `Bᵀ d B` (`α × α`) of one input tile `d` (`α × α`, row-major).
    pub fn input(&self, d: &[f64]) -> Vec<f64> {
        let a = self.alpha;
        let mut t = vec![0.0; a * a];
        for i in 0..a {
            for j in 0..a {
                t[i * a + j] = (0..a).map(|k| self.bt[i * a + k] * d[k * a + j]).sum();
            }
        }
        let mut v = vec![0.0; a * a];
        for i in 0..a {
            for j in 0..a {
                v[i * a + j] = (0..a).map(|k| t[i * a + k] * self.bt[j * a + k]).sum();
            }
        }
        v
    }

    /// `Aᵀ M A` (`m × m`) of one transformed tile `M` (`α × α`).
    pub fn output(&self, mm: &[f64]) -> Vec<f64> {
        let (a, m) = (self.alpha, self.m);
        let mut t = vec![0.0; m * a];
        for i in 0..m {
            for j in 0..a {
                t[i * a + j] = (0..a).map(|k| self.at[i * a + k] * mm[k * a + j]).sum();
            }
        }
        let mut y = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                y[i * m + j] = (0..a).map(|k| t[i * a + k] * self.at[j * a + k]).sum();
            }
        }
        y
    }

    /// The same matrices with every entry replaced by its absolute value
    /// (for the error bound).
    fn abs(&self) -> Self {
        let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect();
        Self {
            m: self.m,
            alpha: self.alpha,
            bt: abs(&self.bt),
            g: abs(&self.g),
            at: abs(&self.at),
        }
    }
}

/// The GEMM weight of a 3×3 convolution `[k_out, c_in, 3, 3]` under
/// F(m×m, 3×3): `[α²·k_out, c_in, 1, 1]` with row `ξ·k_out + k` holding
/// element `ξ` of `G g_{k,c} Gᵀ` for every `c` — the weight of the grouped
/// 1×1 convolution (`α²` groups) that runs the `α²` GEMMs. Computed in
/// f64 and rounded once.
pub fn transform_weight(mats: &Matrices, weight: &[f32], k_out: usize, c_in: usize) -> Vec<f32> {
    let a2 = mats.alpha * mats.alpha;
    let mut out = vec![0f32; a2 * k_out * c_in];
    for k in 0..k_out {
        for c in 0..c_in {
            let base = (k * c_in + c) * 9;
            let g: Vec<f64> = weight[base..base + 9]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            for (xi, u) in mats.kernel(&g).into_iter().enumerate() {
                out[(xi * k_out + k) * c_in + c] = u as f32;
            }
        }
    }
    out
}

/// Geometry of a Winograd layer on one input shape: `[n, c, h, w]` in,
/// `[n, k, h_out, w_out]` out, tiles of `m × m` outputs.
///
/// With dilation `(d_h, d_w)` the outputs split into `d_h·d_w` phases
/// (`oy mod d_h`, `ox mod d_w`); within a phase neighbouring outputs read
/// neighbouring taps `d` apart, so each phase is a dense 3×3 convolution
/// of the input's matching sub-grid — the space-to-batch equivalence of
/// the dilated-convolution literature, done in the transforms' index math
/// (no rearranged copies). Every phase gets the same `th × tw` tiles
/// (`⌈⌈h_out/d_h⌉/m⌉ × ⌈⌈w_out/d_w⌉/m⌉`); tiles overhanging a phase's
/// outputs are computed and not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGrid {
    /// Output tile size.
    pub m: u32,
    /// Tile rows per phase.
    pub th: u32,
    /// Tiles per tile row; without dilation rounded up to a multiple of 4
    /// (each invocation of the transforms then takes 4 neighbouring tiles of
    /// a row, which share input columns).
    pub tw: u32,
    /// Images.
    pub n: u32,
    /// Dilation `(d_h, d_w)`: phases per image `d_h·d_w`.
    pub dil: (u32, u32),
}

impl TileGrid {
    /// The grid of an output of `h_out × w_out` for `n` images, dilation `dil`.
    pub fn new(m: u32, n: u32, h_out: u32, w_out: u32, dil: (u32, u32)) -> Self {
        let dense = dil == (1, 1);
        let tw = w_out.div_ceil(dil.1).div_ceil(m);
        Self {
            m,
            th: h_out.div_ceil(dil.0).div_ceil(m),
            tw: if dense { tw.div_ceil(4) * 4 } else { tw },
            n,
            dil,
        }
    }

    /// Whether the grid runs in phases (dilation > 1).
    pub fn phased(&self) -> bool {
        self.dil != (1, 1)
    }

    /// Tiles that exist: images × phases × tile rows × tiles per row.
    pub fn real_tiles(&self) -> u64 {
        u64::from(self.n)
            * u64::from(self.dil.0)
            * u64::from(self.dil.1)
            * u64::from(self.th)
            * u64::from(self.tw)
    }

    /// Whether the dilated grid can run in *lane* order (`DIL = 2`) for an
    /// input `w_in` wide with `pad_left` columns of padding: its quads of 4
    /// tiles are then 4 neighbouring column phases `4·j .. 4·j + 3` at the
    /// same tile position, numbered `t = 4·qc + i` with `qc = (((img·d_h +
    /// pr)·d_w/4 + j)·th + ty)·tw + tx` and phase column `4·j + i`. Tile `i`
    /// reads and writes the columns of tile 0 plus `i`, so with `d_w`,
    /// `w_in`, `w_out` and `pad_left` multiples of 4 each of the quad's
    /// input and output columns is one aligned vec4 of 4 neighbouring
    /// floats, in or out of the image whole.
    pub fn lanes(&self, w_in: u32, pad_left: u32, w_out: u32) -> bool {
        self.phased()
            && self.dil.1.is_multiple_of(4)
            && w_in.is_multiple_of(4)
            && w_out.is_multiple_of(4)
            && pad_left.is_multiple_of(4)
    }

    /// Tiles the transforms cover: [`TileGrid::real_tiles`] rounded up to a
    /// multiple of 4 (the last quad's extra tiles are zeros, never stored).
    pub fn tiles(&self) -> u64 {
        self.real_tiles().div_ceil(4) * 4
    }
}

/// Tiles per row of the GEMM's input for `tiles` tiles (a multiple of 4):
/// all of them up to 64, else the multiple of 8 in 32..=64 that leaves the
/// fewest padding tiles in the last row (ties: the longer row). Rows of
/// 64 would pad r3x3's 224 tiles to 256 and aspp12's 144 to 192.
pub fn gemm_row(tiles: u64) -> u64 {
    if tiles <= 64 {
        return tiles;
    }
    (4..=8)
        .rev()
        .map(|k| 8 * k)
        .min_by_key(|&row| tiles.div_ceil(row) * row)
        .unwrap_or(64)
}

/// How the transforms' quads of 4 tiles lie on the output (`DIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quads {
    /// No dilation: 4 neighbouring tiles of a row, which share input
    /// columns (`DIL = 0`).
    Dense,
    /// Dilation phases: each of the quad's 4 tiles is located on its own,
    /// its taps `dil_h` / `dil_w` apart (`DIL = 1`).
    Phases,
    /// Dilation phases in lane order: 4 neighbouring column phases at the
    /// same place (`DIL = 2`; see [`TileGrid::lanes`]), whose inputs and
    /// outputs are 4 neighbouring columns, read and stored as aligned vec4s;
    /// the transforms run on vec4s, one tile per component.
    Lanes,
}

impl Quads {
    /// The form a `DIL` value names; `None` past 2.
    pub fn from_dil(dil: u32) -> Option<Self> {
        match dil {
            0 => Some(Quads::Dense),
            1 => Some(Quads::Phases),
            2 => Some(Quads::Lanes),
            _ => None,
        }
    }
}

/// The specialisation of `winograd_input` / `winograd_output` the
/// generator unrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformSpec {
    /// Output tile size `m` (2 or 4).
    pub m: u32,
    /// `winograd_input`: `Some(a)` reads the input as aligned vec4s, the
    /// first column at position `a` of its vec4 (`VIN`, `VA`: rows a
    /// multiple of 4 floats). `winograd_output`: `Some(_)` stores aligned
    /// vec4s (`VOUT`: output rows a multiple of 4 floats). With dilation,
    /// only in lane order, as `Some(0)`.
    pub vec4: Option<u32>,
    /// Where the quads' tiles lie (`DIL`).
    pub quads: Quads,
}

/// `Σ coef·name` over the non-zero coefficients, as WGSL (`0.0` if none).
fn lin(terms: &[(f64, String)]) -> String {
    let mut s = String::new();
    for (c, name) in terms.iter().filter(|(c, _)| *c != 0.0) {
        let (sign, mag) = if *c < 0.0 { ("-", -c) } else { ("+", *c) };
        if s.is_empty() {
            if sign == "-" {
                s.push('-');
            }
        } else {
            let _ = write!(s, " {sign} ");
        }
        if mag == 1.0 {
            s.push_str(name);
        } else {
            let _ = write!(s, "{mag:?} * {name}");
        }
    }
    if s.is_empty() {
        s.push_str("0.0");
    }
    s
}

/// The start of every transform's `main`: invocation `id` takes quad `q`
/// of the slab in channel `ch` (items past the last exit).
const QUAD: &str = "@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.y * p.row_stride + gid.x;
    if id >= p.items {
        return;
    }
    let ch = id / p.quads;
    let q = id % p.quads;
";

/// The opening of both transforms: the quad of 4 tiles this invocation
/// takes (`q` within the slab, channel `ch`), and its first tile's image,
/// tile row and column. Quads past the last tile exit (`winograd_output`)
/// or write zeros (`winograd_input`, through `live`).
fn opening() -> String {
    String::from(QUAD)
        + "    let t = p.t0 + 4u * q;
    let live = t < p.tiles;
    let tt = min(t, p.tiles - 4u);
    let per_image = p.th * p.tw;
    let n = tt / per_image;
    let ty = (tt % per_image) / p.tw;
    let tx = tt % p.tw;
"
}

/// The opening of both transforms in phase mode: the quad (`q`, channel
/// `ch`), and for each of its 4 tiles `i` its liveness, image `n{i}`, phase
/// row and column offsets and first output row `oy{i}` / column `ox{i}`
/// (tile row `ty·M` of phase `r` is output row `r + d_h·ty·M`).
fn phased_opening() -> String {
    let mut s = String::from(QUAD)
        + "    let per_image = p.th * p.tw;
    let phases = p.dil_h * p.dil_w;
";
    for i in 0..4 {
        let _ = writeln!(s, "    let t{i} = p.t0 + 4u * q + {i}u;");
        let _ = writeln!(s, "    let live{i} = t{i} < p.tiles;");
        let _ = writeln!(s, "    let tt{i} = min(t{i}, p.tiles - 1u);");
        let _ = writeln!(s, "    let vi{i} = tt{i} / per_image;");
        let _ = writeln!(s, "    let n{i} = vi{i} / phases;");
        let _ = writeln!(s, "    let ph{i} = vi{i} % phases;");
        let _ = writeln!(
            s,
            "    let oy{i} = ph{i} / p.dil_w + p.dil_h * (((tt{i} % per_image) / p.tw) * M);"
        );
        let _ = writeln!(
            s,
            "    let ox{i} = ph{i} % p.dil_w + p.dil_w * ((tt{i} % p.tw) * M);"
        );
    }
    s
}

/// The generated `main` of `winograd_input` for `spec` (`None` for an `m`
/// not in [`TILES`]): unrolled, in phase mode a loop over input rows
/// (`winograd_input_phased`), in lane order unrolled on vec4s
/// (`winograd_input_lanes`).
pub fn winograd_input_main(spec: &TransformSpec) -> Option<String> {
    match spec.quads {
        Quads::Lanes => return winograd_input_lanes(spec),
        Quads::Phases => return winograd_input_phased(spec),
        Quads::Dense => {}
    }
    let mats = matrices(spec.m)?;
    let (m, a) = (mats.m, mats.alpha);
    let cols = 4 * m + 2;
    let offs: Vec<u32> = (0..cols as u32).collect();
    let mut s = opening();
    let mut line = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    line("    let hin = i32(p.h);");
    line("    let win = i32(p.w);");
    line("    let ih0 = i32(ty * M) - i32(p.pad_top);");
    line("    let iw0 = i32(tx * M) - i32(p.pad_left);");
    line("    let plane = (n * p.c + ch) * p.h * p.w;");
    line("    // The quad's 4·M + 2 input columns, clamped into the row, with their validity.");
    line(crate::codegen::column_setup(&offs, spec.vec4, "    ").trim_end());
    for u in 0..a {
        line(&format!("    let iy{u} = ih0 + {u};"));
        line(&format!(
            "    let rv{u} = live && iy{u} >= 0 && iy{u} < hin;"
        ));
        line(&format!(
            "    let row{u} = plane + u32(clamp(iy{u}, 0, hin - 1)) * p.w;"
        ));
        // Each row's values get their own names: r{u}x{t}, through vec4s r{u}v{k}.
        let loads = crate::codegen::row_loads_named(
            &offs,
            spec.vec4,
            &format!("rv{u} && "),
            &format!("row{u}"),
            &format!("r{u}"),
            "    ",
        );
        line(loads.trim_end());
    }
    // Per tile i: d[u][v] = r{u}x{i·m + v}; t = Bᵀ d; V = t B.
    input_math(&mats, &mut line, &|i, u, v| format!("r{u}x{}", i * m + v));
    line("}");
    Some(s)
}

/// `winograd_input` in phase mode, where each of the quad's tiles has its
/// own rows and columns (`d` apart): a loop over the `α` input rows `u`.
/// Each step loads row `u` of the 4 tiles (`α` scalars each, the columns
/// located once before the loop), applies `B` to it (`e = d[u] B`, constant
/// coefficients, zeros skipped) and adds `Bᵀ[r][u]·e` to row `r` of the
/// result (`V = Σ_u Bᵀ[:, u] ⊗ d[u] B = Bᵀ d B`), the 4 tiles in the 4
/// lanes of each vec4; the `α²` stores follow, unrolled.
///
/// Unrolled (its `4·α²` loads and both passes each their own code too),
/// F(4×4)'s module was the largest part of `aspp12`'s and `ctx8`'s cold
/// start. Measured on lavapipe with Mesa's shader cache off:
/// - its first dispatch (`examples/first_dispatch.rs` on the dumped module,
///   medians of 5 alternated processes): 0.93 s unrolled, 0.63 s this way;
/// - the whole process to the first result (4 alternated processes each):
///   ctx8 2.04–2.55 → 1.60–2.17 s, aspp12 1.89–2.33 → 1.48–2.04 s;
/// - run time (medians of 5 alternated processes, `--runs 30`): ctx8 13.7 →
///   13.9 ms, aspp12 55.3 → 58.0 ms, within this machine's noise.
///
/// Storing through a loop (one store site, the others shifted down after
/// each) compiled in 0.42 s but cost ctx8 and aspp12 10 % (6 alternated
/// processes: 13.1 → 14.4 ms, 54.1 → 59.6 ms), as it cost `b8` 14 %
/// without phases; without phases the unrolled form stays, as the loop
/// over rows alone compiled no faster there.
fn winograd_input_phased(spec: &TransformSpec) -> Option<String> {
    let mats = matrices(spec.m)?;
    let a = mats.alpha;
    let mut s = phased_opening();
    let mut line = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    line("    let hin = i32(p.h);");
    line("    let win = i32(p.w);");
    // Each tile's α columns, `d_w` apart, clamped into the row, with their validity.
    for i in 0..4 {
        line(&format!(
            "    let plane{i} = (n{i} * p.c + ch) * p.h * p.w;"
        ));
        for v in 0..a {
            line(&format!(
                "    let ix{i}_{v} = i32(ox{i} + {v}u * p.dil_w) - i32(p.pad_left);"
            ));
            line(&format!(
                "    let cv{i}_{v} = ix{i}_{v} >= 0 && ix{i}_{v} < win;"
            ));
            line(&format!(
                "    let ci{i}_{v} = u32(clamp(ix{i}_{v}, 0, win - 1));"
            ));
        }
    }
    // Row r, column b of V for the quad's 4 tiles.
    for r in 0..a {
        for b in 0..a {
            line(&format!("    var v{r}_{b} = vec4<f32>(0.0);"));
        }
    }
    line("    for (var u = 0u; u < A; u++) {");
    for i in 0..4 {
        line(&format!(
            "        let iy{i} = i32(oy{i} + u * p.dil_h) - i32(p.pad_top);"
        ));
        line(&format!(
            "        let rv{i} = live{i} && iy{i} >= 0 && iy{i} < hin;"
        ));
        line(&format!(
            "        let row{i} = plane{i} + u32(clamp(iy{i}, 0, hin - 1)) * p.w;"
        ));
        for v in 0..a {
            line(&format!(
                "        let d{i}_{v} = select(0.0, input[row{i} + ci{i}_{v}], rv{i} && cv{i}_{v});"
            ));
        }
    }
    // Column v of the 4 tiles' row u, then e = d[u] B.
    for v in 0..a {
        line(&format!(
            "        let dv{v} = vec4<f32>(d0_{v}, d1_{v}, d2_{v}, d3_{v});"
        ));
    }
    for b in 0..a {
        let terms: Vec<(f64, String)> = (0..a)
            .map(|v| (mats.bt[b * a + v], format!("dv{v}")))
            .collect();
        line(&format!("        let e{b} = {};", lin(&terms)));
    }
    for r in 0..a {
        line(&format!("        let k{r} = bt({r}u, u);"));
        for b in 0..a {
            line(&format!("        v{r}_{b} += k{r} * e{b};"));
        }
    }
    line("    }");
    element_stores(a, &mut line, &|r, b| format!("v{r}_{b}"));
    line("}");
    Some(s)
}

/// The opening of both transforms in lane order ([`TileGrid::lanes`]): the
/// quad (`q`, channel `ch`), whether it holds tiles (`live`), its image `n`
/// and the first output row `oy` and column `ox` of its tile 0 (tile `i`'s
/// are `oy` and `ox + i`).
fn lanes_opening() -> String {
    String::from(QUAD)
        + "    let qt = p.t0 / 4u + q;
    let live = qt < p.tiles / 4u;
    let qc = min(qt, p.tiles / 4u - 1u);
    let tx = qc % p.tw;
    let ty = (qc / p.tw) % p.th;
    let ph = qc / (p.tw * p.th);
    let quarter = p.dil_w / 4u;
    let vi = ph / quarter;
    let n = vi / p.dil_h;
    let oy = vi % p.dil_h + p.dil_h * ty * M;
    let ox = 4u * (ph % quarter) + p.dil_w * tx * M;
"
}

/// `winograd_input` in lane order ([`TileGrid::lanes`]): the quad's 4 tiles
/// are the 4 components of each vec4, so element `(u, v)` of the 4 input
/// tiles is one aligned vec4 load and `Bᵀ d B` runs on vec4s, unrolled.
/// Without lanes, phase mode loads `4·α²` scalars and locates each tile on
/// its own; this is `α²` vec4 loads and a quarter of the arithmetic code.
fn winograd_input_lanes(spec: &TransformSpec) -> Option<String> {
    let mats = matrices(spec.m)?;
    let a = mats.alpha;
    let mut s = lanes_opening();
    let mut line = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    line("    let hin = i32(p.h);");
    line("    let win = i32(p.w);");
    line("    let plane = (n * p.c + ch) * p.h * p.w;");
    // Column v of the 4 tiles: 4 neighbouring floats from a multiple of 4, so the
    // vec4 is inside the row whole or outside it whole (w a multiple of 4).
    for v in 0..a {
        line(&format!(
            "    let ix{v} = i32(ox + {v}u * p.dil_w) - i32(p.pad_left);"
        ));
        line(&format!("    let cv{v} = ix{v} >= 0 && ix{v} < win;"));
        line(&format!("    let ci{v} = u32(clamp(ix{v}, 0, win - 4));"));
    }
    for u in 0..a {
        line(&format!(
            "    let iy{u} = i32(oy + {u}u * p.dil_h) - i32(p.pad_top);"
        ));
        line(&format!(
            "    let rv{u} = live && iy{u} >= 0 && iy{u} < hin;"
        ));
        line(&format!(
            "    let row{u} = plane + u32(clamp(iy{u}, 0, hin - 1)) * p.w;"
        ));
        for v in 0..a {
            line(&format!(
                "    let d{u}_{v} = select(vec4<f32>(0.0), input[(row{u} + ci{v}) / 4u], rv{u} && cv{v});"
            ));
        }
    }
    // t = Bᵀ d, V = t B, each entry the 4 tiles' vec4.
    input_transform(&mats, &mut line, "", &|u, v| format!("d{u}_{v}"));
    element_stores(a, &mut line, &|r, b| format!("v{r}_{b}"));
    line("}");
    Some(s)
}

/// `winograd_output` in lane order ([`TileGrid::lanes`]): `Aᵀ M A` on vec4s
/// (the quad's 4 tiles in the components), each output of the 4 tiles one
/// aligned vec4 store of 4 neighbouring columns.
fn winograd_output_lanes(spec: &TransformSpec) -> Option<String> {
    let mats = matrices(spec.m)?;
    let (m, a) = (mats.m, mats.alpha);
    let mut s = lanes_opening();
    let mut line = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    output_loads(a, "live", &mut line);
    output_rows(&mats, &mut line, "", &|k, b| format!("m{}", k * a + b));
    line("    let obase = (n * p.c + ch) * p.h * p.w;");
    for c in 0..m {
        line(&format!("    let ox{c} = ox + {c}u * p.dil_w;"));
    }
    for r in 0..m {
        line(&format!("    let oy{r} = oy + {r}u * p.dil_h;"));
        line(&format!("    if oy{r} < p.h {{"));
        for c in 0..m {
            line(&format!(
                "        if ox{c} < p.w {{ output[(obase + oy{r} * p.w + ox{c}) / 4u] = activate4({} + bk); }}",
                output_value(&mats, "", r, c)
            ));
        }
        line("    }");
    }
    line("}");
    Some(s)
}

/// `Bᵀ d B` of the quad's 4 tiles (`d(i, u, v)` names tile `i`'s input at
/// row `u`, column `v`) and the stores of element ξ of the 4 tiles as one
/// vec4 in plane `ξ·c + ch`.
fn input_math(
    mats: &Matrices,
    line: &mut dyn FnMut(&str),
    d: &dyn Fn(usize, usize, usize) -> String,
) {
    let a = mats.alpha;
    for i in 0..4 {
        input_transform(mats, line, &format!("{i}_"), &|u, v| d(i, u, v));
    }
    element_stores(a, line, &|r, b| {
        format!("vec4<f32>(v0_{r}_{b}, v1_{r}_{b}, v2_{r}_{b}, v3_{r}_{b})")
    });
}

/// `V = Bᵀ d B` of one tile (scalars) or of the quad's 4 tiles at once (vec4s,
/// in lane order), unrolled with constant coefficients: `d(u, v)` names the
/// input at row `u`, column `v`; emits `t{tag}{r}_{v}` (`Bᵀ d`) and
/// `v{tag}{r}_{b}` (`V`).
fn input_transform(
    mats: &Matrices,
    line: &mut dyn FnMut(&str),
    tag: &str,
    d: &dyn Fn(usize, usize) -> String,
) {
    let a = mats.alpha;
    for r in 0..a {
        for v in 0..a {
            let terms: Vec<(f64, String)> = (0..a).map(|u| (mats.bt[r * a + u], d(u, v))).collect();
            line(&format!("    let t{tag}{r}_{v} = {};", lin(&terms)));
        }
    }
    for r in 0..a {
        for b in 0..a {
            let terms: Vec<(f64, String)> = (0..a)
                .map(|v| (mats.bt[b * a + v], format!("t{tag}{r}_{v}")))
                .collect();
            line(&format!("    let v{tag}{r}_{b} = {};", lin(&terms)));
        }
    }
}

/// The output transform's loads after its opening: a quad whose first tile
/// (`live`, the opening's name for its liveness) is past the last exits, as
/// tiles are in order and it has nothing to store; then the quad's `α²`
/// elements of `Mt` (`m{ξ}`, a vec4 of its 4 tiles each) and the channel's
/// bias `bk`.
fn output_loads(a: usize, live: &str, line: &mut dyn FnMut(&str)) {
    line(&format!("    if !{live} {{"));
    line("        return;");
    line("    }");
    for xi in 0..a * a {
        line(&format!(
            "    let m{xi} = mt[({xi}u * p.c + ch) * p.quads + q];"
        ));
    }
    line("    let bk = bias[ch];");
}

/// `s = Aᵀ M` (`m × α`) of one tile or of the quad's 4 tiles in lane order:
/// `mt(k, b)` names element `(k, b)` of `M`; emits `s{tag}{r}_{b}`.
fn output_rows(
    mats: &Matrices,
    line: &mut dyn FnMut(&str),
    tag: &str,
    mt: &dyn Fn(usize, usize) -> String,
) {
    let (m, a) = (mats.m, mats.alpha);
    for r in 0..m {
        for b in 0..a {
            let terms: Vec<(f64, String)> =
                (0..a).map(|k| (mats.at[r * a + k], mt(k, b))).collect();
            line(&format!("    let s{tag}{r}_{b} = {};", lin(&terms)));
        }
    }
}

/// Output `(r, c)` of the tile(s) [`output_rows`] named with `tag`, before
/// the bias: `(s A)[r][c]`.
fn output_value(mats: &Matrices, tag: &str, r: usize, c: usize) -> String {
    let a = mats.alpha;
    let terms: Vec<(f64, String)> = (0..a)
        .map(|b| (mats.at[c * a + b], format!("s{tag}{r}_{b}")))
        .collect();
    lin(&terms)
}

/// The stores of the input transform's `α²` elements: element `ξ = r·α + b`
/// of the quad's 4 tiles, `value(r, b)` (a vec4), in plane `ξ·c + ch`.
fn element_stores(a: usize, line: &mut dyn FnMut(&str), value: &dyn Fn(usize, usize) -> String) {
    line("    // Element ξ of the quad's 4 tiles, one vec4 in plane ξ·c + ch.");
    for r in 0..a {
        for b in 0..a {
            let xi = r * a + b;
            line(&format!(
                "    output[({xi}u * p.c + ch) * p.quads + q] = {};",
                value(r, b)
            ));
        }
    }
}

/// The unrolled `main` of `winograd_output` for `spec` (`None` for an `m`
/// not in [`TILES`]). A loop over the rows of `Mt` (as in phase-mode
/// [`winograd_input_main`]) compiled faster in phase mode on lavapipe (first
/// dispatch 0.50 → 0.41 s) and no faster without, but on wgpu's GL backend
/// over llvmpipe its results differed in the last bits between the module
/// that reads `Mt` from a texture and the one that reads a buffer
/// (`texture_inputs_match_storage_inputs_exactly`), where this form gives
/// the same bits.
pub fn winograd_output_main(spec: &TransformSpec) -> Option<String> {
    if spec.quads == Quads::Lanes {
        return winograd_output_lanes(spec);
    }
    let phased = spec.quads == Quads::Phases;
    let mats = matrices(spec.m)?;
    let (m, a) = (mats.m, mats.alpha);
    let mut s = if phased { phased_opening() } else { opening() };
    let mut line = |t: &str| {
        s.push_str(t);
        s.push('\n');
    };
    output_loads(a, if phased { "live0" } else { "live" }, &mut line);
    let comps = ["x", "y", "z", "w"];
    for (i, comp) in comps.iter().enumerate() {
        // s = Aᵀ M (m × α); y = s A (m × m).
        let tag = format!("{i}_");
        output_rows(&mats, &mut line, &tag, &|k, b| {
            format!("m{}.{comp}", k * a + b)
        });
        for r in 0..m {
            for c in 0..m {
                line(&format!(
                    "    let y{i}_{r}_{c} = activate({} + bk);",
                    output_value(&mats, &tag, r, c)
                ));
            }
        }
    }
    if phased {
        // Tile i's outputs: rows oy{i} + d_h·r, columns ox{i} + d_w·c of image n{i}.
        for i in 0..4 {
            line(&format!(
                "    let obase{i} = (n{i} * p.c + ch) * p.h * p.w;"
            ));
            for r in 0..m {
                line(&format!("    let oyr{i}_{r} = oy{i} + {r}u * p.dil_h;"));
                line(&format!("    if live{i} && oyr{i}_{r} < p.h {{"));
                for c in 0..m {
                    line(&format!(
                        "        let oxc{i}_{r}_{c} = ox{i} + {c}u * p.dil_w;"
                    ));
                    line(&format!(
                        "        if oxc{i}_{r}_{c} < p.w {{ output[obase{i} + oyr{i}_{r} * p.w + oxc{i}_{r}_{c}] = y{i}_{r}_{c}; }}"
                    ));
                }
                line("    }");
            }
        }
        line("}");
        return Some(s);
    }
    line("    let oh0 = ty * M;");
    line("    let ow0 = tx * M;");
    line("    let obase = (n * p.c + ch) * p.h * p.w;");
    // The quad's outputs: rows oh0 + r, columns ow0 + col (col = i·m + c of tile i).
    let y = |r: usize, col: usize| format!("y{}_{r}_{}", col / m, col % m);
    for r in 0..m {
        line(&format!("    if oh0 + {r}u < p.h {{"));
        line(&format!(
            "        let o{r} = obase + (oh0 + {r}u) * p.w + ow0;"
        ));
        if spec.vec4.is_some() {
            // ow0 = 4·M·(tx / 4) and w are multiples of 4: each vec4 is in or out whole.
            for j in 0..m {
                let v: Vec<String> = (4 * j..4 * j + 4).map(|col| y(r, col)).collect();
                line(&format!(
                    "        if ow0 + {}u < p.w {{ output[o{r} / 4u + {j}u] = vec4<f32>({}); }}",
                    4 * j,
                    v.join(", ")
                ));
            }
        } else {
            for col in 0..4 * m {
                line(&format!(
                    "        if ow0 + {col}u < p.w {{ output[o{r} + {col}u] = {}; }}",
                    y(r, col)
                ));
            }
        }
        line("    }");
    }
    line("}");
    Some(s)
}

/// Per output element of a Winograd convolution, the magnitude its error
/// bound scales with, and the number of rounding steps on any path.
///
/// Every value the kernels compute is a sum of products along a fixed
/// arithmetic graph; with the transform matrices replaced by their absolute
/// values and the data by theirs, the same graph gives, per output, the
/// magnitude `M` such that the computed result differs from the exact one
/// by at most `γ_L·M` (Higham's componentwise bound for sums of products,
/// applied path by path), where `L` counts the roundings a term meets: `2α`
/// in the input transform (two passes of `α`-term sums; `Bᵀ` is exact in
/// f32), 1 rounding `G g Gᵀ` to f32 (computed in f64), 1 product, `c_in` in
/// the GEMM's sum, `2α` in the output transform (`Aᵀ` exact), and 1 for the
/// bias. The direct form's bound is the same with `M = Σ|x·w| + |b|` and
/// `L = 9·c_in + 1`.
///
/// `input` is `[n, c, h, w]`, `weight` `[k, c, 3, 3]`, the output
/// `[n, k, h_out, w_out]` with `pad = (top, left)` and dilation `dil`. Returns the magnitudes
/// (the output's element order, bias included) and `L`.
#[allow(clippy::too_many_arguments)]
pub fn bound(
    m: u32,
    input: &[f32],
    in_shape: [usize; 4],
    weight: &[f32],
    k_out: usize,
    bias: Option<&[f32]>,
    out_hw: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
) -> Option<(Vec<f64>, u64)> {
    let mats = matrices(m)?.abs();
    let (mm, a) = (mats.m, mats.alpha);
    let [n, c, h, w] = in_shape;
    let (ho, wo) = out_hw;
    // |G||g||Gᵀ| per (k, c).
    let u: Vec<Vec<f64>> = (0..k_out * c)
        .map(|kc| {
            let g: Vec<f64> = weight[kc * 9..kc * 9 + 9]
                .iter()
                .map(|v| f64::from(v.abs()))
                .collect();
            mats.kernel(&g)
        })
        .collect();
    let mut out = vec![0f64; n * k_out * ho * wo];
    let mut d = vec![0f64; a * a];
    // Phase (pr, pc) of the dilation: outputs pr + dil.0·y', pc + dil.1·x'.
    let phases = (0..dil.0).flat_map(|pr| (0..dil.1).map(move |pc| (pr, pc)));
    for (img, (pr, pc)) in (0..n).flat_map(|img| phases.clone().map(move |ph| (img, ph))) {
        for ty in 0..ho.div_ceil(dil.0).div_ceil(mm) {
            for tx in 0..wo.div_ceil(dil.1).div_ceil(mm) {
                // |Bᵀ||d||B| per input channel.
                let v: Vec<Vec<f64>> = (0..c)
                    .map(|ch| {
                        for r in 0..a {
                            for s in 0..a {
                                let iy = (pr + dil.0 * (ty * mm + r)) as isize - pad.0 as isize;
                                let ix = (pc + dil.1 * (tx * mm + s)) as isize - pad.1 as isize;
                                d[r * a + s] =
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        f64::from(
                                            input[((img * c + ch) * h + iy as usize) * w
                                                + ix as usize]
                                                .abs(),
                                        )
                                    } else {
                                        0.0
                                    };
                            }
                        }
                        mats.input(&d)
                    })
                    .collect();
                for k in 0..k_out {
                    let mut acc = vec![0f64; a * a];
                    for (ch, vc) in v.iter().enumerate() {
                        for (x, (uu, vv)) in acc.iter_mut().zip(u[k * c + ch].iter().zip(vc)) {
                            *x += uu * vv;
                        }
                    }
                    let y = mats.output(&acc);
                    let b = bias.map_or(0.0, |b| f64::from(b[k].abs()));
                    for r in 0..mm {
                        for s in 0..mm {
                            let (oy, ox) = (pr + dil.0 * (ty * mm + r), pc + dil.1 * (tx * mm + s));
                            if oy < ho && ox < wo {
                                out[((img * k_out + k) * ho + oy) * wo + ox] = y[r * mm + s] + b;
                            }
                        }
                    }
                }
            }
        }
    }
    let l = (4 * a + c + 2) as u64;
    Some((out, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 3×3 correlation of one `α×α` tile: the `m×m` valid outputs.
    fn direct(d: &[f64], g: &[f64], a: usize, m: usize) -> Vec<f64> {
        let mut y = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                for u in 0..3 {
                    for v in 0..3 {
                        y[i * m + j] += g[u * 3 + v] * d[(i + u) * a + j + v];
                    }
                }
            }
        }
        y
    }

    #[test]
    fn transforms_compute_the_correlation() {
        for m in TILES {
            let mats = matrices(m).unwrap();
            let a = mats.alpha;
            let d: Vec<f64> = (0..a * a).map(|i| ((i * 37 % 11) as f64) - 5.0).collect();
            let g: Vec<f64> = (0..9).map(|i| ((i * 5 % 7) as f64) * 0.5 - 1.5).collect();
            let u = mats.kernel(&g);
            let v = mats.input(&d);
            let prod: Vec<f64> = u.iter().zip(&v).map(|(x, y)| x * y).collect();
            let y = mats.output(&prod);
            let want = direct(&d, &g, a, mats.m);
            for (got, want) in y.iter().zip(&want) {
                assert!((got - want).abs() < 1e-9, "F({m}): {got} vs {want}");
            }
        }
        assert!(matrices(3).is_none());
    }

    #[test]
    fn generated_transforms_use_every_matrix_entry() {
        for m in TILES {
            for (vec4, quads) in [
                (None, Quads::Dense),
                (Some(3), Quads::Dense),
                (None, Quads::Phases),
                (Some(0), Quads::Lanes),
            ] {
                let spec = TransformSpec { m, vec4, quads };
                let a = (m + 2) as usize;
                let input = winograd_input_main(&spec).unwrap();
                // One store per transformed element; in phase mode a loop over the
                // input rows takes the column pass's coefficients from `bt`.
                assert_eq!(input.matches("output[(").count(), a * a, "{input}");
                assert_eq!(input.contains("bt(0u, u)"), quads == Quads::Phases);
                // One load per element of M.
                let output = winograd_output_main(&spec).unwrap();
                assert_eq!(output.matches("let m").count(), a * a);
                // Bᵀ's −5 (m = 4) and ½ never appear: G is applied on the host.
                assert_eq!(input.contains("5.0 *"), m == 4);
                assert!(!input.contains("0.5"));
            }
        }
    }

    #[test]
    fn gemm_rows_pad_little() {
        assert_eq!(gemm_row(16), 16);
        assert_eq!(gemm_row(224), 56);
        assert_eq!(gemm_row(144), 48);
        assert_eq!(gemm_row(448), 64);
        for t in (4..2000).step_by(4) {
            let row = gemm_row(t);
            assert!(row.is_multiple_of(4) && row <= 64, "{t}: {row}");
            assert!(t.div_ceil(row) * row - t < row, "{t}: {row}");
        }
    }

    #[test]
    fn lin_skips_zeros_and_units() {
        let t = |c: f64, n: &str| (c, n.to_string());
        assert_eq!(lin(&[t(0.0, "a"), t(1.0, "b"), t(-1.0, "c")]), "b - c");
        assert_eq!(lin(&[t(-4.0, "a"), t(2.0, "b")]), "-4.0 * a + 2.0 * b");
        assert_eq!(lin(&[t(0.0, "a")]), "0.0");
    }
}
