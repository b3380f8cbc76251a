//! Upsampling and fused upsample + convolution on the GPU vs the CPU
//! reference (which upsamples, then convolves, in f64): seeded sweeps over
//! both modes, scales, kernels, strides, padding, dilation, groups and
//! activations; the fused layer against a materialised `Upsample` followed
//! by `Conv2d`; a chain in one encoder; typed errors.

mod common;

use common::Rng;
use wgconv::reference::{self, compare, RefOutput, Tolerance};
use wgconv::{
    Activation, Conv2d, Conv2dParams, Engine, Error, GpuTensor, Padding, Upsample, UpsampleConv2d,
    UpsampleConv2dParams, UpsampleConv2dShape, UpsampleMode, UpsampleParams, UpsampleShape,
};

const ACTIVATIONS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.1),
    Activation::Silu,
];
const MODES: [UpsampleMode; 2] = [UpsampleMode::Nearest, UpsampleMode::Bilinear];
const ODD_SIZES: [(u32, u32); 4] = [(1, 1), (1, 17), (13, 7), (5, 1)];

fn params(mode: UpsampleMode, s_h: u32, s_w: u32) -> UpsampleParams {
    UpsampleParams {
        scale: (s_h, s_w),
        mode,
    }
}

// ---------------------------------------------------------------- upsample

#[derive(Debug, Clone)]
struct UpCase {
    input: [usize; 4],
    params: UpsampleParams,
}

fn random_up_case(rng: &mut Rng, i: usize) -> UpCase {
    let (h, w) = if rng.chance(30) {
        rng.pick(&ODD_SIZES)
    } else {
        (rng.range(1, 11), rng.range(1, 13))
    };
    let n = if rng.chance(30) { 2 } else { 1 };
    UpCase {
        input: [n, rng.range(1, 9) as usize, h as usize, w as usize],
        params: params(MODES[i % 2], rng.range(1, 4), rng.range(1, 4)),
    }
}

fn run_up(engine: &Engine, rng: &mut Rng, case: &UpCase, into: bool) -> Option<String> {
    let shape = UpsampleShape::new(case.input, &case.params).unwrap();
    let x = rng.vec(shape.input_len());
    let op = Upsample::new(case.params).unwrap();
    let xt = GpuTensor::upload(engine, &x, case.input).unwrap();
    let y = if into {
        let y = GpuTensor::empty(engine, shape.output_shape()).unwrap();
        let mut enc = engine.device().create_command_encoder(&Default::default());
        op.record_into(engine, &mut enc, &xt, &y).unwrap();
        engine.queue().submit([enc.finish()]);
        y
    } else {
        op.forward(engine, &xt).unwrap()
    };
    assert_eq!(y.shape(), shape.output_shape());
    let gpu = y.read(engine).unwrap();
    let r = reference::upsample(&shape, &x).unwrap();
    if case.params.mode == UpsampleMode::Nearest && gpu != r.to_f32() {
        return Some(format!("{case:?}: nearest is not an exact copy"));
    }
    let cmp = compare(&r, Activation::None, &gpu, Tolerance::F32Accumulation).unwrap();
    (!cmp.passed).then(|| format!("{case:?}: {cmp}"))
}

#[test]
fn upsample_sweep_matches_reference() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x0005_ca1e);
    const CASES: usize = 64;
    let failures: Vec<String> = (0..CASES)
        .filter_map(|i| {
            let case = random_up_case(&mut rng, i);
            run_up(engine, &mut rng, &case, i % 4 == 3)
        })
        .collect();
    assert_no_failures(&failures, CASES);
}

#[test]
fn upsample_sweep_covers_every_kind() {
    let mut rng = Rng::new(0x0005_ca1e);
    let cases: Vec<UpCase> = (0..64).map(|i| random_up_case(&mut rng, i)).collect();
    let has = |f: &dyn Fn(&UpCase) -> bool| cases.iter().any(f);
    for mode in MODES {
        for s in 1..=4 {
            assert!(
                has(&|c| c.params.mode == mode && c.params.scale.0 == s),
                "{mode} h×{s}"
            );
            assert!(
                has(&|c| c.params.mode == mode && c.params.scale.1 == s),
                "{mode} w×{s}"
            );
        }
    }
    assert!(
        has(&|c| c.params.scale.0 != c.params.scale.1),
        "anisotropic scale"
    );
    assert!(has(&|c| c.input[0] == 2), "batch 2");
    for ch in 1..=9 {
        assert!(has(&|c| c.input[1] == ch), "{ch} channels");
    }
    for (h, w) in ODD_SIZES {
        assert!(
            has(&|c| c.input[2..] == [h as usize, w as usize]),
            "{h}x{w}"
        );
    }
}

