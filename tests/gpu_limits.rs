//! Device limits: tensors larger than one storage binding run in chunks
//! (by batch, by output-channel units, by output-row bands), dispatches wider
//! than the workgroups-per-dimension limit are folded, and release-mode
//! trusted shader modules compute the same bits. Engines pretending small
//! limits ([`EngineOptions::max_storage_binding_size`],
//! [`EngineOptions::max_workgroups_per_dimension`]) force every path on small
//! shapes; each result must equal the unchunked, unfolded result bit for bit
//! (the same kernel computes every output with the same operations in the
//! same order) and match the CPU reference within the f32-accumulation
//! tolerance.

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use common::Rng;
use wgconv::plan::Winograd;
use wgconv::reference::{self, compare, Tolerance};
use wgconv::{
    Activation, ChunkLevel, Chunking, Conv2d, Conv2dParams, Conv2dShape, ConvTranspose2d,
    ConvTranspose2dParams, Engine, EngineOptions, Error, GpuTensor, Kernel, LayerOptions, Padding,
};

/// One test at a time: the tests keep the GPU busy anyway, and wgpu's GL
/// backend panics when a thread waits more than 6 s for the GL context
/// (`WGPU_BACKEND=gl` over llvmpipe, several engines busy at once).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The pretended storage binding limit of the chunking engines: 1 MiB.
const BINDING: u64 = 1 << 20;

fn engine_with(options: EngineOptions) -> Engine {
    Engine::with_options(&options).expect("engine")
}

/// Checked engine with a 1 MiB binding limit.
fn chunking() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_storage_binding_size: Some(BINDING),
            ..common::options()
        })
    })
}

/// [`chunking`] without subgroups: `conv2d_tiled` reads uniform weight
/// windows whatever their size.
fn chunking_uniform() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_storage_binding_size: Some(BINDING),
            ..common::no_subgroups()
        })
    })
}

/// Checked engine folding every dispatch dimension above 8 workgroups.
fn folding() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_workgroups_per_dimension: Some(8),
            ..common::options()
        })
    })
}

/// Trusted modules (no runtime checks), 1 MiB bindings, folding above 16.
fn trusted() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_storage_binding_size: Some(BINDING),
            max_workgroups_per_dimension: Some(16),
            runtime_checks: Some(false),
            ..common::options()
        })
    })
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Forward(Conv2dParams),
    Transposed(ConvTranspose2dParams),
}

#[derive(Debug, Clone, Copy)]
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    op: Op,
    kernel: Option<Kernel>,
    activation: Activation,
}

fn case(input: [usize; 4], weight: [usize; 4], p: Conv2dParams) -> Case {
    Case {
        input,
        weight,
        op: Op::Forward(p),
        kernel: None,
        activation: Activation::Relu,
    }
}

fn tcase(input: [usize; 4], weight: [usize; 4], p: ConvTranspose2dParams) -> Case {
    Case {
        op: Op::Transposed(p),
        activation: Activation::LeakyRelu(0.1),
        ..case(input, weight, Conv2dParams::default())
    }
}

impl Case {
    fn shape(&self) -> Conv2dShape {
        match self.op {
            Op::Forward(p) => Conv2dShape::conv2d(self.input, self.weight, None, &p),
            Op::Transposed(p) => Conv2dShape::conv_transpose2d(self.input, self.weight, None, &p),
        }
        .expect("valid case")
    }
}

/// Deterministic data of one case.
struct Data {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
}

fn data(c: &Case) -> Data {
    let s = c.shape();
    let mut rng = Rng::new(s.input_len() as u64 ^ 0x11_4175);
    Data {
        x: rng.vec(s.input_len()),
        w: rng.vec(s.weight_len()),
        b: rng.vec(s.c_out as usize),
    }
}

