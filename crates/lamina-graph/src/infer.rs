//! Shape and dtype inference of the primitive ops. The same rules run when a graph is built
//! (with symbolic batch dims) and when it is specialised for concrete input shapes.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::op::{BinaryOp, Op, UnaryKind, UnaryOp};
use crate::shape::{Dim, Shape, shapes_string};

/// The shape and dtype of a node's output.
pub type TypedShape = (Shape, DType);

fn incompatible(op: &str, shapes: &[&Shape], detail: impl Into<String>) -> Error {
    Error::IncompatibleShapes {
        op: op.to_string(),
        shapes: shapes_string(shapes),
        detail: detail.into(),
    }
}

/// Broadcasts shapes with NumPy's rules: align on the right, size-1 dims stretch.
pub fn broadcast_shapes(op: &str, shapes: &[&Shape]) -> Result<Shape> {
    let rank = shapes.iter().map(|s| s.rank()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); rank];
    for s in shapes {
        let off = rank - s.rank();
        for (i, &d) in s.dims().iter().enumerate() {
            let o = &mut out[off + i];
            *o = match (*o, d) {
                (Dim::Known(a), Dim::Known(b)) if a == b => Dim::Known(a),
                (Dim::Known(1), x) | (x, Dim::Known(1)) => x,
                (Dim::Dynamic, Dim::Dynamic) => Dim::Dynamic,
                (Dim::Known(n), Dim::Dynamic) | (Dim::Dynamic, Dim::Known(n)) => Dim::Known(n),
                (Dim::Known(a), Dim::Known(b)) => {
                    return Err(incompatible(
                        op,
                        shapes,
                        format!(
                            "cannot broadcast: dimension {} is {a} in one and {b} in the other",
                            off + i
                        ),
                    ));
                }
            };
        }
    }
    Ok(Shape::new(out))
}

fn float_only(op: &str, dtype: DType) -> Result<()> {
    if dtype != DType::F32 {
        return Err(Error::DType {
            op: op.to_string(),
            detail: format!("expects float32 input, got {dtype}"),
        });
    }
    Ok(())
}

fn numeric_only(op: &str, dtype: DType) -> Result<()> {
    if !dtype.is_numeric() {
        return Err(Error::DType {
            op: op.to_string(),
            detail: format!("expects a numeric input, got {dtype}; cast it first"),
        });
    }
    Ok(())
}

/// Infers the output of a compute op from its inputs. Leaf ops (`Input`, `Constant`,
/// `Variable`) carry their own shape and are not handled here. Every size is computed with
/// checked arithmetic, and a result past `MAX_RANK` axes or `MAX_ELEMENTS` elements is an
/// error naming the op and the input shapes (see `crate::limits`).
pub fn infer(op: &Op, inputs: &[TypedShape]) -> Result<TypedShape> {
    let out = infer_unchecked(op, inputs)?;
    let shapes: Vec<&Shape> = inputs.iter().map(|(s, _)| s).collect();
    crate::limits::check_shape(&op.name(), &shapes, &out.0)?;
    Ok(out)
}

