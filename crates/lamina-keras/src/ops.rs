//! The `keras.ops` calls Keras 3 records as nodes of a functional graph. Calling `x + y`,
//! `x[:, 1:3]` or `ops.mean(x, axis=1)` on symbolic tensors makes a node whose `class_name` is
//! the operation (`Add`, `GetItem`, `Mean`), whose `config` holds the operation's constructor
//! arguments (`axis`, `keepdims`) and whose call `args` mix tensors with constants (numbers,
//! slices, lists). Each such call is rebuilt with the `Tensor` method that computes it; the
//! table [`KERAS_OPS`] lists them all, and an operation outside it is refused by name.

use super::config::{Produced, keras_ref, resolve};
use lamina_graph::dtype::{DType, ScalarKind};
use lamina_graph::error::{Error, Result};
use lamina_graph::limits::printable;
use lamina_graph::op::{BinaryOp, ReduceOp, UnaryOp};
use lamina_graph::ops::{Axes, Operand, SliceArg, apply_binary};
use lamina_graph::tensor::Tensor;
use lamina_graph::{for_each_binary_op, for_each_unary_op};
use serde_json::{Map, Value};

/// One call of a recorded operation, with its tensors: the rule of a [`KERAS_OPS`] entry reads
/// its constants and tensors from it.
struct Call<'a> {
    class: &'a str,
    config: &'a Value,
    args: &'a [Value],
    tensors: &'a [Tensor],
}

/// A call argument: a tensor or a Python scalar (weakly typed, as in Keras).
#[derive(Clone)]
enum Arg {
    Tensor(Tensor),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Operand for Arg {
    fn to_tensor(&self, like: &Tensor) -> Tensor {
        match self {
            Arg::Tensor(t) => t.clone(),
            Arg::Int(i) => i.to_tensor(like),
            Arg::Float(f) => f.to_tensor(like),
            Arg::Bool(b) => b.to_tensor(like),
        }
    }
    fn weak_scalar(&self) -> Option<(f64, ScalarKind)> {
        match self {
            Arg::Tensor(_) => None,
            Arg::Int(i) => i.weak_scalar(),
            Arg::Float(f) => f.weak_scalar(),
            Arg::Bool(b) => b.weak_scalar(),
        }
    }
}

/// The key Lamina puts in place of a tensor in a recorded call's arguments.
const OPERAND: &str = "__lamina_operand__";

fn bad(detail: impl Into<String>) -> Error {
    Error::Model {
        detail: detail.into(),
    }
}

impl Call<'_> {
    fn arg(&self, i: usize) -> Result<Arg> {
        let v = self.args.get(i).ok_or_else(|| {
            bad(format!(
                "it takes at least {} arguments, given {}",
                i + 1,
                self.args.len()
            ))
        })?;
        self.arg_of(v)
    }

    fn arg_of(&self, v: &Value) -> Result<Arg> {
        if let Some(k) = v.get(OPERAND).and_then(Value::as_u64) {
            return Ok(Arg::Tensor(self.tensors[k as usize].clone()));
        }
        match v {
            Value::Bool(b) => Ok(Arg::Bool(*b)),
            Value::Number(n) => Ok(match n.as_i64() {
                Some(i) => Arg::Int(i),
                None => Arg::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            other => Err(bad(format!(
                "argument {} is not a tensor or a number",
                printable(&other.to_string().chars().take(80).collect::<String>())
            ))),
        }
    }

    fn tensor(&self, i: usize) -> Result<Tensor> {
        match self.arg(i)? {
            Arg::Tensor(t) => Ok(t),
            _ => Err(bad(format!("argument {i} must be a tensor, not a number"))),
        }
    }

    fn x(&self) -> Result<Tensor> {
        self.tensor(0)
    }

    /// The tensors of a list argument (`ops.concatenate([a, b])`).
    fn tensor_list(&self, i: usize) -> Result<Vec<Tensor>> {
        match self.args.get(i) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match self.arg_of(v)? {
                    Arg::Tensor(t) => Ok(t),
                    _ => Err(bad("its list holds a number where a tensor belongs")),
                })
                .collect(),
            _ => Err(bad(format!("argument {i} must be a list of tensors"))),
        }
    }

