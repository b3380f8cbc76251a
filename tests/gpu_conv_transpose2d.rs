//! Transposed convolution on the GPU vs the CPU reference (a scatter, so it
//! shares no index math with the GPU's gather): a seeded random sweep and
//! the cases other engines got wrong.

mod common;

use common::Rng;
use wgconv::reference::{self, compare, Tolerance};
use wgconv::{
    Activation, Conv2d, Conv2dParams, Conv2dShape, ConvTranspose2d, ConvTranspose2dParams, Engine,
    Error, GpuTensor, LayerOptions, Padding,
};

#[derive(Debug, Clone)]
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    params: ConvTranspose2dParams,
    bias: bool,
    activation: Activation,
}

const ACTIVATIONS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.2),
    Activation::Silu,
];

fn random_case(rng: &mut Rng, i: usize) -> Case {
    loop {
        let stride = (rng.range(1, 4), rng.range(1, 4));
        let dilation = if rng.chance(30) {
            (rng.range(1, 3), rng.range(1, 3))
        } else {
            (1, 1)
        };
        let (k_h, k_w) = (rng.range(1, 5), rng.range(1, 5));
        let (groups, cpg_in, cpg_out) = match i % 4 {
            // depthwise-transposed, with multiplier
            0 => {
                let c = rng.pick(&[3, 5, 8]);
                (c, 1, rng.range(1, 2))
            }
            1 => (
                rng.range(2, 3),
                rng.pick(&[1, 2, 4]),
                rng.pick(&[1, 3, 5, 7]),
            ),
            _ => (
                1,
                rng.pick(&[1, 3, 5, 8, 16]),
                rng.pick(&[1, 2, 4, 5, 7, 8, 16]),
            ),
        };
        // output_padding must be smaller than stride or dilation on its axis.
        let op = |s: u32, d: u32, rng: &mut Rng| {
            if rng.chance(40) {
                rng.range(0, s.max(d) - 1)
            } else {
                0
            }
        };
        let output_padding = (op(stride.0, dilation.0, rng), op(stride.1, dilation.1, rng));
        let padding = if rng.chance(40) {
            Padding::new(
                rng.range(0, 2),
                rng.range(0, 2),
                rng.range(0, 2),
                rng.range(0, 2),
            )
        } else {
            Padding::uniform(rng.range(0, 1))
        };
        let (h, w) = if rng.chance(20) {
            (1, rng.range(1, 9))
        } else {
            (rng.range(1, 9), rng.range(1, 11))
        };
        let n = if rng.chance(25) { 2 } else { 1 };
        let c_in = (groups * cpg_in) as usize;
        let case = Case {
            input: [n, c_in, h as usize, w as usize],
            weight: [c_in, cpg_out as usize, k_h as usize, k_w as usize],
            params: ConvTranspose2dParams {
                stride,
                padding,
                output_padding,
                dilation,
                groups,
            },
            bias: rng.chance(70),
            activation: rng.pick(&ACTIVATIONS),
        };
        if Conv2dShape::conv_transpose2d(case.input, case.weight, None, &case.params).is_ok() {
            return case;
        }
    }
}

fn run(engine: &Engine, rng: &mut Rng, case: &Case) -> Result<Vec<f32>, String> {
    run_with(engine, rng, case, None).map(|(y, _)| y)
}

/// Runs `case` with `LayerOptions::sub_pixel = sub_pixel` against the
/// reference; also returns whether the layer ran in sub-pixel form.
fn run_with(
    engine: &Engine,
    rng: &mut Rng,
    case: &Case,
    sub_pixel: Option<bool>,
) -> Result<(Vec<f32>, bool), String> {
    let shape = Conv2dShape::conv_transpose2d(case.input, case.weight, None, &case.params).unwrap();
    let x = rng.vec(shape.input_len());
    let w = rng.vec(shape.weight_len());
    let b = case.bias.then(|| rng.vec(shape.c_out as usize));
    let layer = ConvTranspose2d::with_options(
        engine,
        &w,
        case.weight,
        b.as_deref(),
        case.params,
        case.activation,
        LayerOptions {
            sub_pixel,
            ..LayerOptions::default()
        },
    )
    .unwrap();
    let gpu = layer
        .forward(engine, &GpuTensor::upload(engine, &x, case.input).unwrap())
        .unwrap()
        .read(engine)
        .unwrap();
    let r = reference::conv(&shape, &x, &w, b.as_deref(), case.activation).unwrap();
    let cmp = compare(&r, case.activation, &gpu, Tolerance::F32Accumulation).unwrap();
    if cmp.passed {
        Ok((gpu, layer.sub_pixel_on(engine, case.input).unwrap()))
    } else {
        let kernel = layer.kernel_name(engine, case.input).unwrap();
        Err(format!("{case:?} on {kernel}: {cmp}"))
    }
}

