//! Keras-style layers: `Input`, `Lambda`, `Dense`, and activations.

mod activation;
mod dense;
mod input;
mod lambda;

pub use activation::Activation;
pub use dense::Dense;
pub use input::{Input, InputLayer};
pub use lambda::{
    Lambda, LambdaFunction, LambdaMask, LambdaScope, MaskFunction, OutputShape, OutputShapeFunction,
};
