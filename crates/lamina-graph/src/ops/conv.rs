//! Convolution: `Tensor::conv`, the primitive behind the convolution layers, and its expansion
//! into slices, concatenations and a matrix product (im2col) for backends without a
//! convolution kernel of their own.

use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::infer::infer;
use crate::model::{Program, ProgramNode};
use crate::op::{AxisSlice, BinaryOp, ConvSpec, Op};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::sync::Arc;

impl Tensor {
    /// The convolution of channels-last `self` (`(batch, spatial..., in)`) with `kernel`
    /// (`(k..., in / groups, out)`), plus `bias` (`(out,)`) when given; see [`ConvSpec`].
    pub fn conv(&self, kernel: &Tensor, bias: Option<&Tensor>, spec: ConvSpec) -> Tensor {
        match bias {
            Some(b) => Tensor::from_op(Op::Conv(spec), &[self, kernel, b]),
            None => Tensor::from_op(Op::Conv(spec), &[self, kernel]),
        }
    }
}

/// Appends nodes with concrete shapes to a program under construction.
struct Builder {
    nodes: Vec<ProgramNode>,
    shapes: Vec<Vec<usize>>,
    layer: Option<Arc<(String, &'static str)>>,
}

impl Builder {
    fn push(&mut self, op: Op, inputs: &[usize]) -> Result<usize> {
        let typed: Vec<(Shape, crate::dtype::DType)> = inputs
            .iter()
            .map(|&j| (Shape::known(&self.shapes[j]), self.nodes[j].dtype))
            .collect();
        let (shape, dtype) = infer(&op, &typed)?;
        let concrete = shape
            .dims()
            .iter()
            .map(|d| d.known())
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| Error::Model {
                detail: "convolution expansion left a dimension unknown".into(),
            })?;
        self.nodes.push(ProgramNode {
            op,
            inputs: inputs.to_vec(),
            shape,
            dtype,
            layer: self.layer.clone(),
        });
        self.shapes.push(concrete);
        Ok(self.nodes.len() - 1)
    }

    fn zeros(&mut self, shape: &[usize]) -> Result<usize> {
        let c = self.leaf_constant(HostTensor::scalar(0.0))?;
        self.push(
            Op::BroadcastTo {
                shape: shape.to_vec(),
            },
            &[c],
        )
    }

    fn leaf_constant(&mut self, value: HostTensor) -> Result<usize> {
        let shape = value.shape().to_vec();
        self.nodes.push(ProgramNode {
            op: Op::Constant(Arc::new(value)),
            inputs: vec![],
            shape: Shape::known(&shape),
            dtype: crate::dtype::DType::F32,
            layer: self.layer.clone(),
        });
        self.shapes.push(shape);
        Ok(self.nodes.len() - 1)
    }

    fn slice_axis(
        &mut self,
        x: usize,
        axis: usize,
        start: usize,
        stop: usize,
        step: usize,
    ) -> Result<usize> {
        let rank = self.shapes[x].len();
        let mut axes = vec![AxisSlice::FULL; rank];
        axes[axis] = AxisSlice {
            start: Some(start as i64),
            stop: Some(stop as i64),
            step: step as i64,
        };
        self.push(Op::Slice { axes }, &[x])
    }

    /// `x` with `lo` zeros before and `hi` after along `axis`.
    fn pad(&mut self, x: usize, axis: usize, lo: usize, hi: usize) -> Result<usize> {
        if lo == 0 && hi == 0 {
            return Ok(x);
        }
        let mut parts = Vec::new();
        for (n, first) in [(lo, true), (hi, false)] {
            if n == 0 {
                continue;
            }
            let mut s = self.shapes[x].clone();
            s[axis] = n;
            let z = self.zeros(&s)?;
            if first {
                parts.push(z);
                parts.push(x);
            } else {
                parts.push(z);
            }
        }
        if lo == 0 {
            parts.insert(0, x);
        }
        self.push(Op::Concat { axis }, &parts)
    }

    /// `x` with `step - 1` zeros between neighbours along `axis`.
    fn spread(&mut self, x: usize, axis: usize, step: usize) -> Result<usize> {
        let len = self.shapes[x][axis];
        if step == 1 || len <= 1 {
            return Ok(x);
        }
        let e = self.push(Op::ExpandDims { axis: axis + 1 }, &[x])?;
        let mut zs = self.shapes[e].clone();
        zs[axis + 1] = step - 1;
        let z = self.zeros(&zs)?;
        let joined = self.push(Op::Concat { axis: axis + 1 }, &[e, z])?;
        let mut target: Vec<i64> = self.shapes[x].iter().map(|&d| d as i64).collect();
        target[axis] = (len * step) as i64;
        let flat = self.push(Op::Reshape { target }, &[joined])?;
        self.slice_axis(flat, axis, 0, (len - 1) * step + 1, 1)
    }

