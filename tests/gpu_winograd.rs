//! The Winograd form (F(2×2, 3×3) and F(4×4, 3×3)) against the CPU
//! reference: odd sizes, channel counts that are not multiples of 4, tiles
//! overhanging the image, asymmetric and zero padding, batches, every
//! activation, dilation (run in phases), and the vec4 load/store variants; within the Winograd error
//! bound ([`wgconv::winograd::bound`]). Also which layers the planner runs
//! in Winograd form.

mod common;

use common::Rng;
use wgconv::plan::Winograd;
use wgconv::reference::{self, compare, Tolerance};
use wgconv::{
    Activation, Conv2d, Conv2dParams, Conv2dShape, Engine, GpuTensor, Kernel, LayerOptions, Padding,
};

struct Case {
    input: [usize; 4],
    c_out: usize,
    padding: Padding,
    activation: Activation,
    dilation: (u32, u32),
}

fn case(input: [usize; 4], c_out: usize, padding: Padding, activation: Activation) -> Case {
    Case {
        input,
        c_out,
        padding,
        activation,
        dilation: (1, 1),
    }
}

fn dilated(c: Case, dilation: (u32, u32)) -> Case {
    Case { dilation, ..c }
}

/// Runs `c` in Winograd form `m`: passes the Winograd bound, and returns
/// the comparison under it and under the direct form's bound.
fn run(engine: &Engine, c: &Case, m: Winograd, seed: u64) -> (String, f64, f64) {
    let params = Conv2dParams::default()
        .padding(c.padding)
        .dilation(c.dilation.0, c.dilation.1);
    let weight = [c.c_out, c.input[1], 3, 3];
    let shape = Conv2dShape::conv2d(c.input, weight, None, &params).unwrap();
    let mut rng = Rng::new(seed);
    let x = rng.vec(shape.input_len());
    let w = rng.vec(shape.weight_len());
    let b = rng.vec(c.c_out);
    let opts = LayerOptions {
        winograd: Some(m),
        ..LayerOptions::default()
    };
    let layer =
        Conv2d::with_options(engine, &w, weight, Some(&b), params, c.activation, opts).unwrap();
    let tile = match m {
        Winograd::F2 => 2,
        _ => 4,
    };
    assert_eq!(layer.winograd_on(engine, c.input).unwrap(), Some(tile));
    let name = layer.kernel_name(engine, c.input).unwrap();
    assert!(name.starts_with(&format!("winograd-f{tile}+")), "{name}");
    let y = layer
        .forward(engine, &GpuTensor::upload(engine, &x, c.input).unwrap())
        .unwrap()
        .read(engine)
        .unwrap();
    let r = layer.reference_on(engine, &x, c.input).unwrap();
    let cmp = compare(&r, c.activation, &y, Tolerance::F32Accumulation).unwrap();
    assert!(cmp.passed, "{:?} F{tile} on {name}: {cmp}", c.input);
    // The bound still catches an error of 1 % of the output's scale in one element.
    let scale = r.values.iter().fold(0f64, |m, v| m.max(v.abs()));
    let mut bad = y.clone();
    bad[y.len() / 2] += (0.01 * scale) as f32;
    let bad = compare(&r, c.activation, &bad, Tolerance::F32Accumulation).unwrap();
    assert!(!bad.passed, "{:?} F{tile}: {bad}", c.input);
    let direct = reference::conv(&shape, &x, &w, Some(&b), c.activation).unwrap();
    let dcmp = compare(&direct, c.activation, &y, Tolerance::F32Accumulation).unwrap();
    (name, cmp.worst_ratio, dcmp.worst_ratio)
}

