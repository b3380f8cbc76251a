//! A peer's benchmark results to compare against (`--compare FILE.json`).
//!
//! The file has the shape `wgconv bench --json` writes, so one of our own
//! runs is a valid peer: `{"label"?: "...", "layers": [{"name", "gflops"?,
//! "median_ms"?, ...}]}`. Every layer needs `gflops` or `median_ms`; with
//! only `median_ms`, GFLOP/s come from our FLOP count for the layer of the
//! same name. An optional `host` (`{"cpu", "logical_cpus"}`, as our JSON
//! writes it) names the machine the peer ran on. Other fields are ignored.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
use serde::Deserialize;

use wgconv::host::Host;

#[derive(Debug, Deserialize)]
struct File {
    label: Option<String>,
    host: Option<Host>,
    layers: Vec<Layer>,
}

#[derive(Debug, Deserialize)]
struct Layer {
    name: String,
    gflops: Option<f64>,
    median_ms: Option<f64>,
}

/// How fast the peer ran one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Speed {
    Gflops(f64),
    MedianMs(f64),
}

/// A loaded compare file.
#[derive(Debug)]
pub struct Peer {
    /// Legend and table name: the file's `label`, or its stem.
    pub label: String,
    /// The machine the peer ran on, if the file says.
    pub host: Option<Host>,
    layers: HashMap<String, Speed>,
}

impl Peer {
    /// Reads and checks a compare file. Errors (one line, naming `flag` and
    /// the file): unreadable, not JSON, wrong shape, a layer without a
    /// positive `gflops` or `median_ms`, a repeated layer name.
    pub fn load(flag: &str, path: &Path) -> anyhow::Result<Peer> {
        let show = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{flag} {show}: {e}"))?;
        let file: File = serde_json::from_str(&text).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "not a compare file",
                _ => "not JSON",
            };
            anyhow!("{flag} {show}: {what}: {e}")
        })?;
        let mut layers = HashMap::new();
        for l in file.layers {
            let ok = |v: f64| v.is_finite() && v > 0.0;
            let speed = match (l.gflops, l.median_ms) {
                (Some(g), _) if ok(g) => Speed::Gflops(g),
                (None, Some(ms)) if ok(ms) => Speed::MedianMs(ms),
                _ => {
                    return Err(anyhow!(
                        "{flag} {show}: layer {:?} needs a positive \"gflops\" or \"median_ms\"",
                        l.name
                    ))
                }
            };
            if layers.insert(l.name.clone(), speed).is_some() {
                return Err(anyhow!("{flag} {show}: layer {:?} appears twice", l.name));
            }
        }
        let label = match file.label.filter(|s| !s.trim().is_empty()) {
            Some(s) => s,
            None => path
                .file_stem()
                .map_or_else(|| "peer".into(), |s| s.to_string_lossy().into_owned()),
        };
        Ok(Peer {
            label,
            host: file.host,
            layers,
        })
    }

    /// What the reader of a ratio must know about where the peer ran
    /// (`None` when the peer ran on a host with our processor and CPU
    /// count): ratios against a peer measured on another machine compare
    /// the machines too.
    pub fn host_note(&self, ours: &Host) -> Option<String> {
        match &self.host {
            Some(h) if h == ours => None,
            Some(h) => Some(format!(
                "the peer ran on another host ({h}; this run: {ours}), so the ratios compare machines too"
            )),
            None => Some("the peer's file does not name its host".into()),
        }
    }

    /// The peer's GFLOP/s on the layer `name`, which takes `flops` per run;
    /// `None` when the peer does not have that layer.
    pub fn gflops(&self, name: &str, flops: u64) -> Option<f64> {
        match self.layers.get(name)? {
            Speed::Gflops(g) => Some(*g),
            Speed::MedianMs(ms) => Some(flops as f64 / (ms / 1e3) / 1e9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Peer> {
        let dir = std::env::temp_dir().join(format!("wgconv-peer-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = dir.join(format!("p{n}.json"));
        std::fs::write(&p, text)?;
        let r = Peer::load("--compare", &p);
        let _ = std::fs::remove_file(&p);
        r
    }

    #[test]
    fn gflops_median_ms_and_label() {
        let p =
            load(r#"{"layers": [{"name": "a", "gflops": 2.5}, {"name": "b", "median_ms": 2}]}"#)
                .expect("loads");
        assert!(p.label.starts_with('p'), "{}", p.label);
        assert_eq!(p.gflops("a", 0), Some(2.5));
        assert_eq!(p.gflops("b", 4_000_000), Some(2.0));
        assert_eq!(p.gflops("c", 1), None);
        let p = load(r#"{"label": "Burn", "layers": []}"#).expect("loads");
        assert_eq!(p.label, "Burn");
        assert_eq!(p.host, None);
    }

    #[test]
    fn the_host_note_says_when_the_peer_ran_elsewhere() {
        let ours = Host {
            cpu: "Intel(R) Xeon(R) Processor".into(),
            logical_cpus: 2,
        };
        let same =
            r#"{"host": {"cpu": "Intel(R) Xeon(R) Processor", "logical_cpus": 2}, "layers": []}"#;
        assert_eq!(load(same).expect("loads").host_note(&ours), None);
        let other = r#"{"host": {"cpu": "AMD EPYC 9R14", "logical_cpus": 2}, "layers": []}"#;
        let note = load(other)
            .expect("loads")
            .host_note(&ours)
            .expect("a note");
        assert!(note.contains("AMD EPYC 9R14, 2 logical CPUs"), "{note}");
        assert!(note.contains("compare machines"), "{note}");
        let none = load(r#"{"layers": []}"#)
            .expect("loads")
            .host_note(&ours)
            .expect("a note");
        assert!(none.contains("does not name its host"), "{none}");
        let bad = r#"{"host": "somewhere", "layers": []}"#;
        assert!(load(bad).is_err());
    }

    #[test]
    fn bad_files_are_errors() {
        for bad in [
            "not json",
            r#"{"layer": []}"#,
            r#"{"layers": [{"gflops": 1}]}"#,
            r#"{"layers": [{"name": "a"}]}"#,
            r#"{"layers": [{"name": "a", "gflops": -1}]}"#,
            r#"{"layers": [{"name": "a", "gflops": 1}, {"name": "a", "gflops": 2}]}"#,
        ] {
            let e = load(bad).expect_err(bad).to_string();
            assert!(e.starts_with("--compare "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
