//! Autotuning of algorithms and tile shapes, remembered per adapter on disk.
//!
//! The planner's defaults are a guess; what is fastest depends on the
//! adapter (a CPU driver such as lavapipe and a discrete GPU disagree).
//! With autotuning on ([`crate::EngineOptions::autotune`]), the first time a
//! layer meets an input shape the engine times every candidate on that
//! shape — its transformed forms (Winograd for an eligible 3×3 layer, the
//! sub-pixel form for a strided transposed one), built for the timing even
//! where the planner would not pick them, and the direct path with each
//! candidate tile ([`crate::plan::tile_candidates`], which includes wider
//! channel blocks) — keeps the fastest, and stores the choice in a JSON
//! file keyed by adapter, backend and driver (and for a CPU adapter the
//! host's processor, see [`crate::host`]), so the next process (and the
//! next layer of the same shape class) skips the timing. Each candidate gets
//! one untimed run, which compiles its pipelines, then the best of three:
//! GPU timestamps around each run inside one encoder where the device has
//! them ([`crate::timing`]), else wall clock around synchronous submissions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::host::Host;
use crate::plan::Tile;

/// A layer's route that is not a tile of its direct path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// The direct path with the planner's plan (a kernel with no tiles to
    /// tune, such as `conv2d_shared`).
    Direct,
    /// The Winograd form ([`crate::winograd`]).
    Winograd,
    /// The sub-pixel form of a transposed layer ([`crate::ops::sub_pixel`]).
    SubPixel,
}

/// What the autotuner remembers for a shape class: a tile of the direct
/// path (stored as the tile's fields, as files from before forms were tuned
/// hold them) or a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Choice {
    /// The direct path with this tile.
    Tile(Tile),
    /// A form (`{"form": "winograd"}`).
    Form {
        /// Which.
        form: Form,
    },
}

/// What identifies an adapter for tuning: name, backend, driver and its
/// version, and for a CPU adapter the host (`host`), whose processor is the
/// device: lavapipe reports the same name, driver and version on every
/// machine with the same Mesa, and its fastest tiles differ between them
/// (measured: two transposed layers' winners flipped between the project's
/// earlier host and an Intel Xeon one). So a cache file carried to another
/// machine, in a home directory or a CI cache, re-tunes instead of applying
/// another CPU's winners.
fn adapter_key(info: &wgpu::AdapterInfo, host: &Host) -> String {
    let key = format!(
        "{} | {:?} | {} | {}",
        info.name, info.backend, info.driver, info.driver_info
    );
    if info.device_type == wgpu::DeviceType::Cpu {
        format!("{key} | host {host}")
    } else {
        key
    }
}

/// Tuned tiles, keyed by adapter and shape class, backed by a JSON file.
#[derive(Debug)]
pub struct Autotuner {
    path: Option<PathBuf>,
    adapter: String,
    /// adapter key → (shape class → choice).
    table: Mutex<BTreeMap<String, BTreeMap<String, Choice>>>,
}

impl Autotuner {
    /// A tuner for `info`'s adapter backed by `path` (`None`: in memory only).
    /// A missing or unreadable file starts an empty table.
    pub fn new(path: Option<PathBuf>, info: &wgpu::AdapterInfo) -> Self {
        Self::for_adapter(path, adapter_key(info, &Host::current()))
    }

    fn for_adapter(path: Option<PathBuf>, adapter: String) -> Self {
        let table = path
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        Self {
            path,
            adapter,
            table: Mutex::new(table),
        }
    }

