//! The model file format: a safetensors file whose tensors are the weights, arguments and
//! constants, and whose metadata holds the architecture as JSON (these records).

use crate::dtype::DType;
use crate::op::{ArgReduceOp, AxisSlice, BinaryOp, ConvSpec, ReduceOp, ScanOp, UnaryOp};
use serde::{Deserialize, Serialize};

/// The `format` metadata value of a Lamina model file.
pub const FORMAT_NAME: &str = "lamina-model";
/// The newest format version this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = 2;

/// A float configuration value that must be a finite `float32`: JSON holds no infinities, so
/// a value that is not finite as a `float32` (`1e39`) overflowed and is refused rather than
/// becoming `inf`. Every `f32` field of a record reads through this.
pub(crate) fn finite_f32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f64::deserialize(d)?;
    let f = v as f32;
    if !f.is_finite() {
        return Err(serde::de::Error::custom(format!(
            "{v} is not a finite float32 (the largest is {})",
            f32::MAX
        )));
    }
    Ok(f)
}

/// A whole model: its layers, the calls that wire them, and which calls are inputs/outputs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// The model's name.
    pub name: String,
    /// Whether it was a `Sequential` (affects only the summary's layout).
    pub sequential: bool,
    /// Every distinct layer once; calls refer to them by index.
    pub layers: Vec<LayerRecord>,
    /// Layer calls in order: each call's inputs are outputs of earlier calls.
    pub calls: Vec<CallRecord>,
    /// The calls (of input layers) whose outputs are the model's inputs, in order.
    pub inputs: Vec<usize>,
    /// The model's outputs.
    pub outputs: Vec<TensorRef>,
    /// The weights that are not trainable, by tensor name (`layers/{i}/weights/{name}`);
    /// every other weight is trainable. Absent in files without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_trainable: Vec<String>,
}

/// Output `output` of call `call`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TensorRef {
    /// Index into `Architecture::calls`.
    pub call: usize,
    /// Which output of that call.
    pub output: usize,
}

/// One call of a layer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CallRecord {
    /// Index into `Architecture::layers`.
    pub layer: usize,
    /// The tensors the layer was called on.
    pub inputs: Vec<TensorRef>,
    /// Masks given explicitly for the inputs (`Softmax::call_masked`), one per input; empty
    /// when the inputs' own masks were used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Option<TensorRef>>,
}

