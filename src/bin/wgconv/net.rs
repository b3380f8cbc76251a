//! The reference networks on the command line: `wgconv plan --net NAME`
//! (the plan report) and `wgconv bench --net NAME` (timing).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use serde::Serialize;
use wgconv::net::{LayerReport, MemoryReport, Network, Step};
use wgconv::nets::{self, NetSpec, Size, NETS};
use wgconv::{Engine, GpuTensor};

use crate::args::AdapterArgs;
use crate::info::{adapter_json, AdapterJson};
use crate::{Failure, Outcome};

/// `--size` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SizeArg {
    /// The published configuration.
    Full,
    /// The test configuration: same structure, few channels, small images.
    Small,
}

impl SizeArg {
    fn size(self) -> Size {
        match self {
            SizeArg::Full => Size::Full,
            SizeArg::Small => Size::Small,
        }
    }
}

/// The networks `--net` names (comma-separated or repeated; a network, an
/// example's group, or `all`).
pub fn select(names: &[String]) -> anyhow::Result<Vec<&'static NetSpec>> {
    let mut out: Vec<&'static NetSpec> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let found = if name == "all" {
            NETS.iter().collect()
        } else {
            nets::select(name)
        };
        if found.is_empty() {
            let known: Vec<&str> = NETS.iter().map(|n| n.name).collect();
            return Err(anyhow!(
                "--net {name}: unknown network (known: {}, or all)",
                known.join(", ")
            ));
        }
        for n in found {
            if !out.iter().any(|o| o.name == n.name) {
                out.push(n);
            }
        }
    }
    if out.is_empty() {
        return Err(anyhow!("--net: no network named"));
    }
    Ok(out)
}

/// `wgconv plan` flags.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Network(s): a name, an example group, or all (comma-separated).
    #[arg(long, value_name = "NAME", value_delimiter = ',', required = true)]
    net: Vec<String>,
    /// Build the published size or the small test size.
    #[arg(long, value_enum, default_value = "full")]
    size: SizeArg,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    adapter: AdapterArgs,
}

#[derive(Debug, Serialize)]
struct LayerJson {
    name: String,
    op: String,
    inputs: Vec<String>,
    output_shape: [usize; 4],
    receptive_field: String,
    params: u64,
    macs: u64,
    kernel: String,
    separable: Option<SeparableJson>,
}

#[derive(Debug, Serialize)]
struct SeparableJson {
    depthwise: String,
    macs: u64,
    params: u64,
    standard_macs: u64,
    standard_params: u64,
}

/// The memory report in JSON.
#[derive(Debug, Serialize)]
pub struct MemoryJson {
    peak_bytes: u64,
    pool_bytes: u64,
    pool_buffers: usize,
    input_bytes: u64,
    output_bytes: u64,
    weight_bytes: u64,
    unpooled_bytes: u64,
    largest_step_bytes: u64,
}

impl From<MemoryReport> for MemoryJson {
    fn from(m: MemoryReport) -> Self {
        Self {
            peak_bytes: m.peak_bytes(),
            pool_bytes: m.pool_bytes,
            pool_buffers: m.pool_buffers,
            input_bytes: m.input_bytes,
            output_bytes: m.output_bytes,
            weight_bytes: m.weight_bytes,
            unpooled_bytes: m.unpooled_bytes,
            largest_step_bytes: m.largest_step_bytes,
        }
    }
}

