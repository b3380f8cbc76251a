//! `wgconv test`: the headless conformance runner.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use wgconv::conformance::{self, CaseResult};
use wgconv::Engine;

use crate::args::AdapterArgs;
use crate::info::{adapter_json, AdapterJson};
use crate::{Failure, Outcome};

/// `wgconv test` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Run on every adapter instead of the selected one.
    #[arg(long)]
    all_adapters: bool,
    /// A subset covering every class (under a minute on lavapipe).
    #[arg(long)]
    quick: bool,
    /// Seed of the generated suite.
    #[arg(long, default_value_t = conformance::DEFAULT_SEED)]
    seed: u64,
    /// Only cases of this class (dense, strided, asym_pad, dilated, grouped, depthwise,
    /// pointwise, rectangular, 1d, batch2, odd_sizes, channels, activation).
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// Run at most N cases (after --quick and --class).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct AdapterRun {
    adapter: Option<AdapterJson>,
    error: Option<String>,
    passed: usize,
    failed: usize,
    seconds: f64,
    pipelines_compiled: usize,
    compile_seconds: f64,
    cases: Vec<CaseResult>,
}

#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    quick: bool,
    cases_per_adapter: usize,
    passed: usize,
    failed: usize,
    runs: Vec<AdapterRun>,
}

pub fn run(args: &Args) -> Outcome {
    if let Some(p) = &args.json {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !d.is_dir() {
                return Err(anyhow!("--json {}: directory does not exist", p.display()).into());
            }
        }
    }
    let mut cases = conformance::cases(args.seed);
    if args.quick {
        cases = conformance::quick(cases);
    }
    if let Some(class) = &args.class {
        cases.retain(|c| c.class == class);
        if cases.is_empty() {
            return Err(anyhow!("--class {class}: no such class").into());
        }
    }
    if let Some(n) = args.limit {
        cases.truncate(n);
    }
    // Test hook (see `conv`): perturb every GPU result so failures can be tested.
    let corrupt = std::env::var("WGCONV_TEST_CORRUPT_OUTPUT").as_deref() == Ok("1");
    let engines: Vec<wgconv::Result<Engine>> = if args.all_adapters {
        Engine::all_adapters(&args.adapter.options())
    } else {
        vec![Engine::with_options(&args.adapter.options())]
    };
    if engines.is_empty() {
        return Err(anyhow!("no GPU adapter found").into());
    }
    if !args.all_adapters {
        if let Some(Err(e)) = engines.first() {
            return Err(anyhow!("{e}").into());
        }
    }
    let (mut passed, mut failed) = (0, 0);
    let mut runs = Vec::new();
    for engine in engines {
        let engine = match engine {
            Ok(e) => e,
            Err(e) => {
                // An adapter that refuses a device fails every case on it.
                println!("FAIL adapter: {e}");
                failed += cases.len();
                runs.push(AdapterRun {
                    adapter: None,
                    error: Some(e.to_string()),
                    passed: 0,
                    failed: cases.len(),
                    seconds: 0.0,
                    pipelines_compiled: 0,
                    compile_seconds: 0.0,
                    cases: Vec::new(),
                });
                continue;
            }
        };
        let info = engine.info().clone();
        let label = format!("{} ({:?})", info.name, info.backend);
        eprintln!("wgconv: running {} cases on {label}", cases.len());
        let bar = ProgressBar::with_draw_target(
            Some(cases.len() as u64),
            if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed_precise}]")
        {
            bar.set_style(style);
        }
        let start = std::time::Instant::now();
        let mut results = Vec::with_capacity(cases.len());
        let (mut p, mut f) = (0, 0);
        for case in &cases {
            let r = conformance::run_case_with(&engine, case, corrupt);
            if r.passed {
                p += 1;
            } else {
                f += 1;
                let detail = match (&r.error, r.max_abs, r.max_rel, r.worst_ratio) {
                    (Some(e), ..) => format!("error: {e}"),
                    (None, Some(a), Some(rel), Some(ratio)) => format!(
                        "max abs err {a:.3e}, max rel err {rel:.3e}, {ratio:.3} of tolerance"
                    ),
                    _ => String::new(),
                };
                let line = format!(
                    "FAIL [{label}] {} kernel={}: {detail}",
                    r.case,
                    r.kernel.as_deref().unwrap_or("-")
                );
                bar.suspend(|| println!("{line}"));
            }
            bar.set_message(format!("{f} failed"));
            bar.inc(1);
            results.push(r);
        }
        bar.finish_and_clear();
        passed += p;
        failed += f;
        runs.push(AdapterRun {
            adapter: Some(adapter_json(
                &info,
                engine.limits(),
                engine.device().features(),
                true,
            )),
            error: None,
            passed: p,
            failed: f,
            seconds: start.elapsed().as_secs_f64(),
            pipelines_compiled: engine.pipelines_compiled(),
            compile_seconds: engine.compile_time().as_secs_f64(),
            cases: results,
        });
    }
    if let Some(path) = &args.json {
        let report = Report {
            seed: args.seed,
            quick: args.quick,
            cases_per_adapter: cases.len(),
            passed,
            failed,
            runs,
        };
        let text = serde_json::to_string_pretty(&report)?;
        crate::bench::write_atomic(path, text.as_bytes())
            .with_context(|| format!("--json {}: cannot write", path.display()))?;
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(Failure::Check);
    }
    Ok(())
}
