//! criterion benches: every suite layer (see `wgconv::suite`), one shared
//! engine; each sample records `iters` launches into one command buffer,
//! submits once and waits once, so per-launch host overhead is amortised
//! the way a real network run amortises it.
//!
//! Run: `cargo bench --bench conv` (or `-- r3x3` for one layer).

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

    // Host overhead: CPU time to encode one cached layer (bind group + dispatch).
    let l = &SUITE[1];
    let shape = l.shape().expect("valid");
    let x = GpuTensor::upload(&engine, &data(shape.input_len(), 1), l.input).expect("upload");
    let y = GpuTensor::empty(&engine, shape.output_shape()).expect("output");
    let LayerOp::Conv2d(p) = l.op else { return };
    let conv = Conv2d::new(
        &engine,
        &data(shape.weight_len(), 2),
        l.weight,
        None,
        p,
        Activation::None,
    )
    .expect("layer");
    c.bench_function("encode_one_layer", |bench| {
        let mut enc = engine.device().create_command_encoder(&Default::default());
        conv.record_into(&engine, &mut enc, &x, &y).expect("record");
        bench.iter(|| conv.record_into(&engine, &mut enc, &x, &y).expect("record"));
        drop(enc);
    });
}

criterion_group!(benches, suite);
criterion_main!(benches);
