//! Networks on the GPU: every reference network (small size) verified layer
//! by layer and end to end against the CPU reference, the pooled run
//! identical to a run with a buffer per value, the memory plan, the plan
//! report's numbers, recording into a caller's encoder, other input shapes,
//! and typed errors.

mod common;

use wgconv::net::{ReceptiveField, Value};
use wgconv::nets::{self, Size, NETS};
use wgconv::{
    Activation, Conv2dParams, Error, GpuTensor, Network, Padding, Pool2dParams, UpsampleParams,
};

fn weight(n: usize, seed: u64) -> Vec<f32> {
    let mut r = common::Rng::new(seed);
    (0..n).map(|_| 0.3 * r.unit()).collect()
}

#[test]
fn every_reference_network_matches_the_reference() {
    let engine = gpu_or_skip!();
    for spec in &NETS {
        let net = spec.build(engine, Size::Small, 11).expect("build");
        let shape = spec.input_shape(Size::Small);
        let x = spec.input(Size::Small, 11);
        let check = net.verify(engine, &x, shape, true).expect("verify");
        for (name, c) in &check.layers {
            assert!(c.passed, "{}: layer {name}: {c}", spec.name);
        }
        assert!(check.pooled_matches, "{}: pooled run differs", spec.name);
        let e2e = check.end_to_end.as_ref().expect("end to end");
        assert!(e2e.passed, "{}: end to end: {e2e}", spec.name);
        assert!(check.passed());
        // The output is not trivially zero (a dead ReLU chain would pass):
        // after a final ReLU about half is positive.
        let y = net.run(engine, &x, shape).expect("run");
        let nonzero = y.iter().filter(|v| **v != 0.0).count();
        assert!(nonzero * 4 > y.len(), "{}: output mostly zero", spec.name);
        eprintln!(
            "{}: {} layers, worst layer {:?}, end to end {e2e}",
            spec.name,
            net.layers().len(),
            check.worst().map(|(n, c)| (n, c.worst_ratio))
        );
    }
}

#[test]
fn the_reference_networks_have_their_published_shapes() {
    let engine = gpu_or_skip!();
    let expect = [
        ("context_module", [1, 21, 64, 64], 8),
        ("context_module_large", [1, 21, 64, 64], 8),
        ("mobilenet_v2_block", [1, 24, 56, 56], 4),
        ("mobilenet_v2", [1, 1280, 7, 7], 52 + 10),
        ("aspp", [1, 256, 33, 33], 9),
        ("resnext_block", [1, 256, 56, 56], 4),
        ("decoder", [1, 3, 64, 64], 5),
        ("decoder_upsample", [1, 3, 64, 64], 5),
    ];
    for (name, out, layers) in expect {
        let spec = nets::select(name)[0];
        let net = spec.build(engine, Size::Full, 1).expect("build");
        assert_eq!(
            net.output_shape(spec.input_shape(Size::Full))
                .expect("shape"),
            out,
            "{name}"
        );
        assert_eq!(net.layers().len(), layers, "{name}");
    }
    // MobileNetV2 has 3.4M parameters with its classifier (1.28M of them),
    // so about 2.2M without; 300M multiply-adds.
    let spec = nets::select("mobilenet_v2")[0];
    let net = spec.build(engine, Size::Full, 1).expect("build");
    let input = spec.input_shape(Size::Full);
    let report = net.report(engine, input).expect("report");
    let params: u64 = report.iter().map(|l| l.params).sum();
    assert!((2_200_000..2_300_000).contains(&params), "{params}");
    let macs = net.macs(input).expect("macs");
    assert!((290_000_000..310_000_000).contains(&macs), "{macs}");
}

