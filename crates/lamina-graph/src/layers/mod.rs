//! Keras-style layers: `Input`, `Lambda`, `Dense`, and the inference layer set (embedding,
//! masking, pooling, normalisation, merging, reshaping, elementwise).

mod activation;
mod attention;
mod batch_normalization;
mod common;
mod conv;
mod dense;
mod dot_attention;
mod elementwise;
mod embedding;
mod image;
mod init;
mod input;
mod lambda;
mod masking;
mod merge;
mod normalization;
mod permute;
mod pooling;
mod preprocessing;
mod recurrent;
mod relu;
mod reshaping;
mod residual;
mod softmax;
mod spatial;
mod time_distributed;
mod window_pooling;

pub use activation::{Activation, ActivationFunction, CustomActivation};
pub use attention::MultiHeadAttention;
pub use batch_normalization::BatchNormalization;
pub(crate) use common::{with_stored_weights, with_weight_budget};
pub use conv::{
    Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, DepthwiseConv2D, Padding, SeparableConv1D,
    SeparableConv2D, Sizes,
};
pub use dense::Dense;
pub use dot_attention::{AdditiveAttention, Attention, ScoreMode};
pub use elementwise::{ActivationLayer, Dropout, Rescaling};
pub use embedding::Embedding;
pub(crate) use image::{image_layer_from_record, image_layer_record};
pub use input::{Input, InputLayer};
pub use lambda::{
    Lambda, LambdaFunction, LambdaMask, LambdaScope, MaskFunction, MultiOutputFunction,
    OutputMasksFunction, OutputShape, OutputShapeFunction,
};
pub use masking::Masking;
pub use merge::{Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract};
pub use normalization::LayerNormalization;
pub use permute::{Dot, Permute, RepeatVector};
pub use pooling::{DataFormat, GlobalAveragePooling1D, GlobalMaxPooling1D};
pub use preprocessing::{CenterCrop, FixedStatistics, Normalization, ResizeMethod, Resizing};
pub use recurrent::{Bidirectional, GRU, LSTM, MergeMode, SimpleRNN};
pub(crate) use recurrent::{recurrent_layer_from_record, recurrent_layer_record};
pub use relu::{ELU, LeakyReLU, PReLU, ReLU};
pub use reshaping::{Flatten, Reshape};
pub use residual::{LayerScale, StochasticDepth};
pub use softmax::Softmax;
pub use spatial::{
    Cropping1D, Cropping2D, Interpolation, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D,
};
pub use time_distributed::TimeDistributed;
pub use window_pooling::{
    AveragePooling1D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling1D,
    MaxPooling2D,
};
