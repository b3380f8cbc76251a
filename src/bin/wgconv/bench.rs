//! `wgconv bench`: the benchmark harness.
//!
//! Timing uses GPU timestamp queries written around each convolution
//! (`write_timestamp` in the encoder) when the device offers them, and wall
//! clock otherwise (each sample times several launches and one sync).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde::Serialize;
use wgconv::conformance::Rng;
use wgconv::plan::Winograd;
use wgconv::reference::{self, Tolerance};
use wgconv::suite::{self, LayerOp, SuiteLayer, SUITE};
use wgconv::{
    Activation, Conv2dParams, Conv2dShape, ConvLayer, Engine, GpuTensor, LayerOptions, OpParams,
    Padding,
};

use crate::args::{self, AdapterArgs, GoalArg, Pair};
use crate::info::{adapter_json, AdapterJson};
use crate::peer::Peer;
use crate::plot::{self, Bar};
use crate::Outcome;
use wgconv::host::Host;

/// Launches per wall-clock sample (one sync per sample).
const LAUNCHES_PER_SAMPLE: usize = 4;

/// `wgconv bench` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite layer(s) to run (repeatable or comma-separated); default: all 12.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    layer: Vec<String>,
    /// Ad-hoc input shape N,C,H,W (needs --kernel).
    #[arg(long, value_name = "N,C,H,W", value_parser = args::dims4, requires = "kernel")]
    shape: Option<[usize; 4]>,
    /// Ad-hoc weight shape K,C/G,KH,KW (needs --shape).
    #[arg(long, value_name = "K,C/G,KH,KW", value_parser = args::dims4, requires = "shape")]
    kernel: Option<[usize; 4]>,
    /// Ad-hoc stride: S or SH,SW.
    #[arg(long, value_name = "SH,SW", default_value = "1", value_parser = args::positive_pair)]
    stride: Pair,
    /// Ad-hoc padding: P, PH,PW or PT,PL,PB,PR.
    #[arg(long, value_name = "PT,PL,PB,PR", default_value = "0", value_parser = args::padding)]
    padding: Padding,
    /// Ad-hoc dilation: D or DH,DW.
    #[arg(long, value_name = "DH,DW", default_value = "1", value_parser = args::positive_pair)]
    dilation: Pair,
    /// Ad-hoc groups.
    #[arg(long, value_name = "G", default_value = "1", value_parser = args::groups)]
    groups: u32,
    /// Fused activation.
    #[arg(long, value_name = "ACT", default_value = "none", value_parser = args::activation)]
    activation: Activation,
    /// Untimed runs before timing.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs (samples).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=1000))]
    runs: u64,
    /// Skip the CPU reference check.
    #[arg(long)]
    no_check: bool,
    /// Force wall-clock timing even when timestamps are available.
    #[arg(long)]
    wall: bool,
    /// Time reference network(s) instead of layers: a name, an example
    /// group, or all (see `wgconv plan --net all`); one submission per run,
    /// GFLOP/s from the convolutions' multiply-adds.
    #[arg(long, value_name = "NAME", value_delimiter = ',', conflicts_with_all = ["layer", "shape"])]
    net: Vec<String>,
    /// With --net: the published size or the small test size.
    #[arg(long, value_enum, default_value = "full", requires = "net")]
    size: crate::net::SizeArg,
    /// With --net: also print each layer's median time.
    #[arg(long, requires = "net")]
    breakdown: bool,
    /// Autotune: time each layer's candidate tile shapes first and run the
    /// fastest (remembered per adapter in the autotune cache file).
    #[arg(long)]
    autotune: bool,
    /// Winograd form for eligible layers (3×3, stride 1, any dilation, one
    /// group, ≥ 16 channels): off, f2 (F(2×2, 3×3)) or f4 (F(4×4, 3×3));
    /// default: the planner's choice (f4 on CPU adapters, off elsewhere).
    #[arg(long, value_enum, conflicts_with = "net")]
    winograd: Option<WinogradArg>,
    /// What the plan optimises: throughput (the fastest runs once compiled)
    /// or first-result (what `wgconv conv2d` runs: no Winograd or sub-pixel
    /// form unless --winograd asks, no autotuning, compact tiles on CPU
    /// adapters); time its first result with an empty shader cache, `--runs
    /// 1 --warmup 0` and `MESA_SHADER_CACHE_DISABLE=true` (with --net: the
    /// `first ms` column).
    #[arg(long, value_enum, default_value = "throughput")]
    goal: GoalArg,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the results as CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Draw GFLOP/s per layer as an SVG bar chart (log axis), with the
    /// --compare peer's bars beside ours.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// A peer's results to compare with, in the --json schema
    /// (`{"label"?, "layers": [{"name", "gflops" or "median_ms"}]}`); adds a
    /// "vs peer" column (our speed / theirs) and the peer's bars to --plot.
    #[arg(long, value_name = "FILE.json")]
    compare: Option<PathBuf>,
    #[command(flatten)]
    adapter: AdapterArgs,
}