/// Infers the output of compute op `op` from its inputs, without the limits `infer` checks.
fn infer_unchecked(op: &Op, inputs: &[TypedShape]) -> Result<TypedShape> {
    let name = op.name();
    match op {
        Op::Input { .. } | Op::Constant(_) | Op::Variable(_) => Err(Error::Model {
            detail: format!("op {name} is a leaf and has no inputs to infer from"),
        }),
        Op::Unary { func: u } => infer_unary(&name, *u, inputs),
        Op::Binary { func: b } => infer_binary(&name, *b, inputs),
        Op::Where => infer_where(&name, inputs),
        Op::Reduce {
            func: r,
            axes,
            keepdims,
        } => infer_reduce(&name, *r, axes, *keepdims, inputs),
        Op::ArgReduce { axis, keepdims, .. } => infer_arg_reduce(&name, *axis, *keepdims, inputs),
        Op::Scan { axis, .. } => {
            arity(&name, inputs, 1)?;
            let (s, d) = &inputs[0];
            numeric_only(&name, *d)?;
            if *axis >= s.rank() {
                return Err(axis_error(&name, *axis as isize, s));
            }
            Ok((s.clone(), *d))
        }
        Op::Reshape { target } => {
            arity(&name, inputs, 1)?;
            let (s, d) = &inputs[0];
            Ok((reshape_shape(s, target)?, *d))
        }
        Op::Permute { perm } => infer_permute(&name, perm, inputs),
        Op::BroadcastTo { shape } => infer_broadcast_to(&name, shape, inputs),
        Op::Slice { axes } => infer_slice(&name, axes, inputs),
        Op::ExpandDims { axis } => {
            arity(&name, inputs, 1)?;
            let (s, d) = &inputs[0];
            if *axis > s.rank() {
                return Err(axis_error(&name, *axis as isize, s));
            }
            let mut out: Vec<Dim> = s.dims().to_vec();
            out.insert(*axis, Dim::Known(1));
            Ok((Shape::new(out), *d))
        }
        Op::Squeeze { axes } => infer_squeeze(&name, axes, inputs),
        Op::Gather { axis } => infer_gather(&name, *axis, inputs),
        Op::Concat { axis } => infer_concat(&name, *axis, inputs),
        Op::MatMul => infer_matmul(&name, inputs),
        Op::Cast { dtype: to } => {
            arity(&name, inputs, 1)?;
            Ok((inputs[0].0.clone(), *to))
        }
        Op::Conv { spec } => infer_conv(&name, spec, inputs),
        Op::Recurrence { spec, output } => crate::ops::infer_recurrence(spec, *output, inputs),
    }
}

/// Refuses an op given other than `want` inputs.
fn arity(name: &str, inputs: &[TypedShape], want: usize) -> Result<()> {
    let n = inputs.len();
    if n != want {
        return Err(Error::Model {
            detail: format!("op {name} takes {want} inputs, got {n}"),
        });
    }
    Ok(())
}

/// A unary elementwise op: the input's shape; `bool` for a test, else the input's dtype.
fn infer_unary(name: &str, u: UnaryOp, inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    match u.kind() {
        UnaryKind::Logical => {
            if *d != DType::Bool {
                return Err(Error::DType {
                    op: name.to_string(),
                    detail: format!("expects bool input, got {d}"),
                });
            }
        }
        UnaryKind::Numeric => numeric_only(name, *d)?,
        UnaryKind::Float | UnaryKind::FloatTest => float_only(name, *d)?,
    }
    let d = if u.is_test() { DType::Bool } else { *d };
    Ok((s.clone(), d))
}

/// A binary elementwise op: the inputs broadcast, of one fitting dtype; `bool` if comparing.
fn infer_binary(name: &str, b: BinaryOp, inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 2)?;
    let (sa, da) = &inputs[0];
    let (sb, db) = &inputs[1];
    if da != db {
        return Err(Error::DType {
            op: name.to_string(),
            detail: format!(
                "inputs have different dtypes {da} and {db} (shapes {sa} and {sb}); cast one"
            ),
        });
    }
    if b.is_logical() && *da != DType::Bool {
        return Err(Error::DType {
            op: name.to_string(),
            detail: format!("expects bool inputs, got {da}"),
        });
    }
    if b.is_bitwise() {
        let shift = matches!(b, BinaryOp::LeftShift | BinaryOp::RightShift);
        if !matches!(da, DType::I32 | DType::U32) && (shift || *da != DType::Bool) {
            return Err(Error::DType {
                op: name.to_string(),
                detail: format!(
                    "expects integer{} inputs, got {da}",
                    if shift { "" } else { " or bool" }
                ),
            });
        }
    } else if !b.is_logical() && !matches!(b, BinaryOp::Equal | BinaryOp::NotEqual) {
        numeric_only(name, *da)?;
    }
    if matches!(b, BinaryOp::Pow | BinaryOp::Atan2) {
        float_only(name, *da)?;
    }
    let s = broadcast_shapes(name, &[sa, sb])?;
    let d = if b.is_comparison() { DType::Bool } else { *da };
    Ok((s, d))
}

