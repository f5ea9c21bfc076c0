//! Weight scopes in the style of candle's `vb.pp("layer1")`: a block asks for its tensors by the
//! names PyTorch gives them relative to its own scope, and the scope adds the path. A block's
//! architecture is declared once, in its `load`: run against a [`WeightFile`] it fetches and
//! checks the tensors (and the file is then checked for tensors nobody asked for); run as a dry
//! run ([`WeightScope::dry_run`]) it records every name and shape the architecture needs without
//! a file and without a GPU (random weights for benchmarks, converters' expected key lists).
//!
//! A scope can also stand for several networks of one architecture at once (a model's
//! refiners): each request then returns one tensor per weight set, in the order of the prefixes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use super::weights::WeightFile;
use crate::engine::GpuContext;
use crate::error::Result;
use crate::ops::conv2d::{
    Activation, BatchNorm, ConvGeometry, ConvLayer, ConvSelection, ConvWeights, WeightStorage,
};
use crate::ops::linear::{LinearLayer, LinearWeights};

/// What a block's `load` builds its layers with: GPU layers, or nothing (a dry run).
pub trait LayerBuilder {
    /// A convolution layer as this builder makes it.
    type Conv;
    /// A fully connected layer as this builder makes it.
    type Linear;

    /// A convolution whose output map has `out_pixels` pixels per sample.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        label: &str,
        weight_sets: &[ConvWeights],
        geometry: ConvGeometry,
        activation: Activation,
        prologue: Option<&[BatchNorm]>,
        out_pixels: u32,
    ) -> Result<Self::Conv>;

    /// A fully connected layer with its epilogue.
    fn linear(
        &self,
        label: &str,
        weights: &LinearWeights,
        activation: Activation,
    ) -> Result<Self::Linear>;
}

/// Builds layers on a device, choosing each convolution's kernel with `selection`.
pub struct GpuLayers<'a> {
    pub ctx: &'a GpuContext,
    pub selection: &'a ConvSelection,
}

impl LayerBuilder for GpuLayers<'_> {
    type Conv = ConvLayer;
    type Linear = LinearLayer;

    fn conv(
        &self,
        label: &str,
        weight_sets: &[ConvWeights],
        geometry: ConvGeometry,
        activation: Activation,
        prologue: Option<&[BatchNorm]>,
        out_pixels: u32,
    ) -> Result<ConvLayer> {
        ConvLayer::for_output_pixels(
            self.ctx,
            label,
            weight_sets,
            geometry,
            activation,
            prologue,
            out_pixels,
            self.selection,
        )
    }

    fn linear(
        &self,
        label: &str,
        weights: &LinearWeights,
        activation: Activation,
    ) -> Result<LinearLayer> {
        LinearLayer::new(self.ctx, label, weights, activation)
    }
}

/// Builds nothing: the dry run only records names and shapes.
pub struct DryRun;

impl LayerBuilder for DryRun {
    type Conv = ();
    type Linear = ();

    fn conv(
        &self,
        _: &str,
        _: &[ConvWeights],
        _: ConvGeometry,
        _: Activation,
        _: Option<&[BatchNorm]>,
        _: u32,
    ) -> Result<()> {
        Ok(())
    }

    fn linear(&self, _: &str, _: &LinearWeights, _: Activation) -> Result<()> {
        Ok(())
    }
}

/// (name, shape) pairs, in the order a dry run asked for them.
type Declarations = Rc<RefCell<Vec<(String, Vec<usize>)>>>;

enum Source<'a> {
    File(&'a WeightFile),
    /// Every (name, shape) asked for, in order.
    Declared(Declarations),
}

impl Clone for Source<'_> {
    fn clone(&self) -> Self {
        match self {
            Source::File(f) => Source::File(f),
            Source::Declared(list) => Source::Declared(list.clone()),
        }
    }
}

/// A position in a model's weight names, for one or several weight sets, with the builder that
/// turns fetched tensors into layers.
pub struct WeightScope<'a, B> {
    source: Source<'a>,
    /// One prefix per weight set, each ending in '.' or empty.
    prefixes: Rc<[String]>,
    pub builder: &'a B,
}