/// A layer's type and configuration. Weights live in the file's tensors, named
/// `layers/{index}/weights/{name}`, `layers/{index}/arguments/{name}` and
/// `layers/{index}/constants/{k}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "class", rename_all = "PascalCase", deny_unknown_fields)]
pub enum LayerRecord {
    /// An `Input`.
    InputLayer {
        /// The layer's name.
        name: String,
        /// The full shape, `null` for unknown dims.
        shape: Vec<Option<usize>>,
        /// The element type.
        dtype: DType,
    },
    /// A `Dense` layer; its kernel and bias are the weights `kernel` and `bias`.
    Dense {
        /// The layer's name.
        name: String,
        /// Output units.
        units: usize,
        /// Keras activation name (the given name of a custom activation).
        activation: String,
        /// A custom activation's body, traced on one input; absent for a named activation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation_body: Option<BodyRecord>,
        /// Whether there is a bias.
        use_bias: bool,
    },
    /// A `Lambda`: its body is the recorded expression graph, no code.
    Lambda {
        /// The layer's name.
        name: String,
        /// The declared output shape, if any.
        output_shape: Option<OutputShapeRecord>,
        /// Names of the arguments (tensors `layers/{i}/arguments/{name}`).
        arguments: Vec<String>,
        /// Names of the variables in creation order (tensors `layers/{i}/weights/{name}`).
        variables: Vec<String>,
        /// The expression graph from the call's inputs to its output.
        body: BodyRecord,
        /// The `mask` argument, if any.
        #[serde(default)]
        mask: Option<MaskRecord>,
        /// The arguments a call read as static values (their values are in the body); absent
        /// when there are none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        static_arguments: Vec<String>,
        /// The bodies of the outputs after the first, for a Lambda with several outputs.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        more_outputs: Vec<BodyRecord>,
        /// One mask body (or none) per output, for a Lambda given a mask per output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_masks: Option<Vec<Option<BodyRecord>>>,
    },
    /// An `Embedding`; its table is the weight `embeddings`.
    Embedding {
        /// The layer's name.
        name: String,
        /// Number of ids.
        input_dim: usize,
        /// Vector size.
        output_dim: usize,
        /// Whether id 0 is masked.
        mask_zero: bool,
    },
    /// A `Masking` layer.
    Masking {
        /// The layer's name.
        name: String,
        /// The padding value.
        #[serde(deserialize_with = "finite_f32")]
        mask_value: f32,
    },
    /// A `GlobalAveragePooling1D`.
    GlobalAveragePooling1D {
        /// The layer's name.
        name: String,
        /// `channels_last` or `channels_first`.
        data_format: String,
        /// Whether the pooled axis stays.
        keepdims: bool,
    },
    /// A `GlobalMaxPooling1D`.
    GlobalMaxPooling1D {
        /// The layer's name.
        name: String,
        /// `channels_last` or `channels_first`.
        data_format: String,
        /// Whether the pooled axis stays.
        keepdims: bool,
    },
    /// A `Softmax` layer.
    Softmax {
        /// The layer's name.
        name: String,
        /// The axis.
        axis: i64,
    },
    /// A `LayerNormalization`; its weights are `gamma` and `beta` (when present).
    LayerNormalization {
        /// The layer's name.
        name: String,
        /// The normalised axes.
        axis: Vec<i64>,
        /// Added to the variance.
        #[serde(deserialize_with = "finite_f32")]
        epsilon: f32,
        /// Whether there is a `beta`.
        center: bool,
        /// Whether there is a `gamma`.
        scale: bool,
        /// RMS scaling instead of centring.
        rms_scaling: bool,
    },
    /// A `MultiHeadAttention`; its weights are `query/kernel`, `query/bias`, `key/...`,
    /// `value/...`, `attention_output/...` (biases when `use_bias`).
    MultiHeadAttention {
        /// The layer's name.
        name: String,
        /// Number of heads.
        num_heads: usize,
        /// Size of each query and key head.
        key_dim: usize,
        /// Size of each value head (`key_dim` when absent).
        value_dim: Option<usize>,
        /// Dropout rate (nothing at inference).
        #[serde(deserialize_with = "finite_f32")]
        dropout: f32,
        /// Whether the projections have biases.
        use_bias: bool,
        /// The per-position output shape (the query's width when absent).
        output_shape: Option<Vec<usize>>,
        /// The attention axes (all middle axes when absent).
        attention_axes: Option<Vec<i64>>,
        /// Keras's call argument `use_causal_mask`.
        use_causal_mask: bool,
        /// Keras's call argument `return_attention_scores`.
        return_attention_scores: bool,
    },
    /// An `Attention` (Luong); its weights are `scale` and `concat_score_weight` (scalars, when
    /// `use_scale` and when `score_mode` is `concat`).
    Attention {
        /// The layer's name.
        name: String,
        /// Whether there is a `scale` weight.
        use_scale: bool,
        /// Keras's `score_mode`: `dot` or `concat`.
        score_mode: String,
        /// Dropout rate (nothing at inference).
        #[serde(deserialize_with = "finite_f32")]
        dropout: f32,
        /// The dropout's seed (nothing at inference).
        seed: Option<u64>,
        /// Keras's call argument `use_causal_mask`.
        use_causal_mask: bool,
        /// Keras's call argument `return_attention_scores`.
        return_attention_scores: bool,
    },
    /// An `AdditiveAttention` (Bahdanau); its weight is `scale` `(dim,)` when `use_scale`.
    AdditiveAttention {
        /// The layer's name.
        name: String,
        /// Whether there is a `scale` weight.
        use_scale: bool,
        /// Dropout rate (nothing at inference).
        #[serde(deserialize_with = "finite_f32")]
        dropout: f32,
        /// The dropout's seed (nothing at inference).
        seed: Option<u64>,
        /// Keras's call argument `use_causal_mask`.
        use_causal_mask: bool,
        /// Keras's call argument `return_attention_scores`.
        return_attention_scores: bool,
    },
    /// An `Add` merge.
    Add {
        /// The layer's name.
        name: String,
    },
    /// A `Subtract` merge.
    Subtract {
        /// The layer's name.
        name: String,
    },
    /// A `Multiply` merge.
    Multiply {
        /// The layer's name.
        name: String,
    },
    /// An `Average` merge.
    Average {
        /// The layer's name.
        name: String,
    },
    /// A `Maximum` merge.
    Maximum {
        /// The layer's name.
        name: String,
    },
    /// A `Minimum` merge.
    Minimum {
        /// The layer's name.
        name: String,
    },
    /// A `Concatenate` merge.
    Concatenate {
        /// The layer's name.
        name: String,
        /// The axis.
        axis: i64,
    },
    /// A `Reshape` layer.
    Reshape {
        /// The layer's name.
        name: String,
        /// The per-sample target (one -1 allowed).
        target_shape: Vec<i64>,
    },
    /// A `Flatten` layer.
    Flatten {
        /// The layer's name.
        name: String,
        /// `channels_last` or `channels_first`.
        data_format: String,
    },
    /// An `Activation` layer.
    Activation {
        /// The layer's name.
        name: String,
        /// Keras activation name (the given name of a custom activation).
        activation: String,
        /// A custom activation's body, traced on one input; absent for a named activation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation_body: Option<BodyRecord>,
    },
    /// A `Dropout` layer (the identity at inference).
    Dropout {
        /// The layer's name.
        name: String,
        /// The rate.
        #[serde(deserialize_with = "finite_f32")]
        rate: f32,
    },
    /// A `ZeroPadding1D` layer.
    ZeroPadding1D {
        /// The layer's name.
        name: String,
        /// `(before, after)`.
        padding: [i64; 2],
        /// `channels_last` or `channels_first`.
        data_format: String,
    },
    /// A `ZeroPadding2D` layer.
    ZeroPadding2D {
        /// The layer's name.
        name: String,
        /// `((top, bottom), (left, right))`.
        padding: [[i64; 2]; 2],
        /// `channels_last` or `channels_first`.
        data_format: String,
    },
    /// A `Cropping1D` layer.
    Cropping1D {
        /// The layer's name.
        name: String,
        /// `(start, end)`.
        cropping: [i64; 2],
    },
    /// A `Cropping2D` layer.
    Cropping2D {
        /// The layer's name.
        name: String,
        /// `((top, bottom), (left, right))`.
        cropping: [[i64; 2]; 2],
        /// `channels_last` or `channels_first`.
        data_format: String,
    },
    /// An `UpSampling1D` layer.
    UpSampling1D {
        /// The layer's name.
        name: String,
        /// The repeat count.
        size: i64,
    },
    /// An `UpSampling2D` layer.
    UpSampling2D {
        /// The layer's name.
        name: String,
        /// `(rows, cols)` factors.
        size: [i64; 2],
        /// `channels_last` or `channels_first`.
        data_format: String,
        /// `nearest` or `bilinear`.
        interpolation: String,
    },
    /// A `RepeatVector` layer.
    RepeatVector {
        /// The layer's name.
        name: String,
        /// The repeat count.
        n: i64,
    },
    /// A `Permute` layer.
    Permute {
        /// The layer's name.
        name: String,
        /// The permutation, 1-based.
        dims: Vec<i64>,
    },
    /// A `ReLU` layer.
    #[serde(rename = "ReLU")]
    ReLU {
        /// The layer's name.
        name: String,
        /// The cap, if any.
        max_value: Option<f32>,
        /// The slope below the threshold.
        #[serde(deserialize_with = "finite_f32")]
        negative_slope: f32,
        /// The threshold.
        #[serde(deserialize_with = "finite_f32")]
        threshold: f32,
    },
    /// A `LeakyReLU` layer.
    #[serde(rename = "LeakyReLU")]
    LeakyReLU {
        /// The layer's name.
        name: String,
        /// The slope.
        #[serde(deserialize_with = "finite_f32")]
        negative_slope: f32,
    },
    /// A `PReLU` layer; its weight is `alpha`.
    #[serde(rename = "PReLU")]
    PReLU {
        /// The layer's name.
        name: String,
        /// Axes along which `alpha` is shared.
        shared_axes: Vec<i64>,
    },
    /// An `ELU` layer.
    #[serde(rename = "ELU")]
    ELU {
        /// The layer's name.
        name: String,
        /// `alpha`.
        #[serde(deserialize_with = "finite_f32")]
        alpha: f32,
    },
    /// A `Dot` merge.
    Dot {
        /// The layer's name.
        name: String,
        /// The contracted axis of each input.
        axes: [i64; 2],
        /// Whether the inputs are L2-normalised first.
        normalize: bool,
    },
    /// A model used as a layer (a nested functional model or `Sequential`): its whole
    /// architecture, its tensors named `layers/{i}/model/...` in the file.
    Model {
        /// The layer's name (the model's).
        name: String,
        /// The nested model.
        architecture: Box<Architecture>,
    },
    /// A `TimeDistributed` wrapper; the inner layer's weights are this layer's.
    TimeDistributed {
        /// The layer's name.
        name: String,
        /// The wrapped layer (a configuration-only layer: not an input, Lambda or model).
        layer: Box<LayerRecord>,
    },
    /// A `Rescaling` layer.
    Rescaling {
        /// The layer's name.
        name: String,
        /// The factor.
        #[serde(deserialize_with = "finite_f32")]
        scale: f32,
        /// The offset.
        #[serde(deserialize_with = "finite_f32")]
        offset: f32,
    },
    /// A `Normalization` layer; without fixed statistics its weights are `mean`, `variance` and
    /// `count`.
    Normalization {
        /// The layer's name.
        name: String,
        /// The kept axes.
        axis: Vec<isize>,
        /// The shape of the fixed statistics, when they are fixed.
        #[serde(default)]
        fixed_shape: Option<Vec<usize>>,
        /// The fixed mean.
        #[serde(default)]
        fixed_mean: Vec<f32>,
        /// The fixed variance.
        #[serde(default)]
        fixed_variance: Vec<f32>,
        /// Whether it undoes the normalization.
        invert: bool,
    },
    /// A `CenterCrop` layer.
    CenterCrop {
        /// The layer's name.
        name: String,
        /// The height kept.
        height: usize,
        /// The width kept.
        width: usize,
    },
    /// A `Resizing` layer.
    Resizing {
        /// The layer's name.
        name: String,
        /// The height made.
        height: usize,
        /// The width made.
        width: usize,
        /// `bilinear` or `nearest`.
        interpolation: String,
    },
    /// A `LayerScale` layer; its weight is `gamma`.
    LayerScale {
        /// The layer's name.
        name: String,
        /// The initial value of `gamma`.
        #[serde(deserialize_with = "finite_f32")]
        init_values: f32,
        /// The number of channels.
        projection_dim: usize,
    },
    /// A `StochasticDepth` layer (the identity at inference).
    StochasticDepth {
        /// The layer's name.
        name: String,
        /// The drop rate used in training.
        #[serde(deserialize_with = "finite_f32")]
        drop_path_rate: f32,
    },
    /// A `Conv1D`; weights `kernel` and `bias`.
    Conv1D(ConvRecord),
    /// A `Conv2D`; weights `kernel` and `bias`.
    Conv2D(ConvRecord),
    /// A `DepthwiseConv2D`; weights `kernel` and `bias`.
    DepthwiseConv2D(ConvRecord),
    /// A `SeparableConv1D`; weights `depthwise_kernel`, `pointwise_kernel` and `bias`.
    SeparableConv1D(ConvRecord),
    /// A `SeparableConv2D`; weights `depthwise_kernel`, `pointwise_kernel` and `bias`.
    SeparableConv2D(ConvRecord),
    /// A `Conv1DTranspose`; weights `kernel` and `bias`.
    Conv1DTranspose(ConvRecord),
    /// A `Conv2DTranspose`; weights `kernel` and `bias`.
    Conv2DTranspose(ConvRecord),
    /// A `MaxPooling1D`.
    MaxPooling1D(PoolRecord),
    /// A `MaxPooling2D`.
    MaxPooling2D(PoolRecord),
    /// An `AveragePooling1D`.
    AveragePooling1D(PoolRecord),
    /// An `AveragePooling2D`.
    AveragePooling2D(PoolRecord),
    /// A `GlobalAveragePooling2D`.
    GlobalAveragePooling2D(GlobalPoolRecord),
    /// A `GlobalMaxPooling2D`.
    GlobalMaxPooling2D(GlobalPoolRecord),
    /// A `BatchNormalization`; weights `gamma`, `beta`, `moving_mean`, `moving_variance`.
    BatchNormalization(BatchNormRecord),
    /// A `SimpleRNN`; weights `kernel`, `recurrent_kernel`, `bias`.
    #[serde(rename = "SimpleRNN")]
    SimpleRNN(RnnRecord),
    /// An `LSTM`; weights `kernel`, `recurrent_kernel`, `bias`.
    #[serde(rename = "LSTM")]
    LSTM(RnnRecord),
    /// A `GRU`; weights `kernel`, `recurrent_kernel`, `bias`.
    #[serde(rename = "GRU")]
    GRU(RnnRecord),
    /// A `Bidirectional` recurrent layer; weights `forward_{inner}/{cell}/kernel`, ... and
    /// `backward_{inner}/{cell}/kernel`, ...
    Bidirectional(BidirectionalRecord),
}

