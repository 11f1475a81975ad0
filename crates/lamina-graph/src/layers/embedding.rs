//! `Embedding`: integer ids to dense vectors, with an optional mask of the padding id 0.

use super::common::{Weights, one_input};
use super::init::uniform;
use super::registry::{ConfigContext, Configurable};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::tensor::{Tensor, next_id};
use crate::variable::Variable;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The configuration of an [`Embedding`], as Keras names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// The layer's name.
    pub name: String,
    /// Number of ids.
    pub input_dim: usize,
    /// Vector size.
    pub output_dim: usize,
    /// Whether id 0 is masked.
    pub mask_zero: bool,
}

/// Keras's `Embedding(input_dim, output_dim, mask_zero=False)`: looks up row `id` of the
/// `embeddings` weight, shape `(input_dim, output_dim)`, initialised uniform in [-0.05, 0.05].
/// Ids that are not integers are cast to `int32`. With `mask_zero`, the output carries a mask
/// that is false where the id is 0 (padding). An id outside `0..input_dim` is an error when it
/// comes straight from a model input, and on the CPU; a computed one reads zeros on the GPU.
#[derive(Clone)]
pub struct Embedding {
    id: u64,
    config: EmbeddingConfig,
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
            config: EmbeddingConfig {
                name: unique_name("embedding"),
                input_dim,
                output_dim,
                mask_zero: false,
            },
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
    pub fn mask_zero(mut self, mask_zero: bool) -> Embedding {
        self.config.mask_zero = mask_zero;
        self.fresh()
    }

    /// Sets the layer's name.
    pub fn name(mut self, name: &str) -> Embedding {
        self.config.name = name.to_string();
        self.fresh()
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

    /// The `embeddings` weight, made now if the layer was not called yet.
    pub fn embeddings(&self) -> Result<Arc<Variable>> {
        let c = &self.config;
        check_dims("Embedding", c)?;
        let shape = vec![c.input_dim, c.output_dim];
        let vars =
            self.weights
                .get_or_make(&c.name, &[("embeddings", shape)], |_, s| {
                    match &self.initial {
                        Some(t) if t.shape() == s && t.dtype() == DType::F32 => Ok(t.clone()),
                        Some(t) => Err(Error::VariableShape {
                            name: format!("{}/embeddings", c.name),
                            existing: format!("{:?} {} given as weights", t.shape(), t.dtype()),
                            requested: format!("{s:?} float32"),
                        }),
                        None => HostTensor::new(s, uniform(s[0] * s[1], 0.05, self.seed)),
                    }
                })?;
        Ok(vars[0].clone())
    }
}

/// Refuses a table with no rows or no columns; `who` names the layer.
fn check_dims(who: &str, c: &EmbeddingConfig) -> Result<()> {
    if c.input_dim == 0 || c.output_dim == 0 {
        return Err(Error::Model {
            detail: format!(
                "{who} needs input_dim and output_dim of at least 1, got {} and {}",
                c.input_dim, c.output_dim
            ),
        });
    }
    Ok(())
}

impl Layer for Embedding {
    fn id(&self) -> u64 {
        self.id
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn kind(&self) -> &'static str {
        "Embedding"
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

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
        self.config.mask_zero
    }

    fn compute_mask(
        &self,
        inputs: &[Tensor],
        _masks: &[Option<Tensor>],
        _outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = one_input("Embedding", inputs)?;
        Ok(vec![self.config.mask_zero.then(|| x.not_equal(0.0))])
    }
}

impl Configurable for Embedding {
    const CLASS: &'static str = "Embedding";
    type Config = EmbeddingConfig;

    fn config(&self) -> EmbeddingConfig {
        self.config.clone()
    }

    fn from_config(config: EmbeddingConfig, _context: &ConfigContext) -> Result<Embedding> {
        check_dims(&format!("Embedding '{}'", config.name), &config)?;
        Ok(Embedding::new(config.input_dim, config.output_dim)
            .mask_zero(config.mask_zero)
            .name(&config.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_refuses_an_empty_table() {
        let ctx = ConfigContext::default();
        let c = Embedding::new(10, 4).mask_zero(true).name("e").config();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"name":"e","input_dim":10,"output_dim":4,"mask_zero":true}"#
        );
        assert_eq!(Embedding::from_config(c.clone(), &ctx).unwrap().config(), c);
        let empty = EmbeddingConfig { output_dim: 0, ..c };
        let e = Embedding::from_config(empty, &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("'e'") && e.contains("at least 1"), "{e}");
    }
}
