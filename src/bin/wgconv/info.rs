//! `wgconv info`: adapters, selection, limits and features.

use anyhow::anyhow;
use serde::Serialize;
use wgconv::engine::enumerate_adapters;

use crate::args::AdapterArgs;
use crate::Outcome;

/// `wgconv info` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// One adapter as reported.
#[derive(Debug, Serialize)]
pub struct AdapterJson {
    /// Adapter name.
    pub name: String,
    /// Backend.
    pub backend: String,
    /// Device type.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver details.
    pub driver_info: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// PCI device id.
    pub device: u32,
    /// Whether the engine selects it.
    pub selected: bool,
    /// Limits that matter to wgconv.
    pub limits: LimitsJson,
    /// Features that matter to wgconv.
    pub features: FeaturesJson,
}

/// Limits that matter.
#[derive(Debug, Serialize)]
pub struct LimitsJson {
    /// Bytes per storage binding.
    pub max_storage_buffer_binding_size: u64,
    /// Bytes per buffer.
    pub max_buffer_size: u64,
    /// Workgroup shared memory in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Storage buffers per stage.
    pub max_storage_buffers_per_shader_stage: u32,
}

/// Features that matter.
#[derive(Debug, Serialize)]
pub struct FeaturesJson {
    /// GPU timestamp queries.
    pub timestamp_query: bool,
    /// Timestamps written inside encoders.
    pub timestamp_query_inside_encoders: bool,
    /// `f16` in shaders.
    pub shader_f16: bool,
    /// Subgroup operations.
    pub subgroup: bool,
    /// The smallest and largest subgroup size the adapter reports (equal
    /// where it runs one size; the planner relies on a size only then).
    pub subgroup_sizes: [u32; 2],
}

/// Reports on an adapter.
pub fn adapter_json(
    info: &wgpu::AdapterInfo,
    limits: &wgpu::Limits,
    features: wgpu::Features,
    selected: bool,
) -> AdapterJson {
    AdapterJson {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend).to_lowercase(),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        vendor: info.vendor,
        device: info.device,
        selected,
        limits: LimitsJson {
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        },
        features: FeaturesJson {
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            timestamp_query_inside_encoders: features
                .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
            subgroup_sizes: [info.subgroup_min_size, info.subgroup_max_size],
        },
    }
}

#[derive(Debug, Serialize)]
struct InfoJson {
    /// The machine (on a CPU adapter, the device itself).
    host: wgconv::host::Host,
    adapters: Vec<AdapterJson>,
    selected: Option<usize>,
    selection_reason: Option<String>,
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{bytes} ({} MiB)", bytes >> 20)
    } else {
        bytes.to_string()
    }
}

pub fn run(args: &Args) -> Outcome {
    let options = args.adapter.options();
    let reports = enumerate_adapters(&options);
    let selected = reports.iter().position(|r| r.selected);
    // The reason comes from creating the engine the way every other command does.
    let reason = selected.and_then(|_| {
        wgconv::Engine::with_options(&options)
            .ok()
            .map(|e| e.selection_reason().to_string())
    });
    let adapters: Vec<AdapterJson> = reports
        .iter()
        .map(|r| adapter_json(&r.info, &r.limits, r.features, r.selected))
        .collect();
    let report = InfoJson {
        host: wgconv::host::Host::current(),
        adapters,
        selected,
        selection_reason: reason,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("host: {}", report.host);
        println!("{} adapter(s)", report.adapters.len());
        for (i, a) in report.adapters.iter().enumerate() {
            println!(
                "{} [{i}] {} ({}, {}, driver: {} {})",
                if a.selected { "*" } else { " " },
                a.name,
                a.backend,
                a.device_type,
                a.driver,
                a.driver_info
            );
            let l = &a.limits;
            println!(
                "      max storage binding {}, max buffer {}, workgroup storage {}, invocations/workgroup {}, workgroups/dim {}",
                mib(l.max_storage_buffer_binding_size),
                mib(l.max_buffer_size),
                l.max_compute_workgroup_storage_size,
                l.max_compute_invocations_per_workgroup,
                l.max_compute_workgroups_per_dimension
            );
            let f = &a.features;
            let yn = |b: bool| if b { "yes" } else { "no" };
            let subgroups = match f.subgroup_sizes {
                _ if !f.subgroup => "no".to_string(),
                [lo, hi] if lo == hi => format!("yes (size {lo})"),
                [lo, hi] => format!("yes (sizes {lo}–{hi})"),
            };
            println!(
                "      timestamp queries {} (inside encoders {}), f16 {}, subgroups {subgroups}",
                yn(f.timestamp_query),
                yn(f.timestamp_query_inside_encoders),
                yn(f.shader_f16),
            );
        }
        if let Some(reason) = &report.selection_reason {
            println!("selected: [{}] because: {reason}", selected.unwrap_or(0));
        }
    }
    if report.adapters.is_empty() || selected.is_none() {
        return Err(anyhow!(
            "no GPU adapter found{}",
            match (&args.adapter.backend, &args.adapter.adapter) {
                (Some(b), _) => format!(" (--backend {b:?})").to_lowercase(),
                (_, Some(n)) => format!(" (--adapter {n:?})"),
                _ => String::new(),
            }
        )
        .into());
    }
    Ok(())
}
