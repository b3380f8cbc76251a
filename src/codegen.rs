//! Unrolled kernel bodies: a small, typed generator for the hot loops.
//!
//! The register-blocked kernels keep `PIX × COB4` vec4 accumulators and a
//! row segment of inputs per invocation. Written as loops over private
//! arrays (the readable form in `shaders/*.wgsl`), CPU drivers such as Mesa's
//! llvmpipe keep those arrays in memory and index them per lane; measured
//! there, the same computation with every loop over a specialisation
//! constant unrolled into named scalars runs about 2–2.5× more work per CPU
//! second (the hoisted index math and the masked final store help too). On a
//! discrete GPU the unrolled form is what its compiler would produce from
//! the loops anyway, so it costs nothing there.
//!
//! The generator only replaces the `main` function between the markers
//! `// generated:begin` and `// generated:end` of an already specialised
//! module; the bindings, `Params` and `activate` stay the file's own, so the
//! generated module computes exactly what the file's loop form computes.
//! Every generated specialisation is validated by naga and translated to
//! every backend in `tests/shader_portability.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The specialisation of `conv2d_tiled` that the generator unrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TiledSpec {
    /// Output pixels per invocation (along a row).
    pub pix: u32,
    /// Output channels per invocation, in vec4s.
    pub cob4: u32,
    /// Kernel width.
    pub k_w: u32,
    /// Stride along W.
    pub s_w: u32,
    /// Dilation along W.
    pub d_w: u32,
    /// Column spacing of an invocation's pixels: `ow = ow0 + px·Q`. With
    /// dilation, `Q = D_W / gcd(S_W, D_W)` makes neighbouring pixels share
    /// taps, so a dilated row needs no more loads than a dense one (the
    /// space-to-batch equivalence, done in the index math).
    pub q: u32,
    /// The kernel is one row high: no loop over kernel rows.
    pub kh1: bool,
    /// The layer runs as reduction segments: the code that reloads partial
    /// sums and stores them raw is compiled in (`SEGS`).
    pub segs: bool,
    /// `Some(a)`: the input is bound as `array<vec4<f32>>` and the columns
    /// are read as aligned vec4s, `a = (−pad_left) mod 4` being where the
    /// first column sits in its vec4 (`VIN`, `VA`; the host's conditions are
    /// in `plan::tiled_vec4_input`).
    pub vin: Option<u32>,
    /// The input is bound as `array<vec4<f32>>` and each row's `PIX`
    /// columns are read as the `PIX/4 + 1` aligned vec4s that hold them,
    /// wherever the first sits in its vec4 (`VIN = 2`, see
    /// `shifted_row_loads`; the host's conditions are in
    /// `plan::tiled_shifted_input`). Only for `K_W = S_W = Q = 1` and no
    /// column padding, where every column a stored output needs lies in
    /// its row.
    pub shifted: bool,
    /// The output is bound as `array<vec4<f32>>` and each channel's 4
    /// neighbouring pixels are stored (and reloaded) as one aligned vec4
    /// (`VOUT`; the host's conditions are in `plan::tiled_vec4_output`).
    pub vout: bool,
    /// `Some(s)`: the device runs subgroups of exactly `s` invocations, and
    /// the weights are read through them (`SG`; see `subgroup_weights` and
    /// `plan::subgroup_weights`).
    pub sg: Option<u32>,
    /// Input channels per iteration of the reduction loop (`CU`, at least
    /// 1): each accumulator takes their `CU·K_W` taps of a kernel row in one
    /// expression (see `plan::channels_per_step`).
    pub cu: u32,
    /// A residual (binding 5, the output's shape and window) is added to
    /// each output after the bias, before the activation (`RES`).
    pub res: bool,
    /// `k`: the kernel's `k` rows are unrolled in the reduction loop
    /// instead of looping over the rows inside the image (`KHU`; the host
    /// sets it to the kernel height, see `plan::unrolled_rows`); rows
    /// outside the image read zeros. 0: the loop.
    pub khu: u32,
}

impl TiledSpec {
    /// Column offsets (relative to `ow0·S_W − pad_left`) of every input the
    /// invocation reads, each once, in increasing order.
    pub fn offsets(&self) -> Vec<u32> {
        let mut offs: Vec<u32> = (0..self.pix)
            .flat_map(|px| (0..self.k_w).map(move |kw| self.offset(px, kw)))
            .collect();
        offs.sort_unstable();
        offs.dedup();
        offs
    }

    /// Whether every invocation's first column sits at the same place in a
    /// vec4 (`ow0 = blk·PIX`, so `PIX·S_W` a multiple of 4), as `vin` needs.
    pub fn vin_fits(&self) -> bool {
        self.q == 1 && (self.pix * self.s_w).is_multiple_of(4)
    }

    /// Whether `shifted` reads fit this tile: one column per pixel, next to
    /// each other (`K_W = S_W = Q = 1`), in whole vec4s (`PIX` a multiple
    /// of 4).
    pub fn shifted_fits(&self) -> bool {
        (self.k_w, self.s_w, self.q) == (1, 1, 1) && self.pix.is_multiple_of(4)
    }

    /// Whether an invocation's pixels are whole aligned vec4s of a row
    /// (`Q = 1`, `PIX` a multiple of 4), as `vout` needs.
    pub fn vout_fits(&self) -> bool {
        self.q == 1 && self.pix.is_multiple_of(4)
    }

    fn offset(&self, px: u32, kw: u32) -> u32 {
        px * self.q * self.s_w + kw * self.d_w
    }
}

/// How a generated `main` assigns items to invocations (see [`prologue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    /// Item `lid` of the workgroup; items past `x_end` exit at once.
    Plain,
    /// The same items, but every lane of a subgroup reaches the subgroup
    /// operations: a subgroup exits only when all its lanes are past the
    /// end; in the others, lanes past the end (`live` false) compute the last
    /// item and store nothing. This holds whatever the driver's mapping of
    /// invocations to subgroups.
    Subgroup,
    /// As `Subgroup`, with the lanes of subgroup `k` taking items `k·SG ..
    /// k·SG + SG − 1` of the workgroup: with rows of tiles a multiple of
    /// `SG`, a subgroup's lanes then share one output row.
    SubgroupRows,
}

