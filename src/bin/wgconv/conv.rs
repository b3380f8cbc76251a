//! `wgconv conv2d` and `wgconv conv-transpose2d`: one convolution on `.npy`
//! files.
//!
//! Everything that can be checked without a GPU (file headers, ranks,
//! geometry, the output directory) is checked before the engine is created.
//! Then the element limit (the device's max buffer size / 4; tensors larger than
//! one storage binding run in chunks) is applied to every header before any
//! data is read.
//!
//! Test hook: with `WGCONV_TEST_CORRUPT_OUTPUT=1` in the environment the GPU
//! result is perturbed before `--check` and before writing, so tests can see
//! `--check` catch a wrong result. It has no other use.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use wgconv::reference::{self, Tolerance};
use wgconv::{
    npy, Activation, Conv2d, Conv2dParams, Conv2dShape, ConvTranspose2d, ConvTranspose2dParams,
    GpuTensor, LayerOptions, Padding,
};

use crate::args::{self, AdapterArgs, GoalArg, Pair};
use crate::{Failure, Outcome};

/// Flags shared by both ops.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Input tensor, float32 NCHW (.npy, '<f4', C order).
    #[arg(long, value_name = "X.npy")]
    input: PathBuf,
    /// Weight tensor in the PyTorch layout of the op (.npy).
    #[arg(long, value_name = "W.npy")]
    weight: PathBuf,
    /// Bias, shape [K] (.npy).
    #[arg(long, value_name = "B.npy")]
    bias: Option<PathBuf>,
    /// Stride: S or SH,SW.
    #[arg(long, value_name = "SH,SW", default_value = "1", value_parser = args::positive_pair)]
    stride: Pair,
    /// Zero padding: P, PH,PW or PT,PL,PB,PR (top, left, bottom, right).
    #[arg(long, value_name = "PT,PL,PB,PR", default_value = "0", value_parser = args::padding)]
    padding: Padding,
    /// Dilation: D or DH,DW.
    #[arg(long, value_name = "DH,DW", default_value = "1", value_parser = args::positive_pair)]
    dilation: Pair,
    /// Groups.
    #[arg(long, value_name = "G", default_value = "1", value_parser = args::groups)]
    groups: u32,
    /// Fused activation: none, relu, relu6, leaky_relu:ALPHA, silu.
    #[arg(long, value_name = "ACT", default_value = "none", value_parser = args::activation)]
    activation: Activation,
    /// Output file (.npy), written atomically.
    #[arg(long, value_name = "Y.npy")]
    output: PathBuf,
    /// Also run the CPU reference; print max abs/rel error, exit 1 past tolerance.
    #[arg(long)]
    check: bool,
    /// What the plan optimises: first-result (the command runs the
    /// convolution once: no Winograd or sub-pixel form, compact tiles on CPU
    /// adapters) or throughput (the kernels a long-running program runs).
    #[arg(long, value_enum, default_value = "first-result")]
    goal: GoalArg,
    #[command(flatten)]
    adapter: AdapterArgs,
}

/// `wgconv conv2d` flags.
#[derive(Debug, clap::Args)]
pub struct Conv2dArgs {
    #[command(flatten)]
    common: Common,
}

/// `wgconv conv-transpose2d` flags.
#[derive(Debug, clap::Args)]
pub struct ConvTranspose2dArgs {
    #[command(flatten)]
    common: Common,
    /// Output padding: O or OH,OW.
    #[arg(long, value_name = "OH,OW", default_value = "0", value_parser = args::numbers_pair)]
    output_padding: Pair,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Forward(Conv2dParams),
    Transposed(ConvTranspose2dParams),
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// Checks a file's header and rank; the error names the flag and file.
fn header(flag: &str, path: &Path, rank: usize) -> anyhow::Result<Vec<usize>> {
    let shape = npy::read_header(path).map_err(|e| anyhow!("{flag} {}: {e}", show(path)))?;
    if shape.len() != rank {
        let what = if rank == 4 {
            "4 dimensions"
        } else {
            "1 dimension"
        };
        return Err(anyhow!(
            "{flag} {}: expected {what}, got shape {shape:?}",
            show(path)
        ));
    }
    Ok(shape)
}

fn dims4(v: &[usize]) -> [usize; 4] {
    let mut d = [0; 4];
    d.copy_from_slice(&v[..4]);
    d
}

pub fn run_conv2d(a: &Conv2dArgs) -> Outcome {
    let c = &a.common;
    run(
        c,
        Op::Forward(Conv2dParams {
            stride: (c.stride.0, c.stride.1),
            padding: c.padding,
            dilation: (c.dilation.0, c.dilation.1),
            groups: c.groups,
        }),
    )
}

pub fn run_conv_transpose2d(a: &ConvTranspose2dArgs) -> Outcome {
    let c = &a.common;
    run(
        c,
        Op::Transposed(ConvTranspose2dParams {
            stride: (c.stride.0, c.stride.1),
            padding: c.padding,
            output_padding: (a.output_padding.0, a.output_padding.1),
            dilation: (c.dilation.0, c.dilation.1),
            groups: c.groups,
        }),
    )
}

fn run(c: &Common, op: Op) -> Outcome {
    // 1. Headers, ranks, geometry, output directory: no GPU needed.
    let x_shape = dims4(&header("--input", &c.input, 4)?);
    let w_shape = dims4(&header("--weight", &c.weight, 4)?);
    let b_len = match &c.bias {
        Some(b) => Some(header("--bias", b, 1)?[0]),
        None => None,
    };
    let shape = match op {
        Op::Forward(p) => Conv2dShape::conv2d(x_shape, w_shape, b_len, &p),
        Op::Transposed(p) => Conv2dShape::conv_transpose2d(x_shape, w_shape, b_len, &p),
    };
    let shape = shape.map_err(|e| match (&e, &c.bias) {
        (wgconv::Error::BiasLength { .. }, Some(b)) => anyhow!("--bias {}: {e}", show(b)),
        _ => anyhow!(
            "--input {} {x_shape:?} and --weight {} {w_shape:?} do not fit together: {e}",
            show(&c.input),
            show(&c.weight)
        ),
    })?;
    let dir = match c.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(anyhow!(
            "--output {}: directory {} does not exist",
            show(&c.output),
            show(&dir)
        )
        .into());
    }
    if c.output.is_dir() {
        return Err(anyhow!("--output {}: is a directory", show(&c.output)).into());
    }

