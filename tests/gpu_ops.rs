//! The weightless network ops on the GPU vs the CPU reference: residual
//! `Add` (every fused activation), `Pool2d` (max and average), `GlobalAvgPool`
//! and channel `Concat` — seeded sweeps, hand-checked tiny cases, typed
//! errors, dispatches past 65 535 workgroups per dimension, and outputs in
//! buffers larger than the tensor (views, as a network's tensor pool makes).
//! Max pooling and concatenation are exact and must match bit for bit.

mod common;

use common::Rng;
use wgconv::reference::{self, compare, RefOutput, Tolerance};
use wgconv::{
    Activation, Add, Concat, Engine, Error, GlobalAvgPool, GpuTensor, Pool2d, Pool2dParams,
    PoolMode,
};

const ACTIVATIONS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.1),
    Activation::Silu,
];

/// `None` when `gpu` is within tolerance of `r`, else a description.
fn check(what: &str, r: &RefOutput, act: Activation, gpu: &[f32]) -> Option<String> {
    let cmp = compare(r, act, gpu, Tolerance::F32Accumulation).unwrap();
    (!cmp.passed).then(|| format!("{what}: {cmp}"))
}

/// Uploads random data of `shape`.
fn random(engine: &Engine, rng: &mut Rng, shape: [usize; 4]) -> (Vec<f32>, GpuTensor) {
    let x = rng.vec(shape.iter().product());
    let t = GpuTensor::upload(engine, &x, shape).unwrap();
    (x, t)
}

/// A new command encoder.
fn encoder(engine: &Engine) -> wgpu::CommandEncoder {
    engine.device().create_command_encoder(&Default::default())
}

fn random_shape(rng: &mut Rng) -> [usize; 4] {
    [
        rng.range(1, 2) as usize,
        rng.range(1, 9) as usize,
        rng.range(1, 13) as usize,
        rng.range(1, 13) as usize,
    ]
}

// --------------------------------------------------------------------- add

#[test]
fn add_sweep_matches_reference() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x0add);
    let mut failures = Vec::new();
    // Both forms: vec4s (a multiple of 4 elements; tails inside a workgroup's
    // span) and one element per invocation.
    let mut vec4 = [0; 2];
    for i in 0..30 {
        let act = ACTIVATIONS[i % ACTIVATIONS.len()];
        let shape = random_shape(&mut rng);
        let (a, at) = random(engine, &mut rng, shape);
        let (b, bt) = random(engine, &mut rng, shape);
        let op = Add::new(act);
        vec4[usize::from(op.plan_for(engine, shape).unwrap().key.is("V", 4))] += 1;
        let y = if i % 3 == 2 {
            let y = GpuTensor::empty(engine, shape).unwrap();
            let mut enc = encoder(engine);
            op.record_into(engine, &mut enc, &at, &bt, &y).unwrap();
            engine.queue().submit([enc.finish()]);
            y
        } else {
            op.forward(engine, &at, &bt).unwrap()
        };
        assert_eq!(y.shape(), shape);
        let gpu = y.read(engine).unwrap();
        let r = reference::add(&a, &b, act).unwrap();
        // The sum of two f32 is exact in f64: one rounding, the same on both sides.
        if matches!(act, Activation::None | Activation::Relu | Activation::Relu6)
            && gpu != r.to_f32()
        {
            failures.push(format!("{shape:?} {act}: not the correctly rounded sum"));
        }
        failures.extend(check(&format!("{shape:?} {act}"), &r, act, &gpu));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(vec4[0] > 3 && vec4[1] > 3, "forms run: {vec4:?}");
}