/// More than 65 535 workgroups of output: the flat index folds into a 2-D grid.
#[test]
fn upsample_output_larger_than_one_grid_row() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(17);
    let input = [1, 1, 600, 600];
    let p = UpsampleParams::bilinear(4, 3);
    let shape = UpsampleShape::new(input, &p).unwrap();
    let op = Upsample::new(p).unwrap();
    assert!(op.plan_for(input).unwrap().groups[1] > 1);
    let x = rng.vec(shape.input_len());
    let cmp = op
        .verify(engine, &x, input, Tolerance::F32Accumulation)
        .unwrap();
    assert!(cmp.passed, "{cmp}");
}

// ------------------------------------------------------ upsample + conv2d

#[derive(Debug, Clone)]
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    params: UpsampleConv2dParams,
    bias: bool,
    activation: Activation,
}

/// A random valid case of the family `i % 6`: dense, grouped, depthwise
/// (with multiplier), pointwise, dilated, strided. Modes alternate and the
/// activation cycles, so every (mode, activation) pair appears.
fn random_case(rng: &mut Rng, i: usize) -> Case {
    loop {
        let family = i % 6;
        let mut c_in = rng.range(1, 9);
        let (mut groups, mut cpg_out) = (1, rng.pick(&[1, 2, 3, 4, 5, 8, 16]));
        match family {
            1 => {
                let cpg = rng.pick(&[1, 2, 4]);
                groups = rng.range(2, 3);
                c_in = cpg * groups;
                cpg_out = rng.pick(&[1, 2, 3, 5]);
            }
            2 => {
                c_in = rng.pick(&[3, 5, 8]);
                groups = c_in;
                cpg_out = rng.range(1, 3);
            }
            _ => {}
        }
        let (k_h, k_w) = if family == 3 {
            (1, 1)
        } else {
            (rng.range(1, 5), rng.range(1, 5))
        };
        let dilation = if family == 4 {
            (rng.range(1, 3), rng.range(1, 3))
        } else {
            (1, 1)
        };
        let stride = if family == 5 || rng.chance(20) {
            (rng.range(1, 3), rng.range(1, 3))
        } else {
            (1, 1)
        };
        let padding = if rng.chance(40) {
            Padding::new(
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
            )
        } else {
            Padding::symmetric(dilation.0 * (k_h - 1) / 2, dilation.1 * (k_w - 1) / 2)
        };
        let (h, w) = if rng.chance(20) {
            rng.pick(&ODD_SIZES)
        } else {
            (rng.range(1, 8), rng.range(1, 9))
        };
        let n = if rng.chance(20) { 2 } else { 1 };
        let case = Case {
            input: [n, c_in as usize, h as usize, w as usize],
            weight: [
                (cpg_out * groups) as usize,
                (c_in / groups) as usize,
                k_h as usize,
                k_w as usize,
            ],
            params: UpsampleConv2dParams {
                upsample: params(MODES[i % 2], rng.range(1, 4), rng.range(1, 4)),
                conv: Conv2dParams {
                    stride,
                    padding,
                    dilation,
                    groups,
                },
            },
            bias: rng.chance(70),
            activation: ACTIVATIONS[(i / 2) % 5],
        };
        if UpsampleConv2dShape::new(case.input, case.weight, None, &case.params).is_ok() {
            return case;
        }
    }
}

struct Data {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
}

fn data(rng: &mut Rng, case: &Case) -> Data {
    Data {
        x: rng.vec(case.input.iter().product()),
        w: rng.vec(case.weight.iter().product()),
        b: case.bias.then(|| rng.vec(case.weight[0])),
    }
}

fn layer(engine: &Engine, case: &Case, d: &Data) -> UpsampleConv2d {
    UpsampleConv2d::new(
        engine,
        &d.w,
        case.weight,
        d.b.as_deref(),
        case.params,
        case.activation,
    )
    .unwrap()
}

