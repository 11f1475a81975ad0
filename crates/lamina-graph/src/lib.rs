//! The graph crate of Lamina: symbolic tensors, the primitive op IR, shape inference, layers
//! (`Input`, `Lambda`, `Dense`) and models (`Sequential`, functional `Model`). It knows nothing
//! of devices; backends compile its `Program`s.

pub mod dtype;
pub mod error;
pub mod host;
pub mod infer;
pub mod layer;
pub mod layers;
pub mod limits;
pub mod model;
pub mod npy;
pub mod op;
pub mod ops;
pub mod saving;
pub mod shape;
pub mod tensor;
pub mod variable;

pub use dtype::DType;
pub use error::{Error, Result};
pub use host::{Element, HostData, HostTensor};
pub use layer::{Layer, LayerCall, LayerInputs, LayerRef, call_layer, call_layer_with_masks};
pub use layers::MultiHeadAttention;
pub use layers::{
    Activation, ActivationLayer, Add, Average, Concatenate, DataFormat, Dense, Dropout, Embedding,
    Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D, Input, InputLayer, Lambda, LambdaMask,
    LambdaScope, LayerNormalization, Masking, Maximum, Minimum, Multiply, OutputShape, Rescaling,
    Reshape, Softmax, Subtract,
};
pub use layers::{AdditiveAttention, Attention, ScoreMode};
pub use layers::{
    AveragePooling1D, AveragePooling2D, BatchNormalization, Conv1D, Conv1DTranspose, Conv2D,
    Conv2DTranspose, DepthwiseConv2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling1D,
    MaxPooling2D, Padding, SeparableConv1D, SeparableConv2D, Sizes,
};
pub use layers::{Bidirectional, GRU, LSTM, MergeMode, SimpleRNN};
pub use layers::{
    CenterCrop, FixedStatistics, LayerScale, Normalization, ResizeMethod, Resizing, StochasticDepth,
};
pub use layers::{
    Cropping1D, Cropping2D, Dot, ELU, Interpolation, LeakyReLU, PReLU, Permute, ReLU, RepeatVector,
    TimeDistributed, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D,
};
pub use model::{Model, Program, ProgramNode, Sequential, SequentialItem};
pub use op::ReduceOp;
pub use ops::{Axes, Operand, Size, SliceArg};
pub use saving::keras::KerasBindings;
pub use shape::{Dim, Shape};
pub use tensor::Tensor;
pub use variable::{Variable, VariableKind};