#[derive(Debug, Serialize)]
struct PlanJson {
    name: String,
    about: String,
    input: [usize; 4],
    output: [usize; 4],
    params: u64,
    macs: u64,
    memory: MemoryJson,
    layers: Vec<LayerJson>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// `1234567` → `1.23M`.
fn si(v: u64) -> String {
    let v = v as f64;
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

fn shape(s: [usize; 4]) -> String {
    format!("{}×{}×{}×{}", s[0], s[1], s[2], s[3])
}

fn print_plan(spec: &NetSpec, input: [usize; 4], layers: &[LayerReport], mem: &MemoryReport) {
    println!("{} — {}", spec.name, spec.about);
    println!("input {}", shape(input));
    let chars = |s: &str| s.chars().count();
    let w = layers
        .iter()
        .map(|l| chars(&l.name))
        .max()
        .unwrap_or(5)
        .max(5);
    let ow = layers
        .iter()
        .map(|l| chars(&l.op))
        .max()
        .unwrap_or(2)
        .max(2);
    println!(
        "{:<w$}  {:<ow$}  {:>16}  {:>9}  {:>8}  {:>8}  kernel",
        "layer", "op", "output", "RF", "params", "MACs"
    );
    for l in layers {
        println!(
            "{:<w$}  {:<ow$}  {:>16}  {:>9}  {:>8}  {:>8}  {}",
            l.name,
            l.op,
            shape(l.output_shape),
            l.receptive_field.to_string(),
            si(l.params),
            si(l.macs),
            l.kernel
        );
        if let Some(s) = &l.separable {
            println!(
                "{:<w$}  ↳ separable with {}: {} MACs, {} params; the standard conv it replaces: {} MACs, {} params ({:.1}× fewer MACs)",
                "",
                s.depthwise,
                si(s.macs),
                si(s.params),
                si(s.standard_macs),
                si(s.standard_params),
                s.standard_macs as f64 / s.macs.max(1) as f64
            );
        }
    }
    let params: u64 = layers.iter().map(|l| l.params).sum();
    let macs: u64 = layers.iter().map(|l| l.macs).sum();
    let (sep, std): (u64, u64) = layers
        .iter()
        .filter_map(|l| l.separable.as_ref())
        .fold((0, 0), |(a, b), s| (a + s.macs, b + s.standard_macs));
    println!(
        "total: {} layers, {} params, {} MACs ({:.2} GFLOP)",
        layers.len(),
        si(params),
        si(macs),
        2.0 * macs as f64 / 1e9
    );
    if std > 0 {
        println!(
            "depthwise-separable pairs: {} MACs against {} for standard convolutions ({:.1}× fewer)",
            si(sep),
            si(std),
            std as f64 / sep.max(1) as f64
        );
    }
    println!(
        "memory: peak {:.2} MiB = input {:.2} + output {:.2} + pool {:.2} ({} buffers; {:.2} without reuse; largest step {:.2}) + weights {:.2}",
        mib(mem.peak_bytes()),
        mib(mem.input_bytes),
        mib(mem.output_bytes),
        mib(mem.pool_bytes),
        mem.pool_buffers,
        mib(mem.unpooled_bytes),
        mib(mem.largest_step_bytes),
        mib(mem.weight_bytes)
    );
    println!();
}

/// `wgconv plan --net NAME`.
pub fn plan(args: &PlanArgs) -> Outcome {
    let specs = select(&args.net)?;
    if let Some(p) = &args.json {
        crate::bench::check_out_path("--json", p)?;
    }
    let engine = crate::args::engine(&args.adapter)?;
    let size = args.size.size();
    let mut out = Vec::new();
    for spec in specs {
        let ctx = |e: wgconv::Error| anyhow!("network {}: {e}", spec.name);
        let net = spec.build(&engine, size, 1).map_err(ctx)?;
        let input = spec.input_shape(size);
        let layers = net.report(&engine, input).map_err(ctx)?;
        let mem = net.memory_on(&engine, input).map_err(ctx)?;
        print_plan(spec, input, &layers, &mem);
        out.push(PlanJson {
            name: spec.name.into(),
            about: spec.about.into(),
            input,
            output: net.output_shape(input).map_err(ctx)?,
            params: layers.iter().map(|l| l.params).sum(),
            macs: layers.iter().map(|l| l.macs).sum(),
            memory: mem.into(),
            layers: layers
                .into_iter()
                .map(|l| LayerJson {
                    name: l.name,
                    op: l.op,
                    inputs: l.inputs,
                    output_shape: l.output_shape,
                    receptive_field: l.receptive_field.to_string(),
                    params: l.params,
                    macs: l.macs,
                    kernel: l.kernel,
                    separable: l.separable.map(|s| SeparableJson {
                        depthwise: s.depthwise,
                        macs: s.macs,
                        params: s.params,
                        standard_macs: s.standard_macs,
                        standard_params: s.standard_params,
                    }),
                })
                .collect(),
        });
    }
    if let Some(p) = &args.json {
        crate::bench::write_atomic(p, serde_json::to_string_pretty(&out)?.as_bytes())
            .with_context(|| format!("--json {}: cannot write", p.display()))?;
    }
    Ok(())
}

/// What `wgconv bench --net` needs from the bench flags.
pub struct BenchOptions<'a> {
    pub names: &'a [String],
    pub size: SizeArg,
    pub warmup: usize,
    pub runs: u64,
    pub check: bool,
    pub breakdown: bool,
    /// `--compare`: a peer's results, matched by network name.
    pub peer: Option<&'a crate::peer::Peer>,
    /// `--plot`: where to draw GFLOP/s per network.
    pub plot: Option<&'a PathBuf>,
    /// `--goal`: what the networks' convolutions are planned for.
    pub goal: wgconv::plan::Goal,
}

/// One network's timing, in the shape of `wgconv bench --json`'s layers
/// (same field names) plus the network's own fields.
#[derive(Debug, Serialize)]
pub struct NetResult {
    pub name: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub gflops: f64,
    pub kernel: String,
    pub max_abs_err: Option<f64>,
    pub check_passed: Option<bool>,
    pub timing: &'static str,
    pub flops: u64,
    pub input: [usize; 4],
    pub output: [usize; 4],
    pub first_run_ms: f64,
    /// The --compare peer's GFLOP/s on this network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_gflops: Option<f64>,
    /// Our speed over the peer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_peer: Option<f64>,
    pub memory: MemoryJson,
    pub per_layer: Vec<LayerTime>,
    /// Every run's time in ms, in the order they ran.
    pub samples_ms: Vec<f64>,
}

/// A layer's share of a network's time (GPU timestamps only).
#[derive(Debug, Serialize)]
pub struct LayerTime {
    pub name: String,
    pub median_ms: f64,
    pub kernel: String,
}

/// Per-run timestamps: `[run][0..=layers]` in ms from the run's start. The
/// runs are recorded in batches whose timestamps fit one query set
/// (`wgpu::QUERY_SET_MAX_QUERIES`), each batch submitted and read back on
/// its own.
fn time_gpu(
    engine: &Engine,
    net: &Network,
    x: &GpuTensor,
    runs: u32,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let per_run = u32::try_from(net.layers().len() + 1)
        .ok()
        .filter(|&n| n <= wgpu::QUERY_SET_MAX_QUERIES)
        .ok_or_else(|| {
            anyhow!(
                "{} layers: too many to time with GPU timestamps (at most {}); use --wall",
                net.layers().len(),
                wgpu::QUERY_SET_MAX_QUERIES - 1
            )
        })?;
    let batch = wgpu::QUERY_SET_MAX_QUERIES / per_run;
    let mut samples = Vec::with_capacity(runs as usize);
    let mut done = 0;
    while done < runs {
        let n = batch.min(runs - done);
        let stamps = wgconv::timing::record_timed(engine, per_run * n, |enc, qs| {
            let mut outs = Vec::with_capacity(n as usize);
            for r in 0..n {
                let base = r * per_run;
                outs.push(net.record_with(engine, enc, x, &mut |enc, step| {
                    let i = match step {
                        Step::Start => 0,
                        Step::After(i) => i as u32 + 1,
                    };
                    enc.write_timestamp(qs, base + i);
                    Ok(())
                })?);
            }
            Ok::<_, anyhow::Error>(outs)
        })?;
        samples.extend(
            stamps
                .chunks_exact(per_run as usize)
                .map(|t| t.iter().map(|&v| (v - t[0]).max(0.0)).collect()),
        );
        done += n;
    }
    Ok(samples)
}

fn time_wall(engine: &Engine, net: &Network, x: &GpuTensor, runs: u64) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let t = Instant::now();
        let y = net.forward(engine, x)?;
        engine.wait()?;
        drop(y);
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(samples)
}

