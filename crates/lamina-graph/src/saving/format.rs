//! The model file format: a safetensors file whose tensors are the weights, arguments and
//! constants, and whose metadata holds the architecture as JSON (these records).

use crate::dtype::DType;
use crate::layers::SerializedLayer;
use crate::layers::registry::GRAPH_CLASSES;
use crate::op::Op;
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

/// A primitive op as stored in a file: one of the body's leaves, which only a file has, or a
/// compute op, stored as [`Op`] serialises itself (`{"op": "unary", "func": "exp"}`).
#[derive(Clone, Debug)]
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
    /// A compute op (never a leaf of the graph nor a recurrence, which `Op` does not
    /// serialise).
    Op(Op),
}

/// How serde reads and writes the leaves of [`OpRecord`]: objects tagged by `op`, as
/// [`Op`]'s compute variants are. Its `Op` is `Op`'s own (de)serialisation.
// Never built: it only lends its shape to serde's reader and writer of `OpRecord`.
#[allow(dead_code)]
#[derive(Serialize, Deserialize)]
#[serde(
    remote = "OpRecord",
    tag = "op",
    rename_all = "snake_case",
    deny_unknown_fields
)]
enum Leaf {
    Input {
        index: usize,
    },
    InputMask {
        index: usize,
    },
    Constant {
        id: usize,
    },
    Variable {
        name: String,
    },
    Argument {
        name: String,
    },
    #[serde(skip)]
    Op(Op),
}

impl Serialize for OpRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OpRecord::Op(op) => op.serialize(s),
            leaf => Leaf::serialize(leaf, s),
        }
    }
}

impl<'de> Deserialize<'de> for OpRecord {
    /// A leaf by its `op` tag, or else a compute op; a tag that is neither is refused with
    /// the list of all.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(d)?;
        let read = match value.get("op").and_then(serde_json::Value::as_str) {
            Some(tag) if op_tags().contains(&tag) => Op::deserialize(value).map(OpRecord::Op),
            Some(tag) if !leaf_tags().contains(&tag) => {
                return Err(D::Error::unknown_variant(tag, every_tag()));
            }
            // A leaf's tag; or no tag, or not an object, which the leaves' reader refuses
            // as the record's.
            _ => Leaf::deserialize(value),
        };
        read.map_err(D::Error::custom)
    }
}

/// Records are equal when a file writes them the same.
impl PartialEq for OpRecord {
    fn eq(&self, other: &Self) -> bool {
        match (serde_json::to_value(self), serde_json::to_value(other)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// The error by which [`tags`] learns the tags an enum knows: serde's list of them when it
/// refuses an unknown one.
#[derive(Debug)]
struct Tags(&'static [&'static str]);

impl std::fmt::Display for Tags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tags {:?}", self.0)
    }
}

impl std::error::Error for Tags {}

impl serde::de::Error for Tags {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Tags(&[])
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Tags(expected)
    }
}

/// A record offering an `op` tag that no enum has.
type TagProbe =
    serde::de::value::MapDeserializer<'static, std::iter::Once<(&'static str, &'static str)>, Tags>;

/// The `op` tags that an enum's derived reader (`deserialize`) knows, in declaration order.
fn tags<T>(deserialize: impl FnOnce(TagProbe) -> Result<T, Tags>) -> &'static [&'static str] {
    match deserialize(TagProbe::new(std::iter::once(("op", "\0")))) {
        Ok(_) => &[],
        Err(Tags(tags)) => tags,
    }
}

/// The compute ops' tags, learned once.
fn op_tags() -> &'static [&'static str] {
    static OPS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    OPS.get_or_init(|| tags(Op::deserialize))
}

/// The leaves' tags, learned once.
fn leaf_tags() -> &'static [&'static str] {
    static LEAVES: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    LEAVES.get_or_init(|| tags(Leaf::deserialize))
}