/// The configuration of a recurrent layer (`reset_after` is read by GRU only).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RnnRecord {
    /// The layer's name.
    pub name: String,
    /// State size.
    pub units: usize,
    /// The output activation's name.
    pub activation: String,
    /// The gate activation's name.
    pub recurrent_activation: String,
    /// Whether there is a `bias`.
    pub use_bias: bool,
    /// LSTM: forget bias initialised to 1.
    pub unit_forget_bias: bool,
    /// Every step returned.
    pub return_sequences: bool,
    /// Final states returned.
    pub return_state: bool,
    /// Sequence read backwards.
    pub go_backwards: bool,
    /// Masked steps output zeros.
    pub zero_output_for_mask: bool,
    /// GRU: reset gate after the recurrent matmul.
    pub reset_after: bool,
    /// Keras's `unroll=True`: masked steps repeat the previous output, zeros before the first.
    #[serde(default)]
    pub unroll: bool,
}

/// The configuration of a `Bidirectional` wrapper.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BidirectionalRecord {
    /// The layer's name.
    pub name: String,
    /// `concat`, `sum`, `mul`, `ave` or `none`.
    pub merge_mode: String,
    /// The wrapped cell type: `SimpleRNN`, `LSTM` or `GRU`.
    pub cell: String,
    /// The forward layer.
    pub forward: RnnRecord,
    /// The backward layer.
    pub backward: RnnRecord,
}

