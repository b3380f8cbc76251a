//! Argument types shared by the subcommands.

use wgconv::{Activation, EngineOptions, Padding};

/// `A` or `A,B`: one value for both axes, or (h, w).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair(pub u32, pub u32);

fn numbers(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{v:?} is not a non-negative integer"))
        })
        .collect()
}

impl std::str::FromStr for Pair {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match numbers(s)?.as_slice() {
            [a] => Ok(Pair(*a, *a)),
            [h, w] => Ok(Pair(*h, *w)),
            _ => Err(format!("expected one value or two (H,W), got {s:?}")),
        }
    }
}

/// A pair whose values must be at least 1 (stride, dilation).
pub fn positive_pair(s: &str) -> Result<Pair, String> {
    let p: Pair = s.parse()?;
    if p.0 == 0 || p.1 == 0 {
        return Err(format!("must be at least 1, got {s:?}"));
    }
    Ok(p)
}

/// `P`, `PH,PW` or `PT,PL,PB,PR`.
pub fn padding(s: &str) -> Result<Padding, String> {
    match numbers(s)?.as_slice() {
        [p] => Ok(Padding::uniform(*p)),
        [h, w] => Ok(Padding::symmetric(*h, *w)),
        [t, l, b, r] => Ok(Padding::new(*t, *l, *b, *r)),
        _ => Err(format!("expected P, PH,PW or PT,PL,PB,PR, got {s:?}")),
    }
}

/// Groups: at least 1.
pub fn groups(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(g) if g >= 1 => Ok(g),
        _ => Err(format!("must be an integer of at least 1, got {s:?}")),
    }
}

/// An activation name.
pub fn activation(s: &str) -> Result<Activation, String> {
    s.parse()
}

/// `N,C,H,W` (or any 4 positive integers).
pub fn dims4(s: &str) -> Result<[usize; 4], String> {
    let v = numbers(s)?;
    match <[u32; 4]>::try_from(v.as_slice()) {
        Ok(d) if d.iter().all(|&x| x > 0) => Ok(d.map(|x| x as usize)),
        _ => Err(format!("expected 4 positive integers, got {s:?}")),
    }
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Vulkan.
    Vulkan,
    /// Metal.
    Metal,
    /// Direct3D 12.
    Dx12,
    /// OpenGL / GLES.
    Gl,
}

impl Backend {
    fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

/// `--goal` values: what the planner optimises ([`wgconv::plan::Goal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GoalArg {
    /// The least time to the first result, compilation included: no
    /// Winograd or sub-pixel form, no autotuning, compact tiles on CPU
    /// adapters.
    FirstResult,
    /// The fastest runs once compiled (what a long-running program gets).
    Throughput,
}

impl GoalArg {
    /// The library's goal.
    pub fn goal(self) -> wgconv::plan::Goal {
        match self {
            GoalArg::FirstResult => wgconv::plan::Goal::FirstResult,
            GoalArg::Throughput => wgconv::plan::Goal::Throughput,
        }
    }
}

/// Adapter selection flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AdapterArgs {
    /// Backend to use (default: WGPU_BACKEND, else all).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Case-insensitive substring of the adapter name (default: WGPU_ADAPTER_NAME).
    #[arg(long)]
    pub adapter: Option<String>,
}

impl AdapterArgs {
    /// Engine options for these flags.
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            backends: self.backend.map(Backend::backends),
            adapter_name: self.adapter.clone(),
            ..EngineOptions::default()
        }
    }
}

/// Creates the engine, with the error naming the flags.
pub fn engine(a: &AdapterArgs) -> anyhow::Result<wgconv::Engine> {
    wgconv::Engine::with_options(&a.options()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A pair of non-negative values (output padding).
pub fn numbers_pair(s: &str) -> Result<Pair, String> {
    s.parse()
}
