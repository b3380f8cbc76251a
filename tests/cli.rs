//! Integration tests of the `wgconv` binary: every subcommand, and every bad
//! input of the `.npy` contract (exit 2, one line on stderr naming the
//! file or flag, no output file). GPU-needing tests skip when `wgconv info`
//! finds no adapter, unless `WGCONV_REQUIRE_GPU=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn runtime_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

fn wgconv(args: &[&str]) -> Output {
    wgconv_env(args, &[])
}

fn wgconv_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wgconv"));
    // Shader runtime checks on, as in every test (release builds default to trusted modules).
    cmd.args(args)
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .env("WGCONV_RUNTIME_CHECKS", "1");
    cmd.env_remove("WGCONV_TEST_CORRUPT_OUTPUT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run wgconv")
}

fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        // Mesa's own complaint when a Vulkan instance starts; not ours.
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .map(str::to_string)
        .collect()
}

fn has_gpu() -> bool {
    static GPU: OnceLock<bool> = OnceLock::new();
    *GPU.get_or_init(|| {
        let ok = wgconv(&["info", "--json"]).status.success();
        if !ok && std::env::var("WGCONV_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("WGCONV_REQUIRE_GPU=1 but `wgconv info` finds no adapter");
        }
        ok
    })
}

macro_rules! gpu_or_skip {
    () => {
        if !has_gpu() {
            eprintln!("SKIPPED: no GPU adapter (set WGCONV_REQUIRE_GPU=1 to make this a failure)");
            return;
        }
    };
}

/// Writes a `.npy` file by hand: any descr, order and shape; `data_bytes`
/// of payload (default: what the shape needs for 4-byte elements, filled
/// with small values).
fn npy_raw(path: &Path, descr: &str, fortran: bool, shape: &[u64], data: Option<Vec<u8>>) {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({dims}), }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let data = data.unwrap_or_else(|| {
        let n: u64 = shape.iter().product();
        let size = if descr.ends_with('8') { 8 } else { 4 };
        (0..n * size)
            .map(|i| (i % 7) as u8 + 0x3c * u8::from(i % 4 == 3))
            .collect()
    });
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).expect("write npy");
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 11.0)
        .collect()
}

fn npy_f32(path: &Path, shape: &[u64]) {
    let n: u64 = shape.iter().product();
    npy_raw(path, "<f4", false, shape, Some(f32s(&ramp(n as usize))));
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        npy_f32(&dir.path().join("x.npy"), &[1, 3, 6, 5]);
        npy_f32(&dir.path().join("w.npy"), &[4, 3, 3, 3]);
        npy_f32(&dir.path().join("b.npy"), &[4]);
        Self { dir }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.p(name).display().to_string()
    }
}

