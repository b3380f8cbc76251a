//! How long a driver takes to compile each of the given WGSL modules: the
//! time to create its pipeline and the time of its first dispatch (one
//! workgroup, on dummy resources). Lavapipe compiles a compute pipeline's
//! LLVM code on its first dispatch, so that second figure is what a kernel
//! adds to a cold start; run with Mesa's shader cache off
//! (`MESA_SHADER_CACHE_DISABLE=true`) and one module per process.
//!
//! ```text
//! wgconv shaders --dump /tmp/dump
//! MESA_SHADER_CACHE_DISABLE=true cargo run --release --example first_dispatch -- /tmp/dump/winograd_output-m4-vout1-tin1-dil0-act0.wgsl
//! ```
//!
//! naga's runtime checks stay on here (the engine leaves them out of the
//! modules whose indices it proved in range), so the figures can run a
//! little above the engine's own.
//!
//! An argument that does not end in `.wgsl` is read as a pipeline key (the
//! file names `wgconv shaders --dump` writes, e.g.
//! `conv2d_tiled-pix8-cob44-kw3-…-act0`) and the module built from it.

use anyhow::{anyhow, bail, Context, Result};
use std::time::Instant;
use wgconv::{Kernel, KernelKey};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        bail!("usage: first_dispatch <module.wgsl | pipeline key>...");
    }
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .context("no adapter")?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: None,
        required_features: adapter.features() & wgpu::Features::SUBGROUP,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))?;
    for arg in &args {
        let src = if arg.ends_with(".wgsl") {
            std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?
        } else {
            key_source(arg)?
        };
        let (create, first) = time_module(&device, &queue, &src)?;
        println!("{create:8.1} ms create {first:8.1} ms first dispatch  {arg}");
    }
    Ok(())
}

/// Milliseconds to create the pipeline of `src`'s `main`, and to run one
/// workgroup of it on zeroed resources and wait.
fn time_module(device: &wgpu::Device, queue: &wgpu::Queue, src: &str) -> Result<(f64, f64)> {
    let module =
        naga::front::wgsl::parse_str(src).map_err(|e| anyhow!("{}", e.emit_to_string(src)))?;
    let start = Instant::now();
    let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &shader,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    let create = start.elapsed().as_secs_f64() * 1e3;
    // One resource per binding the module declares (all in group 0).
    let mut buffers = Vec::new();
    let mut views = Vec::new();
    for (_, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if let naga::TypeInner::Image { class, .. } = module.types[var.ty].inner {
            let storage = matches!(class, naga::ImageClass::Storage { .. });
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: None,
                size: wgpu::Extent3d {
                    width: 64,
                    height: 64,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: if storage {
                    wgpu::TextureUsages::STORAGE_BINDING
                } else {
                    wgpu::TextureUsages::TEXTURE_BINDING
                },
                view_formats: &[],
            });
            views.push((binding.binding, texture.create_view(&Default::default())));
        } else {
            let usage = if var.space == naga::AddressSpace::Uniform {
                wgpu::BufferUsages::UNIFORM
            } else {
                wgpu::BufferUsages::STORAGE
            };
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: 1 << 16,
                usage,
                mapped_at_creation: false,
            });
            buffers.push((binding.binding, buffer));
        }
    }
    let mut entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .map(|(binding, b)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: b.as_entire_binding(),
        })
        .collect();
    entries.extend(views.iter().map(|(binding, v)| wgpu::BindGroupEntry {
        binding: *binding,
        resource: wgpu::BindingResource::TextureView(v),
    }));
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let start = Instant::now();
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    queue.submit([encoder.finish()]);
    device.poll(wgpu::PollType::wait_indefinitely())?;
    Ok((create, start.elapsed().as_secs_f64() * 1e3))
}

/// The module of a pipeline key as `wgconv shaders --dump` names it: the
/// kernel's name, then each specialisation constant as its lower-case name
/// without underscores and its value.
fn key_source(key: &str) -> Result<String> {
    let mut parts = key.split('-');
    let name = parts.next().unwrap_or_default();
    let kernel = *Kernel::ALL
        .iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| anyhow!("{key}: no kernel {name}"))?;
    let block = kernel
        .source()
        .split("// specialise:begin")
        .nth(1)
        .and_then(|rest| rest.split("// specialise:end").next())
        .unwrap_or_default();
    let names: Vec<&'static str> = block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("const "))
        .filter_map(|rest| rest.split(':').next())
        .map(str::trim)
        .collect();
    let short = |n: &str| n.to_lowercase().replace('_', "");
    let mut consts = Vec::new();
    for part in parts {
        // The longest constant name the part starts with (`KH1` before `K_H`).
        let name = names
            .iter()
            .filter(|n| part.starts_with(&short(n)))
            .max_by_key(|n| n.len())
            .ok_or_else(|| anyhow!("{key}: no constant for {part}"))?;
        let value = part[short(name).len()..]
            .parse()
            .with_context(|| format!("{key}: {part}"))?;
        consts.push((*name, value));
    }
    Ok(KernelKey { kernel, consts }.wgsl()?)
}