    /// The default file: `$WGCONV_AUTOTUNE_CACHE`, else
    /// `$XDG_CACHE_HOME/wgconv/autotune.json`, else
    /// `$HOME/.cache/wgconv/autotune.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("WGCONV_AUTOTUNE_CACHE") {
            return Some(PathBuf::from(p));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("wgconv").join("autotune.json"))
    }

    /// The file backing this tuner, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The remembered choice for a shape class on this adapter.
    pub fn get(&self, class: &str) -> Option<Choice> {
        let table = self.table.lock().ok()?;
        table.get(&self.adapter)?.get(class).copied()
    }

    /// Remembers `choice` for `class` and rewrites the file (atomically: a
    /// temporary file renamed into place). A file that cannot be written
    /// leaves the choice in memory only.
    pub fn put(&self, class: &str, choice: Choice) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        table
            .entry(self.adapter.clone())
            .or_default()
            .insert(class.to_string(), choice);
        if let (Some(path), Ok(json)) = (&self.path, serde_json::to_string_pretty(&*table)) {
            let tmp = path.with_extension("json.tmp");
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&tmp, json))
                .and_then(|()| std::fs::rename(&tmp, path));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADAPTER: &str = "llvmpipe | Vulkan | llvmpipe | Mesa 22.3.6";

    #[test]
    fn choices_persist_per_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("autotune.json");
        let t = Autotuner::for_adapter(Some(path.clone()), ADAPTER.into());
        assert_eq!(t.get("class"), None);
        let tile = Choice::Tile(Tile {
            pix: 4,
            ph: 1,
            cob4: Some(8),
        });
        let form = Choice::Form {
            form: Form::Winograd,
        };
        t.put("class", tile);
        t.put("other", form);
        // A new process (a new tuner on the same file) sees the choices ...
        let again = Autotuner::for_adapter(Some(path.clone()), ADAPTER.into());
        assert_eq!(again.get("class"), Some(tile));
        assert_eq!(again.get("other"), Some(form));
        // ... but another driver does not.
        let other =
            Autotuner::for_adapter(Some(path), "llvmpipe | Vulkan | llvmpipe | Mesa 24".into());
        assert_eq!(other.get("class"), None);
    }

    /// A file written before forms and channel blocks were tuned holds bare
    /// tiles: they read as tiles with the planner's channel block, and the
    /// file keeps its format.
    #[test]
    fn older_files_read_as_tiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("autotune.json");
        std::fs::write(
            &path,
            format!(r#"{{"{ADAPTER}": {{"c": {{"pix": 8, "ph": 2}}}}}}"#),
        )
        .unwrap();
        let t = Autotuner::for_adapter(Some(path.clone()), ADAPTER.into());
        assert_eq!(t.get("c"), Some(Choice::Tile(Tile::new(8, 2))));
        t.put(
            "d",
            Choice::Form {
                form: Form::SubPixel,
            },
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json[ADAPTER]["c"], serde_json::json!({"pix": 8, "ph": 2}));
        assert_eq!(json[ADAPTER]["d"], serde_json::json!({"form": "sub-pixel"}));
    }

    #[test]
    fn a_cpu_adapter_is_tuned_per_host() {
        let info = |device_type| {
            let mut i = wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan);
            i.name = "llvmpipe (LLVM 15.0.6, 256 bits)".into();
            i.driver = "llvmpipe".into();
            i.driver_info = "Mesa 22.3.6 (LLVM 15.0.6)".into();
            i
        };
        let host = |cpu: &str| Host {
            cpu: cpu.into(),
            logical_cpus: 2,
        };
        let (epyc, xeon) = (host("AMD EPYC 9R14"), host("Intel(R) Xeon(R) Processor"));
        let cpu = info(wgpu::DeviceType::Cpu);
        assert_ne!(adapter_key(&cpu, &epyc), adapter_key(&cpu, &xeon));
        assert!(
            adapter_key(&cpu, &xeon).ends_with("| host Intel(R) Xeon(R) Processor, 2 logical CPUs")
        );
        // A GPU is the device itself: the host does not enter its key.
        let gpu = info(wgpu::DeviceType::DiscreteGpu);
        assert_eq!(adapter_key(&gpu, &epyc), adapter_key(&gpu, &xeon));
        assert_eq!(
            adapter_key(&gpu, &epyc),
            "llvmpipe (LLVM 15.0.6, 256 bits) | Vulkan | llvmpipe | Mesa 22.3.6 (LLVM 15.0.6)"
        );
    }

    #[test]
    fn an_unreadable_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("autotune.json");
        std::fs::write(&path, "not json").unwrap();
        let t = Autotuner::for_adapter(Some(path), ADAPTER.into());
        assert_eq!(t.get("x"), None);
    }
}