/// The opening of every generated `main`, under the chunk contract of
/// `src/chunk.rs`: the logical workgroup of this chunk (`logical_wid`), and
/// the item from `x0`, assigned as `lanes` says. (With `Plain`, items past
/// `x_end` used to compute a clamped item and skip only the store, to keep
/// the hot loop free of a divergent exit; but when a layer has fewer items
/// than a workgroup — 7×7 pointwise layers have 7 — that ran up to 64
/// copies of the work: exiting measured 6–7× faster on such layers on
/// lavapipe, and no slower on the suite layers. The clamp stays, as a bound
/// the host proof relies on.)
fn prologue(lanes: Lanes) -> String {
    let (builtins, lane) = match lanes {
        Lanes::Plain => ("@builtin(local_invocation_index) lid: u32", "lid"),
        Lanes::Subgroup => (
            "@builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32",
            "lid",
        ),
        Lanes::SubgroupRows => (
            "@builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sl: u32",
            "sgid * SG + sl",
        ),
    };
    let exit = if lanes == Lanes::Plain {
        "    if flat >= p.x_end {\n        return;\n    }\n"
    } else {
        "    if subgroupAll(flat >= p.x_end) {\n        return;\n    }\n    let live = flat < p.x_end;\n"
    };
    format!(
        "@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, {builtins}) {{
    let lw = logical_wid(wid);
    if lw.z >= p.grid_z {{
        return;
    }}
    let flat = p.x0 + lw.x * WG + {lane};
{exit}    let item = min(flat, p.x_end - 1u);
    let n = p.z0 + lw.z;
"
    )
}

/// Loads of the `count` consecutive weights `{base} + i` (`i < count`) that
/// every invocation of a subgroup of `sg` lanes needs, as `{name}{i}`.
/// Where a weight index is the same for the whole workgroup, Mesa 22's
/// llvmpipe still gathers it lane by lane: it takes the scalar path only for
/// offsets built from constants and push constants, not for ones computed
/// from the workgroup id or a loop counter. So here lane `l` loads weight
/// `s·j + l` (one gather brings `sg` different weights), and
/// `subgroupBroadcast` hands each to every lane (on llvmpipe an element
/// extract and a broadcast). Measured on lavapipe in `conv2d_tiled`, against
/// the plain loads (medians of 4 alternated processes of `wgconv bench`,
/// `WGCONV_SUBGROUPS=0` / `1`): stem7 28.2 → 18.8 ms, r3x3s2 42.5 → 30.6,
/// pw 13.6 → 10.1, tconv4 47.0 → 33.8, aspp12 131.6 → 108.7, b8 88.9 →
/// 77.1, r3x3 16.8 → 14.5, grp32 8.4 → 7.2, ctx8 20.3 → 18.6. In
/// `conv2d_depthwise` (9 weights per channel) it made no difference beyond
/// noise over 8 alternations, so that kernel keeps its plain loads. Fewer
/// gathers also compile faster: first result with an empty shader cache
/// (two alternations) pw 0.57/0.56 → 0.42/0.52 s, stem7 1.25/1.06 →
/// 0.87/0.84 s, r3x3s2 1.69/1.80 → 1.50/1.21 s, tconv4 unchanged.
/// Every lane of the subgroup must be active (see [`Lanes::Subgroup`]).
pub(crate) fn subgroup_weights(
    name: &str,
    base: &str,
    count: u32,
    sg: u32,
    indent: &str,
) -> String {
    let mut s = String::new();
    for j in 0..count.div_ceil(sg) {
        let last = (count - sg * j).min(sg) - 1;
        let _ = writeln!(
            s,
            "{indent}let {name}l{j} = weight[{base} + {}u + min(sl, {last}u)];",
            sg * j
        );
    }
    for i in 0..count {
        let _ = writeln!(
            s,
            "{indent}let {name}{i} = subgroupBroadcast({name}l{}, {}u);",
            i / sg,
            i % sg
        );
    }
    s
}

/// `main` of `phase_scatter` with `V = 4` (its phase bound as
/// `array<vec4<f32>>`): vec4 `q` holds elements `4q .. 4q + 3` of one phase
/// row (the host chooses `V = 4` only for rows of a multiple of 4
/// elements), stored `S_W` apart in the output; `p.total` counts vec4s.
pub(crate) const PHASE_SCATTER_VEC4_MAIN: &str = "@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.y * p.row_stride + gid.x;
    if q >= p.total {
        return;
    }
    let e = 4u * q;
    let j = e % p.w_ph;
    let r = e / p.w_ph;
    let i = r % p.h_ph;
    let plane = r / p.h_ph;
    let o = (plane * p.h_out + p.s_h * i + p.a) * p.w_out + p.s_w * j + p.b;
    let v = phase[q];
    output[o] = v.x;
    output[o + p.s_w] = v.y;
    output[o + 2u * p.s_w] = v.z;
    output[o + 3u * p.s_w] = v.w;
}
";

/// Reads the `u32` constants of a specialised module (`const NAME: u32 = Vu;`).
pub(crate) fn read_consts(src: &str) -> BTreeMap<String, u32> {
    src.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("const ")?;
            let (name, value) = rest.split_once(": u32 = ")?;
            let value = value.trim_end_matches(';').trim_end_matches('u');
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The aligned vec4s (in vec4s from `b0 = iw0 − a`, a multiple of 4) that
/// hold the input columns `offs` (relative to `iw0`).
pub fn vec4_slots(offs: &[u32], a: u32) -> Vec<u32> {
    let mut v: Vec<u32> = offs.iter().map(|&o| (a + o) / 4).collect();
    v.dedup();
    v
}

/// Declarations, once per invocation, for the input columns `offs`
/// (relative to `iw0`), clamped into the row, with their validity: per
/// column (`c{t}`, `cv{t}`, `ci{t}`), or with `vin = Some(a)` per aligned
/// vec4 (`vb{k}`, `vv{k}`, `vc{k}`). Vec4 `k` holds columns `b0 + 4k ..
/// b0 + 4k + 3` with `b0 = iw0 − a` a multiple of 4 (the host guarantees
/// it), so in a row of a multiple of 4 floats they are inside or outside the
/// row together.
pub(crate) fn column_setup(offs: &[u32], vin: Option<u32>, indent: &str) -> String {
    let mut s = String::new();
    match vin {
        Some(a) => {
            let _ = writeln!(s, "{indent}let b0 = iw0 - {a};");
            for k in vec4_slots(offs, a) {
                let _ = writeln!(
                    s,
                    "{indent}let vb{k} = b0 + {}; let vv{k} = vb{k} >= 0 && vb{k} < win; let vc{k} = u32(clamp(vb{k}, 0, win - 4));",
                    4 * k
                );
            }
        }
        None => {
            for (t, o) in offs.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "{indent}let c{t} = iw0 + {o}; let cv{t} = c{t} >= 0 && c{t} < win; let ci{t} = u32(clamp(c{t}, 0, win - 1));"
                );
            }
        }
    }
    s
}

