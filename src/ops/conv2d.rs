//! Forward 2-D convolution: every kind (standard, strided, padded, dilated,
//! grouped, depthwise with multiplier, pointwise) is a value of
//! [`Conv2dParams`]; the planner picks the kernel. Reference:
//! [`crate::reference::conv`].

use crate::engine::Engine;
use crate::error::Result;
use crate::geometry::{Conv2dParams, Conv2dShape, ConvKind};
use crate::ops::{ConvLayer, OpParams};
use crate::plan::LayerSig;
use crate::tensor::GpuTensor;

/// A forward convolution layer, weight `[c_out, c_in/groups, k_h, k_w]`.
/// See [`ConvLayer`] for its methods.
pub type Conv2d = ConvLayer<Conv2dParams>;

impl OpParams for Conv2dParams {
    const KIND: ConvKind = ConvKind::Forward;

    fn resolve(
        &self,
        input: [usize; 4],
        weight: [usize; 4],
        bias_len: Option<usize>,
    ) -> Result<Conv2dShape> {
        Conv2dShape::conv2d(input, weight, bias_len, self)
    }

    fn input_channels(&self, weight: [usize; 4]) -> usize {
        weight[1].saturating_mul(self.groups as usize)
    }

    fn nominal_input(&self, weight: [usize; 4]) -> [usize; 4] {
        // Exactly as large as the dilated kernel: the smallest valid input.
        let reach = |k: usize, d: u32| (k.max(1) - 1).saturating_mul(d as usize).saturating_add(1);
        [
            1,
            self.input_channels(weight),
            reach(weight[2], self.dilation.0),
            reach(weight[3], self.dilation.1),
        ]
    }

    fn sig(&self, weight: [usize; 4]) -> LayerSig {
        LayerSig {
            kind: ConvKind::Forward,
            groups: self.groups,
            c_in_per_group: weight[1] as u32,
            c_out_per_group: (weight[0] / self.groups.max(1) as usize) as u32,
            k_h: weight[2] as u32,
            k_w: weight[3] as u32,
            stride: self.stride,
            dilation: self.dilation,
        }
    }
}

/// A depthwise-separable block: a depthwise convolution, then a pointwise
/// (1×1) one, recorded into one command buffer with no readback between.
#[derive(Debug)]
pub struct DepthwiseSeparable {
    /// The depthwise layer (`groups == c_in`).
    pub depthwise: Conv2d,
    /// The pointwise layer (1×1).
    pub pointwise: Conv2d,
}

impl DepthwiseSeparable {
    /// Records both layers into one encoder and submits it once.
    ///
    /// # Errors
    /// As [`ConvLayer::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv separable", |enc| {
            let mid = self.depthwise.record(engine, enc, input)?;
            self.pointwise.record(engine, enc, &mid)
        })
    }
}