/// Times every network `opts.names` selects on `engine`.
pub fn bench(
    engine: &Engine,
    timestamps: bool,
    opts: &BenchOptions,
) -> anyhow::Result<Vec<NetResult>> {
    let specs = select(opts.names)?;
    let size = opts.size.size();
    let mut results = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let name = spec.name;
        let ctx = |e: wgconv::Error| anyhow!("network {name}: {e}");
        let seed = 7000 + i as u64;
        let net = spec.build_for(engine, size, seed, opts.goal).map_err(ctx)?;
        let input_shape = spec.input_shape(size);
        let x = spec.input(size, seed);
        let xt = GpuTensor::upload(engine, &x, input_shape).map_err(ctx)?;
        let t = Instant::now();
        net.forward(engine, &xt)
            .map_err(ctx)?
            .read(engine)
            .map_err(ctx)?;
        let first_run_ms = t.elapsed().as_secs_f64() * 1e3;
        for _ in 0..opts.warmup {
            net.forward(engine, &xt).map_err(ctx)?;
        }
        engine.wait().map_err(ctx)?;
        let (mut timing, mut per_layer) = ("wall", Vec::new());
        let mut samples = Vec::new();
        if timestamps {
            let stamps = time_gpu(engine, &net, &xt, opts.runs as u32)?;
            samples = stamps.iter().map(|t| *t.last().unwrap_or(&0.0)).collect();
            if samples.iter().any(|&s| s > 0.0) {
                timing = "gpu-timestamp";
                let report = net.report(engine, input_shape).map_err(ctx)?;
                for (l, layer) in report.into_iter().enumerate() {
                    let mut d: Vec<f64> = stamps.iter().map(|t| t[l + 1] - t[l]).collect();
                    per_layer.push(LayerTime {
                        name: layer.name,
                        median_ms: crate::bench::median(&mut d),
                        kernel: layer.kernel,
                    });
                }
            }
        }
        if timing == "wall" {
            samples = time_wall(engine, &net, &xt, opts.runs)?;
        }
        let samples_ms = samples.clone();
        let min_ms = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let median_ms = crate::bench::median(&mut samples);
        let macs = net.macs(input_shape).map_err(ctx)?;
        let (max_abs_err, check_passed) = if opts.check {
            let check = net.verify(engine, &x, input_shape, false).map_err(ctx)?;
            let err = check
                .layers
                .iter()
                .map(|(_, c)| c.max_abs)
                .fold(0f64, f64::max);
            (Some(err), Some(check.passed()))
        } else {
            (None, None)
        };
        let gflops = 2.0 * macs as f64 / (median_ms / 1e3) / 1e9;
        let peer_gflops = opts.peer.and_then(|p| p.gflops(name, 2 * macs));
        results.push(NetResult {
            name: name.into(),
            median_ms,
            min_ms,
            gflops,
            peer_gflops,
            vs_peer: peer_gflops.map(|p| gflops / p),
            kernel: format!("network ({} layers)", net.layers().len()),
            max_abs_err,
            check_passed,
            timing,
            flops: 2 * macs,
            input: input_shape,
            output: net.output_shape(input_shape).map_err(ctx)?,
            first_run_ms,
            memory: net.memory_on(engine, input_shape).map_err(ctx)?.into(),
            per_layer,
            samples_ms,
        });
    }
    Ok(results)
}

