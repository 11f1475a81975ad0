//! The keras.ops-style methods on `Tensor`, composed from the primitive ops of `crate::op`.

mod activations;
mod axes;
mod conv;
mod elementwise;
mod gather;
mod linalg;
mod movement;
mod operators;
mod random;
mod recurrence;
mod reduce;
mod sequence;
mod slicing;

pub use axes::Axes;
pub use elementwise::{Operand, apply_binary, promote};
pub use gather::index_out_of_range;
pub(crate) use recurrence::infer_recurrence;
pub use recurrence::{RecurrenceSpec, RecurrentCell};
pub use sequence::Size;
pub use slicing::SliceArg;
