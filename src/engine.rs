//! The engine: one adapter, one device, one queue and the pipeline cache.
//!
//! Getting a device is kept apart from running work: ops take `&Engine`, so
//! tests, benches and several threads can share one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::autotune::Autotuner;
use crate::error::{Error, Result};
use crate::pipelines::PipelineCache;

/// How to choose the adapter and what to request from it.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Backends to search; `None` means `WGPU_BACKEND` if set, else all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` means
    /// `WGPU_ADAPTER_NAME` if set, else no filter.
    pub adapter_name: Option<String>,
    /// Pretend the device allows at most this many bytes per storage binding
    /// (for testing the chunked paths on small limits). Never raises the
    /// real limit.
    pub max_storage_binding_size: Option<u64>,
    /// Pretend the device allows at most this many bytes per uniform binding
    /// (for testing the reduction segments of `conv2d_tiled`, whose weight
    /// window is a uniform binding, on small layers). Never raises the real
    /// limit.
    pub max_uniform_binding_size: Option<u64>,
    /// Time the candidate tile shapes of each layer on first use of an input
    /// shape and keep the fastest (see [`crate::autotune`]). Also turned on by
    /// `WGCONV_AUTOTUNE=1`.
    pub autotune: bool,
    /// Where tuned choices persist; `None` means
    /// [`crate::autotune::Autotuner::default_path`].
    pub autotune_cache: Option<std::path::PathBuf>,
    /// Pretend the device allows at most this many workgroups per dispatch
    /// dimension (for testing dispatch folding on small shapes). Never
    /// raises the real limit; values below 1 count as 1.
    pub max_workgroups_per_dimension: Option<u32>,
    /// Whether shader modules keep wgpu's runtime checks (bounds checks on
    /// every buffer and array access, loop bounding, integer-division
    /// guards). `Some(false)` compiles them with
    /// `create_shader_module_trusted` — sound because the host validates
    /// every index range the kernels compute (see [`crate::chunk`] and
    /// [`crate::pipelines`]). `None` means `WGCONV_RUNTIME_CHECKS` (`1` on,
    /// `0` off) if set, else on in debug builds and off in release builds.
    pub runtime_checks: Option<bool>,
    /// Whether kernels may use subgroup operations where the adapter offers
    /// them (`Features::SUBGROUP`) at one fixed subgroup size (see
    /// [`crate::plan::AdapterProfile::subgroup_size`]). `None` means
    /// `WGCONV_SUBGROUPS` (`1` on, `0` off) if set, else on.
    pub subgroups: Option<bool>,
    /// Whether kernels may read their input (and `conv_transpose2d` its
    /// weight) from a texture copy where the planner prefers that (CPU
    /// drivers; see [`crate::plan::texture_input`] and
    /// [`crate::plan::weight_texture`]). `None` means
    /// `WGCONV_TEXTURE_INPUTS` (`1` on, `0` off) if set, else on.
    pub texture_inputs: Option<bool>,
}

/// What an input texture ([`Engine::input_texture`]) holds while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TextureUse {
    /// A chunked convolution kernel's input, for the dispatches of one record.
    Conv,
    /// A Winograd layer's input, for its input transforms (the GEMM records
    /// its own copies meanwhile).
    WinogradInput,
    /// A Winograd layer's GEMM output, for its output transform.
    WinogradOutput,
    /// A sub-pixel phase's output, for its scatter.
    Scatter,
    /// The first input of an add.
    AddA,
    /// The second input of an add.
    AddB,
}

/// One adapter as wgpu reports it.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    /// wgpu's adapter info.
    pub info: wgpu::AdapterInfo,
    /// The adapter's limits.
    pub limits: wgpu::Limits,
    /// The adapter's features.
    pub features: wgpu::Features,
    /// Whether the engine would pick it.
    pub selected: bool,
}