/// Runs the case on `engine`: output and chunking report. The direct
/// kernels only (`winograd_slabs_fold_and_fall_back` covers the Winograd
/// form under the same limits, `sub_pixel_falls_back_to_the_gather` the
/// sub-pixel form of transposed layers).
fn run_on(engine: &Engine, c: &Case, d: &Data) -> wgconv::Result<(Vec<f32>, Chunking)> {
    let opts = LayerOptions {
        force_kernel: c.kernel,
        winograd: Some(Winograd::Off),
        sub_pixel: Some(false),
        ..LayerOptions::default()
    };
    let x = GpuTensor::upload(engine, &d.x, c.input)?;
    match c.op {
        Op::Forward(p) => {
            let l =
                Conv2d::with_options(engine, &d.w, c.weight, Some(&d.b), p, c.activation, opts)?;
            let y = l.forward(engine, &x)?.read(engine)?;
            Ok((y, l.chunking(engine, c.input)?))
        }
        Op::Transposed(p) => {
            let l = ConvTranspose2d::with_options(
                engine,
                &d.w,
                c.weight,
                Some(&d.b),
                p,
                c.activation,
                opts,
            )?;
            let y = l.forward(engine, &x)?.read(engine)?;
            Ok((y, l.chunking(engine, c.input)?))
        }
    }
}

fn bits_equal(a: &[f32], b: &[f32]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(usize::MAX);
    }
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
}

/// Runs `c` on the shared full-limit engine and on `limited`: identical bits,
/// and the reference within tolerance. Returns how `limited` split it.
fn same_as_unchunked(limited: &Engine, c: &Case) -> Chunking {
    let full = common::engine().expect("engine");
    let d = data(c);
    let (want, whole) = run_on(full, c, &d).expect("full-limit run");
    // At full limits only a `conv2d_tiled` weight larger than one uniform
    // window splits a layer (by units and reduction segments), never a tensor.
    assert_eq!(whole.staged_inputs + whole.staged_outputs, 0, "{c:?}");
    assert!(
        whole.level == ChunkLevel::Whole || whole.segments > 1 || whole.level == ChunkLevel::Units,
        "{c:?}: {whole:?}"
    );
    assert_eq!(whole.folded, 0, "{c:?}");
    let (got, split) = run_on(limited, c, &d).expect("limited run");
    if let Some(i) = bits_equal(&want, &got) {
        panic!(
            "{c:?} split as {split:?}: element {i} differs: {} vs {}",
            want.get(i).copied().unwrap_or(f32::NAN),
            got.get(i).copied().unwrap_or(f32::NAN)
        );
    }
    let r = reference::conv(&c.shape(), &d.x, &d.w, Some(&d.b), c.activation).expect("reference");
    let cmp = compare(&r, c.activation, &got, Tolerance::F32Accumulation).expect("compare");
    assert!(cmp.passed, "{c:?}: {cmp}");
    assert!(split.largest_binding <= limited.limits().max_storage_buffer_binding_size);
    split
}

fn pad1() -> Conv2dParams {
    Conv2dParams::default().padding(Padding::uniform(1))
}

#[test]
fn chunks_by_batch() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = chunking();
    // Dense 3x3 on the tiled kernel and the direct fallback; per-image sizes
    // are not multiples of the 256-byte offset alignment.
    for kernel in [None, Some(Kernel::Conv2dDirect)] {
        let c = Case {
            kernel,
            ..case([5, 15, 61, 59], [16, 15, 3, 3], pad1())
        };
        let s = same_as_unchunked(e, &c);
        assert_eq!(s.level, ChunkLevel::Batch, "{c:?}");
        assert!(s.chunks > 1);
    }
    // Pointwise on 45×45 planes, run as rows of 2025 floats read as shifted
    // vec4s (`VIN = 2`): each image fits a binding, the batch does not (nor
    // does the input fit the input texture).
    let c = case([8, 20, 45, 45], [24, 20, 1, 1], Conv2dParams::default());
    let planned = wgconv::plan::plan(&c.shape(), c.activation, &e.profile(), None);
    if planned.key.kernel == Kernel::Conv2dTiled {
        assert!(planned.flat, "{}", planned.key);
        assert!(planned.key.consts.contains(&("VIN", 2)), "{}", planned.key);
    }
    let s = same_as_unchunked(e, &c);
    assert_eq!(s.level, ChunkLevel::Batch, "{c:?}");
    // Transposed: the output is what does not fit.
    let t = tcase(
        [4, 16, 48, 48],
        [16, 8, 4, 4],
        ConvTranspose2dParams::default()
            .stride(2, 2)
            .padding(Padding::uniform(1)),
    );
    let s = same_as_unchunked(e, &t);
    assert_eq!(s.level, ChunkLevel::Batch);
}