#[test]
fn add_by_hand_and_of_a_tensor_with_itself() {
    let engine = gpu_or_skip!();
    let a = GpuTensor::upload(engine, &[1.0, -2.0, 3.0, -4.0, 5.0, 8.0], [1, 1, 2, 3]).unwrap();
    let b = GpuTensor::upload(engine, &[0.5, 1.0, -5.0, 2.0, 1.5, -1.0], [1, 1, 2, 3]).unwrap();
    let relu = Add::new(Activation::Relu);
    assert_eq!(relu.activation(), Activation::Relu);
    let y = relu.forward(engine, &a, &b).unwrap().read(engine).unwrap();
    assert_eq!(y, vec![1.5, 0.0, 0.0, 0.0, 6.5, 7.0]);
    let relu6 = Add::new(Activation::Relu6);
    let y = relu6.forward(engine, &a, &b).unwrap().read(engine).unwrap();
    assert_eq!(y, vec![1.5, 0.0, 0.0, 0.0, 6.0, 6.0]);
    // Both inputs the same tensor: two read-only bindings of one buffer.
    let y = Add::new(Activation::None)
        .forward(engine, &a, &a)
        .unwrap()
        .read(engine)
        .unwrap();
    assert_eq!(y, vec![2.0, -4.0, 6.0, -8.0, 10.0, 16.0]);
}

