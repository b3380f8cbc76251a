//! Transposed 2-D convolution (PyTorch `ConvTranspose2d`, ONNX
//! `ConvTranspose`): stride, asymmetric padding, output padding, dilation,
//! groups (including depthwise-transposed). A gather formulation with
//! integer phase arithmetic: `shaders/conv_transpose2d.wgsl`. Reference:
//! [`crate::reference::conv`].

use crate::error::Result;
use crate::geometry::{Conv2dShape, ConvKind, ConvTranspose2dParams};
use crate::ops::{ConvLayer, OpParams};
use crate::plan::LayerSig;

/// A transposed convolution layer, weight `[c_in, c_out/groups, k_h, k_w]`.
/// See [`ConvLayer`] for its methods.
pub type ConvTranspose2d = ConvLayer<ConvTranspose2dParams>;

impl OpParams for ConvTranspose2dParams {
    const KIND: ConvKind = ConvKind::Transposed;

    fn resolve(
        &self,
        input: [usize; 4],
        weight: [usize; 4],
        bias_len: Option<usize>,
    ) -> Result<Conv2dShape> {
        Conv2dShape::conv_transpose2d(input, weight, bias_len, self)
    }

    fn input_channels(&self, weight: [usize; 4]) -> usize {
        weight[0]
    }

    fn nominal_input(&self, weight: [usize; 4]) -> [usize; 4] {
        // Large enough that the padding cannot swallow the whole output.
        let p = self.padding;
        [
            1,
            weight[0],
            (p.top as usize)
                .saturating_add(p.bottom as usize)
                .saturating_add(1),
            (p.left as usize)
                .saturating_add(p.right as usize)
                .saturating_add(1),
        ]
    }

    fn sig(&self, weight: [usize; 4]) -> LayerSig {
        LayerSig {
            kind: ConvKind::Transposed,
            groups: self.groups,
            c_in_per_group: (weight[0] / self.groups.max(1) as usize) as u32,
            c_out_per_group: weight[1] as u32,
            k_h: weight[2] as u32,
            k_w: weight[3] as u32,
            stride: self.stride,
            dilation: self.dilation,
        }
    }

    fn transposed(&self) -> Option<ConvTranspose2dParams> {
        Some(*self)
    }
}
