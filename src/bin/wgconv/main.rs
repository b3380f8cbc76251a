//! `wgconv`: the command-line face of the engine — adapter info, one
//! convolution on `.npy` files, the conformance runner, the benchmark
//! harness and the shader dump.
//!
//! Exit codes: 0 success; 1 a `--check` mismatch or a conformance failure;
//! 2 bad input or any other runtime failure (one line on stderr,
//! `wgconv: error: ...`).

mod args;
mod bench;
mod conv;
mod info;
mod net;
mod peer;
mod plot;
mod shaders;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// GPU convolution engine on wgpu: info, run, verify, benchmark.
#[derive(Debug, Parser)]
#[command(name = "wgconv", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every adapter wgpu can see, the selected one, and the limits and features that matter.
    Info(info::Args),
    /// Run one forward convolution on .npy files.
    Conv2d(conv::Conv2dArgs),
    /// Run one transposed convolution on .npy files.
    #[command(name = "conv-transpose2d")]
    ConvTranspose2d(conv::ConvTranspose2dArgs),
    /// Run the built-in conformance suite against the CPU reference.
    Test(test::Args),
    /// Benchmark the suite layers or an ad-hoc shape.
    Bench(bench::Args),
    /// Print a reference network's plan: per layer the output shape,
    /// receptive field, parameters, multiply-adds and kernel, and the totals.
    Plan(net::PlanArgs),
    /// Write every WGSL module the planner would build, validated with naga.
    Shaders(shaders::Args),
}

/// A failure that decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or a runtime error: exit 2.
    Error(anyhow::Error),
    /// A check that ran and failed (`--check`, conformance): exit 1. The
    /// details have already been printed.
    Check,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Error(e.into())
    }
}

/// What subcommands return.
pub type Outcome = Result<(), Failure>;

/// Prints an error as one line: `wgconv: error: ...`.
pub fn print_error(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("wgconv: error: {msg}");
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's first line without its "error: " prefix.
            let text = e.render().to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let msg = msg.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("wgconv: error: {msg}");
            return ExitCode::from(2);
        }
    };
    let outcome = match cli.command {
        Command::Info(a) => info::run(&a),
        Command::Conv2d(a) => conv::run_conv2d(&a),
        Command::ConvTranspose2d(a) => conv::run_conv_transpose2d(&a),
        Command::Test(a) => test::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Shaders(a) => shaders::run(&a),
        Command::Plan(a) => net::plan(&a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Check) => ExitCode::from(1),
        Err(Failure::Error(e)) => {
            print_error(&e);
            ExitCode::from(2)
        }
    }
}
