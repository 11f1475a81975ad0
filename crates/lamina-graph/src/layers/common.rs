//! Small pieces every layer shares: input-count checks, mask alignment, lazily built weights.

use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::tensor::Tensor;
use crate::variable::{Variable, VariableKind};
use std::sync::{Arc, Mutex};

/// The single input of a one-input layer, or an error naming how many were given.
pub(crate) fn one_input<'a>(kind: &str, inputs: &'a [Tensor]) -> Result<&'a Tensor> {
    match inputs {
        [x] => Ok(x),
        _ => Err(Error::Inputs {
            detail: format!("{kind} takes one input, got {}", inputs.len()),
        }),
    }
}

/// Appends a mask's missing trailing axes, so that a mask over the leading axes (batch, time)
/// lines up with a tensor of `rank` axes.
pub(crate) fn align_mask(mask: &Tensor, rank: usize) -> Tensor {
    let mut m = mask.cast(crate::dtype::DType::Bool);
    while m.rank() < rank {
        m = m.expand_dims(-1);
    }
    m
}

/// A layer's weights, made on its first call (when the input shape is known) and reused after.
#[derive(Default)]
pub(crate) struct Weights {
    slot: Mutex<Option<Vec<Arc<Variable>>>>,
}

impl Weights {
    /// The weights named and shaped as `wanted`, made with `init(name, shape)` on the first
    /// call; later calls check that the shapes wanted are the ones that exist.
    pub(crate) fn get_or_make(
        &self,
        layer: &str,
        wanted: &[(&str, Vec<usize>)],
        init: impl Fn(&str, &[usize]) -> Result<HostTensor>,
    ) -> Result<Vec<Arc<Variable>>> {
        self.get_or_make_flagged(layer, wanted, &[], init)
    }

    /// As `get_or_make`, with the weights named in `non_trainable` made non-trainable (Keras's
    /// `add_weight(trainable=False)`, as `BatchNormalization`'s moving statistics). The flag is
    /// set only when the weights are made: a user's later change, or a loaded file's, stays.
    pub(crate) fn get_or_make_flagged(
        &self,
        layer: &str,
        wanted: &[(&str, Vec<usize>)],
        non_trainable: &[&str],
        init: impl Fn(&str, &[usize]) -> Result<HostTensor>,
    ) -> Result<Vec<Arc<Variable>>> {
        let mut guard = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(vars) = &*guard {
            for (v, (_, shape)) in vars.iter().zip(wanted) {
                if v.shape() != *shape {
                    return Err(Error::VariableShape {
                        name: v.path(),
                        existing: format!("{:?}", v.shape()),
                        requested: format!("{shape:?}"),
                    });
                }
            }
            return Ok(vars.clone());
        }
        let mut vars = Vec::with_capacity(wanted.len());
        for (name, shape) in wanted {
            let n = crate::host::checked_numel(shape)?;
            spend_weight_budget(layer, name, shape, n)?;
            let value = match stored_weight(layer, name, shape)? {
                Some(v) => v,
                None => init(name, shape)?,
            };
            vars.push(Arc::new(
                Variable::new(layer, name, VariableKind::Weight, value)
                    .with_trainable(!non_trainable.contains(name)),
            ));
        }
        *guard = Some(vars.clone());
        Ok(vars)
    }

    /// The weights made so far (none before the first call).
    pub(crate) fn list(&self) -> Vec<Arc<Variable>> {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

thread_local! {
    static STORED: std::cell::RefCell<Option<std::collections::HashMap<String, HostTensor>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a layer's first call, while a model loads) with the weights stored in the file
/// standing in for initial values: layers then take them instead of allocating their own, and
/// a stored weight of the wrong shape, or a missing one, is an error before any allocation.
pub(crate) fn with_stored_weights<R>(
    weights: std::collections::HashMap<String, HostTensor>,
    f: impl FnOnce() -> R,
) -> R {
    /// Puts the previous value back when dropped, also if `f` panics.
    struct Restore(Option<std::collections::HashMap<String, HostTensor>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            STORED.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(STORED.with(|s| s.borrow_mut().replace(weights)));
    f()
}

thread_local! {
    static WEIGHT_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` (a model being rebuilt from a file whose weights all come from that file) allowing
/// layers to make at most `values` weight values between them: a configuration asking for
/// more than the file holds is an error naming the layer before anything is allocated.
pub fn with_weight_budget<R>(values: usize, f: impl FnOnce() -> R) -> R {
    /// Puts the previous budget back when dropped, also if `f` panics.
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            WEIGHT_BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(WEIGHT_BUDGET.with(|b| b.replace(Some(values))));
    f()
}

/// Takes `n` values from the weight budget, if one is set.
fn spend_weight_budget(layer: &str, name: &str, shape: &[usize], n: usize) -> Result<()> {
    WEIGHT_BUDGET.with(|b| match b.get() {
        Some(left) if n > left => Err(Error::Model {
            detail: format!(
                "layer '{layer}': weight '{name}' of shape {shape:?} would hold {n} values, more \
                 than the weights file has left ({left})"
            ),
        }),
        Some(left) => {
            b.set(Some(left - n));
            Ok(())
        }
        None => Ok(()),
    })
}

/// The stored value of weight `name` while a model loads (`None` otherwise).
fn stored_weight(layer: &str, name: &str, shape: &[usize]) -> Result<Option<HostTensor>> {
    STORED.with(|s| {
        let guard = s.borrow();
        let Some(map) = guard.as_ref() else {
            return Ok(None);
        };
        match map.get(name) {
            // Weights are float32, except scalar counters (Normalization's int32 `count`).
            Some(v)
                if v.shape() == shape
                    && (v.dtype() == crate::dtype::DType::F32
                        || (shape.is_empty() && v.dtype() == crate::dtype::DType::I32)) =>
            {
                Ok(Some(v.clone()))
            }
            Some(v) => Err(Error::VariableShape {
                name: format!("{layer}/{name}"),
                existing: format!("{:?} {} in the file", v.shape(), v.dtype()),
                requested: format!("{shape:?} float32"),
            }),
            None => Err(Error::NotFound {
                kind: "stored weight".into(),
                name: format!("{layer}/{name}"),
                detail: String::new(),
            }),
        }
    })
}

/// Implements the `Layer` methods that are the same for every layer type: `id`, `name`,
/// `kind`, `handle` and `as_any`, for a `Clone` struct with `id` and `name` fields (or, with
/// `@in [inner]`, with those fields in `self.inner`).
macro_rules! layer_identity {
    ($kind:literal) => {
        crate::layers::common::layer_identity!(@in [] $kind);
    };
    (@in [$($field:ident)*] $kind:literal) => {
        fn id(&self) -> u64 {
            self.$($field.)*id
        }
        fn name(&self) -> String {
            self.$($field.)*name.clone()
        }
        fn kind(&self) -> &'static str {
            $kind
        }
        fn handle(&self) -> crate::layer::LayerRef {
            std::sync::Arc::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}
pub(crate) use layer_identity;

/// As `layer_identity`, for a layer whose state lives in an `inner: Arc<..>` with `id`, `name`
/// and `weights: Weights` (a layer with weights made on its first call): also `variables`.
macro_rules! weighted_layer_identity {
    ($kind:literal) => {
        crate::layers::common::layer_identity!(@in [inner] $kind);
        fn variables(&self) -> Vec<std::sync::Arc<crate::variable::Variable>> {
            self.inner.weights.list()
        }
    };
}
pub(crate) use weighted_layer_identity;