#[test]
fn add_errors_are_typed() {
    let engine = gpu_or_skip!();
    let op = Add::new(Activation::None);
    let a = GpuTensor::upload(engine, &[1.0; 12], [1, 3, 2, 2]).unwrap();
    let b = GpuTensor::upload(engine, &[1.0; 12], [1, 3, 4, 1]).unwrap();
    assert!(matches!(
        op.output_shape(a.shape(), b.shape()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        op.forward(engine, &a, &b),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut enc = encoder(engine);
    // Wrong output shape (same element count), then the output aliasing an input.
    let wrong = GpuTensor::empty(engine, [1, 3, 4, 1]).unwrap();
    assert!(matches!(
        op.record_into(engine, &mut enc, &a, &a, &wrong),
        Err(Error::BadShape { what: "output", .. })
    ));
    let c = GpuTensor::upload(engine, &[2.0; 12], [1, 3, 2, 2]).unwrap();
    assert!(matches!(
        op.record_into(engine, &mut enc, &a, &c, &a),
        Err(Error::AliasedOutput { input: 0 })
    ));
    assert!(matches!(
        op.record_into(engine, &mut enc, &a, &c, &c.view([1, 3, 2, 2]).unwrap()),
        Err(Error::AliasedOutput { input: 1 })
    ));
    // Nothing was recorded: the encoder is still valid.
    engine.queue().submit([enc.finish()]);
    engine.wait().unwrap();
    // Ok after the errors.
    let y = op.forward(engine, &a, &c).unwrap().read(engine).unwrap();
    assert_eq!(y, vec![3.0; 12]);
}

// ------------------------------------------------------------------ pool2d

#[derive(Debug, Clone, Copy)]
struct PoolCase {
    input: [usize; 4],
    params: Pool2dParams,
}

fn random_pool_case(rng: &mut Rng, i: usize) -> PoolCase {
    let mode = if i.is_multiple_of(2) {
        PoolMode::Max
    } else {
        PoolMode::Avg
    };
    let kernel = (rng.range(1, 4), rng.range(1, 4));
    let stride = if rng.chance(40) {
        kernel
    } else {
        (rng.range(1, 4), rng.range(1, 4))
    };
    let input = [
        rng.range(1, 2) as usize,
        rng.range(1, 6) as usize,
        (kernel.0 + rng.range(0, 10)) as usize,
        (kernel.1 + rng.range(0, 10)) as usize,
    ];
    PoolCase {
        input,
        params: Pool2dParams {
            mode,
            kernel,
            stride,
        },
    }
}

#[test]
fn pool2d_sweep_matches_reference() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x9001);
    let mut failures = Vec::new();
    let cases: Vec<PoolCase> = (0..40).map(|i| random_pool_case(&mut rng, i)).collect();
    for (i, case) in cases.iter().enumerate() {
        let op = Pool2d::new(case.params).unwrap();
        let (x, xt) = random(engine, &mut rng, case.input);
        let out_shape = op.output_shape(case.input).unwrap();
        let y = if i % 4 == 3 {
            let y = GpuTensor::empty(engine, out_shape).unwrap();
            let mut enc = encoder(engine);
            op.record_into(engine, &mut enc, &xt, &y).unwrap();
            engine.queue().submit([enc.finish()]);
            y
        } else {
            op.forward(engine, &xt).unwrap()
        };
        assert_eq!(y.shape(), out_shape);
        let gpu = y.read(engine).unwrap();
        let r = reference::pool2d(&case.params, &x, case.input).unwrap();
        if case.params.mode == PoolMode::Max && gpu != r.to_f32() {
            failures.push(format!("{case:?}: max pooling is not exact"));
        }
        failures.extend(check(&format!("{case:?}"), &r, Activation::None, &gpu));
    }
    // The sweep covers both modes, every window and stride extent, and rectangular windows.
    for v in 1..=4 {
        assert!(cases.iter().any(|c| c.params.kernel.0 == v));
        assert!(cases.iter().any(|c| c.params.kernel.1 == v));
        assert!(cases.iter().any(|c| c.params.stride.0 == v));
        assert!(cases.iter().any(|c| c.params.stride.1 == v));
    }
    assert!(cases
        .iter()
        .any(|c| c.params.kernel.0 != c.params.kernel.1 && c.params.mode == PoolMode::Avg));
    assert!(cases.iter().any(|c| c.input[0] == 2));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pool2d_by_hand() {
    let engine = gpu_or_skip!();
    #[rustfmt::skip]
    let x = [
         1.0,  2.0,  5.0, -1.0,
         3.0,  4.0,  0.0, -2.0,
        -7.0, -8.0,  9.0, 10.0,
        -6.0, -5.0, 12.0, 11.0,
    ];
    let xt = GpuTensor::upload(engine, &x, [1, 1, 4, 4]).unwrap();
    let max = Pool2d::new(Pool2dParams::max2x2()).unwrap();
    assert_eq!(max.params(), &Pool2dParams::max2x2());
    let y = max.forward(engine, &xt).unwrap();
    assert_eq!(y.shape(), [1, 1, 2, 2]);
    assert_eq!(y.read(engine).unwrap(), vec![4.0, 5.0, -5.0, 12.0]);
    let avg = Pool2d::new(Pool2dParams::avg2x2()).unwrap();
    let y = avg.forward(engine, &xt).unwrap().read(engine).unwrap();
    assert_eq!(y, vec![2.5, 0.5, -6.5, 10.5]);
    // 3×3 windows, stride 1: a 2×2 output of overlapping windows.
    let max3 = Pool2d::new(Pool2dParams {
        mode: PoolMode::Max,
        kernel: (3, 3),
        stride: (1, 1),
    })
    .unwrap();
    let y = max3.forward(engine, &xt).unwrap().read(engine).unwrap();
    assert_eq!(y, vec![9.0, 10.0, 12.0, 12.0]);
    // Floor mode: a 3×5 input with 2×2 windows, stride 2, drops the last row and column.
    let x: Vec<f32> = (0..15).map(|v| v as f32).collect();
    let xt = GpuTensor::upload(engine, &x, [1, 1, 3, 5]).unwrap();
    let y = max.forward(engine, &xt).unwrap();
    assert_eq!(y.shape(), [1, 1, 1, 2]);
    assert_eq!(y.read(engine).unwrap(), vec![6.0, 8.0]);
}

#[test]
fn pool2d_errors_are_typed() {
    let engine = gpu_or_skip!();
    let p = |kernel, stride| Pool2dParams {
        mode: PoolMode::Max,
        kernel,
        stride,
    };
    assert!(matches!(
        Pool2d::new(p((0, 1), (1, 1))),
        Err(Error::ZeroPoolKernel { h: 0, w: 1 })
    ));
    assert!(matches!(
        Pool2d::new(p((2, 2), (0, 2))),
        Err(Error::ZeroStride { h: 0, w: 2 })
    ));
    let op = Pool2d::new(p((3, 2), (1, 1))).unwrap();
    assert!(matches!(
        op.output_shape([1, 1, 2, 5]),
        Err(Error::PoolWindowLargerThanInput {
            kernel: 3,
            input: 2,
            ..
        })
    ));
    let small = GpuTensor::upload(engine, &[1.0; 10], [1, 1, 2, 5]).unwrap();
    assert!(matches!(
        op.forward(engine, &small),
        Err(Error::PoolWindowLargerThanInput { .. })
    ));
    let x = GpuTensor::upload(engine, &[1.0; 32], [1, 2, 4, 4]).unwrap();
    let max = Pool2d::new(Pool2dParams::max2x2()).unwrap();
    let mut enc = encoder(engine);
    let wrong = GpuTensor::empty(engine, [1, 2, 2, 3]).unwrap();
    assert!(matches!(
        max.record_into(engine, &mut enc, &x, &wrong),
        Err(Error::BadShape { what: "output", .. })
    ));
    // An output of the right shape inside the input's buffer.
    let inside = x.view([1, 2, 2, 2]).unwrap();
    assert!(matches!(
        max.record_into(engine, &mut enc, &x, &inside),
        Err(Error::AliasedOutput { input: 0 })
    ));
    engine.queue().submit([enc.finish()]);
    engine.wait().unwrap();
}

// --------------------------------------------------------- global avg pool

#[test]
fn global_avg_pool_sweep_matches_reference() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x6a9);
    let op = GlobalAvgPool::new();
    // CNN heads (7×7 … 33×33 planes, many channels), ragged plane lengths (not multiples of
    // 4: the shader's tail loop), single pixels and single rows or columns.
    let mut shapes = vec![
        [1, 512, 7, 7],
        [2, 64, 14, 14],
        [1, 32, 33, 33],
        [1, 96, 28, 28],
        [3, 5, 1, 1],
        [1, 3, 1, 7],
        [2, 4, 9, 1],
        [1, 1, 2, 2],
        [1, 7, 56, 56],
    ];
    shapes.extend((0..12).map(|_| random_shape(&mut rng)));
    let mut failures = Vec::new();
    for (i, &shape) in shapes.iter().enumerate() {
        let (x, xt) = random(engine, &mut rng, shape);
        let out_shape = [shape[0], shape[1], 1, 1];
        assert_eq!(op.output_shape(shape).unwrap(), out_shape);
        let y = if i % 3 == 1 {
            let y = GpuTensor::empty(engine, out_shape).unwrap();
            let mut enc = encoder(engine);
            op.record_into(engine, &mut enc, &xt, &y).unwrap();
            engine.queue().submit([enc.finish()]);
            y
        } else {
            op.forward(engine, &xt).unwrap()
        };
        assert_eq!(y.shape(), out_shape);
        let r = reference::global_avg_pool(&x, shape).unwrap();
        failures.extend(check(
            &format!("{shape:?}"),
            &r,
            Activation::None,
            &y.read(engine).unwrap(),
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn global_avg_pool_by_hand_and_errors() {
    let engine = gpu_or_skip!();
    let op = GlobalAvgPool::new();
    // Two images, two channels, 1×3 planes.
    let x = GpuTensor::upload(
        engine,
        &[1.0, 2.0, 3.0, -3.0, 0.0, 6.0, 4.0, 4.0, 4.0, 9.0, 0.0, 0.0],
        [2, 2, 1, 3],
    )
    .unwrap();
    let y = op.forward(engine, &x).unwrap();
    assert_eq!(y.shape(), [2, 2, 1, 1]);
    assert_eq!(y.read(engine).unwrap(), vec![2.0, 1.0, 4.0, 3.0]);
    let mut enc = encoder(engine);
    let wrong = GpuTensor::empty(engine, [2, 1, 2, 1]).unwrap();
    assert!(matches!(
        op.record_into(engine, &mut enc, &x, &wrong),
        Err(Error::BadShape { what: "output", .. })
    ));
    assert!(matches!(
        op.record_into(engine, &mut enc, &x, &x.view([2, 2, 1, 1]).unwrap()),
        Err(Error::AliasedOutput { input: 0 })
    ));
    engine.queue().submit([enc.finish()]);
    engine.wait().unwrap();
}

// ------------------------------------------------------------------ concat

#[test]
fn concat_sweep_is_exact() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xca7);
    let op = Concat::new();
    for i in 0..20 {
        let [n, _, h, w] = random_shape(&mut rng);
        let n = n + (i % 3 == 0) as usize;
        let count = rng.range(1, 4) as usize;
        let inputs: Vec<(Vec<f32>, GpuTensor)> = (0..count)
            .map(|_| {
                let c = rng.range(1, 7) as usize;
                random(engine, &mut rng, [n, c, h, w])
            })
            .collect();
        let tensors: Vec<&GpuTensor> = inputs.iter().map(|(_, t)| t).collect();
        let shapes: Vec<[usize; 4]> = tensors.iter().map(|t| t.shape()).collect();
        let c: usize = shapes.iter().map(|s| s[1]).sum();
        assert_eq!(op.output_shape(&shapes).unwrap(), [n, c, h, w]);
        let y = if i % 2 == 1 {
            let y = GpuTensor::empty(engine, [n, c, h, w]).unwrap();
            let mut enc = encoder(engine);
            op.record_into(engine, &mut enc, &tensors, &y).unwrap();
            engine.queue().submit([enc.finish()]);
            y
        } else {
            op.forward(engine, &tensors).unwrap()
        };
        let host: Vec<(&[f32], [usize; 4])> =
            inputs.iter().map(|(x, t)| (&x[..], t.shape())).collect();
        let r = reference::concat(&host).unwrap();
        let gpu = y.read(engine).unwrap();
        assert_eq!(gpu, r.to_f32(), "{shapes:?}");
        assert!(check("concat", &r, Activation::None, &gpu).is_none());
    }
}

#[test]
fn concat_by_hand_and_errors() {
    let engine = gpu_or_skip!();
    let op = Concat::new();
    // Two images: the output interleaves each image's channel blocks; an input may repeat.
    let a = GpuTensor::upload(engine, &[1.0, 2.0, 3.0, 4.0], [2, 1, 1, 2]).unwrap();
    let b = GpuTensor::upload(
        engine,
        &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
        [2, 2, 1, 2],
    )
    .unwrap();
    let y = op.forward(engine, &[&a, &b, &a]).unwrap();
    assert_eq!(y.shape(), [2, 4, 1, 2]);
    assert_eq!(
        y.read(engine).unwrap(),
        vec![1.0, 2.0, 5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0, 9.0, 10.0, 11.0, 12.0, 3.0, 4.0]
    );
    // One input: a copy.
    assert_eq!(
        op.forward(engine, &[&b]).unwrap().read(engine).unwrap(),
        b.read(engine).unwrap()
    );
    assert!(matches!(
        op.forward(engine, &[]),
        Err(Error::NoInputs { what: "concat" })
    ));
    let other = GpuTensor::upload(engine, &[0.0; 6], [2, 1, 1, 3]).unwrap();
    assert!(matches!(
        op.forward(engine, &[&a, &other]),
        Err(Error::ConcatMismatch { index: 1, .. })
    ));
    let mut enc = encoder(engine);
    let wrong = GpuTensor::empty(engine, [2, 3, 2, 1]).unwrap();
    assert!(matches!(
        op.record_into(engine, &mut enc, &[&a, &b], &wrong),
        Err(Error::BadShape { what: "output", .. })
    ));
    let big = GpuTensor::empty(engine, [2, 8, 1, 2]).unwrap();
    let out = big.view([2, 2, 1, 2]).unwrap();
    assert!(matches!(
        op.record_into(
            engine,
            &mut enc,
            &[&a, &out.view([2, 1, 1, 2]).unwrap()],
            &out
        ),
        Err(Error::AliasedOutput { input: 1 })
    ));
    engine.queue().submit([enc.finish()]);
    engine.wait().unwrap();
}

// ------------------------------------------------- limits, views, chaining

/// More than 65 535 · 64 outputs: the grid needs a second row of workgroups.
const BIG: usize = 65_535 * 64 + 1;

#[test]
fn outputs_beyond_one_grid_row() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xb16);
    // add: 65·255·257 = 4 259 775 elements, an odd count: one per invocation
    // (a multiple of 4 would take 16 per invocation, 4 vec4s).
    let shape = [1, 65, 255, 257];
    let op = Add::new(Activation::Relu);
    assert!(op.plan_for(engine, shape).unwrap().groups[1] > 1);
    let (a, at) = random(engine, &mut rng, shape);
    let (b, bt) = random(engine, &mut rng, shape);
    let gpu = op.forward(engine, &at, &bt).unwrap().read(engine).unwrap();
    assert_eq!(
        gpu,
        reference::add(&a, &b, Activation::Relu).unwrap().to_f32()
    );
    // max pool with a 1×2 window, stride 1 over the same input: 65·256·255 outputs.
    let params = Pool2dParams {
        mode: PoolMode::Max,
        kernel: (1, 2),
        stride: (1, 1),
    };
    let pool = Pool2d::new(params).unwrap();
    let plan = pool.plan_for(shape).unwrap();
    assert!(plan.groups[1] > 1 && pool.shape_for(shape).unwrap().output_len() >= BIG);
    let gpu = pool.forward(engine, &at).unwrap().read(engine).unwrap();
    assert_eq!(gpu, reference::pool2d(&params, &a, shape).unwrap().to_f32());
    // global average pool over more planes than one grid row holds.
    let shape = [1, BIG + 1000, 1, 2];
    let gap = GlobalAvgPool::new();
    assert!(gap.plan_for(shape).unwrap().groups[1] > 1);
    let (x, xt) = random(engine, &mut rng, shape);
    let gpu = gap.forward(engine, &xt).unwrap().read(engine).unwrap();
    let r = reference::global_avg_pool(&x, shape).unwrap();
    assert!(check("global_avg_pool", &r, Activation::None, &gpu).is_none());
}

