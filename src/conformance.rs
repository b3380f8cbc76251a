//! The built-in conformance suite: a seeded generator of convolution cases
//! covering every op and parameter class, and a runner that checks each case
//! on the GPU against the CPU reference.
//!
//! The `wgconv test` subcommand and `wgconv shaders` use it; so can tests.
//! Kernel sizes, strides and dilations are drawn from small sets, because
//! every distinct specialisation costs a shader compile.

use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;
use crate::geometry::{Activation, Conv2dParams, Conv2dShape, ConvTranspose2dParams, Padding};
use crate::ops::conv2d::Conv2d;
use crate::ops::conv_transpose2d::ConvTranspose2d;
use crate::reference::{self, Comparison, Tolerance};
use crate::suite::LayerOp;
use crate::tensor::GpuTensor;

/// Whether transposed convolution cases are generated and run (true once
/// `ConvTranspose2d` is part of the library).
pub const TRANSPOSED_AVAILABLE: bool = true;

/// The default seed of the suite.
pub const DEFAULT_SEED: u64 = 0x5EED_C0DE;

/// One conformance case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Index in the full suite.
    pub id: usize,
    /// Parameter class ("dense", "strided", ...).
    pub class: &'static str,
    /// `[n, c_in, h, w]`.
    pub input: [usize; 4],
    /// Weight shape in the op's PyTorch layout.
    pub weight: [usize; 4],
    /// The op and its parameters.
    pub op: LayerOp,
    /// Whether a bias is used.
    pub bias: bool,
    /// Fused activation.
    pub activation: Activation,
    /// Seed of the case's data.
    pub seed: u64,
}

impl Case {
    /// The resolved shape.
    ///
    /// # Errors
    /// Geometry errors (never for generated cases).
    pub fn shape(&self) -> Result<Conv2dShape> {
        let c_out = match self.op {
            LayerOp::Conv2d(_) => self.weight[0],
            LayerOp::ConvTranspose2d(p) => self.weight[1] * p.groups as usize,
        };
        let bias = self.bias.then_some(c_out);
        match self.op {
            LayerOp::Conv2d(p) => Conv2dShape::conv2d(self.input, self.weight, bias, &p),
            LayerOp::ConvTranspose2d(p) => {
                Conv2dShape::conv_transpose2d(self.input, self.weight, bias, &p)
            }
        }
    }

    /// One-line description with every parameter.
    pub fn describe(&self) -> String {
        let (op, s, p, d, g, extra) = match self.op {
            LayerOp::Conv2d(p) => (
                "conv2d",
                p.stride,
                p.padding,
                p.dilation,
                p.groups,
                String::new(),
            ),
            LayerOp::ConvTranspose2d(p) => (
                "conv_transpose2d",
                p.stride,
                p.padding,
                p.dilation,
                p.groups,
                format!(" out_pad={},{}", p.output_padding.0, p.output_padding.1),
            ),
        };
        let dims = |v: [usize; 4]| format!("{},{},{},{}", v[0], v[1], v[2], v[3]);
        format!(
            "#{} {} {op} x=[{}] w=[{}] stride={},{} pad={},{},{},{} dil={},{} groups={g}{extra} bias={} act={}",
            self.id,
            self.class,
            dims(self.input),
            dims(self.weight),
            s.0,
            s.1,
            p.top,
            p.left,
            p.bottom,
            p.right,
            d.0,
            d.1,
            if self.bias { "on" } else { "off" },
            self.activation
        )
    }

    /// The case's input, weight and bias data (uniform in `[-1, 1)`, seeded).
    pub fn data(&self) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
        let mut rng = Rng::new(self.seed);
        let mut fill = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.unit()).collect() };
        let x = fill(self.input.iter().product());
        let w = fill(self.weight.iter().product());
        let c_out = match self.op {
            LayerOp::Conv2d(_) => self.weight[0],
            LayerOp::ConvTranspose2d(p) => self.weight[1] * p.groups as usize,
        };
        let b = self.bias.then(|| fill(c_out));
        (x, w, b)
    }
}

