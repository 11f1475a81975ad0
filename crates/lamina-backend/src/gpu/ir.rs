//! The typed kernel IR: what a kernel computes, as data. A kernel is a flat list of statements
//! over let-bound values (each computed once and named), with loops and conditions as nested
//! blocks, named uniform parameters, and the buffers it binds. `render` is the only place that
//! turns it into WGSL text.

use lamina_graph::DType;
use lamina_graph::op::{BinaryOp, UnaryOp};
use std::collections::HashMap;

/// A value computed once by a `let` statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Val(pub u32);

/// A mutable variable (an accumulator, a loop counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub u32);

/// A literal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lit {
    /// A float (printed so that WGSL reads back exactly these bits).
    F32(f32),
    /// A signed integer.
    I32(i32),
    /// An unsigned integer.
    U32(u32),
    /// A boolean.
    Bool(bool),
}

impl Lit {
    /// The dtype of the literal.
    pub fn dtype(self) -> DType {
        match self {
            Lit::F32(_) => DType::F32,
            Lit::I32(_) => DType::I32,
            Lit::U32(_) => DType::U32,
            Lit::Bool(_) => DType::Bool,
        }
    }

    /// The literal of `dtype` nearest to `v`.
    pub fn of(dtype: DType, v: f64) -> Lit {
        match dtype {
            DType::F32 => Lit::F32(v as f32),
            DType::I32 => Lit::I32(v as i32),
            DType::U32 => Lit::U32(v as u32),
            DType::Bool => Lit::Bool(v != 0.0),
        }
    }
}

/// Values the hardware gives each invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// The invocation's index over the whole dispatch (workgroups folded onto a 2-D grid).
    GlobalIndex,
    /// The workgroup's index over the dispatch.
    WorkgroupIndex,
    /// The invocation's index within its workgroup.
    LocalIndex,
}

/// Unsigned index arithmetic (wrapping, as WGSL's `u32`), used for coordinates and offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a % b`.
    Rem,
    /// `min(a, b)`.
    Min,
    /// `max(a, b)`.
    Max,
    /// `a < b`, a bool.
    Less,
    /// `a >> b`.
    Shr,
}

/// A buffer a kernel binds: a program node's tensor or a scratch buffer of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferRef {
    /// The buffer of a program node.
    Node(usize),
    /// Scratch number `i` of the plan (partial results of a multi-pass kernel).
    Scratch(usize),
}

/// A storage binding of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Which buffer.
    pub buffer: BufferRef,
    /// The element type as computed (bools are stored as `u32` words).
    pub dtype: DType,
    /// Whether the kernel writes it.
    pub writable: bool,
}

/// The right-hand side of a `let`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Lit),
    /// A named uniform parameter (a size, a stride, an offset), by index.
    Param(usize),
    /// A hardware-provided index.
    Builtin(Builtin),
    /// The current value of a variable.
    Read(Var),
    /// Element `index` of binding `binding`.
    Load {
        /// The binding's position in `Kernel::bindings`.
        binding: usize,
        /// The element index.
        index: Val,
    },
    /// Element `index` of workgroup array `array`.
    LoadShared {
        /// The array's position in `Kernel::shared`.
        array: usize,
        /// The element index.
        index: Val,
    },
    /// A unary op on a value of `dtype`.
    Unary(UnaryOp, DType, Val),
    /// A binary op on values of `dtype`.
    Binary(BinaryOp, DType, Val, Val),
    /// Index arithmetic on `u32` values.
    Index(IndexOp, Val, Val),
    /// `cond ? then : otherwise`.
    Select {
        /// The condition.
        cond: Val,
        /// Taken when true.
        then: Val,
        /// Taken when false.
        otherwise: Val,
    },
    /// A conversion with the CPU interpreter's semantics.
    Cast {
        /// The value's dtype.
        from: DType,
        /// The result's dtype.
        to: DType,
        /// The value.
        value: Val,
    },
    /// Reinterprets the bits of a 32-bit value.
    Bitcast {
        /// The result's dtype.
        to: DType,
        /// The value.
        value: Val,
    },
    /// A call of a function of the kernel's template (`Kernel::template`).
    Call {
        /// The function's name.
        function: &'static str,
        /// The arguments.
        args: Vec<Val>,
    },
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `let v: ty = expr;`
    Let {
        /// The value defined.
        val: Val,
        /// Its type.
        ty: DType,
        /// How it is computed.
        expr: Expr,
    },
    /// `var x: ty = init;`
    Var {
        /// The variable.
        var: Var,
        /// Its type.
        ty: DType,
        /// Its first value.
        init: Val,
    },
    /// `x = value;`
    Assign {
        /// The variable.
        var: Var,
        /// Its new value.
        value: Val,
    },
    /// `for (var i = start; i < end; i += step) { body }` with `i` a `u32` variable.
    Loop {
        /// The counter.
        var: Var,
        /// First value.
        start: Val,
        /// Bound (exclusive).
        end: Val,
        /// Increment.
        step: Val,
        /// The body.
        body: Vec<Stmt>,
    },
    /// `if (cond) { body }`.
    If {
        /// The condition.
        cond: Val,
        /// The body.
        body: Vec<Stmt>,
    },
    /// `if (cond) { return; }`: only on workgroup-uniform conditions where barriers follow.
    ReturnIf(Val),
    /// Writes element `index` of binding `binding`.
    Store {
        /// The binding's position in `Kernel::bindings`.
        binding: usize,
        /// The element index.
        index: Val,
        /// The value (of the binding's dtype).
        value: Val,
    },
    /// Writes element `index` of workgroup array `array`.
    StoreShared {
        /// The array's position in `Kernel::shared`.
        array: usize,
        /// The element index.
        index: Val,
        /// The value.
        value: Val,
    },
    /// `workgroupBarrier();`
    Barrier,
}

