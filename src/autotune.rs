//! Autotuning of tile shapes, remembered per adapter on disk.
//!
//! The planner's default tile shapes are a guess; what is fastest depends on
//! the adapter (a CPU driver such as lavapipe and a discrete GPU disagree).
//! With autotuning on ([`crate::EngineOptions::autotune`]), the first time a
//! layer meets an input shape the engine times every candidate tile
//! ([`crate::plan::tile_candidates`]) on that shape, keeps the fastest, and
//! stores the choice in a JSON file keyed by adapter, backend and driver, so
//! the next process (and the next layer of the same shape class) skips the
//! timing. Timing is wall clock around a synchronous submission: the best of
//! a few runs after one untimed warm-up run that also compiles the pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::plan::Tile;

/// What identifies an adapter for tuning: name, backend, driver and its version.
fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | {:?} | {} | {}",
        info.name, info.backend, info.driver, info.driver_info
    )
}

/// Tuned tiles, keyed by adapter and shape class, backed by a JSON file.
#[derive(Debug)]
pub struct Autotuner {
    path: Option<PathBuf>,
    adapter: String,
    /// adapter key → (shape class → tile).
    table: Mutex<BTreeMap<String, BTreeMap<String, Tile>>>,
}

impl Autotuner {
    /// A tuner for `info`'s adapter backed by `path` (`None`: in memory only).
    /// A missing or unreadable file starts an empty table.
    pub fn new(path: Option<PathBuf>, info: &wgpu::AdapterInfo) -> Self {
        Self::for_adapter(path, adapter_key(info))
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

    /// The remembered tile for a shape class on this adapter.
    pub fn get(&self, class: &str) -> Option<Tile> {
        let table = self.table.lock().ok()?;
        table.get(&self.adapter)?.get(class).copied()
    }

    /// Remembers `tile` for `class` and rewrites the file (atomically: a
    /// temporary file renamed into place). A file that cannot be written
    /// leaves the choice in memory only.
    pub fn put(&self, class: &str, tile: Tile) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        table
            .entry(self.adapter.clone())
            .or_default()
            .insert(class.to_string(), tile);
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
        t.put("class", Tile { pix: 4, ph: 1 });
        // A new process (a new tuner on the same file) sees the choice ...
        let again = Autotuner::for_adapter(Some(path.clone()), ADAPTER.into());
        assert_eq!(again.get("class"), Some(Tile { pix: 4, ph: 1 }));
        // ... but another driver does not.
        let other =
            Autotuner::for_adapter(Some(path), "llvmpipe | Vulkan | llvmpipe | Mesa 24".into());
        assert_eq!(other.get("class"), None);
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
