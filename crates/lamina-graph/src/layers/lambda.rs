//! The `Lambda` layer: an arbitrary expression over symbolic tensors, recorded as graph data.

use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::layer::{Layer, LayerRef, unique_name};
use crate::shape::{Dim, Shape};
use crate::tensor::{Tensor, next_id};
use crate::variable::{Variable, VariableKind};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The function of a Lambda: symbolic inputs and a scope (arguments, variables) to an output.
pub type LambdaFunction = dyn Fn(&[Tensor], &LambdaScope<'_>) -> Tensor + Send + Sync;

/// A function of the full input shapes (batch included) returning the full output shape.
pub type OutputShapeFunction = dyn Fn(&[Shape]) -> Shape + Send + Sync;

/// A function of the inputs and their masks returning the output mask (Keras's callable
/// `mask`).
pub type MaskFunction = dyn Fn(&[Tensor], &[Option<Tensor>]) -> Option<Tensor> + Send + Sync;

/// The function of a Lambda with several outputs (a tuple or list in Keras).
pub type MultiOutputFunction = dyn Fn(&[Tensor], &LambdaScope<'_>) -> Vec<Tensor> + Send + Sync;

/// A mask function giving one mask (or none) per output of a multi-output Lambda.
pub type OutputMasksFunction =
    dyn Fn(&[Tensor], &[Option<Tensor>]) -> Vec<Option<Tensor>> + Send + Sync;

/// A Lambda's `mask` argument: how the output mask is made.
#[derive(Clone)]
pub enum LambdaMask {
    /// A function of (inputs, input masks) returning the output mask, or `None` for none.
    Function(Arc<MaskFunction>),
    /// A fixed mask, the output mask whatever the input.
    Fixed(HostTensor),
}

/// A Lambda's declared `output_shape`.
#[derive(Clone)]
pub enum OutputShape {
    /// A per-sample shape; the batch dimension of the first input is prepended, as in Keras.
    PerSample(Vec<Dim>),
    /// A function of the full input shapes returning the full output shape.
    Function(Arc<OutputShapeFunction>),
}

/// What a Lambda function can reach besides its inputs: its `arguments`, its variables and
/// the masks of its inputs.
pub struct LambdaScope<'a> {
    layer: &'a LambdaInner,
    masks: &'a [Option<Tensor>],
    /// The first error of a static argument read, reported when the function returns.
    static_error: std::cell::RefCell<Option<Error>>,
}

impl LambdaScope<'_> {
    /// The mask of input `index` (Keras's `mask` argument of the function), or `None` when
    /// that input carries none.
    pub fn mask(&self, index: usize) -> Option<Tensor> {
        self.masks.get(index).cloned().flatten()
    }

    /// The masks of all inputs, `None` where an input carries none.
    pub fn masks(&self) -> &[Option<Tensor>] {
        self.masks
    }

    /// The runtime value of a named argument. Arguments are read when the model runs, so
    /// changing one with `Lambda::set_argument` compiles nothing again.
    pub fn argument(&self, name: &str) -> Tensor {
        match self.layer.arguments.get(name) {
            Some(v) => Tensor::variable(v.clone()),
            None => Tensor::invalid(unknown_argument(self.layer, name)),
        }
    }

    /// The value of a named argument as a plain integer, read now, while the layer is called:
    /// for what must be a number rather than a tensor, such as a slice bound
    /// (`x.slice(s![.., ..s.static_int("n")])`) or a reshape size, as Keras passes `arguments`
    /// as plain Python values. The value becomes part of the recorded graph (and of a saved
    /// model); `Lambda::set_argument` on an argument read this way is an error.
    ///
    /// The argument must hold one integral number (an `f32` such as `2.0` counts); otherwise, or
    /// for an unknown name, this returns 0 and the layer call fails with an error naming the
    /// argument.
    pub fn static_int(&self, name: &str) -> i64 {
        match self.static_value(name).and_then(|v| {
            let integral = v.fract() == 0.0 && v.abs() <= 2f64.powi(53);
            if integral {
                Ok(v as i64)
            } else {
                Err(Error::Model {
                    detail: format!(
                        "static argument '{name}' is {v}, which is not an integer (use \
                         static_float)"
                    ),
                })
            }
        }) {
            Ok(v) => v,
            Err(e) => self.fail_static(e, 0),
        }
    }

    /// The value of a named argument as a plain number, read now, while the layer is called,
    /// as `static_int` reads integers: a Python float in Keras's `arguments`.
    pub fn static_float(&self, name: &str) -> f64 {
        match self.static_value(name) {
            Ok(v) => v,
            Err(e) => self.fail_static(e, 0.0),
        }
    }

    fn static_value(&self, name: &str) -> Result<f64> {
        let Some(var) = self.layer.arguments.get(name) else {
            return Err(unknown_argument(self.layer, name));
        };
        let value = var.value();
        let v = match value.data() {
            crate::host::HostData::F32(d) if d.len() == 1 => d[0] as f64,
            crate::host::HostData::I32(d) if d.len() == 1 => d[0] as f64,
            crate::host::HostData::U32(d) if d.len() == 1 => d[0] as f64,
            _ => {
                return Err(Error::Model {
                    detail: format!(
                        "static argument '{name}' must be one number, it is a {} tensor of \
                         shape {:?}",
                        value.dtype(),
                        value.shape()
                    ),
                });
            }
        };
        self.layer
            .statics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        Ok(v)
    }

    fn fail_static<T>(&self, e: Error, fallback: T) -> T {
        self.static_error.borrow_mut().get_or_insert(e);
        fallback
    }

    /// A variable of this Lambda, created filled with `initial` on the first call and reused on
    /// every later call (also when the same layer is used twice). Asking again with another
    /// shape is an error.
    pub fn variable(&self, name: &str, shape: &[usize], initial: f32) -> Tensor {
        match HostTensor::full(shape, initial) {
            Ok(v) => self.variable_from(name, v),
            Err(e) => Tensor::invalid(e),
        }
    }

    /// A variable created from an initial tensor on the first call and reused afterwards.
    pub fn variable_from(&self, name: &str, initial: HostTensor) -> Tensor {
        let mut vars = self
            .layer
            .variables
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = vars.iter().find(|(n, _)| n == name) {
            let shape = v.shape();
            if shape != initial.shape() || v.dtype() != initial.dtype() {
                return Tensor::invalid(Error::VariableShape {
                    name: v.path(),
                    existing: format!("{shape:?} {}", v.dtype()),
                    requested: format!("{:?} {}", initial.shape(), initial.dtype()),
                });
            }
            return Tensor::variable(v.clone());
        }
        let v = Arc::new(Variable::new(
            &self.layer.name,
            name,
            VariableKind::Weight,
            initial,
        ));
        vars.push((name.to_string(), v.clone()));
        Tensor::variable(v)
    }
}