/// A named `u32` uniform parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// The field name in the kernel's `Info` struct.
    pub name: String,
    /// The value.
    pub value: u32,
}

/// A hand-written WGSL module of `shaders/` that the kernel is built from: its entry point and
/// loops are written by hand and call functions the kernel generates.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The module text (see `lamina_shaders`).
    pub source: &'static str,
    /// The functions the template calls, generated from the IR.
    pub functions: Vec<Function>,
}

/// A generated function that a template calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Its name, as the template calls it.
    pub name: &'static str,
    /// Its arguments: values of the body, with their types.
    pub args: Vec<(Val, DType)>,
    /// Its body.
    pub body: Vec<Stmt>,
    /// The value returned, with its type, if any.
    pub result: Option<(Val, DType)>,
}

/// A kernel: bindings, parameters, workgroup arrays and a body.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// A short description (`elementwise`, `row`, `matmul`, ...).
    pub kind: &'static str,
    /// Threads per workgroup (1-D).
    pub workgroup_size: u32,
    /// Workgroups to dispatch (folded onto a 2-D grid by the runtime).
    pub workgroups: u64,
    /// Named uniform parameters.
    pub params: Vec<Param>,
    /// Storage bindings, in binding order after the uniform (binding 0).
    pub bindings: Vec<Binding>,
    /// Workgroup arrays: element type and length.
    pub shared: Vec<(DType, u32)>,
    /// The entry point's body (empty when a template provides the entry point).
    pub body: Vec<Stmt>,
    /// The hand-written module it is built from, if any.
    pub template: Option<Template>,
    /// Whether the float32 buffers of program nodes hold f16 values (loaded as f32, stored
    /// rounded to f16); scratch buffers stay f32. See [`Kernel::stores_f16`].
    pub f16_storage: bool,
}

impl Kernel {
    /// Whether a binding of this kernel holds f16 values: a float32 buffer of a program node
    /// in a kernel built with f16 storage.
    pub fn stores_f16(&self, b: &Binding) -> bool {
        self.f16_storage && b.dtype == DType::F32 && matches!(b.buffer, BufferRef::Node(_))
    }
}

/// Builds a kernel's statements: fresh values, nested blocks, parameters deduplicated by name
/// and value, bindings deduplicated by buffer.
pub struct Builder {
    kind: &'static str,
    workgroup_size: u32,
    /// Open blocks, innermost last.
    blocks: Vec<Vec<Stmt>>,
    next_val: u32,
    next_var: u32,
    params: Vec<Param>,
    param_index: HashMap<(String, u32), usize>,
    bindings: Vec<Binding>,
    shared: Vec<(DType, u32)>,
    /// Values already computed, per open block: the same expression is bound once per scope.
    memo: Vec<HashMap<String, Val>>,
    /// Types of values.
    types: HashMap<Val, DType>,
    /// Values that are `u32` literals.
    literals: HashMap<Val, u32>,
    /// How many parameters share each base name.
    param_names: HashMap<String, usize>,
}

