//! Arrow columns to host tensors and back: one table row is one item of the model's batch.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, GenericListArray,
    Int32Array, ListArray, OffsetSizeTrait, StructArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Float32Type, Int32Type, UInt32Type,
};
use datafusion::common::{DataFusionError, Result};
use lamina_graph::{DType, HostData, HostTensor};
use std::sync::Arc;

/// One model input or output as a table sees it: its name, element type and the shape of one
/// row (the model's shape without the batch axis; `None` where the size is known only at run
/// time).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RowSpec {
    /// The model's name for the input or output.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The shape of one row.
    pub dims: Vec<Option<usize>>,
}

impl RowSpec {
    /// The number of values in one row, when every size is known.
    pub fn width(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |a, d| d.map(|d| a.saturating_mul(d)))
    }

    /// The product of the known sizes.
    fn known_product(&self) -> usize {
        self.dims
            .iter()
            .flatten()
            .fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// The shape written as Keras does, batch first: `(None, 8)`.
    pub fn keras_shape(&self) -> String {
        let mut parts = vec!["None".to_string()];
        parts.extend(self.dims.iter().map(|d| match d {
            Some(n) => n.to_string(),
            None => "None".to_string(),
        }));
        if parts.len() == 1 {
            "(None,)".into()
        } else {
            format!("({})", parts.join(", "))
        }
    }

    /// The row shape for rows of `width` values: the one unknown size is what the width
    /// leaves, or `None` when the width does not fit the known sizes.
    fn dims_for_width(&self, width: usize) -> Option<Vec<usize>> {
        let known = self.known_product();
        let unknown = self.dims.iter().filter(|d| d.is_none()).count();
        match unknown {
            0 => (known == width).then(|| self.dims.iter().flatten().copied().collect()),
            1 if known > 0 && width.is_multiple_of(known) => Some(
                self.dims
                    .iter()
                    .map(|d| d.unwrap_or(width / known))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The Arrow type of the element.
    pub fn arrow_element(&self) -> DataType {
        arrow_element(self.dtype)
    }

    /// The Arrow type of a column holding this output: a fixed-size list when every size is
    /// known, else a list.
    pub fn arrow_list_type(&self) -> DataType {
        let item = Arc::new(Field::new_list_field(self.arrow_element(), true));
        match self.width() {
            Some(w) => DataType::FixedSizeList(item, w as i32),
            None => DataType::List(item),
        }
    }
}

/// The Arrow element type that carries a Lamina dtype.
pub fn arrow_element(dtype: DType) -> DataType {
    match dtype {
        DType::F32 => DataType::Float32,
        DType::I32 => DataType::Int32,
        DType::U32 => DataType::UInt32,
        DType::Bool => DataType::Boolean,
    }
}

/// Whether a column of this type can feed a model input of `dtype`, one list per row.
pub fn is_list_of_numbers(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            is_number(f.data_type())
        }
        _ => false,
    }
}

/// Whether a column of this type holds one number per row.
pub fn is_number(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null)
}

/// Where a batch's values come from, for errors: the function, the column and the batch size.
pub struct Origin<'a> {
    /// The function's name.
    pub function: &'a str,
    /// The column (or expression) name.
    pub column: &'a str,
    /// Rows in the batch.
    pub rows: usize,
}

impl Origin<'_> {
    fn err(&self, detail: impl std::fmt::Display) -> DataFusionError {
        DataFusionError::Execution(format!(
            "{}: column `{}`: {detail} (in a batch of {} rows)",
            self.function, self.column, self.rows
        ))
    }
}

/// The first null row of an array, if any.
fn first_null(a: &dyn Array) -> Option<usize> {
    a.logical_nulls()
        .and_then(|n| (0..a.len()).find(|&i| n.is_null(i)))
}

/// A variable-length list column's values (those its rows cover) and each row's length.
fn list_values<O: OffsetSizeTrait>(a: &GenericListArray<O>) -> (ArrayRef, Vec<usize>) {
    let offsets: Vec<usize> = a.value_offsets().iter().map(|o| o.as_usize()).collect();
    let start = offsets.first().copied().unwrap_or(0);
    let end = offsets.last().copied().unwrap_or(0);
    let lengths = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    (a.values().slice(start, end - start), lengths)
}