#[derive(Debug, Serialize)]
struct LayerResult {
    name: String,
    median_ms: f64,
    min_ms: f64,
    gflops: f64,
    gbps: f64,
    kernel: String,
    max_abs_err: Option<f64>,
    check_passed: Option<bool>,
    /// The --compare peer's GFLOP/s on this layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_gflops: Option<f64>,
    /// Our speed over the peer's (`gflops / peer_gflops`).
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_peer: Option<f64>,
    timing: &'static str,
    flops: u64,
    bytes_moved: u64,
    input: [usize; 4],
    weight: [usize; 4],
    output: [usize; 4],
    /// Every run's time in ms, in the order they ran (the median and
    /// minimum are of these; a slow stretch shows as a run of high values).
    samples_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Skipped {
    name: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct ColdStart {
    engine_ms: f64,
    first_pipeline_ms: f64,
    first_conv_ms: f64,
    /// Whether compiled kernels may come from a disk cache: `mesa-disk`
    /// (a Mesa driver with its shader cache on), `off` (a Mesa driver with
    /// `MESA_SHADER_CACHE_DISABLE` set) or `driver` (another driver, which
    /// may keep a cache of its own).
    shader_cache: &'static str,
}

/// [`ColdStart::shader_cache`] for an adapter, given the value of
/// `MESA_SHADER_CACHE_DISABLE` (Mesa reads `1`, `true`, `y` and `yes`, in
/// any case, as on). lavapipe compiles a kernel at its first dispatch unless
/// an earlier process left it in `~/.cache/mesa_shader_cache`, so with the
/// cache on the `cold start` line mostly times cache reads.
fn shader_cache(info: &wgpu::AdapterInfo, disable: Option<&str>) -> &'static str {
    let mesa = info.driver.contains("Mesa") || info.driver_info.contains("Mesa");
    let off = disable.is_some_and(|v| {
        ["1", "true", "y", "yes"]
            .iter()
            .any(|t| v.trim().eq_ignore_ascii_case(t))
    });
    match (mesa, off) {
        (false, _) => "driver",
        (true, true) => "off",
        (true, false) => "mesa-disk",
    }
}

#[derive(Debug, Serialize)]
struct Report {
    adapter: AdapterJson,
    /// The machine this ran on (on a CPU adapter, the device itself).
    host: Host,
    timing: &'static str,
    warmup: usize,
    runs: u64,
    cold_start: ColdStart,
    /// The --compare peer's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    /// The geometric mean of the layers' `vs_peer` (those the peer has).
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_peer_geomean: Option<f64>,
    layers: Vec<LayerResult>,
    skipped: Vec<Skipped>,
}

/// The geometric mean of positive finite `ratios`; `None` if there are none
/// (or one is not positive and finite).
pub fn geomean(ratios: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0u32);
    for r in ratios {
        if !(r.is_finite() && r > 0.0) {
            return None;
        }
        sum += r.ln();
        n += 1;
    }
    (n > 0).then(|| (sum / f64::from(n)).exp())
}

