//! The model file format: a safetensors file whose tensors are the weights, arguments and
//! constants, and whose metadata holds the architecture as JSON (these records).

use crate::dtype::DType;
use crate::layers::SerializedLayer;
use crate::op::{ArgReduceOp, AxisSlice, BinaryOp, ConvSpec, ReduceOp, ScanOp, UnaryOp};
use serde::{Deserialize, Serialize};

/// The `format` metadata value of a Lamina model file.
pub const FORMAT_NAME: &str = "lamina-model";
/// The newest format version this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = 2;

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

/// A layer as a file records it. Weights live in the file's tensors, named
/// `layers/{index}/weights/{name}`, `layers/{index}/arguments/{name}` and
/// `layers/{index}/constants/{k}`.
// Records are read once per load; boxing the large variants would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum LayerRecord {
    /// An input layer, a Lambda or a nested model: graphs, which the format records itself.
    Graph(GraphRecord),
    /// Every other layer: its class and configuration (`{"class": "Dense", "name": ..,
    /// "units": ..}`), built through the layer registry; a custom activation's traced body
    /// rides along as the configuration's `activation_body`.
    Layer(SerializedLayer),
}

/// The classes whose records are graphs rather than configurations.
const GRAPH_CLASSES: [&str; 3] = ["InputLayer", "Lambda", "Model"];

impl Serialize for LayerRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LayerRecord::Graph(g) => g.serialize(s),
            LayerRecord::Layer(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for LayerRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let layer = SerializedLayer::deserialize(d)?;
        if GRAPH_CLASSES.contains(&layer.class.as_str()) {
            let mut map = layer.config;
            map.insert("class".into(), serde_json::Value::String(layer.class));
            serde_json::from_value(serde_json::Value::Object(map))
                .map(LayerRecord::Graph)
                .map_err(serde::de::Error::custom)
        } else {
            Ok(LayerRecord::Layer(layer))
        }
    }
}

/// The layers a file records as graphs: inputs, Lambdas and nested models.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "class", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)]
pub enum GraphRecord {
    /// An `Input`.
    InputLayer {
        /// The layer's name.
        name: String,
        /// The full shape, `null` for unknown dims.
        shape: Vec<Option<usize>>,
        /// The element type.
        dtype: DType,
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
    /// A model used as a layer (a nested functional model or `Sequential`): its whole
    /// architecture, its tensors named `layers/{i}/model/...` in the file.
    Model {
        /// The layer's name (the model's).
        name: String,
        /// The nested model.
        architecture: Box<Architecture>,
    },
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