/// The loads of one input row (`row`, the row's first element in the
/// binding, a multiple of 4 with `vin`) into `x{t}` for the columns `offs`;
/// `guard` (e.g. `"rv && "`) is ANDed into every validity test.
pub(crate) fn row_loads(offs: &[u32], vin: Option<u32>, guard: &str, indent: &str) -> String {
    row_loads_named(offs, vin, guard, "row", "", indent)
}

/// [`row_loads`] from the row `row`, into `{tag}x{t}` (through vec4s
/// `{tag}v{k}`), for code that holds several rows' values at once.
pub(crate) fn row_loads_named(
    offs: &[u32],
    vin: Option<u32>,
    guard: &str,
    row: &str,
    tag: &str,
    indent: &str,
) -> String {
    let mut s = String::new();
    match vin {
        Some(a) => {
            for k in vec4_slots(offs, a) {
                let _ = writeln!(
                    s,
                    "{indent}let {tag}v{k} = select(vec4<f32>(0.0), input[({row} + vc{k}) / 4u], {guard}vv{k});"
                );
            }
            for (t, o) in offs.iter().enumerate() {
                let comp = ["x", "y", "z", "w"][((a + o) % 4) as usize];
                let _ = writeln!(s, "{indent}let {tag}x{t} = {tag}v{}.{comp};", (a + o) / 4);
            }
        }
        None => {
            for t in 0..offs.len() {
                let _ = writeln!(
                    s,
                    "{indent}let {tag}x{t} = select(0.0, input[{row} + ci{t}], {guard}cv{t});"
                );
            }
        }
    }
    s
}

/// Declarations, once per invocation, for [`shifted_row_loads`]: the
/// first column, clamped into the row (`cs`), and the row's last (`cl`).
fn shifted_setup(indent: &str) -> String {
    format!("{indent}let cs = u32(clamp(iw0, 0, win - 1)); let cl = u32(win - 1);\n")
}

/// The loads of columns `cs .. cs + pix` of the row `row` (its first
/// element in the binding) into `{tag}x{t}`, through the `pix/4 + 1` vec4s
/// that hold them, in a binding of whole vec4s starting at a multiple of 4
/// floats (`VIN = 2`). Rows need not be a multiple of 4 floats: the first
/// column sits at `s = (row + cs) mod 4` of its vec4, and two rounds of
/// selects shift the loaded values down by `s` (by 1 if `s` is odd, then by
/// 2 if `s ≥ 2`). The vec4 indices are clamped to the one holding the row's
/// last column, so every load stays in the row's vec4s; columns past the row
/// then read other values, which only pixels past `w_out` (never stored)
/// use. `guard` (e.g. `"rv && "`) zeroes the row when false, as in
/// [`row_loads_named`].
fn shifted_row_loads(pix: u32, guard: &str, row: &str, tag: &str, indent: &str) -> String {
    let mut s = String::new();
    let comps = ["x", "y", "z", "w"];
    let _ = writeln!(
        s,
        "{indent}let {tag}e = {row} + cs; let {tag}q = {tag}e / 4u; let {tag}m = ({row} + cl) / 4u;"
    );
    let cond = guard.trim_end_matches(" && ");
    for k in 0..=pix / 4 {
        let index = if k == 0 {
            format!("{tag}q")
        } else {
            format!("min({tag}q + {k}u, {tag}m)")
        };
        let load = format!("input[{index}]");
        let load = if cond.is_empty() {
            load
        } else {
            format!("select(vec4<f32>(0.0), {load}, {cond})")
        };
        let _ = writeln!(s, "{indent}let {tag}v{k} = {load};");
    }
    let e = |j: u32| format!("{tag}v{}.{}", j / 4, comps[(j % 4) as usize]);
    let _ = writeln!(
        s,
        "{indent}let {tag}o = ({tag}e & 1u) != 0u; let {tag}t = ({tag}e & 2u) != 0u;"
    );
    for j in 0..pix + 2 {
        let _ = writeln!(
            s,
            "{indent}let {tag}y{j} = select({}, {}, {tag}o);",
            e(j),
            e(j + 1)
        );
    }
    for t in 0..pix {
        let _ = writeln!(
            s,
            "{indent}let {tag}x{t} = select({tag}y{t}, {tag}y{}, {tag}t);",
            t + 2
        );
    }
    s
}

