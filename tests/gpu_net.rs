//! Networks on the GPU: every reference network (small size) verified layer
//! by layer and end to end against the CPU reference, the pooled run
//! identical to a run with a buffer per value, the memory plan, the plan
//! report's numbers, recording into a caller's encoder, other input shapes,
//! and typed errors.

mod common;

use wgconv::net::{Layer, ReceptiveField, Value};
use wgconv::nets::{self, Size, NETS};
use wgconv::plan::Goal;
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

/// Networks planned for the first result (`NetworkBuilder::plan_for`) still
/// match the reference layer by layer and end to end, with no Winograd
/// layer; on CPU adapters their register-blocked convolutions take the
/// compact tile of 4 columns (fewer on narrow rows) by at most 2 vec4s of
/// channels, where the same networks planned for throughput take wider ones.
#[test]
fn networks_planned_for_the_first_result_match_the_reference() {
    let engine = gpu_or_skip!();
    let cpu = engine.info().device_type == wgpu::DeviceType::Cpu;
    // A register-blocked kernel's key holds `-pix{P}-cob4{C}-` (C one digit).
    let compact = |k: &str| {
        if !(k.starts_with("conv2d_tiled") || k.starts_with("conv_transpose2d")) {
            return true;
        }
        let field = |tag: &str| -> u32 {
            let at = k.find(tag).expect(tag) + tag.len();
            let digits: String = k[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("a number")
        };
        field("-pix") <= 4 && field("-cob4") <= 2
    };
    for name in [
        "context_module",
        "mobilenet_v2_block",
        "resnext_block",
        "decoder",
        "decoder_upsample",
    ] {
        let spec = NETS.iter().find(|s| s.name == name).expect("spec");
        let shape = spec.input_shape(Size::Small);
        let x = spec.input(Size::Small, 5);
        let first = spec
            .build_for(engine, Size::Small, 5, Goal::FirstResult)
            .expect("build");
        let check = first.verify(engine, &x, shape, true).expect("verify");
        assert!(check.passed(), "{name}: {:?}", check.worst());
        let kernels: Vec<String> = first
            .report(engine, shape)
            .expect("report")
            .into_iter()
            .map(|l| l.kernel)
            .collect();
        assert!(
            kernels.iter().all(|k| !k.contains("winograd")),
            "{name}: {kernels:?}"
        );
        if cpu {
            assert!(kernels.iter().all(|k| compact(k)), "{name}: {kernels:?}");
            let throughput = spec.build(engine, Size::Small, 5).expect("build");
            let wide = throughput.report(engine, shape).expect("report");
            assert!(
                wide.iter().any(|l| !compact(&l.kernel)),
                "{name}: the throughput plan is compact too"
            );
        }
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
    // The ResNeXt block's expansion runs fused with the residual add and
    // stores no output: the pool holds the two 128-channel activations
    // instead of one of them and the 256-channel expansion.
    let spec = nets::select("resnext_block")[0];
    let net = spec.build(engine, Size::Full, 1).expect("build");
    let shape = spec.input_shape(Size::Full);
    let (stored, run) = (
        net.memory(shape).expect("memory"),
        net.memory_on(engine, shape).expect("memory"),
    );
    let plane = 56 * 56 * 4;
    assert_eq!(stored.pool_bytes, (256 + 128) * plane, "{stored:?}");
    assert_eq!(run.pool_bytes, (128 + 128) * plane, "{run:?}");
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

/// A network whose residual adds cover what fusing a convolution into the
/// add after it must handle: the convolution as either input of the add,
/// 3×3, 5×5 and 1×1 producers, each activation kind of the add, a 64-channel
/// dilated 5×5 producer (pixels spaced by the dilation, scalar stores, and
/// reduction segments where weights come in uniform windows), the network
/// output as the add's output, and producers that must not fuse (an
/// activation of their own, a second reader).
fn residual_net(engine: &wgconv::Engine) -> Network {
    let mut b = Network::builder(engine, [2, 16, 16, 20]).expect("builder");
    let mut seed = 40;
    let mut conv = |b: &mut wgconv::NetworkBuilder<'_>,
                    name: &str,
                    v: Value,
                    k: usize,
                    kk: usize,
                    dil: u32,
                    act| {
        let c = b.shape(v).expect("shape")[1];
        seed += 1;
        let w = weight(k * c * kk * kk, seed);
        let bias = weight(k, seed + 100);
        b.conv2d(
            name,
            v,
            &w,
            [k, c, kk, kk],
            Some(&bias),
            Conv2dParams::default()
                .padding(Padding::uniform(dil * (kk as u32 / 2)))
                .dilation(dil, dil),
            act,
        )
        .expect("conv")
    };
    let x = b.input();
    let a = conv(&mut b, "a", x, 32, 3, 1, Activation::Relu);
    let p = conv(&mut b, "p", a, 32, 3, 1, Activation::None);
    let r1 = b.add("r1", p, a, Activation::LeakyRelu(0.1)).expect("add");
    let q = conv(&mut b, "q", r1, 32, 1, 1, Activation::None);
    let r2 = b.add("r2", r1, q, Activation::Silu).expect("add");
    let wide = conv(&mut b, "wide", r2, 64, 3, 1, Activation::Relu);
    let s = conv(&mut b, "seg", wide, 32, 5, 2, Activation::None);
    let r3 = b.add("r3", s, r2, Activation::None).expect("add");
    let t = conv(&mut b, "t", r3, 32, 1, 1, Activation::Relu);
    let r4 = b.add("r4", t, r3, Activation::None).expect("add");
    let u = conv(&mut b, "u", r4, 32, 1, 1, Activation::None);
    let r5 = b.add("r5", u, r4, Activation::Relu).expect("add");
    let v = conv(&mut b, "v", u, 32, 1, 1, Activation::None);
    let y = b.add("out", r5, v, Activation::Relu6).expect("add");
    b.build(y).expect("build")
}

#[test]
fn residual_adds_fuse_into_the_convolution_before_them() {
    let Some(shared) = common::engine() else {
        eprintln!("SKIPPED: no GPU adapter");
        return;
    };
    // Uniform weight windows (reduction segments).
    let uniform = wgconv::Engine::with_options(&common::no_subgroups()).expect("engine");
    let shape = [2, 16, 16, 20];
    let x = weight(shape.iter().product(), 7);
    let fused = [("p", "r1"), ("q", "r2"), ("seg", "r3"), ("v", "out")];
    for (label, engine) in [("shared", shared), ("uniform", &uniform)] {
        let net = residual_net(engine);
        let report = net.report(engine, shape).expect("report");
        let kernel = |name: &str| {
            report
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.kernel.clone())
                .expect("layer")
        };
        for (conv, add) in fused {
            // Where a 3×3 layer runs the Winograd form (the uniform-weight
            // engine's choice for `p`), it does not fuse.
            if label == "uniform" && conv == "p" {
                assert!(kernel(conv).starts_with("winograd"), "{}", kernel(conv));
                assert!(kernel(add).starts_with("add"), "{}", kernel(add));
                continue;
            }
            assert_eq!(kernel(conv), format!("fused into {add}"), "{label}");
            let k = kernel(add);
            assert!(
                k.starts_with("conv2d_tiled") && k.ends_with(&format!("-res1 (with {conv})")),
                "{label}: {add}: {k}"
            );
        }
        for name in ["a", "wide", "t", "u", "r4", "r5"] {
            assert!(
                !kernel(name).contains("fused") && !kernel(name).contains("res1"),
                "{label}: {name}"
            );
        }
        // The add's activation is the fused kernel's.
        if label != "uniform" {
            assert!(kernel("r1").contains("-act3-"), "{label}: {}", kernel("r1"));
        }
        assert!(kernel("r2").contains("-act4-"), "{label}: {}", kernel("r2"));
        assert!(
            kernel("out").contains("-act2-"),
            "{label}: {}",
            kernel("out")
        );
        let chunking = |name: &str| {
            let node = net
                .layers()
                .iter()
                .find(|n| n.name() == name)
                .expect("layer");
            let Layer::Conv2d(l) = node.layer() else {
                panic!("{name} is not a convolution");
            };
            let input = net.shapes(shape).expect("shapes")[node.inputs()[0].index()];
            l.chunking(engine, input).expect("chunking")
        };
        if label == "uniform" {
            assert!(chunking("seg").segments > 1, "{:?}", chunking("seg"));
        }
        // The pooled run fuses; the run with a buffer per value does not:
        // they must agree bit for bit, and each layer with the reference.
        let check = net.verify(engine, &x, shape, true).expect("verify");
        assert!(
            check.pooled_matches,
            "{label}: fused run differs from the unfused one"
        );
        assert!(
            check.passed(),
            "{label}: {:?} {:?}",
            check.worst(),
            check.end_to_end
        );
        // Fusion stores no output for the four convolutions (here the
        // pool's peak is elsewhere; see the pool test for a smaller pool).
        let stored = net.memory(shape).expect("memory");
        let run = net.memory_on(engine, shape).expect("memory");
        assert!(
            run.pool_bytes <= stored.pool_bytes,
            "{label}: {run:?} {stored:?}"
        );
        assert_eq!(run.unpooled_bytes, stored.unpooled_bytes);
    }
    // A 64 KiB binding limit: the fused kernel runs in chunks, its residual
    // bound in windows at the output's offsets. (The add alone does not
    // chunk, so this network runs only fused.) The same kernel computes
    // the same bits in chunks as in one dispatch on the shared engine,
    // where the network is verified against the unfused run.
    let small = wgconv::Engine::with_options(&wgconv::EngineOptions {
        max_storage_binding_size: Some(64 << 10),
        ..common::options()
    })
    .expect("engine");
    let shape = [2, 32, 16, 20];
    let x = weight(shape.iter().product(), 8);
    let chunked = |engine: &wgconv::Engine| {
        let mut b = Network::builder(engine, shape).expect("builder");
        let p = b
            .conv2d(
                "p",
                b.input(),
                &weight(32 * 32 * 9, 3),
                [32, 32, 3, 3],
                Some(&weight(32, 4)),
                Conv2dParams::default().padding(Padding::uniform(1)),
                Activation::None,
            )
            .expect("conv");
        let y = b.add("out", b.input(), p, Activation::Relu).expect("add");
        let net = b.build(y).expect("build");
        let kernel = net.report(engine, shape).expect("report")[1].kernel.clone();
        (net.run(engine, &x, shape).expect("run"), kernel, net)
    };
    let (want, key, net) = chunked(shared);
    let check = net.verify(shared, &x, shape, true).expect("verify");
    assert!(check.passed(), "{:?} {:?}", check.worst(), check.end_to_end);
    let (got, small_key, net) = chunked(&small);
    // The small limit changes where the kernel reads from (no whole-tensor
    // textures, uniform weight windows), not its arithmetic.
    let arithmetic = |k: &str| {
        k.split('-')
            .filter(|c| {
                !["wcap", "wst", "tin", "twt"]
                    .iter()
                    .any(|p| c.starts_with(p))
            })
            .collect::<Vec<_>>()
            .join("-")
    };
    assert_eq!(arithmetic(&small_key), arithmetic(&key));
    assert!(key.ends_with("-res1 (with p)"), "{key}");
    let Layer::Conv2d(p) = net.layers()[0].layer() else {
        panic!("p is not a convolution");
    };
    let c = p.chunking(&small, shape).expect("chunking");
    assert!(c.chunks > 1 && c.staged_outputs == 0, "{c:?}");
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "chunked fused run differs"
    );
}