fn unknown_argument(layer: &LambdaInner, name: &str) -> Error {
    Error::UnknownArgument {
        name: name.to_string(),
        known: if layer.arguments.is_empty() {
            "none".into()
        } else {
            layer
                .arguments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        },
    }
}

struct LambdaInner {
    id: u64,
    name: String,
    function: Arc<LambdaFunction>,
    output_shape: Option<OutputShape>,
    mask: Option<LambdaMask>,
    arguments: BTreeMap<String, Arc<Variable>>,
    /// The arguments read as static values by a call of this layer.
    statics: Mutex<std::collections::BTreeSet<String>>,
    variables: Mutex<Vec<(String, Arc<Variable>)>>,
    /// The function, when the Lambda returns several outputs (then `function` is unused).
    outputs: Option<Arc<MultiOutputFunction>>,
    /// One mask per output, when given (it takes precedence over `mask`).
    output_masks: Option<Arc<OutputMasksFunction>>,
}

impl Clone for LambdaInner {
    /// A separate layer with the same configuration: new id, new variables.
    fn clone(&self) -> Self {
        LambdaInner {
            id: next_id(),
            name: self.name.clone(),
            function: self.function.clone(),
            output_shape: self.output_shape.clone(),
            mask: self.mask.clone(),
            arguments: self
                .arguments
                .iter()
                .map(|(k, v)| {
                    let fresh = Variable::new(&self.name, k, VariableKind::Argument, v.value());
                    (k.clone(), Arc::new(fresh))
                })
                .collect(),
            statics: Mutex::default(),
            variables: Mutex::new(Vec::new()),
            outputs: self.outputs.clone(),
            output_masks: self.output_masks.clone(),
        }
    }
}

