//! criterion benches: every suite layer (see `wgconv::suite`), one shared
//! engine; each sample records `iters` launches into one command buffer,
//! submits once and waits once, so per-launch host overhead is amortised
//! the way a real network run amortises it.
//!
//! Run: `cargo bench --bench conv` (or `-- r3x3` for one layer, `-- scaling`
//! for the r3x3 scaling sweep).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgconv::suite::{LayerOp, SUITE};
use wgconv::{Activation, Conv2d, ConvTranspose2d, Engine, GpuTensor};

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

fn suite(c: &mut Criterion) {
    let engine = match Engine::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("suite");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    for layer in &SUITE {
        let shape = layer.shape().expect("suite layers are valid");
        let x =
            GpuTensor::upload(&engine, &data(shape.input_len(), 1), layer.input).expect("upload");
        let w = data(shape.weight_len(), 2);
        let b = data(shape.c_out as usize, 3);
        let y = GpuTensor::empty(&engine, shape.output_shape()).expect("output");
        let record: Box<dyn Fn(&mut wgpu::CommandEncoder)> = match layer.op {
            LayerOp::Conv2d(p) => {
                let l = Conv2d::new(&engine, &w, layer.weight, Some(&b), p, Activation::None)
                    .expect("layer");
                let (x, y, e) = (x.clone(), y.clone(), &engine);
                Box::new(move |enc| l.record_into(e, enc, &x, &y).expect("record"))
            }
            LayerOp::ConvTranspose2d(p) => {
                let l =
                    ConvTranspose2d::new(&engine, &w, layer.weight, Some(&b), p, Activation::None)
                        .expect("layer");
                let (x, y, e) = (x.clone(), y.clone(), &engine);
                Box::new(move |enc| l.record_into(e, enc, &x, &y).expect("record"))
            }
        };
        group.throughput(Throughput::Elements(shape.flops()));
        group.bench_function(layer.name, |bench| {
            bench.iter_custom(|iters| {
                let mut enc = engine.device().create_command_encoder(&Default::default());
                for _ in 0..iters {
                    record(&mut enc);
                }
                let start = Instant::now();
                engine.queue().submit([enc.finish()]);
                engine.wait().expect("wait");
                start.elapsed()
            })
        });
    }
    group.finish();

    // Host overhead: CPU time to encode one cached layer (its bind groups and
    // dispatches) into an encoder holding at most `PER_ENCODER` layers, as a
    // network run would; the encoders are dropped unsubmitted, outside the
    // timing. r3x3 runs in Winograd form on CPU adapters (three dispatches,
    // the GEMM a layer of its own), pw as one `conv2d_tiled` dispatch.
    const PER_ENCODER: u64 = 64;
    let mut group = c.benchmark_group("encode_one_layer");
    for name in ["r3x3", "pw"] {
        let Some(l) = SUITE.iter().find(|l| l.name == name) else {
            continue;
        };
        let shape = l.shape().expect("valid");
        let x = GpuTensor::upload(&engine, &data(shape.input_len(), 1), l.input).expect("upload");
        let y = GpuTensor::empty(&engine, shape.output_shape()).expect("output");
        let LayerOp::Conv2d(p) = l.op else { continue };
        let conv = Conv2d::new(
            &engine,
            &data(shape.weight_len(), 2),
            l.weight,
            None,
            p,
            Activation::None,
        )
        .expect("layer");
        // The first record builds and caches the pipelines and uniforms.
        let mut enc = engine.device().create_command_encoder(&Default::default());
        conv.record_into(&engine, &mut enc, &x, &y).expect("record");
        drop(enc);
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(PER_ENCODER);
                    let mut enc = engine.device().create_command_encoder(&Default::default());
                    let start = Instant::now();
                    for _ in 0..n {
                        conv.record_into(&engine, &mut enc, &x, &y).expect("record");
                    }
                    total += start.elapsed();
                    drop(enc);
                    left -= n;
                }
                total
            })
        });
    }
    group.finish();
}

/// The r3x3 layer (3×3, stride 1, padding 1) across sizes: H×W from 14² to
/// 224² at C = K = 64, and C = K from 16 to 512 at 28². Throughput is in
/// FLOPs, so a cliff shows as a drop in FLOP/s between neighbours.
fn scaling(c: &mut Criterion) {
    let engine = match Engine::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("scaling_r3x3");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(300));
    let points = [14, 28, 56, 112, 224]
        .map(|hw| (hw, 64))
        .into_iter()
        .chain([16, 32, 128, 256, 512].map(|ch| (28, ch)));
    for (hw, ch) in points {
        let params = wgconv::Conv2dParams::default().padding(wgconv::Padding::uniform(1));
        let input = [1, ch, hw, hw];
        let weight = [ch, ch, 3, 3];
        let shape = wgconv::Conv2dShape::conv2d(input, weight, None, &params).expect("valid");
        let x = GpuTensor::upload(&engine, &data(shape.input_len(), 1), input).expect("upload");
        let y = GpuTensor::empty(&engine, shape.output_shape()).expect("output");
        let l = Conv2d::new(
            &engine,
            &data(shape.weight_len(), 2),
            weight,
            None,
            params,
            Activation::None,
        )
        .expect("layer");
        group.throughput(Throughput::Elements(shape.flops()));
        group.bench_function(format!("{hw}x{hw}_c{ch}"), |bench| {
            bench.iter_custom(|iters| {
                let mut enc = engine.device().create_command_encoder(&Default::default());
                for _ in 0..iters {
                    l.record_into(&engine, &mut enc, &x, &y).expect("record");
                }
                let start = Instant::now();
                engine.queue().submit([enc.finish()]);
                engine.wait().expect("wait");
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, suite, scaling);
criterion_main!(benches);