/// `where(cond, a, b)`: the three broadcast together, with the branches' dtype.
fn infer_where(name: &str, inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 3)?;
    let (sc, dc) = &inputs[0];
    let (sa, da) = &inputs[1];
    let (sb, db) = &inputs[2];
    if *dc != DType::Bool {
        return Err(Error::DType {
            op: name.to_string(),
            detail: format!("condition must be bool, got {dc}"),
        });
    }
    if da != db {
        return Err(Error::DType {
            op: name.to_string(),
            detail: format!("branches have different dtypes {da} and {db}"),
        });
    }
    Ok((broadcast_shapes(name, &[sc, sa, sb])?, *da))
}

/// A reduction over sorted, distinct `axes`: the input without them (or with them as size 1).
fn infer_reduce(
    name: &str,
    r: crate::op::ReduceOp,
    axes: &[usize],
    keepdims: bool,
    inputs: &[TypedShape],
) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    numeric_only(name, *d)?;
    if r == crate::op::ReduceOp::Mean {
        float_only(name, *d)?;
    }
    for &a in axes {
        if a >= s.rank() {
            return Err(axis_error(name, a as isize, s));
        }
    }
    if !axes.windows(2).all(|w| w[0] < w[1]) {
        return Err(incompatible(
            name,
            &[s],
            format!("axes {axes:?} are not sorted and distinct"),
        ));
    }
    let mut out = Vec::new();
    for (i, &dim) in s.dims().iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                out.push(Dim::Known(1));
            }
        } else {
            out.push(dim);
        }
    }
    Ok((Shape::new(out), *d))
}

/// `argmax`/`argmin` along `axis`: the input without it (or with it as size 1), as `int32`.
fn infer_arg_reduce(
    name: &str,
    axis: usize,
    keepdims: bool,
    inputs: &[TypedShape],
) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    numeric_only(name, *d)?;
    if axis >= s.rank() {
        return Err(axis_error(name, axis as isize, s));
    }
    let mut out: Vec<Dim> = s.dims().to_vec();
    if keepdims {
        out[axis] = Dim::Known(1);
    } else {
        out.remove(axis);
    }
    Ok((Shape::new(out), DType::I32))
}

/// A permutation of the axes: the input's dims reordered, after checking `perm` is one.
fn infer_permute(name: &str, perm: &[usize], inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    let mut seen = vec![false; s.rank()];
    if perm.len() != s.rank() {
        return Err(incompatible(
            name,
            &[s],
            format!(
                "permutation {perm:?} has {} axes, the tensor {}",
                perm.len(),
                s.rank()
            ),
        ));
    }
    for &p in perm {
        if p >= s.rank() || seen[p] {
            return Err(incompatible(
                name,
                &[s],
                format!("{perm:?} is not a permutation of the axes"),
            ));
        }
        seen[p] = true;
    }
    Ok((Shape::new(perm.iter().map(|&p| s.dims()[p])), *d))
}

/// A broadcast to `shape`, which the input must reach without growing it.
fn infer_broadcast_to(name: &str, shape: &[usize], inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    let target = Shape::known(shape);
    let b = broadcast_shapes(name, &[s, &target])?;
    if b != target {
        return Err(incompatible(
            name,
            &[s, &target],
            "the input does not broadcast to the target without growing it",
        ));
    }
    Ok((target, *d))
}

/// A strided slice, one per axis: each axis's count of selected elements, none of them 0.
fn infer_slice(
    name: &str,
    axes: &[crate::op::AxisSlice],
    inputs: &[TypedShape],
) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    if axes.len() != s.rank() {
        return Err(incompatible(
            name,
            &[s],
            format!("{} slices given for rank {}", axes.len(), s.rank()),
        ));
    }
    let mut out = Vec::with_capacity(s.rank());
    for (i, (sl, &dim)) in axes.iter().zip(s.dims()).enumerate() {
        if sl.step == 0 {
            return Err(Error::OutOfBounds {
                op: name.to_string(),
                detail: "slice step 0".into(),
                axis: i,
                size: dim.known().unwrap_or(0),
                shape: s.to_string(),
            });
        }
        out.push(match dim {
            Dim::Dynamic if sl.is_single_index() => Dim::Known(1),
            Dim::Dynamic => Dim::Dynamic,
            Dim::Known(size) => {
                let (_, count, _) = sl.resolve(size);
                if count == 0 {
                    return Err(Error::OutOfBounds {
                        op: name.to_string(),
                        detail: format!("slice {sl} selects nothing"),
                        axis: i,
                        size,
                        shape: s.to_string(),
                    });
                }
                Dim::Known(count)
            }
        });
    }
    Ok((Shape::new(out), *d))
}

