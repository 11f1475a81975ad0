//! Plan codecs that carry model functions inside serialized query plans, so that a Ballista
//! scheduler and its executors rebuild them without any registration; everything else goes to
//! the codec they wrap (Ballista's own, by default).

use crate::source::ModelSource;
use crate::udf::ModelUdf;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// Model functions already rebuilt in this process, by name and model hash: every task of a
/// query (and later queries) reuses one function and so one compiled session.
static DECODED: LazyLock<Mutex<DecodedFunctions>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Model functions by name and model hash.
type DecodedFunctions = HashMap<(String, [u8; 32]), Arc<ScalarUDF>>;

/// Writes a model function's plan bytes; any other function goes to `fallback`.
fn encode_udf_or(
    node: &ScalarUDF,
    buf: &mut Vec<u8>,
    fallback: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let inner: &dyn Any = node.inner().as_ref();
    match inner.downcast_ref::<ModelUdf>() {
        Some(udf) => {
            buf.extend_from_slice(&udf.source().encode());
            Ok(())
        }
        None => fallback(buf),
    }
}

/// Rebuilds a model function from plan bytes written by `encode_udf_or`; any other bytes go
/// to `fallback`.
fn decode_udf_or(
    name: &str,
    buf: &[u8],
    fallback: impl FnOnce() -> Result<Arc<ScalarUDF>>,
) -> Result<Arc<ScalarUDF>> {
    if ModelSource::is_encoded(buf) {
        decode_udf(name, buf)
    } else {
        fallback()
    }
}

/// Rebuilds a model function from its plan bytes, once per process.
fn decode_udf(name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
    let digest = ModelSource::encoded_digest(buf).unwrap_or([0; 32]);
    let key = (name.to_string(), digest);
    if let Some(udf) = DECODED.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(udf.clone());
    }
    let err = |e: lamina_graph::Error| DataFusionError::Execution(format!("{name}: {e}"));
    let (model, source) = ModelSource::decode(buf).map_err(err)?;
    let udf = Arc::new(ScalarUDF::new_from_impl(
        ModelUdf::new(name, model, source).map_err(err)?,
    ));
    DECODED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, udf.clone());
    Ok(udf)
}

/// A logical plan codec that carries model functions and hands everything else to `inner`.
#[derive(Debug)]
pub struct LaminaLogicalCodec {
    inner: Arc<dyn LogicalExtensionCodec>,
}

impl LaminaLogicalCodec {
    /// Wraps a codec.
    pub fn new(inner: Arc<dyn LogicalExtensionCodec>) -> Self {
        LaminaLogicalCodec { inner }
    }
}

impl Default for LaminaLogicalCodec {
    /// Wraps Ballista's codec.
    fn default() -> Self {
        LaminaLogicalCodec::new(Arc::new(BallistaLogicalExtensionCodec::default()))
    }
}

impl LogicalExtensionCodec for LaminaLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: datafusion::arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf_or(name, buf, || self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_udf_or(node, buf, |buf| self.inner.try_encode_udf(node, buf))
    }
}

/// A physical plan codec that carries model functions and hands everything else to `inner`.
#[derive(Debug)]
pub struct LaminaPhysicalCodec {
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl LaminaPhysicalCodec {
    /// Wraps a codec.
    pub fn new(inner: Arc<dyn PhysicalExtensionCodec>) -> Self {
        LaminaPhysicalCodec { inner }
    }
}

impl Default for LaminaPhysicalCodec {
    /// Wraps Ballista's codec.
    fn default() -> Self {
        LaminaPhysicalCodec::new(Arc::new(BallistaPhysicalExtensionCodec::default()))
    }
}

impl PhysicalExtensionCodec for LaminaPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf_or(name, buf, || self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_udf_or(node, buf, |buf| self.inner.try_encode_udf(node, buf))
    }
}
