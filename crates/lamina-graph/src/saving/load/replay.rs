//! The replay of a recorded body (a Lambda's function, its mask function, a custom activation)
//! on new inputs.

use crate::error::Error;
use crate::host::HostTensor;
use crate::saving::format::{BodyRecord, OpRecord};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// The function of a loaded Lambda: replays its recorded body on new inputs.
pub(super) fn replay(
    body: &BodyRecord,
    constants: &[HostTensor],
    initial: &HashMap<String, HostTensor>,
    xs: &[Tensor],
    masks: &[Option<Tensor>],
    scope: Option<&crate::layers::LambdaScope<'_>>,
) -> Tensor {
    let bad = |detail: String| {
        Tensor::invalid(Error::Model {
            detail: format!("recorded body: {detail}"),
        })
    };
    if xs.len() != body.inputs {
        return bad(format!(
            "takes {} inputs, called on {}",
            body.inputs,
            xs.len()
        ));
    }
    let mut values: Vec<Tensor> = Vec::with_capacity(body.nodes.len());
    for (i, node) in body.nodes.iter().enumerate() {
        if let Some(&j) = node.inputs.iter().find(|&&j| j >= i) {
            return bad(format!(
                "node {i} reads node {j}, which does not come before it"
            ));
        }
        let t = match &node.op {
            OpRecord::Input { index } => match xs.get(*index) {
                Some(x) => x.clone(),
                None => return bad(format!("node {i} reads input {index} of {}", xs.len())),
            },
            OpRecord::Constant { id } => match constants.get(*id) {
                Some(c) => Tensor::constant(c.clone()),
                None => return bad(format!("node {i} reads constant {id}, which is not stored")),
            },
            OpRecord::InputMask { index } => match masks.get(*index) {
                Some(Some(m)) => m.clone(),
                _ => {
                    return bad(format!(
                        "node {i} reads the mask of input {index}, which has none"
                    ));
                }
            },
            OpRecord::Variable { name } => match (initial.get(name), scope) {
                (Some(v), Some(scope)) => scope.variable_from(name, v.clone()),
                _ => {
                    return bad(format!(
                        "node {i} reads variable '{name}', which is not stored here"
                    ));
                }
            },
            OpRecord::Argument { name } => match scope {
                Some(scope) => scope.argument(name),
                None => {
                    return bad(format!(
                        "node {i} reads argument '{name}' outside the function"
                    ));
                }
            },
            OpRecord::Op(op) => {
                let ins: Vec<&Tensor> = node.inputs.iter().map(|&j| &values[j]).collect();
                Tensor::from_op(op.clone(), &ins)
            }
        };
        if !node.inputs.is_empty() && !matches!(node.op, OpRecord::Op(_)) {
            return bad(format!("node {i} is a leaf but lists inputs"));
        }
        values.push(t);
    }
    match values.get(body.output) {
        Some(t) => t.clone(),
        None => bad(format!("output node {} does not exist", body.output)),
    }
}
