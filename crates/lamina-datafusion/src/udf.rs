//! A Lamina model as a DataFusion scalar function: each Arrow batch is one `predict` over its
//! rows.

use crate::columns::{
    Origin, RowSpec, is_list_of_numbers, is_number, list_to_tensor, outputs_struct_type,
    outputs_to_struct, pack_columns, tensor_to_list,
};
use crate::source::ModelSource;
use datafusion::arrow::array::{ArrayRef, new_empty_array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use lamina_backend::{BackendKind, Session};
use lamina_graph::op::Op;
use lamina_graph::{Dim, HostTensor, Model, Result, Tensor};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A model as a DataFusion scalar function: `score(features)` for a one-input model (a list
/// column per input, or one number column per feature of a flat input), returning a
/// fixed-size list per row, or a struct of lists for several outputs.
pub struct ModelUdf {
    name: String,
    model: Model,
    source: ModelSource,
    inputs: Vec<RowSpec>,
    outputs: Vec<RowSpec>,
    signature: Signature,
    backend: BackendKind,
    /// The compiled session, created on the first batch and shared by every thread that
    /// evaluates this function (a `Session` is `Send + Sync`; each batch size compiles once).
    session: Mutex<Option<Arc<Session>>>,
}

/// A scalar function named `name` that runs `model` on the backend `LAMINA_BACKEND` chooses.
/// The model travels in query plans as its bytes (a Ballista cluster's executors load it from
/// there).
pub fn model_udf(name: &str, model: &Model) -> Result<ScalarUDF> {
    let source = ModelSource::inline(model)?;
    Ok(ScalarUDF::new_from_impl(ModelUdf::new(
        name,
        model.clone(),
        source,
    )?))
}

/// A scalar function named `name` running the model in `path` (a Lamina model file, a Keras
/// `.keras` file or a legacy `.h5` file). A large model travels in query plans as the file's
/// path and content hash, so every executor must see the same file at that path.
pub fn model_udf_from_file(name: &str, path: impl AsRef<Path>) -> Result<ScalarUDF> {
    Ok(ScalarUDF::new_from_impl(ModelUdf::from_file(name, path)?))
}

impl ModelUdf {
    /// The function for the model in `path` (see `model_udf_from_file`).
    pub fn from_file(name: &str, path: impl AsRef<Path>) -> Result<ModelUdf> {
        let (model, source) = ModelSource::from_file(path.as_ref())?;
        ModelUdf::new(name, model, source)
    }

    /// The same function on another backend than `LAMINA_BACKEND` chooses (on this process;
    /// a Ballista executor rebuilding it uses its own `LAMINA_BACKEND`).
    pub fn on_backend(mut self, kind: BackendKind) -> ModelUdf {
        self.backend = kind;
        self.session = Mutex::new(None);
        self
    }

    /// The function for a model from a known source.
    pub(crate) fn new(name: &str, model: Model, source: ModelSource) -> Result<ModelUdf> {
        let backend = BackendKind::from_env()?;
        let inputs = model
            .inputs()
            .iter()
            .enumerate()
            .map(|(i, t)| row_spec(t, &format!("input_{i}")))
            .collect::<Result<Vec<_>>>()?;
        for spec in &inputs {
            if spec.dims.iter().filter(|d| d.is_none()).count() > 1 {
                return Err(lamina_graph::Error::Model {
                    detail: format!(
                        "{name}: the model's input `{}` has shape {}: a table row can leave \
                         only one size to be read from its length",
                        spec.name,
                        spec.keras_shape()
                    ),
                });
            }
        }
        let mut outputs = model
            .outputs()
            .iter()
            .enumerate()
            .map(|(i, t)| row_spec(t, &format!("output_{i}")))
            .collect::<Result<Vec<_>>>()?;
        unique_names(&mut outputs);
        if let Some(spec) = inputs
            .iter()
            .chain(&outputs)
            .find(|s| s.width().is_some_and(|w| w > i32::MAX as usize))
        {
            return Err(lamina_graph::Error::Model {
                detail: format!(
                    "{name}: `{}` {} has more values per row than an Arrow list holds \
                     (2^31 - 1)",
                    spec.name,
                    spec.keras_shape()
                ),
            });
        }
        Ok(ModelUdf {
            name: name.to_string(),
            model,
            source,
            inputs,
            outputs,
            signature: Signature::variadic_any(Volatility::Immutable),
            backend,
            session: Mutex::new(None),
        })
    }

    /// The model this function runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Where executors find the model.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The model's inputs as table columns see them.
    pub fn inputs(&self) -> &[RowSpec] {
        &self.inputs
    }

    /// The model's outputs as table columns see them.
    pub fn outputs(&self) -> &[RowSpec] {
        &self.outputs
    }

    /// The type of the function's result column.
    pub fn result_type(&self) -> DataType {
        match self.outputs.as_slice() {
            [one] => one.arrow_list_type(),
            many => outputs_struct_type(many),
        }
    }

    fn session(&self) -> DfResult<Arc<Session>> {
        let mut slot = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let session = Arc::new(
            Session::new(self.model.program().clone(), self.backend)
                .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.name)))?,
        );
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Checks the argument types at planning time: how many, and that each is a list of
    /// numbers (or a number where the model packs number columns).
    fn check_arguments(&self, fields: &[FieldRef]) -> DfResult<()> {
        let plan = |detail: String| DataFusionError::Plan(format!("{}: {detail}", self.name));
        if fields.len() == self.inputs.len() {
            for (f, spec) in fields.iter().zip(&self.inputs) {
                let t = f.data_type();
                let fits = is_list_of_numbers(t) || (is_number(t) && spec.width() == Some(1));
                if !fits {
                    return Err(plan(format!(
                        "column `{}` is {t}; the model's input `{}` {} takes a list of {} \
                         numbers per row (FixedSizeList or List of Float32, Float64 or \
                         integers)",
                        f.name(),
                        spec.name,
                        spec.keras_shape(),
                        spec.width()
                            .map_or_else(|| "any number of".to_string(), |w| w.to_string())
                    )));
                }
                if let (DataType::FixedSizeList(_, n), Some(w)) = (t, spec.width())
                    && *n as usize != w
                {
                    return Err(plan(format!(
                        "column `{}` holds lists of {n} values; the model's input `{}` {} \
                         takes {w} per row",
                        f.name(),
                        spec.name,
                        spec.keras_shape()
                    )));
                }
            }
            return Ok(());
        }
        if let [spec] = self.inputs.as_slice()
            && spec.dims.len() == 1
            && fields.iter().all(|f| is_number(f.data_type()))
        {
            return match spec.width() {
                Some(w) if w != fields.len() => Err(plan(format!(
                    "{} number columns given; the model's input `{}` {} takes {w} values per \
                     row (give {w} number columns, or one list column)",
                    fields.len(),
                    spec.name,
                    spec.keras_shape()
                ))),
                _ => Ok(()),
            };
        }
        Err(plan(format!(
            "{} argument(s) given ({}); the model takes {} input(s): {}",
            fields.len(),
            fields
                .iter()
                .map(|f| format!("`{}` {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
                .join(", "),
            self.inputs.len(),
            self.inputs
                .iter()
                .map(|s| format!("`{}` {} {}", s.name, s.keras_shape(), s.dtype.name()))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// The model's host inputs for one batch of argument columns.
    fn host_inputs(
        &self,
        arrays: &[ArrayRef],
        fields: &[FieldRef],
        rows: usize,
    ) -> DfResult<Vec<HostTensor>> {
        self.check_arguments(fields)?;
        if arrays.len() == self.inputs.len() {
            return arrays
                .iter()
                .zip(fields)
                .zip(&self.inputs)
                .map(|((a, f), spec)| {
                    let origin = Origin {
                        function: &self.name,
                        column: f.name(),
                        rows,
                    };
                    list_to_tensor(a, spec, &origin)
                })
                .collect();
        }
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        Ok(vec![pack_columns(
            arrays,
            &names,
            &self.inputs[0],
            &self.name,
        )?])
    }

    /// Runs the model on one batch of argument columns.
    fn evaluate(
        &self,
        arrays: &[ArrayRef],
        fields: &[FieldRef],
        rows: usize,
    ) -> DfResult<ArrayRef> {
        if rows == 0 {
            return Ok(new_empty_array(&self.result_type()));
        }
        let inputs = self.host_inputs(arrays, fields, rows)?;
        let outputs = self
            .session()?
            .run(&inputs)
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.name)))?;
        let mut columns = Vec::with_capacity(outputs.len());
        for (t, spec) in outputs.into_iter().zip(&self.outputs) {
            if t.shape().first() != Some(&rows) {
                return Err(DataFusionError::Execution(format!(
                    "{}: output `{}` has shape {:?}, not one row per input row ({rows})",
                    self.name,
                    spec.name,
                    t.shape()
                )));
            }
            columns.push(tensor_to_list(t, spec, &self.name)?);
        }
        match columns.len() {
            1 => Ok(columns.remove(0)),
            _ => outputs_to_struct(columns, &self.outputs),
        }
    }
}

impl std::fmt::Debug for ModelUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelUdf")
            .field("name", &self.name)
            .field("model", &self.model.name())
            .field("source", &self.source)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

impl PartialEq for ModelUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.source.digest() == other.source.digest()
    }
}

impl Eq for ModelUdf {}

impl Hash for ModelUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.source.digest().hash(state);
    }
}

