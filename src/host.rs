//! The machine the engine runs on.
//!
//! On a CPU adapter (lavapipe, llvmpipe) the host's processor *is* the
//! device, and the adapter's name says nothing about it: two machines with
//! the same Mesa report the same `llvmpipe (LLVM 15.0.6, 256 bits)`, while
//! what runs fastest differs between them. So the autotuner keys a CPU
//! adapter's choices on the host too ([`crate::autotune`]), `wgconv bench
//! --json` and `wgconv info` record it, and `--compare` says when a peer's
//! host differs from ours (the ratios then compare machines as well as
//! engines).

use serde::{Deserialize, Serialize};

/// The host's processor and how many logical CPUs this process may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The processor's model name (`model name` in `/proc/cpuinfo`), or
    /// `unknown` where the system does not say.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub logical_cpus: usize,
}

impl Host {
    /// This machine.
    pub fn current() -> Host {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| model_name(&text))
            .unwrap_or_else(|| "unknown".into());
        let logical_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        Host { cpu, logical_cpus }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} logical CPUs", self.cpu, self.logical_cpus)
    }
}

/// The first `model name` line of a `/proc/cpuinfo` text (x86; other
/// architectures name the field differently, e.g. `Model` on arm64).
fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        let key = key.trim();
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        (matches!(key, "model name" | "Model" | "cpu model") && !value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_is_the_first_named_processor() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 167\n\
                   model name\t: Intel(R)  Xeon(R) Processor\nflags\t\t: fpu\n\n\
                   processor\t: 1\nmodel name\t: Other\n";
        assert_eq!(
            model_name(x86).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(model_name("processor : 0\nmodel : 167\n"), None);
        assert_eq!(
            model_name("Model\t: Raspberry Pi 4\n").as_deref(),
            Some("Raspberry Pi 4")
        );
        assert_eq!(model_name("model name\t:\n"), None);
    }

    #[test]
    fn this_host_has_a_cpu_count() {
        assert!(Host::current().logical_cpus >= 1);
    }
}