const SWEEP_CASES: usize = 240;

// The sweep runs as two tests, the even and the odd cases, each on its own
// engine so that their kernels compile in parallel (see `shard_engine`).
#[test]
fn random_sweep_matches_reference_even() {
    random_sweep(0);
}

#[test]
fn random_sweep_matches_reference_odd() {
    random_sweep(1);
}

fn random_sweep(shard: usize) {
    let engine = gpu_or_skip!(shard);
    // Cases and data from separate generators: the cases are exactly those
    // `sweep_covers_every_class` checks.
    let mut cases = Rng::new(0x7a05_e5ed);
    let mut rng = Rng::new(0xda7a_7a05 + shard as u64);
    let mut failures = Vec::new();
    for i in 0..SWEEP_CASES {
        let case = random_case(&mut cases, i);
        if i % common::SHARDS != shard {
            continue;
        }
        if let Err(e) = run(engine, &mut rng, &case) {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        SWEEP_CASES / common::SHARDS,
        failures.join("\n")
    );
}

/// The sub-pixel form (each output phase a forward convolution, then a
/// scatter) on every third sweep case, forced: it runs wherever the layer
/// has that form (no dilation, a stride above 1, non-negative phase
/// paddings) and the output has a row and column in every phase, and
/// matches the reference.
#[test]
fn sub_pixel_sweep_matches_reference() {
    // On the second engine, beside the odd shard of the sweep.
    let engine = gpu_or_skip!(1);
    let mut cases = Rng::new(0x7a05_e5ed);
    let mut rng = Rng::new(0x5b_7a05);
    let mut failures = Vec::new();
    let (mut ran, mut expected) = (0, 0);
    for i in 0..SWEEP_CASES {
        let case = random_case(&mut cases, i);
        if i % 3 != 0 {
            continue;
        }
        let [_, _, k_h, k_w] = case.weight;
        let shape =
            Conv2dShape::conv_transpose2d(case.input, case.weight, None, &case.params).unwrap();
        let (s_h, s_w) = case.params.stride;
        let every_phase = shape.h_out >= s_h && shape.w_out >= s_w;
        let form = wgconv::ops::sub_pixel::phases(&case.params, k_h as u32, k_w as u32).is_some();
        match run_with(engine, &mut rng, &case, Some(true)) {
            Ok((_, sub)) => {
                assert_eq!(sub, form && every_phase, "{case:?}");
                ran += usize::from(sub);
                expected += usize::from(form);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        ran >= 15 && ran * 10 >= expected * 8,
        "{ran} of {expected} ran sub-pixel"
    );
}

/// The suite's transposed layers at a quarter of their channels: both run
/// the gather by default (`plan::sub_pixel`) and in sub-pixel form only when
/// asked, `tconv4` (a 4×4 kernel, stride 2) with phases of equal sizes,
/// `tconv3` (3×3) with unequal ones; every form matches the reference.
#[test]
fn sub_pixel_form_only_when_chosen() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x5b_5e7);
    let cases = [
        Case {
            input: [1, 32, 8, 8],
            weight: [32, 16, 4, 4],
            params: ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1)),
            bias: true,
            activation: Activation::Relu,
        },
        Case {
            input: [1, 16, 8, 8],
            weight: [16, 16, 3, 3],
            params: ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1))
                .output_padding(1, 1),
            bias: true,
            activation: Activation::None,
        },
    ];
    for case in &cases {
        let (_, sub) = run_with(engine, &mut rng, case, None).unwrap();
        assert!(!sub, "{case:?}");
        let (_, forced) = run_with(engine, &mut rng, case, Some(true)).unwrap();
        assert!(forced, "{case:?}");
        let (_, gather) = run_with(engine, &mut rng, case, Some(false)).unwrap();
        assert!(!gather, "{case:?}");
    }
}

