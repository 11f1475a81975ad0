//! Layer configuration as data, as Keras 3's `get_config`/`from_config`: every built-in layer
//! has a serializable configuration (its Keras arguments, by Keras's names), a class name, and a
//! constructor from that configuration. The one table below, a line per layer class, is what
//! saving, loading and the list of supported classes read; nothing else names layer types.

use super::*;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerRef};
use crate::shape::Shape;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::sync::Arc;

/// A float configuration value that must be a finite `float32`: JSON holds no infinities, so
/// a value that is not finite as a `float32` (`1e39`) overflowed and is refused rather than
/// becoming `inf`. Every `f32` field of a configuration reads through this.
pub fn finite_f32<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f32, D::Error> {
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

/// A custom activation with the shape and dtype of the tensor it is applied to.
pub type ActivationSite = (Activation, Shape, DType);

/// A layer whose whole configuration is data: what a file records of it besides its weights.
pub trait Configurable: Layer + Sized + 'static {
    /// The class name files and Keras use (`"Dense"`).
    const CLASS: &'static str;
    /// The layer's configuration: its arguments by Keras's names, its name included.
    type Config: Serialize + DeserializeOwned;
    /// The layer's configuration.
    fn config(&self) -> Self::Config;
    /// A new layer (unbuilt: weights come on the first call or from a file) from a
    /// configuration; an error names what is wrong with it.
    fn from_config(config: Self::Config, context: &ConfigContext) -> Result<Self>;
    /// A custom activation (code, which the configuration only names) with the shape and dtype
    /// it is applied at, given the layer's input's: a saver records it as a traced graph. The
    /// default, for layers without an activation, is none.
    fn custom_activation(&self, input: &Shape, dtype: DType) -> Option<ActivationSite> {
        let _ = (input, dtype);
        None
    }
}

/// What building a layer from its configuration may need beyond it: a custom activation that a
/// file recorded as a graph.
#[derive(Clone, Default)]
pub struct ConfigContext {
    custom_activation: Option<Activation>,
}

impl ConfigContext {
    /// A context in which the activation named `activation.name()` is `activation`.
    pub fn with_custom_activation(activation: Activation) -> ConfigContext {
        ConfigContext {
            custom_activation: Some(activation),
        }
    }

    /// The activation a configuration names: the recorded custom one of that name, or a
    /// built-in looked up by its Keras name.
    pub fn activation(&self, name: &str) -> Result<Activation> {
        match &self.custom_activation {
            Some(a) if a.name() == name => Ok(a.clone()),
            _ => name.parse(),
        }
    }
}

/// A layer's class and configuration as a file holds it: one JSON object, `{"class": "Dense",
/// "name": "dense", "units": 4, ...}`.
#[derive(Clone, Debug, PartialEq)]
pub struct SerializedLayer {
    /// The class name.
    pub class: String,
    /// The configuration's fields.
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl Serialize for SerializedLayer {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.config.len() + 1))?;
        map.serialize_entry("class", &self.class)?;
        for (k, v) in &self.config {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SerializedLayer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut config = serde_json::Map::deserialize(d)?;
        match config.remove("class") {
            Some(serde_json::Value::String(class)) => Ok(SerializedLayer { class, config }),
            Some(other) => Err(serde::de::Error::custom(format!(
                "a layer's class must be a string, not {other}"
            ))),
            None => Err(serde::de::Error::missing_field("class")),
        }
    }
}

impl SerializedLayer {
    /// The configuration's `name`, or `""` when it has none.
    pub fn name(&self) -> &str {
        self.config
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
    }
}

/// The classes a Lamina file records as graphs rather than configurations: inputs, Lambdas
/// and nested models. The registry holds every other class.
pub const GRAPH_CLASSES: [&str; 3] = ["InputLayer", "Lambda", "Model"];

/// A layer held inside another layer's configuration (`TimeDistributed`'s): written as that
/// layer's own class and configuration, read back through the registry.
#[derive(Clone)]
pub struct WrappedLayer(pub LayerRef);