impl<B> Clone for WeightScope<'_, B> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            prefixes: self.prefixes.clone(),
            builder: self.builder,
        }
    }
}

impl<'a, B: LayerBuilder> WeightScope<'a, B> {
    /// The root of `weights`, with one weight set.
    pub fn new(weights: &'a WeightFile, builder: &'a B) -> Self {
        Self {
            source: Source::File(weights),
            prefixes: Rc::from([String::new()]),
            builder,
        }
    }

    /// The scope one level down: `pp("layer1")` asks for `layer1.<name>`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            source: self.source.clone(),
            prefixes: self
                .prefixes
                .iter()
                .map(|p| format!("{p}{name}."))
                .collect(),
            builder: self.builder,
        }
    }

    /// One scope that stands for `names.len()` networks of the same architecture, each under
    /// its own sub-scope (`refiners.0`, `refiners.1`, ...): requests return one tensor per set.
    pub fn sets(&self, names: &[String]) -> Self {
        Self {
            source: self.source.clone(),
            prefixes: self
                .prefixes
                .iter()
                .flat_map(|p| names.iter().map(move |n| format!("{p}{n}.")))
                .collect(),
            builder: self.builder,
        }
    }

    /// How many weight sets each request returns.
    pub fn set_count(&self) -> usize {
        self.prefixes.len()
    }

    /// A label for a layer at `name` (the first set's full name).
    pub fn label(&self, name: &str) -> String {
        format!("{}{name}", self.prefixes[0])
    }

    /// The tensor `name` of every weight set, each checked to have `shape`. In a dry run the
    /// name and shape are recorded and zeros returned.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<Cow<'a, [f32]>>> {
        self.prefixes
            .iter()
            .map(|p| {
                let full = format!("{p}{name}");
                match &self.source {
                    Source::File(file) => file.tensor(&full, shape),
                    Source::Declared(list) => {
                        list.borrow_mut().push((full, shape.to_vec()));
                        Ok(Cow::Owned(vec![0.0; shape.iter().product()]))
                    }
                }
            })
            .collect()
    }

    /// Whether the file stores `name` as f16 in every set (its layer may keep it so on the GPU).
    pub fn is_f16(&self, name: &str) -> bool {
        match &self.source {
            Source::File(file) => self
                .prefixes
                .iter()
                .all(|p| file.is_f16(&format!("{p}{name}"))),
            Source::Declared(_) => false,
        }
    }

    /// `name.weight` [out_c, in_c, k, k] and `name.bias` [out_c] of every set; the weights stay
    /// f16 on the GPU when the file holds them in f16.
    pub fn conv_weights(
        &self,
        name: &str,
        in_c: usize,
        out_c: usize,
        k: usize,
    ) -> Result<Vec<ConvWeights>> {
        self.conv_weights_rect(name, in_c, out_c, (k, k))
    }

    /// [`Self::conv_weights`] of a kh x kw kernel (Inception's 1x7, 7x1, ...).
    pub fn conv_weights_rect(
        &self,
        name: &str,
        in_c: usize,
        out_c: usize,
        (kh, kw): (usize, usize),
    ) -> Result<Vec<ConvWeights>> {
        let weight_name = format!("{name}.weight");
        let weights = self.tensor(&weight_name, &[out_c, in_c, kh, kw])?;
        let biases = self.tensor(&format!("{name}.bias"), &[out_c])?;
        let storage = if self.is_f16(&weight_name) {
            WeightStorage::F16
        } else {
            WeightStorage::F32
        };
        Ok(weights
            .into_iter()
            .zip(biases)
            .map(|(weight, bias)| ConvWeights {
                out_c,
                in_c,
                kh,
                kw,
                weight: weight.into_owned(),
                bias: bias.into_owned(),
                storage,
            })
            .collect())
    }

    /// `name.weight` [out_c, in_c, 1, 1] of a 1x1 convolution without bias (a zero bias).
    pub fn conv1x1_without_bias(
        &self,
        name: &str,
        in_c: usize,
        out_c: usize,
    ) -> Result<Vec<ConvWeights>> {
        let weight_name = format!("{name}.weight");
        let weights = self.tensor(&weight_name, &[out_c, in_c, 1, 1])?;
        let storage = if self.is_f16(&weight_name) {
            WeightStorage::F16
        } else {
            WeightStorage::F32
        };
        Ok(weights
            .into_iter()
            .map(|weight| ConvWeights {
                out_c,
                in_c,
                kh: 1,
                kw: 1,
                weight: weight.into_owned(),
                bias: vec![0.0; out_c],
                storage,
            })
            .collect())
    }

    /// A convolution without bias at `conv` followed by an inference-mode `BatchNorm2d` at `bn`
    /// (torchvision's resnet and Inception layers), the BatchNorm folded into the weights.
    pub fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        in_c: usize,
        out_c: usize,
        (kh, kw): (usize, usize),
        eps: f32,
    ) -> Result<Vec<ConvWeights>> {
        let weight_name = format!("{conv}.weight");
        let weights = self.tensor(&weight_name, &[out_c, in_c, kh, kw])?;
        let storage = if self.is_f16(&weight_name) {
            WeightStorage::F16
        } else {
            WeightStorage::F32
        };
        let norms = self.batchnorm(bn, out_c, eps)?;
        Ok(weights
            .into_iter()
            .zip(norms)
            .map(|(weight, norm)| {
                let mut c = ConvWeights {
                    out_c,
                    in_c,
                    kh,
                    kw,
                    weight: weight.into_owned(),
                    bias: vec![0.0; out_c],
                    storage,
                };
                c.fold_batchnorm(&norm);
                c
            })
            .collect())
    }

    /// `name.weight` [out, in] and `name.bias` [out] of every set (PyTorch's `nn.Linear`); the
    /// weights stay f16 on the GPU when the file holds them in f16.
    pub fn linear_weights(
        &self,
        name: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Vec<LinearWeights>> {
        let weight_name = format!("{name}.weight");
        let weights = self.tensor(&weight_name, &[out_features, in_features])?;
        let biases = self.tensor(&format!("{name}.bias"), &[out_features])?;
        let storage = if self.is_f16(&weight_name) {
            WeightStorage::F16
        } else {
            WeightStorage::F32
        };
        Ok(weights
            .into_iter()
            .zip(biases)
            .map(|(weight, bias)| LinearWeights {
                in_features,
                out_features,
                weight: weight.into_owned(),
                bias: bias.into_owned(),
                storage,
            })
            .collect())
    }

    /// An inference-mode `BatchNorm2d` at `name` of every set.
    pub fn batchnorm(&self, name: &str, channels: usize, eps: f32) -> Result<Vec<BatchNorm>> {
        let get = |field: &str| self.tensor(&format!("{name}.{field}"), &[channels]);
        let (gamma, beta, mean, var) = (
            get("weight")?,
            get("bias")?,
            get("running_mean")?,
            get("running_var")?,
        );
        Ok((0..self.set_count())
            .map(|s| BatchNorm::from_stats(&gamma[s], &beta[s], &mean[s], &var[s], eps))
            .collect())
    }
}

impl WeightScope<'static, DryRun> {
    /// A scope that records what a block's `load` asks for; read it with
    /// [`DeclaredTensors::take`].
    pub fn dry_run() -> (Self, DeclaredTensors) {
        let list = Rc::new(RefCell::new(Vec::new()));
        (
            Self {
                source: Source::Declared(list.clone()),
                prefixes: Rc::from([String::new()]),
                builder: &DryRun,
            },
            DeclaredTensors(list),
        )
    }
}

/// What a dry run recorded.
pub struct DeclaredTensors(Declarations);

impl DeclaredTensors {
    /// Every (name, shape) in the order the architecture asked for them.
    pub fn take(&self) -> Vec<(String, Vec<usize>)> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}