impl AdapterReport {
    /// What the planner would know of this adapter in an engine created with
    /// `options` (see [`Engine::profile`]), without creating a device.
    pub fn profile(&self, options: &EngineOptions) -> crate::plan::AdapterProfile {
        let features = if options.resolved_subgroups() {
            self.features
        } else {
            self.features - wgpu::Features::SUBGROUP
        };
        crate::plan::AdapterProfile::from_info(&self.info, &self.limits)
            .with_subgroup_size(fixed_subgroup_size(&self.info, features))
            .with_texture_inputs(options.resolved_texture_inputs())
    }
}

/// The subgroup size of an adapter with `features` enabled, where it has
/// subgroup operations and reports one size.
fn fixed_subgroup_size(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Option<u32> {
    (features.contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size > 0
        && info.subgroup_min_size == info.subgroup_max_size)
        .then_some(info.subgroup_min_size)
}

/// An on/off environment variable: `1` on, `0` off, anything else unset.
fn env_switch(name: &str) -> Option<bool> {
    match std::env::var(name).as_deref() {
        Ok("1") => Some(true),
        Ok("0") => Some(false),
        _ => None,
    }
}

/// Preference among device types: discrete, integrated, virtual, CPU, other.
fn device_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Preference among backends when device types tie (native APIs first).
fn backend_rank(b: wgpu::Backend) -> u32 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

impl EngineOptions {
    fn resolved_backends(&self) -> wgpu::Backends {
        self.backends
            .or_else(wgpu::Backends::from_env)
            .unwrap_or(wgpu::Backends::all())
    }
    /// Whether shader runtime checks stay on (see [`EngineOptions::runtime_checks`]).
    pub fn resolved_runtime_checks(&self) -> bool {
        self.runtime_checks
            .or_else(|| env_switch("WGCONV_RUNTIME_CHECKS"))
            .unwrap_or(cfg!(debug_assertions))
    }
    /// Whether subgroup operations may be used (see [`EngineOptions::subgroups`]).
    pub fn resolved_subgroups(&self) -> bool {
        self.subgroups
            .or_else(|| env_switch("WGCONV_SUBGROUPS"))
            .unwrap_or(true)
    }
    /// Whether inputs may be read through textures (see
    /// [`EngineOptions::texture_inputs`]).
    pub fn resolved_texture_inputs(&self) -> bool {
        self.texture_inputs
            .or_else(|| env_switch("WGCONV_TEXTURE_INPUTS"))
            .unwrap_or(true)
    }
    fn resolved_name(&self) -> Option<String> {
        self.adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|n| !n.is_empty())
    }
}

/// All adapters on the backends the options allow, in the engine's order of
/// preference, with the reason for the choice.
fn ranked_adapters(options: &EngineOptions) -> (wgpu::Instance, Vec<wgpu::Adapter>, String) {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = options.resolved_backends();
    let instance = wgpu::Instance::new(desc);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(options.resolved_backends()));
    // Stable sort: equal ranks keep wgpu's enumeration order.
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (device_rank(i.device_type), backend_rank(i.backend))
    });
    let reason = match options.resolved_name() {
        Some(name) => {
            let needle = name.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
            format!("first adapter whose name contains {name:?} (WGPU_ADAPTER_NAME)")
        }
        None => "highest-ranked device type (discrete > integrated > virtual > cpu), native backend before GL".into(),
    };
    (instance, adapters, reason)
}

/// Lists every adapter wgpu can see on the allowed backends, marking the
/// one [`Engine::with_options`] would select.
pub fn enumerate_adapters(options: &EngineOptions) -> Vec<AdapterReport> {
    let all = EngineOptions {
        adapter_name: Some(String::new()),
        ..options.clone()
    };
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = all.resolved_backends();
    let (_i, chosen, _) = ranked_adapters(options);
    let chosen = chosen.first().map(|a| a.get_info());
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(all.resolved_backends()));
    adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            let selected = chosen.as_ref().is_some_and(|c| {
                c.name == info.name && c.backend == info.backend && c.driver == info.driver
            });
            AdapterReport {
                info,
                limits: a.limits(),
                features: a.features(),
                selected,
            }
        })
        .collect()
}

