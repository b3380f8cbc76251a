//! Golden tests: the CPU reference against onnxruntime (tests/data/golden,
//! see tests/data/README.md), and every case on the GPU.

mod common;

use std::path::{Path, PathBuf};

use wgconv::npy::read_f32;
use wgconv::reference::{self, compare, RefOutput, Tolerance};
use wgconv::{
    Activation, Conv2d, Conv2dParams, Conv2dShape, ConvTranspose2d, ConvTranspose2dParams, Engine,
    GpuTensor, Padding,
};

struct Case {
    name: String,
    op: String,
    shape: Conv2dShape,
    conv: Conv2dParams,
    transposed: ConvTranspose2dParams,
    activation: Activation,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    y: Vec<f32>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

fn pair(v: &serde_json::Value) -> (u32, u32) {
    (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u32)
}

fn cases() -> Vec<Case> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let list = manifest["cases"].as_array().unwrap();
    assert_eq!(list.len(), 35, "the vendored manifest has 35 cases");
    list.iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            let d = dir().join(&name);
            let load = |f: &str| read_f32(&d.join(f), 1 << 24).unwrap();
            let x = load("x.npy");
            let w = load("w.npy");
            let y = load("y.npy");
            let b = if c["bias"].as_bool().unwrap() {
                Some(load("b.npy").data)
            } else {
                None
            };
            let pad = c["padding"].as_array().unwrap();
            let pad: Vec<u32> = pad.iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let padding = Padding::new(pad[0], pad[1], pad[2], pad[3]);
            let stride = pair(&c["stride"]);
            let dilation = pair(&c["dilation"]);
            let groups = c["groups"].as_u64().unwrap() as u32;
            let op = c["op"].as_str().unwrap().to_string();
            let activation: Activation = c["activation"].as_str().unwrap().parse().unwrap();
            let conv = Conv2dParams {
                stride,
                padding,
                dilation,
                groups,
            };
            let transposed = ConvTranspose2dParams {
                stride,
                padding,
                output_padding: pair(&c["output_padding"]),
                dilation,
                groups,
            };
            let shape = if op == "conv2d" {
                Conv2dShape::conv2d(
                    x.nchw().unwrap(),
                    w.nchw().unwrap(),
                    b.as_ref().map(Vec::len),
                    &conv,
                )
            } else {
                Conv2dShape::conv_transpose2d(
                    x.nchw().unwrap(),
                    w.nchw().unwrap(),
                    b.as_ref().map(Vec::len),
                    &transposed,
                )
            }
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                shape.output_shape(),
                y.nchw().unwrap(),
                "{name}: output shape"
            );
            Case {
                name,
                op,
                shape,
                conv,
                transposed,
                activation,
                x: x.data,
                w: w.data,
                b,
                y: y.data,
            }
        })
        .collect()
}

/// onnxruntime's output is itself an f32 computation, so both it and our
/// reference are within the f32-accumulation bound of the exact result.
#[test]
fn reference_matches_onnxruntime() {
    for c in cases() {
        let r = reference::conv(&c.shape, &c.x, &c.w, c.b.as_deref(), c.activation).unwrap();
        let cmp = compare(&r, c.activation, &c.y, Tolerance::F32Accumulation).unwrap();
        assert!(cmp.passed, "{} ({}): {cmp}", c.name, c.op);
    }
}

/// The comparison must not be trivially satisfiable: shifting every weight
/// of any case makes the reference disagree with onnxruntime.
#[test]
fn perturbed_reference_disagrees() {
    for c in cases() {
        let w: Vec<f32> = c.w.iter().map(|v| v + 0.25).collect();
        let r = reference::conv(&c.shape, &c.x, &w, c.b.as_deref(), c.activation).unwrap();
        let cmp = compare(&r, c.activation, &c.y, Tolerance::F32Accumulation).unwrap();
        // ReLU-family outputs can hide a change where every affected output is clamped.
        if c.activation == Activation::None {
            assert!(!cmp.passed, "{}: a perturbed weight still matched", c.name);
        }
    }
}

fn gpu_output(engine: &Engine, c: &Case) -> Vec<f32> {
    let x = GpuTensor::upload(engine, &c.x, c.shape.input_shape()).unwrap();
    let wshape = c.shape.weight_shape();
    let y = if c.op == "conv2d" {
        let layer =
            Conv2d::new(engine, &c.w, wshape, c.b.as_deref(), c.conv, c.activation).unwrap();
        layer.forward(engine, &x).unwrap()
    } else {
        let layer = ConvTranspose2d::new(
            engine,
            &c.w,
            wshape,
            c.b.as_deref(),
            c.transposed,
            c.activation,
        )
        .unwrap();
        layer.forward(engine, &x).unwrap()
    };
    y.read(engine).unwrap()
}

/// Every case on the GPU: within the bound of the reference, and within
/// twice the bound of onnxruntime (both are within one bound of the exact
/// value).
fn gpu_matches_golden(op: &str, expected_cases: usize) {
    let engine = gpu_or_skip!();
    let mut ran = 0;
    for c in cases().into_iter().filter(|c| c.op == op) {
        let gpu = gpu_output(engine, &c);
        let r = reference::conv(&c.shape, &c.x, &c.w, c.b.as_deref(), c.activation).unwrap();
        let cmp = compare(&r, c.activation, &gpu, Tolerance::F32Accumulation).unwrap();
        assert!(cmp.passed, "{} vs reference: {cmp}", c.name);
        let ort = RefOutput {
            values: c.y.iter().map(|&v| f64::from(v)).collect(),
            magnitude: r.magnitude.iter().map(|m| 2.0 * m).collect(),
            terms: r.terms,
        };
        let cmp = compare(&ort, c.activation, &gpu, Tolerance::F32Accumulation).unwrap();
        assert!(cmp.passed, "{} vs onnxruntime: {cmp}", c.name);
        ran += 1;
    }
    assert_eq!(ran, expected_cases);
}

#[test]
fn gpu_matches_golden_conv2d() {
    gpu_matches_golden("conv2d", 24);
}

#[test]
fn gpu_matches_golden_conv_transpose2d() {
    gpu_matches_golden("conv-transpose2d", 11);
}
