//! GPU vs CPU reference: a seeded random sweep over every forward
//! convolution kind, run on the planner's kernel and on every other kernel
//! family that can run it, plus targeted cases (separable filters, 1-D, the
//! depthwise-separable block, the pipeline cache, threads, errors).

mod common;

use common::Rng;
use wgconv::reference::{self, compare, Tolerance};
use wgconv::{
    Activation, BatchNorm, Conv2d, Conv2dParams, Conv2dShape, ConvTranspose2d,
    ConvTranspose2dParams, DepthwiseSeparable, Engine, EngineOptions, Error, GpuTensor, Kernel,
    LayerOptions, Padding,
};

#[derive(Debug, Clone)]
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    params: Conv2dParams,
    bias: bool,
    activation: Activation,
}

/// A case with a bias.
fn biased(input: [usize; 4], weight: [usize; 4], params: Conv2dParams, act: Activation) -> Case {
    Case {
        input,
        weight,
        params,
        bias: true,
        activation: act,
    }
}

const CHANNELS: [u32; 9] = [1, 3, 5, 6, 7, 8, 9, 16, 64];
const ODD_SIZES: [(u32, u32); 3] = [(1, 1), (1, 17), (13, 7)];
const ACTIVATIONS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.1),
    Activation::Silu,
];

/// A random valid case of the family `i % 6`: dense, grouped, depthwise
/// (with multiplier), pointwise, dilated, rectangular.
fn random_case(rng: &mut Rng, i: usize) -> Case {
    loop {
        let family = i % 6;
        let mut c_in = rng.pick(&CHANNELS);
        let (mut groups, mut cpg_out) = (1, rng.pick(&[1, 2, 3, 4, 5, 8, 16]));
        match family {
            1 => {
                // grouped: channels per group in {1, 2, 4, 8}
                let cpg = rng.pick(&[1, 2, 4, 8]);
                groups = rng.range(2, 4);
                c_in = cpg * groups;
                cpg_out = rng.pick(&[1, 2, 3, 4, 5, 8]);
            }
            2 => {
                // depthwise with channel multiplier 1..3
                c_in = rng.pick(&[3, 5, 7, 8, 9, 16]);
                groups = c_in;
                cpg_out = rng.range(1, 3);
            }
            _ => {}
        }
        let (mut k_h, mut k_w) = (rng.range(1, 5), rng.range(1, 5));
        match family {
            3 => (k_h, k_w) = (1, 1),
            5 => {
                if rng.chance(50) {
                    (k_h, k_w) = (1, rng.pick(&[3, 5, 7]))
                } else {
                    (k_h, k_w) = (rng.pick(&[3, 5, 7]), 1)
                }
            }
            _ => {}
        }
        let dil = if family == 4 {
            (rng.range(1, 4), rng.range(1, 4))
        } else if rng.chance(25) {
            (rng.range(1, 3), rng.range(1, 3))
        } else {
            (1, 1)
        };
        let stride = if rng.chance(60) {
            (1, 1)
        } else {
            (rng.range(1, 3), rng.range(1, 3))
        };
        let padding = if rng.chance(30) {
            Padding::new(
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
                rng.range(0, 3),
            )
        } else {
            let (ph, pw) = ((dil.0 * (k_h - 1)) / 2, (dil.1 * (k_w - 1)) / 2);
            Padding::symmetric(ph, pw)
        };
        let (h, w) = if rng.chance(25) {
            rng.pick(&ODD_SIZES)
        } else {
            (rng.range(1, 20), rng.range(1, 24))
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
            params: Conv2dParams {
                stride,
                padding,
                dilation: dil,
                groups,
            },
            bias: rng.chance(70),
            activation: rng.pick(&ACTIVATIONS),
        };
        if Conv2dShape::conv2d(case.input, case.weight, None, &case.params).is_ok() {
            return case;
        }
    }
}

/// Runs `case` on `kernel` (the planner's choice when `None`) and compares
/// with the reference. Returns the failure message, if any.
fn run(engine: &Engine, rng: &mut Rng, case: &Case, kernel: Option<Kernel>) -> Option<String> {
    run_tile(engine, rng, case, kernel, None)
}

/// [`run`] with the tile forced too (`LayerOptions::force_tile`).
fn run_tile(
    engine: &Engine,
    rng: &mut Rng,
    case: &Case,
    kernel: Option<Kernel>,
    tile: Option<wgconv::plan::Tile>,
) -> Option<String> {
    let options = LayerOptions {
        force_kernel: kernel,
        force_tile: tile,
        ..LayerOptions::default()
    };
    run_options(engine, rng, case, options).1
}

/// Runs `case` built with `options`: the kernel that ran, and the failure
/// message, if any.
fn run_options(
    engine: &Engine,
    rng: &mut Rng,
    case: &Case,
    options: LayerOptions,
) -> (String, Option<String>) {
    let shape = Conv2dShape::conv2d(case.input, case.weight, None, &case.params).unwrap();
    let x = rng.vec(shape.input_len());
    let w = rng.vec(shape.weight_len());
    let b = case.bias.then(|| rng.vec(shape.c_out as usize));
    let layer = Conv2d::with_options(
        engine,
        &w,
        case.weight,
        b.as_deref(),
        case.params,
        case.activation,
        options,
    )
    .unwrap();
    let kernel = layer.kernel_name(engine, case.input).unwrap();
    let gpu = layer
        .forward(engine, &GpuTensor::upload(engine, &x, case.input).unwrap())
        .unwrap()
        .read(engine)
        .unwrap();
    // The reference with the error magnitude of what ran (direct or Winograd).
    let r = layer.reference_on(engine, &x, case.input).unwrap();
    let cmp = compare(&r, case.activation, &gpu, Tolerance::F32Accumulation).unwrap();
    let failure = (!cmp.passed).then(|| format!("{case:?} on {kernel}: {cmp}"));
    (kernel, failure)
}