/// Prints the networks' table (and, with `breakdown`, each layer's time).
pub fn print(results: &[NetResult], breakdown: bool) {
    println!(
        "{:<22} {:>10} {:>10} {:>9} {:>9} {:>11} {:>10}",
        "network", "median ms", "min ms", "GFLOP/s", "peak MiB", "max abs err", "first ms"
    );
    for r in results {
        println!(
            "{:<22} {:>10.3} {:>10.3} {:>9.2} {:>9.2} {:>11} {:>10.1}{}",
            r.name,
            r.median_ms,
            r.min_ms,
            r.gflops,
            mib(r.memory.peak_bytes),
            r.max_abs_err.map_or("-".into(), |e| format!("{e:.2e}")),
            r.first_run_ms,
            match r.check_passed {
                Some(false) => "  CHECK FAILED",
                _ => "",
            }
        );
    }
    if breakdown {
        for r in results {
            println!("\n{} per layer (median ms, GPU timestamps):", r.name);
            for l in &r.per_layer {
                println!("  {:<24} {:>9.3}  {}", l.name, l.median_ms, l.kernel);
            }
        }
    }
}

/// `wgconv bench --net` JSON: the suite report's shape, networks as layers.
#[derive(Debug, Serialize)]
pub struct NetReport {
    pub adapter: AdapterJson,
    /// The machine this ran on (on a CPU adapter, the device itself).
    pub host: wgconv::host::Host,
    pub timing: &'static str,
    pub warmup: usize,
    pub runs: u64,
    pub size: &'static str,
    pub layers: Vec<NetResult>,
}

