//! Every shader specialisation the planner emits for the bench suite (every
//! activation, every forward kernel family), for the upsampling decoder
//! layers and for the weightless network ops (add, pooling), and for every
//! value each specialisation constant takes in the test sweeps, validated by
//! naga and translated to SPIR-V, MSL, HLSL and GLSL. No GPU needed.

use std::collections::BTreeSet;

use wgconv::pipelines::{check_portability, Kernel, KernelKey};
use wgconv::plan::{network_op_keys, plan, plan_upsample, plan_upsample_conv2d, AdapterProfile};
use wgconv::suite::{SUITE, UPSAMPLE_LAYERS};
use wgconv::Activation;

const ACTIVATIONS: [Activation; 5] = [
    Activation::None,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.1),
    Activation::Silu,
];

fn profiles() -> Vec<AdapterProfile> {
    [
        wgpu::DeviceType::Cpu,
        wgpu::DeviceType::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu,
    ]
    .into_iter()
    .map(|device_type| {
        AdapterProfile::new(device_type, wgpu::Backend::Vulkan, &wgpu::Limits::default())
    })
    .flat_map(|p| {
        [
            p.clone().with_subgroup_size(None),
            p.with_subgroup_size(Some(8)),
        ]
    })
    .collect()
}

fn suite_keys() -> BTreeSet<KernelKey> {
    let mut keys = BTreeSet::new();
    for layer in &SUITE {
        let shape = layer.shape().unwrap();
        for profile in profiles() {
            for act in ACTIVATIONS {
                // The planner's choice, then every forward family forced.
                for force in std::iter::once(None).chain(Kernel::FORWARD.map(Some)) {
                    let p = plan(&shape, act, &profile, force);
                    // Fused with a residual add and its activation, where the plan can.
                    for fused in ACTIVATIONS {
                        keys.extend(p.with_residual(fused).map(|r| r.key));
                    }
                    keys.insert(p.key);
                }
                // Both Winograd forms where the layer has them.
                if wgconv::plan::winograd_eligible(&wgconv::plan::LayerSig::of(&shape)) {
                    for m in [2, 4] {
                        keys.extend(wgconv::plan::winograd_keys(&shape, m, act, &profile, 64));
                    }
                }
            }
        }
    }
    // Pointwise on 7×7 planes (MobileNetV2's last blocks): rows of 49 floats,
    // read as shifted vec4s (`VIN = 2`).
    let pointwise = wgconv::Conv2dShape::conv2d(
        [1, 320, 7, 7],
        [1280, 320, 1, 1],
        None,
        &wgconv::Conv2dParams::default(),
    )
    .unwrap();
    for profile in profiles() {
        for act in ACTIVATIONS {
            keys.insert(plan(&pointwise, act, &profile, Some(Kernel::Conv2dTiled)).key);
        }
    }
    keys.extend(network_op_keys());
    for layer in &UPSAMPLE_LAYERS {
        let shape = layer.shape().unwrap();
        keys.insert(plan_upsample(&shape.upsample).key);
        for profile in profiles() {
            keys.insert(plan_upsample_conv2d(&shape, &profile).key);
        }
    }
    keys
}

/// Each constant through every value the sweeps use, the others at the
/// shipped defaults.
fn sweep_keys() -> BTreeSet<KernelKey> {
    let ranges: &[(&str, &[u32])] = &[
        ("PIX", &[1, 2, 3, 4, 8, 16]),
        // winograd_input / winograd_output: the tile size.
        ("M", &[2, 4]),
        ("DIL", &[0, 1]),
        ("COB4", &[1, 2, 3, 4, 8]),
        ("K_W", &[1, 2, 3, 4, 5, 6, 7]),
        ("K_H", &[1, 2, 3, 4, 5, 6, 7]),
        ("TM", &[1, 2, 4]),
        ("TN", &[1, 2, 4]),
        ("S_W", &[1, 2, 3, 4]),
        ("D_W", &[1, 2, 3, 4]),
        ("ACT", &[0, 1, 2, 3, 4]),
        ("MODE", &[0, 1]),
        // conv2d_tiled: pixel spacing and one-row kernels.
        ("Q", &[1, 2, 3, 8, 12]),
        ("KH1", &[0, 1]),
        // conv2d_tiled: weight window size and the reduction-segment code.
        ("WCAP", &[256, 4096]),
        ("SEGS", &[0, 1]),
        // conv2d_tiled: the weight as a storage window instead of a uniform one.
        ("WST", &[0, 1]),
        // conv2d_tiled, conv2d_depthwise: vec4 input loads (the suite keys add VA 0, 1, 3).
        ("VIN", &[0, 1]),
        ("VOUT", &[0, 1]),
        // conv2d_tiled: weights read through subgroups of 8, 16, 32 lanes.
        ("SG", &[0, 8, 16, 32]),
        // conv2d_tiled: input channels per step of the reduction loop.
        ("CU", &[1, 2, 3]),
        // conv2d_tiled: kernel rows unrolled; conv_transpose2d: a row's taps
        // unrolled (0: the loops).
        ("KHU", &[0, 2, 3]),
        // conv2d_tiled: a residual added before the activation (with the
        // shipped SEGS = 1, VOUT = 0).
        ("RES", &[0, 1]),
        // conv2d_depthwise: the tile height and the vertical structure.
        ("PH", &[1, 2, 4, 8]),
        ("K_H", &[1, 2, 3, 5, 7]),
        ("S_H", &[1, 2, 3]),
        ("D_H", &[1, 2, 3]),
        // conv_transpose2d: pad_left mod S_W (S_W = 2 in the shipped default).
        ("PLR", &[0, 1]),
    ];
    let mut keys = BTreeSet::new();
    for kernel in Kernel::ALL {
        let src = kernel.source();
        for (name, values) in ranges {
            if !src.contains(&format!("const {name}: u32")) {
                continue;
            }
            for &v in *values {
                keys.insert(KernelKey {
                    kernel,
                    consts: vec![(name, v)],
                });
            }
        }
    }
    keys
}