/// Asserts exit 2, exactly one stderr line naming `needle`, and no output.
fn assert_bad(o: &Output, needle: &str, out: &Path) {
    let lines = stderr_lines(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {lines:?}");
    assert_eq!(lines.len(), 1, "want one stderr line, got {lines:?}");
    assert!(lines[0].starts_with("wgconv: error: "), "{lines:?}");
    assert!(
        lines[0].contains(needle),
        "{:?} should name {needle:?}",
        lines[0]
    );
    assert!(!out.exists(), "output file must not exist");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
}

fn conv_with_input(f: &Files, input: &str) -> Output {
    wgconv(&[
        "conv2d",
        "--input",
        &f.s(input),
        "--weight",
        &f.s("w.npy"),
        "--output",
        &f.s("y.npy"),
    ])
}

#[test]
fn bad_npy_inputs_are_one_line_errors_with_exit_2() {
    let f = Files::new();
    let shape = [1u64, 3, 6, 5];
    npy_raw(&f.p("f64.npy"), "<f8", false, &shape, None);
    npy_raw(&f.p("be.npy"), ">f4", false, &shape, None);
    npy_raw(&f.p("fortran.npy"), "<f4", true, &shape, None);
    npy_f32(&f.p("rank3.npy"), &[3, 6, 5]);
    let full = std::fs::read(f.p("x.npy")).expect("read");
    std::fs::write(f.p("truncated.npy"), &full[..full.len() - 9]).expect("write");
    std::fs::write(f.p("garbage.npy"), b"this is not a numpy file at all\n").expect("write");
    npy_raw(
        &f.p("huge.npy"),
        "<f4",
        false,
        &[100_000, 100_000, 1000, 1000],
        Some(vec![0; 64]),
    );
    for (file, what) in [
        ("f64.npy", "<f8"),
        ("be.npy", ">f4"),
        ("fortran.npy", "Fortran"),
        ("rank3.npy", "4 dimensions"),
        ("truncated.npy", "truncated"),
        ("garbage.npy", "not a valid .npy"),
        ("missing.npy", "cannot read"),
        ("huge.npy", "truncated"),
    ] {
        let o = conv_with_input(&f, file);
        assert_bad(&o, file, &f.p("y.npy"));
        assert_bad(&o, what, &f.p("y.npy"));
        assert_bad(&o, "--input", &f.p("y.npy"));
    }
}

#[test]
fn bad_weight_bias_and_shapes() {
    let f = Files::new();
    npy_f32(&f.p("w5.npy"), &[4, 5, 3, 3]);
    npy_f32(&f.p("b3.npy"), &[3]);
    npy_f32(&f.p("b2d.npy"), &[2, 2]);
    npy_raw(&f.p("wbe.npy"), ">f4", false, &[4, 3, 3, 3], None);
    let y = f.p("y.npy");
    let run = |extra: &[&str]| {
        let mut a = vec!["conv2d", "--input"];
        let x = f.s("x.npy");
        let out = f.s("y.npy");
        a.push(&x);
        a.extend_from_slice(extra);
        a.extend_from_slice(&["--output", &out]);
        wgconv(&a)
    };
    let w5 = f.s("w5.npy");
    let w = f.s("w.npy");
    assert_bad(&run(&["--weight", &w5]), "do not fit together", &y);
    assert_bad(&run(&["--weight", &w5]), "w5.npy", &y);
    assert_bad(&run(&["--weight", &f.s("wbe.npy")]), "--weight", &y);
    assert_bad(
        &run(&["--weight", &w, "--bias", &f.s("b3.npy")]),
        "--bias",
        &y,
    );
    assert_bad(
        &run(&["--weight", &w, "--bias", &f.s("b2d.npy")]),
        "b2d.npy",
        &y,
    );
    assert_bad(&run(&["--weight", &w, "--groups", "2"]), "groups", &y);
    assert_bad(&run(&["--weight", &w, "--stride", "0"]), "--stride", &y);
    assert_bad(
        &run(&["--weight", &w, "--padding", "1,2,3"]),
        "--padding",
        &y,
    );
    assert_bad(&run(&["--weight", &w, "--dilation", "x"]), "--dilation", &y);
    assert_bad(
        &run(&["--weight", &w, "--activation", "gelu"]),
        "--activation",
        &y,
    );
    // Kernel larger than the padded input.
    assert_bad(&run(&["--weight", &w, "--dilation", "4"]), "exceeds", &y);
    // Output directory missing.
    let o = wgconv(&[
        "conv2d",
        "--input",
        &f.s("x.npy"),
        "--weight",
        &w,
        "--output",
        &f.s("nodir/y.npy"),
    ]);
    assert_bad(&o, "--output", &f.p("nodir/y.npy"));
    // Transposed: weight is [C, K/G, kh, kw]; the conv weight does not fit.
    let o = wgconv(&[
        "conv-transpose2d",
        "--input",
        &f.s("x.npy"),
        "--weight",
        &w5,
        "--output",
        &f.s("y.npy"),
    ]);
    assert_bad(&o, "do not fit together", &y);
    let o = wgconv(&[
        "conv-transpose2d",
        "--input",
        &f.s("x.npy"),
        "--weight",
        &w,
        "--output-padding",
        "a",
        "--output",
        &f.s("y.npy"),
    ]);
    assert_bad(&o, "--output-padding", &y);
}

#[test]
fn header_beyond_the_device_limit_is_rejected_before_reading() {
    gpu_or_skip!();
    let f = Files::new();
    // A sparse file that really holds the 3·32768² floats it claims (12 GiB, sparse): more than the
    // storage binding lavapipe (or most GPUs) allow, so the limit, not the
    // truncation check, rejects it — before the data is read.
    let path = f.p("big.npy");
    npy_raw(&path, "<f4", false, &[1, 3, 32768, 32768], Some(Vec::new()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    let len = file.metadata().expect("meta").len();
    file.set_len(len + 3 * 32768 * 32768 * 4)
        .expect("sparse extend");
    drop(file);
    let o = conv_with_input(&f, "big.npy");
    let lines = stderr_lines(&o);
    if lines.iter().any(|l| l.contains("not fit")) {
        panic!("{lines:?}");
    }
    assert_bad(&o, "big.npy", &f.p("y.npy"));
    assert_bad(&o, "limit", &f.p("y.npy"));
}

#[test]
fn conv2d_writes_output_and_check_passes() {
    gpu_or_skip!();
    let f = Files::new();
    let o = wgconv(&[
        "conv2d",
        "--input",
        &f.s("x.npy"),
        "--weight",
        &f.s("w.npy"),
        "--bias",
        &f.s("b.npy"),
        "--padding",
        "1,0,2,1",
        "--stride",
        "2,1",
        "--activation",
        "leaky_relu:0.1",
        "--output",
        &f.s("y.npy"),
        "--check",
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("max abs err") && stdout.contains("PASS"),
        "{stdout}"
    );
    let y = wgconv::npy::read_f32(&f.p("y.npy"), 1 << 20).expect("read output");
    // H: (6 + 1 + 2 - 3) / 2 + 1 = 4; W: (5 + 0 + 1 - 3) + 1 = 4.
    assert_eq!(y.shape, vec![1, 4, 4, 4]);
}

/// `conv2d` plans for the first result by default (no Winograd form, which
/// adds pipelines to compile); `--goal throughput` runs what a long-running
/// program would, here the Winograd form on lavapipe. Both pass `--check`,
/// and a bad goal is a usage error.
#[test]
fn conv2d_plans_for_the_first_result_unless_asked() {
    gpu_or_skip!();
    let f = Files::new();
    npy_f32(&f.p("x128.npy"), &[1, 128, 28, 28]);
    npy_f32(&f.p("w128.npy"), &[128, 128, 3, 3]);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "conv2d",
            "--input",
            "X",
            "--weight",
            "W",
            "--padding",
            "1",
            "--output",
            "Y",
            "--check",
        ];
        args.extend_from_slice(extra);
        let (x, w, y) = (f.s("x128.npy"), f.s("w128.npy"), f.s("y.npy"));
        let args: Vec<&str> = args
            .iter()
            .map(|a| match *a {
                "X" => x.as_str(),
                "W" => w.as_str(),
                "Y" => y.as_str(),
                a => a,
            })
            .collect();
        let o = wgconv(&args);
        let lines = stderr_lines(&o);
        assert_eq!(o.status.code(), Some(0), "{lines:?}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("PASS"));
        let wrote = lines.iter().find(|l| l.starts_with("wgconv: wrote"));
        wrote.expect("a wrote line").clone()
    };
    let first = run(&[]);
    assert!(first.contains("(kernel conv2d_tiled-"), "{first}");
    assert_eq!(run(&["--goal", "first-result"]), first);
    let throughput = run(&["--goal", "throughput"]);
    if throughput.contains("llvmpipe") {
        assert!(throughput.contains("(kernel winograd-f4+"), "{throughput}");
    }
    let o = wgconv(&["conv2d", "--goal", "fastest"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_catches_a_wrong_result() {
    gpu_or_skip!();
    let f = Files::new();
    let o = wgconv_env(
        &[
            "conv2d",
            "--input",
            &f.s("x.npy"),
            "--weight",
            &f.s("w.npy"),
            "--output",
            &f.s("y.npy"),
            "--check",
        ],
        &[("WGCONV_TEST_CORRUPT_OUTPUT", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", stderr_lines(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));
}

#[test]
fn conv_transpose2d_runs_and_checks() {
    gpu_or_skip!();
    let f = Files::new();
    npy_f32(&f.p("wt.npy"), &[3, 2, 4, 4]);
    npy_f32(&f.p("bt.npy"), &[2]);
    let o = wgconv(&[
        "conv-transpose2d",
        "--input",
        &f.s("x.npy"),
        "--weight",
        &f.s("wt.npy"),
        "--bias",
        &f.s("bt.npy"),
        "--stride",
        "2",
        "--padding",
        "1",
        "--output-padding",
        "1",
        "--output",
        &f.s("y.npy"),
        "--check",
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let y = wgconv::npy::read_f32(&f.p("y.npy"), 1 << 20).expect("read output");
    // (6-1)*2 - 2 + 3 + 1 + 1 = 13; (5-1)*2 - 2 + 3 + 1 + 1 = 11.
    assert_eq!(y.shape, vec![1, 2, 13, 11]);
}

#[test]
fn info_lists_adapters() {
    gpu_or_skip!();
    let o = wgconv(&["info", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let adapters = v["adapters"].as_array().expect("adapters");
    assert!(!adapters.is_empty());
    assert!(adapters.iter().any(|a| a["selected"] == true));
    assert!(v["host"]["cpu"].is_string() && v["host"]["logical_cpus"].is_u64());
    assert!(adapters[0]["limits"]["max_storage_buffer_binding_size"].is_u64());
    assert!(adapters[0]["features"]["timestamp_query"].is_boolean());
    let sizes = adapters[0]["features"]["subgroup_sizes"]
        .as_array()
        .expect("subgroup_sizes");
    assert_eq!(sizes.len(), 2);
    assert!(sizes[0].as_u64() <= sizes[1].as_u64());
    let text = wgconv(&["info"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("selected"));
}

#[test]
fn test_subcommand_passes_and_reports_failures() {
    gpu_or_skip!();
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("r.json");
    let o = wgconv(&[
        "test",
        "--quick",
        "--limit",
        "12",
        "--json",
        &json.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("12 passed, 0 failed"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    assert_eq!(v["passed"], 12);
    let o = wgconv(&["test", "--class", "transposed", "--limit", "3"]);
    assert_eq!(o.status.code(), Some(0));
    let o = wgconv_env(
        &["test", "--class", "grouped", "--limit", "2"],
        &[("WGCONV_TEST_CORRUPT_OUTPUT", "1")],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("FAIL")).count(), 2);
    assert!(stdout.contains("groups="), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("0 passed, 2 failed"));
}

#[test]
fn bench_json_and_csv() {
    gpu_or_skip!();
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("b.json");
    let csv = dir.path().join("b.csv");
    let o = wgconv(&[
        "bench",
        "--shape",
        "1,4,8,8",
        "--kernel",
        "8,4,3,3",
        "--padding",
        "1",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--json",
        &json.display().to_string(),
        "--csv",
        &csv.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert!(v["adapter"]["name"].is_string());
    assert!(v["timing"] == "gpu-timestamp" || v["timing"] == "wall");
    let l = &v["layers"][0];
    for field in ["median_ms", "min_ms", "gflops", "max_abs_err"] {
        assert!(l[field].is_f64(), "{field}: {l}");
    }
    // The runs in order: 3 of them, their median and minimum the fields'.
    let mut runs: Vec<f64> = l["samples_ms"]
        .as_array()
        .expect("samples_ms")
        .iter()
        .map(|t| t.as_f64().expect("ms"))
        .collect();
    runs.sort_by(f64::total_cmp);
    assert_eq!(runs.len(), 3, "{l}");
    assert_eq!(l["median_ms"].as_f64(), Some(runs[1]));
    assert_eq!(l["min_ms"].as_f64(), Some(runs[0]));
    assert_eq!(l["name"], "adhoc");
    assert!(l["kernel"]
        .as_str()
        .is_some_and(|k| k.starts_with("conv2d")));
    assert!(v["cold_start"]["engine_ms"].is_f64());
    let cache = v["cold_start"]["shader_cache"].as_str();
    assert!(
        matches!(cache, Some("mesa-disk" | "off" | "driver")),
        "{cache:?}"
    );
    // The host is recorded (on a CPU adapter it is the device), and a run
    // compared with one from the same host carries no note about hosts.
    assert!(v["host"]["cpu"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(v["host"]["logical_cpus"].as_u64() >= Some(1));
    let again = wgconv(&[
        "bench",
        "--shape",
        "1,4,8,8",
        "--kernel",
        "8,4,3,3",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--compare",
        &json.display().to_string(),
    ]);
    assert_eq!(again.status.code(), Some(0), "{:?}", stderr_lines(&again));
    let stdout = String::from_utf8_lossy(&again.stdout);
    let vs = stdout.lines().find(|l| l.starts_with("vs peer:"));
    assert!(
        vs.is_some_and(|l| l.contains("(1 of 1 layers")
            && l.contains("geometric mean")
            && !l.contains("host")),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(&csv).expect("csv");
    assert!(csv.starts_with("name,median_ms,min_ms,gflops"));
    assert_eq!(csv.lines().count(), 2);
    let o = wgconv(&["bench", "--layer", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr_lines(&o)[0].contains("--layer nosuch"));
}

#[test]
fn shaders_dump_writes_valid_modules() {
    let dir = tempfile::tempdir().expect("dir");
    let o = wgconv(&["shaders", "--dump", &dir.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(files.len() > 20, "{}", files.len());
    for kernel in ["conv_transpose2d", "conv2d_upsampled", "upsample-mode1"] {
        assert!(
            files
                .iter()
                .any(|p| p.display().to_string().contains(kernel)),
            "no {kernel} module"
        );
    }
    // Planned as for a discrete GPU: the workgroup-memory GEMM appears.
    let gpu = tempfile::tempdir().expect("dir");
    let o = wgconv(&[
        "shaders",
        "--dump",
        &gpu.path().display().to_string(),
        "--device-type",
        "discrete",
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let shared: Vec<_> = std::fs::read_dir(gpu.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.display().to_string().contains("conv2d_shared"))
        .collect();
    assert!(!shared.is_empty());
    for p in files.iter().take(5).chain(shared.iter().take(2)) {
        let src = std::fs::read_to_string(p).expect("read");
        let module = naga::front::wgsl::parse_str(&src).expect("parses");
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .expect("validates");
    }
}

fn peers(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/peers")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn bench_plot_draws_an_svg_with_peer_bars() {
    gpu_or_skip!();
    let dir = tempfile::tempdir().expect("dir");
    let fast = [
        "bench",
        "--layer",
        "dw3,dw3s2",
        "--runs",
        "1",
        "--warmup",
        "0",
    ];
    // Ours only.
    let svg = dir.path().join("ours.svg");
    let mut a = fast.to_vec();
    let s = svg.display().to_string();
    a.extend(["--plot", &s]);
    let o = wgconv(&a);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for want in ["dw3", "dw3s2", "wgconv", "GFLOP/s", "<text", "<rect"] {
        assert!(text.contains(want), "no {want:?} in the SVG");
    }
    assert!(!text.contains("Burn"));
    // With a peer: its legend entry and its values (0.96 and 0.72 GFLOP/s).
    let svg = dir.path().join("peer.svg");
    let json = dir.path().join("peer.json");
    let (s, j, peer) = (
        svg.display().to_string(),
        json.display().to_string(),
        peers("burn-0.22.1-lavapipe.json"),
    );
    let mut a = fast.to_vec();
    a.extend(["--plot", &s, "--compare", &peer, "--json", &j]);
    let o = wgconv(&a);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let text = std::fs::read_to_string(&svg).expect("svg");
    for want in ["dw3", "dw3s2", "wgconv", "Burn 0.22.1 wgpu", "0.96", "0.72"] {
        assert!(text.contains(want), "no {want:?} in the SVG");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.contains("GFLOP/s") && header.contains("vs peer"),
        "{stdout}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert_eq!(v["peer"], "Burn 0.22.1 wgpu (lavapipe)");
    assert_eq!(v["layers"][0]["peer_gflops"], 0.96);
    assert!(v["layers"][0]["vs_peer"].is_f64());
    // Only the two charts: no temporary file left behind.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ours.svg", "peer.json", "peer.svg"]);
}

#[test]
fn bench_compare_without_plot_prints_the_ratio_and_accepts_median_ms() {
    gpu_or_skip!();
    let dir = tempfile::tempdir().expect("dir");
    // A peer with only median_ms: GFLOP/s come from our FLOPs; no label: the stem names it.
    let peer = dir.path().join("mine.json");
    std::fs::write(&peer, r#"{"layers": [{"name": "dw3", "median_ms": 8.13}]}"#).expect("w");
    let p = peer.display().to_string();
    let o = wgconv(&[
        "bench",
        "--layer",
        "dw3,dw3s2",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--compare",
        &p,
    ]);
    assert_eq!(o.status.code(), Some(0), "{:?}", stderr_lines(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("vs peer"), "{stdout}");
    // dw3 is 8.13 MFLOP: 8.13 ms is 1 GFLOP/s, so the ratio is our GFLOP/s.
    let dw3: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(dw3[0], "dw3");
    let ours: f64 = dw3[3].parse().expect("GFLOP/s");
    let ratio: f64 = dw3[6].trim_end_matches('x').parse().expect("ratio");
    assert!((ratio / ours - 1.0).abs() < 0.05, "{ours} vs {ratio}");
    let dw3s2: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!((dw3s2[0], dw3s2[6]), ("dw3s2", "-"));
    assert!(stdout.contains("over mine's (1 of 2 layers"), "{stdout}");
    assert!(
        stdout.contains("the peer's file does not name its host"),
        "{stdout}"
    );
}

#[test]
fn bench_plot_and_compare_bad_input_fail_before_benchmarking() {
    let dir = tempfile::tempdir().expect("dir");
    let svg = dir.path().join("chart.svg");
    let s = svg.display().to_string();
    let missing = dir.path().join("nodir").join("chart.svg");
    let png = dir.path().join("chart.png");
    let sub = dir.path().join("sub.svg");
    std::fs::create_dir(&sub).expect("mkdir");
    for (plot, needle) in [
        (&missing, "directory does not exist"),
        (&png, "must end in .svg"),
        (&sub, "is a directory"),
    ] {
        let p = plot.display().to_string();
        let o = wgconv(&["bench", "--layer", "dw3", "--plot", &p]);
        assert_bad(&o, needle, &missing);
        assert!(stderr_lines(&o)[0].contains(&format!("--plot {p}")));
        assert!(o.stdout.is_empty());
    }
    assert!(!png.exists() && sub.is_dir());
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{not json").expect("w");
    let no_layers = dir.path().join("nolayers.json");
    std::fs::write(&no_layers, r#"{"label": "x", "results": []}"#).expect("w");
    let no_speed = dir.path().join("nospeed.json");
    std::fs::write(&no_speed, r#"{"layers": [{"name": "dw3"}]}"#).expect("w");
    for (file, needle) in [
        (dir.path().join("absent.json"), "absent.json"),
        (bad_json, "bad.json"),
        (no_layers, "missing field `layers`"),
        (no_speed, "\"median_ms\""),
    ] {
        let f = file.display().to_string();
        let o = wgconv(&["bench", "--layer", "dw3", "--plot", &s, "--compare", &f]);
        assert_bad(&o, needle, &svg);
        assert!(stderr_lines(&o)[0].contains("--compare"));
        // Before the engine starts: nothing printed on stdout.
        assert!(o.stdout.is_empty());
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 4);
    // A first-result plan is never tuned: asking for both is an error.
    let o = wgconv(&[
        "bench",
        "--layer",
        "dw3",
        "--goal",
        "first-result",
        "--autotune",
    ]);
    assert_bad(&o, "--autotune does not apply to --goal first-result", &svg);
    assert!(o.stdout.is_empty());
}

#[test]
fn plan_net_prints_the_report() {
    gpu_or_skip!();
    let o = wgconv(&["plan", "--net", "all", "--size", "small"]);
    assert!(o.status.success(), "{:?}", stderr_lines(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for name in [
        "context_module",
        "context_module_large",
        "mobilenet_v2_block",
        "mobilenet_v2",
        "aspp",
        "resnext_block",
        "decoder",
        "decoder_upsample",
    ] {
        assert!(
            out.contains(&format!("{name} — ")),
            "{name} missing:\n{out}"
        );
    }
    assert!(out.contains("the standard conv it replaces"), "{out}");
    assert!(out.contains("memory: peak"), "{out}");
    // JSON, for the published size of one network.
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("plan.json");
    let o = wgconv(&[
        "plan",
        "--net",
        "context_module",
        "--json",
        json.to_str().unwrap_or(""),
    ]);
    assert!(o.status.success(), "{:?}", stderr_lines(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("read")).expect("json");
    let layers = v[0]["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 8);
    assert_eq!(layers[5]["receptive_field"], "65×65");
    assert_eq!(v[0]["macs"], 7 * 21 * 21 * 9 * 64 * 64 + 21 * 21 * 64 * 64);
}

/// `wgconv bench` on the small resnext_block network: `runs` runs, no
/// warm-up, then `extra`.
fn bench_small_resnext(runs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bench",
        "--net",
        "resnext_block",
        "--size",
        "small",
        "--runs",
        runs,
        "--warmup",
        "0",
    ];
    args.extend_from_slice(extra);
    wgconv(&args)
}

#[test]
fn bench_net_times_more_runs_than_one_query_set_holds() {
    gpu_or_skip!();
    // 4 layers: 5 timestamps a run, 5000 for 1000 runs, more than a query set
    // holds (wgpu::QUERY_SET_MAX_QUERIES, 4096): the runs go in batches.
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("net.json");
    let o = bench_small_resnext(
        "1000",
        &["--no-check", "--json", json.to_str().unwrap_or("")],
    );
    assert!(o.status.success(), "{:?}", stderr_lines(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("read")).expect("json");
    let net = &v["layers"][0];
    assert_eq!(net["name"], "resnext_block");
    assert!(net["median_ms"].as_f64().unwrap_or(0.0) > 0.0, "{net}");
    // Every batch's runs are there, each timed.
    let runs = net["samples_ms"].as_array().expect("samples_ms");
    assert_eq!(runs.len(), 1000);
    assert!(runs.iter().all(|t| t.as_f64().is_some_and(|t| t > 0.0)));
}

#[test]
fn bench_net_times_and_checks_a_network() {
    gpu_or_skip!();
    let dir = tempfile::tempdir().expect("dir");
    let json = dir.path().join("net.json");
    let svg = dir.path().join("net.svg");
    let o = wgconv(&[
        "bench",
        "--net",
        "resnext_block,decoder_upsample",
        "--size",
        "small",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--breakdown",
        "--json",
        json.to_str().unwrap_or(""),
        "--plot",
        svg.to_str().unwrap_or(""),
    ]);
    assert!(o.status.success(), "{:?}", stderr_lines(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("resnext_block") && out.contains("grouped_3x3"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("read")).expect("json");
    let nets = v["layers"].as_array().expect("layers");
    assert_eq!(nets.len(), 2);
    for n in nets {
        for field in [
            "name",
            "median_ms",
            "min_ms",
            "gflops",
            "kernel",
            "max_abs_err",
        ] {
            assert!(!n[field].is_null(), "{field} missing in {n}");
        }
        assert_eq!(n["check_passed"], true);
        assert!(n["memory"]["peak_bytes"].as_u64().unwrap_or(0) > 0);
    }
    let chart = std::fs::read_to_string(&svg).expect("svg");
    assert!(chart.contains("resnext_block") && chart.contains("decoder_upsample"));
    assert!(chart.contains("GFLOP/s per network"));
    // --goal reaches the network's convolutions: on lavapipe the first-result
    // plan takes 4-column tiles where throughput takes 8.
    let breakdown = |goal: &str| {
        let o = bench_small_resnext("1", &["--breakdown", "--goal", goal]);
        assert!(o.status.success(), "{:?}", stderr_lines(&o));
        let llvmpipe = String::from_utf8_lossy(&o.stderr).contains("llvmpipe");
        (String::from_utf8_lossy(&o.stdout).into_owned(), llvmpipe)
    };
    let (first, llvmpipe) = breakdown("first-result");
    let (throughput, _) = breakdown("throughput");
    assert!(first.contains("grouped_3x3") && throughput.contains("grouped_3x3"));
    if llvmpipe {
        assert!(
            first.contains("-pix4-") && !first.contains("-pix8-"),
            "{first}"
        );
        assert!(throughput.contains("-pix8-"), "{throughput}");
    }
    // Unknown network: one line, exit 2.
    let o = wgconv(&["bench", "--net", "resnet9000"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr_lines(&o);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("wgconv: error: --net resnet9000: unknown network"),
        "{err:?}"
    );
}
