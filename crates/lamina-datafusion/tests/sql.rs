//! Models as DataFusion functions on one machine: SQL and DataFrames over Parquet files made
//! here, checked row by row against `predict` on the same rows.

mod common;

use common::*;
use datafusion::arrow::array::{Array, AsArray, Float32Array, RecordBatch, StructArray};
use datafusion::arrow::datatypes::Float32Type;
use datafusion::physical_plan::ExecutionPlanProperties;
use datafusion::prelude::*;
use lamina_datafusion::{model_udf, model_udf_from_file};
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_100000_rows_in_several_partitions_equals_predict() {
    let dir = temp_dir("sql100k");
    let rows = 100_000;
    let data = values(rows * 8, 1);
    let path = dir.join("data.parquet");
    write_parquet(
        &path,
        vec![("id", ids(rows)), ("features", fixed_list(&data, 8))],
        12_500,
    );
    let model = mlp();
    let want = predict_rows(&model, &data, 8);
    let want = want[0].as_f32().unwrap();

    // Four partitions and batches of 4,096 rows: many predict calls, several threads.
    let config = SessionConfig::new()
        .with_target_partitions(4)
        .with_batch_size(4096);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(model_udf("score", &model).unwrap());
    ctx.register_parquet(
        "data",
        path.to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let df = ctx
        .sql("SELECT id, score(features) AS p FROM data")
        .await
        .unwrap();
    let plan = df.clone().create_physical_plan().await.unwrap();
    assert!(
        plan.output_partitioning().partition_count() > 1,
        "the scan should be split"
    );
    let batches = df.collect().await.unwrap();
    assert!(batches.len() > 1, "several batches");
    assert_rows_match(&rows_by_id(&batches, "p"), want, 3, rows);

    // The same through the DataFrame API and a model read from its file.
    let file = dir.join("mlp.lamina");
    model.save(&file).unwrap();
    let from_file = model_udf_from_file("score_file", &file).unwrap();
    let df = ctx
        .table("data")
        .await
        .unwrap()
        .select(vec![
            col("id"),
            from_file.call(vec![col("features")]).alias("p"),
        ])
        .unwrap();
    let batches = df.collect().await.unwrap();
    assert_rows_match(&rows_by_id(&batches, "p"), want, 3, rows);
}

#[tokio::test]
async fn a_lambda_model_takes_packed_number_columns_or_a_pandas_style_list() {
    let dir = temp_dir("lambda");
    let rows = 3000;
    let data = values(rows * 4, 2);
    let model = lambda_model();
    let want = predict_rows(&model, &data, 4);
    let want = want[0].as_f32().unwrap();
    let column = |j: usize| -> std::sync::Arc<dyn Array> {
        std::sync::Arc::new(Float32Array::from(
            (0..rows).map(|i| data[i * 4 + j]).collect::<Vec<_>>(),
        ))
    };
    let as_f64: Vec<f64> = data.iter().map(|&v| v as f64).collect();
    let path = dir.join("cols.parquet");
    write_parquet(
        &path,
        vec![
            ("id", ids(rows)),
            ("a", column(0)),
            ("b", column(1)),
            ("c", column(2)),
            ("d", column(3)),
            ("features", float64_list(&as_f64, &vec![4; rows])),
        ],
        1000,
    );
    let ctx = SessionContext::new();
    ctx.register_udf(model_udf("anti", &model).unwrap());
    ctx.register_parquet("t", path.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let packed = query(&ctx, "SELECT id, anti(a, b, c, d) AS p FROM t").await;
    assert_rows_match(&rows_by_id(&packed, "p"), want, 2, rows);
    // A List<Float64> column: cast to float32 per value, which is how predict saw them.
    let listed = query(&ctx, "SELECT id, anti(features) AS p FROM t").await;
    assert_rows_match(&rows_by_id(&listed, "p"), want, 2, rows);
}

#[tokio::test]
async fn several_outputs_come_back_as_a_struct_named_by_the_output_layers() {
    let rows = 500;
    let data = values(rows * 8, 3);
    let model = two_heads();
    let want = predict_rows(&model, &data, 8);
    let ctx = SessionContext::new();
    ctx.register_udf(model_udf("heads", &model).unwrap());
    let batch =
        RecordBatch::try_from_iter(vec![("id", ids(rows)), ("features", fixed_list(&data, 8))])
            .unwrap();
    ctx.register_batch("t", batch).unwrap();
    let batches = query(&ctx, "SELECT id, heads(features) AS p FROM t").await;
    let mut classes = HashMap::new();
    let mut value = HashMap::new();
    for b in &batches {
        let s: &StructArray = b.column_by_name("p").unwrap().as_struct();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["classes", "value"]);
        let one = RecordBatch::try_from_iter(vec![
            ("id", b.column_by_name("id").unwrap().clone()),
            ("classes", s.column(0).clone()),
            ("value", s.column(1).clone()),
        ])
        .unwrap();
        classes.extend(rows_by_id(std::slice::from_ref(&one), "classes"));
        value.extend(rows_by_id(std::slice::from_ref(&one), "value"));
    }
    assert_rows_match(&classes, want[0].as_f32().unwrap(), 3, rows);
    assert_rows_match(&value, want[1].as_f32().unwrap(), 1, rows);
    // A softmax's rows sum to one: the struct's fields are not swapped.
    for v in classes.values() {
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[tokio::test]
async fn nulls_and_wrong_lengths_are_errors_naming_the_column_and_row() {
    let model = lambda_model();
    let ctx = SessionContext::new();
    ctx.register_udf(model_udf("anti", &model).unwrap());

    // A null row.
    let lists =
        datafusion::arrow::array::ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
            Some(vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
            None,
        ]);
    let batch = RecordBatch::try_from_iter(vec![("x", std::sync::Arc::new(lists) as _)]).unwrap();
    ctx.register_batch("nulls", batch).unwrap();
    let err = query_error(&ctx, "SELECT anti(x) FROM nulls").await;
    assert!(err.contains("anti: column `x`: row 2 is null"), "{err}");

    // A row of the wrong length.
    let lists =
        datafusion::arrow::array::ListArray::from_iter_primitive::<Float32Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
            Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
        ]);
    let batch = RecordBatch::try_from_iter(vec![("x", std::sync::Arc::new(lists) as _)]).unwrap();
    ctx.register_batch("short", batch).unwrap();
    let err = query_error(&ctx, "SELECT anti(x) FROM short").await;
    assert!(
        err.contains("column `x`: row 1 holds 3 values") && err.contains("takes 4"),
        "{err}"
    );

    // A null value inside a row.
    let lists = datafusion::arrow::array::ListArray::from_iter_primitive::<Float32Type, _, _>(
        vec![Some(vec![Some(1.0), None, Some(3.0), Some(4.0)])],
    );
    let batch = RecordBatch::try_from_iter(vec![("x", std::sync::Arc::new(lists) as _)]).unwrap();
    ctx.register_batch("holes", batch).unwrap();
    let err = query_error(&ctx, "SELECT anti(x) FROM holes").await;
    assert!(err.contains("row 0 holds a null value (item 1)"), "{err}");

    // A fixed-size list of the wrong size is refused when the query is planned.
    let batch =
        RecordBatch::try_from_iter(vec![("x", fixed_list(&[1.0, 2.0, 3.0, 4.0, 5.0], 5))]).unwrap();
    ctx.register_batch("wide", batch).unwrap();
    let err = query_error(&ctx, "SELECT anti(x) FROM wide").await;
    assert!(
        err.contains("column `x` holds lists of 5 values") && err.contains("takes 4 per row"),
        "{err}"
    );

    // Text is not a feature column; nor is a wrong number of columns.
    let batch = RecordBatch::try_from_iter(vec![(
        "s",
        std::sync::Arc::new(datafusion::arrow::array::StringArray::from(vec!["a"])) as _,
    )])
    .unwrap();
    ctx.register_batch("text", batch).unwrap();
    let err = query_error(&ctx, "SELECT anti(s, s) FROM text").await;
    assert!(err.contains("2 argument(s) given"), "{err}");
}