/// A list column as one host tensor of shape `[rows, ...row shape]`, its values cast to the
/// input's dtype. Null rows, null values and rows of the wrong length are errors naming the row.
pub fn list_to_tensor(array: &ArrayRef, spec: &RowSpec, origin: &Origin) -> Result<HostTensor> {
    let rows = array.len();
    if let Some(row) = first_null(array.as_ref()) {
        return Err(origin.err(format!(
            "row {row} is null; the model's input `{}` takes {} per row",
            spec.name,
            describe_row(spec)
        )));
    }
    // The flat values and the length of every row (all equal, checked below).
    let (values, lengths): (ArrayRef, Vec<usize>) = match array.data_type() {
        DataType::FixedSizeList(_, n) => {
            let a = array.as_fixed_size_list();
            (a.values().clone(), vec![*n as usize; rows])
        }
        DataType::List(_) => list_values(array.as_list::<i32>()),
        DataType::LargeList(_) => list_values(array.as_list::<i64>()),
        t if is_number(t) && spec.width() == Some(1) => (array.clone(), vec![1; rows]),
        other => {
            return Err(origin.err(format!(
                "is {other}, not a list of numbers; the model's input `{}` takes {} per row",
                spec.name,
                describe_row(spec)
            )));
        }
    };
    let width = match spec.width() {
        Some(w) => w,
        None => lengths.first().copied().unwrap_or(0),
    };
    if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, l)| **l != width) {
        return Err(origin.err(format!(
            "row {row} holds {len} values; the model's input `{}` {} takes {} per row",
            spec.name,
            spec.keras_shape(),
            if spec.width().is_some() {
                describe_row(spec)
            } else {
                format!("{width} (the length of the batch's first row)")
            }
        )));
    }
    let row_dims = spec.dims_for_width(width).ok_or_else(|| {
        origin.err(format!(
            "rows of {width} values do not fit the model's input `{}` {}",
            spec.name,
            spec.keras_shape()
        ))
    })?;
    if let Some(i) = first_null(values.as_ref()) {
        return Err(origin.err(format!(
            "row {} holds a null value (item {}); the model takes numbers only",
            i / width.max(1),
            i % width.max(1)
        )));
    }
    let mut shape = vec![rows];
    shape.extend(row_dims);
    let data = values_to_host(&values, spec.dtype, origin)?;
    HostTensor::from_data(&shape, data).map_err(|e| origin.err(e))
}

/// Number columns packed side by side into one host tensor of shape `[rows, columns]`.
pub fn pack_columns(
    arrays: &[ArrayRef],
    names: &[String],
    spec: &RowSpec,
    function: &str,
) -> Result<HostTensor> {
    let rows = arrays.first().map_or(0, |a| a.len());
    let mut columns = Vec::with_capacity(arrays.len());
    for (a, name) in arrays.iter().zip(names) {
        let origin = Origin {
            function,
            column: name,
            rows,
        };
        if let Some(row) = first_null(a.as_ref()) {
            return Err(origin.err(format!("row {row} is null; the model takes numbers only")));
        }
        columns.push(values_to_host(a, spec.dtype, &origin)?);
    }
    let k = columns.len();
    let data = match spec.dtype {
        DType::F32 => HostData::F32(interleave(&columns, rows, |d| match d {
            HostData::F32(v) => Some(v.as_slice()),
            _ => None,
        })),
        DType::I32 => HostData::I32(interleave(&columns, rows, |d| match d {
            HostData::I32(v) => Some(v.as_slice()),
            _ => None,
        })),
        DType::U32 => HostData::U32(interleave(&columns, rows, |d| match d {
            HostData::U32(v) => Some(v.as_slice()),
            _ => None,
        })),
        DType::Bool => HostData::Bool(interleave(&columns, rows, |d| match d {
            HostData::Bool(v) => Some(v.as_slice()),
            _ => None,
        })),
    };
    let mut shape = vec![rows];
    shape.extend(spec.dims.iter().map(|d| d.unwrap_or(k)));
    HostTensor::from_data(&shape, data)
        .map_err(|e| DataFusionError::Execution(format!("{function}: {e}")))
}