#[test]
fn the_plan_report_counts_fields_params_and_separable_savings() {
    let engine = gpu_or_skip!();
    // The context module's receptive fields (Yu & Koltun 2016, Table 1).
    let spec = nets::select("context_module")[0];
    let net = spec.build(engine, Size::Full, 1).expect("build");
    let report = net
        .report(engine, spec.input_shape(Size::Full))
        .expect("report");
    let rf: Vec<ReceptiveField> = report.iter().map(|l| l.receptive_field).collect();
    let expect = [3, 5, 9, 17, 33, 65, 67, 67].map(|k| ReceptiveField::Pixels(k, k));
    assert_eq!(rf, expect);
    assert_eq!(report[0].params, 21 * 21 * 9 + 21);
    assert_eq!(report[0].macs, 21 * 21 * 9 * 64 * 64);
    assert!(report.iter().all(|l| !l.kernel.is_empty()));

    // The inverted residual: depthwise 3×3 on 144 channels then 1×1 to 24
    // replaces a 3×3 convolution from 144 to 24 channels.
    let spec = nets::select("mobilenet_v2_block")[0];
    let net = spec.build(engine, Size::Full, 1).expect("build");
    let report = net
        .report(engine, spec.input_shape(Size::Full))
        .expect("report");
    let project = report
        .iter()
        .find(|l| l.name == "block.project")
        .expect("project");
    let sep = project.separable.as_ref().expect("separable");
    assert_eq!(sep.depthwise, "block.dw");
    assert_eq!(sep.standard_macs, 9 * 144 * 24 * 56 * 56);
    assert_eq!(sep.macs, (9 * 144 + 144 * 24) * 56 * 56);
    assert_eq!(sep.standard_params, 9 * 144 * 24 + 24);
    assert_eq!(
        report.last().map(|l| l.inputs.clone()),
        Some(vec!["input".to_string(), "block.project".to_string()])
    );

    // ASPP's image-pooling branch sees the whole image.
    let spec = nets::select("aspp")[0];
    let net = spec.build(engine, Size::Small, 1).expect("build");
    let report = net
        .report(engine, spec.input_shape(Size::Small))
        .expect("report");
    let pool = report.iter().find(|l| l.name == "aspp.pool").expect("pool");
    assert_eq!(pool.receptive_field, ReceptiveField::Global);
    assert_eq!(
        report.last().map(|l| l.receptive_field),
        Some(ReceptiveField::Global)
    );
}

#[test]
fn the_pool_stays_near_the_two_largest_adjacent_activations() {
    let engine = gpu_or_skip!();
    for spec in &NETS {
        let net = spec.build(engine, Size::Full, 1).expect("build");
        let m = net.memory(spec.input_shape(Size::Full)).expect("memory");
        // Never above the unpooled total, and within twice the largest step
        // (one layer's inputs plus output, which no plan can go below).
        assert!(m.pool_bytes <= m.unpooled_bytes, "{}: {m:?}", spec.name);
        assert!(
            m.pool_bytes <= 2 * m.largest_step_bytes,
            "{}: {m:?}",
            spec.name
        );
        eprintln!(
            "{}: pool {} KiB in {} buffers, unpooled {} KiB, largest step {} KiB",
            spec.name,
            m.pool_bytes / 1024,
            m.pool_buffers,
            m.unpooled_bytes / 1024,
            m.largest_step_bytes / 1024
        );
    }
    // A chain of equal activations ping-pongs between two buffers.
    let spec = nets::select("context_module")[0];
    let net = spec.build(engine, Size::Full, 1).expect("build");
    let m = net.memory(spec.input_shape(Size::Full)).expect("memory");
    assert_eq!(m.pool_buffers, 2);
    assert_eq!(m.pool_bytes, 2 * 21 * 64 * 64 * 4);
}

#[test]
fn a_network_records_into_the_callers_encoder_and_reruns_identically() {
    let engine = gpu_or_skip!();
    let spec = nets::select("resnext_block")[0];
    let net = spec.build(engine, Size::Small, 3).expect("build");
    let shape = spec.input_shape(Size::Small);
    let x = spec.input(Size::Small, 3);
    let xt = GpuTensor::upload(engine, &x, shape).expect("upload");
    // Two runs in one encoder, one submission: the second run reuses the
    // pool the first wrote.
    let mut enc = engine
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    let a = net.record(engine, &mut enc, &xt).expect("record");
    let b = net.record(engine, &mut enc, &xt).expect("record");
    engine.queue().submit([enc.finish()]);
    let (a, b) = (a.read(engine).expect("read"), b.read(engine).expect("read"));
    assert_eq!(a, b);
    let reference = net.reference(&x, shape).expect("reference");
    let cmp = wgconv::reference::compare(
        &reference,
        Activation::None,
        &a,
        wgconv::Tolerance::Fixed {
            abs: wgconv::net::END_TO_END_TOLERANCE
                * reference.values.iter().fold(0f64, |m, v| m.max(v.abs())),
            rel: 0.0,
        },
    )
    .expect("compare");
    assert!(cmp.passed, "{cmp}");
}

#[test]
fn a_network_runs_on_other_input_shapes() {
    let engine = gpu_or_skip!();
    let spec = nets::select("context_module")[0];
    let net = spec.build(engine, Size::Small, 5).expect("build");
    for shape in [[2, 4, 24, 24], [1, 4, 17, 30]] {
        let n: usize = shape.iter().product();
        let x = weight(n, 9);
        let check = net.verify(engine, &x, shape, true).expect("verify");
        assert!(check.passed(), "{shape:?}: {:?}", check.worst());
    }
    let err = net.run(engine, &vec![0.0; 3 * 24 * 24], [1, 3, 24, 24]);
    assert!(
        matches!(err, Err(Error::Layer { ref source, .. }) if matches!(**source, Error::InputChannels { .. })),
        "{err:?}"
    );
}

