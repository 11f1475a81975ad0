//! Keras-style layers: `Input`, `Lambda`, `Dense`, and the inference layer set (embedding,
//! masking, pooling, normalisation, merging, reshaping, elementwise).

mod attention;
mod batch_normalization;
mod common;
mod conv;
mod dense;
mod dot_attention;
mod elementwise;
mod embedding;
mod identity;
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
pub mod registry;
mod relu;
mod reshaping;
mod residual;
mod softmax;
mod spatial;
mod time_distributed;
mod window_pooling;

pub use crate::activation::{Activation, ActivationFunction, CustomActivation};
pub use attention::MultiHeadAttention;
pub use attention::MultiHeadAttentionConfig;
pub use batch_normalization::BatchNormalization;
pub use batch_normalization::BatchNormalizationConfig;
pub(crate) use common::with_stored_weights;
pub use common::with_weight_budget;
pub use conv::ConvConfig;
pub use conv::{
    Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, DepthwiseConv2D, Padding, SeparableConv1D,
    SeparableConv2D, Sizes,
};
pub use dense::Dense;
pub use dense::DenseConfig;
pub use dot_attention::{AdditiveAttention, Attention, ScoreMode};
pub use dot_attention::{AdditiveAttentionConfig, AttentionConfig};
pub use elementwise::{ActivationConfig, DropoutConfig, RescalingConfig};
pub use elementwise::{ActivationLayer, Dropout, Rescaling};
pub use embedding::Embedding;
pub use embedding::EmbeddingConfig;
pub use identity::{Identity, IdentityConfig};
pub use input::{Input, InputLayer};
pub use lambda::{
    Lambda, LambdaFunction, LambdaMask, LambdaScope, MaskFunction, MultiOutputFunction,
    OutputMasksFunction, OutputShape, OutputShapeFunction,
};
pub use masking::Masking;
pub use masking::MaskingConfig;
pub use merge::{Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract};
pub use merge::{ConcatenateConfig, MergeConfig};
pub use normalization::LayerNormalization;
pub use normalization::LayerNormalizationConfig;
pub use permute::{Dot, Permute, RepeatVector};
pub use permute::{DotConfig, PermuteConfig, RepeatVectorConfig};
pub use pooling::{DataFormat, GlobalAveragePooling1D, GlobalMaxPooling1D};
pub use preprocessing::{CenterCrop, FixedStatistics, Normalization, ResizeMethod, Resizing};
pub use preprocessing::{CenterCropConfig, NormalizationConfig, ResizingConfig};
pub use recurrent::{Bidirectional, GRU, LSTM, MergeMode, SimpleRNN};
pub use recurrent::{BidirectionalConfig, RnnConfig};
pub use registry::{
    ConfigContext, Configurable, SerializedLayer, WrappedLayer, build_layer, layer_classes,
    serialize_layer,
};
pub use relu::{ELU, LeakyReLU, PReLU, ReLU};
pub use relu::{ELUConfig, LeakyReLUConfig, PReLUConfig, ReLUConfig};
pub use reshaping::{Flatten, Reshape};
pub use reshaping::{FlattenConfig, ReshapeConfig};
pub use residual::{LayerScale, StochasticDepth};
pub use residual::{LayerScaleConfig, StochasticDepthConfig};
pub use softmax::Softmax;
pub use softmax::SoftmaxConfig;
pub use spatial::{
    Cropping1D, Cropping2D, Interpolation, UpSampling1D, UpSampling2D, ZeroPadding1D, ZeroPadding2D,
};
pub use spatial::{
    Cropping1DConfig, Cropping2DConfig, UpSampling1DConfig, UpSampling2DConfig,
    ZeroPadding1DConfig, ZeroPadding2DConfig,
};
pub use time_distributed::TimeDistributed;
pub use time_distributed::TimeDistributedConfig;
pub use window_pooling::{
    AveragePooling1D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling1D,
    MaxPooling2D,
};
pub use window_pooling::{GlobalPoolConfig, PoolConfig};