/// The configuration of a convolution layer (the fields a layer type does not use keep their
/// defaults).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConvRecord {
    /// The layer's name.
    pub name: String,
    /// Output channels (0 for a depthwise convolution).
    pub filters: usize,
    /// Window per spatial axis (or one for all).
    pub kernel_size: Vec<usize>,
    /// Strides (one per axis or one for all).
    pub strides: Vec<usize>,
    /// `valid`, `same` or `causal`.
    pub padding: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
    /// Dilation rates.
    pub dilation_rate: Vec<usize>,
    /// Channel groups.
    pub groups: usize,
    /// Depthwise filters per input channel.
    pub depth_multiplier: usize,
    /// A transposed convolution's output padding, if given.
    pub output_padding: Option<Vec<usize>>,
    /// Keras activation name.
    pub activation: String,
    /// Whether there is a bias.
    pub use_bias: bool,
}

/// The configuration of a windowed pooling layer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolRecord {
    /// The layer's name.
    pub name: String,
    /// Window per spatial axis (or one for all).
    pub pool_size: Vec<usize>,
    /// Strides, when not the pool size.
    pub strides: Option<Vec<usize>>,
    /// `valid` or `same`.
    pub padding: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
}

/// The configuration of a global pooling layer over images.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalPoolRecord {
    /// The layer's name.
    pub name: String,
    /// `channels_last` or `channels_first`.
    pub data_format: String,
    /// Whether the pooled axes stay.
    pub keepdims: bool,
}