/// The unrolled `main` of `conv2d_tiled` for `spec`. Same bindings, grid
/// and results as the loop form in `shaders/conv2d_tiled.wgsl`.
pub fn conv2d_tiled_main(spec: &TiledSpec) -> String {
    let TiledSpec {
        pix,
        cob4,
        k_w,
        q,
        cu,
        ..
    } = *spec;
    let offs = spec.offsets();
    let slot = |px: u32, kw: u32| {
        let o = spec.offset(px, kw);
        offs.iter().position(|&v| v == o).unwrap_or(0)
    };
    let mut s = String::new();
    s.push_str(&prologue(if spec.sg.is_some() {
        Lanes::Subgroup
    } else {
        Lanes::Plain
    }));
    // With subgroups, lanes past the end compute but do not store.
    let live = if spec.sg.is_some() { "live && " } else { "" };
    let mut line = |text: &str| {
        s.push_str(text);
        s.push('\n');
    };
    line("    let oh = item / p.blocks_w;");
    line("    let blk = item % p.blocks_w;");
    line("    let ow0 = blk % Q + (blk / Q) * (PIX * Q);");
    line("    let cb = p.y0 + lw.y;");
    line("    let g = cb / p.blocks_per_group;");
    line("    let co_in_group0 = (cb % p.blocks_per_group) * (COB4 * 4u);");
    line("    let cpg = p.c_in_per_group;");
    line("    let plane = p.in_cstride;");
    line("    let ih0 = i32(oh * p.stride_h) - i32(p.pad_top);");
    line("    let iw0 = i32(ow0 * S_W) - i32(p.pad_left);");
    line("    let hin = i32(p.h_in);");
    line("    let win = i32(p.w_in);");
    line("    // The input columns this invocation reads, clamped into the row, with their validity.");
    if spec.shifted {
        line(shifted_setup("    ").trim_end());
    } else {
        line(column_setup(&offs, spec.vin, "    ").trim_end());
    }
    for px in 0..pix {
        for c in 0..cob4 {
            line(&format!("    var a{px}_{c} = vec4<f32>(0.0);"));
        }
    }
    line("    let oplane = p.out_cstride;");
    let comps = ["x", "y", "z", "w"];
    // In channel plane 0: with vout, the first output of this invocation's
    // pixels (`ob`); without, each pixel's output (`o{px}`).
    if spec.vout {
        line("    let ob = (n * p.c_out + g * p.c_out_per_group) * oplane + oh * p.w_out + ow0 - p.out_base;");
    } else {
        for px in 0..pix {
            line(&format!(
                "    let o{px} = (n * p.c_out + g * p.c_out_per_group) * oplane + oh * p.w_out + ow0 + {}u - p.out_base;",
                px * q
            ));
        }
    }
    // A later reduction segment starts from the partial sums the previous one stored,
    if spec.segs {
        // loaded one channel vec4 (`c`) at a time into the last accumulator of
        // each pixel, the others shifted down, so that after COB4 steps
        // `a{px}_{c}` holds block `c` (see `rotate_down`).
        line("    if (p.flags & ACC_IN) != 0u {");
        line("        for (var c = 0u; c < COB4; c++) {");
        line(&rotate_down(
            (0..pix).map(|px| format!("a{px}")),
            cob4,
            "            ",
        ));
        for (j, comp) in comps.iter().enumerate() {
            line(&format!(
                "            let co{j} = co_in_group0 + c * 4u + {j}u;"
            ));
            line(&format!("            if co{j} < p.c_out_per_group {{"));
            if spec.vout {
                for k in 0..pix / 4 {
                    line(&format!("                if ow0 + {}u < p.w_out {{", 4 * k));
                    line(&format!(
                        "                    let v = output[(ob + co{j} * oplane) / 4u + {k}u];"
                    ));
                    for (i, vc) in comps.iter().enumerate() {
                        line(&format!(
                            "                    a{}_{}.{comp} = v.{vc};",
                            4 * k + i as u32,
                            cob4 - 1
                        ));
                    }
                    line("                }");
                }
            } else {
                for px in 0..pix {
                    line(&format!(
                        "                if ow0 + {}u < p.w_out {{ a{px}_{}.{comp} = output[o{px} + co{j} * oplane]; }}",
                        px * q,
                        cob4 - 1
                    ));
                }
            }
            line("            }");
        }
        line("        }");
        line("    }");
    }
    line("    var x_plane = (n * p.c_in + g * cpg + p.ci0) * plane;");
    line("    let taps = p.k_h * K_W;");
    line("    var w_at = (cb * cpg + p.ci0) * taps * COB4 - p.w_base;");
    // Kernel rows whose input row lies inside the image: kh in [kh_lo, kh_end). Lanes
    // that share an output row share the range, so padding rows cost no work.
    let lo = "(u32(max(-ih0, 0)) + p.dil_h - 1u) / p.dil_h";
    let end = "select(0u, min(p.k_h, u32(hin - 1 - ih0) / p.dil_h + 1u), ih0 < hin)";
    // Unrolled rows (`KHU`) need no range: every row is read, zeros outside the image.
    let unrolled = spec.khu > 0 && !spec.kh1;
    match (unrolled, spec.sg) {
        (true, _) => {}
        (false, Some(_)) => {
            // The broadcasts need the whole subgroup in the loop: it runs over the union
            // of the lanes' ranges, and a lane's rows outside the image read zeros.
            line(&format!("    let kh_lo = subgroupMin({lo});"));
            line(&format!("    let kh_end = subgroupMax({end});"));
        }
        (false, None) => {
            line(&format!("    let kh_lo = {lo};"));
            line(&format!("    let kh_end = {end};"));
        }
    }
    // CU input channels per iteration (the host makes every reduction segment a
    // multiple of CU), their taps summed into each accumulator in one expression.
    line("    for (var ci = p.ci0; ci < p.ci1; ci += CU) {");
    for rep in 0..if unrolled { spec.khu } else { 1 } {
        if unrolled {
            line("        {");
            line(&format!("            let kh = {rep}u;"));
        } else if spec.kh1 {
            line("        if kh_lo < kh_end {");
            line("            let kh = 0u;");
        } else {
            line("        for (var kh = kh_lo; kh < kh_end; kh++) {");
        }
        let (guard, ih) = if spec.sg.is_some() || unrolled {
            line("            let ih = ih0 + i32(kh * p.dil_h);");
            line("            let rv = ih >= 0 && ih < hin;");
            ("rv && ", "clamp(ih, 0, hin - 1)")
        } else {
            ("", "ih0 + i32(kh * p.dil_h)")
        };
        line(&format!(
            "            let row = x_plane + u32({ih}) * p.w_in - p.in_base;"
        ));
        line("            let wb = w_at + kh * (K_W * COB4);");
        // Weights of channel u, tap kw, block c: wb + u·taps·COB4 + kw·COB4 + c. With one
        // kernel row (taps = K_W) the CU channels' weights are contiguous.
        let nw = k_w * cob4;
        let w_name = |u: u32, kw: u32, c: u32| {
            if spec.kh1 {
                format!("ws{}", u * nw + kw * cob4 + c)
            } else {
                format!("ws{u}_{}", kw * cob4 + c)
            }
        };
        for u in 0..cu {
            let row = if u == 0 {
                "row".to_string()
            } else {
                line(&format!("            let row{u} = row + {u}u * plane;"));
                format!("row{u}")
            };
            let tag = format!("c{u}");
            line(
                if spec.shifted {
                    shifted_row_loads(pix, guard, &row, &tag, "            ")
                } else {
                    row_loads_named(&offs, spec.vin, guard, &row, &tag, "            ")
                }
                .trim_end(),
            );
        }
        match spec.sg {
            Some(sg) if spec.kh1 => {
                line(subgroup_weights("ws", "wb", cu * nw, sg, "            ").trim_end());
            }
            Some(sg) => {
                for u in 0..cu {
                    let base = format!("wb + {}u * taps * COB4", u);
                    line(
                        subgroup_weights(&format!("ws{u}_"), &base, nw, sg, "            ")
                            .trim_end(),
                    );
                }
            }
            None => {
                for u in 0..cu {
                    for i in 0..nw {
                        let name = w_name(u, i / cob4, i % cob4);
                        line(&format!(
                            "            let {name} = weight[wb + {u}u * taps * COB4 + {i}u];"
                        ));
                    }
                }
            }
        }
        for c in 0..cob4 {
            for px in 0..pix {
                let mut e = format!("a{px}_{c}");
                for u in 0..cu {
                    for kw in 0..k_w {
                        e = format!(
                            "fma(vec4<f32>(c{u}x{}), {}, {e})",
                            slot(px, kw),
                            w_name(u, kw, c)
                        );
                    }
                }
                line(&format!("            a{px}_{c} = {e};"));
            }
        }
        line("        }");
    }
    line("        x_plane += CU * plane;");
    line("        w_at += CU * taps * COB4;");
    line("    }");
    if spec.segs {
        line("    let fin = (p.flags & FINAL) != 0u;");
    }
    // The stores run as a loop over the COB4 channel vec4s, storing block 0
    // and shifting the others down (`rotate_down`): one copy of the store
    // code instead of COB4. Unrolled, a tile's stores (up to 64, each a
    // per-lane loop on lavapipe) and bias loads were most of its LLVM compile
    // time: measured cold (empty shader cache), pw's first result 1.49 s
    // unrolled against 0.60 s with this loop; the shifts cost a few
    // register moves per invocation.
    line("    for (var c = 0u; c < COB4; c++) {");
    for (j, comp) in comps.iter().enumerate() {
        line(&format!(
            "        let co{j} = co_in_group0 + c * 4u + {j}u;"
        ));
        line(&format!("        if co{j} < p.c_out_per_group {{"));
        line(&format!(
            "            let b = bias[min(g * p.c_out_per_group + co{j}, p.c_out - 1u)];"
        ));
        // `r`: the residual at the output's index (`RES`), added after the bias.
        let value = |a: &str, r: &str| {
            let act = if spec.res {
                format!("activate({a} + b + {r})")
            } else {
                format!("activate({a} + b)")
            };
            if spec.segs {
                format!("select({a}, {act}, fin)")
            } else {
                act
            }
        };
        if spec.vout {
            for k in 0..pix / 4 {
                let v: Vec<String> = (0..4)
                    .map(|i| {
                        value(
                            &format!("a{}_0.{comp}", 4 * k + i),
                            &format!("r.{}", comps[i as usize]),
                        )
                    })
                    .collect();
                let at = format!("(ob + co{j} * oplane) / 4u + {k}u");
                let r = if spec.res {
                    format!("let r = residual[{at}]; ")
                } else {
                    String::new()
                };
                line(&format!(
                    "            if {live}ow0 + {}u < p.w_out {{ {r}output[{at}] = vec4<f32>({}); }}",
                    4 * k,
                    v.join(", ")
                ));
            }
        } else {
            for px in 0..pix {
                let at = format!("o{px} + co{j} * oplane");
                line(&format!(
                    "            if {live}ow0 + {}u < p.w_out {{ output[{at}] = {}; }}",
                    px * q,
                    value(&format!("a{px}_0.{comp}"), &format!("residual[{at}]"))
                ));
            }
        }
        line("        }");
    }
    line(&rotate_down(
        (0..pix).map(|px| format!("a{px}")),
        cob4,
        "        ",
    ));
    line("    }");
    line("}");
    s
}