/// Two wrapped layers are equal when they are the same layer, or layers of the same class and
/// configuration.
impl PartialEq for WrappedLayer {
    fn eq(&self, other: &WrappedLayer) -> bool {
        let (a, b) = (self.0.as_ref(), other.0.as_ref());
        a.id() == b.id()
            || matches!(
                (serialize_layer(a), serialize_layer(b)),
                (Some(Ok(x)), Some(Ok(y))) if x == y
            )
    }
}

impl std::fmt::Debug for WrappedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for WrappedLayer {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let layer = self.0.as_ref();
        // A custom activation is code: inside a wrapper there is no place to record it.
        let class = class_of(layer).ok_or_else(|| {
            serde::ser::Error::custom(format!(
                "the wrapped layer '{}' ({}) has no configuration a file can hold",
                layer.name(),
                layer.kind()
            ))
        })?;
        if (class.custom_activation)(layer.as_any(), &Shape::new(vec![]), DType::F32).is_some() {
            return Err(serde::ser::Error::custom(format!(
                "the wrapped layer '{}' has a custom activation, which a file can hold only \
                 on a layer that is not wrapped",
                layer.name()
            )));
        }
        let serialized = (class.serialize)(layer.as_any()).map_err(serde::ser::Error::custom)?;
        serialized.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WrappedLayer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let serialized = SerializedLayer::deserialize(d)?;
        if GRAPH_CLASSES.contains(&serialized.class.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "a wrapper wraps an input layer, a Lambda or a model ('{}', {}), which a file \
                 cannot hold there",
                serialized.name(),
                serialized.class
            )));
        }
        build_layer(&serialized, &ConfigContext::default())
            .map(WrappedLayer)
            .map_err(serde::de::Error::custom)
    }
}

/// One row of the registry: a layer class and the functions that save and build it.
pub(crate) struct LayerClass {
    /// The class name.
    pub class: &'static str,
    is: fn(&dyn Any) -> bool,
    pub serialize: fn(&dyn Any) -> Result<SerializedLayer>,
    /// The layer's custom activation with the shape and dtype it is applied at (see
    /// `Configurable::custom_activation`).
    pub custom_activation: fn(&dyn Any, &Shape, DType) -> Option<ActivationSite>,
    build: fn(serde_json::Map<String, serde_json::Value>, &ConfigContext) -> Result<LayerRef>,
}

fn serialize_as<T: Configurable>(any: &dyn Any) -> Result<SerializedLayer> {
    let layer = any.downcast_ref::<T>().ok_or_else(|| Error::Model {
        detail: format!("internal: the layer is not a {}", T::CLASS),
    })?;
    // Through text rather than `to_value`, so that a float32 keeps its shortest spelling
    // (`0.01`, not the `0.009999999776482582` of its float64 value).
    let text = serde_json::to_string(&layer.config()).map_err(|e| Error::Model {
        detail: format!("cannot save {} '{}': {e}", T::CLASS, layer.name()),
    })?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(config)) => Ok(SerializedLayer {
            class: T::CLASS.to_string(),
            config,
        }),
        Ok(other) => Err(Error::Model {
            detail: format!(
                "{} '{}': its configuration is {other}, not an object",
                T::CLASS,
                layer.name()
            ),
        }),
        Err(e) => Err(Error::Model {
            detail: format!("cannot save {} '{}': {e}", T::CLASS, layer.name()),
        }),
    }
}

fn custom_activation_of<T: Configurable>(
    any: &dyn Any,
    input: &Shape,
    dtype: DType,
) -> Option<ActivationSite> {
    any.downcast_ref::<T>()?.custom_activation(input, dtype)
}

fn build_as<T: Configurable>(
    config: serde_json::Map<String, serde_json::Value>,
    context: &ConfigContext,
) -> Result<LayerRef> {
    let config: T::Config =
        serde_json::from_value(serde_json::Value::Object(config)).map_err(|e| Error::Model {
            detail: format!("{} configuration: {e}", T::CLASS),
        })?;
    Ok(Arc::new(T::from_config(config, context)?))
}