    // 2. The engine, and the device's element limit (per buffer: tensors larger
    //    than one storage binding run in chunks).
    let engine = args::engine(&c.adapter)?;
    let max_elements = engine.limits().max_buffer_size / 4;
    let check_size = |flag: &str, path: &Path, n: usize| -> anyhow::Result<()> {
        if n as u64 > max_elements {
            return Err(anyhow!(
                "{flag} {}: {n} elements exceed the device's limit of {max_elements} per buffer",
                show(path)
            ));
        }
        Ok(())
    };
    check_size("--input", &c.input, shape.input_len())?;
    check_size("--weight", &c.weight, shape.weight_len())?;
    check_size("--output", &c.output, shape.output_len())?;

    // 3. Data.
    let read = |flag: &str, path: &Path| -> anyhow::Result<Vec<f32>> {
        npy::read_f32(path, max_elements)
            .map(|a| a.data)
            .map_err(|e| anyhow!("{flag} {}: {e}", show(path)))
    };
    let x = read("--input", &c.input)?;
    let w = read("--weight", &c.weight)?;
    let b = match &c.bias {
        Some(p) => Some(read("--bias", p)?),
        None => None,
    };

    // 4. Run.
    // The reference (with --check) carries the error magnitude of what ran.
    let options = LayerOptions {
        goal: c.goal.goal(),
        ..LayerOptions::default()
    };
    let (mut y, kernel, cpu) = match op {
        Op::Forward(p) => {
            let conv =
                Conv2d::with_options(&engine, &w, w_shape, b.as_deref(), p, c.activation, options)?;
            let kernel = conv.kernel_name(&engine, x_shape)?;
            let xt = GpuTensor::upload(&engine, &x, x_shape)?;
            let y = conv.forward(&engine, &xt)?.read(&engine)?;
            let cpu = c
                .check
                .then(|| conv.reference_on(&engine, &x, x_shape))
                .transpose()?;
            (y, kernel, cpu)
        }
        Op::Transposed(p) => {
            let conv = ConvTranspose2d::with_options(
                &engine,
                &w,
                w_shape,
                b.as_deref(),
                p,
                c.activation,
                options,
            )?;
            let kernel = conv.kernel_name(&engine, x_shape)?;
            let xt = GpuTensor::upload(&engine, &x, x_shape)?;
            let y = conv.forward(&engine, &xt)?.read(&engine)?;
            let cpu = c
                .check
                .then(|| conv.reference_on(&engine, &x, x_shape))
                .transpose()?;
            (y, kernel, cpu)
        }
    };
    if std::env::var("WGCONV_TEST_CORRUPT_OUTPUT").as_deref() == Ok("1") {
        if let Some(v) = y.first_mut() {
            *v += 1.0 + v.abs();
        }
    }

    // 5. Write atomically, then check.
    npy::write_f32(&c.output, &shape.output_shape(), &y)
        .with_context(|| format!("--output {}: cannot write", show(&c.output)))?;
    eprintln!(
        "wgconv: wrote {} {:?} (kernel {kernel}, adapter {})",
        show(&c.output),
        shape.output_shape(),
        engine.info().name
    );
    if let Some(cpu) = cpu {
        let cmp = reference::compare(&cpu, c.activation, &y, Tolerance::F32Accumulation)?;
        println!(
            "check: max abs err {:.3e}, max rel err {:.3e}, {:.3} of tolerance ({}): {}",
            cmp.max_abs,
            cmp.max_rel,
            cmp.worst_ratio,
            cmp.tolerance,
            if cmp.passed { "PASS" } else { "FAIL" }
        );
        if !cmp.passed {
            return Err(Failure::Check);
        }
    }
    Ok(())
}
