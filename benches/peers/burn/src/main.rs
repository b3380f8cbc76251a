//! Times Burn 0.22.1's wgpu backend on the wgconv benchmark suite.
//!
//! One wgpu device (pinned to Vulkan, which on the project's machine is Mesa
//! lavapipe) runs each suite layer with `burn::tensor::module::conv2d` or
//! `conv_transpose2d` on random f32 NCHW tensors in PyTorch weight layouts.
//! Per layer: a few untimed warmup runs (Burn autotunes kernels on first use),
//! then `--runs` samples, each one wall-clock window of `--launches` launches
//! followed by one `Device::sync`, divided by the launch count. Reported: the
//! median and minimum per-launch milliseconds and GFLOP/s at the median.
//!
//! `--json FILE` writes the `wgconv bench --compare FILE` schema:
//! `{"label", "layers": [{"name", "median_ms", "min_ms", "gflops", ...}]}`.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::module::{conv2d, conv_transpose2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{DType, Device, DeviceKind, Distribution, Tensor};
use serde_json::json;

/// The `label` written to the JSON file.
const LABEL: &str = "Burn 0.22.1 wgpu (lavapipe)";

/// Untimed runs per layer before timing (each one launch + sync); Burn's
/// autotune finishes within the first.
const WARMUP: usize = 5;

/// One suite layer (same names and shapes as `wgconv bench`).
struct Layer {
    name: &'static str,
    /// Input N, C, H, W.
    input: [usize; 4],
    /// Output channels K.
    k: usize,
    /// Square kernel size.
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    /// `Some(output_padding)` for a transposed convolution.
    transposed: Option<usize>,
}

impl Layer {
    /// Weight shape: `[K, C/G, kh, kw]`, or `[C, K/G, kh, kw]` when transposed.
    fn weight(&self) -> [usize; 4] {
        let [_, c, _, _] = self.input;
        match self.transposed {
            None => [self.k, c / self.groups, self.kernel, self.kernel],
            Some(_) => [c, self.k / self.groups, self.kernel, self.kernel],
        }
    }

    /// Output shape `[N, K, Hout, Wout]`.
    fn output(&self) -> [usize; 4] {
        let [n, _, h, w] = self.input;
        let span = self.dilation * (self.kernel - 1);
        let size = |x: usize| match self.transposed {
            None => (x + 2 * self.padding - span - 1) / self.stride + 1,
            Some(op) => (x - 1) * self.stride - 2 * self.padding + span + op + 1,
        };
        [n, self.k, size(h), size(w)]
    }

    /// FLOPs: 2·N·K·(C/G)·kh·kw·Hout·Wout, or 2·N·C·(K/G)·kh·kw·Hin·Win when
    /// transposed (the suite's convention).
    fn flops(&self) -> f64 {
        let [n, _, h, w] = self.input;
        let [_, _, ho, wo] = self.output();
        let taps: usize = self.weight().iter().product();
        let pixels = match self.transposed {
            None => ho * wo,
            Some(_) => h * w,
        };
        // weight() already holds K·(C/G) (or C·(K/G)) · kh·kw.
        2.0 * (n * taps * pixels) as f64
    }
}

/// Shorthand for a suite row.
#[allow(clippy::too_many_arguments)]
const fn layer(
    name: &'static str,
    input: [usize; 4],
    k: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    transposed: Option<usize>,
) -> Layer {
    Layer {
        name,
        input,
        k,
        kernel,
        stride,
        padding,
        dilation,
        groups,
        transposed,
    }
}