/// A squeeze of sorted, distinct `axes`, each of which must have size 1.
fn infer_squeeze(name: &str, axes: &[usize], inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 1)?;
    let (s, d) = &inputs[0];
    if !axes.windows(2).all(|w| w[0] < w[1]) {
        return Err(incompatible(
            name,
            &[s],
            format!("axes {axes:?} are not sorted and distinct"),
        ));
    }
    for &a in axes {
        match s.dims().get(a) {
            None => return Err(axis_error(name, a as isize, s)),
            Some(Dim::Known(1)) => {}
            Some(other) => {
                return Err(incompatible(
                    name,
                    &[s],
                    format!("axis {a} has size {other}, not 1"),
                ));
            }
        }
    }
    let out = s
        .dims()
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d);
    Ok((Shape::new(out), *d))
}

/// `take` along `axis`: `params[..axis] + indices + params[axis + 1..]`, with integer indices.
fn infer_gather(name: &str, axis: usize, inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 2)?;
    let (params, d) = &inputs[0];
    let (indices, id) = &inputs[1];
    if axis >= params.rank() {
        return Err(axis_error(name, axis as isize, params));
    }
    if !matches!(id, DType::I32 | DType::U32) {
        return Err(Error::DType {
            op: name.to_string(),
            detail: format!("indices must be int32 or uint32, got {id}; cast them first"),
        });
    }
    let dims = params.dims()[..axis]
        .iter()
        .chain(indices.dims())
        .chain(&params.dims()[axis + 1..])
        .copied();
    Ok((Shape::new(dims), *d))
}

/// A join along `axis` of inputs of one dtype and rank: the sizes along the axis add up.
fn infer_concat(name: &str, axis: usize, inputs: &[TypedShape]) -> Result<TypedShape> {
    if inputs.is_empty() {
        return Err(Error::Model {
            detail: "concatenate needs at least one input".into(),
        });
    }
    let shapes: Vec<&Shape> = inputs.iter().map(|(s, _)| s).collect();
    let (first, d0) = &inputs[0];
    if axis >= first.rank() {
        return Err(axis_error(name, axis as isize, first));
    }
    let mut out: Vec<Dim> = first.dims().to_vec();
    let mut along = Vec::with_capacity(inputs.len());
    for (s, d) in inputs {
        if d != d0 {
            return Err(Error::DType {
                op: name.to_string(),
                detail: format!("inputs have different dtypes {d0} and {d}"),
            });
        }
        if s.rank() != first.rank() {
            return Err(incompatible(name, &shapes, "inputs have different ranks"));
        }
        for (i, (&a, &b)) in s.dims().iter().zip(first.dims()).enumerate() {
            if i == axis {
                along.push(a);
                continue;
            }
            match (a, b) {
                (Dim::Known(x), Dim::Known(y)) if x != y => {
                    return Err(incompatible(
                        name,
                        &shapes,
                        format!("dimension {i} differs ({x} vs {y}) off the axis {axis}"),
                    ));
                }
                (Dim::Known(x), Dim::Dynamic) => out[i] = Dim::Known(x),
                _ => {}
            }
        }
    }
    let total = crate::limits::checked_dim_sum(name, &shapes, &along)?;
    out[axis] = total.map_or(Dim::Dynamic, Dim::Known);
    Ok((Shape::new(out), *d0))
}