    fn param(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    fn int(&self, key: &str, default: Option<i64>) -> Result<i64> {
        match self.param(key) {
            None => default.ok_or_else(|| bad(format!("its config lacks '{key}'"))),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| bad(format!("'{key}' is {v}, not an integer"))),
        }
    }

    fn axis(&self, key: &str, default: Option<i64>) -> Result<isize> {
        Ok(self.int(key, default)? as isize)
    }

    fn float(&self, key: &str, default: f64) -> Result<f64> {
        match self.param(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(format!("'{key}' is {v}, not a number"))),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.param(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad(format!("'{key}' is {v}, not true or false"))),
        }
    }

    fn ints(&self, key: &str) -> Result<Vec<i64>> {
        let v = self
            .param(key)
            .ok_or_else(|| bad(format!("its config lacks '{key}'")))?;
        match v {
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_i64()
                        .ok_or_else(|| bad(format!("'{key}' holds {x}, not an integer")))
                })
                .collect(),
            x => Ok(vec![x.as_i64().ok_or_else(|| {
                bad(format!("'{key}' is {x}, not an integer"))
            })?]),
        }
    }

    fn counts(&self, key: &str) -> Result<Vec<usize>> {
        self.ints(key)?
            .into_iter()
            .map(|i| usize::try_from(i).map_err(|_| bad(format!("'{key}' holds {i}"))))
            .collect()
    }

    /// `axis` of a reduction: `None` is every axis.
    fn axes(&self) -> Result<Axes> {
        match self.param("axis") {
            None => Ok(Axes::All),
            Some(_) => Ok(Axes::List(
                self.ints("axis")?.into_iter().map(|a| a as isize).collect(),
            )),
        }
    }

    fn keepdims(&self) -> Result<bool> {
        self.flag("keepdims", false)
    }

    fn dtype(&self, key: &str) -> Result<Option<DType>> {
        match self.param(key) {
            None => Ok(None),
            Some(Value::String(s)) => super::config::dtype_of(s).map(Some),
            Some(v) => Err(bad(format!("'{key}' is {v}, not a dtype name"))),
        }
    }

    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        Ok(self.x()?.unary(op))
    }

    fn binary(&self, op: BinaryOp) -> Result<Tensor> {
        let (a, b) = (self.arg(0)?, self.arg(1)?);
        if self.args.len() > 2 {
            return Err(bad("it takes two arguments"));
        }
        Ok(apply_binary(op, &a, &b))
    }

    /// A reduction with `axis` and `keepdims` from the config: `drop` or `keep` by the flag.
    fn reduce_with(
        &self,
        drop: impl Fn(&Tensor, Axes) -> Tensor,
        keep: impl Fn(&Tensor, Axes) -> Tensor,
    ) -> Result<Tensor> {
        let (x, axes) = (self.x()?, self.axes()?);
        Ok(if self.keepdims()? {
            keep(&x, axes)
        } else {
            drop(&x, axes)
        })
    }

    fn reduce(&self, op: ReduceOp) -> Result<Tensor> {
        if self.param("initial").is_some() {
            return Err(bad("'initial' is not supported"));
        }
        Ok(self.x()?.reduce(op, self.axes()?, self.keepdims()?))
    }

    /// `ops.round(x, decimals)`: half to even at the given decimal place.
    fn round(&self) -> Result<Tensor> {
        let x = self.x()?;
        match self.int("decimals", Some(0))? {
            0 => Ok(x.round()),
            d => {
                let scale = 10f64.powi(i32::try_from(d).map_err(|_| bad("decimals too large"))?);
                Ok(x.multiply(scale).round().divide(scale))
            }
        }
    }

    /// `x[key]`: slices (`__slice__`), indices, `None` (a new axis) and `...`; a tensor key
    /// (gathering by index or mask) is refused.
    fn get_item(&self) -> Result<Tensor> {
        let x = self.x()?;
        let key = self.args.get(1).ok_or_else(|| bad("it lacks its index"))?;
        let entries: Vec<&Value> = match key {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let bound = |v: &Value| -> Result<Option<i64>> {
            match v {
                Value::Null => Ok(None),
                v => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| bad(format!("slice bound {v} is not an integer"))),
            }
        };
        let mut spec = Vec::with_capacity(entries.len());
        for e in entries {
            let class = e.get("class_name").and_then(Value::as_str);
            spec.push(match (class, e) {
                (Some("__slice__"), _) => {
                    let c = e.get("config").unwrap_or(&Value::Null);
                    let field = |k: &str| bound(c.get(k).unwrap_or(&Value::Null));
                    let step = field("step")?.unwrap_or(1);
                    SliceArg::range(field("start")?, field("stop")?, step)
                }
                (Some("__ellipsis__"), _) => SliceArg::Ellipsis,
                (_, Value::Null) => SliceArg::NewAxis,
                (_, Value::Number(n)) => SliceArg::Index(
                    n.as_i64()
                        .ok_or_else(|| bad(format!("index {n} is not an integer")))?,
                ),
                _ if e.get(OPERAND).is_some() => {
                    return Err(bad(
                        "indexing with a tensor (gather or boolean mask) is not supported; \
                         use ops.take",
                    ));
                }
                _ => {
                    return Err(bad(format!(
                        "index entry {} is not a slice, an integer, None or ...",
                        printable(&e.to_string().chars().take(80).collect::<String>())
                    )));
                }
            });
        }
        Ok(x.slice(&spec))
    }

    fn clip(&self) -> Result<Tensor> {
        let x = self.x()?;
        let bound = |key: &str| -> Result<Arg> {
            let v = self
                .param(key)
                .ok_or_else(|| bad(format!("its config lacks '{key}'")))?;
            self.arg_of(v)
        };
        Ok(x.clip(bound("x_min")?, bound("x_max")?))
    }

    fn filled_like(&self, value: f64) -> Result<Tensor> {
        let x = self.x()?;
        Ok(x.full_like(value, self.dtype("dtype")?))
    }

    fn full_like(&self) -> Result<Tensor> {
        let x = self.x()?;
        let value = match self.arg(1)? {
            Arg::Int(i) => i as f64,
            Arg::Float(f) => f,
            Arg::Bool(b) => f64::from(u8::from(b)),
            Arg::Tensor(_) => return Err(bad("a tensor fill value is not supported")),
        };
        Ok(x.full_like(value, self.dtype("dtype")?))
    }

    fn transpose(&self) -> Result<Tensor> {
        let x = self.x()?;
        let perm: Vec<isize> = match self.param("axes") {
            None => (0..x.shape().rank() as isize).rev().collect(),
            Some(_) => self.ints("axes")?.into_iter().map(|a| a as isize).collect(),
        };
        Ok(x.transpose(&perm))
    }

    fn squeeze(&self) -> Result<Tensor> {
        let x = self.x()?;
        match self.param("axis") {
            None => {
                let ones: Vec<isize> = x
                    .shape()
                    .dims()
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.known() == Some(1))
                    .map(|(i, _)| i as isize)
                    .collect();
                Ok(x.squeeze(Axes::List(ones)))
            }
            Some(_) => Ok(x.squeeze(Axes::List(
                self.ints("axis")?.into_iter().map(|a| a as isize).collect(),
            ))),
        }
    }

    fn expand_dims(&self) -> Result<Tensor> {
        let mut x = self.x()?;
        let mut axes = self.ints("axis")?;
        // Several new axes: inserted in increasing order of their place in the result.
        let rank = (x.shape().rank() + axes.len()) as i64;
        for a in axes.iter_mut() {
            if *a < 0 {
                *a += rank;
            }
        }
        axes.sort_unstable();
        for a in axes {
            x = x.expand_dims(a as isize);
        }
        Ok(x)
    }

    /// `ops.flip(x, axis)`: the axes reversed (every axis for `None`).
    fn flip(&self) -> Result<Tensor> {
        let x = self.x()?;
        let rank = x.rank() as i64;
        let axes: Vec<i64> = match self.param("axis") {
            None => (0..rank).collect(),
            Some(_) => self.ints("axis")?,
        };
        let mut spec = vec![SliceArg::range(None, None, 1); x.rank()];
        for a in axes {
            let k = if a < 0 { a + rank } else { a };
            let slot = usize::try_from(k)
                .ok()
                .and_then(|k| spec.get_mut(k))
                .ok_or_else(|| bad(format!("axis {a} is out of range for rank {rank}")))?;
            *slot = SliceArg::step(-1);
        }
        Ok(x.slice(&spec))
    }

    /// `ops.moveaxis(x, source, destination)`.
    fn moveaxis(&self) -> Result<Tensor> {
        let x = self.x()?;
        let rank = x.rank() as i64;
        let norm = |v: Vec<i64>| -> Result<Vec<usize>> {
            v.into_iter()
                .map(|a| {
                    let k = if a < 0 { a + rank } else { a };
                    usize::try_from(k)
                        .ok()
                        .filter(|&k| (k as i64) < rank)
                        .ok_or_else(|| bad(format!("axis {a} is out of range for rank {rank}")))
                })
                .collect()
        };
        let (src, dst) = (
            norm(self.ints("source")?)?,
            norm(self.ints("destination")?)?,
        );
        if src.len() != dst.len() {
            return Err(bad("source and destination differ in length"));
        }
        let mut order: Vec<usize> = (0..x.rank()).filter(|a| !src.contains(a)).collect();
        let mut pairs: Vec<(usize, usize)> = dst.into_iter().zip(src).collect();
        pairs.sort_unstable();
        for (d, s) in pairs {
            if d > order.len() {
                return Err(bad("destination axes out of range"));
            }
            order.insert(d, s);
        }
        let perm: Vec<isize> = order.into_iter().map(|a| a as isize).collect();
        Ok(x.transpose(&perm))
    }

    /// `ops.roll(x, shift, axis)`: elements shifted along an axis, wrapping around (`None`:
    /// over the flattened tensor).
    fn roll(&self) -> Result<Tensor> {
        let x = self.x()?;
        let shape = x.shape();
        let (x, axis) = match self.param("axis") {
            None => (x.reshape(&[-1]), 0usize),
            Some(_) => {
                let a = self.int("axis", None)?;
                let rank = x.rank() as i64;
                let k = if a < 0 { a + rank } else { a };
                if !(0..rank).contains(&k) {
                    return Err(bad(format!("axis {a} is out of range for rank {rank}")));
                }
                (x, k as usize)
            }
        };
        let Some(n) = x.shape().dims()[axis].known() else {
            return Err(bad("the rolled axis must have a known size"));
        };
        if n == 0 {
            return Ok(x);
        }
        let shift = self.int("shift", None)?.rem_euclid(n as i64);
        let part = |from: i64, to: i64| {
            let mut spec = vec![SliceArg::range(None, None, 1); x.rank()];
            spec[axis] = SliceArg::range(Some(from), Some(to), 1);
            x.slice(&spec)
        };
        let out = if shift == 0 {
            x.clone()
        } else {
            let n = n as i64;
            Tensor::concatenate(&[part(n - shift, n), part(0, n - shift)], axis as isize)
        };
        Ok(if self.param("axis").is_none() {
            let dims: Vec<i64> = shape
                .dims()
                .iter()
                .map(|d| d.known().map_or(-1, |k| k as i64))
                .collect();
            out.reshape(&dims)
        } else {
            out
        })
    }

    fn where_(&self) -> Result<Tensor> {
        let cond = self.tensor(0)?.cast(DType::Bool);
        Ok(Tensor::where_(&cond, self.arg(1)?, self.arg(2)?))
    }

    fn matmul(&self) -> Result<Tensor> {
        Ok(self.tensor(0)?.matmul(&self.tensor(1)?))
    }

    fn cast(&self) -> Result<Tensor> {
        let dtype = self
            .dtype("dtype")?
            .ok_or_else(|| bad("its config lacks 'dtype'"))?;
        Ok(self.x()?.cast(dtype))
    }

    fn normalize(&self) -> Result<Tensor> {
        if self.int("order", Some(2))? != 2 {
            return Err(bad("only order=2 is supported"));
        }
        let eps = self.float("epsilon", 1e-7)? as f32;
        Ok(self.x()?.normalize(self.axis("axis", Some(-1))?, eps))
    }
}