impl Builder {
    /// A builder for a kernel of `kind` with `workgroup_size` threads per workgroup.
    pub fn new(kind: &'static str, workgroup_size: u32) -> Builder {
        Builder {
            kind,
            workgroup_size,
            blocks: vec![Vec::new()],
            next_val: 0,
            next_var: 0,
            params: Vec::new(),
            param_index: HashMap::new(),
            bindings: Vec::new(),
            shared: Vec::new(),
            memo: vec![HashMap::new()],
            types: HashMap::new(),
            literals: HashMap::new(),
            param_names: HashMap::new(),
        }
    }

    /// Threads per workgroup.
    pub fn workgroup_size(&self) -> u32 {
        self.workgroup_size
    }

    /// The type of a value.
    pub fn ty(&self, v: Val) -> DType {
        self.types.get(&v).copied().unwrap_or(DType::U32)
    }

    /// Binds `expr` to a fresh value (or returns the value already bound to the same pure
    /// expression in an enclosing scope).
    pub fn let_(&mut self, ty: DType, expr: Expr) -> Val {
        let pure = !matches!(
            expr,
            Expr::Read(_) | Expr::Load { .. } | Expr::LoadShared { .. } | Expr::Call { .. }
        );
        let key = format!("{ty:?}:{expr:?}");
        if pure {
            for scope in self.memo.iter().rev() {
                if let Some(&v) = scope.get(&key) {
                    return v;
                }
            }
        }
        let val = Val(self.next_val);
        self.next_val += 1;
        self.types.insert(val, ty);
        if let Expr::Lit(Lit::U32(x)) = expr {
            self.literals.insert(val, x);
        }
        self.push(Stmt::Let { val, ty, expr });
        if pure && let Some(scope) = self.memo.last_mut() {
            scope.insert(key, val);
        }
        val
    }

    /// A fresh value not bound by any statement (a function argument).
    pub fn arg(&mut self, ty: DType) -> Val {
        let val = Val(self.next_val);
        self.next_val += 1;
        self.types.insert(val, ty);
        val
    }

    /// A literal value.
    pub fn lit(&mut self, l: Lit) -> Val {
        self.let_(l.dtype(), Expr::Lit(l))
    }

    /// A `u32` literal.
    pub fn u32(&mut self, v: u32) -> Val {
        self.lit(Lit::U32(v))
    }

    /// Declares a named uniform parameter without reading it (for templates, which read
    /// their parameters by name).
    pub fn declare_param(&mut self, name: &str, value: u32) {
        self.param_slot(name, value);
    }

    /// A named uniform parameter holding `value` (a `u32`; signed values wrap).
    pub fn param(&mut self, name: &str, value: u32) -> Val {
        let index = self.param_slot(name, value);
        self.let_(DType::U32, Expr::Param(index))
    }

    fn param_slot(&mut self, name: &str, value: u32) -> usize {
        let key = (name.to_string(), value);
        match self.param_index.get(&key) {
            Some(&i) => i,
            None => {
                let count = self.param_names.entry(name.to_string()).or_insert(0);
                let field = if *count == 0 {
                    name.to_string()
                } else {
                    format!("{name}_{count}")
                };
                *count += 1;
                self.params.push(Param { name: field, value });
                self.param_index.insert(key, self.params.len() - 1);
                self.params.len() - 1
            }
        }
    }

    /// Index arithmetic `a op b`, folding the obvious identities.
    pub fn index(&mut self, op: IndexOp, a: Val, b: Val) -> Val {
        let lit = |s: &Builder, v: Val| s.literal_u32(v);
        match (op, lit(self, a), lit(self, b)) {
            (IndexOp::Add, Some(0), _) => return b,
            (IndexOp::Add | IndexOp::Sub, _, Some(0)) => return a,
            (IndexOp::Mul, Some(1), _) => return b,
            (IndexOp::Mul | IndexOp::Div, _, Some(1)) => return a,
            (IndexOp::Mul, Some(0), _) | (IndexOp::Mul, _, Some(0)) => return self.u32(0),
            (IndexOp::Add, Some(x), Some(y)) => return self.u32(x.wrapping_add(y)),
            (IndexOp::Mul, Some(x), Some(y)) => return self.u32(x.wrapping_mul(y)),
            _ => {}
        }
        let ty = if op == IndexOp::Less {
            DType::Bool
        } else {
            DType::U32
        };
        self.let_(ty, Expr::Index(op, a, b))
    }

    /// The value of `v` when it is a `u32` literal.
    pub fn literal_u32(&self, v: Val) -> Option<u32> {
        self.literals.get(&v).copied()
    }