/// Every tag a file's op may have: the leaves', then the compute ops'.
fn every_tag() -> &'static [&'static str] {
    static EVERY: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    EVERY.get_or_init(|| leaf_tags().iter().chain(op_tags()).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{ConvSpec, ReduceOp, UnaryOp};
    use serde_json::json;

    fn read(value: serde_json::Value) -> Result<OpRecord, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn records_read_and_write_the_leaves_and_ops_of_a_file() {
        let cases = [
            (OpRecord::Input { index: 1 }, r#"{"op":"input","index":1}"#),
            (
                OpRecord::InputMask { index: 0 },
                r#"{"op":"input_mask","index":0}"#,
            ),
            (OpRecord::Constant { id: 2 }, r#"{"op":"constant","id":2}"#),
            (
                OpRecord::Variable { name: "w".into() },
                r#"{"op":"variable","name":"w"}"#,
            ),
            (
                OpRecord::Argument { name: "a".into() },
                r#"{"op":"argument","name":"a"}"#,
            ),
            (
                OpRecord::Op(Op::Unary {
                    func: UnaryOp::IsNan,
                }),
                r#"{"op":"unary","func":"is_nan"}"#,
            ),
            (
                OpRecord::Op(Op::Reduce {
                    func: ReduceOp::Sum,
                    axes: vec![1],
                    keepdims: false,
                }),
                r#"{"op":"reduce","func":"sum","axes":[1],"keepdims":false}"#,
            ),
            (OpRecord::Op(Op::MatMul), r#"{"op":"mat_mul"}"#),
            (
                OpRecord::Op(Op::Cast {
                    dtype: crate::DType::I32,
                }),
                r#"{"op":"cast","dtype":"i32"}"#,
            ),
            (
                OpRecord::Op(Op::Conv {
                    spec: ConvSpec::new(1),
                }),
                r#"{"op":"conv","spec":{"strides":[1],"dilation":[1],"input_dilation":[1],"padding":[[0,0]],"groups":1}}"#,
            ),
        ];
        for (record, text) in cases {
            assert_eq!(serde_json::to_string(&record).unwrap(), text);
            let back: OpRecord = serde_json::from_str(text).unwrap();
            assert_eq!(back, record);
        }
        // What a graph holds but a file records as its own leaves is not an op of a file.
        let input = Op::Input { name: "x".into() };
        assert!(serde_json::to_string(&OpRecord::Op(input)).is_err());
    }

    #[test]
    fn bad_records_are_refused_as_the_derived_reader_refused_them() {
        assert_eq!(
            read(json!({"op": "launch_missiles"})).unwrap_err(),
            "unknown variant `launch_missiles`, expected one of `input`, `input_mask`, \
             `constant`, `variable`, `argument`, `unary`, `binary`, `where`, `reduce`, \
             `arg_reduce`, `scan`, `reshape`, `permute`, `broadcast_to`, `slice`, \
             `expand_dims`, `squeeze`, `concat`, `gather`, `mat_mul`, `cast`, `conv`"
        );
        assert_eq!(read(json!({"index": 0})).unwrap_err(), "missing field `op`");
        assert_eq!(
            read(json!("unary")).unwrap_err(),
            "invalid type: string \"unary\", expected internally tagged enum OpRecord"
        );
        assert!(read(json!({"op": "input", "index": 0, "x": 1})).is_err());
        assert!(
            read(json!({"op": "unary", "func": "exp", "axes": []}))
                .unwrap_err()
                .contains("unknown field `axes`")
        );
        assert!(
            read(json!({"op": "unary", "func": "launch"}))
                .unwrap_err()
                .contains("unknown variant `launch`")
        );
        // The ops a file never holds as such have no tag.
        for tag in ["recurrence", "variable_read"] {
            assert!(
                read(json!({"op": tag}))
                    .unwrap_err()
                    .contains("unknown variant")
            );
        }
    }
}