/// Shifts each accumulator row's channel vec4s down by one
/// (`{row}_{c−1} = {row}_{c}` for every `row` in `rows`, e.g. `a{px}`); the
/// last keeps its value. A loop over `c` that stores (or loads) only
/// `{row}_0` (or the last) thereby visits every block in turn.
fn rotate_down(rows: impl IntoIterator<Item = String>, cob4: u32, indent: &str) -> String {
    let mut s = String::new();
    for row in rows {
        for c in 1..cob4 {
            let _ = writeln!(s, "{indent}{row}_{} = {row}_{c};", c - 1);
        }
    }
    s.trim_end().to_string()
}

/// The specialisation of `conv2d_depthwise` that the generator unrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseSpec {
    /// Output columns per invocation (the rows, `PH`, are a loop bound the
    /// generated code reads from its specialisation constant).
    pub pix: u32,
    /// Kernel height.
    pub k_h: u32,
    /// Kernel width.
    pub k_w: u32,
    /// Stride (h, w).
    pub stride: (u32, u32),
    /// Dilation (h, w).
    pub dilation: (u32, u32),
    /// `Some(a)`: the input is bound as `array<vec4<f32>>` and the tile's
    /// columns are read as aligned vec4s, `a = (−pad_left) mod 4` being where
    /// the first column sits in its vec4 (`VIN`, `VA`; the host's conditions
    /// are in `plan::depthwise_vec4_input`).
    pub vin: Option<u32>,
    /// The output is bound as `array<vec4<f32>>` and each tile row's `PIX`
    /// columns are stored as aligned vec4s (`VOUT`; the host's conditions
    /// are in `plan::depthwise_vec4_output`).
    pub vout: bool,
}

impl DepthwiseSpec {
    /// The taps whose input rows each output row loads afresh, `j`: tap
    /// `kh` of output row `y` reads input row `y·S_H + kh·D_H`, the row tap
    /// `kh + j` read for row `y − 1` when `S_H = j·D_H`. So taps
    /// `K_H − j ..` are loaded and taps `.. K_H − j` carried over; `j = K_H`
    /// (nothing carried) where no such `j < K_H` exists.
    pub fn row_step(&self) -> u32 {
        let (s, d) = (self.stride.0, self.dilation.0);
        if s.is_multiple_of(d) && s / d < self.k_h {
            s / d
        } else {
            self.k_h
        }
    }

    /// Distinct input columns (relative to `ow0·S_W − pad_left`) the tile reads.
    pub fn cols(&self) -> Vec<u32> {
        distinct(self.pix, self.k_w, self.stride.1, self.dilation.1)
    }
}

/// `{i·s + k·d}` for `i < n`, `k < taps`, sorted and without repeats.
fn distinct(n: u32, taps: u32, s: u32, d: u32) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n)
        .flat_map(|i| (0..taps).map(move |k| i * s + k * d))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn index_of(v: &[u32], x: u32) -> usize {
    v.iter().position(|&e| e == x).unwrap_or(0)
}