fn reference_of(case: &Case, d: &Data) -> RefOutput {
    let shape = UpsampleConv2dShape::new(case.input, case.weight, None, &case.params).unwrap();
    reference::upsample_conv(&shape, &d.x, &d.w, d.b.as_deref(), case.activation).unwrap()
}

/// Reads `y` back and, if it is outside the bound against the reference,
/// records the case and the kernel that ran it in `failures`.
fn check_case(
    engine: &Engine,
    l: &UpsampleConv2d,
    case: &Case,
    d: &Data,
    y: &GpuTensor,
    failures: &mut Vec<String>,
) {
    let gpu = y.read(engine).unwrap();
    let cmp = compare(
        &reference_of(case, d),
        case.activation,
        &gpu,
        Tolerance::F32Accumulation,
    )
    .unwrap();
    if !cmp.passed {
        let key = l.plan_for(case.input).unwrap().key;
        failures.push(format!("{case:?} on {key}: {cmp}"));
    }
}

fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const SWEEP_CASES: usize = 90;

// The sweep runs as two tests, the even and the odd cases, each on its own
// engine so that their kernels compile in parallel (see `shard_engine`).
#[test]
fn upsample_conv_sweep_matches_reference_even() {
    upsample_conv_sweep(0);
}

#[test]
fn upsample_conv_sweep_matches_reference_odd() {
    upsample_conv_sweep(1);
}

fn upsample_conv_sweep(shard: usize) {
    let engine = gpu_or_skip!(shard);
    let mut rng = Rng::new(0x0c0a_5ed0);
    let mut failures = Vec::new();
    for i in 0..SWEEP_CASES {
        // Every case's draws, so that each shard sees the same cases and data.
        let case = random_case(&mut rng, i);
        let d = data(&mut rng, &case);
        if i % common::SHARDS != shard {
            continue;
        }
        let l = layer(engine, &case, &d);
        let y = l
            .forward(
                engine,
                &GpuTensor::upload(engine, &d.x, case.input).unwrap(),
            )
            .unwrap();
        let shape = l.shape_for(case.input).unwrap();
        assert_eq!(y.shape(), shape.output_shape());
        assert_eq!(shape.conv.h_in, shape.upsample.h_out);
        check_case(engine, &l, &case, &d, &y, &mut failures);
    }
    assert_no_failures(&failures, SWEEP_CASES / common::SHARDS);
}

#[test]
fn upsample_conv_sweep_covers_every_kind() {
    let mut rng = Rng::new(0x0c0a_5ed0);
    let cases: Vec<Case> = (0..SWEEP_CASES)
        .map(|i| {
            let c = random_case(&mut rng, i);
            data(&mut rng, &c); // keep the draw sequence identical to the sweep
            c
        })
        .collect();
    let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    for mode in MODES {
        for a in ACTIVATIONS {
            assert!(
                has(&|c| c.params.upsample.mode == mode && c.activation == a),
                "{mode} {a}"
            );
        }
        for s in 1..=4 {
            assert!(has(
                &|c| c.params.upsample.mode == mode && c.params.upsample.scale.0 == s
            ));
            assert!(has(
                &|c| c.params.upsample.mode == mode && c.params.upsample.scale.1 == s
            ));
        }
    }
    for k in 1..=5 {
        assert!(has(&|c| c.weight[2] == k), "k_h {k}");
        assert!(has(&|c| c.weight[3] == k), "k_w {k}");
    }
    let conv = |c: &Case| c.params.conv;
    assert!(
        has(&|c| conv(c).stride.0 > 1 && conv(c).stride.1 > 1),
        "stride"
    );
    assert!(
        has(&|c| conv(c).stride.0 != conv(c).stride.1),
        "rectangular stride"
    );
    assert!(has(&|c| conv(c).dilation.0 > 1), "dilation");
    assert!(
        has(&|c| conv(c).padding.top != conv(c).padding.bottom
            && conv(c).padding.left != conv(c).padding.right),
        "asymmetric padding"
    );
    assert!(has(&|c| conv(c).groups > 1 && c.weight[1] > 1), "grouped");
    assert!(
        has(&|c| conv(c).groups > 1 && c.weight[1] == 1 && c.weight[0] > c.input[1]),
        "depthwise with multiplier"
    );
    assert!(has(&|c| c.weight[2] == 1 && c.weight[3] == 1), "pointwise");
    assert!(has(&|c| c.bias) && has(&|c| !c.bias), "bias and none");
    assert!(has(&|c| c.input[0] == 2), "batch 2");
    assert!(
        has(&|c| c.weight[0] / conv(c).groups as usize > 4),
        "several channel blocks"
    );
}