/// The configuration of a `BatchNormalization`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchNormRecord {
    /// The layer's name.
    pub name: String,
    /// The channel axis.
    pub axis: i64,
    /// The moving average's momentum.
    #[serde(deserialize_with = "finite_f32")]
    pub momentum: f32,
    /// Added to the variance.
    #[serde(deserialize_with = "finite_f32")]
    pub epsilon: f32,
    /// Whether there is a `beta`.
    pub center: bool,
    /// Whether there is a `gamma`.
    pub scale: bool,
}

/// A Lambda's `mask` argument.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MaskRecord {
    /// A fixed mask, stored as tensor `layers/{i}/mask`.
    Fixed,
    /// A mask function, recorded as the graph it built from the inputs and their masks (`None`:
    /// it returned no mask).
    Function {
        /// The recorded graph.
        body: Option<BodyRecord>,
    },
}

/// A Lambda's declared `output_shape`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputShapeRecord {
    /// A per-sample shape (the batch is prepended).
    PerSample(Vec<Option<usize>>),
    /// A full shape, as a shape function returned it at the first call (functions are code and
    /// are not saved).
    Full(Vec<Option<usize>>),
}

/// A recorded expression graph (a Lambda body, a mask function, a custom activation): nodes in
/// topological order, each reading earlier nodes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BodyRecord {
    /// How many inputs the Lambda takes.
    pub inputs: usize,
    /// The nodes; `inputs` of each refer to earlier nodes only.
    pub nodes: Vec<NodeRecord>,
    /// The node that is the output.
    pub output: usize,
}