#[test]
fn chunks_by_output_channels() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = chunking();
    let cases = [
        // Pointwise, 64 output channels of 80x80: two 32-channel blocks of 800 KiB.
        case([1, 8, 80, 80], [64, 8, 1, 1], Conv2dParams::default()),
        // Depthwise with multiplier 2 (depthwise kernel: one channel per unit).
        case([1, 32, 96, 96], [64, 1, 3, 3], pad1().groups(32)),
        // Grouped: each unit reads its group's 12 input channels only.
        case([1, 48, 80, 80], [48, 12, 3, 3], pad1().groups(4)),
        // The weight alone (256·256·9 floats) exceeds a storage binding; two
        // images (the direct kernel reads weights from storage).
        Case {
            kernel: Some(Kernel::Conv2dDirect),
            ..case([2, 256, 6, 6], [256, 256, 3, 3], pad1())
        },
        // Transposed, grouped.
        tcase(
            [1, 64, 60, 60],
            [64, 16, 2, 2],
            ConvTranspose2dParams::default().stride(2, 2).groups(4),
        ),
    ];
    for c in cases {
        let s = same_as_unchunked(e, &c);
        assert_eq!(s.level, ChunkLevel::Channels, "{c:?}: {s:?}");
        assert_eq!(s.staged_inputs + s.staged_outputs, 0);
    }
    // The tiled kernel reads the same weight through uniform windows
    // without subgroups: it splits by units over both images and into
    // reduction segments instead. With subgroups it reads storage windows
    // (`plan::storage_weights`), which split by channels like the direct
    // kernel's.
    let c = case([2, 256, 6, 6], [256, 256, 3, 3], pad1());
    let s = same_as_unchunked(chunking_uniform(), &c);
    assert_eq!(s.level, ChunkLevel::Units, "{c:?}: {s:?}");
    assert!(s.segments > 1, "{c:?}: {s:?}");
    if e.subgroup_size().is_some() {
        let s = same_as_unchunked(e, &c);
        assert_eq!(s.level, ChunkLevel::Channels, "{c:?}: {s:?}");
        assert_eq!(s.segments, 1, "{c:?}: {s:?}");
    }
}

#[test]
fn chunks_by_output_rows() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = chunking();
    let strided = Conv2dParams::default()
        .stride(2, 1)
        .dilation(2, 2)
        .padding(Padding::new(3, 1, 0, 2));
    let cases = [
        // Dense: every unit reads all 32 input planes, so row bands are staged.
        (
            case([1, 32, 128, 96], [24, 32, 3, 3], pad1()),
            Some(true),
            None,
        ),
        // Pointwise with a non-contiguous output band: staged output too.
        (
            case([1, 16, 200, 100], [32, 16, 1, 1], Conv2dParams::default()),
            Some(true),
            Some(true),
        ),
        // Depthwise planes larger than a binding: bands are direct windows.
        (
            case([1, 2, 600, 500], [2, 1, 3, 3], pad1().groups(2)),
            Some(false),
            Some(false),
        ),
        // Strided, dilated, asymmetric padding, on the direct fallback, two images.
        (
            Case {
                kernel: Some(Kernel::Conv2dDirect),
                ..case([2, 9, 240, 130], [5, 9, 3, 2], strided)
            },
            None,
            None,
        ),
        // The same on the tiled kernel.
        (case([2, 9, 240, 130], [5, 9, 3, 2], strided), None, None),
        // Transposed, stride 2 with output padding: output bands are staged.
        (
            tcase(
                [1, 16, 72, 72],
                [16, 16, 3, 3],
                ConvTranspose2dParams::default()
                    .stride(2, 2)
                    .padding(Padding::uniform(1))
                    .output_padding(1, 1),
            ),
            None,
            Some(true),
        ),
        // Transposed, stride 3, dilation 2, two images, two channel blocks.
        (
            tcase(
                [2, 24, 40, 200],
                [24, 24, 3, 3],
                ConvTranspose2dParams::default()
                    .stride(3, 1)
                    .dilation(2, 1)
                    .padding(Padding::new(2, 0, 1, 1)),
            ),
            None,
            None,
        ),
    ];
    // Whether input / output bands must be staged (None: the planner may choose).
    for (c, staged_in, staged_out) in cases {
        let s = same_as_unchunked(e, &c);
        assert_eq!(s.level, ChunkLevel::Rows, "{c:?}: {s:?}");
        if let Some(want) = staged_in {
            assert_eq!(s.staged_inputs > 0, want, "{c:?}: {s:?}");
        }
        if let Some(want) = staged_out {
            assert_eq!(s.staged_outputs > 0, want, "{c:?}: {s:?}");
        }
    }
}

