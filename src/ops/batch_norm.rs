//! Inference-time batch-norm folding: a convolution followed by batch norm
//! becomes one convolution with adjusted weights and bias, computed once at
//! load time (no extra pass on the GPU).
//!
//! Batch norm (PyTorch `BatchNorm2d` in eval mode, ONNX
//! `BatchNormalization`) maps channel `c` as
//! `y = (x − mean[c]) · gamma[c] / sqrt(var[c] + eps) + beta[c]`.
//! With `s[c] = gamma[c] / sqrt(var[c] + eps)` and a conv output
//! `x[co] = Σ w[co, …]·in + b[co]`, the folded conv has
//! `w'[co, …] = w[co, …]·s[co]` and `b'[co] = (b[co] − mean[co])·s[co] + beta[co]`.
//! The scale and bias are computed in f64 and rounded once to f32.

use crate::error::{Error, Result};
use crate::geometry::ConvKind;

/// Batch-norm parameters, one value per channel.
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm<'a> {
    /// Scale (`gamma`, PyTorch `weight`).
    pub gamma: &'a [f32],
    /// Shift (`beta`, PyTorch `bias`).
    pub beta: &'a [f32],
    /// Running mean.
    pub mean: &'a [f32],
    /// Running variance.
    pub var: &'a [f32],
    /// Added to the variance (PyTorch's default is `1e-5`).
    pub eps: f32,
}