#[test]
fn winograd_matches_reference() {
    let engine = gpu_or_skip!();
    let p1 = Padding::uniform(1);
    let cases = [
        // Rows a multiple of 4: vec4 loads (first column at 3) and stores.
        case([1, 16, 16, 16], 16, p1, Activation::None),
        // Odd channels and sizes, a batch; tiles overhang both edges.
        case([2, 19, 13, 11], 21, p1, Activation::Relu),
        // No padding: a 3×5 output, smaller than one F(4×4) tile.
        case([1, 32, 5, 7], 17, Padding::uniform(0), Activation::Relu6),
        // Asymmetric padding; vec4 loads with the first column at 2.
        case(
            [1, 24, 10, 12],
            16,
            Padding::new(0, 2, 1, 0),
            Activation::LeakyRelu(0.1),
        ),
        // Padding 2 (output larger than the input), SiLU.
        case([3, 16, 9, 12], 20, Padding::uniform(2), Activation::Silu),
        // Enough tiles for several GEMM rows of 64 tiles.
        case([1, 64, 40, 36], 48, p1, Activation::Relu),
        // Dilation, run in phases: equal and unequal, phases whose last tile
        // overhangs, a dilation almost as large as the image (aspp12's shape),
        // a batch, and a total tile count that is not a multiple of 4.
        dilated(
            case([1, 16, 20, 22], 16, Padding::uniform(2), Activation::Relu),
            (2, 2),
        ),
        dilated(
            case(
                [2, 17, 15, 13],
                19,
                Padding::new(3, 2, 1, 2),
                Activation::Silu,
            ),
            (3, 2),
        ),
        dilated(
            case([1, 24, 13, 13], 16, Padding::uniform(12), Activation::None),
            (12, 12),
        ),
        dilated(
            case([1, 16, 9, 7], 16, Padding::uniform(1), Activation::Relu6),
            (1, 3),
        ),
        // Phases in lane order (d_w, widths and left padding multiples of 4):
        // ctx8's form; unequal dilations with phase rows whose last tile
        // overhangs, a batch, asymmetric padding (the output 4 columns wider
        // than the input), every column phase group past the image's first
        // tile, and a total tile count that fills few GEMM rows.
        dilated(
            case([1, 16, 24, 24], 16, Padding::uniform(4), Activation::Relu),
            (4, 4),
        ),
        dilated(
            case(
                [2, 17, 13, 20],
                19,
                Padding::new(3, 4, 2, 8),
                Activation::LeakyRelu(0.2),
            ),
            (3, 8),
        ),
        dilated(
            case(
                [1, 20, 9, 12],
                24,
                Padding::new(2, 8, 2, 8),
                Activation::Silu,
            ),
            (2, 8),
        ),
        dilated(
            case(
                [1, 16, 5, 8],
                16,
                Padding::new(0, 4, 0, 4),
                Activation::Relu6,
            ),
            (1, 4),
        ),
    ];
    let mut worst = (0f64, 0f64);
    for (i, c) in cases.iter().enumerate() {
        for m in [Winograd::F2, Winograd::F4] {
            let (_, w, d) = run(engine, c, m, 0x3_1a9 + i as u64);
            if m == Winograd::F4 {
                worst = (worst.0.max(w), worst.1.max(d));
            }
        }
    }
    // The bound is not vacuous: the worst element uses a real part of it.
    assert!(worst.0 > 1e-4, "F4 worst ratio {}", worst.0);
    eprintln!(
        "F(4x4,3x3): worst error {:.3} of the Winograd bound, {:.3} of the direct form's",
        worst.0, worst.1
    );
}

