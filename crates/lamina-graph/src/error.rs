//! The one error type of Lamina: every fallible public call returns `Result<_, Error>`.

use thiserror::Error as ThisError;

/// Shorthand for `Result<T, lamina_graph::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Lamina, with messages that name the layer, the op and the
/// shapes involved.
#[derive(Clone, Debug, PartialEq, ThisError)]
pub enum Error {
    /// An op was given shapes it cannot combine (broadcasting, matmul, concatenate, reshape...).
    #[error("op {op}: incompatible shapes {shapes}: {detail}")]
    IncompatibleShapes {
        /// The op that failed, in keras.ops spelling.
        op: String,
        /// The input shapes, already formatted.
        shapes: String,
        /// What exactly disagrees.
        detail: String,
    },
    /// An axis outside `-rank..rank`.
    #[error("op {op}: axis {axis} is out of range for a tensor of rank {rank} (shape {shape})")]
    AxisOutOfRange {
        /// The op that failed.
        op: String,
        /// The axis given by the user.
        axis: isize,
        /// The rank of the tensor.
        rank: usize,
        /// The tensor's shape, formatted.
        shape: String,
    },
    /// An index or slice that selects outside a dimension, or nothing at all.
    #[error("op {op}: {detail} on axis {axis} of size {size} (shape {shape})")]
    OutOfBounds {
        /// The op that failed.
        op: String,
        /// The index or slice, formatted.
        detail: String,
        /// The axis it applies to.
        axis: usize,
        /// The size of that axis.
        size: usize,
        /// The tensor's shape, formatted.
        shape: String,
    },
    /// An op was given an element type it does not accept.
    #[error("op {op}: {detail}")]
    DType {
        /// The op that failed.
        op: String,
        /// Which types were given and which are accepted.
        detail: String,
    },
    /// A Lambda's declared `output_shape` disagrees with the shape its function produces.
    #[error("declared output_shape {declared} disagrees with the inferred output shape {inferred}")]
    OutputShapeMismatch {
        /// The declared shape (batch included), formatted.
        declared: String,
        /// The shape the function produced, formatted.
        inferred: String,
    },
    /// A Lambda function asked for an argument that was not given.
    #[error("unknown argument '{name}' (the Lambda's arguments are: {known})")]
    UnknownArgument {
        /// The name asked for.
        name: String,
        /// The names that exist, formatted.
        known: String,
    },
    /// A variable or weight was created or set with a shape other than the one it has.
    #[error("variable '{name}': existing shape {existing}, requested shape {requested}")]
    VariableShape {
        /// The variable's name.
        name: String,
        /// Its shape, formatted.
        existing: String,
        /// The shape asked for, formatted.
        requested: String,
    },
    /// No variable, layer or argument of that name exists.
    #[error("{kind} '{name}' not found{detail}")]
    NotFound {
        /// What was looked for: `layer`, `variable`, `argument`.
        kind: String,
        /// The name given.
        name: String,
        /// The names that exist, formatted with a leading separator, or empty.
        detail: String,
    },
    /// A host tensor whose data length disagrees with its shape, or host data of the wrong type.
    #[error("host tensor: {detail}")]
    HostTensor {
        /// What is wrong.
        detail: String,
    },
    /// The inputs given to `predict` do not match the model's inputs in count, shape or dtype.
    #[error("model inputs: {detail}")]
    Inputs {
        /// What is wrong.
        detail: String,
    },
    /// A model was built wrongly: an output not reachable from the inputs, an empty model...
    #[error("model: {detail}")]
    Model {
        /// What is wrong.
        detail: String,
    },
    /// A backend failed: no adapter, a device error, an unsupported size.
    #[error("backend {backend}: {detail}")]
    Backend {
        /// The backend: `cpu`, `gpu`.
        backend: String,
        /// What went wrong.
        detail: String,
    },
    /// A model file could not be saved or loaded: unreadable, truncated, corrupt, hostile, or
    /// of a newer format version.
    #[error("model file {path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, naming the field, index, op or tensor concerned.
        detail: String,
    },
    /// A NumPy `.npy` file or buffer that cannot be read or written: unreadable, not a `.npy`
    /// file, an oversized header, an unsupported dtype, or data of another size than declared.
    #[error("{origin}: {detail}")]
    Npy {
        /// Where the data came from: `npy file x.npy`, or `npy data`.
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// A compiled program would need more memory than its budget allows; nothing was
    /// allocated. The detail names the largest tensors.
    #[error("backend {backend}: out of memory budget: {detail}")]
    Memory {
        /// The backend: `cpu`, `gpu`.
        backend: String,
        /// The bytes the program needs at its peak.
        needed: u64,
        /// The budget in bytes.
        limit: u64,
        /// The peak, the budget, the largest tensors, and how to raise the budget.
        detail: String,
    },
    /// An error that happened while a layer was being called, with the layer's name and type.
    #[error("layer '{layer}' ({kind}): {source}")]
    InLayer {
        /// The layer's name.
        layer: String,
        /// The layer's type, such as `Lambda` or `Dense`.
        kind: String,
        /// The error itself.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Wraps this error with the name and type of the layer in which it happened, once.
    pub fn in_layer(self, layer: &str, kind: &str) -> Error {
        match self {
            Error::InLayer { .. } => self,
            other => Error::InLayer {
                // A name from a file can be megabytes long: the message quotes its start.
                layer: crate::limits::bounded_text(layer).into_owned(),
                kind: kind.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// The error without the layer context around it.
    pub fn root(&self) -> &Error {
        match self {
            Error::InLayer { source, .. } => source.root(),
            other => other,
        }
    }
}

/// The message of a caught panic (`catch_unwind`, a joined thread), for an error that reports
/// it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