impl BatchNorm<'_> {
    /// Channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    /// Per-channel `(scale, shift)` in f64: `y = x·scale + shift`.
    ///
    /// # Errors
    /// [`Error::DataLength`] when the four slices differ in length, and
    /// [`Error::BatchNormVariance`] when `var + eps` is not positive and
    /// finite for some channel.
    pub fn affine(&self) -> Result<Vec<(f64, f64)>> {
        let c = self.channels();
        for (what, v) in [
            ("batch-norm beta", self.beta),
            ("batch-norm mean", self.mean),
            ("batch-norm var", self.var),
        ] {
            if v.len() != c {
                return Err(Error::DataLength {
                    what,
                    shape: vec![c],
                    expected: c,
                    actual: v.len(),
                });
            }
        }
        (0..c)
            .map(|i| {
                let denom = f64::from(self.var[i]) + f64::from(self.eps);
                if !(denom > 0.0 && denom.is_finite()) {
                    return Err(Error::BatchNormVariance {
                        channel: i,
                        var: self.var[i],
                        eps: self.eps,
                    });
                }
                let scale = f64::from(self.gamma[i]) / denom.sqrt();
                Ok((
                    scale,
                    f64::from(self.beta[i]) - f64::from(self.mean[i]) * scale,
                ))
            })
            .collect()
    }

    /// Folds this batch norm into the convolution before it: returns the new
    /// weight (same shape and layout) and bias (`c_out` values). `kind`
    /// says how to read the weight: forward `[c_out, c_in/G, k_h, k_w]` or
    /// transposed `[c_in, c_out/G, k_h, k_w]` with `groups` groups.
    ///
    /// # Errors
    /// [`Error::DataLength`] when the weight, bias or batch-norm lengths do
    /// not match the shapes, [`Error::ChannelsNotDivisible`] for a
    /// transposed weight whose input channels do not split into `groups`,
    /// and the errors of [`BatchNorm::affine`].
    pub fn fold(
        &self,
        kind: ConvKind,
        weight: &[f32],
        weight_shape: [usize; 4],
        groups: usize,
        bias: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let len: usize = weight_shape.iter().product();
        if weight.len() != len {
            return Err(Error::DataLength {
                what: "weight",
                shape: weight_shape.to_vec(),
                expected: len,
                actual: weight.len(),
            });
        }
        let groups = groups.max(1);
        let c_out = match kind {
            ConvKind::Forward => weight_shape[0],
            ConvKind::Transposed => weight_shape[1] * groups,
        };
        if kind == ConvKind::Transposed && !weight_shape[0].is_multiple_of(groups) {
            return Err(Error::ChannelsNotDivisible {
                what: "input channels",
                channels: weight_shape[0],
                groups,
            });
        }
        if self.channels() != c_out {
            return Err(Error::DataLength {
                what: "batch-norm gamma",
                shape: vec![c_out],
                expected: c_out,
                actual: self.channels(),
            });
        }
        if let Some(b) = bias.filter(|b| b.len() != c_out) {
            return Err(Error::BiasLength {
                len: b.len(),
                c_out,
            });
        }
        let affine = self.affine()?;
        let taps = weight_shape[2] * weight_shape[3];
        // The output channel of each weight element.
        let out_channel = |i: usize| match kind {
            ConvKind::Forward => i / (weight_shape[1] * taps),
            ConvKind::Transposed => {
                let ci = i / (weight_shape[1] * taps);
                let j = (i / taps) % weight_shape[1];
                (ci / (weight_shape[0] / groups)) * weight_shape[1] + j
            }
        };
        let folded_w = weight
            .iter()
            .enumerate()
            .map(|(i, &w)| (f64::from(w) * affine[out_channel(i)].0) as f32)
            .collect();
        let folded_b = affine
            .iter()
            .enumerate()
            .map(|(co, &(scale, shift))| {
                let b = bias.map_or(0.0, |b| f64::from(b[co]));
                (b * scale + shift) as f32
            })
            .collect();
        Ok((folded_w, folded_b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_matches_conv_then_batch_norm_by_hand() {
        // 2 output channels, 1 input channel, 1x1: conv is y = w·x + b.
        let bn = BatchNorm {
            gamma: &[2.0, 0.5],
            beta: &[1.0, -1.0],
            mean: &[3.0, 0.0],
            var: &[3.0, 0.75],
            eps: 1.0,
        };
        let (w, b) = bn
            .fold(
                ConvKind::Forward,
                &[1.0, 4.0],
                [2, 1, 1, 1],
                1,
                Some(&[0.5, 2.0]),
            )
            .unwrap();
        // channel 0: scale 2/sqrt(4) = 1; channel 1: 0.5/sqrt(1.75)
        let s1 = 0.5 / 1.75f64.sqrt();
        assert_eq!(w, vec![1.0, (4.0 * s1) as f32]);
        assert_eq!(b, vec![(0.5 - 3.0) * 1.0 + 1.0, (2.0 * s1 - 1.0) as f32]);
        // y(x=2) by the definition: channel 1: ((4·2 + 2) − 0)·s1 − 1
        let y1 = f64::from(w[1]) * 2.0 + f64::from(b[1]);
        assert!((y1 - ((4.0 * 2.0 + 2.0) * s1 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn transposed_weights_scale_their_output_channel() {
        // 2 groups, input channels 4 (2 per group), 3 outputs per group: c_out = 6.
        let gamma: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        let zeros = [0.0f32; 6];
        let ones = [1.0f32; 6];
        let bn = BatchNorm {
            gamma: &gamma,
            beta: &zeros,
            mean: &zeros,
            var: &ones,
            eps: 0.0,
        };
        let w = vec![1.0f32; 4 * 3];
        let (fw, fb) = bn
            .fold(ConvKind::Transposed, &w, [4, 3, 1, 1], 2, None)
            .unwrap();
        // input channels 0,1 feed outputs 0..3 (gamma 1,2,3); 2,3 feed 3..6 (gamma 4,5,6)
        assert_eq!(fw, vec![1., 2., 3., 1., 2., 3., 4., 5., 6., 4., 5., 6.]);
        assert_eq!(fb, vec![0.0; 6]);
    }

    #[test]
    fn bad_batch_norms_are_typed_errors() {
        let bn = BatchNorm {
            gamma: &[1.0],
            beta: &[0.0],
            mean: &[0.0],
            var: &[-1.0],
            eps: 0.5,
        };
        assert!(matches!(
            bn.affine(),
            Err(Error::BatchNormVariance { channel: 0, .. })
        ));
        let short = BatchNorm { beta: &[], ..bn };
        assert!(matches!(short.affine(), Err(Error::DataLength { .. })));
        let ok = BatchNorm { var: &[1.0], ..bn };
        assert!(matches!(
            ok.fold(ConvKind::Forward, &[1.0, 2.0], [2, 1, 1, 1], 1, None),
            Err(Error::DataLength { .. })
        ));
    }
}