/// One node of a Lambda body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    /// The op.
    pub op: OpRecord,
    /// Indices of earlier nodes read by the op.
    #[serde(default)]
    pub inputs: Vec<usize>,
}

/// A primitive op as stored in a file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpRecord {
    /// The Lambda's input `index`.
    Input {
        /// Which input.
        index: usize,
    },
    /// The mask of the Lambda's input `index`.
    InputMask {
        /// Which input.
        index: usize,
    },
    /// A constant stored as tensor `layers/{i}/constants/{id}`.
    Constant {
        /// The constant's number within the layer.
        id: usize,
    },
    /// A variable of the Lambda.
    Variable {
        /// Its name.
        name: String,
    },
    /// An argument of the Lambda.
    Argument {
        /// Its name.
        name: String,
    },
    /// An elementwise function of one input.
    Unary {
        /// Which function.
        func: UnaryOp,
    },
    /// An elementwise function of two inputs.
    Binary {
        /// Which function.
        func: BinaryOp,
    },
    /// `where(cond, a, b)`.
    Where,
    /// A reduction.
    Reduce {
        /// How elements combine.
        func: ReduceOp,
        /// Reduced axes.
        axes: Vec<usize>,
        /// Whether reduced axes stay.
        keepdims: bool,
    },
    /// argmax/argmin.
    ArgReduce {
        /// Which.
        func: ArgReduceOp,
        /// The axis.
        axis: usize,
        /// Whether the axis stays.
        keepdims: bool,
    },
    /// cumsum/cumprod.
    Scan {
        /// Which.
        func: ScanOp,
        /// The axis.
        axis: usize,
    },
    /// Reshape.
    Reshape {
        /// Target (one -1 allowed).
        target: Vec<i64>,
    },
    /// Transpose.
    Permute {
        /// Permutation.
        perm: Vec<usize>,
    },
    /// Broadcast.
    BroadcastTo {
        /// Target shape.
        shape: Vec<usize>,
    },
    /// Strided slice.
    Slice {
        /// One slice per axis.
        axes: Vec<AxisSlice>,
    },
    /// New size-1 axis.
    ExpandDims {
        /// Where.
        axis: usize,
    },
    /// Removed size-1 axes.
    Squeeze {
        /// Which.
        axes: Vec<usize>,
    },
    /// Concatenation.
    Concat {
        /// Along which axis.
        axis: usize,
    },
    /// `take` along an axis (inputs: params, indices).
    Gather {
        /// The axis of the params.
        axis: usize,
    },
    /// Matrix product.
    MatMul,
    /// Conversion.
    Cast {
        /// Target dtype.
        dtype: DType,
    },
    /// Convolution (inputs: x, kernel and optionally bias).
    Conv {
        /// Strides, dilations, padding and groups.
        spec: ConvSpec,
    },
}