/// Checked engine with 1 KiB uniform bindings: `conv2d_tiled`'s weight
/// windows hold 64 vec4s, so most layers sum their input channels in
/// several reduction segments. Without subgroups: with them, blocks too
/// large for a uniform window read a storage one instead
/// (`plan::storage_weights`) and never segment.
fn segmenting() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_uniform_binding_size: Some(1024),
            ..common::no_subgroups()
        })
    })
}

/// Trusted modules, 1 KiB uniform bindings and 64 KiB storage bindings:
/// segments and row bands (staged windows) together (no subgroups, as
/// [`segmenting`]).
fn segmenting_trusted() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_uniform_binding_size: Some(1024),
            max_storage_binding_size: Some(64 << 10),
            runtime_checks: Some(false),
            ..common::no_subgroups()
        })
    })
}

/// The segmenting engine with subgroups: the same layers read their weight
/// from storage windows in one reduction.
fn segmenting_subgroups() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        engine_with(EngineOptions {
            max_uniform_binding_size: Some(1024),
            ..common::options()
        })
    })
}

#[test]
fn reduction_segments_compute_the_same_bits() {
    let _g = serial();
    let cases = [
        case([1, 40, 9, 11], [8, 40, 3, 3], pad1()),
        // Several images: chunks of units over every image.
        case([3, 24, 7, 10], [24, 24, 3, 3], pad1().stride(2, 1)),
        // Grouped, dilated, pointwise, a 5×5 with 20 channels.
        case(
            [2, 32, 12, 12],
            [16, 8, 3, 3],
            pad1().groups(4).dilation(2, 2),
        ),
        case([1, 96, 10, 10], [40, 96, 1, 1], Conv2dParams::default()),
        case(
            [1, 20, 11, 9],
            [12, 20, 5, 5],
            Conv2dParams::default().padding(Padding::uniform(2)),
        ),
        // Rows of 16 and 12: partial sums stored and reloaded as vec4s (VOUT).
        case([2, 40, 6, 16], [8, 40, 3, 3], pad1()),
        case([1, 96, 4, 12], [40, 96, 1, 1], Conv2dParams::default()),
    ];
    for c in &cases {
        let split = same_as_unchunked(segmenting(), c);
        assert!(split.segments > 1, "{c:?}: {split:?}");
        // Where the adapter runs subgroups, storage weights: one segment.
        let e = segmenting_subgroups();
        if e.subgroup_size().is_some() {
            let whole = same_as_unchunked(e, c);
            assert_eq!(whole.segments, 1, "{c:?}: {whole:?}");
        }
    }
    // With row bands through scratch buffers (partial sums copied back in).
    let c = case([1, 12, 40, 48], [32, 12, 3, 3], pad1());
    let split = same_as_unchunked(segmenting_trusted(), &c);
    assert!(split.segments > 1 && split.staged_outputs > 0, "{split:?}");
}

#[test]
fn folded_dispatches_match() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = folding();
    let cases = [
        // x folded (17 pixel-block workgroups).
        case([2, 16, 90, 90], [16, 16, 3, 3], pad1()),
        // x and y folded on the direct kernel.
        Case {
            kernel: Some(Kernel::Conv2dDirect),
            ..case([2, 8, 40, 40], [10, 8, 3, 3], pad1())
        },
        // x folded on the depthwise kernel (6 tile rows × 11 tile columns × 24
        // channels = 1584 items, 25 workgroups) ...
        case([2, 12, 90, 90], [24, 1, 5, 5], pad1().groups(12)),
        // ... and y: 9 units of 64 channels.
        case([1, 576, 6, 7], [576, 1, 3, 3], pad1().groups(576)),
        case([1, 40, 72, 72], [80, 8, 3, 3], pad1().groups(5)),
        // x folded on the transposed kernel: 120 rows × 8 blocks of 8 column
        // steps = 960 items, 15 workgroups.
        tcase(
            [2, 8, 60, 60],
            [8, 24, 4, 4],
            ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1)),
        ),
    ];
    for c in cases {
        let s = same_as_unchunked(e, &c);
        assert_eq!(s.level, ChunkLevel::Whole, "{c:?}");
        assert!(s.folded > 0, "{c:?}: {s:?}");
    }
}