    /// A new variable initialised to `init`.
    pub fn var(&mut self, ty: DType, init: Val) -> Var {
        let var = Var(self.next_var);
        self.next_var += 1;
        self.push(Stmt::Var { var, ty, init });
        var
    }

    /// Reads a variable.
    pub fn read(&mut self, var: Var, ty: DType) -> Val {
        self.let_(ty, Expr::Read(var))
    }

    /// Assigns a variable.
    pub fn assign(&mut self, var: Var, value: Val) {
        self.push(Stmt::Assign { var, value });
    }

    /// Adds a statement to the innermost open block.
    pub fn push(&mut self, s: Stmt) {
        if let Some(b) = self.blocks.last_mut() {
            b.push(s);
        }
    }

    /// Opens a nested block (values bound in it are not visible after it closes).
    pub fn open(&mut self) {
        self.blocks.push(Vec::new());
        self.memo.push(HashMap::new());
    }

    /// Closes the innermost block and returns its statements.
    pub fn close(&mut self) -> Vec<Stmt> {
        self.memo.pop();
        self.blocks.pop().unwrap_or_default()
    }

    /// Returns from the kernel where `index >= bound` (the caller makes sure the condition is
    /// uniform over a workgroup where barriers follow).
    pub fn return_unless_below(&mut self, index: Val, bound: Val) {
        let inside = self.index(IndexOp::Less, index, bound);
        let outside = self.let_(DType::Bool, Expr::Unary(UnaryOp::Not, DType::Bool, inside));
        self.push(Stmt::ReturnIf(outside));
    }

    /// Opens the body of a loop: returns its counter and the counter's value in the body.
    pub fn begin_loop(&mut self) -> (Var, Val) {
        let var = Var(self.next_var);
        self.next_var += 1;
        self.open();
        let i = self.let_(DType::U32, Expr::Read(var));
        (var, i)
    }

    /// Closes a loop body opened by `begin_loop`: `for (i = start; i < end; i += step)`.
    pub fn end_loop(&mut self, var: Var, start: Val, end: Val, step: Val) {
        let body = self.close();
        self.push(Stmt::Loop {
            var,
            start,
            end,
            step,
            body,
        });
    }

    /// `for (i = start; i < end; i += step) { body(i) }`.
    pub fn loop_(&mut self, start: Val, end: Val, step: Val, body: impl FnOnce(&mut Builder, Val)) {
        let (var, i) = self.begin_loop();
        body(self, i);
        self.end_loop(var, start, end, step);
    }

    /// `if (cond) { body }`.
    pub fn if_(&mut self, cond: Val, body: impl FnOnce(&mut Builder)) {
        self.open();
        body(self);
        let stmts = self.close();
        self.push(Stmt::If { cond, body: stmts });
    }

    /// The position of a buffer's binding, adding it if new.
    pub fn bind(&mut self, buffer: BufferRef, dtype: DType, writable: bool) -> usize {
        if let Some(i) = self.bindings.iter().position(|b| b.buffer == buffer) {
            self.bindings[i].writable |= writable;
            return i;
        }
        self.bindings.push(Binding {
            buffer,
            dtype,
            writable,
        });
        self.bindings.len() - 1
    }

    /// Loads element `index` of a buffer.
    pub fn load(&mut self, buffer: BufferRef, dtype: DType, index: Val) -> Val {
        let binding = self.bind(buffer, dtype, false);
        self.let_(dtype, Expr::Load { binding, index })
    }

    /// Stores `value` at element `index` of a buffer.
    pub fn store(&mut self, buffer: BufferRef, dtype: DType, index: Val, value: Val) {
        let binding = self.bind(buffer, dtype, true);
        self.push(Stmt::Store {
            binding,
            index,
            value,
        });
    }

    /// A workgroup array of `len` elements of `dtype`.
    pub fn shared(&mut self, dtype: DType, len: u32) -> usize {
        self.shared.push((dtype, len));
        self.shared.len() - 1
    }

    /// The bindings so far.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// The finished kernel, dispatching `workgroups` workgroups.
    pub fn finish(mut self, workgroups: u64, template: Option<Template>) -> Kernel {
        let body = self.blocks.drain(..).next().unwrap_or_default();
        Kernel {
            kind: self.kind,
            workgroup_size: self.workgroup_size,
            workgroups,
            params: self.params,
            bindings: self.bindings,
            shared: self.shared,
            body,
            template,
            f16_storage: false,
        }
    }
}