/// On CPU adapters the gather takes 32 output channels per invocation
/// where the group has them (`plan::weight_layout`), fewer in smaller
/// groups, with a row's taps unrolled (`KHU`: 2 at stride 2, 3 where a
/// dilation of 2 makes them step by 1): a ragged last block (40 channels),
/// groups of 24, a dilated layer and a 4×4 kernel; each matches the
/// reference.
#[test]
fn wide_channel_blocks_match_reference() {
    let engine = gpu_or_skip!();
    let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
    let mut rng = Rng::new(0x3c_b48);
    let p = ConvTranspose2dParams::default();
    let s2 = p.stride(2, 2);
    // (input, weight, params, COB4 and KHU on a CPU adapter)
    let cases = [
        (
            [1, 24, 9, 10],
            [24, 40, 3, 3],
            s2.padding(Padding::uniform(1)).output_padding(1, 1),
            (8, 2),
        ),
        ([2, 32, 6, 8], [32, 24, 3, 3], s2.groups(2), (6, 2)),
        (
            [1, 16, 7, 9],
            [16, 40, 3, 3],
            s2.dilation(2, 2).padding(Padding::uniform(2)),
            (8, 3),
        ),
        (
            [1, 20, 8, 8],
            [20, 36, 4, 4],
            s2.padding(Padding::uniform(1)),
            (8, 2),
        ),
    ];
    for (input, weight, params, (cob4, khu)) in cases {
        let case = Case {
            input,
            weight,
            params,
            bias: true,
            activation: Activation::Relu,
        };
        let (_, sub) = run_with(engine, &mut rng, &case, None).unwrap();
        assert!(!sub, "{case:?}");
        let shape = Conv2dShape::conv_transpose2d(input, weight, None, &params).unwrap();
        let layer = ConvTranspose2d::new(
            engine,
            &rng.vec(shape.weight_len()),
            weight,
            None,
            params,
            Activation::None,
        )
        .unwrap();
        let name = layer.kernel_name(engine, input).unwrap();
        if cpu {
            assert!(name.contains(&format!("-cob4{cob4}-")), "{case:?}: {name}");
            assert!(name.ends_with(&format!("-khu{khu}")), "{case:?}: {name}");
        }
    }
}