pub fn check_out_path(flag: &str, p: &Path) -> anyhow::Result<()> {
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !d.is_dir() {
            return Err(anyhow!("{flag} {}: directory does not exist", p.display()));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, synced,
/// then a rename): `path` is either the old file or the complete new one.
/// Every output file of `wgconv bench`, `plan` and `test` goes through it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    wgconv::npy::write_atomic(path, |w| std::io::Write::write_all(w, bytes))
}

fn selected_layers(args: &Args) -> anyhow::Result<Vec<SuiteLayer>> {
    let mut out = Vec::new();
    for name in args
        .layer
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        match suite::layer(name) {
            Some(l) => out.push(*l),
            None => {
                let known: Vec<&str> = SUITE.iter().map(|l| l.name).collect();
                return Err(anyhow!(
                    "--layer {name}: unknown layer (known: {})",
                    known.join(", ")
                ));
            }
        }
    }
    if let (Some(input), Some(weight)) = (args.shape, args.kernel) {
        let params = Conv2dParams {
            stride: (args.stride.0, args.stride.1),
            padding: args.padding,
            dilation: (args.dilation.0, args.dilation.1),
            groups: args.groups,
        };
        Conv2dShape::conv2d(input, weight, Some(weight[0]), &params).map_err(|e| {
            anyhow!("--shape {input:?} and --kernel {weight:?} do not fit together: {e}")
        })?;
        out.push(SuiteLayer {
            name: "adhoc",
            about: "ad-hoc shape from flags",
            input,
            weight,
            op: LayerOp::Conv2d(params),
        });
    }
    if out.is_empty() {
        out = SUITE.to_vec();
    }
    Ok(out)
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.unit()).collect()
}

/// The median (sorts `v`); 0 for none.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per-run GPU times in ms from timestamps written around each launch, every
/// launch writing `y`.
fn time_gpu<P: OpParams>(
    engine: &Engine,
    conv: &ConvLayer<P>,
    x: &GpuTensor,
    y: &GpuTensor,
    runs: u32,
) -> anyhow::Result<Vec<f64>> {
    let stamps = wgconv::timing::record_timed(engine, 2 * runs, |enc, qs| {
        for i in 0..runs {
            enc.write_timestamp(qs, 2 * i);
            conv.record_into(engine, enc, x, y)?;
            enc.write_timestamp(qs, 2 * i + 1);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(stamps
        .chunks_exact(2)
        .map(|t| (t[1] - t[0]).max(0.0))
        .collect())
}

/// Per-sample wall-clock ms per launch, every launch writing `y`.
fn time_wall<P: OpParams>(
    engine: &Engine,
    conv: &ConvLayer<P>,
    x: &GpuTensor,
    y: &GpuTensor,
    runs: u64,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..LAUNCHES_PER_SAMPLE {
            conv.forward_into(engine, x, y)?;
        }
        engine.wait()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3 / LAUNCHES_PER_SAMPLE as f64);
    }
    Ok(samples)
}

/// `--winograd` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WinogradArg {
    /// The direct kernels.
    Off,
    /// F(2×2, 3×3).
    F2,
    /// F(4×4, 3×3).
    F4,
}

impl WinogradArg {
    fn choice(self) -> Winograd {
        match self {
            WinogradArg::Off => Winograd::Off,
            WinogradArg::F2 => Winograd::F2,
            WinogradArg::F4 => Winograd::F4,
        }
    }
}

struct Measured {
    kernel: String,
    y: Vec<f32>,
    /// The CPU reference with the error magnitude of what ran (`None` with
    /// `--no-check`).
    reference: Option<reference::RefOutput>,
    samples: Vec<f64>,
    timing: &'static str,
    first_pipeline_ms: f64,
    first_conv_ms: f64,
}

