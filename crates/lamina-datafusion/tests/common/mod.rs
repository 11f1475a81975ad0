//! Test tables and models: Parquet files made here, models built in Rust.

#![allow(dead_code)]

use datafusion::arrow::array::{
    ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array, ListArray,
    RecordBatch,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;
use lamina::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh folder under the system's temporary folder, removed with its files when dropped
/// (at the end of the test that made it, passed or failed).
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh [`TempDir`] named after `name` and this process.
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("lamina-df-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Deterministic values in [-2, 2) from a seed (the benchmarks' generator).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    lamina::bench::seeded(n, seed)
}

/// `features` as a fixed-size list column of `width` float32 values per row.
pub fn fixed_list(data: &[f32], width: usize) -> ArrayRef {
    let item = Arc::new(Field::new_list_field(DataType::Float32, true));
    Arc::new(
        FixedSizeListArray::try_new(
            item,
            width as i32,
            Arc::new(Float32Array::from(data.to_vec())),
            None,
        )
        .unwrap(),
    )
}

/// A list column (as pandas writes lists) of float64 values, rows of the given lengths.
pub fn float64_list(data: &[f64], lengths: &[usize]) -> ArrayRef {
    let item = Arc::new(Field::new_list_field(DataType::Float64, true));
    Arc::new(
        ListArray::try_new(
            item,
            OffsetBuffer::from_lengths(lengths.iter().copied()),
            Arc::new(Float64Array::from(data.to_vec())),
            None,
        )
        .unwrap(),
    )
}

/// Writes `columns` as a Parquet file with row groups of `group` rows.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, group: usize) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The ids 0..n as an Int64 column.
pub fn ids(n: usize) -> ArrayRef {
    Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()))
}

/// A small MLP: 8 features, 16 hidden units with relu, 3 outputs.
pub fn mlp() -> Model {
    let x = Input::new(&[8]).tensor();
    let h = Dense::new(16)
        .activation(Activation::Relu)
        .call(&x)
        .unwrap();
    let y = Dense::new(3).call(&h).unwrap();
    Model::new(&[x], &[y]).unwrap()
}

/// A model whose middle is a Lambda (the antirectifier of Keras's examples), 4 features in.
pub fn lambda_model() -> Model {
    let x = Input::new(&[4]).tensor();
    let a = Lambda::new(|x| {
        let x = x - x.mean_keepdims(1);
        let x = x.l2_normalize(1);
        Tensor::concatenate(&[x.relu(), (-&x).relu()], 1)
    })
    .name("antirectifier")
    .call(&x)
    .unwrap();
    let y = Dense::new(2).call(&a).unwrap();
    Model::new(&[x], &[y]).unwrap()
}

/// A model with two outputs: a softmax over 3 classes and a single score.
pub fn two_heads() -> Model {
    let x = Input::new(&[8]).tensor();
    let h = Dense::new(6).activation(Activation::Tanh).call(&x).unwrap();
    let classes = Dense::new(3)
        .activation(Activation::Softmax)
        .name("classes")
        .call(&h)
        .unwrap();
    let value = Dense::new(1).name("value").call(&h).unwrap();
    Model::new(&[x], &[classes, value]).unwrap()
}

/// `predict` on rows of `width` features: the reference for every query here.
pub fn predict_rows(model: &Model, data: &[f32], width: usize) -> Vec<HostTensor> {
    let x = HostTensor::new(&[data.len() / width, width], data.to_vec()).unwrap();
    model.predict(&x).unwrap()
}

/// A Parquet file's batches.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// The rows of `batches` as id (the Int64 column `id`) → values of the list column `column`.
pub fn rows_by_id(batches: &[RecordBatch], column: &str) -> HashMap<i64, Vec<f32>> {
    let mut out = HashMap::new();
    for b in batches {
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let list = b.column_by_name(column).unwrap().as_fixed_size_list();
        for i in 0..b.num_rows() {
            let v = list.value(i);
            out.insert(
                ids.value(i),
                v.as_primitive::<Float32Type>().values().to_vec(),
            );
        }
    }
    out
}

/// Each row's values equal `predict`'s row of the same id (`want`, `width` per row), within
/// 1e-5 relative.
pub fn assert_rows_match(got: &HashMap<i64, Vec<f32>>, want: &[f32], width: usize, rows: usize) {
    assert_eq!(got.len(), rows, "one prediction per row");
    for (id, v) in got {
        let i = *id as usize;
        let w = &want[i * width..(i + 1) * width];
        assert_eq!(v.len(), width);
        for (a, b) in v.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "row {id}: {v:?} against predict's {w:?}"
            );
        }
    }
}

/// A query's batches.
pub async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.expect(sql).collect().await.expect(sql)
}

/// The error a query gives, whether it is refused when planned or fails when run.
pub async fn query_error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.expect_err(sql).to_string(),
        Err(e) => e.to_string(),
    }
}
