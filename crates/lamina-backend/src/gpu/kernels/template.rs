//! The functions a hand-written template of `shaders/` calls (`a_base`, `b_base`, `load_a`,
//! `load_b`, `epilogue` for the matmul templates), built from the IR in a scope of their own.

use crate::gpu::ir::{Builder, Function, Stmt, Val};
use crate::gpu::lower::Lowerer;
use lamina_graph::{DType, Result};

/// The argument types of a matmul template's `epilogue(batch, split, row, col, acc)`.
pub const EPILOGUE_ARGS: [DType; 5] = [DType::U32, DType::U32, DType::U32, DType::U32, DType::F32];

/// A kernel under construction that opens and closes scopes: a builder, or a lowerer (whose
/// scopes also forget the values lowered in them).
pub trait Scoped {
    /// The kernel's builder.
    fn builder(&mut self) -> &mut Builder;
    /// Opens a nested scope.
    fn open_scope(&mut self);
    /// Closes the innermost scope and returns its statements.
    fn close_scope(&mut self) -> Vec<Stmt>;
}

impl Scoped for Builder {
    fn builder(&mut self) -> &mut Builder {
        self
    }

    fn open_scope(&mut self) {
        self.open();
    }

    fn close_scope(&mut self) -> Vec<Stmt> {
        self.close()
    }
}

impl Scoped for Lowerer<'_> {
    fn builder(&mut self) -> &mut Builder {
        &mut self.b
    }

    fn open_scope(&mut self) {
        self.open();
    }

    fn close_scope(&mut self) -> Vec<Stmt> {
        self.close()
    }
}

/// The template function `name(args...)`, its body built by `body` from the arguments' values
/// in a scope of its own; `body` returns the function's result and its type, if any.
pub fn function<S: Scoped>(
    s: &mut S,
    name: &'static str,
    args: &[DType],
    body: impl FnOnce(&mut S, &[Val]) -> Result<Option<(Val, DType)>>,
) -> Result<Function> {
    s.open_scope();
    let vals: Vec<Val> = args.iter().map(|&t| s.builder().arg(t)).collect();
    let result = body(s, &vals);
    let stmts = s.close_scope();
    Ok(Function {
        name,
        args: vals.into_iter().zip(args.iter().copied()).collect(),
        body: stmts,
        result: result?,
    })
}