/// SplitMix64: small, seeded, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[(self.next_u64() % v.len() as u64) as usize]
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    /// Uniform in `[-1, 1)`.
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    /// `len` values uniform in `[-1, 1)`.
    pub fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.unit()).collect()
    }
}

/// Channel counts the suite draws from.
pub const CHANNELS: [usize; 9] = [1, 3, 5, 6, 7, 8, 9, 16, 64];
const SMALL_CHANNELS: [usize; 7] = [1, 3, 5, 6, 7, 8, 9];
const ACTIVATIONS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.1),
    Activation::Silu,
];

/// A forward-conv draft: everything needed for one case.
struct Draft {
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    stride: (u32, u32),
    pad: Padding,
    dil: (u32, u32),
    groups: u32,
}

impl Draft {
    fn new(c_in: usize, c_out: usize, k: usize) -> Self {
        Self {
            n: 1,
            c_in,
            c_out,
            h: 8,
            w: 8,
            k: (k, k),
            stride: (1, 1),
            pad: Padding::default(),
            dil: (1, 1),
            groups: 1,
        }
    }
}

/// Per-class generators: (class name, full-suite count, generator).
type Gen = fn(&mut Rng, usize) -> Draft;

fn dense(r: &mut Rng, _: usize) -> Draft {
    let k = r.pick(&[1, 3, 5]);
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&CHANNELS[..8]), k);
    d.pad = Padding::uniform((k / 2) as u32);
    d.h = r.range(4, 12) as usize;
    d.w = r.range(4, 12) as usize;
    d
}
fn strided(r: &mut Rng, _: usize) -> Draft {
    let k = r.pick(&[1, 3, 5]);
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&SMALL_CHANNELS), k);
    let s = r.pick(&[2, 3]);
    d.stride = if r.chance(70) {
        (s, s)
    } else {
        (r.pick(&[1, 2]), r.pick(&[2, 3]))
    };
    d.pad = Padding::uniform(r.range(0, (k / 2) as u32));
    d.h = r.range(5, 15) as usize;
    d.w = r.range(5, 15) as usize;
    d
}
fn asym_pad(r: &mut Rng, _: usize) -> Draft {
    let k = r.pick(&[2, 3]);
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&SMALL_CHANNELS), k);
    d.pad = Padding::new(r.range(0, 3), r.range(0, 3), r.range(0, 3), r.range(0, 3));
    d.stride = r.pick(&[(1, 1), (2, 2), (1, 2)]);
    d.h = r.range(3, 10) as usize;
    d.w = r.range(3, 10) as usize;
    d
}
fn dilated(r: &mut Rng, _: usize) -> Draft {
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&SMALL_CHANNELS), 3);
    d.dil = (r.pick(&[1, 2, 3]), r.pick(&[1, 2, 3]));
    if d.dil.0 == d.dil.1 {
        d.dil.1 = d.dil.0 % 3 + 1; // non-square
    }
    d.stride = r.pick(&[(1, 1), (2, 2), (1, 2)]);
    d.pad = Padding::symmetric(d.dil.0, d.dil.1);
    d.h = r.range(7, 14) as usize;
    d.w = r.range(7, 14) as usize;
    d
}
fn grouped(r: &mut Rng, i: usize) -> Draft {
    let cpg = [1, 2, 4, 8][i % 4];
    let g = r.range(2, 4);
    let mut d = Draft::new(
        cpg * g as usize,
        r.pick(&[1, 2, 4]) * g as usize,
        r.pick(&[1, 3]),
    );
    d.groups = g;
    d.pad = Padding::uniform((d.k.0 / 2) as u32);
    d.stride = r.pick(&[(1, 1), (2, 2)]);
    d.h = r.range(4, 10) as usize;
    d.w = r.range(4, 10) as usize;
    d
}
fn depthwise(r: &mut Rng, _: usize) -> Draft {
    let c = r.pick(&[3, 5, 8, 9, 16]);
    let m = r.range(1, 3) as usize;
    let mut d = Draft::new(c, c * m, r.pick(&[3, 5]));
    d.groups = c as u32;
    d.pad = Padding::uniform((d.k.0 / 2) as u32);
    d.stride = r.pick(&[(1, 1), (2, 2)]);
    d.h = r.range(5, 12) as usize;
    d.w = r.range(5, 12) as usize;
    d
}
fn pointwise(r: &mut Rng, _: usize) -> Draft {
    let mut d = Draft::new(r.pick(&CHANNELS), r.pick(&CHANNELS), 1);
    d.stride = r.pick(&[(1, 1), (1, 1), (2, 2)]);
    d.h = r.range(3, 9) as usize;
    d.w = r.range(3, 9) as usize;
    d
}
fn rectangular(r: &mut Rng, i: usize) -> Draft {
    let k = r.pick(&[3, 5]);
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&SMALL_CHANNELS), 1);
    if i.is_multiple_of(2) {
        d.k = (1, k);
        d.pad = Padding::symmetric(0, (k / 2) as u32);
    } else {
        d.k = (k, 1);
        d.pad = Padding::symmetric((k / 2) as u32, 0);
    }
    d.h = r.range(4, 10) as usize;
    d.w = r.range(4, 10) as usize;
    d
}
fn one_d(r: &mut Rng, _: usize) -> Draft {
    let k = r.pick(&[1, 3, 5]);
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&SMALL_CHANNELS), 1);
    d.k = (1, k);
    d.h = 1;
    d.w = r.range(8, 33) as usize;
    d.pad = Padding::new(0, r.range(0, 2), 0, r.range(0, 2));
    d.stride = (1, r.pick(&[1, 2]));
    d.dil = (1, r.pick(&[1, 2]));
    d
}
fn batch2(r: &mut Rng, _: usize) -> Draft {
    let mut d = dense(r, 0);
    d.n = 2;
    d
}
fn odd_sizes(r: &mut Rng, i: usize) -> Draft {
    let (h, w) = [(1, 1), (1, 17), (13, 7)][i % 3];
    let k = if h == 1 && w == 1 { 1 } else { r.pick(&[1, 3]) };
    let mut d = Draft::new(r.pick(&SMALL_CHANNELS), r.pick(&SMALL_CHANNELS), k);
    d.h = h;
    d.w = w;
    if h == 1 {
        d.k = (1, k);
        d.pad = Padding::symmetric(0, (k / 2) as u32);
    } else {
        d.pad = Padding::uniform((k / 2) as u32);
        d.stride = r.pick(&[(1, 1), (2, 2)]);
    }
    d
}
fn channels(r: &mut Rng, i: usize) -> Draft {
    let c = CHANNELS[i % CHANNELS.len()];
    let k_out = CHANNELS[(i / CHANNELS.len() * 4 + i) % CHANNELS.len()];
    let mut d = Draft::new(c, k_out, 3);
    d.pad = Padding::uniform(1);
    d.h = r.range(4, 8) as usize;
    d.w = r.range(4, 8) as usize;
    d
}