/// The generated `main` of `conv2d_depthwise` for `spec`: one loop over the
/// tile's `PH` output rows, everything inside it unrolled. Each step loads
/// the input rows of taps `K_H − j ..` ([`DepthwiseSpec::row_step`]) and
/// takes the others' from the step before, so every input row is still
/// loaded once where `S_H` is a multiple of `D_H` (once per output row that
/// reads it otherwise), from `K_H` rows of load sites rather than one per
/// input row of the tile. Same bindings, grid and results as the file's loop form.
///
/// Lavapipe-specific, as `plan::storage_texture_reads`: the loop is there
/// for compile time. Measured on lavapipe against the fully unrolled form
/// this replaced (which loaded each of the tile's rows from its own sites),
/// both with Mesa's shader cache off (`MESA_SHADER_CACHE_DISABLE=true
/// wgconv bench --layer L --runs 1 --warmup 0 --no-check`, whole process,
/// 3 each): dw3 0.54–0.55 s → 0.34–0.37 s, dw3s2 0.47–0.48 → 0.39–0.44 s.
/// With every row unrolled, storage-texture loads ran 5–15 % faster still
/// but took dw3 to 0.70–0.83 s.
pub fn conv2d_depthwise_main(spec: &DepthwiseSpec) -> String {
    let DepthwiseSpec { pix, k_h, k_w, .. } = *spec;
    let (s_w, d_h, d_w) = (spec.stride.1, spec.dilation.0, spec.dilation.1);
    let cols = spec.cols();
    let j = spec.row_step();
    let carried = k_h - j;
    let mut s = prologue(Lanes::Plain);
    let mut line = |text: String| {
        s.push_str(&text);
        s.push('\n');
    };
    // Items run over the tile columns of CB channels (unit lw.y's), then tile rows.
    line("    let per_row = p.blocks_w * CB;".into());
    line("    let in_row = item % per_row;".into());
    line("    let oh0 = (item / per_row) * PH;".into());
    line("    let ow0 = (in_row % p.blocks_w) * PIX;".into());
    line("    let co = (p.y0 + lw.y) * CB + in_row / p.blocks_w;".into());
    line("    let x_plane = (n * p.c_in + co / p.c_out_per_group) * p.in_cstride;".into());
    line("    let hin = i32(p.h_in);".into());
    line("    let win = i32(p.w_in);".into());
    line("    let ih0 = i32(oh0 * S_H) - i32(p.pad_top);".into());
    line("    let iw0 = i32(ow0 * S_W) - i32(p.pad_left);".into());
    line(column_setup(&cols, spec.vin, "    ").trim_end().into());
    for kh in 0..k_h {
        for kw in 0..k_w {
            line(format!(
                "    let w{kh}_{kw} = weight[co * {}u + {}u - p.w_base];",
                k_h * k_w,
                kh * k_w + kw
            ));
        }
    }
    line("    let b = bias[co];".into());
    line(
        "    let o = (n * p.c_out + co) * p.out_cstride + oh0 * p.w_out + ow0 - p.out_base;".into(),
    );
    // Input row `r` into `{tag}x{t}` for the columns `cols`.
    let load = |r: String, tag: &str| {
        let mut t = String::new();
        let _ = writeln!(t, "        let {tag}r = {r};");
        let _ = writeln!(t, "        let {tag}rv = {tag}r >= 0 && {tag}r < hin;");
        let _ = writeln!(
            t,
            "        let {tag}row = x_plane + u32(clamp({tag}r, 0, hin - 1)) * p.w_in - p.in_base;"
        );
        t.push_str(&row_loads_named(
            &cols,
            spec.vin,
            &format!("{tag}rv && "),
            &format!("{tag}row"),
            tag,
            "        ",
        ));
        t.trim_end().to_string()
    };
    // The carried taps' rows for output row 0, in `q{kh}_x{t}`.
    for kh in 0..carried {
        line(load(format!("ih0 + {}", kh * d_h), &format!("p{kh}_")));
        for t in 0..cols.len() {
            line(format!("    var q{kh}_x{t} = p{kh}_x{t};"));
        }
    }
    line("    for (var y = 0u; y < PH; y++) {".into());
    line("        let iy = ih0 + i32(y * S_H);".into());
    for kh in carried..k_h {
        line(load(format!("iy + {}", kh * d_h), &format!("n{kh}_")));
    }
    let tap = |kh: u32, t: usize| {
        if kh < carried {
            format!("q{kh}_x{t}")
        } else {
            format!("n{kh}_x{t}")
        }
    };
    for px in 0..pix {
        line(format!("        var a{px} = 0.0;"));
    }
    for kh in 0..k_h {
        for kw in 0..k_w {
            for px in 0..pix {
                let t = index_of(&cols, px * s_w + kw * d_w);
                line(format!(
                    "        a{px} = fma({}, w{kh}_{kw}, a{px});",
                    tap(kh, t)
                ));
            }
        }
    }
    if spec.vout {
        // `o` and `w_out` are multiples of 4, and so is `ow0` (`PIX` is).
        for k in 0..pix / 4 {
            let v: Vec<String> = (4 * k..4 * k + 4)
                .map(|px| format!("activate(a{px} + b)"))
                .collect();
            line(format!(
                "        if oh0 + y < p.h_out && ow0 + {}u < p.w_out {{ output[(o + y * p.w_out) / 4u + {k}u] = vec4<f32>({}); }}",
                4 * k,
                v.join(", ")
            ));
        }
    } else {
        for px in 0..pix {
            line(format!(
                "        if oh0 + y < p.h_out && ow0 + {px}u < p.w_out {{ output[o + y * p.w_out + {px}u] = activate(a{px} + b); }}"
            ));
        }
    }
    // Row y + 1's tap kh is row y's tap kh + j (in increasing kh, so each
    // source is read before it is overwritten).
    for kh in 0..carried {
        for t in 0..cols.len() {
            line(format!("        q{kh}_x{t} = {};", tap(kh + j, t)));
        }
    }
    line("    }".into());
    line("}".into());
    s
}

/// The specialisation of `conv_transpose2d` that the generator unrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransposedSpec {
    /// Input-column steps per invocation (each gives `S_W` output columns).
    pub pix: u32,
    /// Output channels per invocation, in vec4s.
    pub cob4: u32,
    /// Kernel width.
    pub k_w: u32,
    /// Stride along W.
    pub s_w: u32,
    /// Dilation along W.
    pub d_w: u32,
    /// `pad_left mod S_W`.
    pub plr: u32,
    /// The output is bound as `array<vec4<f32>>` and each channel's
    /// `S_W·PIX` neighbouring columns are stored as aligned vec4s (`VOUT`;
    /// the host's conditions are in `plan::transposed_vec4_output`).
    pub vout: bool,
    /// `Some(a)`: the input is bound as `array<vec4<f32>>` and the columns
    /// [`offsets`](Self::offsets) are read as aligned vec4s, the first at
    /// position `a` of its vec4 (`VIN`, `VA`; the host's conditions are in
    /// `plan::transposed_vec4_input`).
    pub vin: Option<u32>,
    /// `Some(s)`: the weights are read through subgroups of `s` lanes
    /// (`subgroup_weights`), each subgroup taking `s` consecutive items of
    /// one output row (`SG`; see `plan::transposed_subgroups`).
    pub sg: Option<u32>,
    /// `k`: the `k` taps of a kernel column that can reach an output row
    /// (`⌈k_h / tap_step_h⌉`) are unrolled, each behind its own test,
    /// instead of looping over them (`KHU`; see `plan::unrolled_taps`).
    /// 0: the loop.
    pub khu: u32,
}