/// Runs `wgconv bench --net`: table, optional JSON; exit 1 if a check failed.
pub fn run_bench(
    engine: &Engine,
    timestamps: bool,
    opts: &BenchOptions,
    json: Option<&PathBuf>,
) -> Outcome {
    let results = bench(engine, timestamps, opts)?;
    print(&results, opts.breakdown);
    let failed = results.iter().any(|r| r.check_passed == Some(false));
    let timing = if results.iter().all(|r| r.timing == "gpu-timestamp") {
        "gpu-timestamp"
    } else {
        "wall"
    };
    let host = wgconv::host::Host::current();
    if let Some(peer) = opts.peer {
        for r in &results {
            if let Some(v) = r.vs_peer {
                println!("{}: {v:.2}× {}'s GFLOP/s", r.name, peer.label);
            }
        }
        if let Some(note) = peer.host_note(&host) {
            println!("vs peer: {note}");
        }
    }
    if let Some(p) = opts.plot {
        let bars: Vec<crate::plot::Bar> = results
            .iter()
            .map(|r| crate::plot::Bar {
                name: r.name.clone(),
                ours: r.gflops,
                peer: r.peer_gflops,
            })
            .collect();
        let title = format!(
            "wgconv bench: GFLOP/s per network on {}",
            engine.info().name
        );
        crate::plot::bar_chart(
            p,
            &title,
            "wgconv",
            opts.peer.map(|p| p.label.as_str()),
            &bars,
        )
        .map_err(|e| anyhow!("--plot {}: {e:#}", p.display()))?;
    }
    if let Some(p) = json {
        let report = NetReport {
            adapter: adapter_json(
                engine.info(),
                engine.limits(),
                engine.device().features(),
                true,
            ),
            host,
            timing,
            warmup: opts.warmup,
            runs: opts.runs,
            size: match opts.size {
                SizeArg::Full => "full",
                SizeArg::Small => "small",
            },
            layers: results,
        };
        crate::bench::write_atomic(p, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("--json {}: cannot write", p.display()))?;
    }
    if failed {
        eprintln!("wgconv: a network failed its check against the CPU reference");
        return Err(Failure::Check);
    }
    Ok(())
}
