//! The check made before anything is built: every layer class of the configuration known (or
//! bound from Rust as a custom class), every `keras.ops` call supported and every `Lambda`
//! bound, so that a model Lamina cannot run is refused with the complete list.

use super::read::{cfg_of, class_of, function_name, is_container, is_op, model_err, name_of};
use super::{is_supported, supported_classes};
use crate::KerasBindings;
use lamina_graph::error::Result;
use lamina_graph::limits::{bounded_list, printable};
use serde_json::Value;
use std::collections::BTreeMap;

/// Refuses `layers` (a model's layer list) when it uses a class Lamina lacks or a Lambda or
/// custom layer that has no Rust binding, naming every such layer.
pub(super) fn refuse_unsupported(layers: &[Value], bindings: &KerasBindings) -> Result<()> {
    let mut missing = BTreeMap::new();
    let mut unbound = Vec::new();
    check(layers, bindings, &mut missing, &mut unbound);
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "it uses layer classes Lamina does not have: {} (Lamina has: {})",
            bounded_list(
                &missing
                    .iter()
                    .map(|(c, names)| format!(
                        "{} ({})",
                        printable(c),
                        bounded_list(
                            &names
                                .iter()
                                .map(|n| printable(n).into_owned())
                                .collect::<Vec<_>>(),
                            ", "
                        )
                    ))
                    .collect::<Vec<_>>(),
                ", "
            ),
            supported_classes().collect::<Vec<_>>().join(", ")
        ));
    }
    if !unbound.is_empty() {
        problems.push(format!(
            "{} layer(s) need a Rust body (Keras stores Lambda functions as Python code and \
             custom layers as their config only, neither of which Lamina runs): {}",
            unbound.len(),
            bounded_list(&unbound, "; ")
        ));
    }
    if !problems.is_empty() {
        return Err(model_err(problems.join("; ")));
    }
    Ok(())
}

/// Walks the configuration and collects every unsupported class and every unbound Lambda.
fn check(
    layers: &[Value],
    bindings: &KerasBindings,
    missing: &mut BTreeMap<String, Vec<String>>,
    unbound: &mut Vec<String>,
) {
    for l in layers {
        let class = class_of(l);
        let name = name_of(l);
        if is_op(l) {
            if !crate::ops::is_supported(class) {
                missing
                    .entry(format!("{class} (a keras.ops operation)"))
                    .or_default()
                    .push(name);
            }
            continue;
        }
        if class == "Lambda" {
            if let Some(problem) = lambda_problem(l, &name, bindings) {
                unbound.push(problem);
            }
            continue;
        }
        if is_container(class) {
            if let Some(inner) = cfg_of(l).get("layers").and_then(Value::as_array) {
                check(inner, bindings, missing, unbound);
            }
            continue;
        }
        if is_custom(l, bindings) {
            continue;
        }
        if !is_supported(class) {
            if crate::custom::registered_name(l).is_some()
                || l.get("module")
                    .and_then(Value::as_str)
                    .is_some_and(|m| !m.starts_with("keras"))
            {
                unbound.push(crate::custom::unbound_message(&name, class, l));
                continue;
            }
            missing.entry(class.to_string()).or_default().push(name);
            continue;
        }
        // Wrappers: the layers they wrap must be known (and bound) too.
        let inner: Vec<Value> = ["layer", "backward_layer"]
            .iter()
            .filter_map(|k| cfg_of(l).get(*k))
            .filter(|v| v.is_object())
            .cloned()
            .collect();
        if !inner.is_empty() && matches!(class, "Bidirectional" | "TimeDistributed") {
            check(&inner, bindings, missing, unbound);
        }
    }
}

/// What is wrong with Lambda `l` (named `name`) for lack of a binding: none bound, or one
/// without the mask function Keras records; `None` where it is bound as it needs.
fn lambda_problem(l: &Value, name: &str, bindings: &KerasBindings) -> Option<String> {
    let cfg = cfg_of(l);
    let f = cfg.get("function").unwrap_or(&Value::Null);
    let fname = function_name(f);
    let has_mask = cfg.get("mask").is_some_and(|m| !m.is_null());
    match bindings.get(name, fname) {
        None => {
            let multi = l
                .get("inbound_nodes")
                .and_then(|n| n.get(0))
                .and_then(|n| n.get("args"))
                .and_then(|a| a.get(0))
                .is_some_and(Value::is_array);
            Some(format!(
                "Lambda '{}' ({}{}): bind it from Rust with \
                 KerasBindings::new().bind(\"{}\", {}{})",
                printable(name),
                describe_function(f),
                if has_mask {
                    "; it also has a mask function"
                } else {
                    ""
                },
                printable(fname.unwrap_or(name)),
                if multi {
                    "Lambda::multi(|xs| ...)"
                } else {
                    "Lambda::new(|x| ...)"
                },
                if has_mask {
                    ".mask_fn(|xs, masks| ...)"
                } else {
                    ""
                }
            ))
        }
        Some(b) if has_mask && b.mask_spec().is_none() => Some(format!(
            "Lambda '{}' has a mask function in Keras but its binding has no mask: \
             add .mask_fn(|xs, masks| ...) (or .mask(...)) to the bound Lambda",
            printable(name)
        )),
        Some(_) => None,
    }
}

/// What Keras recorded for a Lambda's function, for the error that asks for a binding.
fn describe_function(f: &Value) -> String {
    if class_of(f) == "__lambda__" {
        let code = cfg_of(f).get("code").and_then(Value::as_str).unwrap_or("");
        let Some(bytes) = crate::base64::decode(code) else {
            return "a Python lambda, as bytecode that is not valid base64".into();
        };
        let names: Vec<String> = crate::base64::marshal_strings(&bytes, 1)
            .into_iter()
            .filter(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_<>./-".contains(c))
            })
            .take(8)
            .collect();
        return format!(
            "a Python lambda, recorded as {} bytes of Python bytecode (never run by Lamina; \
             strings in it: {})",
            bytes.len(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        );
    }
    match function_name(f) {
        Some(n) => format!(
            "the Python function '{}'{}",
            printable(n),
            match f.get("module").and_then(Value::as_str) {
                Some(m) if m != "builtins" => format!(" of module '{}'", printable(m)),
                _ => String::new(),
            }
        ),
        None => "a function Keras recorded in a form Lamina does not read".into(),
    }
}

/// Whether layer `entry` is of a class Lamina lacks and is bound from Rust with
/// `KerasBindings::bind_class`.
pub(super) fn is_custom(entry: &Value, bindings: &KerasBindings) -> bool {
    let class = class_of(entry);
    !is_supported(class)
        && bindings
            .class_binding(
                &name_of(entry),
                crate::custom::registered_name(entry),
                class,
            )
            .is_some()
}
