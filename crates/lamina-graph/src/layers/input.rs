//! `Input`: the symbolic placeholder a model starts from.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerCall, LayerRef, unique_name};
use crate::shape::{Dim, Shape};
use crate::tensor::{Tensor, next_id};
use std::sync::Arc;

/// A model input, as Keras's `Input(shape, dtype, name)`: the per-sample shape, with the batch
/// dimension prepended as `None` unless `batch_size` fixes it.
#[derive(Clone, Debug)]
pub struct Input {
    dims: Vec<Dim>,
    batch: Dim,
    dtype: DType,
    name: Option<String>,
}

impl Input {
    /// An input whose samples have this shape (`&[784]`), `float32`, any batch size.
    pub fn new(per_sample: &[usize]) -> Input {
        Input::with_dims(per_sample.iter().map(|&n| Dim::Known(n)).collect())
    }

    /// An input whose per-sample dims may be unknown (`None`), such as a sequence length.
    pub fn with_dims(per_sample: Vec<Dim>) -> Input {
        Input {
            dims: per_sample,
            batch: Dim::Dynamic,
            dtype: DType::F32,
            name: None,
        }
    }

    /// An input written as Keras writes it, `None` for a size known only at run time:
    /// `Input::shape(&[None, Some(16)])` is `keras.Input(shape=(None, 16))`.
    pub fn shape(per_sample: &[Option<usize>]) -> Input {
        Input::with_dims(per_sample.iter().map(|&n| Dim::from(n)).collect())
    }

    /// Sets the element type.
    pub fn dtype(mut self, dtype: DType) -> Input {
        self.dtype = dtype;
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: &str) -> Input {
        self.name = Some(name.to_string());
        self
    }

    /// Fixes the batch size instead of leaving it unknown.
    pub fn batch_size(mut self, batch: usize) -> Input {
        self.batch = Dim::Known(batch);
        self
    }

    /// The full shape, batch included.
    pub fn full_shape(&self) -> Shape {
        Shape::new(std::iter::once(self.batch).chain(self.dims.iter().copied()))
    }

    /// The symbolic tensor to build a functional model from. A zero-sized dimension gives a
    /// tensor that carries the error.
    pub fn tensor(self) -> Tensor {
        let shape = self.full_shape();
        if shape.dims().contains(&Dim::Known(0)) {
            return Tensor::invalid(Error::Inputs {
                detail: format!("Input shape {shape} has a zero-sized dimension"),
            });
        }
        let known: Vec<usize> = shape.dims().iter().filter_map(|d| d.known()).collect();
        if let Err(e) = crate::host::checked_numel(&known) {
            return Tensor::invalid(e);
        }
        let name = self.name.unwrap_or_else(|| unique_name("input_layer"));
        let layer = InputLayer {
            id: next_id(),
            name: name.clone(),
        };
        let t = Tensor::input(&name, shape, self.dtype);
        let call = LayerCall::record(Arc::new(layer), &[], None, std::slice::from_ref(&t));
        t.with_history(call)
    }
}

/// The layer behind an `Input` tensor; it appears in functional model summaries.
#[derive(Clone, Debug)]
pub struct InputLayer {
    id: u64,
    name: String,
}

impl Layer for InputLayer {
    fn id(&self) -> u64 {
        self.id
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn kind(&self) -> &'static str {
        "InputLayer"
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(inputs.to_vec())
    }
    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
