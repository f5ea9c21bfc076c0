//! The pre-activation basic block: y = conv2(relu(bn2(conv1(relu(bn1(x)))))) + skip(x), both
//! convolutions 3x3 with padding 1 and bias, conv1 at stride s; skip is x itself, or a 1x1
//! convolution (stride s, bias) when the channels or the size change. Keys `bn1`, `conv1`,
//! `bn2`, `conv2`, `skip`.
//!
//! On the GPU it is two or three dispatches: bn1 + ReLU are conv1's prologue (padding stays 0,
//! as in PyTorch, where the padding is applied after the activation), bn2 folds into conv1's
//! weights with ReLU as its epilogue, and conv2 adds the skip in its epilogue.

use crate::engine::{Plan, TensorId};
use crate::error::Result;
use crate::ops::conv2d::{Activation, ConvGeometry, ConvLayer};

use super::scope::{LayerBuilder, WeightScope};

/// One block, its layers built by a [`LayerBuilder`] (GPU layers, or nothing in a dry run).
pub struct PreActBlock<C> {
    name: String,
    conv1: C,
    conv2: C,
    skip: Option<C>,
}

impl<C> PreActBlock<C> {
    /// Loads the block `s` taking `in_c` to `out_c` channels at `stride`, whose output map has
    /// `out_pixels` pixels (picks the kernels).
    pub fn load<B: LayerBuilder<Conv = C>>(
        s: &WeightScope<B>,
        in_c: usize,
        out_c: usize,
        stride: u32,
        out_pixels: u32,
        bn_eps: f32,
    ) -> Result<Self> {
        let bn1 = s.batchnorm("bn1", in_c, bn_eps)?;
        let mut conv1 = s.conv_weights("conv1", in_c, out_c, 3)?;
        for (conv, bn) in conv1.iter_mut().zip(s.batchnorm("bn2", out_c, bn_eps)?) {
            conv.fold_batchnorm(&bn);
        }
        let conv2 = s.conv_weights("conv2", out_c, out_c, 3)?;
        let skip = if in_c != out_c || stride != 1 {
            let weights = s.conv_weights("skip", in_c, out_c, 1)?;
            Some(s.builder.conv(
                &s.label("skip"),
                &weights,
                ConvGeometry::square(stride, 0),
                Activation::None,
                None,
                out_pixels,
            )?)
        } else {
            None
        };
        let b = s.builder;
        Ok(Self {
            name: s.label("").trim_end_matches('.').to_string(),
            conv1: b.conv(
                &s.label("conv1"),
                &conv1,
                ConvGeometry::square(stride, 1),
                Activation::Relu,
                Some(&bn1),
                out_pixels,
            )?,
            conv2: b.conv(
                &s.label("conv2"),
                &conv2,
                ConvGeometry::square(1, 1),
                Activation::None,
                None,
                out_pixels,
            )?,
            skip,
        })
    }
}

impl PreActBlock<ConvLayer> {
    /// The block on `x`, into a new tensor.
    pub fn apply(&self, plan: &mut Plan, x: TensorId, unused: TensorId) -> Result<TensorId> {
        let (hidden, residual) = self.hidden_and_residual(plan, x, unused)?;
        self.conv2.apply(
            plan,
            &format!("{}.conv2", self.name),
            hidden,
            Some(residual),
            unused,
        )
    }

    /// The block on `x`, written into `output` (a channel view of a concatenation, or a tensor
    /// of the block's output shape).
    pub fn apply_into(
        &self,
        plan: &mut Plan,
        x: TensorId,
        unused: TensorId,
        output: TensorId,
    ) -> Result<()> {
        let (hidden, residual) = self.hidden_and_residual(plan, x, unused)?;
        self.conv2.apply_into(
            plan,
            &format!("{}.conv2", self.name),
            hidden,
            Some(residual),
            unused,
            output,
        )
    }

    fn hidden_and_residual(
        &self,
        plan: &mut Plan,
        x: TensorId,
        unused: TensorId,
    ) -> Result<(TensorId, TensorId)> {
        let hidden = self
            .conv1
            .apply(plan, &format!("{}.conv1", self.name), x, None, unused)?;
        let residual = match &self.skip {
            Some(skip) => skip.apply(plan, &format!("{}.skip", self.name), x, None, unused)?,
            None => x,
        };
        Ok((hidden, residual))
    }

    pub fn weight_bytes(&self) -> u64 {
        self.conv1.weight_bytes()
            + self.conv2.weight_bytes()
            + self.skip.as_ref().map_or(0, ConvLayer::weight_bytes)
    }
}