/// Owns the wgpu device and everything compiled for it. `Send + Sync`.
pub struct Engine {
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    selection_reason: String,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<wgpu::Error>>>,
    pub(crate) pipelines: PipelineCache,
    autotuner: Option<Autotuner>,
    /// Whether the planner may read inputs through textures.
    texture_inputs: bool,
    /// Input textures by use and height (see [`Engine::input_texture`]).
    textures: Mutex<HashMap<(TextureUse, u32), wgpu::Texture>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on the preferred adapter (honours `WGPU_BACKEND` and
    /// `WGPU_ADAPTER_NAME`).
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when no adapter matches, [`Error::RequestDevice`]
    /// when the adapter refuses a device.
    pub fn new() -> Result<Self> {
        Self::with_options(&EngineOptions::default())
    }

    /// An engine chosen and configured by `options`.
    ///
    /// # Errors
    /// As [`Engine::new`].
    pub fn with_options(options: &EngineOptions) -> Result<Self> {
        let (_instance, adapters, reason) = ranked_adapters(options);
        let adapter = adapters
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoAdapter {
                backends: format!("{:?}", options.resolved_backends()),
                adapter_name: options.resolved_name(),
            })?;
        Self::from_adapter(adapter, reason, options)
    }

    /// One engine per adapter on the allowed backends (for running a suite
    /// on every adapter). Adapters that refuse a device are returned as
    /// errors in place.
    pub fn all_adapters(options: &EngineOptions) -> Vec<Result<Self>> {
        let opts = EngineOptions {
            adapter_name: Some(String::new()),
            ..options.clone()
        };
        let (_instance, adapters, _) = ranked_adapters(&opts);
        adapters
            .into_iter()
            .map(|a| Self::from_adapter(a, "--all-adapters".into(), options))
            .collect()
    }

