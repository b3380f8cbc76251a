//! `wgconv shaders --dump DIR`: every WGSL module the planner would build
//! for the bench suite, the conformance suite and the decoder layers of the
//! upsampling kernels, validated with naga.

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
    #[command(flatten)]
    adapter: AdapterArgs,
}

/// Every distinct kernel key for the bench and conformance suites and the
/// upsampling decoder layers ([`UPSAMPLE_LAYERS`]) on an adapter profile.
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
    let reports = wgconv::engine::enumerate_adapters(&args.adapter.options());
    let (profile, on) = match reports.iter().find(|r| r.selected) {
        Some(r) => (AdapterProfile::from_info(&r.info), r.info.name.clone()),
        None => (
            AdapterProfile {
                device_type: wgpu::DeviceType::DiscreteGpu,
                backend: wgpu::Backend::Vulkan,
            },
            "no adapter; planning for a discrete Vulkan GPU".into(),
        ),
    };
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