const fn class<T: Configurable>() -> LayerClass {
    LayerClass {
        class: T::CLASS,
        is: |any| any.is::<T>(),
        serialize: serialize_as::<T>,
        custom_activation: custom_activation_of::<T>,
        build: build_as::<T>,
    }
}

/// Every built-in layer class whose configuration is data, one line each. `InputLayer`,
/// `Lambda` and nested models are graphs rather than configurations: the file format records
/// them itself.
static LAYER_CLASSES: &[LayerClass] = &[
    class::<Dense>(),
    class::<Embedding>(),
    class::<Masking>(),
    class::<Dropout>(),
    class::<Identity>(),
    class::<ActivationLayer>(),
    class::<Softmax>(),
    class::<Rescaling>(),
    class::<LayerNormalization>(),
    class::<BatchNormalization>(),
    class::<Normalization>(),
    class::<Add>(),
    class::<Subtract>(),
    class::<Multiply>(),
    class::<Average>(),
    class::<Maximum>(),
    class::<Minimum>(),
    class::<Concatenate>(),
    class::<Dot>(),
    class::<Reshape>(),
    class::<Flatten>(),
    class::<Permute>(),
    class::<RepeatVector>(),
    class::<GlobalAveragePooling1D>(),
    class::<GlobalMaxPooling1D>(),
    class::<GlobalAveragePooling2D>(),
    class::<GlobalMaxPooling2D>(),
    class::<MaxPooling1D>(),
    class::<MaxPooling2D>(),
    class::<AveragePooling1D>(),
    class::<AveragePooling2D>(),
    class::<Conv1D>(),
    class::<Conv2D>(),
    class::<DepthwiseConv2D>(),
    class::<SeparableConv1D>(),
    class::<SeparableConv2D>(),
    class::<Conv1DTranspose>(),
    class::<Conv2DTranspose>(),
    class::<ZeroPadding1D>(),
    class::<ZeroPadding2D>(),
    class::<Cropping1D>(),
    class::<Cropping2D>(),
    class::<UpSampling1D>(),
    class::<UpSampling2D>(),
    class::<ReLU>(),
    class::<LeakyReLU>(),
    class::<PReLU>(),
    class::<ELU>(),
    class::<SimpleRNN>(),
    class::<LSTM>(),
    class::<GRU>(),
    class::<Bidirectional>(),
    class::<TimeDistributed>(),
    class::<MultiHeadAttention>(),
    class::<Attention>(),
    class::<AdditiveAttention>(),
    class::<CenterCrop>(),
    class::<Resizing>(),
    class::<LayerScale>(),
    class::<StochasticDepth>(),
];

/// The class names of every built-in layer whose configuration is data (all but `InputLayer`,
/// `Lambda` and models), in the registry's order.
pub fn layer_classes() -> impl Iterator<Item = &'static str> {
    LAYER_CLASSES.iter().map(|c| c.class)
}

/// The registry row of a layer's concrete type, or `None` for a type without one.
pub(crate) fn class_of(layer: &dyn Layer) -> Option<&'static LayerClass> {
    let any = layer.as_any();
    LAYER_CLASSES.iter().find(|c| (c.is)(any))
}

/// A layer's class and configuration, or `None` for a type the registry does not hold.
pub fn serialize_layer(layer: &dyn Layer) -> Option<Result<SerializedLayer>> {
    class_of(layer).map(|c| (c.serialize)(layer.as_any()))
}

/// A new layer from its class and configuration; an error names an unknown class or what is
/// wrong with the configuration.
pub fn build_layer(serialized: &SerializedLayer, context: &ConfigContext) -> Result<LayerRef> {
    let class = LAYER_CLASSES
        .iter()
        .find(|c| c.class == serialized.class)
        .ok_or_else(|| Error::Model {
            detail: format!(
                "unknown layer class '{}' (this build knows {})",
                serialized.class,
                GRAPH_CLASSES
                    .into_iter()
                    .chain(layer_classes())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    (class.build)(serialized.config.clone(), context)
}
