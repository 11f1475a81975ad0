//! `score` (what `lamina score` runs) on one machine: a Parquet file in, predictions beside
//! the other columns out, written atomically.

mod common;

use common::*;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Float32Type, Int64Type};
use lamina_datafusion::score::{ScoreOptions, score};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_writes_predictions_beside_the_other_columns() {
    let dir = temp_dir("score");
    let rows = 20_000;
    let data = values(rows * 8, 5);
    let input = dir.join("in.parquet");
    let labels: Vec<i64> = (0..rows as i64).map(|i| i % 7).collect();
    write_parquet(
        &input,
        vec![
            ("id", ids(rows)),
            ("features", fixed_list(&data, 8)),
            (
                "label",
                std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(labels.clone()))
                    as _,
            ),
        ],
        5000,
    );
    let model = mlp();
    let model_file = dir.join("mlp.lamina");
    model.save(&model_file).unwrap();
    let want = predict_rows(&model, &data, 8);
    let want = want[0].as_f32().unwrap();

    let out = dir.join("out.parquet");
    let mut options = ScoreOptions::new(&model_file, &input, &out);
    options.progress = Some(false);
    let report = score(&options).await.unwrap();
    assert_eq!(report.rows, rows as u64);
    let batches = read_parquet(&out);
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "label", "prediction"]);
    let mut seen = 0;
    for b in &batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let label = b.column(1).as_primitive::<Int64Type>();
        let p = b.column(2).as_fixed_size_list();
        for i in 0..b.num_rows() {
            let r = id.value(i) as usize;
            assert_eq!(label.value(i), labels[r]);
            let v = p.value(i);
            let v = v.as_primitive::<Float32Type>().values();
            for (a, w) in v.iter().zip(&want[r * 3..r * 3 + 3]) {
                assert!((a - w).abs() <= 1e-5 * w.abs().max(1.0), "row {r}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, rows);

    // A query of one's own.
    let out2 = dir.join("top.parquet");
    let mut options = ScoreOptions::new(&model_file, &input, &out2);
    options.sql = Some("SELECT id, score(features) AS p FROM input WHERE label = 3".into());
    options.progress = Some(false);
    let report = score(&options).await.unwrap();
    assert_eq!(
        report.rows,
        labels.iter().filter(|&&l| l == 3).count() as u64
    );
}

#[tokio::test]
async fn a_failed_run_keeps_the_previous_output_and_leaves_no_temporary_file() {
    let dir = temp_dir("score-fail");
    let rows = 100;
    let data = values(rows * 4, 9);
    let input = dir.join("in.parquet");
    // Rows of 4 values for a model that takes 8: the error names the column and row.
    write_parquet(
        &input,
        vec![
            ("id", ids(rows)),
            (
                "features",
                float64_list(
                    &data.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                    &vec![4; rows],
                ),
            ),
        ],
        50,
    );
    let model_file = dir.join("mlp.lamina");
    mlp().save(&model_file).unwrap();
    let out = dir.join("out.parquet");
    std::fs::write(&out, b"yesterday's predictions").unwrap();
    let mut options = ScoreOptions::new(&model_file, &input, &out);
    options.progress = Some(false);
    let err = score(&options).await.unwrap_err().to_string();
    assert!(
        err.contains("column `features`: row 0 holds 4 values") && err.contains("takes 8"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"yesterday's predictions");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".tmp-")),
        "temporary files left: {names:?}"
    );

    // A column that is not there: the error lists the input's columns.
    let mut options = ScoreOptions::new(&model_file, &input, &out);
    options.columns = vec!["x".into()];
    let err = score(&options).await.unwrap_err().to_string();
    assert!(
        err.contains("no column `x`") && err.contains("`features`"),
        "{err}"
    );
}