impl ScalarUDFImpl for ModelUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.result_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.check_arguments(args.arg_fields)?;
        Ok(Arc::new(Field::new(&self.name, self.result_type(), false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let arrays = arrays
            .into_iter()
            .zip(&args.arg_fields)
            .map(|(a, field)| match a.len() {
                n if n == rows => Ok(a),
                // A constant argument arrives as one value: repeat it for every row.
                1 => Ok(datafusion::arrow::compute::take(
                    &a,
                    &datafusion::arrow::array::UInt32Array::from(vec![0u32; rows]),
                    None,
                )?),
                n => Err(DataFusionError::Execution(format!(
                    "{}: column `{}` has {n} values for a batch of {rows} rows",
                    self.name,
                    field.name()
                ))),
            })
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        Ok(ColumnarValue::Array(self.evaluate(
            &arrays,
            &args.arg_fields,
            rows,
        )?))
    }
}

/// One input or output of the model as a row spec, named as the model names it.
fn row_spec(t: &Tensor, fallback: &str) -> Result<RowSpec> {
    let node = t.node()?;
    let name = match node.op() {
        Op::Input { name } if !name.is_empty() => name.clone(),
        _ => t
            .history()
            .map(|c| c.layer().name())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| fallback.to_string()),
    };
    let dims = node
        .shape()
        .dims()
        .iter()
        .skip(1)
        .map(|d| match d {
            Dim::Known(n) => Some(*n),
            Dim::Dynamic => None,
        })
        .collect();
    Ok(RowSpec {
        name,
        dtype: node.dtype(),
        dims,
    })
}

/// Makes output names unique (`dense`, `dense_1`), as struct fields must be.
fn unique_names(specs: &mut [RowSpec]) {
    let mut seen = std::collections::HashSet::new();
    for s in specs.iter_mut() {
        let base = s.name.clone();
        let mut k = 1;
        while !seen.insert(s.name.clone()) {
            s.name = format!("{base}_{k}");
            k += 1;
        }
    }
}