/// Builds the layer, runs it once cold (compile + run + readback), warms up
/// and times it.
#[allow(clippy::too_many_arguments)]
fn measure<P: OpParams>(
    engine: &Engine,
    args: &Args,
    timestamps: bool,
    l: &SuiteLayer,
    params: P,
    act: Activation,
    x: &[f32],
    w: &[f32],
    b: &[f32],
) -> anyhow::Result<Measured> {
    let options = LayerOptions {
        winograd: args.winograd.map(WinogradArg::choice),
        goal: args.goal.goal(),
        ..LayerOptions::default()
    };
    let conv = ConvLayer::<P>::with_options(engine, w, l.weight, Some(b), params, act, options)?;
    let xt = GpuTensor::upload(engine, x, l.input)?;
    let compile_before = engine.compile_time();
    let t = Instant::now();
    // With --autotune the first call times the candidates and keeps the fastest.
    let yt = conv.forward(engine, &xt)?;
    let y = yt.read(engine)?;
    let first_conv_ms = ms(t.elapsed());
    let first_pipeline_ms = ms(engine.compile_time() - compile_before);
    let kernel = conv.kernel_name(engine, l.input)?;
    let reference = if args.no_check {
        None
    } else {
        Some(conv.reference_on(engine, x, l.input)?)
    };
    // Every later launch writes the first one's output tensor, as in the
    // criterion benches and a network's pooled buffers: wgpu zero-fills a
    // new buffer before its first use, which `forward` (a new output each
    // call) would add to each launch.
    for _ in 0..args.warmup {
        conv.forward_into(engine, &xt, &yt)?;
    }
    engine.wait()?;
    let mut timing = if timestamps { "gpu-timestamp" } else { "wall" };
    let mut samples = if timestamps {
        time_gpu(engine, &conv, &xt, &yt, args.runs as u32)?
    } else {
        time_wall(engine, &conv, &xt, &yt, args.runs)?
    };
    if timestamps && samples.iter().all(|&s| s <= 0.0) {
        // Timestamps that never advance are useless: fall back.
        samples = time_wall(engine, &conv, &xt, &yt, args.runs)?;
        timing = "wall";
    }
    Ok(Measured {
        kernel,
        y,
        reference,
        samples,
        timing,
        first_pipeline_ms,
        first_conv_ms,
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(args: &Args) -> Outcome {
    if args.autotune && args.goal == GoalArg::FirstResult {
        return Err(anyhow!(
            "--autotune does not apply to --goal first-result, whose layers are never tuned"
        )
        .into());
    }
    let layers = selected_layers(args)?;
    for (flag, p) in [("--json", &args.json), ("--csv", &args.csv)] {
        if let Some(p) = p {
            check_out_path(flag, p)?;
        }
    }
    if let Some(p) = &args.plot {
        plot::check_path("--plot", p)?;
    }
    let peer = match &args.compare {
        Some(p) => Some(Peer::load("--compare", p)?),
        None => None,
    };
    if !args.net.is_empty() {
        crate::net::select(&args.net)?;
    }
    let t0 = Instant::now();
    let engine = wgconv::Engine::with_options(&wgconv::EngineOptions {
        autotune: args.autotune,
        ..args.adapter.options()
    })
    .map_err(|e| anyhow!("{e}"))?;
    let engine_ms = ms(t0.elapsed());
    let timestamps = !args.wall && wgconv::timing::available(&engine);
    let mut timing = if timestamps { "gpu-timestamp" } else { "wall" };
    let host = Host::current();
    let cache = shader_cache(
        engine.info(),
        std::env::var("MESA_SHADER_CACHE_DISABLE").ok().as_deref(),
    );
    eprintln!(
        "wgconv: bench on {} ({:?}), host {host}, timing: {timing}, warmup {}, runs {}",
        engine.info().name,
        engine.info().backend,
        args.warmup,
        args.runs
    );
    if !args.net.is_empty() {
        let opts = crate::net::BenchOptions {
            names: &args.net,
            size: args.size,
            warmup: args.warmup,
            runs: args.runs,
            check: !args.no_check,
            breakdown: args.breakdown,
            peer: peer.as_ref(),
            plot: args.plot.as_ref(),
            goal: args.goal.goal(),
        };
        return crate::net::run_bench(&engine, timestamps, &opts, args.json.as_ref());
    }
    let mut results = Vec::new();
    let skipped: Vec<Skipped> = Vec::new();
    let mut cold: Option<ColdStart> = None;
    for (li, l) in layers.iter().enumerate() {
        let act = if l.name == "adhoc" {
            args.activation
        } else {
            Activation::None
        };
        let shape = l.shape()?;
        let seed = 1000 + li as u64;
        let x = random(shape.input_len(), seed);
        let w = random(shape.weight_len(), seed + 1);
        let b = random(shape.c_out as usize, seed + 2);
        let name = l.name;
        let m = match l.op {
            LayerOp::Conv2d(p) => measure(&engine, args, timestamps, l, p, act, &x, &w, &b),
            LayerOp::ConvTranspose2d(p) => {
                measure(&engine, args, timestamps, l, p, act, &x, &w, &b)
            }
        }
        .map_err(|e| anyhow!("layer {name}: {e:#}"))?;
        if cold.is_none() {
            cold = Some(ColdStart {
                engine_ms,
                first_pipeline_ms: m.first_pipeline_ms,
                first_conv_ms: m.first_conv_ms,
                shader_cache: cache,
            });
        }
        if m.timing == "wall" {
            timing = "wall";
        }
        let (kernel, y, mut samples, layer_timing) = (m.kernel, m.y, m.samples, m.timing);
        let cpu = m.reference;
        let ctx = |e: wgconv::Error| anyhow!("layer {name}: {e}");
        let samples_ms = samples.clone();
        let min_ms = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let median_ms = median(&mut samples);
        let secs = median_ms / 1e3;
        let (max_abs_err, check_passed) = match cpu {
            None => (None, None),
            Some(cpu) => {
                let cmp =
                    reference::compare(&cpu, act, &y, Tolerance::F32Accumulation).map_err(ctx)?;
                (Some(cmp.max_abs), Some(cmp.passed))
            }
        };
        let gflops = shape.flops() as f64 / secs / 1e9;
        let peer_gflops = peer.as_ref().and_then(|p| p.gflops(name, shape.flops()));
        results.push(LayerResult {
            name: name.into(),
            median_ms,
            min_ms,
            gflops,
            peer_gflops,
            vs_peer: peer_gflops.map(|p| gflops / p),
            gbps: shape.bytes_moved() as f64 / secs / 1e9,
            kernel,
            max_abs_err,
            check_passed,
            timing: layer_timing,
            flops: shape.flops(),
            bytes_moved: shape.bytes_moved(),
            input: l.input,
            weight: l.weight,
            output: shape.output_shape(),
            samples_ms,
        });
    }
    let cold = cold.unwrap_or(ColdStart {
        engine_ms,
        first_pipeline_ms: 0.0,
        first_conv_ms: 0.0,
        shader_cache: cache,
    });
    // Table; with --compare a "vs peer" column goes before the kernel.
    let vs = |r: Option<&LayerResult>| match (&peer, r) {
        (None, _) => String::new(),
        (Some(_), None) => format!(" {:>8}", "vs peer"),
        (Some(_), Some(r)) => format!(
            " {:>8}",
            r.vs_peer.map_or("-".into(), |v| if v < 0.1 {
                format!("{v:.3}x")
            } else {
                format!("{v:.2}x")
            })
        ),
    };
    println!(
        "{:<8} {:>10} {:>10} {:>9} {:>8} {:>11}{}  kernel",
        "layer",
        "median ms",
        "min ms",
        "GFLOP/s",
        "GB/s",
        "max abs err",
        vs(None)
    );
    for r in &results {
        println!(
            "{:<8} {:>10.3} {:>10.3} {:>9.2} {:>8.2} {:>11}{}  {}",
            r.name,
            r.median_ms,
            r.min_ms,
            r.gflops,
            r.gbps,
            r.max_abs_err.map_or("-".into(), |e| format!("{e:.2e}")),
            vs(Some(r)),
            r.kernel
        );
    }
    for s in &skipped {
        println!("{:<8} skipped: {}", s.name, s.reason);
    }
    println!(
        "timing: {timing}; cold start: engine {:.1} ms, first pipeline {:.1} ms, first conv {:.1} ms{}",
        cold.engine_ms,
        cold.first_pipeline_ms,
        cold.first_conv_ms,
        if cold.shader_cache == "mesa-disk" {
            " (Mesa's shader cache on: kernels an earlier process compiled load from disk; \
             MESA_SHADER_CACHE_DISABLE=true times an empty cache)"
        } else {
            ""
        }
    );
    let vs_peer_geomean = geomean(results.iter().filter_map(|r| r.vs_peer));
    if let Some(p) = &peer {
        let matched = results.iter().filter(|r| r.vs_peer.is_some()).count();
        println!(
            "vs peer: our GFLOP/s over {}'s ({matched} of {} layers matched by name{}){}",
            p.label,
            results.len(),
            vs_peer_geomean.map_or(String::new(), |g| format!("; geometric mean {g:.2}x")),
            p.host_note(&host)
                .map_or(String::new(), |n| format!("; {n}"))
        );
    }
    let report = Report {
        adapter: adapter_json(
            engine.info(),
            engine.limits(),
            engine.device().features(),
            true,
        ),
        host,
        timing,
        warmup: args.warmup,
        runs: args.runs,
        cold_start: cold,
        peer: peer.as_ref().map(|p| p.label.clone()),
        vs_peer_geomean,
        layers: results,
        skipped,
    };
    if let Some(p) = &args.json {
        write_atomic(p, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("--json {}: cannot write", p.display()))?;
    }
    if let Some(p) = &args.csv {
        let mut s = String::from(
            "name,median_ms,min_ms,gflops,gbps,kernel,max_abs_err,timing,flops,bytes_moved\n",
        );
        for r in &report.layers {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                r.name,
                r.median_ms,
                r.min_ms,
                r.gflops,
                r.gbps,
                r.kernel,
                r.max_abs_err.map_or(String::new(), |e| e.to_string()),
                r.timing,
                r.flops,
                r.bytes_moved
            ));
        }
        write_atomic(p, s.as_bytes())
            .with_context(|| format!("--csv {}: cannot write", p.display()))?;
    }
    if let Some(p) = &args.plot {
        let bars: Vec<Bar> = report
            .layers
            .iter()
            .map(|r| Bar {
                name: r.name.clone(),
                ours: r.gflops,
                peer: r.peer_gflops,
            })
            .collect();
        let title = format!("wgconv bench: GFLOP/s per layer on {}", report.adapter.name);
        plot::bar_chart(
            p,
            &title,
            "wgconv",
            peer.as_ref().map(|p| p.label.as_str()),
            &bars,
        )
        .map_err(|e| anyhow!("--plot {}: {e:#}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geomean_of_ratios() {
        let g = geomean([2.0, 8.0].into_iter()).unwrap();
        assert!((g - 4.0).abs() < 1e-12, "{g}");
        assert_eq!(geomean(std::iter::empty()), None);
        assert_eq!(geomean([1.0, 0.0].into_iter()), None);
        assert_eq!(geomean([f64::NAN].into_iter()), None);
    }

    #[test]
    fn the_shader_cache_is_mesas_unless_disabled() {
        let mut lavapipe = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Vulkan);
        lavapipe.driver = "llvmpipe".into();
        lavapipe.driver_info = "Mesa 22.3.6 (LLVM 15.0.6)".into();
        assert_eq!(shader_cache(&lavapipe, None), "mesa-disk");
        assert_eq!(shader_cache(&lavapipe, Some("false")), "mesa-disk");
        for on in ["1", "true", "TRUE", "y", "yes"] {
            assert_eq!(shader_cache(&lavapipe, Some(on)), "off", "{on}");
        }
        let mut gl = wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, wgpu::Backend::Gl);
        gl.driver_info = "4.5 (Core Profile) Mesa 22.3.6".into();
        assert_eq!(shader_cache(&gl, Some("true")), "off");
        let mut nvidia =
            wgpu::AdapterInfo::new(wgpu::DeviceType::DiscreteGpu, wgpu::Backend::Vulkan);
        nvidia.driver = "NVIDIA".into();
        nvidia.driver_info = "560.35".into();
        assert_eq!(shader_cache(&nvidia, Some("true")), "driver");
    }
}