fn interleave<T: Copy + Default>(
    columns: &[HostData],
    rows: usize,
    view: impl Fn(&HostData) -> Option<&[T]>,
) -> Vec<T> {
    let k = columns.len();
    let mut out = vec![T::default(); rows * k];
    for (j, c) in columns.iter().enumerate() {
        if let Some(v) = view(c) {
            for (i, &x) in v.iter().enumerate().take(rows) {
                out[i * k + j] = x;
            }
        }
    }
    out
}

fn describe_row(spec: &RowSpec) -> String {
    match spec.width() {
        Some(w) => format!("{w} {} values", spec.dtype.name()),
        None => format!(
            "{} values of shape {}",
            spec.dtype.name(),
            spec.keras_shape()
        ),
    }
}

/// An Arrow array of numbers as host data of `dtype`. Casts are checked: a value that does not
/// fit (an `Int64` past `int32`) is an error, never a silent wrap.
fn values_to_host(values: &ArrayRef, dtype: DType, origin: &Origin) -> Result<HostData> {
    let target = arrow_element(dtype);
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    if !is_number(values.data_type()) {
        return Err(origin.err(format!(
            "holds {} values; the model takes {}",
            values.data_type(),
            dtype.name()
        )));
    }
    let cast = cast_with_options(values, &target, &options).map_err(|e| {
        origin.err(format!(
            "its {} values do not convert to {}: {e}",
            values.data_type(),
            dtype.name()
        ))
    })?;
    Ok(match dtype {
        DType::F32 => HostData::F32(cast.as_primitive::<Float32Type>().values().to_vec()),
        DType::I32 => HostData::I32(cast.as_primitive::<Int32Type>().values().to_vec()),
        DType::U32 => HostData::U32(cast.as_primitive::<UInt32Type>().values().to_vec()),
        DType::Bool => HostData::Bool(cast.as_boolean().iter().map(|b| b == Some(true)).collect()),
    })
}

/// A model output of shape `[rows, ...]` as a list column, one row per batch item.
pub fn tensor_to_list(t: HostTensor, spec: &RowSpec, function: &str) -> Result<ArrayRef> {
    let shape = t.shape().to_vec();
    let rows = shape.first().copied().unwrap_or(1);
    let width: usize = shape.iter().skip(1).product();
    let (_, data) = t.into_parts();
    let values: ArrayRef = match data {
        HostData::F32(v) => Arc::new(Float32Array::from(v)),
        HostData::I32(v) => Arc::new(Int32Array::from(v)),
        HostData::U32(v) => Arc::new(UInt32Array::from(v)),
        HostData::Bool(v) => Arc::new(BooleanArray::from(v)),
    };
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    let err = |e: datafusion::arrow::error::ArrowError| {
        DataFusionError::Execution(format!(
            "{function}: output `{}` of shape {shape:?}: {e}",
            spec.name
        ))
    };
    Ok(match spec.width() {
        Some(w) => {
            if w != width {
                return Err(DataFusionError::Execution(format!(
                    "{function}: output `{}` has {width} values per row, not the {w} its shape \
                     {} promised",
                    spec.name,
                    spec.keras_shape()
                )));
            }
            Arc::new(FixedSizeListArray::try_new(item, w as i32, values, None).map_err(err)?)
        }
        None => {
            if rows
                .checked_mul(width)
                .is_none_or(|n| n > i32::MAX as usize)
            {
                return Err(DataFusionError::Execution(format!(
                    "{function}: output `{}` of shape {shape:?} holds more values than an \
                     Arrow list column of one batch can (2^31 - 1): use a smaller batch size",
                    spec.name
                )));
            }
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(width, rows));
            Arc::new(ListArray::try_new(item, offsets, values, None).map_err(err)?)
        }
    })
}

/// The struct type of several outputs, one field per output.
pub fn outputs_struct_type(outputs: &[RowSpec]) -> DataType {
    DataType::Struct(outputs_fields(outputs))
}

fn outputs_fields(outputs: &[RowSpec]) -> Fields {
    outputs
        .iter()
        .map(|o| Arc::new(Field::new(&o.name, o.arrow_list_type(), false)) as FieldRef)
        .collect()
}

/// Several output columns as one struct column.
pub fn outputs_to_struct(columns: Vec<ArrayRef>, outputs: &[RowSpec]) -> Result<ArrayRef> {
    Ok(Arc::new(StructArray::try_new(
        outputs_fields(outputs),
        columns,
        None,
    )?))
}
