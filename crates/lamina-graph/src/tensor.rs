//! Symbolic tensors: cheap handles to nodes of an expression graph.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::infer;
use crate::layer::LayerCall;
use crate::op::Op;
use crate::shape::{Dim, Shape};
use crate::variable::Variable;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for nodes, variables and layers.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A node of the expression graph: an op applied to input tensors, with its inferred type.
#[derive(Debug)]
pub struct Node {
    id: u64,
    op: Op,
    inputs: Vec<Tensor>,
    shape: Shape,
    dtype: DType,
}

impl Node {
    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The op.
    pub fn op(&self) -> &Op {
        &self.op
    }
    /// The input tensors.
    pub fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }
    /// The inferred shape (dims may be dynamic).
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

#[derive(Debug)]
enum Repr {
    Valid(Node),
    Invalid(Error),
}

impl Drop for Node {
    /// Drops the graph below this node without recursion, so that a graph of any depth (a long
    /// chain of ops, or of layer calls) cannot overflow the stack when it goes away.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.inputs);
        release_tensors(&mut stack);
    }
}

/// Takes apart tensors whose nodes and layer calls are no longer shared, moving their children
/// onto the stack, so that each node and call is dropped with no children left to recurse into.
pub(crate) fn release_tensors(stack: &mut Vec<Tensor>) {
    while let Some(t) = stack.pop() {
        let Tensor {
            repr,
            history,
            mask,
        } = t;
        if let Some(m) = mask.and_then(Arc::into_inner) {
            stack.push(m);
        }
        if let Some(Repr::Valid(mut node)) = Arc::into_inner(repr) {
            stack.append(&mut node.inputs);
        }
        if let Some(call) = history.and_then(Arc::into_inner) {
            let (mut inputs, mut outputs) = call.into_tensors();
            stack.append(&mut inputs);
            stack.append(&mut outputs);
        }
    }
}

/// A symbolic tensor: a handle to a node of an expression graph, with a dtype and a shape.
///
/// Ops never panic: an op given shapes it cannot combine returns a tensor that carries the
/// error, every op on it carries the same error, and the layer call or model build that
/// consumes it returns that error.
#[derive(Clone)]
pub struct Tensor {
    repr: Arc<Repr>,
    history: Option<Arc<LayerCall>>,
    mask: Option<Arc<Tensor>>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Valid(n) => {
                write!(f, "Tensor({}, {}, {}", n.op.name(), n.shape, n.dtype)?;
                if let Some(m) = &self.mask {
                    write!(f, ", mask {}", m.shape())?;
                }
                write!(f, ")")
            }
            Repr::Invalid(e) => write!(f, "Tensor(invalid: {e})"),
        }
    }
}

impl Tensor {
    /// A tensor that carries an error.
    pub fn invalid(error: Error) -> Tensor {
        Tensor {
            repr: Arc::new(Repr::Invalid(error)),
            history: None,
            mask: None,
        }
    }

    /// A leaf node; a shape past the limits of `crate::limits` gives an invalid tensor.
    pub(crate) fn leaf(op: Op, shape: Shape, dtype: DType) -> Tensor {
        if let Err(e) = crate::limits::check_leaf(&op.name(), &shape) {
            return Tensor::invalid(e);
        }
        Tensor {
            repr: Arc::new(Repr::Valid(Node {
                id: next_id(),
                op,
                inputs: Vec::new(),
                shape,
                dtype,
            })),
            history: None,
            mask: None,
        }
    }

    /// Applies a primitive op to inputs, inferring the output's shape and dtype. An error in an
    /// input, or in the op itself, gives an invalid tensor.
    pub fn from_op(op: Op, inputs: &[&Tensor]) -> Tensor {
        let mut typed = Vec::with_capacity(inputs.len());
        for t in inputs {
            match &*t.repr {
                Repr::Invalid(_) => return (*t).clone().without_history(),
                Repr::Valid(n) => typed.push((n.shape.clone(), n.dtype)),
            }
        }
        match infer(&op, &typed) {
            Ok((shape, dtype)) => Tensor {
                repr: Arc::new(Repr::Valid(Node {
                    id: next_id(),
                    op,
                    inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                    shape,
                    dtype,
                })),
                history: None,
                mask: None,
            },
            Err(e) => Tensor::invalid(e),
        }
    }

