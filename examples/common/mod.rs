//! What every reference-network example does: build the network at its
//! published size (or `--small`), run it as one submission, report the time
//! and peak GPU memory, and verify every layer against the CPU reference.

use std::process::ExitCode;
use std::time::Instant;

use wgconv::nets::{self, Size};
use wgconv::Engine;

/// Runs every network of `group` (`cargo run --release --example GROUP
/// [-- --small]`).
pub fn main(group: &str) -> ExitCode {
    match run(group) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{group}: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(group: &str) -> wgconv::Result<bool> {
    let size = if std::env::args().any(|a| a == "--small") {
        Size::Small
    } else {
        Size::Full
    };
    let engine = Engine::new()?;
    println!(
        "adapter: {} ({:?})",
        engine.info().name,
        engine.info().backend
    );
    let mut all_passed = true;
    for spec in nets::select(group) {
        println!("\n{}: {}", spec.name, spec.about);
        if size == Size::Small {
            println!(
                "  (small test size: the same structure with fewer channels and smaller images)"
            );
        }
        let net = spec.build(&engine, size, 1)?;
        let shape = spec.input_shape(size);
        let x = spec.input(size, 1);
        let xt = wgconv::GpuTensor::upload(&engine, &x, shape)?;
        // The first run compiles the pipelines; then the median of five.
        let t = Instant::now();
        let y = net.forward(&engine, &xt)?.read(&engine)?;
        let first = t.elapsed();
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            net.forward(&engine, &xt)?;
            engine.wait()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let mem = net.memory(shape)?;
        let macs = net.macs(shape)?;
        let out = net.output_shape(shape)?;
        println!(
            "  {} layers, input {shape:?} → output {out:?} ({} values read back)",
            net.layers().len(),
            y.len()
        );
        println!(
            "  time: {:.2} ms median of 5 (wall clock, one submission each; first run {:.0} ms with compilation); {:.2} GFLOP/s",
            times[2],
            first.as_secs_f64() * 1e3,
            2.0 * macs as f64 / (times[2] / 1e3) / 1e9
        );
        println!(
            "  GPU memory: peak {:.2} MiB (activation pool {:.2} MiB in {} buffers, {:.2} MiB without reuse; weights {:.2} MiB)",
            mib(mem.peak_bytes()),
            mib(mem.pool_bytes),
            mem.pool_buffers,
            mib(mem.unpooled_bytes),
            mib(mem.weight_bytes)
        );
        // The end-to-end reference repeats every layer's f64 reference: above
        // a billion multiply-adds it takes minutes, and the per-layer checks
        // already cover every layer.
        let end_to_end = macs <= 1_000_000_000;
        let t = Instant::now();
        let check = net.verify(&engine, &x, shape, end_to_end)?;
        let worst = check.worst();
        println!(
            "  verify ({:.1} s): {} — every layer against the CPU reference on its GPU inputs{}; pooled run {} the per-value run",
            t.elapsed().as_secs_f64(),
            if check.passed() { "PASS" } else { "FAIL" },
            worst
                .map(|(n, c)| format!(" (closest to its bound: {n}, {:.3} of allowed)", c.worst_ratio))
                .unwrap_or_default(),
            if check.pooled_matches { "identical to" } else { "DIFFERS from" }
        );
        match &check.end_to_end {
            Some(e) => println!("  end to end against the CPU reference: {e}"),
            None => println!("  end to end: skipped above 1 GMAC (`--small` runs it)"),
        }
        all_passed &= check.passed();
    }
    Ok(all_passed)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