#[test]
fn chunked_and_folded_together() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = engine_with(EngineOptions {
        max_storage_binding_size: Some(BINDING),
        max_workgroups_per_dimension: Some(8),
        ..common::options()
    });
    let c = case([1, 32, 128, 96], [24, 32, 3, 3], pad1());
    let s = same_as_unchunked(&e, &c);
    assert_eq!(s.level, ChunkLevel::Rows);
    assert!(s.folded > 0);
}

/// Trusted modules (release default) compute the same bits as checked ones,
/// also when chunked and folded.
#[test]
fn trusted_modules_compute_the_same_bits() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = trusted();
    assert!(!e.runtime_checks());
    assert!(common::engine().expect("engine").runtime_checks());
    let cases = [
        case([5, 15, 61, 59], [16, 15, 3, 3], pad1()),
        case([1, 32, 96, 96], [64, 1, 3, 3], pad1().groups(32)),
        case([1, 32, 128, 96], [24, 32, 3, 3], pad1()),
        Case {
            kernel: Some(Kernel::Conv2dDirect),
            ..case([1, 16, 200, 100], [32, 16, 1, 1], Conv2dParams::default())
        },
        tcase(
            [1, 16, 72, 72],
            [16, 16, 3, 3],
            ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1))
                .output_padding(1, 1),
        ),
    ];
    for c in cases {
        let s = same_as_unchunked(e, &c);
        assert_ne!(s.level, ChunkLevel::Whole, "{c:?}");
    }
}

/// The sub-pixel form of a transposed layer under small limits: its phase
/// convolutions chunk like any forward layer, but its scatters bind the
/// whole output, so an output larger than one binding runs on the gather
/// kernel (chunked) instead; both match the reference, and where the
/// output fits the sub-pixel form runs with folded dispatches.
#[test]
fn sub_pixel_falls_back_to_the_gather() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let p = ConvTranspose2dParams::default()
        .stride(2, 2)
        .padding(Padding::uniform(1));
    // An output of 16·144·144 floats (1.3 MiB) past the 1 MiB binding; one of
    // 16·16·16 whose scatters fit 8×8 workgroups.
    for (c, engine, sub) in [
        (tcase([1, 16, 72, 72], [16, 16, 4, 4], p), chunking(), false),
        (
            tcase([1, 16, 72, 72], [16, 16, 4, 4], p),
            common::engine().expect("engine"),
            true,
        ),
        (tcase([1, 16, 8, 8], [16, 16, 4, 4], p), folding(), true),
        (tcase([1, 16, 9, 8], [16, 16, 4, 4], p), folding(), false),
    ] {
        let d = data(&c);
        let Op::Transposed(params) = c.op else {
            unreachable!("transposed cases")
        };
        let l = ConvTranspose2d::with_options(
            engine,
            &d.w,
            c.weight,
            Some(&d.b),
            params,
            c.activation,
            LayerOptions {
                sub_pixel: Some(true),
                ..LayerOptions::default()
            },
        )
        .expect("layer");
        assert_eq!(l.sub_pixel_on(engine, c.input).unwrap(), sub, "{c:?}");
        let x = GpuTensor::upload(engine, &d.x, c.input).unwrap();
        let y = l.forward(engine, &x).unwrap().read(engine).unwrap();
        let r = reference::conv(&c.shape(), &d.x, &d.w, Some(&d.b), c.activation).unwrap();
        let cmp = compare(&r, c.activation, &y, Tolerance::F32Accumulation).unwrap();
        assert!(cmp.passed, "{c:?}: {cmp}");
    }
}

