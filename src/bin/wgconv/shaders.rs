//! `wgconv shaders --dump DIR`: every WGSL module the planner would build
//! for the bench suite, the conformance suite, the decoder layers of the
//! upsampling kernels and the weightless network ops (add, pooling),
//! validated with naga.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use wgconv::plan::{self, AdapterProfile};
use wgconv::suite::{SUITE, UPSAMPLE_LAYERS};
use wgconv::{conformance, Activation, Conv2dShape, KernelKey};

use crate::args::AdapterArgs;
use crate::Outcome;

/// `wgconv shaders` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write `<key>.wgsl` files into (created if missing).
    #[arg(long, value_name = "DIR")]
    dump: PathBuf,
    /// Seed of the conformance suite to cover.
    #[arg(long, default_value_t = conformance::DEFAULT_SEED)]
    seed: u64,
    /// Plan as if the selected adapter (or, without one, a Vulkan adapter with
    /// WebGPU's default limits) were of this type; the planner's kernel
    /// choice is per device type (e.g. `conv2d_shared` on GPUs, `conv2d_tiled`
    /// on CPU drivers).
    #[arg(long, value_name = "TYPE")]
    device_type: Option<DeviceType>,
    #[command(flatten)]
    adapter: AdapterArgs,
}

/// `--device-type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceType {
    /// A discrete GPU.
    Discrete,
    /// An integrated GPU.
    Integrated,
    /// A CPU driver (lavapipe, llvmpipe, WARP).
    Cpu,
}

impl From<DeviceType> for wgpu::DeviceType {
    fn from(t: DeviceType) -> Self {
        match t {
            DeviceType::Discrete => wgpu::DeviceType::DiscreteGpu,
            DeviceType::Integrated => wgpu::DeviceType::IntegratedGpu,
            DeviceType::Cpu => wgpu::DeviceType::Cpu,
        }
    }
}

/// Every distinct kernel key for the bench and conformance suites, the
/// upsampling decoder layers ([`UPSAMPLE_LAYERS`]) and the weightless network
/// ops ([`plan::network_op_keys`]) on an adapter profile.
pub fn keys(profile: &AdapterProfile, seed: u64) -> BTreeMap<String, KernelKey> {
    let mut shapes: Vec<(Conv2dShape, Activation)> = Vec::new();
    for l in &SUITE {
        if let Ok(s) = l.shape() {
            shapes.push((s, Activation::None));
        }
    }
    for c in conformance::cases(seed) {
        if let Ok(s) = c.shape() {
            shapes.push((s, c.activation));
        }
    }
    let mut keys = BTreeMap::new();
    for (s, act) in shapes {
        let p = plan::plan(&s, act, profile, None);
        keys.insert(p.key.to_string(), p.key);
        // Layers the planner runs in Winograd form build its three kernels instead.
        if let Some(m) = plan::winograd_tile(&plan::LayerSig::of(&s), profile, None, None) {
            let dil = (s.dil_h, s.dil_w);
            let tiles = wgconv::winograd::TileGrid::new(m, s.n, s.h_out, s.w_out, dil).tiles();
            let row = wgconv::winograd::gemm_row(tiles) as u32;
            for key in plan::winograd_keys(&s, m, act, profile, row) {
                keys.insert(key.to_string(), key);
            }
        }
    }
    for key in plan::network_op_keys() {
        keys.insert(key.to_string(), key);
    }
    for l in &UPSAMPLE_LAYERS {
        if let Ok(s) = l.shape() {
            for key in [
                plan::plan_upsample(&s.upsample).key,
                plan::plan_upsample_conv2d(&s, profile).key,
            ] {
                keys.insert(key.to_string(), key);
            }
        }
    }
    keys
}

pub fn run(args: &Args) -> Outcome {
    // The planner looks at the adapter; use the one the engine would select,
    // without creating a device.
    let options = args.adapter.options();
    let reports = wgconv::engine::enumerate_adapters(&options);
    let (mut profile, mut on) = match reports.iter().find(|r| r.selected) {
        Some(r) => (r.profile(&options), r.info.name.clone()),
        None => (
            AdapterProfile::new(
                wgpu::DeviceType::DiscreteGpu,
                wgpu::Backend::Vulkan,
                &wgpu::Limits::default(),
            ),
            "no adapter; planning for a Vulkan adapter with WebGPU's default limits".into(),
        ),
    };
    if let Some(t) = args.device_type {
        profile.device_type = t.into();
        on = format!("{on}, as device type {:?}", profile.device_type);
    } else if !reports.iter().any(|r| r.selected) {
        on = "no adapter; planning for a discrete Vulkan GPU".into();
    }
    std::fs::create_dir_all(&args.dump)
        .with_context(|| format!("--dump {}: cannot create directory", args.dump.display()))?;
    let keys = keys(&profile, args.seed);
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    for (name, key) in &keys {
        let src = key.wgsl()?;
        let module = naga::front::wgsl::parse_str(&src)
            .map_err(|e| anyhow!("{name}: WGSL does not parse: {}", e.message()))?;
        validator
            .validate(&module)
            .map_err(|e| anyhow!("{name}: WGSL does not validate: {}", e.as_inner()))?;
        let path = args.dump.join(format!("{name}.wgsl"));
        std::fs::write(&path, src)
            .with_context(|| format!("--dump: cannot write {}", path.display()))?;
    }
    println!(
        "wrote {} shader modules to {} (planned for {on})",
        keys.len(),
        args.dump.display()
    );
    Ok(())
}