const SWEEP_CASES: usize = 320;

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
    // `sweep_covers_every_kind` checks, whatever kernels each one runs on.
    let mut cases = Rng::new(0x5eed_c0de);
    let mut rng = Rng::new(0xda7a_5eed + shard as u64);
    let mut failures = Vec::new();
    let mut runs = 0;
    for i in 0..SWEEP_CASES {
        let case = random_case(&mut cases, i);
        if i % common::SHARDS != shard {
            continue;
        }
        // The planner's kernel, the fallback that must run everything, and the
        // workgroup-memory GEMM (the GPU planner's choice; lavapipe's planner never
        // picks it, so it is forced here). Every third case also runs the kernels
        // the planner did not pick.
        let mut kernels = vec![None, Some(Kernel::Conv2dDirect), Some(Kernel::Conv2dShared)];
        if i % 3 == 0 {
            kernels.push(Some(Kernel::Conv2dTiled));
            if case.weight[1] == 1 && case.params.groups > 1 {
                kernels.push(Some(Kernel::Conv2dDepthwise));
            }
        }
        for k in kernels {
            runs += 1;
            if let Some(f) = run(engine, &mut rng, &case, k) {
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(runs >= 3 * SWEEP_CASES / common::SHARDS);
}

/// `conv2d_tiled`'s 32-channel blocks of at most 4 pixels on CPU adapters
/// (`plan::few_pixel_wide_blocks`): dilated rows split into blocks of equal
/// width, a last channel block partly past `c_out`, and 3×3 and 2×2 kernels
/// with at least 128 output channels, strided or not, against the reference. On
/// other adapters the same shapes run on their own plans.
#[test]
fn wide_blocks_of_few_pixels_match_reference() {
    let engine = gpu_or_skip!();
    let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
    let mut rng = Rng::new(0x32c4);
    let p = Conv2dParams::default();
    let cases = [
        // 33 wide at dilation 6: 6 columns a phase as 2 blocks of 3; 40 channels.
        (
            [1, 24, 33, 33],
            [40, 24, 3, 3],
            p.padding(Padding::uniform(6)).dilation(6, 6),
            "pix3",
        ),
        // 20 wide at dilation 2: 10 columns a phase as 3 blocks of 4 (2 slots past the
        // row), asymmetric padding, batch 2.
        (
            [2, 16, 9, 20],
            [36, 16, 3, 3],
            p.padding(Padding::new(1, 2, 3, 2)).dilation(2, 2),
            "pix4",
        ),
        // Stride 2 with 136 channels (a last block of 8), odd sizes, asymmetric padding.
        (
            [1, 8, 15, 13],
            [136, 8, 3, 3],
            p.stride(2, 2).padding(Padding::new(1, 0, 1, 2)),
            "pix4",
        ),
        // 2×2 at stride 2 with 128 channels.
        ([1, 12, 10, 18], [128, 12, 2, 2], p.stride(2, 2), "pix4"),
        // 3×3 at stride 1 with 160 channels on a small image (too few tiles for
        // Winograd): 11 columns as 3 blocks of 4.
        (
            [1, 16, 9, 11],
            [160, 16, 3, 3],
            p.padding(Padding::uniform(1)),
            "pix4",
        ),
    ];
    let mut failures = Vec::new();
    for (input, weight, params, pix) in cases {
        let case = biased(input, weight, params, Activation::Relu);
        if cpu {
            let shape = Conv2dShape::conv2d(input, weight, None, &params).unwrap();
            let key = wgconv::plan::plan(&shape, Activation::Relu, &engine.profile(), None).key;
            let name = key.to_string();
            assert!(
                name.contains("cob48") && name.contains(pix),
                "{case:?}: {name}"
            );
        }
        if let Some(f) = run(engine, &mut rng, &case, None) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Layers planned for the first result (`plan::Goal::FirstResult`): no
/// Winograd form, and on CPU adapters the compact tile of 4 columns by 2
/// vec4s of channels (1 where a group has fewer), against the reference:
/// a Winograd-eligible layer in a batch of 2, stride 2 with a last channel
/// block half past `c_out`, dilation with asymmetric padding, groups, an
/// odd pointwise layer, a 7×7 stem, a row narrower than the tile, and a
/// transposed layer. On other adapters the same layers run on the planner's
/// tiles, still without Winograd.
#[test]
fn first_result_plans_match_reference() {
    let engine = gpu_or_skip!();
    let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
    let mut rng = Rng::new(0xf1257);
    let p = Conv2dParams::default();
    let pad1 = p.padding(Padding::uniform(1));
    let options = LayerOptions {
        goal: wgconv::plan::Goal::FirstResult,
        ..LayerOptions::default()
    };
    let cases = [
        ([2, 32, 20, 20], [32, 32, 3, 3], pad1, "pix4-cob42"),
        (
            [1, 8, 15, 13],
            [140, 8, 3, 3],
            pad1.stride(2, 2),
            "pix4-cob42",
        ),
        (
            [1, 16, 11, 17],
            [36, 16, 3, 3],
            p.padding(Padding::new(2, 1, 0, 3)).dilation(2, 2),
            // 17 columns: phases of 9 and 8 as blocks of 3.
            "pix3-cob42",
        ),
        ([1, 16, 9, 9], [16, 4, 3, 3], pad1.groups(4), "pix4-cob41"),
        ([1, 9, 7, 23], [13, 9, 1, 1], p, "pix4-cob42"),
        (
            [1, 3, 32, 32],
            [24, 3, 7, 7],
            p.stride(2, 2).padding(Padding::uniform(3)),
            "pix4-cob42",
        ),
        ([1, 16, 12, 2], [24, 16, 3, 3], pad1, "pix2-cob42"),
    ];
    let mut failures = Vec::new();
    for (input, weight, params, tile) in cases {
        let case = biased(input, weight, params, Activation::Relu);
        let (kernel, failure) = run_options(engine, &mut rng, &case, options);
        assert!(!kernel.starts_with("winograd"), "{case:?}: {kernel}");
        if cpu {
            assert!(kernel.contains(tile), "{case:?}: {kernel}");
        }
        failures.extend(failure);
    }
    // A transposed layer: the gather kernel with the compact tile.
    let params = ConvTranspose2dParams::default()
        .stride(2, 2)
        .padding(Padding::uniform(1));
    let (input, weight) = ([1, 24, 9, 7], [24, 20, 4, 4]);
    let x = rng.vec(input.iter().product());
    let w = rng.vec(weight.iter().product());
    let b = rng.vec(weight[1]);
    let layer = ConvTranspose2d::with_options(
        engine,
        &w,
        weight,
        Some(&b),
        params,
        Activation::None,
        options,
    )
    .unwrap();
    let kernel = layer.kernel_name(engine, input).unwrap();
    assert!(kernel.starts_with("conv_transpose2d"), "{kernel}");
    if cpu {
        assert!(kernel.contains("pix4-cob42"), "{kernel}");
    }
    let gpu = layer
        .forward(engine, &GpuTensor::upload(engine, &x, input).unwrap())
        .unwrap()
        .read(engine)
        .unwrap();
    let r = layer.reference_on(engine, &x, input).unwrap();
    let cmp = compare(&r, Activation::None, &gpu, Tolerance::F32Accumulation).unwrap();
    if !cmp.passed {
        failures.push(format!("transposed {input:?} on {kernel}: {cmp}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `conv2d_tiled` with its weights read through subgroups (where the
/// adapter has fixed-size subgroups) and without, on the shapes where the
/// lanes of one subgroup differ: fewer items than a subgroup (the dead lanes
/// must stay for the broadcasts and store nothing), rows of a subgroup's
/// lanes with different kernel-row ranges (padding, dilation), one-row
/// kernels with padding rows, stride, groups, batch. One-row kernels with an
/// even channel count per group take 2 channels per step on CPU adapters.
#[test]
fn subgroup_weight_loads_at_the_edges() {
    let with = gpu_or_skip!();
    let without = gpu_or_skip!(1);
    let sg = wgconv::plan::subgroup_weights(&with.profile());
    if sg == 0 {
        eprintln!("note: the adapter has no fixed-size subgroups; only the plain loads run");
    }
    assert_eq!(wgconv::plan::subgroup_weights(&without.profile()), 0);
    let mut rng = Rng::new(0x5b9);
    let p = Conv2dParams::default();
    let cases = [
        // 7 items (one per output row): one subgroup, partly past the end.
        ([1, 16, 7, 7], [24, 16, 1, 1], p),
        // Pointwise with an odd channel count (one channel per step) and grouped with 6
        // per group (two per step).
        ([1, 5, 3, 8], [8, 5, 1, 1], p),
        ([1, 12, 4, 16], [8, 6, 1, 1], p.groups(2)),
        // 3 items, batch 2.
        ([2, 8, 3, 5], [8, 8, 1, 1], p),
        // 1x1 with padding rows: some lanes have no kernel row in the image.
        (
            [1, 8, 3, 12],
            [12, 8, 1, 1],
            p.padding(Padding::new(2, 0, 1, 0)),
        ),
        // 3x3, rows of 12 (two tiles per row): a subgroup spans 4 output rows whose
        // kernel-row ranges differ at the top and bottom.
        ([1, 8, 5, 12], [16, 8, 3, 3], p.padding(Padding::uniform(1))),
        (
            [1, 4, 6, 6],
            [8, 4, 3, 3],
            p.padding(Padding::uniform(2)).dilation(2, 2),
        ),
        // Stride 2, 5x5, asymmetric padding, grouped.
        (
            [1, 6, 9, 10],
            [12, 3, 5, 5],
            p.stride(2, 2).padding(Padding::new(2, 1, 0, 3)).groups(2),
        ),
        // 7 taps per row and 2 channel vec4s: 14 weights, two loads per subgroup.
        (
            [1, 3, 12, 16],
            [8, 3, 7, 7],
            p.stride(2, 2).padding(Padding::uniform(3)),
        ),
    ];
    for (input, weight, params) in cases {
        let case = biased(input, weight, params, Activation::Relu);
        let kernel = Kernel::Conv2dTiled;
        for (engine, want) in [(with, sg), (without, 0)] {
            let shape = Conv2dShape::conv2d(input, weight, None, &params).unwrap();
            let key =
                wgconv::plan::plan(&shape, Activation::Relu, &engine.profile(), Some(kernel)).key;
            assert_eq!(key.kernel, kernel);
            assert!(key.consts.contains(&("SG", want)), "{key}");
            let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
            let cu = if cpu && weight[2] == 1 && weight[1] % 2 == 0 {
                2
            } else {
                1
            };
            assert!(key.consts.contains(&("CU", cu)), "{key}");
            if let Some(f) = run(engine, &mut rng, &case, Some(kernel)) {
                panic!("{f}");
            }
        }
    }
}

/// `conv2d_depthwise` with 8 output rows per invocation (stride 1): a
/// partial last tile of rows, a channel multiplier, dilation, batch. The
/// 8×8 tile is forced: on planes this small the planner takes smaller tiles
/// (`plan::DEPTHWISE_MIN_TILES`).
#[test]
fn depthwise_eight_rows_at_stride_one() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xd8);
    let p = Conv2dParams::default();
    let cases = [
        (
            [1, 4, 13, 16],
            [4, 1, 3, 3],
            p.padding(Padding::uniform(1)).groups(4),
        ),
        (
            [2, 3, 9, 8],
            [6, 1, 3, 3],
            p.padding(Padding::uniform(1)).groups(3),
        ),
        (
            [1, 2, 17, 12],
            [2, 1, 3, 3],
            p.padding(Padding::uniform(2)).dilation(2, 2).groups(2),
        ),
    ];
    for (input, weight, params) in cases {
        let shape = Conv2dShape::conv2d(input, weight, None, &params).unwrap();
        let tile = wgconv::plan::Tile::new(8, 8);
        let key = wgconv::plan::plan_with(
            &shape,
            Activation::Relu6,
            &engine.profile(),
            None,
            Some(tile),
        )
        .key;
        assert_eq!(key.kernel, Kernel::Conv2dDepthwise);
        assert!(key.consts.contains(&("PH", 8)), "{key}");
        let case = Case {
            input,
            weight,
            params,
            bias: true,
            activation: Activation::Relu6,
        };
        if let Some(f) = run_tile(engine, &mut rng, &case, None, Some(tile)) {
            panic!("{f}");
        }
    }
}

/// `conv2d_depthwise` carries input rows from one output row of its tile to
/// the next where `S_H` is a multiple of `D_H` (`DepthwiseSpec::row_step`):
/// every way that can go (one or two rows loaded a step, three carried,
/// none carried with and without skipped rows), with asymmetric padding, a
/// partial last tile, a multiplier, batch 2 and vec4 and scalar loads. The
/// tiles are forced so that every case has several rows.
#[test]
fn depthwise_carries_rows_across_strides_and_dilations() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xca);
    let p = Conv2dParams::default();
    // (input, weight, stride, dilation, padding (top, left, bottom, right), tile (pix, ph))
    type CarryCase = (
        [usize; 4],
        [usize; 4],
        (u32, u32),
        (u32, u32),
        [u32; 4],
        (u32, u32),
    );
    let cases: [CarryCase; 12] = [
        (
            [1, 3, 21, 16],
            [3, 1, 3, 3],
            (1, 1),
            (1, 1),
            [1, 1, 1, 1],
            (8, 8),
        ),
        (
            [1, 4, 23, 32],
            [4, 1, 3, 3],
            (2, 2),
            (1, 1),
            [1, 1, 0, 1],
            (8, 4),
        ),
        (
            [2, 2, 19, 13],
            [4, 1, 3, 3],
            (2, 1),
            (2, 1),
            [2, 2, 1, 1],
            (4, 4),
        ),
        (
            [1, 3, 22, 20],
            [3, 1, 3, 3],
            (1, 1),
            (2, 2),
            [2, 1, 2, 2],
            (8, 8),
        ),
        (
            [1, 2, 25, 18],
            [2, 1, 5, 5],
            (2, 2),
            (1, 1),
            [2, 2, 2, 2],
            (4, 4),
        ),
        (
            [1, 2, 29, 17],
            [2, 1, 4, 3],
            (3, 1),
            (1, 1),
            [0, 1, 2, 1],
            (4, 4),
        ),
        (
            [1, 3, 37, 15],
            [6, 1, 5, 3],
            (4, 1),
            (2, 1),
            [3, 1, 1, 1],
            (4, 4),
        ),
        (
            [1, 2, 26, 16],
            [2, 1, 2, 3],
            (3, 1),
            (1, 1),
            [0, 0, 1, 1],
            (4, 4),
        ),
        // 7×7 at 8 rows: a row of 8 pixels fits MAX_DEPTHWISE_FMAS.
        (
            [1, 2, 30, 20],
            [2, 1, 7, 7],
            (1, 1),
            (1, 1),
            [3, 3, 3, 3],
            (8, 8),
        ),
        // 96 channels of multiplier 2: two grid units of 48 channels (CB), each
        // spanning 24 groups.
        (
            [1, 48, 13, 12],
            [96, 1, 3, 3],
            (1, 1),
            (1, 1),
            [1, 1, 1, 1],
            (4, 4),
        ),
        // 16 rows (MAX_PH), with a partial last tile: carried at stride 1 and 2.
        (
            [1, 3, 40, 16],
            [3, 1, 3, 3],
            (1, 1),
            (1, 1),
            [1, 1, 1, 1],
            (8, 16),
        ),
        (
            [1, 2, 45, 24],
            [2, 1, 3, 3],
            (2, 2),
            (1, 1),
            [1, 1, 1, 1],
            (8, 16),
        ),
    ];
    let mut vin = [false; 2];
    for (input, weight, stride, dilation, [t, l, b, r], (pix, ph)) in cases {
        let params = p
            .stride(stride.0, stride.1)
            .dilation(dilation.0, dilation.1)
            .padding(Padding::new(t, l, b, r))
            .groups(input[1] as u32);
        let shape = Conv2dShape::conv2d(input, weight, None, &params).unwrap();
        let tile = wgconv::plan::Tile::new(pix, ph);
        let key = wgconv::plan::plan_with(
            &shape,
            Activation::Relu,
            &engine.profile(),
            None,
            Some(tile),
        )
        .key;
        assert_eq!(key.kernel, Kernel::Conv2dDepthwise, "{key}");
        assert!(key.is("PH", ph), "{key}");
        vin[usize::from(key.is("VIN", 1))] = true;
        assert!(
            !shape.h_out.is_multiple_of(ph) || shape.h_out < 2 * ph,
            "{key}: no partial tile"
        );
        let case = biased(input, weight, params, Activation::Relu);
        if let Some(f) = run_tile(engine, &mut rng, &case, None, Some(tile)) {
            panic!("{f}");
        }
    }
    assert_eq!(vin, [true, true], "scalar and vec4 loads");
}

/// `conv2d_shared` on the shapes its tiling is most likely to get wrong: K
/// not a multiple of the K step (and shorter than one), channels not a
/// multiple of the N tile, odd grouped channels, stride with dilation and
/// asymmetric padding, 1×1, batch 2, outputs narrower or shorter than the M
/// tile, several M and N tiles.
#[test]
fn shared_kernel_targeted_cases() {
    let engine = gpu_or_skip!();
    let profile = engine.profile();
    let mut rng = Rng::new(0x54a7ed);
    let case = biased;
    let pad1 = Conv2dParams::default().padding(Padding::uniform(1));
    let cases = [
        // K = 3·3·3 = 27: one full K step and a partial one.
        case([1, 3, 17, 19], [20, 3, 3, 3], pad1, Activation::Relu),
        // K = 5·1·3 = 15: less than one K step.
        case(
            [1, 5, 9, 30],
            [16, 5, 1, 3],
            Conv2dParams::default(),
            Activation::None,
        ),
        // K = 7·5·5 = 175, c_out 100: two N tiles of 64, the second partial.
        case(
            [1, 7, 21, 23],
            [100, 7, 5, 5],
            Conv2dParams::default().padding(Padding::uniform(2)),
            Activation::Silu,
        ),
        // c_out 17 (TN = 2: 32-channel tile, 15 idle), 70 (64 + 6).
        case([1, 16, 12, 12], [17, 16, 3, 3], pad1, Activation::Relu6),
        case(
            [1, 32, 20, 20],
            [70, 32, 3, 3],
            pad1,
            Activation::LeakyRelu(0.1),
        ),
        // Grouped, odd channels per group: 3 groups of 5 -> 7, 2 groups of 9 -> 33.
        case(
            [1, 15, 11, 13],
            [21, 5, 3, 3],
            pad1.groups(3),
            Activation::None,
        ),
        case(
            [2, 18, 10, 9],
            [66, 9, 3, 3],
            pad1.groups(2),
            Activation::Relu,
        ),
        // Stride 2, dilation (2, 3), asymmetric padding.
        case(
            [1, 6, 23, 29],
            [24, 6, 3, 3],
            Conv2dParams::default()
                .stride(2, 2)
                .dilation(2, 3)
                .padding(Padding::new(1, 2, 0, 3)),
            Activation::None,
        ),
        case(
            [2, 4, 16, 17],
            [40, 4, 3, 2],
            Conv2dParams::default()
                .stride(2, 3)
                .dilation(3, 2)
                .padding(Padding::new(3, 0, 2, 1)),
            Activation::Silu,
        ),
        // 1x1, stride 1 and 2.
        case(
            [1, 32, 14, 15],
            [48, 32, 1, 1],
            Conv2dParams::default(),
            Activation::None,
        ),
        case(
            [1, 24, 15, 15],
            [80, 24, 1, 1],
            Conv2dParams::default().stride(2, 2),
            Activation::Relu,
        ),
        // Batch 2, several M tiles (37·41 pixels) and a 64-wide N tile.
        case([2, 8, 37, 41], [64, 8, 3, 3], pad1, Activation::None),
        // Outputs smaller than the M tile: 3 pixels, 1 pixel, 1x17.
        case(
            [1, 9, 5, 3],
            [32, 9, 3, 3],
            Conv2dParams::default().padding(Padding::new(0, 1, 0, 1)),
            Activation::Relu,
        ),
        case(
            [1, 16, 1, 1],
            [20, 16, 1, 1],
            Conv2dParams::default(),
            Activation::None,
        ),
        case(
            [2, 5, 1, 17],
            [18, 5, 1, 5],
            Conv2dParams::default().padding(Padding::new(0, 2, 0, 2)),
            Activation::Relu6,
        ),
        // Depthwise forced onto it (K = 9, one input channel per group).
        case(
            [1, 8, 9, 9],
            [16, 1, 3, 3],
            pad1.groups(8),
            Activation::None,
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let shape = Conv2dShape::conv2d(c.input, c.weight, None, &c.params).unwrap();
        let planned =
            wgconv::plan::plan(&shape, c.activation, &profile, Some(Kernel::Conv2dShared));
        assert_eq!(planned.key.kernel, Kernel::Conv2dShared, "{c:?}");
        failures.extend(run(engine, &mut rng, c, Some(Kernel::Conv2dShared)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Pointwise layers run each plane as one row (`plan::flat_shape`); where
/// that row is not a multiple of 4 floats, `conv2d_tiled` reads it as the
/// vec4s that hold each tile's columns, shifted into place (`VIN = 2`). The
/// cases put the first column of a row at every position of its vec4 (planes
/// of 49, 25, 9 and 30 floats over several channels and images), end rows
/// inside a tile's last vec4s, and group the channels.
#[test]
fn shifted_input_reads_planes_of_any_width() {
    let engine = gpu_or_skip!();
    let profile = engine.profile();
    let mut rng = Rng::new(0x5f1d);
    let case = biased;
    let pw = Conv2dParams::default();
    // (case, shifted reads planned)
    let cases = [
        (
            case([1, 20, 7, 7], [36, 20, 1, 1], pw, Activation::Relu6),
            true,
        ),
        (
            case([2, 12, 5, 5], [8, 12, 1, 1], pw, Activation::None),
            true,
        ),
        (
            case([3, 4, 3, 3], [40, 4, 1, 1], pw, Activation::Silu),
            true,
        ),
        (
            case([1, 8, 3, 10], [8, 8, 1, 1], pw, Activation::None),
            true,
        ),
        (
            case([2, 8, 5, 5], [12, 4, 1, 1], pw.groups(2), Activation::Relu),
            true,
        ),
        // Planes of one float: tiles of one pixel read scalars.
        (
            case([1, 16, 1, 1], [8, 16, 1, 1], pw, Activation::None),
            false,
        ),
        // Groups of 2 channels of 25 floats: windows would not be whole vec4s.
        (
            case([1, 8, 5, 5], [8, 2, 1, 1], pw.groups(4), Activation::None),
            false,
        ),
        // Not pointwise: stride 2 (scalar loads as before).
        (
            case(
                [1, 8, 7, 7],
                [8, 8, 1, 1],
                pw.stride(2, 2),
                Activation::None,
            ),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (c, shifted) in &cases {
        let shape = Conv2dShape::conv2d(c.input, c.weight, None, &c.params).unwrap();
        let tiled = Some(Kernel::Conv2dTiled);
        let planned = wgconv::plan::plan(&shape, c.activation, &profile, tiled);
        let vin = planned
            .key
            .consts
            .iter()
            .find(|k| k.0 == "VIN")
            .map(|k| k.1);
        assert_eq!(vin == Some(2), *shifted, "{c:?}: {}", planned.key);
        failures.extend(run(engine, &mut rng, c, tiled));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `conv2d_tiled` and `conv2d_depthwise` read their input columns as aligned
/// vec4s (`VIN`) where every tile starts at the same place in a vec4 and
/// rows are a multiple of 4 floats; the cases straddle each condition and
/// every position of the first column in its vec4 (`VA`).
#[test]
fn vec4_input_loads_where_aligned() {
    let engine = gpu_or_skip!();
    let profile = engine.profile();
    let mut rng = Rng::new(0x7ec4);
    let case = biased;
    let pw = Conv2dParams::default();
    let pad = |l, r| pw.padding(Padding::new(1, l, 0, r));
    let tiled = Kernel::Conv2dTiled;
    let dw = Kernel::Conv2dDepthwise;
    let cases = [
        // Pointwise, rows of 12 and 20: the last tile partly past the row.
        (
            case([1, 16, 5, 12], [24, 16, 1, 1], pw, Activation::Relu),
            tiled,
            Some(0),
            true,
        ),
        (
            case([2, 8, 3, 20], [8, 8, 1, 1], pw, Activation::None),
            tiled,
            Some(0),
            true,
        ),
        // Left padding 1..4 (first column at 3, 2, 1, 0 in its vec4; padding 4 makes the
        // first vec4 all padding), odd right padding, grouped.
        (
            case([1, 6, 4, 16], [10, 6, 3, 3], pad(1, 1), Activation::Silu),
            tiled,
            Some(3),
            true,
        ),
        (
            case([1, 6, 4, 16], [10, 6, 1, 3], pad(2, 3), Activation::None),
            tiled,
            Some(2),
            false,
        ),
        (
            case([1, 6, 4, 16], [10, 6, 3, 5], pad(3, 0), Activation::Relu6),
            tiled,
            Some(1),
            false,
        ),
        (
            case([1, 6, 4, 16], [10, 6, 1, 1], pad(4, 3), Activation::None),
            tiled,
            Some(0),
            false,
        ),
        (
            case(
                [1, 8, 6, 8],
                [12, 4, 3, 3],
                pad(1, 1).groups(2),
                Activation::Relu,
            ),
            tiled,
            Some(3),
            true,
        ),
        // Stride 2 (7x7 stem-like and 1x1).
        (
            case(
                [1, 3, 9, 24],
                [8, 3, 7, 7],
                pw.stride(2, 2).padding(Padding::uniform(3)),
                Activation::None,
            ),
            tiled,
            Some(1),
            true,
        ),
        (
            case(
                [1, 8, 8, 16],
                [8, 8, 1, 1],
                pw.stride(2, 2),
                Activation::None,
            ),
            tiled,
            Some(0),
            true,
        ),
        // 4×10 pointwise planes run as rows of 40 (`plan::flat_shape`): aligned.
        (
            case([1, 8, 4, 10], [8, 8, 1, 1], pw, Activation::None),
            tiled,
            Some(0),
            true,
        ),
        // Not aligned: rows of 10; dilation spaces a tile's pixels (Q = 2).
        (
            case([1, 8, 4, 10], [8, 8, 3, 1], pw, Activation::None),
            tiled,
            None,
            false,
        ),
        (
            case(
                [1, 8, 6, 16],
                [8, 8, 3, 3],
                pw.dilation(2, 2).padding(Padding::uniform(2)),
                Activation::None,
            ),
            tiled,
            None,
            false,
        ),
        // Depthwise, stride 1 and 2, padding 1 and 2, a multiplier; vec4 stores in rows of 16
        // and 12 (the last tile's second vec4 past the row); rows of 10 and 18 are not aligned.
        (
            case(
                [1, 8, 9, 16],
                [8, 1, 3, 3],
                pad(1, 1).groups(8),
                Activation::Relu,
            ),
            dw,
            Some(3),
            true,
        ),
        (
            case(
                [2, 4, 11, 20],
                [4, 1, 3, 3],
                pw.stride(2, 2).padding(Padding::uniform(1)).groups(4),
                Activation::None,
            ),
            dw,
            Some(3),
            false,
        ),
        (
            case(
                [1, 4, 7, 12],
                [8, 1, 5, 5],
                pw.padding(Padding::uniform(2)).groups(4),
                Activation::Silu,
            ),
            dw,
            Some(2),
            true,
        ),
        (
            case(
                [1, 4, 7, 18],
                [4, 1, 3, 3],
                pad(1, 1).groups(4),
                Activation::None,
            ),
            dw,
            None,
            false,
        ),
    ];
    let mut failures = Vec::new();
    // Depthwise tiles of 8×8 at most, forced: on planes this small the planner
    // takes smaller ones (`plan::DEPTHWISE_MIN_TILES`), with unaligned columns.
    let tile_of = |kernel: Kernel| (kernel == dw).then(|| wgconv::plan::Tile::new(8, 8));
    for (c, kernel, va, vout) in &cases {
        let shape = Conv2dShape::conv2d(c.input, c.weight, None, &c.params).unwrap();
        let planned = wgconv::plan::plan_with(
            &shape,
            c.activation,
            &profile,
            Some(*kernel),
            tile_of(*kernel),
        );
        assert_eq!(planned.key.kernel, *kernel, "{c:?}");
        let get = |name| planned.key.consts.iter().find(|k| k.0 == name).map(|k| k.1);
        let got = (get("VIN") == Some(1)).then(|| get("VA").unwrap_or(99));
        assert_eq!(got, *va, "{c:?}: {}", planned.key);
        assert_eq!(get("VOUT") == Some(1), *vout, "{c:?}: {}", planned.key);
        failures.extend(run_tile(
            engine,
            &mut rng,
            c,
            Some(*kernel),
            tile_of(*kernel),
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sweep_covers_every_kind() {
    // The generator really produces each class the issue names.
    let mut rng = Rng::new(0x5eed_c0de);
    let cases: Vec<Case> = (0..SWEEP_CASES).map(|i| random_case(&mut rng, i)).collect();
    let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
    assert!(
        has(&|c| c.params.groups > 1 && c.weight[1] == 1 && c.weight[0] > c.input[1]),
        "depthwise multiplier"
    );
    assert!(has(&|c| c.params.groups > 1 && c.weight[1] > 1), "grouped");
    assert!(has(&|c| c.weight[2] == 1 && c.weight[3] == 1), "pointwise");
    assert!(
        has(&|c| c.params.dilation.0 != c.params.dilation.1),
        "non-square dilation"
    );
    assert!(
        has(&|c| c.params.dilation.0 > 1 && c.params.stride.0 > 1),
        "dilation with stride"
    );
    assert!(has(&|c| c.params.stride.0 == 3), "stride 3");
    assert!(has(&|c| c.params.dilation.0 == 4), "dilation 4");
    assert!(
        has(&|c| c.params.padding.top != c.params.padding.bottom),
        "asymmetric padding"
    );
    assert!(has(&|c| c.weight[2] == 1 && c.weight[3] == 7), "1x7");
    assert!(has(&|c| c.weight[2] == 7 && c.weight[3] == 1), "7x1");
    assert!(has(&|c| c.input[2] == 1 && c.input[3] == 17), "1x17");
    assert!(has(&|c| c.input[2] == 13 && c.input[3] == 7), "13x7");
    assert!(has(&|c| c.input[2] == 1 && c.input[3] == 1), "1x1 input");
    assert!(has(&|c| c.input[0] == 2), "batch 2");
    assert!(has(&|c| c.input[1] == 64), "64 channels");
    assert!(
        has(&|c| !c.bias) && has(&|c| c.bias),
        "with and without bias"
    );
    for a in ACTIVATIONS {
        assert!(has(&|c| c.activation == a), "{a}");
    }
    for cpg in [1, 2, 4, 8] {
        assert!(
            has(&|c| c.params.groups > 1 && c.weight[1] == cpg),
            "C/G = {cpg}"
        );
    }
}

/// A spatially separable k×k filter (outer product of a column and a row)
/// equals a 1×k conv followed by a k×1 conv, both on the GPU.
#[test]
fn spatially_separable_filter_equals_two_rectangular_convs() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(7);
    let (c, h, w, k) = (3usize, 19usize, 23usize, 5usize);
    let col = rng.vec(k);
    let row = rng.vec(k);
    let x = rng.vec(c * h * w);
    let pad = (k / 2) as u32;
    // depthwise 1xk then kx1, and the equivalent depthwise kxk
    let mut w_row = Vec::new();
    let mut w_col = Vec::new();
    let mut w_full = Vec::new();
    for _ in 0..c {
        w_row.extend_from_slice(&row);
        w_col.extend_from_slice(&col);
        for a in &col {
            for b in &row {
                w_full.push(a * b);
            }
        }
    }
    let dw = |pt, pl| {
        Conv2dParams::default()
            .groups(c as u32)
            .padding(Padding::new(pt, pl, pt, pl))
    };
    let l_row = Conv2d::new(
        engine,
        &w_row,
        [c, 1, 1, k],
        None,
        dw(0, pad),
        Activation::None,
    )
    .unwrap();
    let l_col = Conv2d::new(
        engine,
        &w_col,
        [c, 1, k, 1],
        None,
        dw(pad, 0),
        Activation::None,
    )
    .unwrap();
    let l_full = Conv2d::new(
        engine,
        &w_full,
        [c, 1, k, k],
        None,
        dw(pad, pad),
        Activation::None,
    )
    .unwrap();
    let xt = GpuTensor::upload(engine, &x, [1, c, h, w]).unwrap();
    let mut enc = engine.device().create_command_encoder(&Default::default());
    let mid = l_row.record(engine, &mut enc, &xt).unwrap();
    let two = l_col.record(engine, &mut enc, &mid).unwrap();
    let one = l_full.record(engine, &mut enc, &xt).unwrap();
    engine.queue().submit([enc.finish()]);
    let (two, one) = (two.read(engine).unwrap(), one.read(engine).unwrap());
    let max_diff = two
        .iter()
        .zip(&one)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    // Both are sums of 25 products of magnitude < 1: 1e-5 is ~100 ulps of the largest term sum.
    assert!(max_diff < 1e-5, "max diff {max_diff}");
}

/// 1-D convolution is H = 1.
#[test]
fn one_dimensional_convolution() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(11);
    for (k, stride, dil) in [(3, 1, 1), (5, 2, 1), (3, 1, 4), (7, 3, 2)] {
        let case = Case {
            input: [2, 5, 1, 50],
            weight: [6, 5, 1, k],
            params: Conv2dParams::default()
                .stride(1, stride)
                .dilation(1, dil)
                .padding(Padding::new(0, 2, 0, 1)),
            bias: true,
            activation: Activation::Silu,
        };
        assert_eq!(run(engine, &mut rng, &case, None), None);
    }
}

/// Depthwise then pointwise in one command buffer, no readback between,
/// equals the two reference convolutions in sequence.
#[test]
fn depthwise_separable_block_in_one_submission() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(3);
    let (c, k, h, w) = (16usize, 24usize, 17usize, 15usize);
    let x = rng.vec(c * h * w);
    let (wd, bd) = (rng.vec(c * 9), rng.vec(c));
    let (wp, bp) = (rng.vec(k * c), rng.vec(k));
    let dparams = Conv2dParams::default()
        .groups(c as u32)
        .padding(Padding::uniform(1));
    let block = DepthwiseSeparable {
        depthwise: Conv2d::new(
            engine,
            &wd,
            [c, 1, 3, 3],
            Some(&bd),
            dparams,
            Activation::Relu6,
        )
        .unwrap(),
        pointwise: Conv2d::new(
            engine,
            &wp,
            [k, c, 1, 1],
            Some(&bp),
            Conv2dParams::default(),
            Activation::None,
        )
        .unwrap(),
    };
    let out = block
        .forward(
            engine,
            &GpuTensor::upload(engine, &x, [1, c, h, w]).unwrap(),
        )
        .unwrap();
    let gpu = out.read(engine).unwrap();
    let s1 = Conv2dShape::conv2d([1, c, h, w], [c, 1, 3, 3], Some(c), &dparams).unwrap();
    let mid = reference::conv(&s1, &x, &wd, Some(&bd), Activation::Relu6)
        .unwrap()
        .to_f32();
    let s2 = Conv2dShape::conv2d(
        [1, c, h, w],
        [k, c, 1, 1],
        Some(k),
        &Conv2dParams::default(),
    )
    .unwrap();
    let r = reference::conv(&s2, &mid, &wp, Some(&bp), Activation::None).unwrap();
    // The intermediate is rounded to f32 on both sides and may differ by the first
    // layer's bound: 9 taps + bias of magnitude < 1 give M1 <= 10, so gamma_11 * 10 <= 7e-6.
    // The pointwise layer sums 16 of those differences times |w| < 1 (<= 1.1e-4) and adds
    // its own rounding, gamma_18 * M2 with M2 <= 16 * 6 + 1 (<= 1.1e-4). Allow 2.5e-4.
    let cmp = compare(
        &r,
        Activation::None,
        &gpu,
        Tolerance::Fixed {
            abs: 2.5e-4,
            rel: 0.0,
        },
    )
    .unwrap();
    assert!(cmp.passed, "{cmp}");
}

/// Conv + batch norm folded at load time equals conv, then batch norm, then
/// the activation, computed unfolded in f64 (grouped, strided, with bias).
#[test]
fn batch_norm_folding_matches_the_unfolded_reference() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(21);
    let (input, weight, groups) = ([2, 6, 11, 13], [9, 2, 3, 3], 3);
    let params = Conv2dParams::default()
        .stride(2, 1)
        .padding(Padding::new(1, 0, 1, 2))
        .groups(groups);
    let x = rng.vec(input.iter().product());
    let w = rng.vec(weight.iter().product());
    let b = rng.vec(9);
    let gamma = rng.vec(9);
    let beta = rng.vec(9);
    let mean = rng.vec(9);
    let var: Vec<f32> = rng.vec(9).iter().map(|v| v.abs() + 0.1).collect();
    let bn = BatchNorm {
        gamma: &gamma,
        beta: &beta,
        mean: &mean,
        var: &var,
        eps: 1e-5,
    };
    let (fw, fb) = bn
        .fold(
            wgconv::ConvKind::Forward,
            &w,
            weight,
            groups as usize,
            Some(&b),
        )
        .unwrap();
    let act = Activation::Relu;
    let conv = Conv2d::new(engine, &fw, weight, Some(&fb), params, act).unwrap();
    let xt = GpuTensor::upload(engine, &x, input).unwrap();
    let gpu = conv.forward(engine, &xt).unwrap().read(engine).unwrap();

    let shape = conv.shape_for(input).unwrap();
    let unfolded = reference::conv(&shape, &x, &w, Some(&b), Activation::None).unwrap();
    let affine = bn.affine().unwrap();
    let plane = (shape.h_out * shape.w_out) as usize;
    // The bound comes from the folded problem (its Σ|x·w'| and term count);
    // the values from the unfolded definition. Rounding the folded weights to
    // f32 adds at most u·Σ|x·w'|, inside that bound.
    let mut expected = reference::conv(&shape, &x, &fw, Some(&fb), act).unwrap();
    for (i, v) in expected.values.iter_mut().enumerate() {
        let (scale, shift) = affine[(i / plane) % 9];
        *v = act.apply(unfolded.values[i] * scale + shift);
    }
    let c = compare(&expected, act, &gpu, Tolerance::F32Accumulation).unwrap();
    assert!(c.passed, "{c:?}");
}

/// `forward_into` writes a caller's output: bit for bit what `forward`
/// returns, every element rewritten on the next call (here over a result of
/// another input), for a forward and a transposed layer; an output of the
/// wrong shape is a typed error.
#[test]
fn forward_into_rewrites_the_whole_output() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xf0a);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let conv = Conv2d::new(
        engine,
        &rng.vec(24 * 8 * 9),
        [24, 8, 3, 3],
        Some(&rng.vec(24)),
        Conv2dParams::default()
            .padding(Padding::uniform(1))
            .stride(2, 1),
        Activation::Relu,
    )
    .unwrap();
    let transposed = ConvTranspose2d::new(
        engine,
        &rng.vec(8 * 6 * 16),
        [8, 6, 4, 4],
        Some(&rng.vec(6)),
        ConvTranspose2dParams::default().stride(2, 2),
        Activation::None,
    )
    .unwrap();
    let shape = [2, 8, 11, 13];
    let inputs: Vec<GpuTensor> = (0..2)
        .map(|_| GpuTensor::upload(engine, &rng.vec(2 * 8 * 11 * 13), shape).unwrap())
        .collect();
    let conv_out = GpuTensor::empty(engine, [2, 24, 6, 13]).unwrap();
    let transposed_out = GpuTensor::empty(engine, [2, 6, 24, 28]).unwrap();
    for x in &inputs {
        conv.forward_into(engine, x, &conv_out).unwrap();
        let fresh = conv.forward(engine, x).unwrap().read(engine).unwrap();
        assert_eq!(bits(&conv_out.read(engine).unwrap()), bits(&fresh));
        transposed.forward_into(engine, x, &transposed_out).unwrap();
        let fresh = transposed.forward(engine, x).unwrap().read(engine).unwrap();
        assert_eq!(bits(&transposed_out.read(engine).unwrap()), bits(&fresh));
    }
    let wrong = GpuTensor::empty(engine, [2, 24, 6, 12]).unwrap();
    assert!(matches!(
        conv.forward_into(engine, &inputs[0], &wrong),
        Err(Error::BadShape { .. })
    ));
}

#[test]
fn second_identical_layer_compiles_nothing() {
    // Its own engine: other tests in this binary compile pipelines concurrently.
    let _skip_without_gpu = gpu_or_skip!();
    let own = common::own_engine();
    let engine = &own;
    let mut rng = Rng::new(5);
    let w = rng.vec(8 * 4 * 3 * 3);
    let params = Conv2dParams::default()
        .padding(Padding::uniform(1))
        .dilation(1, 1);
    // A specialisation no other test in this binary uses (leaky relu, 5 output channels per group... k 3x3).
    let a = Conv2d::new(
        engine,
        &w,
        [8, 4, 3, 3],
        None,
        params,
        Activation::LeakyRelu(0.2),
    )
    .unwrap();
    let x = GpuTensor::upload(engine, &rng.vec(4 * 9 * 31), [1, 4, 9, 31]).unwrap();
    a.forward(engine, &x).unwrap();
    let before = engine.pipelines_compiled();
    let b = Conv2d::new(
        engine,
        &w,
        [8, 4, 3, 3],
        None,
        params,
        Activation::LeakyRelu(0.2),
    )
    .unwrap();
    let y = b.forward(engine, &x).unwrap();
    y.read(engine).unwrap();
    assert_eq!(
        engine.pipelines_compiled(),
        before,
        "an identical layer compiled a new pipeline"
    );
}

#[test]
fn engine_is_usable_from_several_threads() {
    let engine = gpu_or_skip!();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = Rng::new(100 + t);
                    for i in 0..6 {
                        let case = random_case(&mut rng, i);
                        if let Some(f) = run(engine, &mut rng, &case, None) {
                            return Err(f);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
}

#[test]
fn bad_inputs_are_typed_errors() {
    let engine = gpu_or_skip!();
    let w = vec![0.0; 6 * 4 * 3 * 3];
    let layer = Conv2d::new(
        engine,
        &w,
        [6, 4, 3, 3],
        None,
        Conv2dParams::default(),
        Activation::None,
    )
    .unwrap();
    let x = GpuTensor::upload(engine, &vec![0.0; 3 * 8 * 8], [1, 3, 8, 8]).unwrap();
    assert!(matches!(
        layer.forward(engine, &x),
        Err(Error::InputChannels {
            expected: 4,
            actual: 3
        })
    ));
    let small = GpuTensor::upload(engine, &vec![0.0; 4 * 2 * 8], [1, 4, 2, 8]).unwrap();
    assert!(matches!(
        layer.forward(engine, &small),
        Err(Error::KernelLargerThanInput { .. })
    ));
    assert!(matches!(
        Conv2d::new(
            engine,
            &w[1..],
            [6, 4, 3, 3],
            None,
            Conv2dParams::default(),
            Activation::None
        ),
        Err(Error::DataLength { .. })
    ));
    assert!(matches!(
        Conv2d::new(
            engine,
            &w,
            [6, 4, 3, 3],
            Some(&[0.0; 5]),
            Conv2dParams::default(),
            Activation::None
        ),
        Err(Error::BiasLength { len: 5, c_out: 6 })
    ));
    assert!(matches!(
        Conv2d::new(
            engine,
            &w,
            [6, 4, 3, 3],
            None,
            Conv2dParams::default().groups(4),
            Activation::None
        ),
        Err(Error::ChannelsNotDivisible { .. })
    ));
    assert!(matches!(
        GpuTensor::upload(engine, &[0.0; 5], [1, 1, 2, 3]),
        Err(Error::DataLength { .. })
    ));
}

/// Device loss is a value: destroying the device mid-use makes the next
/// calls return errors — no panic, no hang.
#[test]
fn destroyed_device_returns_errors() {
    let _skip_without_gpu = gpu_or_skip!();
    let own = common::own_engine();
    let engine = &own;
    let w = vec![0.5; 4 * 2 * 3 * 3];
    let layer = Conv2d::new(
        engine,
        &w,
        [4, 2, 3, 3],
        None,
        Conv2dParams::default(),
        Activation::None,
    )
    .unwrap();
    let x = GpuTensor::upload(engine, &[1.0; 2 * 6 * 6], [1, 2, 6, 6]).unwrap();
    layer.forward(engine, &x).unwrap().read(engine).unwrap();
    engine.device().destroy();
    let after = layer.forward(engine, &x).and_then(|y| y.read(engine));
    assert!(
        after.is_err(),
        "a destroyed device still produced {after:?}"
    );
    let again = GpuTensor::upload(engine, &[1.0; 4], [1, 1, 2, 2]).and_then(|t| t.read(engine));
    assert!(again.is_err());
}

/// Blocks too large for a uniform weight window on small images read a
/// storage window instead (`plan::storage_weights`, with subgroups) and run
/// in one reduction; without subgroups the same layers run as reduction
/// segments. Both match the reference; larger images keep uniform windows.
/// (Without textures: with them a CPU adapter reads every `conv2d_tiled`
/// weight from a texture, in one reduction; checked on the shared engine.)
#[test]
fn storage_weights_for_large_blocks_on_small_images() {
    let textures = gpu_or_skip!();
    let with = &Engine::with_options(&EngineOptions {
        texture_inputs: Some(false),
        ..common::options()
    })
    .unwrap();
    let without = gpu_or_skip!(1);
    let sg = wgconv::plan::subgroup_weights(&with.profile()) > 0;
    let cpu = textures.profile().device_type == wgpu::DeviceType::Cpu;
    let mut rng = Rng::new(0x57);
    let pad1 = Conv2dParams::default().padding(Padding::uniform(1));
    // (input, weight, params, storage with subgroups): 160 channels × 9 taps ×
    // 16 outputs is 5760 vec4s per block, over the 4096 of a 64 KiB window.
    let cases = [
        ([1, 160, 5, 6], [64, 160, 3, 3], pad1, true),
        // Two images, stride 2, ReLU.
        ([2, 160, 9, 7], [32, 160, 3, 3], pad1.stride(2, 2), true),
        // Pointwise with 1100 channels (8800 vec4s per 32-channel block).
        (
            [1, 1100, 3, 8],
            [40, 1100, 1, 1],
            Conv2dParams::default(),
            true,
        ),
        // Enough output rows to fill a workgroup: uniform windows.
        ([1, 160, 40, 16], [16, 160, 3, 3], pad1, false),
    ];
    for (input, weight, params, storage) in cases {
        let w = rng.vec(weight.iter().product());
        let x = rng.vec(input.iter().product());
        for (engine, expect) in [
            (with, storage && sg),
            (without, false),
            (textures, cpu || (storage && sg)),
        ] {
            let layer = Conv2d::new(engine, &w, weight, None, params, Activation::Relu).unwrap();
            let key = layer.plan_for(input).unwrap().key;
            let wst = key.consts.iter().any(|&(n, v)| n == "WST" && v == 1);
            assert_eq!(wst, expect, "{input:?} {weight:?}: {key}");
            // conv2d_tiled reads its weight texture as a storage texture.
            assert_eq!(key.is("TWT", 2), cpu && engine.profile().texture_inputs);
            let segments = layer.chunking(engine, input).unwrap().segments;
            assert_eq!(segments == 1, wst, "{input:?}: {segments}");
            let c = layer
                .verify(engine, &x, input, Tolerance::F32Accumulation)
                .unwrap();
            assert!(c.passed, "{input:?} {weight:?} {key}: {c:?}");
        }
    }
}

/// Texture inputs (`TIN = 1`, planned on CPU adapters) and storage inputs
/// run the same sequence of fma operations, so their outputs are
/// bit-identical; both match the reference. Covers the tiled, depthwise and
/// transposed kernels (the latter also with its weight in a texture,
/// `TWT = 1`) and a Winograd layer, inputs that fill no texture row, one row
/// and a ragged last row, and two images.
#[test]
fn texture_inputs_match_storage_inputs_exactly() {
    let tex = gpu_or_skip!();
    let storage = Engine::with_options(&EngineOptions {
        texture_inputs: Some(false),
        ..common::options()
    })
    .unwrap();
    // Where the planner reads textures at all (lavapipe, llvmpipe).
    let cpu = tex.profile().device_type == wgpu::DeviceType::Cpu;
    let mut rng = Rng::new(0x7e8);
    let pad = |p| Conv2dParams::default().padding(Padding::uniform(p));
    // (input, weight, params, force_kernel, winograd)
    type TextureCase = ([usize; 4], [usize; 4], Conv2dParams, Option<Kernel>, bool);
    let cases: [TextureCase; 11] = [
        // 1152 floats: a part of one texture row.
        ([1, 8, 9, 16], [12, 8, 1, 1], pad(0), None, false),
        // 7680 floats over two images: one full row and a ragged one.
        ([2, 16, 12, 20], [8, 8, 3, 3], pad(1).groups(2), None, false),
        // Stride 2, 7x7 (stem-like), first column at 1 in its vec4.
        (
            [1, 3, 17, 24],
            [8, 3, 7, 7],
            pad(3).stride(2, 2),
            None,
            false,
        ),
        // Depthwise, stride 1 and 2 (the latter reads storage on both engines).
        ([1, 8, 9, 16], [8, 1, 3, 3], pad(1).groups(8), None, false),
        (
            [2, 4, 11, 20],
            [8, 1, 3, 3],
            pad(1).stride(2, 2).groups(4),
            None,
            false,
        ),
        // 36 rows of 4096 floats after the input transform: the GEMM reads a texture.
        ([1, 16, 16, 16], [16, 16, 3, 3], pad(1), None, true),
        // The tiled kernel forced on a layer the planner would run otherwise.
        (
            [1, 8, 8, 16],
            [8, 1, 3, 3],
            pad(1).groups(8),
            Some(Kernel::Conv2dTiled),
            false,
        ),
        // Rows of 7 and 14 floats (not whole vec4s): scalar loads from the texture,
        // in the tiled and depthwise kernels.
        ([1, 8, 7, 7], [16, 8, 3, 3], pad(1), None, false),
        ([1, 8, 14, 14], [8, 1, 3, 3], pad(1).groups(8), None, false),
        // Pointwise on 7×7 planes, two images: rows of 49 floats read as shifted vec4s.
        ([2, 12, 7, 7], [20, 12, 1, 1], pad(0), None, false),
        // Dilation 2 with Winograd: the input transform runs in dilation phases
        // (scalar loads).
        (
            [1, 16, 18, 18],
            [16, 16, 3, 3],
            pad(2).dilation(2, 2),
            None,
            true,
        ),
    ];
    let mut outputs = Vec::new();
    for (input, weight, params, force_kernel, winograd) in cases {
        let x = rng.vec(input.iter().product());
        let w = rng.vec(weight.iter().product());
        let b = rng.vec(weight[0]);
        let options = LayerOptions {
            force_kernel,
            winograd: winograd.then_some(wgconv::plan::Winograd::F4),
            ..LayerOptions::default()
        };
        let mut got = Vec::new();
        for (engine, texture) in [(tex, cpu), (&storage, false)] {
            let layer = Conv2d::with_options(
                engine,
                &w,
                weight,
                Some(&b),
                params,
                Activation::Relu,
                options,
            )
            .unwrap();
            let name = layer.kernel_name(engine, input).unwrap();
            // Storage textures (2) for the looping kernels, sampled ones (1)
            // for the unrolled Winograd transforms.
            let tin = name.contains("-tin1-") || name.contains("-tin2-");
            // A strided depthwise layer reads its input buffer directly
            // (`plan::depthwise_texture_input`).
            let strided_depthwise = name.contains("conv2d_depthwise") && name.contains("-sh2-");
            assert_eq!(tin, texture && !strided_depthwise, "{input:?}: {name}");
            // Scalar texture loads where rows are not whole vec4s, but for
            // pointwise planes read as one row of shifted vec4s.
            if !input[3].is_multiple_of(4) && !winograd {
                let pointwise = weight[2..] == [1, 1];
                let vin = if pointwise { "-vin2-" } else { "-vin0-" };
                assert!(name.contains(vin), "{input:?}: {name}");
            }
            // (A Winograd layer's name is its GEMM's: conv2d_tiled.)
            if ["conv2d_tiled", "conv_transpose2d", "conv2d_depthwise"]
                .iter()
                .any(|k| name.contains(k))
            {
                assert!(!name.contains("-tin1-"), "{input:?}: {name}");
            } else {
                assert!(!name.contains("-tin2-"), "{input:?}: {name}");
            }
            let y = layer
                .forward(engine, &GpuTensor::upload(engine, &x, input).unwrap())
                .unwrap()
                .read(engine)
                .unwrap();
            let r = layer.reference_on(engine, &x, input).unwrap();
            let c = compare(&r, Activation::Relu, &y, Tolerance::F32Accumulation).unwrap();
            assert!(c.passed, "{input:?} {weight:?} on {name}: {c}");
            got.push(y);
        }
        assert!(got[0] == got[1], "{input:?} {weight:?}: outputs differ");
        outputs.push(got);
    }
    // Transposed (stride 2, vec4 input loads).
    let tp = ConvTranspose2dParams::default()
        .stride(2, 2)
        .padding(Padding::uniform(1));
    let (input, weight) = ([1, 8, 8, 16], [8, 4, 3, 3]);
    let x = rng.vec(input.iter().product());
    let w = rng.vec(weight.iter().product());
    let mut got = Vec::new();
    for (engine, texture) in [(tex, cpu), (&storage, false)] {
        let layer = ConvTranspose2d::new(engine, &w, weight, None, tp, Activation::None).unwrap();
        let name = layer.kernel_name(engine, input).unwrap();
        assert_eq!(name.contains("-tin2-"), texture, "transposed: {name}");
        assert_eq!(name.contains("-twt2-"), texture, "transposed: {name}");
        let c = layer
            .verify(engine, &x, input, Tolerance::F32Accumulation)
            .unwrap();
        assert!(c.passed, "transposed on {name}: {c}");
        got.push(
            layer
                .forward(engine, &GpuTensor::upload(engine, &x, input).unwrap())
                .unwrap()
                .read(engine)
                .unwrap(),
        );
    }
    assert!(got[0] == got[1], "transposed: outputs differ");
    // The textures are kept per height and counted.
    assert_eq!(tex.texture_bytes() > 0, cpu);
    assert_eq!(storage.texture_bytes(), 0);
}