#[test]
fn a_hand_built_dag_with_every_weightless_op() {
    let engine = gpu_or_skip!();
    let mut b = Network::builder(engine, [2, 3, 12, 12]).expect("builder");
    let x = b.input();
    let conv = |b: &mut wgconv::NetworkBuilder<'_>, name: &str, v: Value, k: usize, seed| {
        let c = b.shape(v).expect("shape")[1];
        let w = weight(k * c * 9, seed);
        b.conv2d(
            name,
            v,
            &w,
            [k, c, 3, 3],
            None,
            Conv2dParams::default().padding(Padding::uniform(1)),
            Activation::Relu,
        )
        .expect("conv")
    };
    let a = conv(&mut b, "a", x, 8, 1);
    let m = b.pool2d("max", a, Pool2dParams::max2x2()).expect("max");
    let v = b.pool2d("avg", a, Pool2dParams::avg2x2()).expect("avg");
    let s = b.add("sum", m, v, Activation::LeakyRelu(0.1)).expect("add");
    let g = b.global_avg_pool("gap", s).expect("gap");
    let g = b
        .upsample("broadcast", g, UpsampleParams::nearest(6, 6))
        .expect("up");
    let c = b.concat("cat", &[s, g, m]).expect("cat");
    let y = conv(&mut b, "out", c, 5, 2);
    // A dead branch is dropped at build time.
    conv(&mut b, "dead", a, 4, 3);
    assert_eq!(b.shape(c).expect("shape"), [2, 24, 6, 6]);
    let net = b.build(y).expect("build");
    assert_eq!(net.layers().len(), 8);
    let x = weight(2 * 3 * 12 * 12, 4);
    let check = net
        .verify(engine, &x, [2, 3, 12, 12], true)
        .expect("verify");
    assert!(check.passed(), "{:?} {:?}", check.worst(), check.end_to_end);
}

#[test]
fn builder_errors_are_typed_and_name_the_layer() {
    let engine = gpu_or_skip!();
    let mut b = Network::builder(engine, [1, 4, 8, 8]).expect("builder");
    let x = b.input();
    let w = weight(4 * 4 * 9, 1);
    let p = Conv2dParams::default().padding(Padding::uniform(1));
    let a = b
        .conv2d("a", x, &w, [4, 4, 3, 3], None, p, Activation::None)
        .expect("a");
    // Duplicate name.
    let e = b.conv2d("a", a, &w, [4, 4, 3, 3], None, p, Activation::None);
    assert!(
        matches!(e, Err(Error::DuplicateLayer(ref n)) if n == "a"),
        "{e:?}"
    );
    // Wrong input channels for the weight.
    let w8 = weight(8 * 8 * 9, 1);
    let e = b.conv2d("b", a, &w8, [8, 8, 3, 3], None, p, Activation::None);
    assert!(
        matches!(e, Err(Error::Layer { ref layer, .. }) if layer == "b"),
        "{e:?}"
    );
    // Mismatched add.
    let small = b.pool2d("half", a, Pool2dParams::max2x2()).expect("pool");
    let e = b.add("bad_add", a, small, Activation::None);
    assert!(
        matches!(e, Err(Error::Layer { ref layer, .. }) if layer == "bad_add"),
        "{e:?}"
    );
    // Concat of different spatial sizes.
    let e = b.concat("bad_cat", &[a, small]);
    assert!(matches!(e, Err(Error::Layer { .. })), "{e:?}");
    // A value from another builder.
    let mut other = Network::builder(engine, [1, 4, 8, 8]).expect("builder");
    let o = other
        .conv2d(
            "o",
            other.input(),
            &w,
            [4, 4, 3, 3],
            None,
            p,
            Activation::None,
        )
        .expect("o");
    // Same index and shape as `a`, but another builder's.
    let e = b.add("foreign", a, o, Activation::None);
    assert!(matches!(e, Err(Error::UnknownValue { .. })), "{e:?}");
    // The input is not a network.
    let e = b.build(x);
    assert!(matches!(e, Err(Error::BadShape { .. })), "{e:?}");
}

/// Networks can be shared across threads (every cache inside is locked).
#[test]
fn networks_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Network>();
    check::<wgconv::net::Layer>();
}
