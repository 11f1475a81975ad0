//! Rust operators `+ - * / %` and unary `-` on tensors and with `f32` or `i32` scalars on
//! either side, broadcasting as NumPy does and promoting dtypes as Keras does (`/` is true
//! division, `%` is Python's modulo).

use crate::op::BinaryOp;
use crate::tensor::Tensor;
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

macro_rules! scalar_operator {
    ($trait:ident, $method:ident, $op:ident, $t:ty) => {
        impl $trait<$t> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: $t) -> Tensor {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl $trait<$t> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: $t) -> Tensor {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl $trait<&Tensor> for $t {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                crate::ops::apply_binary(BinaryOp::$op, &self, &rhs)
            }
        }
        impl $trait<Tensor> for $t {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                crate::ops::apply_binary(BinaryOp::$op, &self, &rhs)
            }
        }
    };
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl $trait<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl $trait<Tensor> for &Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl $trait<&Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: &Tensor) -> Tensor {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        impl $trait<Tensor> for Tensor {
            type Output = Tensor;
            fn $method(self, rhs: Tensor) -> Tensor {
                self.binary(BinaryOp::$op, &rhs)
            }
        }
        scalar_operator!($trait, $method, $op, f32);
        scalar_operator!($trait, $method, $op, i32);
    };
}

binary_operator!(Add, add, Add);
binary_operator!(Sub, sub, Sub);
binary_operator!(Mul, mul, Mul);
binary_operator!(Div, div, Div);
binary_operator!(Rem, rem, Mod);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.negative()
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.negative()
    }
}