/// A rule rebuilding one operation from its call.
type Rule = fn(&Call) -> Result<Tensor>;

/// The table: the rows given, then a row for each Keras class of the elementwise ops'
/// declarations (`for_each_unary_op!` and `for_each_binary_op!` in `op.rs`), which is the op
/// applied to the call's arguments and is named after the op's `Tensor` method.
macro_rules! keras_ops {
    (
        @unary { $($rows:tt)* }
        $(
            $(#[$doc:meta])*
            $op:ident = $name:literal, $kind:ident, keras [$($class:literal),*],
            $(#[$method_doc:meta])* $how:ident $method:ident;
        )*
    ) => {
        for_each_binary_op! {
            keras_ops, @binary {
                $($rows)*
                $($($class => stringify!($method), |c| c.unary(UnaryOp::$op);)*)*
            }
        }
    };
    (
        @binary { $($rows:tt)* }
        $(
            $(#[$doc:meta])*
            $op:ident = $name:literal, $kind:ident, keras [$($class:literal),*],
            $(#[$method_doc:meta])* $how:ident $method:ident;
        )*
    ) => {
        keras_ops! {
            @table
            $($rows)*
            $($($class => stringify!($method), |c| c.binary(BinaryOp::$op);)*)*
        }
    };
    (@table $($class:literal => $method:expr, $rule:expr;)*) => {
        /// Every `keras.ops` operation Lamina rebuilds from a functional graph: Keras's class name
        /// (as recorded in `config.json`) and the `Tensor` method that computes it.
        pub const KERAS_OPS: &[(&str, &str)] = &[$(($class, $method)),*];

        fn rule_of(class: &str) -> Option<Rule> {
            match class {
                $($class => Some($rule),)*
                _ => None,
            }
        }
    };
    ($($rows:tt)*) => {
        for_each_unary_op! { keras_ops, @unary { $($rows)* } }
    };
}

keras_ops! {
    // The elementwise ops that are one primitive (`Add`, `Less`, `Sqrt`, `Isnan`, ...) come
    // from their declarations in `op.rs`.
    // Arithmetic, with Python scalars on either side.
    "Hypot" => "hypot", |c| Ok(c.x()?.hypot(c.arg(1)?));
    "Logaddexp" => "logaddexp", |c| Ok(c.x()?.logaddexp(c.arg(1)?));
    "Matmul" => "matmul", |c| c.matmul();
    // Comparisons and logic.
    "LogicalAnd" => "logical_and", |c| Ok(c.tensor(0)?.cast(DType::Bool).logical_and(c.tensor(1)?.cast(DType::Bool)));
    "LogicalOr" => "logical_or", |c| Ok(c.tensor(0)?.cast(DType::Bool).logical_or(c.tensor(1)?.cast(DType::Bool)));
    "LogicalNot" => "logical_not", |c| Ok(c.x()?.cast(DType::Bool).logical_not());
    "Where" => "Tensor::where_", |c| c.where_();
    // Elementwise functions.
    "Square" => "square", |c| Ok(c.x()?.square());
    "Round" => "round", |c| c.round();
    "Clip" => "clip", |c| c.clip();
    "NanToNum" => "nan_to_num", |c| {
        let inf = |k| c.param(k).and_then(Value::as_f64).map(|v| v as f32);
        Ok(c.x()?.nan_to_num(c.float("nan", 0.0)? as f32, inf("posinf"), inf("neginf")))
    };
    // Activations (keras.ops.nn).
    "Relu" => "relu", |c| Ok(c.x()?.relu());
    "Relu6" => "relu6", |c| Ok(c.x()?.relu6());
    "Softplus" => "softplus", |c| Ok(c.x()?.softplus());
    "Softsign" => "softsign", |c| Ok(c.x()?.softsign());
    "Silu" => "silu", |c| Ok(c.x()?.silu());
    "LogSigmoid" => "log_sigmoid", |c| Ok(c.x()?.log_sigmoid());
    "HardSigmoid" => "hard_sigmoid", |c| Ok(c.x()?.hard_sigmoid());
    "HardSilu" => "hard_silu", |c| Ok(c.x()?.hard_silu());
    "Selu" => "selu", |c| Ok(c.x()?.selu());
    "HardTanh" => "hard_tanh", |c| Ok(c.x()?.hard_tanh());
    "TanhShrink" => "tanh_shrink", |c| Ok(c.x()?.tanh_shrink());
    "SparsePlus" => "sparse_plus", |c| Ok(c.x()?.sparse_plus());
    "SparseSigmoid" => "sparse_sigmoid", |c| Ok(c.x()?.sparse_sigmoid());
    "LeakyRelu" => "leaky_relu", |c| Ok(c.x()?.leaky_relu(c.float("negative_slope", 0.2)? as f32));
    "Elu" => "elu", |c| Ok(c.x()?.elu(c.float("alpha", 1.0)? as f32));
    "Celu" => "celu", |c| Ok(c.x()?.celu(c.float("alpha", 1.0)? as f32));
    "Gelu" => "gelu_with", |c| Ok(c.x()?.gelu_with(c.flag("approximate", true)?));
    "Glu" => "glu", |c| Ok(c.x()?.glu(c.axis("axis", Some(-1))?));
    "SoftShrink" => "soft_shrink", |c| Ok(c.x()?.soft_shrink(c.float("threshold", 0.5)? as f32));
    "HardShrink" => "hard_shrink", |c| Ok(c.x()?.hard_shrink(c.float("threshold", 0.5)? as f32));
    "Squareplus" => "squareplus", |c| Ok(c.x()?.squareplus(c.float("b", 4.0)? as f32));
    "Softmax" => "softmax", |c| Ok(c.x()?.softmax(c.axis("axis", Some(-1))?));
    "LogSoftmax" => "log_softmax", |c| Ok(c.x()?.log_softmax(c.axis("axis", Some(-1))?));
    "Normalize" => "normalize", |c| c.normalize();
    // Reductions.
    "Sum" => "sum", |c| c.reduce(ReduceOp::Sum);
    "Mean" => "mean", |c| c.reduce(ReduceOp::Mean);
    "Max" => "max", |c| c.reduce(ReduceOp::Max);
    "Amax" => "max", |c| c.reduce(ReduceOp::Max);
    "Min" => "min", |c| c.reduce(ReduceOp::Min);
    "Amin" => "min", |c| c.reduce(ReduceOp::Min);
    "Prod" => "prod", |c| c.reduce(ReduceOp::Prod);
    "Any" => "any", |c| c.reduce_with(|x, a| x.any(a), |x, a| x.any_keepdims(a));
    "All" => "all", |c| c.reduce_with(|x, a| x.all(a), |x, a| x.all_keepdims(a));
    "Var" => "var", |c| c.reduce_with(|x, a| x.var(a), |x, a| x.var_keepdims(a));
    "Std" => "std", |c| c.reduce_with(|x, a| x.std(a), |x, a| x.std_keepdims(a));
    "Logsumexp" => "logsumexp", |c| c.reduce_with(|x, a| x.logsumexp(a), |x, a| x.logsumexp_keepdims(a));
    "Argmax" => "argmax", |c| {
        let axis = c.axis("axis", None)?;
        c.reduce_with(|x, _| x.argmax(axis), |x, _| x.argmax_keepdims(axis))
    };
    "Argmin" => "argmin", |c| {
        let axis = c.axis("axis", None)?;
        c.reduce_with(|x, _| x.argmin(axis), |x, _| x.argmin_keepdims(axis))
    };
    "Cumsum" => "cumsum", |c| Ok(c.x()?.cumsum(c.axis("axis", None)?));
    "Cumprod" => "cumprod", |c| Ok(c.x()?.cumprod(c.axis("axis", None)?));
    // Shapes and movement.
    "GetItem" => "slice", |c| c.get_item();
    "ExpandDims" => "expand_dims", |c| c.expand_dims();
    "Squeeze" => "squeeze", |c| c.squeeze();
    "Reshape" => "reshape", |c| Ok(c.x()?.reshape(&c.ints("newshape")?));
    "Transpose" => "transpose", |c| c.transpose();
    "Swapaxes" => "swapaxes", |c| Ok(c.x()?.swapaxes(c.axis("axis1", None)?, c.axis("axis2", None)?));
    "Concatenate" => "Tensor::concatenate", |c| Ok(Tensor::concatenate(&c.tensor_list(0)?, c.axis("axis", Some(0))?));
    "Stack" => "Tensor::stack", |c| Ok(Tensor::stack(&c.tensor_list(0)?, c.axis("axis", Some(0))?));
    "Tile" => "tile", |c| Ok(c.x()?.tile(&c.counts("repeats")?));
    "Repeat" => "repeat", |c| {
        let axis = c.param("axis").map(|_| c.axis("axis", None)).transpose()?;
        match c.counts("repeats")?.as_slice() {
            [n] => Ok(c.x()?.repeat(*n, axis)),
            counts => Ok(c.x()?.repeat_each(counts, axis)),
        }
    };
    "BroadcastTo" => "broadcast_to", |c| Ok(c.x()?.broadcast_to(&c.counts("shape")?));
    "Tril" => "tril", |c| Ok(c.x()?.tril(c.int("k", Some(0))?));
    "Triu" => "triu", |c| Ok(c.x()?.triu(c.int("k", Some(0))?));
    "Take" => "take", |c| Ok(c.x()?.take(&c.tensor(1)?, c.axis("axis", None)?));
    "Flip" => "slice (step -1)", |c| c.flip();
    "Moveaxis" => "transpose", |c| c.moveaxis();
    "Roll" => "Tensor::concatenate of slices", |c| c.roll();
    "Ravel" => "reshape([-1])", |c| Ok(c.x()?.reshape(&[-1]));
    "Average" => "mean", |c| {
        if c.args.len() > 1 && !c.args[1].is_null() {
            return Err(bad("weights are not supported"));
        }
        Ok(c.x()?.mean(c.axes()?))
    };
    "Ptp" => "max - min", |c| {
        let x = c.x()?;
        let (axes, keep) = (c.axes()?, c.keepdims()?);
        Ok(x.reduce(ReduceOp::Max, axes.clone(), keep).subtract(x.reduce(ReduceOp::Min, axes, keep)))
    };
    "Outer" => "reshape and multiply", |c| {
        let (a, b) = (c.tensor(0)?.reshape(&[-1, 1]), c.tensor(1)?.reshape(&[1, -1]));
        Ok(a.multiply(b))
    };
    "Dot" => "dot", |c| Ok(c.tensor(0)?.dot(&c.tensor(1)?));
    "Exp2" => "pow(2, x)", |c| {
        let x = c.x()?.cast(DType::F32);
        Ok(Tensor::scalar(2.0).pow(x))
    };
    "Fabs" => "abs", |c| Ok(c.x()?.cast(DType::F32).abs());
    "Trunc" => "sign * floor(abs)", |c| {
        let x = c.x()?;
        if x.dtype() != DType::F32 {
            return Ok(x);
        }
        Ok(x.sign().multiply(x.abs().floor()))
    };
    "OnesLike" => "ones_like", |c| c.filled_like(1.0);
    "ZerosLike" => "zeros_like", |c| c.filled_like(0.0);
    "FullLike" => "full_like", |c| c.full_like();
    "Cast" => "cast", |c| c.cast();
}

/// Whether Lamina rebuilds the `keras.ops` operation `class`.
pub(super) fn is_supported(class: &str) -> bool {
    rule_of(class).is_some()
}

/// A recorded `keras.ops` call without its tensors: the operation, its constructor config and
/// its call arguments with each tensor replaced by its place among the operands. It becomes the
/// function of a Lambda layer, so that the imported model holds the op as a layer call that
/// saves as an expression graph; calls that compute the same share one.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RecordedOp {
    class: String,
    name: String,
    config: Value,
    args: Vec<Value>,
}

/// Replaces every Keras tensor in `v` by an operand placeholder, collecting the tensors; `None`
/// while one of them is not made yet.
fn take_tensors(
    v: &Value,
    produced: &Produced,
    tensors: &mut Vec<Tensor>,
) -> Result<Option<Value>> {
    if keras_ref(v).is_some() {
        let mut one = Vec::new();
        if resolve(v, produced, &mut one)?.is_none() {
            return Ok(None);
        }
        let mut placeholder = Map::new();
        placeholder.insert(OPERAND.into(), Value::from(tensors.len()));
        tensors.extend(one);
        return Ok(Some(Value::Object(placeholder)));
    }
    match v {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match take_tensors(i, produced, tensors)? {
                    Some(x) => out.push(x),
                    None => return Ok(None),
                }
            }
            Ok(Some(Value::Array(out)))
        }
        other => Ok(Some(other.clone())),
    }
}

impl RecordedOp {
    /// Reads a call of operation `class` (named `name`, config `config`) from its node: the op
    /// and its tensor operands, or `None` while an operand is not made yet. Keyword arguments
    /// of the call are taken as config values.
    pub(super) fn read(
        class: &str,
        name: &str,
        config: &Value,
        node: &Value,
        produced: &Produced,
    ) -> Result<Option<(RecordedOp, Vec<Tensor>)>> {
        let mut tensors = Vec::new();
        let mut args = Vec::new();
        for a in node
            .get("args")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match take_tensors(a, produced, &mut tensors)? {
                Some(v) => args.push(v),
                None => return Ok(None),
            }
        }
        let mut config = match config {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        config.remove("name");
        if let Some(Value::Object(kwargs)) = node.get("kwargs") {
            for (k, v) in kwargs {
                if !refs_in(v) {
                    config.insert(k.clone(), v.clone());
                    continue;
                }
                return Err(bad(format!(
                    "operation '{}' ({}): the tensor keyword argument '{}' is not supported",
                    printable(name),
                    printable(class),
                    printable(k)
                )));
            }
        }
        let op = RecordedOp {
            class: class.to_string(),
            name: name.to_string(),
            config: Value::Object(config),
            args,
        };
        Ok(Some((op, tensors)))
    }

    /// The op on its operands; an error names the operation and its operands' shapes.
    pub(super) fn apply(&self, tensors: &[Tensor]) -> Tensor {
        let Some(rule) = rule_of(&self.class) else {
            return Tensor::invalid(bad(format!(
                "operation {} is not supported",
                printable(&self.class)
            )));
        };
        let call = Call {
            class: &self.class,
            config: &self.config,
            args: &self.args,
            tensors,
        };
        if let Some(e) = tensors.iter().find_map(|t| t.error()) {
            return Tensor::invalid(e.clone());
        }
        let out = rule(&call).and_then(|t| match t.error() {
            Some(e) => Err(e.clone()),
            None => Ok(t),
        });
        out.unwrap_or_else(|e| {
            let shapes: Vec<String> = tensors.iter().map(|t| t.shape().to_string()).collect();
            let detail = match e {
                Error::Model { detail } => detail,
                other => other.to_string(),
            };
            Tensor::invalid(bad(format!(
                "operation '{}' ({}) on tensors of shapes [{}]: {detail}",
                printable(&self.name),
                call.class,
                shapes.join(", ")
            )))
        })
    }
}

fn refs_in(v: &Value) -> bool {
    keras_ref(v).is_some() || v.as_array().is_some_and(|a| a.iter().any(refs_in))
}