const CLASSES: [(&str, usize, Gen); 13] = [
    ("dense", 60, dense),
    ("strided", 50, strided),
    ("asym_pad", 45, asym_pad),
    ("dilated", 45, dilated),
    ("grouped", 48, grouped),
    ("depthwise", 40, depthwise),
    ("pointwise", 30, pointwise),
    ("rectangular", 30, rectangular),
    ("1d", 30, one_d),
    ("batch2", 24, batch2),
    ("odd_sizes", 30, odd_sizes),
    ("channels", 36, channels),
    ("activation", 40, dense),
];

/// Transposed draft: (c_in, c_out, h, w, k, params).
fn transposed(r: &mut Rng, i: usize) -> ([usize; 4], [usize; 4], ConvTranspose2dParams) {
    let s = r.range(1, 4);
    let k = r.range(1, 5) as usize;
    let dil = if i % 5 == 3 { 2 } else { 1 };
    let groups: u32 = match i % 6 {
        4 => r.range(2, 3),
        5 => 0, // depthwise-transposed, fixed below
        _ => 1,
    };
    let (c_in, c_out, groups) = if groups == 0 {
        let c = r.pick(&[3, 4, 8]);
        (c, c * r.range(1, 2) as usize, c as u32)
    } else {
        let g = groups as usize;
        (r.pick(&[1, 2, 3, 4]) * g, r.pick(&[1, 2, 3]) * g, groups)
    };
    let max_pad = ((k - 1) * dil as usize) as u32;
    let pad = if i % 4 == 2 {
        Padding::new(
            r.range(0, max_pad),
            r.range(0, max_pad),
            r.range(0, max_pad),
            r.range(0, max_pad),
        )
    } else {
        Padding::uniform(r.range(0, max_pad.min(1)))
    };
    let op = if s > 1 && r.chance(40) {
        r.range(1, s - 1)
    } else {
        0
    };
    let params = ConvTranspose2dParams {
        stride: (s, s),
        padding: pad,
        output_padding: (op, op),
        dilation: (dil, dil),
        groups,
    };
    let (h, w) = (r.range(2, 7) as usize, r.range(2, 7) as usize);
    (
        [1, c_in, h, w],
        [c_in, c_out / groups as usize, k, k],
        params,
    )
}

