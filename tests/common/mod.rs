//! What the integration tests share: the GPU backend when an adapter exists.

use lamina::GpuBackend;
use std::sync::Arc;

/// The shared GPU backend, or `None` (with a line saying so) where there is no adapter; with
/// `LAMINA_REQUIRE_GPU=1`, as in CI, a missing adapter fails the test instead. The first call
/// names the adapter on stderr, past the test harness's capture, so that CI logs show it.
pub fn gpu() -> Option<Arc<GpuBackend>> {
    match lamina::shared_gpu() {
        Ok(g) => {
            static NAMED: std::sync::Once = std::sync::Once::new();
            NAMED.call_once(|| {
                use std::io::Write;
                let line = format!("GPU tests run on: {}\n", g.context().adapter);
                let _ = std::io::stderr().write_all(line.as_bytes());
            });
            Some(g)
        }
        Err(e) => {
            if std::env::var("LAMINA_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("LAMINA_REQUIRE_GPU=1 but there is no GPU adapter: {e}");
            }
            eprintln!("skipping the GPU part: {e}");
            None
        }
    }
}
