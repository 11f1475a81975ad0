//! `BatchNormalization` at inference: `(x - moving_mean) / sqrt(moving_variance + epsilon) *
//! gamma + beta` per channel. Directly after a convolution with no activation it is folded into
//! that convolution: its kernel scaled and its bias shifted per output channel, so the product
//! itself computes the normalised values and no pass over the output remains.

use super::common::{Weights, layer_identity, one_input};
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::normalize_axis;
use crate::layer::{Layer, unique_name};
use crate::op::Op;
use crate::saving::format::{BatchNormRecord, LayerRecord};
use crate::shape::Dim;
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use std::sync::Arc;

/// Keras's `BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True,
/// scale=True)` in inference mode. Weights, in Keras's order: `gamma` (ones, when `scale`),
/// `beta` (zeros, when `center`), `moving_mean` (zeros) and `moving_variance` (ones), each of
/// the size of `axis`; the moving statistics are not trainable.
#[derive(Clone)]
pub struct BatchNormalization {
    id: u64,
    name: String,
    axis: isize,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    weights: Arc<Weights>,
}

impl BatchNormalization {
    /// Normalisation of the last axis with Keras's defaults.
    pub fn new() -> BatchNormalization {
        BatchNormalization {
            id: next_id(),
            name: unique_name("batch_normalization"),
            axis: -1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            weights: Arc::default(),
        }
    }

    fn fresh(mut self) -> BatchNormalization {
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// The channel axis (negative counts from the end; default -1).
    pub fn axis(self, axis: isize) -> BatchNormalization {
        BatchNormalization { axis, ..self }.fresh()
    }

    /// The small value added to the variance (default 1e-3).
    pub fn epsilon(self, epsilon: f32) -> BatchNormalization {
        BatchNormalization { epsilon, ..self }.fresh()
    }

    /// The moving average's momentum (kept for Keras compatibility; unused at inference).
    pub fn momentum(self, momentum: f32) -> BatchNormalization {
        BatchNormalization { momentum, ..self }.fresh()
    }

    /// Whether to add `beta` (default true).
    pub fn center(self, center: bool) -> BatchNormalization {
        BatchNormalization { center, ..self }.fresh()
    }

    /// Whether to multiply by `gamma` (default true).
    pub fn scale(self, scale: bool) -> BatchNormalization {
        BatchNormalization { scale, ..self }.fresh()
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> BatchNormalization {
        BatchNormalization {
            name: name.to_string(),
            ..self
        }
        .fresh()
    }

    pub(crate) fn record(&self, name: String) -> LayerRecord {
        LayerRecord::BatchNormalization(BatchNormRecord {
            name,
            axis: self.axis as i64,
            momentum: self.momentum,
            epsilon: self.epsilon,
            center: self.center,
            scale: self.scale,
        })
    }

    pub(crate) fn from_record(r: &BatchNormRecord) -> Result<BatchNormalization> {
        let axis = isize::try_from(r.axis).map_err(|_| Error::Model {
            detail: format!("axis {} is out of range", r.axis),
        })?;
        Ok(BatchNormalization::new()
            .axis(axis)
            .momentum(r.momentum)
            .epsilon(r.epsilon)
            .center(r.center)
            .scale(r.scale)
            .name(&r.name))
    }
}

impl Default for BatchNormalization {
    fn default() -> Self {
        BatchNormalization::new()
    }
}

impl Layer for BatchNormalization {
    layer_identity!("BatchNormalization");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("BatchNormalization", inputs)?;
        let shape = x.shape();
        let axis = normalize_axis("batch_normalization", self.axis, &shape)?;
        let n = match shape.dims()[axis] {
            Dim::Known(n) => n,
            Dim::Dynamic => {
                return Err(Error::IncompatibleShapes {
                    op: "batch_normalization".into(),
                    shapes: shape.to_string(),
                    detail: format!("axis {axis} must have a known size"),
                });
            }
        };
        let mut wanted = Vec::new();
        if self.scale {
            wanted.push(("gamma", vec![n]));
        }
        if self.center {
            wanted.push(("beta", vec![n]));
        }
        wanted.push(("moving_mean", vec![n]));
        wanted.push(("moving_variance", vec![n]));
        let vars = self.weights.get_or_make_flagged(
            &self.name,
            &wanted,
            &["moving_mean", "moving_variance"],
            |name, s| {
                HostTensor::full(
                    s,
                    if matches!(name, "gamma" | "moving_variance") {
                        1.0
                    } else {
                        0.0
                    },
                )
            },
        )?;
        let var = |name: &str| {
            vars.iter()
                .find(|v| v.name() == name)
                .map(|v| Tensor::variable(v.clone()))
        };
        let missing = || Error::Model {
            detail: "BatchNormalization made no moving statistics".into(),
        };
        // scale = gamma / sqrt(var + eps); shift = beta - mean * scale, per channel.
        let mut mul = var("moving_variance")
            .ok_or_else(missing)?
            .add(self.epsilon)
            .rsqrt();
        if let Some(g) = var("gamma") {
            mul = mul.multiply(g);
        }
        let mut shift = var("moving_mean")
            .ok_or_else(missing)?
            .negative()
            .multiply(&mul);
        if let Some(b) = var("beta") {
            shift = shift.add(b);
        }
        let x = if x.dtype() == crate::dtype::DType::F32 {
            x.clone()
        } else {
            x.cast(crate::dtype::DType::F32)
        };
        // Directly after a convolution over channels-last data (its channels are the last
        // axis): fold into its kernel and bias.
        if axis + 1 == shape.rank()
            && let Ok(node) = x.node()
            && let Op::Conv(spec) = node.op()
        {
            let ins = node.inputs();
            let kernel = ins[1].multiply(&mul);
            let bias = match ins.get(2) {
                Some(b) => b.multiply(&mul).add(&shift),
                None => shift,
            };
            return Ok(vec![ins[0].conv(&kernel, Some(&bias), spec.clone())]);
        }
        let mut bshape = vec![1i64; shape.rank()];
        bshape[axis] = n as i64;
        Ok(vec![
            x.multiply(mul.reshape(&bshape)).add(shift.reshape(&bshape)),
        ])
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.weights.list()
    }

    fn supports_masking(&self) -> bool {
        true
    }
}
