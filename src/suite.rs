//! The benchmark suite: real-network layers, by the names used in the
//! project's peer measurements (onnxruntime and Burn on the same machine).

use crate::error::Result;
use crate::geometry::{
    Conv2dParams, Conv2dShape, ConvTranspose2dParams, Padding, UpsampleConv2dParams,
    UpsampleConv2dShape, UpsampleParams,
};

/// Forward or transposed, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerOp {
    /// Forward convolution.
    Conv2d(Conv2dParams),
    /// Transposed convolution.
    ConvTranspose2d(ConvTranspose2dParams),
}

/// One suite layer: input and weight shapes (PyTorch layouts) and the op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuiteLayer {
    /// Name, as in the peers' table.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// `[n, c_in, h_in, w_in]`.
    pub input: [usize; 4],
    /// Weight shape in the op's PyTorch layout.
    pub weight: [usize; 4],
    /// The op and its parameters.
    pub op: LayerOp,
}

impl SuiteLayer {
    /// The resolved shape.
    ///
    /// # Errors
    /// Never for the built-in suite; geometry errors for ad-hoc layers.
    pub fn shape(&self) -> Result<Conv2dShape> {
        let bias = Some(self.c_out());
        match self.op {
            LayerOp::Conv2d(p) => Conv2dShape::conv2d(self.input, self.weight, bias, &p),
            LayerOp::ConvTranspose2d(p) => {
                Conv2dShape::conv_transpose2d(self.input, self.weight, bias, &p)
            }
        }
    }

    /// Output channels.
    pub fn c_out(&self) -> usize {
        match self.op {
            LayerOp::Conv2d(_) => self.weight[0],
            LayerOp::ConvTranspose2d(p) => self.weight[1] * p.groups as usize,
        }
    }
}

const fn conv(stride: u32, pad: u32, dil: u32, groups: u32) -> LayerOp {
    LayerOp::Conv2d(Conv2dParams {
        stride: (stride, stride),
        padding: Padding::uniform(pad),
        dilation: (dil, dil),
        groups,
    })
}

const fn tconv(stride: u32, pad: u32, out_pad: u32) -> LayerOp {
    LayerOp::ConvTranspose2d(ConvTranspose2dParams {
        stride: (stride, stride),
        padding: Padding::uniform(pad),
        output_padding: (out_pad, out_pad),
        dilation: (1, 1),
        groups: 1,
    })
}

/// The 12 suite layers (f32, NCHW, batch as listed).
pub const SUITE: [SuiteLayer; 12] = [
    SuiteLayer {
        name: "stem7",
        about: "ResNet stem",
        input: [1, 3, 224, 224],
        weight: [64, 3, 7, 7],
        op: conv(2, 3, 1, 1),
    },
    SuiteLayer {
        name: "r3x3",
        about: "ResNet 3x3",
        input: [1, 64, 56, 56],
        weight: [64, 64, 3, 3],
        op: conv(1, 1, 1, 1),
    },
    SuiteLayer {
        name: "r3x3s2",
        about: "ResNet downsample",
        input: [1, 128, 56, 56],
        weight: [128, 128, 3, 3],
        op: conv(2, 1, 1, 1),
    },
    SuiteLayer {
        name: "pw",
        about: "bottleneck 1x1",
        input: [1, 256, 56, 56],
        weight: [64, 256, 1, 1],
        op: conv(1, 0, 1, 1),
    },
    SuiteLayer {
        name: "dw3",
        about: "MobileNetV2 depthwise",
        input: [1, 144, 56, 56],
        weight: [144, 1, 3, 3],
        op: conv(1, 1, 1, 144),
    },
    SuiteLayer {
        name: "dw3s2",
        about: "MobileNetV2 depthwise s2",
        input: [1, 96, 112, 112],
        weight: [96, 1, 3, 3],
        op: conv(2, 1, 1, 96),
    },
    SuiteLayer {
        name: "aspp12",
        about: "DeepLab ASPP atrous",
        input: [1, 256, 33, 33],
        weight: [256, 256, 3, 3],
        op: conv(1, 12, 12, 1),
    },
    SuiteLayer {
        name: "ctx8",
        about: "dilated context module",
        input: [1, 64, 64, 64],
        weight: [64, 64, 3, 3],
        op: conv(1, 8, 8, 1),
    },
    SuiteLayer {
        name: "grp32",
        about: "ResNeXt grouped",
        input: [1, 128, 56, 56],
        weight: [128, 4, 3, 3],
        op: conv(1, 1, 1, 32),
    },
    SuiteLayer {
        name: "tconv4",
        about: "transposed, GAN/U-Net",
        input: [1, 128, 32, 32],
        weight: [128, 64, 4, 4],
        op: tconv(2, 1, 0),
    },
    SuiteLayer {
        name: "tconv3",
        about: "transposed, out_pad 1",
        input: [1, 64, 64, 64],
        weight: [64, 32, 3, 3],
        op: tconv(2, 1, 1),
    },
    SuiteLayer {
        name: "b8",
        about: "batched 3x3",
        input: [8, 128, 28, 28],
        weight: [128, 128, 3, 3],
        op: conv(1, 1, 1, 1),
    },
];