impl TransposedSpec {
    /// The phase `ph < S_W` that tap `kw` feeds and its input column offset
    /// `(ph + PLR − kw·D_W) / S_W` (an exact division).
    pub fn tap(&self, kw: u32) -> (u32, i64) {
        let s = i64::from(self.s_w);
        let r = i64::from(self.plr) - i64::from(kw) * i64::from(self.d_w);
        let ph = (-r).rem_euclid(s);
        (ph as u32, (ph + r) / s)
    }

    /// Distinct input column offsets (relative to `q0 + pad_left / S_W`) the
    /// invocation reads, in increasing order.
    pub fn offsets(&self) -> Vec<i64> {
        let mut v: Vec<i64> = (0..self.k_w)
            .flat_map(|kw| {
                let (_, off) = self.tap(kw);
                (0..self.pix).map(move |px| i64::from(px) + off)
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The first (lowest) of the [`offsets`](Self::offsets), and the offsets
    /// relative to it: the columns an invocation reads start at input column
    /// `q0 + pad_left / S_W + first`.
    pub fn shifted_offsets(&self) -> (i64, Vec<u32>) {
        let offs = self.offsets();
        let first = offs.first().copied().unwrap_or(0);
        let rel = offs
            .iter()
            .map(|&o| u32::try_from(o - first).unwrap_or(0))
            .collect();
        (first, rel)
    }
}

/// The unrolled `main` of `conv_transpose2d` for `spec`: every tap's phase and
/// input offset are constants. Same bindings, grid and results as the file's
/// loop form.
pub fn conv_transpose2d_main(spec: &TransposedSpec) -> String {
    let TransposedSpec {
        pix,
        cob4,
        k_w,
        s_w,
        ..
    } = *spec;
    let offs = spec.offsets();
    let slot = |o: i64| offs.iter().position(|&v| v == o).unwrap_or(0);
    let mut s = prologue(if spec.sg.is_some() {
        Lanes::SubgroupRows
    } else {
        Lanes::Plain
    });
    let live = if spec.sg.is_some() { "live && " } else { "" };
    let mut line = |text: String| {
        s.push_str(&text);
        s.push('\n');
    };
    for l in [
        "    let oh = item / p.blocks_w;",
        "    let q0 = (item % p.blocks_w) * PIX;",
        "    let cb = p.y0 + lw.y;",
        "    let g = cb / p.blocks_per_group;",
        "    let co_in_group0 = (cb % p.blocks_per_group) * (COB4 * 4u);",
        "    let cpg = p.c_in_per_group;",
        "    let plane = p.in_cstride;",
        "    let win = i32(p.w_in);",
        "    let ibase = i32(q0 + p.pad_left / S_W);",
        "    let th = i32(oh + p.pad_top);",
        "    var kh0 = p.k_h;",
        "    for (var k = 0u; k < min(p.tap_step_h, p.k_h); k++) {",
        "        let t = th - i32(k * p.dil_h);",
        "        if t < 0 {",
        "            break;",
        "        }",
        "        if u32(t) % p.stride_h == 0u {",
        "            kh0 = k;",
        "            break;",
        "        }",
        "    }",
    ] {
        line(l.to_string());
    }
    let (first, rel) = spec.shifted_offsets();
    line(format!("    let iw0 = ibase + ({first});"));
    line(column_setup(&rel, spec.vin, "    ").trim_end().to_string());
    for ph in 0..s_w {
        for px in 0..pix {
            for c in 0..cob4 {
                line(format!("    var a{ph}_{px}_{c} = vec4<f32>(0.0);"));
            }
        }
    }
    for l in [
        "    var x_plane = (n * p.c_in + g * cpg) * plane;",
        "    let w_ci_stride = p.k_h * K_W * COB4;",
        "    var w_at = cb * cpg * w_ci_stride - p.w_base;",
        "    for (var ci = 0u; ci < cpg; ci++) {",
    ] {
        line(l.to_string());
    }
    // Unrolled (`KHU`): tap r of the row is kh0 + r·tap_step_h, run where it is a
    // kernel row (kh < k_h) whose input row is inside the image (t ≥ 0, as the loop's
    // `break`, and ih < h_in, as its `continue`). The test is the same for a whole
    // subgroup (its lanes share the output row), as the subgroup weights need.
    let khu = spec.khu;
    for rep in 0..khu.max(1) {
        if khu > 0 {
            line("        {".into());
            line(format!("            let kh = kh0 + {rep}u * p.tap_step_h;"));
            line("            let t = th - i32(kh * p.dil_h);".into());
            line("            if kh < p.k_h && t >= 0 && u32(t) / p.stride_h < p.h_in {".into());
            line("            let ih = u32(t) / p.stride_h;".into());
        } else {
            for l in [
                "        for (var kh = kh0; kh < p.k_h; kh += p.tap_step_h) {",
                "            let t = th - i32(kh * p.dil_h);",
                "            if t < 0 {",
                "                break;",
                "            }",
                "            let ih = u32(t) / p.stride_h;",
                "            if ih >= p.h_in {",
                "                continue;",
                "            }",
            ] {
                line(l.to_string());
            }
        }
        line("            let row = x_plane + ih * p.w_in - p.in_base;".into());
        line(
            row_loads(&rel, spec.vin, "", "            ")
                .trim_end()
                .to_string(),
        );
        line("            let wb = w_at + kh * (K_W * COB4);".into());
        if let Some(sg) = spec.sg {
            // Every lane of the subgroup is here: they share the output row, so the
            // kernel rows above, and the row's exits, are the same for all of them.
            line(
                subgroup_weights("ws", "wb", k_w * cob4, sg, "            ")
                    .trim_end()
                    .into(),
            );
        }
        for kw in 0..k_w {
            let (ph, off) = spec.tap(kw);
            for c in 0..cob4 {
                if spec.sg.is_some() {
                    line(format!("            let w{kw}_{c} = ws{};", kw * cob4 + c));
                } else {
                    line(format!(
                        "            let w{kw}_{c} = weight[wb + {}u];",
                        kw * cob4 + c
                    ));
                }
                for px in 0..pix {
                    line(format!(
                    "            a{ph}_{px}_{c} = fma(vec4<f32>(x{}), w{kw}_{c}, a{ph}_{px}_{c});",
                    slot(i64::from(px) + off)
                ));
                }
            }
        }
        if khu > 0 {
            line("            }".into());
        }
        line("        }".into());
    }
    for l in [
        "        x_plane += plane;",
        "        w_at += w_ci_stride;",
        "    }",
        "    let oplane = p.out_cstride;",
        "    let o = (n * p.c_out + g * p.c_out_per_group) * oplane + oh * p.w_out - p.out_base;",
    ] {
        line(l.to_string());
    }
    // A loop over the channel vec4s with the blocks shifted down, as in
    // `conv2d_tiled_main`: one copy of the store code instead of COB4.
    if spec.vout {
        // Column S_W·q0 + i is phase i % S_W of step i / S_W; S_W·q0 is a multiple of 4.
        line("    let ob = o + S_W * q0;".into());
    }
    line("    for (var c = 0u; c < COB4; c++) {".into());
    for (j, comp) in ["x", "y", "z", "w"].iter().enumerate() {
        line(format!("        let co{j} = co_in_group0 + c * 4u + {j}u;"));
        line(format!("        if co{j} < p.c_out_per_group {{"));
        line(format!(
            "            let b = bias[min(g * p.c_out_per_group + co{j}, p.c_out - 1u)];"
        ));
        if spec.vout {
            for m in 0..s_w * pix / 4 {
                let v: Vec<String> = (4 * m..4 * m + 4)
                    .map(|i| format!("activate(a{}_{}_0.{comp} + b)", i % s_w, i / s_w))
                    .collect();
                line(format!(
                    "            if {live}S_W * q0 + {}u < p.w_out {{ output[(ob + co{j} * oplane) / 4u + {m}u] = vec4<f32>({}); }}",
                    4 * m,
                    v.join(", ")
                ));
            }
        } else {
            for ph in 0..s_w {
                for px in 0..pix {
                    line(format!(
                        "            if {live}{ph}u + S_W * (q0 + {px}u) < p.w_out {{ output[o + co{j} * oplane + {ph}u + S_W * (q0 + {px}u)] = activate(a{ph}_{px}_0.{comp} + b); }}"
                    ));
                }
            }
        }
        line("        }".into());
    }
    let rows = (0..s_w).flat_map(|ph| (0..pix).map(move |px| format!("a{ph}_{px}")));
    if cob4 > 1 {
        line(rotate_down(rows, cob4, "        "));
    }
    line("    }".into());
    line("}".into());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_offsets_are_the_contiguous_segment() {
        let s = TiledSpec {
            pix: 8,
            cob4: 4,
            k_w: 3,
            s_w: 1,
            d_w: 1,
            q: 1,
            kh1: false,
            segs: false,
            vin: None,
            shifted: false,
            vout: false,
            sg: None,
            cu: 1,
            res: false,
            khu: 0,
        };
        assert_eq!(s.offsets(), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn phase_spaced_pixels_share_dilated_taps() {
        // dilation 12, stride 1: 4 pixels 12 apart read 4 + 3 − 1 = 6 inputs, not 3·4 = 12.
        let s = TiledSpec {
            pix: 4,
            cob4: 4,
            k_w: 3,
            s_w: 1,
            d_w: 12,
            q: 12,
            kh1: false,
            segs: false,
            vin: None,
            shifted: false,
            vout: false,
            sg: None,
            cu: 1,
            res: false,
            khu: 0,
        };
        assert_eq!(s.offsets(), vec![0, 12, 24, 36, 48, 60]);
        // stride 2, dilation 4: Q = 2, pixels 2 apart, taps step 4 = one pixel step.
        let s = TiledSpec {
            pix: 4,
            cob4: 1,
            k_w: 3,
            s_w: 2,
            d_w: 4,
            q: 2,
            kh1: false,
            segs: false,
            vin: None,
            shifted: false,
            vout: false,
            sg: None,
            cu: 1,
            res: false,
            khu: 0,
        };
        assert_eq!(s.offsets(), vec![0, 4, 8, 12, 16, 20]);
    }

    #[test]
    fn depthwise_rows_load_once_from_one_site_per_tap() {
        // 8 columns, 3x3, stride 1: 10 input columns; each output row loads one
        // new input row and carries two.
        let s = DepthwiseSpec {
            pix: 8,
            k_h: 3,
            k_w: 3,
            stride: (1, 1),
            dilation: (1, 1),
            vin: None,
            vout: false,
        };
        assert_eq!(s.cols().len(), 10);
        assert_eq!(s.row_step(), 1);
        // Scalar loads: 3 taps' rows of 10 columns, 2 of them before the loop.
        let src = conv2d_depthwise_main(&s);
        assert_eq!(src.matches("input[").count(), 30, "{src}");
        let (before, inside) = src.split_once("for (var y").unwrap_or_default();
        assert_eq!(before.matches("input[").count(), 20);
        assert_eq!(inside.matches("input[").count(), 10);
        // Stride 2: 17 columns, two new rows a step, one carried; vec4
        // loads at VA 3: 5 vec4s a row.
        let s2 = DepthwiseSpec {
            stride: (2, 2),
            vin: Some(3),
            ..s
        };
        assert_eq!(s2.cols().len(), 17);
        assert_eq!(s2.row_step(), 2);
        assert_eq!(conv2d_depthwise_main(&s2).matches("input[").count(), 15);
        // Carried rows need S_H a multiple of D_H below K_H·D_H.
        let step = |stride, dilation| {
            DepthwiseSpec {
                stride,
                dilation,
                ..s
            }
            .row_step()
        };
        assert_eq!(step((2, 1), (2, 1)), 1);
        assert_eq!(step((1, 1), (2, 1)), 3);
        assert_eq!(step((3, 1), (1, 1)), 3);
        assert_eq!(step((4, 1), (1, 1)), 3);
        assert_eq!(step((4, 1), (2, 1)), 2);
    }

    #[test]
    fn transposed_taps_find_their_phase() {
        // k 4, stride 2, pad 1 (PLR 1): ow = 2q + ph reads iw = (ow + 1 - kw) / 2.
        let s = TransposedSpec {
            pix: 4,
            cob4: 1,
            k_w: 4,
            s_w: 2,
            d_w: 1,
            plr: 1,
            vout: false,
            vin: None,
            sg: None,
            khu: 0,
        };
        for kw in 0..4 {
            let (ph, off) = s.tap(kw);
            for q in 0..5i64 {
                let ow = 2 * q + i64::from(ph);
                // pad_left / S_W = 0 here, so iw = q + off.
                assert_eq!((ow + 1 - i64::from(kw)).rem_euclid(2), 0);
                assert_eq!((ow + 1 - i64::from(kw)) / 2, q + off);
            }
        }
        assert_eq!(s.offsets(), vec![-1, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn consts_are_read_back() {
        let c = read_consts("const PIX: u32 = 8u;\nconst K_W: u32 = 3u;\nlet x = 1;");
        assert_eq!(c.get("PIX"), Some(&8));
        assert_eq!(c.get("K_W"), Some(&3));
        assert_eq!(c.len(), 2);
    }
}