/// The Winograd form under small limits: slabs of tiles within a 1 MiB
/// binding, transform dispatches folded into 8 or 16 workgroups per
/// dimension, trusted modules for the GEMM. Splitting the tiles into slabs
/// changes no arithmetic (each tile's transforms and GEMM are the same), so
/// every limited run gives the full-limit bits; a shape whose input exceeds
/// the binding runs on the direct kernels instead, within the direct bound.
#[test]
fn winograd_slabs_fold_and_fall_back() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let full = common::engine().expect("engine");
    let cases = [
        // 2·8·14·16 = 3584 tiles of 36·32 floats: 4 slabs of 1 MiB (F4).
        case([2, 32, 56, 61], [24, 32, 3, 3], pad1()),
        // A 1.2 MiB input: the direct kernels under the 1 MiB limit.
        case([1, 40, 96, 80], [16, 40, 3, 3], pad1()),
        // Asymmetric padding, odd sizes, F2.
        case(
            [3, 17, 23, 9],
            [20, 17, 3, 3],
            Conv2dParams::default().padding(Padding::new(2, 0, 1, 3)),
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let m = if i == 2 { Winograd::F2 } else { Winograd::F4 };
        let opts = LayerOptions {
            winograd: Some(m),
            ..LayerOptions::default()
        };
        let d = data(c);
        let Op::Forward(p) = c.op else {
            unreachable!("forward cases")
        };
        let run = |e: &Engine| {
            let l = Conv2d::with_options(e, &d.w, c.weight, Some(&d.b), p, c.activation, opts)
                .expect("layer");
            let x = GpuTensor::upload(e, &d.x, c.input).expect("upload");
            let y = l.forward(e, &x).and_then(|y| y.read(e)).expect("run");
            let r = l.reference_on(e, &d.x, c.input).expect("reference");
            let cmp = compare(&r, c.activation, &y, Tolerance::F32Accumulation).expect("compare");
            assert!(cmp.passed, "{c:?}: {cmp}");
            (y, l.winograd_on(e, c.input).expect("shape"))
        };
        let (want, wm) = run(full);
        assert!(wm.is_some(), "{c:?} runs in Winograd form at full limits");
        for e in [chunking(), folding(), trusted()] {
            let (got, m) = run(e);
            if m.is_some() {
                assert_eq!(bits_equal(&want, &got), None, "{c:?} on {:?}", e.limits());
            } else {
                assert_eq!(i, 1, "{c:?}: only the large input falls back");
            }
        }
    }
}

/// `conv2d_shared` (forced: lavapipe's planner never picks it) under the
/// same contract: batch, channel-block and row-band chunks (staged and
/// direct), folded dispatches, and trusted modules give the unchunked bits.
#[test]
fn shared_kernel_chunks_folds_and_runs_trusted() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let shared = |c: Case| Case {
        kernel: Some(Kernel::Conv2dShared),
        ..c
    };
    let strided = Conv2dParams::default()
        .stride(2, 1)
        .dilation(2, 2)
        .padding(Padding::new(3, 1, 0, 2));
    for (engine, c, level) in [
        (
            chunking(),
            shared(case([5, 15, 61, 59], [16, 15, 3, 3], pad1())),
            ChunkLevel::Batch,
        ),
        (
            chunking(),
            shared(case([1, 48, 80, 80], [96, 12, 3, 3], pad1().groups(4))),
            ChunkLevel::Channels,
        ),
        (
            chunking(),
            shared(case([1, 32, 128, 96], [24, 32, 3, 3], pad1())),
            ChunkLevel::Rows,
        ),
        (
            chunking(),
            shared(case(
                [1, 16, 200, 100],
                [32, 16, 1, 1],
                Conv2dParams::default(),
            )),
            ChunkLevel::Rows,
        ),
        (
            chunking(),
            shared(case([2, 9, 240, 130], [20, 9, 3, 2], strided)),
            ChunkLevel::Rows,
        ),
        (
            folding(),
            shared(case([2, 16, 90, 90], [80, 16, 3, 3], pad1())),
            ChunkLevel::Whole,
        ),
        (
            trusted(),
            shared(case([1, 32, 128, 96], [24, 32, 3, 3], pad1())),
            ChunkLevel::Rows,
        ),
        (
            trusted(),
            shared(case([2, 9, 240, 130], [20, 9, 3, 2], strided)),
            ChunkLevel::Rows,
        ),
    ] {
        let s = same_as_unchunked(engine, &c);
        assert_eq!(s.level, level, "{c:?}: {s:?}");
        if level == ChunkLevel::Whole {
            assert!(s.folded > 0, "{c:?}: {s:?}");
        }
    }
}

