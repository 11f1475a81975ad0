//! `Embedding`: integer ids to dense vectors, with an optional mask of the padding id 0.

use super::common::{Weights, layer_identity, one_input};
use super::init::uniform;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, unique_name};
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use std::sync::Arc;

/// Keras's `Embedding(input_dim, output_dim, mask_zero=False)`: looks up row `id` of the
/// `embeddings` weight, shape `(input_dim, output_dim)`, initialised uniform in [-0.05, 0.05].
/// Ids that are not integers are cast to `int32`. With `mask_zero`, the output carries a mask
/// that is false where the id is 0 (padding). An id outside `0..input_dim` is an error when it
/// comes straight from a model input, and on the CPU; a computed one reads zeros on the GPU.
#[derive(Clone)]
pub struct Embedding {
    id: u64,
    name: String,
    input_dim: usize,
    output_dim: usize,
    mask_zero: bool,
    seed: u64,
    initial: Option<HostTensor>,
    weights: Arc<Weights>,
}

impl Embedding {
    /// An embedding of `input_dim` ids into vectors of `output_dim`.
    pub fn new(input_dim: usize, output_dim: usize) -> Embedding {
        let id = next_id();
        Embedding {
            id,
            name: unique_name("embedding"),
            input_dim,
            output_dim,
            mask_zero: false,
            seed: id,
            initial: None,
            weights: Arc::default(),
        }
    }

    fn fresh(mut self) -> Embedding {
        self.id = next_id();
        self.weights = Arc::default();
        self
    }

    /// Whether id 0 is padding: the output then carries a mask, false where the id is 0.
    pub fn mask_zero(self, mask_zero: bool) -> Embedding {
        Embedding { mask_zero, ..self }.fresh()
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Embedding {
        Embedding {
            name: name.to_string(),
            ..self
        }
        .fresh()
    }

    /// The initial table, as Keras's `weights=[table]`: shape `(input_dim, output_dim)`,
    /// float32 (checked when the layer is built).
    pub fn weights(self, table: HostTensor) -> Embedding {
        Embedding {
            initial: Some(table),
            ..self
        }
        .fresh()
    }

    /// Sets the seed of the initialiser.
    pub fn seed(self, seed: u64) -> Embedding {
        Embedding { seed, ..self }.fresh()
    }

    /// The number of ids.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// The size of each vector.
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Whether id 0 is masked.
    pub fn masks_zero(&self) -> bool {
        self.mask_zero
    }

    /// The `embeddings` weight, made now if the layer was not called yet.
    pub fn embeddings(&self) -> Result<Arc<Variable>> {
        if self.input_dim == 0 || self.output_dim == 0 {
            return Err(Error::Model {
                detail: format!(
                    "Embedding needs input_dim and output_dim of at least 1, got {} and {}",
                    self.input_dim, self.output_dim
                ),
            });
        }
        let shape = vec![self.input_dim, self.output_dim];
        let vars = self
            .weights
            .get_or_make(&self.name, &[("embeddings", shape)], |_, s| {
                match &self.initial {
                    Some(t) if t.shape() == s && t.dtype() == DType::F32 => Ok(t.clone()),
                    Some(t) => Err(Error::VariableShape {
                        name: format!("{}/embeddings", self.name),
                        existing: format!("{:?} {} given as weights", t.shape(), t.dtype()),
                        requested: format!("{s:?} float32"),
                    }),
                    None => HostTensor::new(s, uniform(s[0] * s[1], 0.05, self.seed)),
                }
            })?;
        Ok(vars[0].clone())
    }
}

impl Layer for Embedding {
    layer_identity!("Embedding");

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let x = one_input("Embedding", inputs)?;
        let ids = match x.dtype() {
            DType::I32 | DType::U32 => x.clone(),
            _ => x.cast(DType::I32),
        };
        let table = Tensor::variable(self.embeddings()?);
        Ok(vec![table.take(&ids, 0)])
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        self.weights.list()
    }

    fn supports_masking(&self) -> bool {
        self.mask_zero
    }

    fn compute_mask(
        &self,
        inputs: &[Tensor],
        _masks: &[Option<Tensor>],
        _outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = one_input("Embedding", inputs)?;
        Ok(vec![self.mask_zero.then(|| x.not_equal(0.0))])
    }
}