/// The sweep's distinct pipelines are what a cold Mesa shader cache pays for
/// (about a second each on lavapipe); this keeps the count from creeping up.
#[test]
fn upsample_conv_sweep_specialisations_stay_few() {
    let profile = wgconv::plan::AdapterProfile::new(
        wgpu::DeviceType::Cpu,
        wgpu::Backend::Vulkan,
        &wgpu::Limits::default(),
    );
    let mut rng = Rng::new(0x0c0a_5ed0);
    let keys: std::collections::BTreeSet<String> = (0..90)
        .map(|i| {
            let c = random_case(&mut rng, i);
            data(&mut rng, &c); // the sweep's draw sequence
            let s = UpsampleConv2dShape::new(c.input, c.weight, None, &c.params).unwrap();
            wgconv::plan::plan_upsample_conv2d(&s, &profile)
                .key
                .to_string()
        })
        .collect();
    assert!(keys.len() <= 60, "{} specialisations", keys.len());
}

/// The fused layer equals a materialised `Upsample` followed by `Conv2d`,
/// both on the GPU in one encoder. Each is within the reference's bound of
/// the exact result, so they differ by at most twice that bound.
#[test]
fn fused_equals_materialised_upsample_then_conv2d() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(23);
    let cases = [
        (
            UpsampleParams::nearest(2, 2),
            Conv2dParams::default().padding(Padding::uniform(1)),
            6,
            8,
            3,
        ),
        (
            UpsampleParams::bilinear(2, 2),
            Conv2dParams::default().padding(Padding::uniform(1)),
            6,
            8,
            3,
        ),
        (
            UpsampleParams::bilinear(3, 2),
            Conv2dParams::default()
                .stride(2, 1)
                .padding(Padding::new(2, 0, 1, 3))
                .dilation(1, 2)
                .groups(2),
            4,
            6,
            3,
        ),
        (
            UpsampleParams::nearest(4, 3),
            Conv2dParams::default().groups(5),
            5,
            10,
            5,
        ),
    ];
    for (up, conv, c_in, c_out, k) in cases {
        let case = Case {
            input: [2, c_in, 7, 6],
            weight: [c_out, c_in / conv.groups as usize, k, k],
            params: UpsampleConv2dParams { upsample: up, conv },
            bias: true,
            activation: Activation::Relu,
        };
        let d = data(&mut rng, &case);
        let fused = layer(engine, &case, &d);
        let upsample = Upsample::new(up).unwrap();
        let conv2d = Conv2d::new(
            engine,
            &d.w,
            case.weight,
            d.b.as_deref(),
            conv,
            case.activation,
        )
        .unwrap();
        let x = GpuTensor::upload(engine, &d.x, case.input).unwrap();
        let mut enc = engine.device().create_command_encoder(&Default::default());
        let a = fused.record(engine, &mut enc, &x).unwrap();
        let mid = upsample.record(engine, &mut enc, &x).unwrap();
        let b = conv2d.record(engine, &mut enc, &mid).unwrap();
        engine.queue().submit([enc.finish()]);
        assert_eq!(a.shape(), b.shape());
        let (a, b) = (a.read(engine).unwrap(), b.read(engine).unwrap());
        let r = reference_of(&case, &d);
        for (name, got) in [("fused", &a), ("materialised", &b)] {
            let cmp = compare(&r, case.activation, got, Tolerance::F32Accumulation).unwrap();
            assert!(cmp.passed, "{name} {case:?}: {cmp}");
        }
        // b as the reference, with the magnitude doubled: |a − b| ≤ |a − r| + |r − b|.
        let twice = RefOutput {
            values: b.iter().map(|&v| f64::from(v)).collect(),
            magnitude: r.magnitude.iter().map(|m| 2.0 * m).collect(),
            terms: r.terms,
        };
        let cmp = compare(&twice, case.activation, &a, Tolerance::F32Accumulation).unwrap();
        assert!(cmp.passed, "fused vs materialised {case:?}: {cmp}");
    }
}