/// `record_into` an output that is a view of a larger buffer filled with a
/// sentinel writes exactly the view's elements; inputs may be views too.
#[test]
fn outputs_in_larger_buffers_write_only_their_elements() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0x5ee);
    const SENTINEL: f32 = 1234.5;
    let pool_buffer =
        |len: usize| GpuTensor::upload(engine, &vec![SENTINEL; len], [1, 1, 1, len]).unwrap();
    let check_view = |big: &GpuTensor, expected: &[f32]| {
        let all = big.read(engine).unwrap();
        assert_eq!(&all[..expected.len()], expected);
        assert!(all[expected.len()..].iter().all(|&v| v == SENTINEL));
    };
    let shape = [2, 3, 5, 7];
    let len: usize = shape.iter().product();
    let (a, at) = random(engine, &mut rng, shape);
    // An input that is itself a view: its buffer holds garbage past the tensor.
    let b: Vec<f32> = rng.vec(len);
    let mut b_padded = b.clone();
    b_padded.extend(rng.vec(37));
    let bt = GpuTensor::upload(engine, &b_padded, [1, 1, 1, len + 37])
        .unwrap()
        .view(shape)
        .unwrap();

    let mut enc = encoder(engine);
    let add_big = pool_buffer(len + 100);
    let add = Add::new(Activation::None);
    add.record_into(engine, &mut enc, &at, &bt, &add_big.view(shape).unwrap())
        .unwrap();
    let pool = Pool2d::new(Pool2dParams::avg2x2()).unwrap();
    let pool_shape = pool.output_shape(shape).unwrap();
    let pool_big = pool_buffer(len);
    pool.record_into(engine, &mut enc, &at, &pool_big.view(pool_shape).unwrap())
        .unwrap();
    let gap = GlobalAvgPool::new();
    let gap_big = pool_buffer(64);
    gap.record_into(engine, &mut enc, &bt, &gap_big.view([2, 3, 1, 1]).unwrap())
        .unwrap();
    let concat_big = pool_buffer(3 * len);
    Concat::new()
        .record_into(
            engine,
            &mut enc,
            &[&bt, &at],
            &concat_big.view([2, 6, 5, 7]).unwrap(),
        )
        .unwrap();
    engine.queue().submit([enc.finish()]);

    check_view(
        &add_big,
        &reference::add(&a, &b, Activation::None).unwrap().to_f32(),
    );
    let r = reference::pool2d(&Pool2dParams::avg2x2(), &a, shape).unwrap();
    let all = pool_big.read(engine).unwrap();
    assert!(check(
        "avg pool view",
        &r,
        Activation::None,
        &all[..r.values.len()]
    )
    .is_none());
    assert!(all[r.values.len()..].iter().all(|&v| v == SENTINEL));
    let r = reference::global_avg_pool(&b, shape).unwrap();
    let all = gap_big.read(engine).unwrap();
    assert!(check("global pool view", &r, Activation::None, &all[..6]).is_none());
    assert!(all[6..].iter().all(|&v| v == SENTINEL));
    check_view(
        &concat_big,
        &reference::concat(&[(&b, shape), (&a, shape)])
            .unwrap()
            .to_f32(),
    );
    // A view larger than its tensor is refused.
    assert!(matches!(
        at.view([2, 3, 5, 8]),
        Err(Error::BadShape { what: "view", .. })
    ));
}

