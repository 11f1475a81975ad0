//! Matrix products: `matmul` with NumPy semantics, Keras's `batch_dot`, and `dot`.

use crate::error::Error;
use crate::op::Op;
use crate::shape::{Dim, shapes_string};
use crate::tensor::Tensor;

impl Tensor {
    /// NumPy `matmul`: the last two axes multiply, leading axes broadcast; a rank-1 operand is
    /// promoted to a matrix and the added axis removed afterwards.
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        if let Some(e) = self.error().or(other.error()) {
            return Tensor::invalid(e.clone());
        }
        let (ra, rb) = (self.rank(), other.rank());
        if ra == 0 || rb == 0 {
            return Tensor::invalid(Error::IncompatibleShapes {
                op: "matmul".into(),
                shapes: shapes_string(&[&self.shape(), &other.shape()]),
                detail: "matmul does not take scalars; use multiply".into(),
            });
        }
        let a = if ra == 1 {
            self.expand_dims(0)
        } else {
            self.clone()
        };
        let b = if rb == 1 {
            other.expand_dims(-1)
        } else {
            other.clone()
        };
        let out = Tensor::from_op(Op::MatMul, &[&a, &b]);
        if let Some(e) = out.error() {
            // Report the shapes the user gave, not the promoted ones.
            if let Error::IncompatibleShapes { op, detail, .. } = e {
                return Tensor::invalid(Error::IncompatibleShapes {
                    op: op.clone(),
                    shapes: shapes_string(&[&self.shape(), &other.shape()]),
                    detail: detail.clone(),
                });
            }
            return out;
        }
        // Remove the promoted axes: b's added column is last, a's added row is just before it
        // (or last, once b's is gone), so `vector @ vector` ends as a scalar.
        match (ra == 1, rb == 1) {
            (true, true) => out.squeeze([-2, -1]),
            (true, false) => out.squeeze(-2),
            (false, true) => out.squeeze(-1),
            (false, false) => out,
        }
    }

    /// Keras's `batch_dot(x, y, axes)`: for each sample of the batch (axis 0), the dot product
    /// of `x` and `y` over `axes.0` of `x` and `axes.1` of `y`. Rank-2 operands give shape
    /// `(batch, 1)`; rank-3 operands a batched matrix product. Negative axes count from the end.
    pub fn batch_dot(&self, other: &Tensor, axes: (isize, isize)) -> Tensor {
        if let Some(e) = self.error().or(other.error()) {
            return Tensor::invalid(e.clone());
        }
        let (ra, rb) = (self.rank() as isize, other.rank() as isize);
        let unsupported = |detail: &str| {
            Tensor::invalid(Error::IncompatibleShapes {
                op: "batch_dot".into(),
                shapes: shapes_string(&[&self.shape(), &other.shape()]),
                detail: detail.into(),
            })
        };
        let ax = if axes.0 < 0 { axes.0 + ra } else { axes.0 };
        let ay = if axes.1 < 0 { axes.1 + rb } else { axes.1 };
        if !(1..ra).contains(&ax) || !(1..rb).contains(&ay) {
            return unsupported("axes must name a non-batch axis of each input");
        }
        if !(2..=3).contains(&ra) || !(2..=3).contains(&rb) {
            return unsupported("batch_dot takes inputs of rank 2 or 3");
        }
        // Rank-2 operands meet in a broadcasting multiply, which would accept a size-1 axis
        // against a longer one; the contracted sizes must be equal.
        if let (Some(Dim::Known(kx)), Some(Dim::Known(ky))) = (self.dim(ax), other.dim(ay))
            && kx != ky
        {
            return unsupported(&format!(
                "the contracted axes differ in size: {kx} (axis {ax} of x) vs {ky} (axis {ay} of y)"
            ));
        }
        // Move x's contracted axis last and y's to position 1, then multiply matrices.
        let x = if ra == 3 && ax == 1 {
            self.swapaxes(1, 2)
        } else {
            self.clone()
        };
        let y = if rb == 3 && ay == 2 {
            other.swapaxes(1, 2)
        } else {
            other.clone()
        };
        match (ra, rb) {
            (2, 2) => x.multiply(&y).sum_keepdims(1),
            (3, 3) => x.matmul(&y),
            (3, 2) => x.matmul(&y.expand_dims(-1)).squeeze(-1),
            (2, 3) => x.expand_dims(1).matmul(&y).squeeze(1),
            _ => unsupported("batch_dot takes inputs of rank 2 or 3"),
        }
    }

    /// The dot product of NumPy's `dot` for rank-1 and rank-2 operands (same as `matmul`).
    pub fn dot(&self, other: &Tensor) -> Tensor {
        self.matmul(other)
    }
}