/// A random nearest + stride-1 case (the sub-pixel path) of the family
/// `i % 4`: dense, grouped, depthwise (with multiplier), dilated; asymmetric
/// padding (including padding beyond the kernel's reach) and non-square
/// scales throughout, every activation.
fn random_sub_pixel_case(rng: &mut Rng, i: usize) -> Case {
    loop {
        let (groups, cpg_in, cpg_out) = match i % 4 {
            1 => (rng.range(2, 3), rng.range(2, 4), rng.range(1, 5)),
            2 => (rng.pick(&[3, 5, 8]), 1, rng.range(1, 3)),
            _ => (1, rng.range(1, 8), rng.pick(&[1, 2, 3, 5, 8, 16])),
        };
        let dilation = if i % 4 == 3 {
            (rng.range(1, 3), rng.range(2, 3))
        } else {
            (1, 1)
        };
        let (k_h, k_w) = (rng.range(1, 5), rng.range(1, 5));
        let padding = if rng.chance(60) {
            Padding::new(
                rng.range(0, 5),
                rng.range(0, 5),
                rng.range(0, 5),
                rng.range(0, 5),
            )
        } else {
            Padding::symmetric(dilation.0 * (k_h - 1) / 2, dilation.1 * (k_w - 1) / 2)
        };
        let (h, w) = if rng.chance(20) {
            rng.pick(&ODD_SIZES)
        } else {
            (rng.range(1, 8), rng.range(1, 9))
        };
        let case = Case {
            input: [
                rng.range(1, 2) as usize,
                (groups * cpg_in) as usize,
                h as usize,
                w as usize,
            ],
            weight: [
                (groups * cpg_out) as usize,
                cpg_in as usize,
                k_h as usize,
                k_w as usize,
            ],
            params: UpsampleConv2dParams {
                upsample: UpsampleParams::nearest(rng.range(1, 4), rng.range(1, 4)),
                conv: Conv2dParams::default()
                    .padding(padding)
                    .dilation(dilation.0, dilation.1)
                    .groups(groups),
            },
            bias: rng.chance(70),
            activation: ACTIVATIONS[i % 5],
        };
        if UpsampleConv2dShape::new(case.input, case.weight, None, &case.params).is_ok() {
            return case;
        }
    }
}

/// Nearest upsampling + stride-1 convolution runs as a transposed
/// convolution with a derived weight; it matches the (unchanged) reference
/// under the same tolerance, and through `record_into` too.
#[test]
fn sub_pixel_sweep_matches_reference() {
    // On the second engine, beside the first shard of the sweep above.
    let engine = gpu_or_skip!(1);
    let mut rng = Rng::new(0x5b_91c5);
    const CASES: usize = 60;
    let cases: Vec<Case> = (0..CASES)
        .map(|i| random_sub_pixel_case(&mut rng, i))
        .collect();
    let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    let conv = |c: &Case| c.params.conv;
    let scale = |c: &Case| c.params.upsample.scale;
    assert!(has(&|c| conv(c).dilation.0 > 1), "dilation");
    assert!(has(&|c| conv(c).groups > 1 && c.weight[1] > 1), "grouped");
    assert!(
        has(&|c| conv(c).groups > 1 && c.weight[1] == 1 && c.weight[0] > c.input[1]),
        "depthwise with multiplier"
    );
    assert!(
        has(&|c| conv(c).padding.top != conv(c).padding.bottom
            && conv(c).padding.left != conv(c).padding.right),
        "asymmetric padding"
    );
    assert!(
        has(&|c| conv(c).padding.top as usize > conv(c).dilation.0 as usize * (c.weight[2] - 1)),
        "begin padding beyond the kernel's reach"
    );
    assert!(has(&|c| scale(c) == (2, 3)), "scale (2, 3)");
    assert!(has(&|c| scale(c).0 != scale(c).1), "non-square scale");
    for a in ACTIVATIONS {
        assert!(has(&|c| c.activation == a), "{a}");
    }
    let mut failures = Vec::new();
    let mut sub_pixel = 0;
    for (i, case) in cases.iter().enumerate() {
        let d = data(&mut rng, case);
        let l = layer(engine, case, &d);
        sub_pixel += usize::from(l.is_sub_pixel());
        let x = GpuTensor::upload(engine, &d.x, case.input).unwrap();
        let shape = l.shape_for(case.input).unwrap();
        let y = if i % 3 == 0 {
            let y = GpuTensor::empty(engine, shape.output_shape()).unwrap();
            let mut enc = engine.device().create_command_encoder(&Default::default());
            l.record_into(engine, &mut enc, &x, &y).unwrap();
            engine.queue().submit([enc.finish()]);
            y
        } else {
            l.forward(engine, &x).unwrap()
        };
        assert_eq!(y.shape(), shape.output_shape());
        check_case(engine, &l, case, &d, &y, &mut failures);
    }
    assert_no_failures(&failures, CASES);
    // Only a dilation or padding far beyond the scale keeps the fused kernel.
    assert!(
        sub_pixel * 10 >= CASES * 9,
        "{sub_pixel} of {CASES} sub-pixel"
    );
}

