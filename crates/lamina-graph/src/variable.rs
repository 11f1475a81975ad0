//! Variables: named runtime values owned by a layer (Dense weights, Lambda variables) and Lambda
//! `arguments`. The graph refers to them; their values are read each time a model runs.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a variable is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VariableKind {
    /// A weight: a parameter in `summary()`, trainable unless its flag says otherwise
    /// ([`Variable::trainable`]).
    Weight,
    /// A Lambda `arguments` value: passed to the function, never counted as a parameter.
    Argument,
}

/// A named runtime value with a fixed shape and dtype; setting it never changes the graph.
#[derive(Debug)]
pub struct Variable {
    id: u64,
    name: String,
    layer: String,
    kind: VariableKind,
    value: RwLock<HostTensor>,
    version: AtomicU64,
    trainable: AtomicBool,
}

impl Variable {
    /// A new variable owned by `layer` with an initial value. A weight starts trainable; an
    /// argument never is.
    pub fn new(layer: &str, name: &str, kind: VariableKind, value: HostTensor) -> Self {
        Variable {
            id: crate::tensor::next_id(),
            name: name.to_string(),
            layer: layer.to_string(),
            kind,
            value: RwLock::new(value),
            version: AtomicU64::new(0),
            trainable: AtomicBool::new(kind == VariableKind::Weight),
        }
    }

    /// The same variable with its trainable flag set, as Keras's `add_weight(trainable=...)`:
    /// `BatchNormalization`'s moving statistics are made with `.with_trainable(false)`.
    /// An argument stays non-trainable whatever is asked.
    pub fn with_trainable(self, trainable: bool) -> Self {
        self.set_trainable(trainable);
        self
    }

    /// Whether the weight is trainable (Keras's `variable.trainable`). Inference never reads
    /// it; `summary()` counts trainable and non-trainable parameters by it and model files
    /// keep it.
    pub fn trainable(&self) -> bool {
        self.trainable.load(Ordering::Acquire)
    }

    /// Sets the trainable flag (Keras's `layer.trainable = False` freezes every weight of a
    /// layer). Arguments are never trainable, so for them this does nothing.
    pub fn set_trainable(&self, trainable: bool) {
        self.trainable.store(
            trainable && self.kind == VariableKind::Weight,
            Ordering::Release,
        );
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The name within its layer (`kernel`, `multiplier`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owning layer's name.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// The full Keras-style path `layer/name`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.layer, self.name)
    }

    /// Weight or argument.
    pub fn kind(&self) -> VariableKind {
        self.kind
    }

    /// The shape, fixed at creation.
    pub fn shape(&self) -> Vec<usize> {
        self.read().shape().to_vec()
    }

    /// The dtype, fixed at creation.
    pub fn dtype(&self) -> DType {
        self.read().dtype()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.read().len()
    }

    /// A copy of the current value.
    pub fn value(&self) -> HostTensor {
        self.read().clone()
    }

    /// Runs `f` on the current value without copying it.
    pub fn with_value<R>(&self, f: impl FnOnce(&HostTensor) -> R) -> R {
        f(&self.read())
    }

    /// Replaces the value; the shape and dtype must stay the same.
    pub fn set(&self, value: HostTensor) -> Result<()> {
        let mut guard = self.value.write().unwrap_or_else(|p| p.into_inner());
        if guard.shape() != value.shape() || guard.dtype() != value.dtype() {
            return Err(Error::VariableShape {
                name: self.path(),
                existing: format!("{:?} {}", guard.shape(), guard.dtype()),
                requested: format!("{:?} {}", value.shape(), value.dtype()),
            });
        }
        *guard = value;
        self.version.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// A counter bumped by every `set`, so that backends know when to upload again.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HostTensor> {
        self.value.read().unwrap_or_else(|p| p.into_inner())
    }
}
