//! The table is complete and its WGSL is valid: every op's spelling for every dtype it takes,
//! with the helpers it calls, validates with naga.

use super::*;
use crate::gpu::wgsl::reg_type;

const DTYPES: [DType; 4] = [DType::F32, DType::I32, DType::U32, DType::Bool];

fn validate(what: &str, body: &str) {
    let src = format!("{body}\n{}", lamina_shaders::helpers_for(body));
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{what}: {}\n{src}", e.emit_to_string(&src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what}: {e:?}\n{src}"));
}

fn known_helpers(what: &str, template: &str) {
    for c in template.match_indices("lamina_") {
        let name: String = template[c.0..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            lamina_shaders::helper(&name).is_some(),
            "{what}: {name} is not in helpers.wgsl"
        );
    }
}

#[test]
fn the_op_lists_are_complete_and_ordered() {
    // `unary` and `binary` match exhaustively, and `ALL` is made from the declaration of the
    // enum itself: the op at place `i` is the `i`th variant.
    for (i, op) in UnaryOp::ALL.into_iter().enumerate() {
        assert_eq!(op as usize, i);
        assert_eq!(unary(op).op, op);
    }
    for (i, op) in BinaryOp::ALL.into_iter().enumerate() {
        assert_eq!(op as usize, i);
        assert_eq!(binary(op).op, op);
    }
}

#[test]
fn every_unary_spelling_is_valid_wgsl() {
    for op in UnaryOp::ALL {
        let def = unary(op);
        let mut any = false;
        for d in DTYPES {
            let Some(t) = def.wgsl(d) else { continue };
            any = true;
            let what = format!("{} on {d}", def.name());
            known_helpers(&what, t);
            let out = match (d, def.f32, def.i32, def.u32, def.bool) {
                (
                    DType::F32,
                    Some(Impl {
                        cpu: Fn1::Test(_), ..
                    }),
                    ..,
                ) => "bool",
                _ => reg_type(d),
            };
            let expr = render(t, &[("x", "x")]);
            validate(
                &what,
                &format!("fn f(x: {}) -> {out} {{ return {expr}; }}", reg_type(d)),
            );
            assert_eq!(def.helpers(d), lamina_shaders::helpers_called(t));
        }
        assert!(any, "{} takes no dtype", def.name());
    }
}

#[test]
fn every_binary_spelling_is_valid_wgsl() {
    for op in BinaryOp::ALL {
        let def = binary(op);
        for d in DTYPES {
            let Some(t) = def.wgsl(d) else { continue };
            let what = format!("{} on {d}", def.name());
            known_helpers(&what, t);
            let test = match d {
                DType::F32 => matches!(def.f32.unwrap().cpu, Fn2::Test(_)),
                DType::I32 => matches!(def.i32.unwrap().cpu, Fn2::Test(_)),
                DType::U32 => matches!(def.u32.unwrap().cpu, Fn2::Test(_)),
                DType::Bool => matches!(def.bool.unwrap().cpu, Fn2::Test(_)),
            };
            assert_eq!(test, op.is_comparison(), "{what}");
            let out = if test { "bool" } else { reg_type(d) };
            let expr = render(t, &[("a", "a"), ("b", "b")]);
            let ty = reg_type(d);
            validate(
                &what,
                &format!("fn f(a: {ty}, b: {ty}) -> {out} {{ return {expr}; }}"),
            );
            assert_eq!(def.helpers(d), lamina_shaders::helpers_called(t));
        }
    }
}

#[test]
fn every_cast_is_valid_wgsl() {
    for from in DTYPES {
        for to in DTYPES {
            let t = cast_wgsl(from, to);
            let what = format!("cast {from} to {to}");
            known_helpers(&what, t);
            let expr = render(t, &[("x", "x")]);
            validate(
                &what,
                &format!(
                    "fn f(x: {}) -> {} {{ return {expr}; }}",
                    reg_type(from),
                    reg_type(to)
                ),
            );
        }
    }
}

#[test]
fn render_fills_placeholders_in_one_pass() {
    assert_eq!(
        render("max({a}, {b})", &[("a", "{b}"), ("b", "y")]),
        "max({b}, y)"
    );
    assert_eq!(render("f({x}) {y}", &[("x", "v")]), "f(v) {y}");
    assert_eq!(render("{x", &[("x", "v")]), "{x");
}

#[test]
fn casts_follow_numpy() {
    assert_eq!(f32::NAN.to_i32(), 0);
    assert_eq!(3e10f32.to_i32(), i32::MAX);
    assert_eq!((-1.5f32).to_u32(), 0);
    assert_eq!((-1.7f32).to_i32(), -1);
    assert!(f32::NAN.to_bool());
    assert!(!(-0.0f32).to_bool());
    assert_eq!(true.to_f32(), 1.0);
    assert_eq!((-1i32).to_u32(), u32::MAX);
    assert_eq!(<f32 as Scalar>::DTYPE, DType::F32);
}
