//! Every `.wgsl` file of the shaders folder parses and validates with naga (as wgpu does before
//! compiling), with no GPU needed; and the embedded text is the file's.

use std::path::Path;

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
}

#[test]
fn every_shader_file_is_valid_wgsl() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let src = std::fs::read_to_string(&path).unwrap();
            validate(&path.display().to_string(), &src);
            count += 1;
        }
    }
    assert!(count >= 1, "no .wgsl files in {}", dir.display());
    let helpers = std::fs::read_to_string(dir.join("helpers.wgsl")).unwrap();
    assert_eq!(lamina_shaders::HELPERS, helpers);
}