/// A tensor larger than one storage binding is a typed error (these ops
/// are not chunked), not a validation panic.
#[test]
fn tensors_beyond_one_binding_are_refused() {
    let engine = gpu_or_skip!();
    let max = engine.limits().max_storage_buffer_binding_size;
    let len = max / 4 + 1;
    if len * 4 > engine.limits().max_buffer_size || len > 1 << 26 {
        eprintln!("SKIPPED: binding limit {max} too large to exceed cheaply");
        return;
    }
    let x = GpuTensor::empty(engine, [1, 1, 1, len as usize]).unwrap();
    assert!(matches!(
        GlobalAvgPool::new().forward(engine, &x),
        Err(Error::ExceedsLimit { size, .. }) if size == len * 4
    ));
    engine.check_lost().unwrap();
}

/// A ResNet-style tail in one encoder: max pool, residual add with ReLU,
/// concat, global average pool — no readback between.
#[test]
fn ops_chain_in_one_encoder() {
    let engine = gpu_or_skip!();
    let mut rng = Rng::new(0xc4a1);
    let (x, xt) = random(engine, &mut rng, [2, 4, 8, 6]);
    let (s, st) = random(engine, &mut rng, [2, 4, 4, 3]);
    let max = Pool2d::new(Pool2dParams::max2x2()).unwrap();
    let add = Add::new(Activation::Relu);
    let gap = GlobalAvgPool::new();
    let mut enc = encoder(engine);
    let p = max.record(engine, &mut enc, &xt).unwrap();
    let r = add.record(engine, &mut enc, &p, &st).unwrap();
    let c = Concat::new().record(engine, &mut enc, &[&r, &p]).unwrap();
    let g = gap.record(engine, &mut enc, &c).unwrap();
    engine.queue().submit([enc.finish()]);
    let p_ref = reference::pool2d(&Pool2dParams::max2x2(), &x, [2, 4, 8, 6])
        .unwrap()
        .to_f32();
    let r_ref = reference::add(&p_ref, &s, Activation::Relu)
        .unwrap()
        .to_f32();
    let c_ref = reference::concat(&[(&r_ref, [2, 4, 4, 3]), (&p_ref, [2, 4, 4, 3])]).unwrap();
    let g_ref = reference::global_avg_pool(&c_ref.to_f32(), [2, 8, 4, 3]).unwrap();
    assert_eq!(c.read(engine).unwrap(), c_ref.to_f32());
    let gpu = g.read(engine).unwrap();
    assert!(check("chain", &g_ref, Activation::None, &gpu).is_none());
}