/// The wgconv benchmark suite (shared/peers.md).
const SUITE: [Layer; 12] = [
    layer("stem7", [1, 3, 224, 224], 64, 7, 2, 3, 1, 1, None),
    layer("r3x3", [1, 64, 56, 56], 64, 3, 1, 1, 1, 1, None),
    layer("r3x3s2", [1, 128, 56, 56], 128, 3, 2, 1, 1, 1, None),
    layer("pw", [1, 256, 56, 56], 64, 1, 1, 0, 1, 1, None),
    layer("dw3", [1, 144, 56, 56], 144, 3, 1, 1, 1, 144, None),
    layer("dw3s2", [1, 96, 112, 112], 96, 3, 2, 1, 1, 96, None),
    layer("aspp12", [1, 256, 33, 33], 256, 3, 1, 12, 12, 1, None),
    layer("ctx8", [1, 64, 64, 64], 64, 3, 1, 8, 8, 1, None),
    layer("grp32", [1, 128, 56, 56], 128, 3, 1, 1, 1, 32, None),
    layer("tconv4", [1, 128, 32, 32], 64, 4, 2, 1, 1, 1, Some(0)),
    layer("tconv3", [1, 64, 64, 64], 32, 3, 2, 1, 1, 1, Some(1)),
    layer("b8", [8, 128, 28, 28], 128, 3, 1, 1, 1, 1, None),
];

/// Command-line options.
struct Args {
    layers: Vec<&'static Layer>,
    runs: usize,
    launches: usize,
    json: Option<PathBuf>,
}

const USAGE: &str =
    "usage: burn-conv-bench [--layer NAME[,NAME...]]... [--runs N] [--launches M] [--json FILE]
  --layer     suite layer(s), repeatable or comma-separated (default: all 12)
  --runs      timed samples per layer (default 15)
  --launches  launches per sample, one sync per sample (default 4, as wgconv bench's wall clock)
  --json      write results in the `wgconv bench --compare` schema";

fn parse_args() -> Result<Args> {
    let mut names: Vec<String> = Vec::new();
    let mut runs = 15;
    let mut launches = 4;
    let mut json = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))
        };
        let count = |v: String| -> Result<usize> {
            match v.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(n),
                _ => bail!("{flag}: expected a count from 1 to 10000, got {v:?}"),
            }
        };
        match flag.as_str() {
            "--layer" => names.extend(value()?.split(',').map(|s| s.trim().to_string())),
            "--runs" => runs = count(value()?)?,
            "--launches" => launches = count(value()?)?,
            "--json" => json = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let layers = if names.is_empty() {
        SUITE.iter().collect()
    } else {
        let mut picked: Vec<&'static Layer> = Vec::new();
        for name in names.iter().filter(|n| !n.is_empty()) {
            let l = SUITE.iter().find(|l| l.name == name).ok_or_else(|| {
                let all: Vec<_> = SUITE.iter().map(|l| l.name).collect();
                anyhow!("unknown layer {name:?}; suite layers: {}", all.join(", "))
            })?;
            if !picked.iter().any(|p| p.name == l.name) {
                picked.push(l);
            }
        }
        picked
    };
    Ok(Args {
        layers,
        runs,
        launches,
        json,
    })
}

/// One layer's tensors on the device.
struct Inputs {
    x: Tensor<4>,
    w: Tensor<4>,
}

impl Inputs {
    fn new(l: &Layer, device: &Device) -> Self {
        let dist = Distribution::Uniform(-1.0, 1.0);
        Inputs {
            x: Tensor::random(l.input, dist, device),
            w: Tensor::random(l.weight(), dist, device),
        }
    }

    /// Queues one convolution (no bias); Burn runs it lazily, so the caller
    /// syncs the device to wait for it.
    fn launch(&self, l: &Layer) -> Tensor<4> {
        let (x, w) = (self.x.clone(), self.w.clone());
        let (s, p, d) = ([l.stride; 2], [l.padding; 2], [l.dilation; 2]);
        match l.transposed {
            None => conv2d(x, w, None, ConvOptions::new(s, p, d, l.groups)),
            Some(op) => conv_transpose2d(
                x,
                w,
                None,
                ConvTransposeOptions::new(s, p, [op; 2], d, l.groups),
            ),
        }
    }
}

/// Waits for all queued work on the device.
fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow!("device sync failed: {e:?}"))
}