/// The sub-pixel path and the fused kernel (forced) agree: each is within
/// the reference's bound of the exact result, so they differ by at most
/// twice that bound; the plan names the kernel each actually runs, and the
/// host weight stays the forward weight.
#[test]
fn sub_pixel_agrees_with_fused_kernel() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xf05e_d5b1);
    let cases = [
        // The DCGAN decoder's layer shape, smaller.
        (
            UpsampleParams::nearest(2, 2),
            Conv2dParams::default().padding(Padding::uniform(1)),
            16,
            8,
            3,
            Activation::Relu,
        ),
        (
            UpsampleParams::nearest(2, 3),
            Conv2dParams::default()
                .padding(Padding::new(2, 0, 1, 3))
                .dilation(1, 2)
                .groups(2),
            4,
            6,
            3,
            Activation::Silu,
        ),
        (
            UpsampleParams::nearest(3, 1),
            Conv2dParams::default()
                .groups(5)
                .padding(Padding::new(0, 1, 2, 0)),
            5,
            10,
            2,
            Activation::LeakyRelu(0.1),
        ),
        (
            UpsampleParams::nearest(4, 4),
            Conv2dParams::default()
                .padding(Padding::uniform(2))
                .dilation(2, 2),
            3,
            4,
            3,
            Activation::None,
        ),
        (
            UpsampleParams::nearest(1, 1),
            Conv2dParams::default().padding(Padding::uniform(1)),
            3,
            4,
            3,
            Activation::Relu6,
        ),
    ];
    for (up, conv, c_in, c_out, k, activation) in cases {
        let case = Case {
            input: [2, c_in, 5, 6],
            weight: [c_out, c_in / conv.groups as usize, k, k],
            params: UpsampleConv2dParams { upsample: up, conv },
            bias: true,
            activation,
        };
        let d = data(&mut rng, &case);
        let sub = layer(engine, &case, &d);
        let fused = UpsampleConv2d::new_fused(
            engine,
            &d.w,
            case.weight,
            d.b.as_deref(),
            case.params,
            case.activation,
        )
        .unwrap();
        assert!(sub.is_sub_pixel() && !fused.is_sub_pixel(), "{case:?}");
        assert!(sub
            .plan_for(case.input)
            .unwrap()
            .key
            .to_string()
            .starts_with("conv_transpose2d"));
        assert!(fused
            .plan_for(case.input)
            .unwrap()
            .key
            .to_string()
            .starts_with("conv2d_upsampled"));
        assert_eq!(sub.host_weight(), &d.w[..]);
        assert_eq!(sub.weight_shape(), case.weight);
        let x = GpuTensor::upload(engine, &d.x, case.input).unwrap();
        let (a, b) = (
            sub.forward(engine, &x).unwrap().read(engine).unwrap(),
            fused.forward(engine, &x).unwrap().read(engine).unwrap(),
        );
        let r = reference_of(&case, &d);
        for (name, got) in [("sub-pixel", &a), ("fused", &b)] {
            let cmp = compare(&r, case.activation, got, Tolerance::F32Accumulation).unwrap();
            assert!(cmp.passed, "{name} {case:?}: {cmp}");
        }
        let twice = RefOutput {
            values: b.iter().map(|&v| f64::from(v)).collect(),
            magnitude: r.magnitude.iter().map(|m| 2.0 * m).collect(),
            terms: r.terms,
        };
        let cmp = compare(&twice, case.activation, &a, Tolerance::F32Accumulation).unwrap();
        assert!(cmp.passed, "sub-pixel vs fused {case:?}: {cmp}");
    }
}

