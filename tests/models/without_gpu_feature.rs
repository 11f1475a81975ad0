//! Built only without the `gpu` feature, when the test files that compare the CPU interpreter
//! with the GPU backend are not built at all: says so past the harness's capture, and fails
//! where `LAMINA_REQUIRE_GPU=1` asks for the GPU tests.
#![cfg(not(feature = "gpu"))]

#[test]
fn gpu_comparison_tests_are_not_built_without_the_gpu_feature() {
    use std::io::Write;
    let _ = std::io::stderr().write_all(
        b"GPU comparison tests not built: this build has no `gpu` feature \
          (cargo test --all-features builds them)\n",
    );
    assert!(
        std::env::var("LAMINA_REQUIRE_GPU").as_deref() != Ok("1"),
        "LAMINA_REQUIRE_GPU=1, but this build has no `gpu` feature"
    );
}