/// A resize-convolution (decoder) layer: upsample, then convolve, fused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpsampleLayer {
    /// Short name.
    pub name: &'static str,
    /// What it is.
    pub about: &'static str,
    /// The real input `[n, c_in, h_in, w_in]`.
    pub input: [usize; 4],
    /// Conv weight `[c_out, c_in/groups, k_h, k_w]`.
    pub weight: [usize; 4],
    /// The upsampling and the convolution.
    pub params: UpsampleConv2dParams,
}

impl UpsampleLayer {
    /// The resolved shape.
    ///
    /// # Errors
    /// Never for the built-in layers.
    pub fn shape(&self) -> Result<UpsampleConv2dShape> {
        UpsampleConv2dShape::new(self.input, self.weight, Some(self.weight[0]), &self.params)
    }
}

const fn up_conv(up: UpsampleParams, pad: u32, groups: u32) -> UpsampleConv2dParams {
    UpsampleConv2dParams {
        upsample: up,
        conv: Conv2dParams {
            stride: (1, 1),
            padding: Padding::uniform(pad),
            dilation: (1, 1),
            groups,
        },
    }
}

/// Typical decoder layers for the upsampling kernels: `wgconv shaders
/// --dump` and the shader portability test cover their specialisations
/// (both the fused kernel's and the plain upsampling's).
pub const UPSAMPLE_LAYERS: [UpsampleLayer; 4] = [
    UpsampleLayer {
        name: "up2n3",
        about: "U-Net decoder: nearest 2x, 3x3",
        input: [1, 64, 28, 28],
        weight: [32, 64, 3, 3],
        params: up_conv(UpsampleParams::nearest(2, 2), 1, 1),
    },
    UpsampleLayer {
        name: "up2b3",
        about: "resize-convolution: bilinear 2x, 3x3",
        input: [1, 64, 28, 28],
        weight: [32, 64, 3, 3],
        params: up_conv(UpsampleParams::bilinear(2, 2), 1, 1),
    },
    UpsampleLayer {
        name: "up4b1",
        about: "segmentation head: bilinear 4x, 1x1",
        input: [1, 32, 32, 32],
        weight: [8, 32, 1, 1],
        params: up_conv(UpsampleParams::bilinear(4, 4), 0, 1),
    },
    UpsampleLayer {
        name: "up2ndw3",
        about: "light decoder: nearest 2x, depthwise 3x3",
        input: [1, 32, 28, 28],
        weight: [32, 1, 3, 3],
        params: up_conv(UpsampleParams::nearest(2, 2), 1, 32),
    },
];

/// A suite layer by name.
pub fn layer(name: &str) -> Option<&'static SuiteLayer> {
    SUITE.iter().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsample_layers_resolve() {
        for l in &UPSAMPLE_LAYERS {
            let s = l.shape().unwrap();
            // Every built-in decoder layer keeps the upsampled size.
            assert_eq!(
                s.output_shape()[2..],
                [s.conv.h_in as usize, s.conv.w_in as usize]
            );
        }
    }

    #[test]
    fn suite_flops_match_the_peers_table() {
        // MFLOP column of the peers' table, to its printed precision.
        let mflop = [
            236.0, 231.2, 231.2, 102.8, 8.13, 5.42, 1284.6, 302.0, 28.9, 268.4, 151.0, 1849.7,
        ];
        for (l, want) in SUITE.iter().zip(mflop) {
            let got = l.shape().unwrap().flops() as f64 / 1e6;
            assert!(
                (got - want).abs() / want < 0.002,
                "{}: {got} MFLOP, table says {want}",
                l.name
            );
        }
    }
}
