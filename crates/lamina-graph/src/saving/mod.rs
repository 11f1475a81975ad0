//! Save and load: a model, Lambda bodies included, is data. It saves to one safetensors file
//! (weights, arguments and constants as tensors, the architecture as JSON metadata) and loads
//! without running any code.

mod atomic;
pub use atomic::{AtomicFile, write_atomically};
mod bounded;
pub mod format;
mod load;
mod save;
pub mod sniff;