/// Wraps an arbitrary expression as a layer, as Keras's `Lambda` does, but records it as graph
/// data: it compiles to fused kernels and saves without code.
///
/// Clones of a `Lambda` are the same layer (they share variables). The builder methods
/// (`name`, `output_shape`, `argument`...) are meant for a fresh Lambda; on one already cloned
/// they make a separate layer.
#[derive(Clone)]
pub struct Lambda {
    inner: Arc<LambdaInner>,
}

impl Lambda {
    /// A Lambda over one input: `Lambda::new(|x| x.square())`.
    pub fn new(function: impl Fn(&Tensor) -> Tensor + Send + Sync + 'static) -> Lambda {
        Lambda::with_scope(move |xs, _| match xs {
            [x] => function(x),
            _ => Tensor::invalid(Error::Inputs {
                detail: format!(
                    "this Lambda takes one input but was called on {}; use Lambda::multi",
                    xs.len()
                ),
            }),
        })
    }

    /// A Lambda over a list of inputs: `Lambda::multi(|xs| (&xs[0] - &xs[1]).abs())`.
    pub fn multi(function: impl Fn(&[Tensor]) -> Tensor + Send + Sync + 'static) -> Lambda {
        Lambda::with_scope(move |xs, _| function(xs))
    }

    /// A Lambda whose function also gets a scope with its `arguments` and variables:
    /// `Lambda::with_scope(|xs, s| &xs[0] * s.argument("a") + s.argument("b"))`.
    pub fn with_scope(
        function: impl Fn(&[Tensor], &LambdaScope<'_>) -> Tensor + Send + Sync + 'static,
    ) -> Lambda {
        Lambda {
            inner: Arc::new(LambdaInner {
                id: next_id(),
                name: unique_name("lambda"),
                function: Arc::new(function),
                output_shape: None,
                mask: None,
                arguments: BTreeMap::new(),
                statics: Mutex::default(),
                variables: Mutex::new(Vec::new()),
                outputs: None,
                output_masks: None,
            }),
        }
    }

    /// A Lambda returning several outputs (Keras: a function returning a tuple or list), called
    /// with `call_layer` or `call_outputs`. Each output gets the mask of `output_masks` when
    /// given; otherwise every output gets the one mask of `mask_fn`/`mask` (or none).
    pub fn with_outputs(
        function: impl Fn(&[Tensor], &LambdaScope<'_>) -> Vec<Tensor> + Send + Sync + 'static,
    ) -> Lambda {
        Lambda::with_scope(|_, _| {
            Tensor::invalid(Error::Model {
                detail: "a multi-output Lambda has no single function".into(),
            })
        })
        .configure(|l| l.outputs = Some(Arc::new(function)))
    }

    /// One mask per output (Keras: a `mask` function returning a list), from the inputs and
    /// their masks; the list must have one entry per output.
    pub fn output_masks(
        self,
        f: impl Fn(&[Tensor], &[Option<Tensor>]) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Lambda {
        self.configure(|l| l.output_masks = Some(Arc::new(f)))
    }

    /// Calls the layer and returns every output (for multi-output Lambdas).
    pub fn call_outputs<'a>(
        &self,
        inputs: impl Into<crate::layer::LayerInputs<'a>>,
    ) -> Result<Vec<Tensor>> {
        crate::layer::call_layer(self, inputs.into().as_slice())
    }

    /// Whether a mask per output was given (`output_masks`).
    pub fn has_output_masks(&self) -> bool {
        self.inner.output_masks.is_some()
    }

    /// Whether the Lambda returns several outputs.
    pub fn is_multi_output(&self) -> bool {
        self.inner.outputs.is_some()
    }

    /// A Lambda over one input whose function also gets the input's mask (Keras's function
    /// with a `mask` parameter): `Lambda::masked(|x, mask| ...)`.
    pub fn masked(
        function: impl Fn(&Tensor, Option<&Tensor>) -> Tensor + Send + Sync + 'static,
    ) -> Lambda {
        Lambda::with_scope(move |xs, scope| match xs {
            [x] => function(x, scope.mask(0).as_ref()),
            _ => Tensor::invalid(Error::Inputs {
                detail: format!(
                    "this Lambda takes one input but was called on {}; use Lambda::with_scope",
                    xs.len()
                ),
            }),
        })
    }

    /// Sets the output mask to a function of (inputs, input masks), as Keras's callable
    /// `mask`: `.mask_fn(|_, masks| masks[0].clone())` passes the incoming mask on.
    pub fn mask_fn(
        self,
        f: impl Fn(&[Tensor], &[Option<Tensor>]) -> Option<Tensor> + Send + Sync + 'static,
    ) -> Lambda {
        self.configure(|l| l.mask = Some(LambdaMask::Function(Arc::new(f))))
    }

    /// Sets a fixed output mask, returned whatever the input (Keras's tensor `mask`); values
    /// other than `bool` count as true where non-zero.
    pub fn mask(self, mask: HostTensor) -> Lambda {
        self.configure(|l| l.mask = Some(LambdaMask::Fixed(mask)))
    }

    /// The `mask` argument, if any.
    pub fn mask_spec(&self) -> Option<&LambdaMask> {
        self.inner.mask.as_ref()
    }

    fn configure(mut self, f: impl FnOnce(&mut LambdaInner)) -> Lambda {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Sets the layer's name.
    pub fn name(self, name: &str) -> Lambda {
        self.configure(|l| {
            l.name = name.to_string();
            l.arguments = l
                .arguments
                .iter()
                .map(|(k, v)| {
                    let fresh = Variable::new(name, k, VariableKind::Argument, v.value());
                    (k.clone(), Arc::new(fresh))
                })
                .collect();
        })
    }

    /// Declares the per-sample output shape (Keras's tuple `output_shape`): the batch dim of
    /// the first input is prepended. Unlike Keras, it is checked against the inferred shape.
    pub fn output_shape(self, per_sample: &[usize]) -> Lambda {
        let dims = per_sample.iter().map(|&n| Dim::Known(n)).collect();
        self.configure(|l| l.output_shape = Some(OutputShape::PerSample(dims)))
    }

    /// Declares the output shape with possibly unknown per-sample dims.
    pub fn output_shape_dims(self, per_sample: Vec<Dim>) -> Lambda {
        self.configure(|l| l.output_shape = Some(OutputShape::PerSample(per_sample)))
    }

    /// Declares the output shape as a function of the full input shapes (batch included), as
    /// Keras's callable `output_shape`; checked against the inferred shape.
    pub fn output_shape_fn(self, f: impl Fn(&[Shape]) -> Shape + Send + Sync + 'static) -> Lambda {
        self.configure(|l| l.output_shape = Some(OutputShape::Function(Arc::new(f))))
    }

    /// Adds a named argument handed to the function (Keras's `arguments`); a runtime value.
    pub fn argument(self, name: &str, value: impl Into<HostTensor>) -> Lambda {
        let value = value.into();
        self.configure(|l| {
            let var = Variable::new(&l.name, name, VariableKind::Argument, value);
            l.arguments.insert(name.to_string(), Arc::new(var));
        })
    }

    /// The current value of a variable created by the function.
    pub fn variable(&self, name: &str) -> Result<HostTensor> {
        self.find_variable(name).map(|v| v.value())
    }

    /// Sets a variable created by the function; the shape must stay the same.
    pub fn set_variable(&self, name: &str, value: HostTensor) -> Result<()> {
        self.find_variable(name)?.set(value)
    }

    /// The current value of an argument.
    pub fn argument_value(&self, name: &str) -> Result<HostTensor> {
        self.find_argument(name).map(|v| v.value())
    }

    /// Changes an argument's value; models that use the layer see it on their next run, with
    /// nothing compiled again. The shape must stay the same. An argument that a call of the
    /// layer read as a static value (`LambdaScope::static_int`) is part of the recorded graph:
    /// changing it is an error, since models already built would not see the change.
    pub fn set_argument(&self, name: &str, value: impl Into<HostTensor>) -> Result<()> {
        let var = self.find_argument(name)?;
        if self.is_static(name) {
            return Err(Error::Model {
                detail: format!(
                    "argument '{name}' of Lambda '{}' was read as a static value when the layer \
                     was called, so it is fixed in the recorded graph; for another value, build \
                     the model again from a new Lambda with .argument(\"{name}\", value)",
                    self.inner.name
                ),
            });
        }
        var.set(value.into())
    }

    /// The arguments that a call of the layer read as static values, by name.
    pub fn static_arguments(&self) -> Vec<String> {
        self.inner
            .statics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn is_static(&self, name: &str) -> bool {
        self.inner
            .statics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
    }

    /// Marks an argument as read statically (a loaded model's, whose body holds its value).
    pub(crate) fn mark_static(&self, name: &str) -> Result<()> {
        self.find_argument(name)?;
        self.inner
            .statics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        Ok(())
    }

    fn find_argument(&self, name: &str) -> Result<&Arc<Variable>> {
        self.inner
            .arguments
            .get(name)
            .ok_or_else(|| Error::UnknownArgument {
                name: name.to_string(),
                known: self
                    .inner
                    .arguments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn find_variable(&self, name: &str) -> Result<Arc<Variable>> {
        let vars = self
            .inner
            .variables
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::NotFound {
                kind: "variable".into(),
                name: name.to_string(),
                detail: format!(
                    " in layer '{}' (it has: {}; variables appear when the layer is first called)",
                    self.inner.name,
                    if vars.is_empty() {
                        "none".to_string()
                    } else {
                        vars.iter()
                            .map(|(n, _)| n.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            })
    }

    /// The declared output shape, if any.
    pub fn declared_output_shape(&self) -> Option<&OutputShape> {
        self.inner.output_shape.as_ref()
    }

    /// The arguments, by name.
    pub fn arguments(&self) -> &BTreeMap<String, Arc<Variable>> {
        &self.inner.arguments
    }

    /// The variables the function created, by name, in creation order.
    pub fn named_variables(&self) -> Vec<(String, Arc<Variable>)> {
        self.inner
            .variables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn check_output_shape(&self, inputs: &[Tensor], out: &Tensor) -> Result<()> {
        let Some(declared) = &self.inner.output_shape else {
            return Ok(());
        };
        let input_shapes: Vec<Shape> = inputs.iter().map(|t| t.shape()).collect();
        let declared = match declared {
            OutputShape::PerSample(dims) => {
                let batch = input_shapes
                    .first()
                    .and_then(|s| s.dims().first().copied())
                    .unwrap_or(Dim::Dynamic);
                Shape::new(std::iter::once(batch).chain(dims.iter().copied()))
            }
            OutputShape::Function(f) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input_shapes)))
                    .map_err(|_| Error::Model {
                        detail: "the output_shape function panicked".into(),
                    })?
            }
        };
        let inferred = out.shape();
        let compatible = declared.rank() == inferred.rank()
            && declared
                .dims()
                .iter()
                .zip(inferred.dims())
                .all(|(a, b)| match (a, b) {
                    (Dim::Known(x), Dim::Known(y)) => x == y,
                    _ => true,
                });
        if compatible {
            Ok(())
        } else {
            Err(Error::OutputShapeMismatch {
                declared: declared.to_string(),
                inferred: inferred.to_string(),
            })
        }
    }
}

impl Layer for Lambda {
    fn id(&self) -> u64 {
        self.inner.id
    }

    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn kind(&self) -> &'static str {
        "Lambda"
    }

    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.forward_masked(inputs, &vec![None; inputs.len()])
    }

    fn supports_masking(&self) -> bool {
        self.inner.mask.is_some() || self.inner.output_masks.is_some()
    }

    fn compute_mask(
        &self,
        inputs: &[Tensor],
        masks: &[Option<Tensor>],
        outputs: &[Tensor],
    ) -> Result<Vec<Option<Tensor>>> {
        if let Some(f) = &self.inner.output_masks {
            let list = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(inputs, masks)))
                .map_err(|payload| Error::Model {
                    detail: format!(
                        "the output_masks function panicked: {}",
                        crate::error::panic_message(payload.as_ref())
                    ),
                })?;
            if list.len() != outputs.len() {
                return Err(Error::Model {
                    detail: format!(
                        "the output_masks function gave {} masks for {} outputs",
                        list.len(),
                        outputs.len()
                    ),
                });
            }
            return Ok(list);
        }
        let mask = match &self.inner.mask {
            None => None,
            Some(LambdaMask::Fixed(m)) => Some(Tensor::constant(m.clone())),
            Some(LambdaMask::Function(f)) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(inputs, masks)))
                    .map_err(|payload| Error::Model {
                        detail: format!(
                            "the mask function panicked: {}",
                            crate::error::panic_message(payload.as_ref())
                        ),
                    })?
            }
        };
        Ok(vec![mask; outputs.len().max(1)])
    }

    fn forward_masked(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Vec<Tensor>> {
        let scope = LambdaScope {
            layer: &self.inner,
            masks,
            static_error: std::cell::RefCell::new(None),
        };
        if let Some(multi) = &self.inner.outputs {
            let outs =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| multi(inputs, &scope)))
                    .map_err(|payload| Error::Model {
                        detail: format!(
                            "the Lambda function panicked: {}",
                            crate::error::panic_message(payload.as_ref())
                        ),
                    })?;
            if let Some(e) = scope.static_error.take() {
                return Err(e);
            }
            if outs.is_empty() {
                return Err(Error::Model {
                    detail: "the Lambda function returned no outputs".into(),
                });
            }
            for (k, t) in outs.iter().enumerate() {
                t.check().map_err(|e| Error::Model {
                    detail: format!("output {k} of the Lambda: {e}"),
                })?;
            }
            if outs.len() == 1 {
                self.check_output_shape(inputs, &outs[0])?;
            }
            return Ok(outs);
        }
        let function = &self.inner.function;
        let out =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| function(inputs, &scope)))
                .map_err(|payload| Error::Model {
                    detail: format!(
                        "the Lambda function panicked: {}",
                        crate::error::panic_message(payload.as_ref())
                    ),
                })?;
        if let Some(e) = scope.static_error.take() {
            return Err(e);
        }
        out.check()?;
        self.check_output_shape(inputs, &out)?;
        Ok(vec![out])
    }

    fn variables(&self) -> Vec<Arc<Variable>> {
        let vars = self
            .inner
            .variables
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        vars.iter().map(|(_, v)| v.clone()).collect()
    }

    fn handle(&self) -> LayerRef {
        Arc::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