/// A batched matrix product: the batch dims broadcast, then `(rows of a, columns of b)`.
fn infer_matmul(name: &str, inputs: &[TypedShape]) -> Result<TypedShape> {
    arity(name, inputs, 2)?;
    let (sa, da) = &inputs[0];
    let (sb, db) = &inputs[1];
    if da != db {
        return Err(Error::DType {
            op: name.to_string(),
            detail: format!("inputs have different dtypes {da} and {db}"),
        });
    }
    float_only(name, *da)?;
    if sa.rank() < 2 || sb.rank() < 2 {
        return Err(incompatible(
            name,
            &[sa, sb],
            "both inputs need rank 2 or more",
        ));
    }
    let (ra, rb) = (sa.rank(), sb.rank());
    let k_a = sa.dims()[ra - 1];
    let k_b = sb.dims()[rb - 2];
    if let (Dim::Known(x), Dim::Known(y)) = (k_a, k_b)
        && x != y
    {
        return Err(incompatible(
            name,
            &[sa, sb],
            format!("inner dimensions differ: {x} vs {y}"),
        ));
    }
    let batch_a = Shape::new(sa.dims()[..ra - 2].iter().copied());
    let batch_b = Shape::new(sb.dims()[..rb - 2].iter().copied());
    let batch = broadcast_shapes(name, &[&batch_a, &batch_b])
        .map_err(|_| incompatible(name, &[sa, sb], "batch dimensions do not broadcast"))?;
    let mut out: Vec<Dim> = batch.dims().to_vec();
    out.push(sa.dims()[ra - 2]);
    out.push(sb.dims()[rb - 1]);
    Ok((Shape::new(out), *da))
}

/// The output of a convolution: `(batch, spatial'..., out)` from channels-last `x` and a
/// kernel `(k..., in / groups, out)`, with every size checked.
fn infer_conv(name: &str, spec: &crate::op::ConvSpec, inputs: &[TypedShape]) -> Result<TypedShape> {
    if !(2..=3).contains(&inputs.len()) {
        return Err(Error::Inputs {
            detail: format!("{name} takes 2 or 3 inputs, got {}", inputs.len()),
        });
    }
    let (sx, dx) = &inputs[0];
    let (sk, dk) = &inputs[1];
    let all: Vec<&Shape> = inputs.iter().map(|(s, _)| s).collect();
    for (_, d) in inputs {
        float_only(name, *d)?;
    }
    let _ = (dx, dk);
    let r = spec.rank();
    let bad = |detail: String| Err(incompatible(name, &all, detail));
    if !(1..=2).contains(&r)
        || spec.dilation.len() != r
        || spec.input_dilation.len() != r
        || spec.padding.len() != r
    {
        return bad(
            "the convolution's strides, dilations and padding must cover the same spatial axes"
                .into(),
        );
    }
    if spec
        .strides
        .iter()
        .chain(&spec.dilation)
        .chain(&spec.input_dilation)
        .any(|&v| v == 0)
    {
        return bad("strides and dilation rates must be at least 1".into());
    }
    if spec.groups == 0 {
        return bad("groups must be at least 1".into());
    }
    if sx.rank() != r + 2 || sk.rank() != r + 2 {
        return bad(format!(
            "a convolution over {r} spatial axes takes an input of rank {} and a kernel of rank {}",
            r + 2,
            r + 2
        ));
    }
    let known = |d: Dim, what: &str| match d {
        Dim::Known(n) => Ok(n),
        Dim::Dynamic => Err(incompatible(
            name,
            &all,
            format!("the {what} must be known"),
        )),
    };
    let cin = known(sx.dims()[r + 1], "number of input channels")?;
    let cig = known(sk.dims()[r], "kernel's input channels")?;
    let cout = known(sk.dims()[r + 1], "kernel's output channels")?;
    if !cin.is_multiple_of(spec.groups) || !cout.is_multiple_of(spec.groups) {
        return bad(format!(
            "groups ({}) must divide the input channels ({cin}) and the output channels ({cout})",
            spec.groups
        ));
    }
    if cig * spec.groups != cin {
        return bad(format!(
            "the kernel takes {cig} input channels per group, the input has {cin} in {} groups",
            spec.groups
        ));
    }
    if let Some((sb, _)) = inputs.get(2)
        && (sb.rank() != 1 || sb.dims()[0] != Dim::Known(cout))
    {
        return bad(format!("the bias must have shape ({cout},)"));
    }
    let mut out = vec![sx.dims()[0]];
    for d in 0..r {
        let k = known(sk.dims()[d], "kernel size")?;
        match sx.dims()[d + 1] {
            Dim::Dynamic => out.push(Dim::Dynamic),
            Dim::Known(n) => match spec.output_len(d, n, k) {
                Some(o) => out.push(Dim::Known(o)),
                None => {
                    return bad(format!(
                        "spatial axis {d}: the kernel ({k}, dilation {}) is larger than the padded input ({n}, padding {:?})",
                        spec.dilation[d], spec.padding[d]
                    ));
                }
            },
        }
    }
    out.push(Dim::Known(cout));
    Ok((Shape::new(out), DType::F32))
}

