//! Concatenations of many tensors as trees of narrower ones, so that no kernel reads more
//! buffers than a device binds (a GPU kernel binds a few dozen storage buffers; a model may
//! join hundreds of tensors).

use lamina_graph::infer::infer;
use lamina_graph::op::Op;
use lamina_graph::{Program, ProgramNode, Result};

/// The program with every concatenation of more than `max_parts` tensors (at least 2) replaced
/// by concatenations of at most `max_parts` joined again, level by level: the same values, in
/// the same order. `None` when no concatenation is that wide.
pub fn split_wide_concats(program: &Program, max_parts: usize) -> Result<Option<Program>> {
    let max_parts = max_parts.max(2);
    let wide = |n: &ProgramNode| matches!(n.op, Op::Concat { .. }) && n.inputs.len() > max_parts;
    if !program.nodes.iter().any(wide) {
        return Ok(None);
    }
    let mut nodes: Vec<ProgramNode> = Vec::with_capacity(program.nodes.len() + 16);
    let mut map = Vec::with_capacity(program.nodes.len());
    for node in &program.nodes {
        let mut inputs: Vec<usize> = node.inputs.iter().map(|&j| map[j]).collect();
        if wide(node) {
            while inputs.len() > max_parts {
                let mut level = Vec::with_capacity(inputs.len().div_ceil(max_parts));
                for part in inputs.chunks(max_parts) {
                    if let [single] = part {
                        level.push(*single);
                        continue;
                    }
                    let typed: Vec<_> = part
                        .iter()
                        .map(|&j| (nodes[j].shape.clone(), nodes[j].dtype))
                        .collect();
                    let (shape, dtype) = infer(&node.op, &typed).map_err(|e| node.attribute(e))?;
                    nodes.push(ProgramNode {
                        op: node.op.clone(),
                        inputs: part.to_vec(),
                        shape,
                        dtype,
                        layer: node.layer.clone(),
                    });
                    level.push(nodes.len() - 1);
                }
                inputs = level;
            }
        }
        nodes.push(ProgramNode {
            inputs,
            ..node.clone()
        });
        map.push(nodes.len() - 1);
    }
    Ok(Some(Program {
        nodes,
        inputs: program.inputs.iter().map(|&i| map[i]).collect(),
        outputs: program.outputs.iter().map(|&o| map[o]).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_graph::{Input, Model, Tensor};

    #[test]
    fn a_wide_concatenation_becomes_a_tree_of_narrow_ones_with_the_same_shape() {
        let x = Input::new(&[3]).tensor();
        let parts: Vec<Tensor> = (0..100).map(|i| &x + i as f32).collect();
        let y = Tensor::concatenate(&parts, 1);
        let model = Model::new(&[x], &[y]).unwrap();
        let program = model.program().clone();
        let split = split_wide_concats(&program, 8).unwrap().unwrap();
        let widest = split
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Concat { .. }))
            .map(|n| n.inputs.len())
            .max()
            .unwrap();
        assert!(widest <= 8, "{widest}");
        let out = &split.nodes[split.outputs[0]];
        assert_eq!(out.shape, program.nodes[program.outputs[0]].shape);
        assert!(split_wide_concats(&split, 8).unwrap().is_none());
    }
}