    /// A convolution as im2col slices, one concatenation and a matrix product per group.
    fn conv(&mut self, spec: &ConvSpec, inputs: &[usize]) -> Result<usize> {
        let (mut x, kernel) = (inputs[0], inputs[1]);
        let r = spec.rank();
        for d in 0..r {
            x = self.spread(x, d + 1, spec.input_dilation[d])?;
            x = self.pad(x, d + 1, spec.padding[d].0, spec.padding[d].1)?;
        }
        let ks = self.shapes[kernel].clone();
        let (cig, cout) = (ks[r], ks[r + 1]);
        let cog = cout / spec.groups;
        let xs = self.shapes[x].clone();
        let out: Vec<usize> = (0..r)
            .map(|d| (xs[d + 1] - ((ks[d] - 1) * spec.dilation[d] + 1)) / spec.strides[d] + 1)
            .collect();
        let taps: usize = ks[..r].iter().product();
        let mut results = Vec::with_capacity(spec.groups);
        for g in 0..spec.groups {
            let xg = if spec.groups == 1 {
                x
            } else {
                self.slice_axis(x, r + 1, g * cig, (g + 1) * cig, 1)?
            };
            let mut cols = Vec::with_capacity(taps);
            for t in 0..taps {
                let mut rest = t;
                let mut pos = vec![0usize; r];
                for d in (0..r).rev() {
                    pos[d] = rest % ks[d];
                    rest /= ks[d];
                }
                let mut v = xg;
                for d in 0..r {
                    let start = pos[d] * spec.dilation[d];
                    let stop = start + (out[d] - 1) * spec.strides[d] + 1;
                    if start != 0 || stop != self.shapes[v][d + 1] || spec.strides[d] != 1 {
                        v = self.slice_axis(v, d + 1, start, stop, spec.strides[d])?;
                    }
                }
                cols.push(v);
            }
            let patches = if cols.len() == 1 {
                cols[0]
            } else {
                self.push(Op::Concat { axis: r + 1 }, &cols)?
            };
            let kg = if spec.groups == 1 {
                kernel
            } else {
                self.slice_axis(kernel, r + 1, g * cog, (g + 1) * cog, 1)?
            };
            let k2 = self.push(
                Op::Reshape {
                    target: vec![(taps * cig) as i64, cog as i64],
                },
                &[kg],
            )?;
            results.push(self.push(Op::MatMul, &[patches, k2])?);
        }
        let mut y = if results.len() == 1 {
            results[0]
        } else {
            self.push(Op::Concat { axis: r + 1 }, &results)?
        };
        if let Some(&b) = inputs.get(2) {
            y = self.push(Op::Binary(BinaryOp::Add), &[y, b])?;
        }
        Ok(y)
    }
}

/// The program with every convolution replaced by slices, concatenations and matrix products
/// (im2col), for concrete input shapes; `None` when it has no convolution. Backends without a
/// convolution kernel compile this instead; the result computes the same values.
pub fn expand_convolutions(
    program: &Program,
    input_shapes: &[Vec<usize>],
) -> Result<Option<Program>> {
    if !program.nodes.iter().any(|n| matches!(n.op, Op::Conv(_))) {
        return Ok(None);
    }
    let shapes = program.specialize(input_shapes)?;
    let mut b = Builder {
        nodes: Vec::with_capacity(program.nodes.len() * 2),
        shapes: Vec::with_capacity(program.nodes.len() * 2),
        layer: None,
    };
    let mut map = Vec::with_capacity(program.nodes.len());
    for (i, node) in program.nodes.iter().enumerate() {
        let inputs: Vec<usize> = node.inputs.iter().map(|&j| map[j]).collect();
        let new = match &node.op {
            Op::Conv(spec) => {
                b.layer = node.layer.clone();
                b.conv(spec, &inputs).map_err(|e| node.attribute(e))?
            }
            _ => {
                b.nodes.push(ProgramNode {
                    inputs,
                    ..node.clone()
                });
                b.shapes.push(shapes[i].clone());
                b.nodes.len() - 1
            }
        };
        map.push(new);
    }
    Ok(Some(Program {
        nodes: b.nodes,
        inputs: program.inputs.iter().map(|&i| map[i]).collect(),
        outputs: program.outputs.iter().map(|&o| map[o]).collect(),
    }))
}
