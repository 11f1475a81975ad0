//! Models: the functional `Model`, `Sequential`, the flattened `Program` backends compile, and
//! `summary()`.

mod functional;
mod nested;
mod program;
mod sequential;
mod summary;

pub use functional::Model;
pub use program::{GatherInputCheck, Program, ProgramNode};
pub use sequential::{Sequential, SequentialItem};