#[tokio::test]
async fn integer_inputs_take_int64_lists_and_refuse_values_past_int32() {
    let x = lamina::prelude::Input::new(&[3])
        .dtype(lamina::prelude::DType::I32)
        .tensor();
    let emb = lamina::prelude::Embedding::new(10, 2);
    use lamina::prelude::Layer;
    let y = lamina::prelude::Flatten::new()
        .call(emb.call(&x).unwrap())
        .unwrap();
    let model = lamina::prelude::Model::new(&[x], &[y]).unwrap();
    let ids: Vec<i32> = vec![1, 2, 3, 9, 0, 4];
    use lamina::prelude::Predict;
    let want = model
        .predict(lamina::prelude::HostTensor::new(&[2, 3], ids.clone()).unwrap())
        .unwrap();
    let ctx = SessionContext::new();
    ctx.register_udf(model_udf("embed", &model).unwrap());
    let lists = datafusion::arrow::array::ListArray::from_iter_primitive::<
        datafusion::arrow::datatypes::Int64Type,
        _,
        _,
    >(vec![
        Some(ids[..3].iter().map(|&v| Some(v as i64)).collect::<Vec<_>>()),
        Some(ids[3..].iter().map(|&v| Some(v as i64)).collect::<Vec<_>>()),
    ]);
    let batch = RecordBatch::try_from_iter(vec![
        ("id", common::ids(2)),
        ("tokens", std::sync::Arc::new(lists) as _),
    ])
    .unwrap();
    ctx.register_batch("t", batch).unwrap();
    let got = query(&ctx, "SELECT id, embed(tokens) AS p FROM t").await;
    let got = rows_by_id(&got, "p");
    assert_rows_match(&got, want[0].as_f32().unwrap(), 6, 2);

    let lists = datafusion::arrow::array::ListArray::from_iter_primitive::<
        datafusion::arrow::datatypes::Int64Type,
        _,
        _,
    >(vec![Some(vec![Some(1), Some(1 << 40), Some(2)])]);
    let batch =
        RecordBatch::try_from_iter(vec![("tokens", std::sync::Arc::new(lists) as _)]).unwrap();
    ctx.register_batch("big", batch).unwrap();
    let err = query_error(&ctx, "SELECT embed(tokens) FROM big").await;
    assert!(
        err.contains("column `tokens`") && err.contains("do not convert to int32"),
        "{err}"
    );
}

#[tokio::test]
async fn a_constant_argument_is_scored_once_per_row() {
    let model = lambda_model();
    let want = predict_rows(&model, &[1.0, 2.0, 3.0, 4.0], 4);
    let want = want[0].as_f32().unwrap();
    let ctx = SessionContext::new();
    ctx.register_udf(model_udf("anti", &model).unwrap());
    let batch = RecordBatch::try_from_iter(vec![("id", common::ids(3))]).unwrap();
    ctx.register_batch("t", batch).unwrap();
    let got = query(
        &ctx,
        "SELECT id, anti(make_array(1.0, 2.0, 3.0, 4.0)) AS p FROM t",
    )
    .await;
    let got = rows_by_id(&got, "p");
    assert_eq!(got.len(), 3);
    for v in got.values() {
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() <= 1e-6, "{v:?} vs {want:?}");
        }
    }
}