/// Per-layer results, in milliseconds per launch.
struct Timing {
    first_ms: f64,
    median_ms: f64,
    min_ms: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Warms up and times one layer.
fn time_layer(l: &Layer, device: &Device, runs: usize, launches: usize) -> Result<Timing> {
    let inputs = Inputs::new(l, device);
    sync(device)?;

    // First launch: includes kernel compilation and autotune (informational).
    let t = Instant::now();
    let out = inputs.launch(l);
    sync(device)?;
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    if out.dims() != l.output() || out.dtype() != DType::F32 {
        bail!(
            "{}: got {:?} {:?}, expected {:?} F32",
            l.name,
            out.dims(),
            out.dtype(),
            l.output()
        );
    }
    drop(out);

    for _ in 1..WARMUP {
        let out = inputs.launch(l);
        sync(device)?;
        drop(out);
    }

    let mut samples = Vec::with_capacity(runs);
    let mut outs = Vec::with_capacity(launches);
    for _ in 0..runs {
        let t = Instant::now();
        // Outputs stay alive until after the sync, so none of the work can be
        // skipped as dead.
        for _ in 0..launches {
            outs.push(inputs.launch(l));
        }
        sync(device)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3 / launches as f64);
        outs.clear();
    }
    let min_ms = samples.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Timing {
        first_ms,
        median_ms: median(&mut samples),
        min_ms,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;

    // Pin Vulkan (lavapipe here); the runtime picks the WGSL compiler since
    // only Burn's `wgpu` feature is enabled.
    let t = Instant::now();
    let (device, setup) = Device::wgpu_options()
        .device_kind(DeviceKind::DefaultDevice)
        .graphics_api(WgpuBackend::Vulkan)
        .init_with_setup()
        .context("initializing Burn's wgpu device on Vulkan")?;
    let info = setup.adapter.get_info();
    let adapter = format!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    println!("adapter: {adapter}");
    println!("device init: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    println!(
        "{} runs x {} launches per layer after {WARMUP} warmup runs; ms per launch\n",
        args.runs, args.launches
    );

    println!(
        "{:<8} {:>10} {:>10} {:>9} {:>10}",
        "layer", "median ms", "min ms", "GFLOP/s", "first ms"
    );
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for l in &args.layers {
        // Burn panics on unsupported ops; report the layer and go on.
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            time_layer(l, &device, args.runs, args.launches)
        }))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            Err(anyhow!("panicked: {msg}"))
        });
        match result {
            Ok(t) => {
                let gflops = l.flops() / (t.median_ms * 1e-3) / 1e9;
                println!(
                    "{:<8} {:>10.3} {:>10.3} {:>9.2} {:>10.1}",
                    l.name, t.median_ms, t.min_ms, gflops, t.first_ms
                );
                rows.push(json!({
                    "name": l.name,
                    "median_ms": t.median_ms,
                    "min_ms": t.min_ms,
                    "gflops": gflops,
                    "first_ms": t.first_ms,
                    "flops": l.flops(),
                }));
            }
            Err(e) => {
                println!("{:<8} failed: {e:#}", l.name);
                failed.push(json!({ "name": l.name, "reason": format!("{e:#}") }));
            }
        }
    }

    if let Some(path) = &args.json {
        let doc = json!({
            "label": LABEL,
            "source": format!(
                "benches/peers/burn (burn = \"=0.22.1\", features [\"wgpu\"]): one process, \
                 Vulkan device, f32 NCHW, {WARMUP} warmup runs per layer, then {} samples of \
                 {} launches + one Device::sync (wall clock), ms per launch; gflops = suite \
                 FLOPs / median; first_ms = first launch incl. compilation and autotune",
                args.runs, args.launches
            ),
            "adapter": adapter,
            "host": host(),
            "runs": args.runs,
            "launches_per_sample": args.launches,
            "layers": rows,
            "failed": failed,
        });
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    if !failed.is_empty() {
        bail!("{} layer(s) failed", failed.len());
    }
    Ok(())
}

/// The machine, in the shape `wgconv bench --json` writes (`{"cpu",
/// "logical_cpus"}`), so `wgconv bench --compare` can tell when Burn ran on
/// another host: on lavapipe the host's processor is the device, and the
/// adapter's name does not change with it.
fn host() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                (matches!(key.trim(), "model name" | "Model" | "cpu model") && !value.is_empty())
                    .then_some(value)
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let logical_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpu": cpu, "logical_cpus": logical_cpus })
}
