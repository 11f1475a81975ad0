//! Lamina models as Apache DataFusion scalar functions: score a table with SQL or DataFrames on
//! one machine, or on an Apache Ballista cluster whose executors rebuild the function from the
//! query plan.
//!
//! ```no_run
//! use datafusion::prelude::*;
//! # async fn run() -> datafusion::error::Result<()> {
//! let ctx = SessionContext::new();
//! ctx.register_udf(lamina_datafusion::model_udf_from_file("score", "model.lamina")
//!     .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?);
//! ctx.register_parquet("data", "data.parquet", ParquetReadOptions::default()).await?;
//! let df = ctx.sql("SELECT id, score(features) AS p FROM data").await?;
//! df.show().await?;
//! # Ok(()) }
//! ```

pub mod cluster;
mod codec;
mod columns;
pub mod score;
mod source;
mod udf;

pub use codec::{LaminaLogicalCodec, LaminaPhysicalCodec};
pub use columns::RowSpec;
/// The DataFusion this crate is built against (with its Arrow and Parquet).
pub use datafusion;
pub use source::{INLINE_LIMIT, ModelSource};
pub use udf::{ModelUdf, model_udf, model_udf_from_file};

/// The book's chapter on this crate (`docs/src/datafusion.md`), its examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/src/datafusion.md")]
pub struct BookChapter;