#[test]
fn unchunkable_shapes_are_typed_errors() {
    let _ = gpu_or_skip!();
    let _serial = serial();
    let e = chunking();
    // One input row of 300000 floats is larger than the 1 MiB binding; the
    // tensor itself (2.4 MB) is a valid buffer.
    let c = case([1, 1, 2, 300_000], [1, 1, 1, 1], Conv2dParams::default());
    let d = data(&c);
    match run_on(e, &c, &d) {
        Err(Error::ExceedsLimit {
            what: "one input row",
            size: 1_200_000,
            max: BINDING,
        }) => {}
        other => panic!("{:?}", other.map(|r| r.1)),
    }
    // A tensor beyond max_buffer_size is refused when it is created.
    let max = e.limits().max_buffer_size;
    let len = (max / 4 + 1) as usize;
    match GpuTensor::empty(e, [1, 1, 1, len]) {
        Err(Error::ExceedsLimit { what: "tensor", .. }) => {}
        Err(Error::SizeOverflow { .. }) => {} // beyond u32 elements first
        other => panic!("{other:?}"),
    }
}

/// One real layer whose input (146.5 MiB) exceeds lavapipe's real 128 MiB
/// storage binding: it runs in staged row bands on the device's own limits
/// and is checked against the reference in full. `cargo test --release
/// --test gpu_limits -- --ignored` (GPU and reference 2.8 G multiply-adds
/// each; 39 s on a 2-core machine shared with other builds).
#[test]
#[ignore = "large: 154 MB input, 2.8 G multiply-adds on the GPU and in the reference"]
fn layer_beyond_the_real_binding_limit() {
    let full = gpu_or_skip!();
    let _serial = serial();
    let c = case([1, 64, 1500, 400], [8, 64, 3, 3], pad1());
    let s = c.shape();
    let input_bytes = s.input_len() as u64 * 4;
    assert!(input_bytes > full.limits().max_storage_buffer_binding_size);
    let d = data(&c);
    let t0 = std::time::Instant::now();
    let (got, split) = run_on(full, &c, &d).expect("run");
    eprintln!("GPU: {split:?} in {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(split.level, ChunkLevel::Rows);
    assert!(split.staged_inputs > 0);
    assert!(split.largest_binding <= full.limits().max_storage_buffer_binding_size);
    let t0 = std::time::Instant::now();
    let r = reference::conv(&s, &d.x, &d.w, Some(&d.b), c.activation).expect("reference");
    let cmp = compare(&r, c.activation, &got, Tolerance::F32Accumulation).expect("compare");
    eprintln!(
        "reference: {} outputs in {:.1} s: {cmp}",
        got.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(cmp.passed, "{cmp}");
}

/// A grid beyond the device's real 65535 workgroups per dimension: a 1-D
/// convolution over 4.3 M columns on the direct kernel (67188 workgroups in
/// x), folded, against the reference.
#[test]
fn folds_past_the_real_workgroup_limit() {
    let full = gpu_or_skip!();
    let _serial = serial();
    let c = Case {
        kernel: Some(Kernel::Conv2dDirect),
        ..case(
            [1, 1, 1, 4_300_000],
            [1, 1, 1, 3],
            Conv2dParams::default().padding(Padding::symmetric(0, 1)),
        )
    };
    let groups = c.shape().output_len().div_ceil(64) as u64;
    assert!(groups > u64::from(full.limits().max_compute_workgroups_per_dimension));
    let d = data(&c);
    let (got, split) = run_on(full, &c, &d).expect("run");
    assert_eq!((split.level, split.folded), (ChunkLevel::Whole, 1));
    let r = reference::conv(&c.shape(), &d.x, &d.w, Some(&d.b), c.activation).expect("reference");
    let cmp = compare(&r, c.activation, &got, Tolerance::F32Accumulation).expect("compare");
    assert!(cmp.passed, "{cmp}");
}
