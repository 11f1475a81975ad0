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

#[test]
fn helpers_are_parsed_from_the_file() {
    let names: Vec<&str> = lamina_shaders::helper_names().collect();
    let in_file = lamina_shaders::HELPERS
        .lines()
        .filter(|l| l.starts_with("fn "))
        .count();
    assert_eq!(names.len(), in_file);
    for n in &names {
        assert!(n.starts_with("lamina_"), "{n}");
        let text = lamina_shaders::helper(n).unwrap();
        assert!(text.contains(&format!("fn {n}(")), "{n}: {text}");
        assert!(text.ends_with("}\n"), "{n}: {text:?}");
    }
    // A comment just above a function travels with it.
    assert!(
        lamina_shaders::helper("lamina_tanh")
            .unwrap()
            .starts_with("//")
    );
    // Together, the helpers are every function of the file, in file order.
    let all =
        lamina_shaders::helpers_for(&names.iter().map(|n| format!("{n}()")).collect::<String>());
    let fns = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("fn "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(fns(&all), fns(lamina_shaders::HELPERS));
}

#[test]
fn each_helper_alone_with_its_dependencies_is_valid() {
    for name in lamina_shaders::helper_names() {
        let src = lamina_shaders::helpers_for(&format!("{name}("));
        assert!(src.contains(&format!("fn {name}(")), "{name}");
        validate(name, &src);
    }
}

#[test]
fn helpers_for_takes_only_what_a_kernel_calls() {
    // No helper calls: nothing.
    assert_eq!(
        lamina_shaders::helpers_for("fn main() { let x = exp(1.0); }"),
        ""
    );
    // One helper with no dependencies: that helper alone.
    let src = "let y = lamina_isnan(x);";
    let got = lamina_shaders::helpers_for(src);
    assert_eq!(got, lamina_shaders::helper("lamina_isnan").unwrap());
    // A helper and its transitive dependencies (tanh -> exp_normal -> exp_poly, exp2i,
    // exp_reduce; tanh -> isnan), in file order, and nothing else.
    let got = lamina_shaders::helpers_for("out[i] = lamina_tanh (a) + b; // lamina_erf(x)");
    let names: Vec<&str> = got
        .lines()
        .filter_map(|l| l.strip_prefix("fn "))
        .map(|l| &l[..l.find('(').unwrap()])
        .collect();
    let mut want = vec![
        "lamina_exp_poly",
        "lamina_exp2i",
        "lamina_exp_reduce",
        "lamina_exp_normal",
        "lamina_tanh",
        "lamina_isnan",
    ];
    let order = |n: &&str| lamina_shaders::helper_names().position(|m| m == *n);
    want.sort_by_key(order);
    assert_eq!(names, want);
    // Names that merely start like a helper, or are not helpers, are ignored.
    assert_eq!(
        lamina_shaders::helpers_for("my_lamina_max(a); lamina_nope(b);"),
        ""
    );
    assert_eq!(
        lamina_shaders::helpers_called("lamina_max(lamina_isnan(a), lamina_max(b))"),
        vec!["lamina_max", "lamina_isnan"]
    );
}