#[test]
fn every_specialisation_translates_to_every_backend() {
    let keys: BTreeSet<KernelKey> = suite_keys().into_iter().chain(sweep_keys()).collect();
    assert!(keys.len() > 50, "only {} keys", keys.len());
    assert!(
        keys.iter()
            .any(|k| k.kernel == Kernel::Conv2dTiled && k.consts.contains(&("VIN", 2))),
        "no shifted-read key"
    );
    for kernel in Kernel::ALL {
        assert!(
            keys.iter().any(|k| k.kernel == kernel),
            "{} not covered",
            kernel.name()
        );
    }
    // Residual fusion in both store forms (scalar and vec4 outputs).
    for vout in [0, 1] {
        assert!(
            keys.iter().any(|k| k.residual() && k.is("VOUT", vout)),
            "no residual key with VOUT = {vout}"
        );
    }
    // The suite plans subgroup weight loads for the CPU profile with subgroups.
    assert!(
        suite_keys()
            .iter()
            .any(|k| k.consts.iter().any(|&(n, v)| n == "SG" && v == 8)),
        "no suite kernel reads its weights through subgroups"
    );
    // ... and texture inputs in every kernel family that reads vec4 inputs:
    // read-only storage textures (2) in the tiled, depthwise and transposed
    // kernels, sampled ones (1) in the fully unrolled Winograd transforms.
    for (kernel, tin) in [
        (Kernel::Conv2dTiled, 2),
        (Kernel::Conv2dDepthwise, 2),
        (Kernel::ConvTranspose2d, 2),
        (Kernel::WinogradInput, 1),
        (Kernel::WinogradOutput, 1),
    ] {
        assert!(
            suite_keys()
                .iter()
                .any(|k| k.kernel == kernel && k.is("TIN", tin)),
            "no suite {} kernel reads its input from a texture (TIN = {tin})",
            kernel.name()
        );
    }
    for kernel in [Kernel::ConvTranspose2d, Kernel::Conv2dTiled] {
        assert!(
            suite_keys()
                .iter()
                .any(|k| k.kernel == kernel && k.is("TWT", 2)),
            "no suite {} kernel reads its weight from a texture",
            kernel.name()
        );
    }
    // ... and storage weights where blocks exceed a uniform window on a small
    // image (ResNet's last stage: 512 channels at 7×7).
    let deep = wgconv::Conv2dShape::conv2d(
        [1, 512, 7, 7],
        [512, 512, 3, 3],
        None,
        &wgconv::Conv2dParams::default().padding(wgconv::Padding::uniform(1)),
    )
    .unwrap();
    let wst = profiles()
        .iter()
        .map(|p| plan(&deep, Activation::None, p, None).key)
        .filter(|k| k.consts.iter().any(|&(n, v)| n == "WST" && v == 1))
        .collect::<Vec<_>>();
    assert!(
        !wst.is_empty(),
        "no profile reads a 512-channel 7x7 layer's weights from storage"
    );
    // Rows of 8 floats are read as vec4s: from a texture on the CPU profiles.
    let deep8 = wgconv::Conv2dShape::conv2d(
        [1, 512, 8, 8],
        [512, 512, 3, 3],
        None,
        &wgconv::Conv2dParams::default().padding(wgconv::Padding::uniform(1)),
    )
    .unwrap();
    let wst_tin = profiles()
        .iter()
        .map(|p| plan(&deep8, Activation::None, p, None).key)
        .filter(|k| k.is("WST", 1) && k.is("TIN", 2))
        .collect::<Vec<_>>();
    assert!(
        !wst_tin.is_empty(),
        "no profile reads storage weights and a texture input"
    );
    for key in wst.into_iter().chain(wst_tin) {
        check_portability(&key.to_string(), &key.wgsl().unwrap()).unwrap();
    }
    let failures: Vec<String> = keys
        .iter()
        .filter_map(|key| {
            let src = key.wgsl().unwrap();
            check_portability(&key.to_string(), &src)
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        keys.len(),
        failures.join("\n")
    );
}

#[test]
fn a_broken_shader_is_reported() {
    let bad = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
    assert!(check_portability("broken", bad).is_err());
}