/// `γ_n = n·u / (1 − n·u)` with u = 2⁻²⁴ (as in `reference::compare`).
fn gamma(n: u64) -> f64 {
    let nu = n as f64 / (1u64 << 24) as f64;
    nu / (1.0 - nu)
}

/// Upsample + conv, then a conv, recorded into one encoder, one readback.
#[test]
fn chain_in_one_encoder_with_one_readback() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(31);
    let case = Case {
        input: [2, 4, 5, 7],
        weight: [8, 4, 3, 3],
        params: UpsampleConv2dParams {
            upsample: UpsampleParams::bilinear(2, 2),
            conv: Conv2dParams::default().padding(Padding::uniform(1)),
        },
        bias: true,
        activation: Activation::Relu,
    };
    let d = data(&mut rng, &case);
    let first = layer(engine, &case, &d);
    let (w2, b2) = (rng.vec(5 * 8 * 3 * 3), rng.vec(5));
    let p2 = Conv2dParams::default()
        .stride(2, 2)
        .padding(Padding::new(1, 0, 0, 1));
    let second = Conv2d::new(engine, &w2, [5, 8, 3, 3], Some(&b2), p2, Activation::None).unwrap();
    let x = GpuTensor::upload(engine, &d.x, case.input).unwrap();
    let mut enc = engine.device().create_command_encoder(&Default::default());
    let mid = first.record(engine, &mut enc, &x).unwrap();
    let out = second.record(engine, &mut enc, &mid).unwrap();
    engine.queue().submit([enc.finish()]);
    let gpu = out.read(engine).unwrap();

    let r1 = reference_of(&case, &d);
    let s2 = second.shape_for(mid.shape()).unwrap();
    let r2 = reference::conv(&s2, &r1.to_f32(), &w2, Some(&b2), Activation::None).unwrap();
    // The GPU's intermediate is within e1 = γ_{t1+1}·M1 + 4u|r1| (ReLU) of the exact r1,
    // which the reference rounded to f32 (u|r1| more). Layer 2 multiplies that by at most
    // Σ|w2| over one output channel's taps and adds its own γ_{t2+1}·M2. Maxima taken
    // separately still bound every element.
    let u = 1.0 / (1u64 << 24) as f64;
    let e1 = r1
        .magnitude
        .iter()
        .zip(&r1.values)
        .map(|(m, v)| gamma(r1.terms + 1) * m + 5.0 * u * v.abs())
        .fold(0f64, f64::max);
    let w2_sum = w2
        .chunks(8 * 9)
        .map(|c| c.iter().map(|w| f64::from(w.abs())).sum::<f64>())
        .fold(0f64, f64::max);
    let own = r2
        .magnitude
        .iter()
        .zip(&r2.values)
        .map(|(m, v)| gamma(r2.terms + 1) * m + 4.0 * u * v.abs())
        .fold(0f64, f64::max);
    let cmp = compare(
        &r2,
        Activation::None,
        &gpu,
        Tolerance::Fixed {
            abs: own + w2_sum * e1,
            rel: 0.0,
        },
    )
    .unwrap();
    assert!(cmp.passed, "{cmp}");
}

/// Pipelines are cached by kernel key: a second identical layer, and the
/// same upsampling again, compile nothing.
#[test]
fn second_identical_layers_compile_nothing() {
    // Its own engine: other tests in this binary compile pipelines concurrently.
    let _skip_without_gpu = gpu_or_skip!();
    let own = Engine::new().unwrap();
    let engine = &own;
    let mut rng = Rng::new(41);
    let case = Case {
        input: [1, 3, 5, 6],
        weight: [6, 3, 3, 3],
        params: UpsampleConv2dParams {
            upsample: UpsampleParams::bilinear(2, 3),
            conv: Conv2dParams::default().padding(Padding::uniform(1)),
        },
        bias: false,
        activation: Activation::Silu,
    };
    let d = data(&mut rng, &case);
    let x = GpuTensor::upload(engine, &d.x, case.input).unwrap();
    let up = Upsample::new(case.params.upsample).unwrap();
    layer(engine, &case, &d).forward(engine, &x).unwrap();
    up.forward(engine, &x).unwrap();
    let before = engine.pipelines_compiled();
    layer(engine, &case, &d).forward(engine, &x).unwrap();
    Upsample::new(case.params.upsample)
        .unwrap()
        .forward(engine, &x)
        .unwrap()
        .read(engine)
        .unwrap();
    assert_eq!(engine.pipelines_compiled(), before);
}

