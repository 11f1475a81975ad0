//! The graph crate of Lamina: symbolic tensors, the primitive op IR, shape inference, layers
//! (`Input`, `Lambda`, `Dense`) and models (`Sequential`, functional `Model`). It knows nothing
//! of devices; backends compile its `Program`s.

pub mod activation;
pub mod dtype;
pub mod error;
pub mod host;
pub mod infer;
pub mod layer;
pub mod layers;
pub mod limits;
pub mod model;
pub mod npy;
pub mod op;
pub mod ops;
pub mod saving;
pub mod shape;
pub mod tensor;
pub mod variable;

pub use dtype::DType;
pub use error::{Error, Result};
pub use host::{Element, HostData, HostTensor};
pub use layer::{Layer, LayerCall, LayerInputs, LayerRef, call_layer, call_layer_with_masks};
/// Every layer, its configuration type and the layer registry, at the crate root too.
pub use layers::*;
pub use model::{Model, Program, ProgramNode, Sequential, SequentialItem};
pub use op::ReduceOp;
pub use ops::{Axes, Operand, Size, SliceArg};
pub use shape::{Dim, Shape};
pub use tensor::Tensor;
pub use variable::{Variable, VariableKind};