    fn from_adapter(
        adapter: wgpu::Adapter,
        reason: String,
        options: &EngineOptions,
    ) -> Result<Self> {
        let info = adapter.get_info();
        let adapter_limits = adapter.limits();
        // Timestamps and subgroups are optional extras: request them only where offered.
        let mut wanted =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        if options.resolved_subgroups() {
            wanted |= wgpu::Features::SUBGROUP;
        }
        let features = adapter.features() & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgconv"),
            required_features: features,
            required_limits: adapter_limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::RequestDevice {
            adapter: info.name.clone(),
            message: e.to_string(),
        })?;
        let lost = Arc::new(Mutex::new(None));
        let lost_cb = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_cb.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        // Errors outside an error scope would otherwise panic in wgpu's default
        // handler: keep the first one and return it from the next engine call.
        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_cb = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut u) = uncaptured_cb.lock() {
                u.get_or_insert(e);
            }
        }));
        let mut limits = adapter_limits;
        if let Some(max) = options.max_storage_binding_size {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(max);
        }
        if let Some(max) = options.max_uniform_binding_size {
            limits.max_uniform_buffer_binding_size =
                limits.max_uniform_buffer_binding_size.min(max);
        }
        if let Some(max) = options.max_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension =
                limits.max_compute_workgroups_per_dimension.min(max.max(1));
        }
        let pipelines = PipelineCache::new(&device, !options.resolved_runtime_checks());
        let autotune = options.autotune || std::env::var("WGCONV_AUTOTUNE").is_ok_and(|v| v == "1");
        let autotuner = autotune.then(|| {
            let path = options
                .autotune_cache
                .clone()
                .or_else(Autotuner::default_path);
            Autotuner::new(path, &info)
        });
        Ok(Self {
            adapter,
            device,
            queue,
            info,
            limits,
            selection_reason: reason,
            lost,
            uncaptured,
            pipelines,
            autotuner,
            texture_inputs: options.resolved_texture_inputs(),
            textures: Mutex::new(HashMap::new()),
        })
    }

    /// An `Rgba32Float` texture of [`crate::plan::TEXTURE_WIDTH`] texels by
    /// `rows`, to copy a kernel's input into (see
    /// [`crate::plan::texture_input`]). One per use and height, created on
    /// first use and kept: every use records a copy into it and then the
    /// dispatches that read it, and the queue runs commands in order, so
    /// uses never overlap. A texture that must outlive another use's copy
    /// (the Winograd input transform's, across the GEMM's) has a use of its
    /// own. Its bytes are in [`Engine::texture_bytes`].
    pub(crate) fn input_texture(&self, usage: TextureUse, rows: u32) -> Result<wgpu::Texture> {
        let mut map = self
            .textures
            .lock()
            .map_err(|_| Error::Validation("texture cache lock poisoned".into()))?;
        if let Some(t) = map.get(&(usage, rows)) {
            return Ok(t.clone());
        }
        let texture = self.texture_of_rows("wgconv input texture", rows)?;
        map.insert((usage, rows), texture.clone());
        Ok(texture)
    }

    /// A new `Rgba32Float` texture of [`crate::plan::TEXTURE_WIDTH`] texels
    /// by `rows`, to copy a buffer into and read with `textureLoad` (layout:
    /// [`crate::plan::texture_rows`]).
    pub(crate) fn texture_of_rows(&self, label: &str, rows: u32) -> Result<wgpu::Texture> {
        self.scoped(|| {
            Ok(self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width: crate::plan::TEXTURE_WIDTH,
                    height: rows,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                // Sampled (`TIN = 1`) or read-only storage (`TIN = 2`) reads.
                // Copied back to a buffer in `LayerCore::weight_buffer`.
                usage: wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::COPY_DST
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            }))
        })
    }

    /// Bytes of GPU memory held by the input textures
    /// (`Engine::input_texture`).
    pub fn texture_bytes(&self) -> u64 {
        self.textures.lock().map_or(0, |m| {
            m.values()
                .map(|t| u64::from(t.width()) * u64::from(t.height()) * 16)
                .sum()
        })
    }

    /// The autotuner, when autotuning is on.
    pub fn autotuner(&self) -> Option<&Autotuner> {
        self.autotuner.as_ref()
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    /// The adapter.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.adapter
    }
    /// The adapter's info (name, backend, device type, driver).
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }
    /// The limits the engine works within (the device's, possibly lowered by
    /// [`EngineOptions::max_storage_binding_size`] and
    /// [`EngineOptions::max_workgroups_per_dimension`]).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    /// The subgroup size kernels may rely on: the device has subgroup
    /// operations enabled and the adapter reports a single subgroup size.
    pub fn subgroup_size(&self) -> Option<u32> {
        fixed_subgroup_size(&self.info, self.device.features())
    }
    /// What the planner knows of this engine's adapter: its device type,
    /// backend, limits and subgroup size.
    pub fn profile(&self) -> crate::plan::AdapterProfile {
        crate::plan::AdapterProfile::from_info(&self.info, &self.limits)
            .with_subgroup_size(self.subgroup_size())
            .with_texture_inputs(self.texture_inputs)
    }
    /// Why this adapter was selected.
    pub fn selection_reason(&self) -> &str {
        &self.selection_reason
    }
    /// Whether GPU timestamp queries are available on this device.
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }
    /// Whether this engine's shader modules keep wgpu's runtime checks
    /// (`false`: trusted modules, see [`EngineOptions::runtime_checks`]).
    pub fn runtime_checks(&self) -> bool {
        !self.pipelines.trusted()
    }
    /// Number of compute pipelines this engine has compiled so far.
    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.compiled()
    }

    /// Wall time this engine has spent creating pipelines (including the
    /// driver's shader compilation).
    pub fn compile_time(&self) -> std::time::Duration {
        self.pipelines.compile_time()
    }

    /// Returns [`Error::DeviceLost`] if the device has been lost, or the
    /// first device error raised outside an error scope since the last check
    /// ([`Error::Validation`] or [`Error::OutOfMemory`]).
    pub fn check_lost(&self) -> Result<()> {
        match self.lost.lock() {
            Ok(l) => {
                if let Some(msg) = l.as_ref() {
                    return Err(Error::DeviceLost(msg.clone()));
                }
            }
            Err(_) => return Err(Error::DeviceLost("device-lost state poisoned".into())),
        }
        match self.uncaptured.lock().map(|mut u| u.take()) {
            Ok(None) => Ok(()),
            Ok(Some(e @ wgpu::Error::OutOfMemory { .. })) => Err(Error::OutOfMemory(e.to_string())),
            Ok(Some(e)) => Err(Error::Validation(e.to_string())),
            Err(_) => Err(Error::DeviceLost("error state poisoned".into())),
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes and returns
    /// any error they captured as a value.
    ///
    /// # Errors
    /// [`Error::Validation`], [`Error::OutOfMemory`], [`Error::DeviceLost`],
    /// or whatever `f` returns.
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        self.check_lost()?;
        if let Some(e) = o {
            return Err(Error::OutOfMemory(e.to_string()));
        }
        if let Some(e) = v {
            return Err(Error::Validation(e.to_string()));
        }
        out
    }

    /// Waits for all submitted work to finish.
    ///
    /// # Errors
    /// [`Error::DeviceLost`] if the device is lost while waiting.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::DeviceLost(e.to_string()))?;
        self.check_lost()
    }

    /// A buffer holding `contents`, created unmapped and filled through the
    /// queue. (`create_buffer_init` maps at creation and panics when the
    /// device has been lost; this path turns that into an error value.)
    ///
    /// # Errors
    /// [`Error::DeviceLost`] or a captured device error.
    pub(crate) fn buffer_with(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        self.check_lost()?;
        // wgpu requires a non-zero size that is a multiple of COPY_BUFFER_ALIGNMENT (4) for writes.
        let size = (contents.len() as u64)
            .max(4)
            .next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !contents.is_empty() {
            self.queue.write_buffer(&buffer, 0, contents);
        }
        self.check_lost()?;
        Ok(buffer)
    }

    /// Checks a dispatch size against `max_compute_workgroups_per_dimension`
    /// (for the kernels outside the chunked path, which plan their own 2-D
    /// grids).
    pub(crate) fn check_dispatch(&self, groups: [u32; 3]) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        for g in groups {
            if g > max {
                return Err(Error::ExceedsLimit {
                    what: "workgroups per dispatch dimension",
                    size: u64::from(g),
                    max: u64::from(max),
                });
            }
        }
        Ok(())
    }

    /// The limits chunking and folding work within.
    pub(crate) fn budget(&self) -> crate::chunk::Budget {
        crate::chunk::Budget {
            binding: self
                .limits
                .max_storage_buffer_binding_size
                .min(self.limits.max_buffer_size),
            align: u64::from(self.limits.min_storage_buffer_offset_alignment).max(4),
            uniform_align: u64::from(self.limits.min_uniform_buffer_offset_alignment).max(4),
            max_groups: self.limits.max_compute_workgroups_per_dimension,
        }
    }

    /// Checks a buffer size against `max_buffer_size` (a tensor or weight
    /// larger than one binding is bound in windows; see [`crate::chunk`]).
    pub(crate) fn check_buffer(&self, what: &'static str, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(Error::ExceedsLimit {
                what,
                size: bytes,
                max: self.limits.max_buffer_size,
            });
        }
        Ok(())
    }

    /// Checks the size of a buffer that is always bound whole against the
    /// binding and buffer limits.
    pub(crate) fn check_binding(&self, what: &'static str, bytes: u64) -> Result<()> {
        let max = self.limits.max_storage_buffer_binding_size;
        if bytes > max {
            return Err(Error::ExceedsLimit {
                what,
                size: bytes,
                max,
            });
        }
        self.check_buffer(what, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
    }

    #[test]
    fn device_types_rank_discrete_first() {
        use wgpu::DeviceType::*;
        let mut v = vec![Cpu, Other, DiscreteGpu, VirtualGpu, IntegratedGpu];
        v.sort_by_key(|t| device_rank(*t));
        assert_eq!(v, vec![DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other]);
    }
}