#[test]
fn bad_inputs_are_typed_errors() {
    // Parameters alone.
    assert!(matches!(
        Upsample::new(UpsampleParams::nearest(0, 2)),
        Err(Error::ZeroScale { h: 0, w: 2 })
    ));
    assert!(matches!(
        Upsample::new(UpsampleParams::bilinear(2, 1 << 24)),
        Err(Error::ScaleTooLarge {
            scale: 16_777_216,
            max: 8_388_608,
            ..
        })
    ));
    let up = Upsample::new(UpsampleParams::nearest(4, 4)).unwrap();
    assert!(matches!(
        up.shape_for([1, 1, 1 << 30, 1]),
        Err(Error::UpsampledExtentOverflow {
            extent: 1_073_741_824,
            scale: 4,
            ..
        })
    ));
    assert!(matches!(
        up.shape_for([4, 64, 1024, 1024]),
        Err(Error::UpsampledSizeOverflow { .. })
    ));
    assert!(matches!(
        up.shape_for([1, 0, 4, 4]),
        Err(Error::EmptyDimension { .. })
    ));

    let engine = gpu_or_skip!();
    let w = vec![0.5; 6 * 4 * 3 * 3];
    let p = |up| UpsampleConv2dParams {
        upsample: up,
        conv: Conv2dParams::default(),
    };
    let new = |w: &[f32], bias: Option<&[f32]>, params| {
        UpsampleConv2d::new(engine, w, [6, 4, 3, 3], bias, params, Activation::None)
    };
    assert!(matches!(
        new(&w, None, p(UpsampleParams::bilinear(2, 0))),
        Err(Error::ZeroScale { h: 2, w: 0 })
    ));
    assert!(matches!(
        new(&w[1..], None, p(UpsampleParams::nearest(2, 2))),
        Err(Error::DataLength { .. })
    ));
    assert!(matches!(
        new(&w, Some(&[0.0; 5]), p(UpsampleParams::nearest(2, 2))),
        Err(Error::BiasLength { len: 5, c_out: 6 })
    ));
    assert!(matches!(
        new(
            &w,
            None,
            UpsampleConv2dParams {
                upsample: UpsampleParams::nearest(2, 2),
                conv: Conv2dParams::default().groups(4),
            }
        ),
        Err(Error::ChannelsNotDivisible { .. })
    ));
    let l = new(&w, None, p(UpsampleParams::nearest(2, 1))).unwrap();
    let x3 = GpuTensor::upload(engine, &[0.0; 3 * 4 * 4], [1, 3, 4, 4]).unwrap();
    assert!(matches!(
        l.forward(engine, &x3),
        Err(Error::InputChannels {
            expected: 4,
            actual: 3
        })
    ));
    // 1x2 upsampled by (2, 1) is 2x2: a 3x3 kernel does not fit.
    let small = GpuTensor::upload(engine, &[0.0; 4 * 2], [1, 4, 1, 2]).unwrap();
    assert!(matches!(
        l.forward(engine, &small),
        Err(Error::KernelLargerThanInput {
            padded_input: 2,
            dilated_kernel: 3,
            ..
        })
    ));
    let x = GpuTensor::upload(engine, &[0.0; 4 * 4 * 4], [1, 4, 4, 4]).unwrap();
    let wrong = GpuTensor::empty(engine, [1, 6, 6, 6]).unwrap();
    let mut enc = engine.device().create_command_encoder(&Default::default());
    assert!(matches!(
        l.record_into(engine, &mut enc, &x, &wrong),
        Err(Error::BadShape { .. })
    ));
    assert!(matches!(
        up.record_into(engine, &mut enc, &x, &wrong),
        Err(Error::BadShape { .. })
    ));
    // The right shapes record fine: 4x4 -> 8x8 -> 6x2 (3x3 conv of 8x4).
    let right = GpuTensor::empty(engine, [1, 6, 6, 2]).unwrap();
    l.record_into(engine, &mut enc, &x, &right).unwrap();
    engine.queue().submit([enc.finish()]);
}
