//! Convolution: `Tensor::conv`, the primitive behind the convolution layers. It stays one
//! node of the graph; each backend computes it with kernels of its own.

use crate::op::{ConvSpec, Op};
use crate::tensor::Tensor;

impl Tensor {
    /// The convolution of channels-last `self` (`(batch, spatial..., in)`) with `kernel`
    /// (`(k..., in / groups, out)`), plus `bias` (`(out,)`) when given; see [`ConvSpec`].
    pub fn conv(&self, kernel: &Tensor, bias: Option<&Tensor>, spec: ConvSpec) -> Tensor {
        match bias {
            Some(b) => Tensor::from_op(Op::Conv { spec }, &[self, kernel, b]),
            None => Tensor::from_op(Op::Conv { spec }, &[self, kernel]),
        }
    }
}