/// The error for an axis outside a tensor's rank.
pub fn axis_error(op: &str, axis: isize, shape: &Shape) -> Error {
    Error::AxisOutOfRange {
        op: op.to_string(),
        axis,
        rank: shape.rank(),
        shape: shape.to_string(),
    }
}

/// Normalises a possibly negative axis against a rank.
pub fn normalize_axis(op: &str, axis: isize, shape: &Shape) -> Result<usize> {
    normalize_axis_rank(op, axis, shape.rank(), shape)
}

/// Normalises a possibly negative axis against an explicit rank (for `expand_dims`).
pub fn normalize_axis_rank(op: &str, axis: isize, rank: usize, shape: &Shape) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(axis_error(op, axis, shape));
    }
    Ok(a as usize)
}

fn reshape_shape(s: &Shape, target: &[i64]) -> Result<Shape> {
    let op = "reshape";
    let tshape = format!("{target:?}");
    let err = |detail: String| Error::IncompatibleShapes {
        op: op.into(),
        shapes: format!("{s} to {tshape}"),
        detail,
    };
    // Entries of -2 and below name a dimension of the input (`-2 - axis`), known once the
    // input's shape is: they become that size, or stay unknown until specialisation.
    let mut dynamic_refs = vec![false; target.len()];
    let mut resolved = Vec::with_capacity(target.len());
    for (i, &t) in target.iter().enumerate() {
        if t > -2 {
            resolved.push(t);
            continue;
        }
        let axis = usize::try_from(-(t + 2)).unwrap_or(usize::MAX);
        match s.dims().get(axis) {
            Some(Dim::Known(n)) => resolved.push(*n as i64),
            Some(Dim::Dynamic) => {
                dynamic_refs[i] = true;
                resolved.push(1);
            }
            None => {
                return Err(err(format!(
                    "dimension {i} refers to axis {axis} of the input, which has {} axes",
                    s.rank()
                )));
            }
        }
    }
    let target = &resolved[..];
    let infer_at: Vec<usize> = target
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == -1)
        .map(|(i, _)| i)
        .collect();
    if infer_at.len() > 1 {
        return Err(err("at most one dimension may be -1".into()));
    }
    if let Some(bad) = target.iter().find(|&&t| t < -1 || t == 0) {
        return Err(err(format!(
            "dimension {bad} is not a size (sizes are >= 1, or -1)"
        )));
    }
    let known_target: usize = target
        .iter()
        .filter(|&&t| t > 0)
        .try_fold(1usize, |acc, &t| acc.checked_mul(t as usize))
        .filter(|&n| n <= crate::host::MAX_ELEMENTS)
        .ok_or_else(|| err("the target shape is too large".into()))?;
    let input_total: Option<usize> = match s
        .dims()
        .iter()
        .map(|d| d.known())
        .collect::<Option<Vec<usize>>>()
    {
        Some(sizes) => Some(
            crate::host::checked_numel(&sizes)
                .map_err(|_| err("the input shape is too large".into()))?,
        ),
        None => None,
    };
    let mut out: Vec<Dim> = target
        .iter()
        .zip(&dynamic_refs)
        .map(|(&t, &dynamic)| {
            if t > 0 && !dynamic {
                Dim::Known(t as usize)
            } else {
                Dim::Dynamic
            }
        })
        .collect();
    if let Some(total) = input_total {
        match infer_at.first() {
            Some(&i) => {
                if total % known_target != 0 {
                    return Err(err(format!(
                        "{total} elements do not divide into dimensions of product {known_target}"
                    )));
                }
                out[i] = Dim::Known(total / known_target);
            }
            None => {
                if total != known_target {
                    return Err(err(format!(
                        "{total} elements cannot take a shape of {known_target} elements"
                    )));
                }
            }
        }
    }
    Ok(Shape::new(out))
}