/// Where `S_W·PIX` output columns are whole aligned vec4s of rows of a
/// multiple of 4, each channel's columns are stored as vec4s (`VOUT`); where
/// input rows are a multiple of 4, the input columns are read as aligned
/// vec4s (`VIN`, with `VA` where the first column sits). The cases straddle
/// the conditions, with a last vec4 past the row end and a first before it.
/// The gather kernel with its weights read through subgroups, where each
/// output row is a whole number of subgroups (each subgroup then shares a
/// row and its kernel rows), and without (a narrow row; and the engine
/// without subgroups): strides 1, 2, 3, dilation with groups, batch, rows
/// whose kernel rows fall outside the input.
#[test]
fn subgroup_weight_loads_share_a_row() {
    let with = gpu_or_skip!();
    let without = gpu_or_skip!(1);
    let sg = wgconv::plan::subgroup_weights(&with.profile());
    let mut rng = Rng::new(0x5b9e);
    let p = ConvTranspose2dParams::default();
    let case = |input, weight, params| Case {
        input,
        weight,
        params,
        bias: true,
        activation: Activation::Relu6,
    };
    // (case, whether its rows are whole subgroups of 8)
    let cases = [
        // Rows of 128 = 64 column steps of 4: 16 tiles per row.
        (
            case(
                [1, 4, 5, 64],
                [4, 6, 3, 3],
                p.stride(2, 2)
                    .padding(Padding::uniform(1))
                    .output_padding(1, 1),
            ),
            true,
        ),
        (case([2, 3, 4, 62], [3, 5, 3, 3], p), true),
        (
            case(
                [1, 4, 6, 64],
                [4, 3, 3, 3],
                p.stride(2, 2)
                    .padding(Padding::uniform(2))
                    .dilation(2, 2)
                    .groups(2),
            ),
            true,
        ),
        // Stride 3: 2 column steps per tile, 32 steps per row.
        (
            case(
                [1, 2, 3, 32],
                [2, 4, 5, 5],
                p.stride(3, 3).padding(Padding::uniform(1)),
            ),
            true,
        ),
        // 16 column steps: 4 tiles per row.
        (
            case(
                [1, 4, 5, 16],
                [4, 6, 3, 3],
                p.stride(2, 2).padding(Padding::uniform(1)),
            ),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (c, whole) in &cases {
        let shape = Conv2dShape::conv_transpose2d(c.input, c.weight, None, &c.params).unwrap();
        for (engine, want) in [(with, if *whole { sg } else { 0 }), (without, 0)] {
            let planned = wgconv::plan::plan(&shape, c.activation, &engine.profile(), None);
            assert_eq!(planned.key.kernel, wgconv::Kernel::ConvTranspose2d);
            assert!(
                planned.key.consts.contains(&("SG", want)),
                "{c:?}: {}",
                planned.key
            );
            match run_with(engine, &mut rng, c, Some(false)) {
                Ok((_, sub_pixel)) => assert!(!sub_pixel),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vec4_loads_and_stores_where_aligned() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x70c4);
    let p = ConvTranspose2dParams::default();
    let case = |input, weight, params, activation| Case {
        input,
        weight,
        params,
        bias: true,
        activation,
    };
    let cases = [
        // Stride 2, k 4, pad 1: rows of 16 -> 32 (tconv4-like), and 10 -> 20 (the last
        // 16-column tile half past the row).
        (
            case(
                [1, 8, 5, 16],
                [8, 12, 4, 4],
                p.stride(2, 2).padding(Padding::uniform(1)),
                Activation::Relu,
            ),
            true,
            Some(3),
        ),
        (
            case(
                [2, 6, 4, 10],
                [6, 5, 4, 4],
                p.stride(2, 2).padding(Padding::uniform(1)),
                Activation::None,
            ),
            true,
            None,
        ),
        // Stride 2, k 3, pad 1, output padding 1 (tconv3-like); grouped; stride 1.
        (
            case(
                [1, 4, 6, 8],
                [4, 6, 3, 3],
                p.stride(2, 2)
                    .padding(Padding::uniform(1))
                    .output_padding(1, 1),
                Activation::Silu,
            ),
            true,
            Some(0),
        ),
        (
            case(
                [1, 8, 3, 6],
                [8, 3, 2, 2],
                p.stride(2, 2).groups(2),
                Activation::Relu6,
            ),
            true,
            None,
        ),
        (
            case([1, 4, 5, 9], [4, 4, 3, 3], p, Activation::None),
            false,
            None,
        ),
        // Pad 3 at stride 2 (pad_left / S_W = 1): the first column is the first of its vec4.
        (
            case(
                [1, 4, 3, 12],
                [4, 8, 4, 4],
                p.stride(2, 2).padding(Padding::uniform(3)),
                Activation::None,
            ),
            true,
            Some(0),
        ),
        // Stride 1, k 3 on rows of 12: columns from q0 − 2, output rows of 14.
        (
            case([2, 5, 4, 12], [5, 6, 3, 3], p, Activation::LeakyRelu(0.1)),
            false,
            Some(2),
        ),
        // Rows of 18 (stride 2, k 2 on 9 columns): not a multiple of 4.
        (
            case([1, 4, 3, 9], [4, 4, 2, 2], p.stride(2, 2), Activation::None),
            false,
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (c, vout, vin) in &cases {
        let shape = Conv2dShape::conv_transpose2d(c.input, c.weight, None, &c.params).unwrap();
        let profile = engine.profile();
        let planned = wgconv::plan::plan(&shape, c.activation, &profile, None);
        let has = |name: &str, v: u32| planned.key.consts.iter().any(|k| k.0 == name && k.1 == v);
        assert_eq!(has("VOUT", 1), *vout, "{c:?}: {}", planned.key);
        assert_eq!(has("VIN", 1), vin.is_some(), "{c:?}: {}", planned.key);
        if let Some(a) = vin {
            assert!(has("VA", *a), "{c:?}: {}", planned.key);
        }
        if let Err(e) = run(engine, &mut rng, c) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sweep_covers_every_class() {
    let mut rng = Rng::new(0x7a05_e5ed);
    let cases: Vec<Case> = (0..SWEEP_CASES).map(|i| random_case(&mut rng, i)).collect();
    let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    for s in 1..=4 {
        assert!(has(&|c| c.params.stride.0 == s), "stride {s}");
    }
    for k in 1..=5 {
        assert!(has(&|c| c.weight[2] == k), "kernel {k}");
    }
    for d in 1..=3 {
        assert!(has(&|c| c.params.dilation.1 == d), "dilation {d}");
    }
    assert!(has(&|c| c.params.output_padding.0 > 0), "output padding");
    assert!(
        has(&|c| c.params.groups > 1 && c.weight[0] == c.params.groups as usize),
        "depthwise"
    );
    assert!(
        has(&|c| c.params.groups > 1 && c.weight[0] > c.params.groups as usize),
        "grouped"
    );
    assert!(
        has(&|c| c.params.padding.top != c.params.padding.bottom),
        "asymmetric padding"
    );
    assert!(has(&|c| c.input[0] == 2), "batch 2");
    assert!(
        has(&|c| c.weight[1] == 5) && has(&|c| c.weight[1] == 7),
        "5 and 7 channels per group"
    );
    assert!(
        has(&|c| c.params.stride.0 > c.weight[2] as u32),
        "stride larger than the kernel"
    );
}

/// output_padding adds exactly one row/column at the bottom/right: the
/// shared part of the two outputs is identical and the shape grows by one.
#[test]
fn output_padding_adds_exactly_one_row_and_column() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(1);
    let (x, w, b) = (rng.vec(4 * 6 * 5), rng.vec(4 * 3 * 3 * 3), rng.vec(3));
    let base = ConvTranspose2dParams::default()
        .stride(2, 2)
        .padding(Padding::uniform(1));
    let out = |p: ConvTranspose2dParams| {
        let l =
            ConvTranspose2d::new(engine, &w, [4, 3, 3, 3], Some(&b), p, Activation::None).unwrap();
        let xt = GpuTensor::upload(engine, &x, [1, 4, 6, 5]).unwrap();
        let y = l.forward(engine, &xt).unwrap();
        (y.shape(), y.read(engine).unwrap())
    };
    let (s0, y0) = out(base);
    let (s1, y1) = out(base.output_padding(1, 1));
    assert_eq!(s0, [1, 3, 11, 9]);
    assert_eq!(s1, [1, 3, 12, 10]);
    for c in 0..3 {
        for h in 0..11 {
            for ww in 0..9 {
                assert_eq!(
                    y0[(c * 11 + h) * 9 + ww],
                    y1[(c * 12 + h) * 10 + ww],
                    "c{c} h{h} w{ww}"
                );
            }
        }
    }
}

/// Stride larger than the kernel: pixels no tap reaches hold exactly the
/// bias, then the activation.
#[test]
fn unreached_pixels_hold_exactly_bias_then_activation() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(2);
    let (x, w) = (rng.vec(2 * 4 * 4), rng.vec(2 * 3 * 2 * 2));
    let bias = [0.75f32, -0.5, 7.0];
    let p = ConvTranspose2dParams::default().stride(3, 3);
    for act in [
        Activation::None,
        Activation::Relu6,
        Activation::LeakyRelu(0.5),
    ] {
        let l = ConvTranspose2d::new(engine, &w, [2, 3, 2, 2], Some(&bias), p, act).unwrap();
        let y = l
            .forward(
                engine,
                &GpuTensor::upload(engine, &x, [1, 2, 4, 4]).unwrap(),
            )
            .unwrap();
        assert_eq!(y.shape(), [1, 3, 11, 11]);
        let y = y.read(engine).unwrap();
        for c in 0..3 {
            for h in 0..11 {
                for ww in 0..11 {
                    if h % 3 == 2 || ww % 3 == 2 {
                        let want = act.apply(f64::from(bias[c])) as f32;
                        assert_eq!(y[(c * 11 + h) * 11 + ww], want, "{act} c{c} h{h} w{ww}");
                    }
                }
            }
        }
    }
}

/// An output wider than 2048 columns (a 1-D upsampling of a long signal).
#[test]
fn output_wider_than_2048() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(3);
    let case = Case {
        input: [1, 5, 2, 1100],
        weight: [5, 7, 3, 4],
        params: ConvTranspose2dParams::default()
            .stride(1, 2)
            .padding(Padding::new(0, 1, 1, 1)),
        bias: true,
        activation: Activation::None,
    };
    let shape = Conv2dShape::conv_transpose2d(case.input, case.weight, None, &case.params).unwrap();
    assert!(shape.w_out > 2048, "{}", shape.w_out);
    run(engine, &mut rng, &case).unwrap();
}

/// A decoder chains conv and transposed conv on the GPU with no readback.
#[test]
fn decoder_chain_without_readback() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(4);
    let x = rng.vec(8 * 5 * 5);
    let (wt, bt) = (rng.vec(8 * 4 * 4 * 4), rng.vec(4));
    let (wc, bc) = (rng.vec(3 * 4 * 3 * 3), rng.vec(3));
    let tp = ConvTranspose2dParams::default()
        .stride(2, 2)
        .padding(Padding::uniform(1));
    let cp = Conv2dParams::default().padding(Padding::uniform(1));
    let up =
        ConvTranspose2d::new(engine, &wt, [8, 4, 4, 4], Some(&bt), tp, Activation::Relu).unwrap();
    let conv = Conv2d::new(engine, &wc, [3, 4, 3, 3], Some(&bc), cp, Activation::None).unwrap();
    let mut enc = engine.device().create_command_encoder(&Default::default());
    let mid = up
        .record(
            engine,
            &mut enc,
            &GpuTensor::upload(engine, &x, [1, 8, 5, 5]).unwrap(),
        )
        .unwrap();
    let out = conv.record(engine, &mut enc, &mid).unwrap();
    engine.queue().submit([enc.finish()]);
    let gpu = out.read(engine).unwrap();
    let s1 = up.shape_for([1, 8, 5, 5]).unwrap();
    let m = reference::conv(&s1, &x, &wt, Some(&bt), Activation::Relu)
        .unwrap()
        .to_f32();
    let s2 = conv.shape_for(s1.output_shape()).unwrap();
    let r = reference::conv(&s2, &m, &wc, Some(&bc), Activation::None).unwrap();
    // The intermediate's rounding (<= gamma_33 * 33 ~ 6.5e-5 per element) passes through
    // 36 weights of magnitude < 1 (<= 2.4e-3), plus the second layer's own rounding.
    let cmp = compare(
        &r,
        Activation::None,
        &gpu,
        Tolerance::Fixed {
            abs: 3e-3,
            rel: 0.0,
        },
    )
    .unwrap();
    assert!(cmp.passed, "{cmp}");
}

#[test]
fn bad_parameters_are_typed_errors() {
    let engine = gpu_or_skip!();
    let w = vec![0.0; 4 * 2 * 3 * 3];
    let bad = ConvTranspose2dParams::default()
        .stride(2, 2)
        .output_padding(2, 0);
    assert!(matches!(
        ConvTranspose2d::new(engine, &w, [4, 2, 3, 3], None, bad, Activation::None),
        Err(Error::OutputPaddingTooLarge { .. })
    ));
    let l = ConvTranspose2d::new(
        engine,
        &w,
        [4, 2, 3, 3],
        None,
        ConvTranspose2dParams::default().padding(Padding::uniform(2)),
        Activation::None,
    )
    .unwrap();
    let tiny = GpuTensor::upload(engine, &[0.0; 4], [1, 4, 1, 1]).unwrap();
    assert!(matches!(
        l.forward(engine, &tiny),
        Err(Error::NonPositiveOutput { .. })
    ));
    let wrong = GpuTensor::upload(engine, &[0.0; 3], [1, 3, 1, 1]).unwrap();
    assert!(matches!(
        l.forward(engine, &wrong),
        Err(Error::InputChannels {
            expected: 4,
            actual: 3
        })
    ));
}