#[test]
fn the_planner_runs_eligible_layers_in_winograd_form_on_cpu_adapters() {
    let engine = gpu_or_skip!();
    let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
    let p1 = Conv2dParams::default().padding(Padding::uniform(1));
    let layer = |c_in: usize, c_out: usize, params: Conv2dParams, opts: LayerOptions| {
        let w = vec![0.5f32; c_out * c_in / params.groups as usize * 9];
        let l = Conv2d::with_options(
            engine,
            &w,
            [c_out, c_in / params.groups as usize, 3, 3],
            None,
            params,
            Activation::None,
            opts,
        )
        .unwrap();
        // 48×48: 144 tiles of 4×4: enough for 128 channels, and with textures too few
        // for 64 (`plan::winograd_pays_off`).
        l.winograd_on(engine, [1, c_in, 48, 48]).unwrap()
    };
    let textures = wgconv::plan::texture_reads(&engine.profile());
    let none = LayerOptions::default();
    assert_eq!(layer(128, 128, p1, none), cpu.then_some(4));
    assert_eq!(layer(64, 32, p1, none), (cpu && !textures).then_some(4));
    // Dilated layers run in phases. With textures: scalar phases with at least
    // 128 channels (and 3/4 of the tiles' outputs real), lane order (d_w and the
    // left padding multiples of 4) with 64.
    assert_eq!(layer(128, 128, p1.dilation(2, 2), none), cpu.then_some(4));
    for c in [16, 64] {
        assert_eq!(
            layer(c, c, p1.dilation(2, 2), none),
            (cpu && !textures).then_some(4),
            "{c} channels"
        );
    }
    let p4 = Conv2dParams::default().padding(Padding::uniform(4));
    assert_eq!(layer(64, 64, p4.dilation(4, 4), none), cpu.then_some(4));
    assert_eq!(
        layer(32, 32, p4.dilation(4, 4), none),
        (cpu && !textures).then_some(4)
    );
    // Not eligible: too few channels, strided, grouped.
    assert_eq!(layer(8, 16, p1, none), None);
    assert_eq!(layer(16, 8, p1, none), None);
    assert_eq!(layer(16, 16, p1.stride(2, 2), none), None);
    assert_eq!(layer(32, 32, p1.groups(2), none), None);
    // A forced kernel family means the direct kernels; so does Off.
    let forced = LayerOptions {
        force_kernel: Some(Kernel::Conv2dTiled),
        ..none
    };
    assert_eq!(layer(16, 16, p1, forced), None);
    let off = LayerOptions {
        winograd: Some(Winograd::Off),
        ..none
    };
    assert_eq!(layer(16, 16, p1, off), None);
    // An explicit choice applies on any adapter, and only where eligible.
    let f2 = LayerOptions {
        winograd: Some(Winograd::F2),
        ..none
    };
    assert_eq!(layer(16, 16, p1, f2), Some(2));
    assert_eq!(layer(16, 16, p1.stride(2, 2), f2), None);
}

/// The planner's default Winograd form runs a shape only where it pays off
/// (`plan::winograd_pays_off`): a layer built with it runs small images on
/// the direct kernels, larger ones in Winograd form, and a pinned form
/// everywhere; every route matches the reference with its own bound.
#[test]
fn the_default_winograd_form_skips_shapes_with_too_few_tiles() {
    let engine = gpu_or_skip!();
    let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
    let params = Conv2dParams::default().padding(Padding::uniform(1));
    let mut rng = Rng::new(91);
    let w = rng.vec(128 * 128 * 9);
    let b = rng.vec(128);
    let build = |opts| {
        Conv2d::with_options(
            engine,
            &w,
            [128, 128, 3, 3],
            Some(&b),
            params,
            Activation::Relu,
            opts,
        )
        .unwrap()
    };
    let default = build(LayerOptions::default());
    let pinned = build(LayerOptions {
        winograd: Some(Winograd::F4),
        ..LayerOptions::default()
    });
    // 128 channels. 8×8: 4 tiles of 4×4; 32×32: 64; 2 images of 24×24: 72;
    // 16×9: 12, in Winograd form only without textures (the rules differ; see
    // `plan::winograd_pays_off`).
    let textures = wgconv::plan::texture_reads(&engine.profile());
    for (input, by_default) in [
        ([1, 128, 8, 8], false),
        ([1, 128, 32, 32], true),
        ([2, 128, 24, 24], true),
        ([1, 128, 16, 9], !textures),
        ([1, 128, 5, 7], false),
    ] {
        let got = default.winograd_on(engine, input).unwrap();
        assert_eq!(got, (cpu && by_default).then_some(4), "{input:?}");
        assert_eq!(
            pinned.winograd_on(engine, input).unwrap(),
            Some(4),
            "{input:?}"
        );
        let x = rng.vec(input.iter().product());
        for layer in [&default, &pinned] {
            let c = layer
                .verify(engine, &x, input, Tolerance::F32Accumulation)
                .unwrap();
            assert!(c.passed, "{input:?}: {c:?}");
        }
    }
}