/// The full suite (at least 500 cases) for a seed. Case ids are positions
/// in this list; the same seed always gives the same cases.
pub fn cases(seed: u64) -> Vec<Case> {
    let mut out = Vec::new();
    let mut rng = Rng::new(seed);
    for (ci, (class, count, gen)) in CLASSES.iter().enumerate() {
        for i in 0..*count {
            // Retry until the draft is a valid convolution (bounded).
            for attempt in 0..64 {
                let mut d = gen(&mut rng, i + attempt * 7);
                // Activations are specialisation constants: vary them in their own
                // class only (a few elsewhere), so the suite compiles few shaders.
                let activation = if *class == "activation" {
                    match ACTIVATIONS[i % 5] {
                        Activation::LeakyRelu(_) => {
                            Activation::LeakyRelu(rng.pick(&[0.01, 0.1, 0.2, 0.5]))
                        }
                        a => a,
                    }
                } else if i % 10 == 9 {
                    Activation::Relu
                } else {
                    Activation::None
                };
                let groups = d.groups.max(1);
                if !d.c_in.is_multiple_of(groups as usize)
                    || !d.c_out.is_multiple_of(groups as usize)
                {
                    d.groups = 1;
                }
                let params = Conv2dParams {
                    stride: d.stride,
                    padding: d.pad,
                    dilation: d.dil,
                    groups: d.groups,
                };
                let case = Case {
                    id: out.len(),
                    class,
                    input: [d.n, d.c_in, d.h, d.w],
                    weight: [d.c_out, d.c_in / d.groups as usize, d.k.0, d.k.1],
                    op: LayerOp::Conv2d(params),
                    bias: rng.chance(50),
                    activation,
                    seed: seed ^ ((ci as u64) << 32 | i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
                };
                if case.shape().is_ok() {
                    out.push(case);
                    break;
                }
            }
        }
    }
    if TRANSPOSED_AVAILABLE {
        for i in 0..120 {
            for _ in 0..64 {
                let (input, weight, params) = transposed(&mut rng, i);
                let case = Case {
                    id: out.len(),
                    class: "transposed",
                    input,
                    weight,
                    op: LayerOp::ConvTranspose2d(params),
                    bias: rng.chance(50),
                    activation: if i % 10 == 9 {
                        Activation::Relu
                    } else {
                        Activation::None
                    },
                    seed: seed ^ (0xFFu64 << 32 | i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
                };
                if case.shape().is_ok() {
                    out.push(case);
                    break;
                }
            }
        }
    }
    out
}

/// The quick subset: every class represented, about a fifth of the cases.
pub fn quick(all: Vec<Case>) -> Vec<Case> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    all.into_iter()
        .filter(|c| {
            let n = seen.entry(c.class).or_insert(0);
            *n += 1;
            // The first 6 of each class (activation: all 5 kinds), then every 8th.
            *n <= 6 || n.is_multiple_of(8)
        })
        .collect()
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case id.
    pub id: usize,
    /// Parameter class.
    pub class: String,
    /// [`Case::describe`].
    pub case: String,
    /// Whether the GPU result matched the reference.
    pub passed: bool,
    /// Largest absolute error (absent when the case errored).
    pub max_abs: Option<f64>,
    /// Largest relative error.
    pub max_rel: Option<f64>,
    /// Error ratio to the allowed tolerance (pass iff ≤ 1).
    pub worst_ratio: Option<f64>,
    /// The error, when the case could not run.
    pub error: Option<String>,
    /// The kernel specialisation the planner chose.
    pub kernel: Option<String>,
    /// Wall time of the case (GPU run, readback and reference), ms.
    pub ms: f64,
}

/// Runs one case on the GPU and compares with the CPU reference under
/// [`Tolerance::F32Accumulation`].
pub fn run_case(engine: &Engine, case: &Case) -> CaseResult {
    run_case_with(engine, case, false)
}

/// [`run_case`], optionally perturbing the GPU result before the comparison
/// (a test hook: it shows that a wrong result is reported as a failure).
pub fn run_case_with(engine: &Engine, case: &Case, corrupt: bool) -> CaseResult {
    let mut kernel = None;
    let start = std::time::Instant::now();
    let outcome = run_inner(engine, case, &mut kernel, corrupt);
    let (passed, cmp, error) = match outcome {
        Ok(c) => (c.passed, Some(c), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    CaseResult {
        id: case.id,
        class: case.class.to_string(),
        case: case.describe(),
        passed,
        max_abs: cmp.as_ref().map(|c| c.max_abs),
        max_rel: cmp.as_ref().map(|c| c.max_rel),
        worst_ratio: cmp.as_ref().map(|c| c.worst_ratio),
        error,
        kernel,
        ms: start.elapsed().as_secs_f64() * 1e3,
    }
}

fn run_inner(
    engine: &Engine,
    case: &Case,
    kernel: &mut Option<String>,
    corrupt: bool,
) -> Result<Comparison> {
    let (x, w, b) = case.data();
    // The reference carries the error magnitude of what ran (direct or Winograd form).
    let (mut gpu, cpu) = match case.op {
        LayerOp::Conv2d(p) => {
            let conv = Conv2d::new(engine, &w, case.weight, b.as_deref(), p, case.activation)?;
            *kernel = Some(conv.kernel_name(engine, case.input)?);
            let xt = GpuTensor::upload(engine, &x, case.input)?;
            let y = conv.forward(engine, &xt)?.read(engine)?;
            (y, conv.reference_on(engine, &x, case.input)?)
        }
        LayerOp::ConvTranspose2d(p) => {
            let conv =
                ConvTranspose2d::new(engine, &w, case.weight, b.as_deref(), p, case.activation)?;
            *kernel = Some(conv.kernel_name(engine, case.input)?);
            let xt = GpuTensor::upload(engine, &x, case.input)?;
            let y = conv.forward(engine, &xt)?.read(engine)?;
            (y, conv.reference_on(engine, &x, case.input)?)
        }
    };
    if corrupt {
        if let Some(v) = gpu.first_mut() {
            *v += 1.0 + v.abs();
        }
    }
    reference::compare(&cpu, case.activation, &gpu, Tolerance::F32Accumulation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_is_large_valid_and_reproducible() {
        let a = cases(DEFAULT_SEED);
        assert!(a.len() >= 500, "{} cases", a.len());
        assert_eq!(a, cases(DEFAULT_SEED));
        for c in &a {
            c.shape().unwrap();
        }
        for class in CLASSES.iter().map(|c| c.0) {
            assert!(a.iter().any(|c| c.class == class), "{class}");
        }
        let q = quick(a.clone());
        assert!(q.len() < a.len() / 3 && q.len() >= 60, "{}", q.len());
        let other = cases(1);
        assert!(other.len() >= 500);
        assert_ne!(a, other);
    }
}