    /// A constant tensor baked into the graph.
    pub fn constant(value: HostTensor) -> Tensor {
        let shape = Shape::known(value.shape());
        let dtype = value.dtype();
        Tensor::leaf(Op::Constant(Arc::new(value)), shape, dtype)
    }

    /// A rank-0 `float32` constant.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::constant(HostTensor::scalar(value))
    }

    /// A rank-0 constant of the given dtype (bools are `value != 0`).
    pub fn scalar_of(value: f64, dtype: DType) -> Tensor {
        let host = match dtype {
            DType::F32 => HostTensor::new(&[], vec![value as f32]),
            DType::I32 => HostTensor::new(&[], vec![value as i32]),
            DType::U32 => HostTensor::new(&[], vec![value as u32]),
            DType::Bool => HostTensor::new(&[], vec![value != 0.0]),
        };
        match host {
            Ok(h) => Tensor::constant(h),
            Err(e) => Tensor::invalid(e),
        }
    }

    /// A tensor that reads a variable's current value when the model runs.
    pub fn variable(var: Arc<Variable>) -> Tensor {
        let (shape, dtype) = var.with_value(|v| (Shape::known(v.shape()), v.dtype()));
        Tensor::leaf(Op::Variable(var), shape, dtype)
    }

    /// A model input placeholder of the given full shape (batch included) and dtype.
    pub fn input(name: &str, shape: Shape, dtype: DType) -> Tensor {
        Tensor::leaf(
            Op::Input {
                name: name.to_string(),
            },
            shape,
            dtype,
        )
    }

    /// The node, or the error this tensor carries.
    pub fn node(&self) -> Result<&Node> {
        match &*self.repr {
            Repr::Valid(n) => Ok(n),
            Repr::Invalid(e) => Err(e.clone()),
        }
    }

    /// The error this tensor carries, if any.
    pub fn error(&self) -> Option<&Error> {
        match &*self.repr {
            Repr::Valid(_) => None,
            Repr::Invalid(e) => Some(e),
        }
    }

    /// `Ok(self)` when valid, or the error it carries.
    pub fn check(&self) -> Result<&Tensor> {
        self.node().map(|_| self)
    }

    /// The shape (dims may be `Dim::Dynamic`); a rank-0 shape for an invalid tensor.
    pub fn shape(&self) -> Shape {
        match &*self.repr {
            Repr::Valid(n) => n.shape.clone(),
            Repr::Invalid(_) => Shape::scalar(),
        }
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        match &*self.repr {
            Repr::Valid(n) => n.shape.rank(),
            Repr::Invalid(_) => 0,
        }
    }

    /// The dimension at `axis` (negative counts from the end), if the axis exists.
    pub fn dim(&self, axis: isize) -> Option<Dim> {
        match &*self.repr {
            Repr::Valid(n) => n.shape.dim(axis),
            Repr::Invalid(_) => None,
        }
    }

    /// The element type (`float32` for an invalid tensor).
    pub fn dtype(&self) -> DType {
        match &*self.repr {
            Repr::Valid(n) => n.dtype,
            Repr::Invalid(_) => DType::F32,
        }
    }

    /// A process-unique id of the node (0 for an invalid tensor).
    pub fn id(&self) -> u64 {
        match &*self.repr {
            Repr::Valid(n) => n.id,
            Repr::Invalid(_) => 0,
        }
    }

    /// The layer call that produced this tensor, if it is a layer's output.
    pub fn history(&self) -> Option<&Arc<LayerCall>> {
        self.history.as_ref()
    }

    pub(crate) fn with_history(mut self, call: Arc<LayerCall>) -> Tensor {
        self.history = Some(call);
        self
    }

    pub(crate) fn without_history(mut self) -> Tensor {
        self.history = None;
        self
    }

    /// The mask this tensor carries (Keras's `_keras_mask`): a `bool` tensor over its leading
    /// axes, true where a step holds data. Layers such as `Embedding(mask_zero)` and `Masking`
    /// attach one; masking-aware layers pass it on, and pooling or `Softmax` consume it.
    pub fn mask(&self) -> Option<&Tensor> {
        self.mask.as_deref()
    }

    /// The same tensor carrying `mask` (or none). Layers attach their output masks this way;
    /// ops make tensors without masks (an op that returns its input unchanged, such as a cast
    /// to the same dtype, returns it with its mask).
    pub fn with_mask(mut self, mask: Option<Tensor>) -> Tensor {
        self.mask = mask.map(|mut m| {
            m.mask = None;
            Arc::new(m.without_history())
        });
        self
    }
}
