//! Keras 3 files: `.keras` archives (a zip of `config.json`, `metadata.json` and
//! `model.weights.h5`) and `.weights.h5` files. The architecture is rebuilt from
//! `config.json` with Lamina's layers, the weights are read from the HDF5 file by Keras's
//! layout (`layers/<layer>/vars/<i>`), and the bodies of `Lambda` layers, which Keras stores
//! as Python bytecode, are taken from Rust through [`KerasBindings`]. Nothing from the file is
//! ever executed; hostile files cost an error, with memory and time bounded by the file's size.

mod archive;
mod base64;
mod config;
mod custom;
pub mod hdf5;
mod legacy;
mod ops;
mod preprocessing;
mod weights;

use lamina_graph::error::{Error, Result};
use lamina_graph::layers::Lambda;
use lamina_graph::model::Model;
use lamina_graph::saving::sniff;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub use archive::{KerasArchive, MAX_KERAS_ENTRY_BYTES};
pub use custom::{CustomLayerFactory, KerasLayerConfig};
pub use ops::KERAS_OPS;

/// The Rust bodies of a Keras model's `Lambda` layers, by the layer's name or by the name of
/// its Python function (`def abs_diff(xs): ...` is `abs_diff`). The layer's name is tried
/// first. Each bound `Lambda` is a template: every Keras layer that uses it gets a copy of its
/// own, renamed to the Keras layer's name, with the Keras `arguments` set on it.
///
/// ```
/// use lamina_keras::KerasBindings;
/// use lamina_graph::Lambda;
/// let bindings = KerasBindings::new()
///     .bind("abs_diff", Lambda::multi(|xs| (&xs[0] - &xs[1]).abs()))
///     .bind("halve", Lambda::new(|x| x * 0.5).mask_fn(|_, m| m[0].clone()));
/// assert_eq!(bindings.names(), vec!["abs_diff", "halve"]);
/// ```
#[derive(Clone, Default)]
pub struct KerasBindings {
    by_name: HashMap<String, Lambda>,
    classes: HashMap<String, Arc<CustomLayerFactory>>,
}

impl KerasBindings {
    /// No bindings: a model with a `Lambda` layer will not load.
    pub fn new() -> KerasBindings {
        KerasBindings::default()
    }

    /// Binds a layer name or a Python function name to a Lamina `Lambda` (its function, and
    /// its `mask_fn`/`output_shape` where the Keras layer has them).
    pub fn bind(mut self, name: &str, lambda: Lambda) -> KerasBindings {
        self.by_name.insert(name.to_string(), lambda);
        self
    }

    /// Binds a custom Keras layer class (a `Layer` subclass, by its class name, its registered
    /// name `package>Class`, or one layer's name) to a Rust body: `factory` gets the layer's
    /// config and returns the `Lambda` that computes it. The body's variables are the layer's
    /// weights, matched to the file in the order the body creates them (Keras's `add_weight`
    /// order), so create them in that order with the shapes Keras gives them.
    ///
    /// ```
    /// use lamina_keras::KerasBindings;
    /// use lamina_graph::Lambda;
    /// let bindings = KerasBindings::new().bind_class("ScaledResidual", |cfg| {
    ///     let alpha = cfg.f64("alpha")? as f32;
    ///     Ok(Lambda::with_scope(move |xs, scope| {
    ///         let width = xs[0].shape().dims()[1].known().unwrap_or(1);
    ///         let kernel = scope.variable("kernel", &[width, width], 0.0);
    ///         &xs[0] + &(xs[0].matmul(&kernel).tanh() * alpha)
    ///     }))
    /// });
    /// assert_eq!(bindings.classes(), vec!["ScaledResidual"]);
    /// ```
    pub fn bind_class(
        mut self,
        class: &str,
        factory: impl Fn(&KerasLayerConfig<'_>) -> Result<Lambda> + Send + Sync + 'static,
    ) -> KerasBindings {
        self.classes.insert(class.to_string(), Arc::new(factory));
        self
    }

    /// The custom classes (or layer names) bound with `bind_class`, sorted.
    pub fn classes(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.classes.keys().map(|s| s.as_str()).collect();
        n.sort_unstable();
        n
    }

    /// The binding of a custom layer: by its layer name, its registered name, then its class.
    fn class_binding(
        &self,
        layer: &str,
        registered: Option<&str>,
        class: &str,
    ) -> Option<&Arc<CustomLayerFactory>> {
        self.classes
            .get(layer)
            .or_else(|| registered.and_then(|r| self.classes.get(r)))
            .or_else(|| self.classes.get(class))
    }

    /// The names bound, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.by_name.keys().map(|s| s.as_str()).collect();
        n.sort_unstable();
        n
    }

    fn get(&self, layer: &str, function: Option<&str>) -> Option<&Lambda> {
        self.by_name
            .get(layer)
            .or_else(|| function.and_then(|f| self.by_name.get(f)))
    }
}

fn file_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Keras import as methods of [`Model`]: `Model::load_keras(path, &bindings)`,
/// `Model::open(path)`, `model.load_keras_weights(path)` (bring the trait into scope:
/// `use lamina_keras::KerasImport;`, or `lamina::prelude::*`).
pub trait KerasImport: Sized {
    /// Loads a Keras 3 `.keras` file: the architecture from its `config.json` (Sequential or
    /// functional, shared layers, nested models inlined), every weight from its
    /// `model.weights.h5`, and each `Lambda` layer's body from `bindings`. A whole model in the
    /// legacy HDF5 format (`model.save("m.h5")` in tf.keras 2 or Keras 3) loads the same way. A
    /// `Lambda` without a binding, or a layer class Lamina lacks, is an error that lists every
    /// one; nothing is loaded partly. The optimizer's variables are ignored.
    fn load_keras(path: impl AsRef<Path>, bindings: &KerasBindings) -> Result<Self>;

    /// Loads any model file by its contents: a Lamina model file (`Model::load`), a Keras 3
    /// `.keras` archive or a legacy whole-model `.h5` file (`load_keras` with no bindings).
    fn open(path: impl AsRef<Path>) -> Result<Self>;

    /// As `load_keras`, from an archive already read. `path` only names the file in errors.
    fn from_keras_archive(
        archive: &KerasArchive,
        bindings: &KerasBindings,
        path: &Path,
    ) -> Result<Self>;

    /// Loads weights saved by Keras 3 (a `.weights.h5` file, or the weights inside a `.keras`
    /// file) into this model, matching layers as Keras does: the n-th layer of a class in the
    /// model takes the group `layers/<class>_<n>` (`dense`, `dense_1`, ...), its variables in
    /// order (`kernel`, `bias`). Every layer with weights must find them and every weight in
    /// the file must find a layer, with the same shapes; otherwise the error lists each
    /// mismatch and nothing is changed. The optimizer's variables are ignored.
    fn load_keras_weights(&self, path: impl AsRef<Path>) -> Result<()>;
}

impl KerasImport for Model {
    fn load_keras(path: impl AsRef<Path>, bindings: &KerasBindings) -> Result<Model> {
        let path = path.as_ref();
        if archive::is_hdf5(path)? {
            // A whole model in the legacy HDF5 format (`model.save("m.h5")`).
            let bytes = archive::read_weights_bytes(path)?;
            return legacy::load(&bytes, bindings, path);
        }
        let archive = KerasArchive::open(path)?;
        Model::from_keras_archive(&archive, bindings, path)
    }

    fn open(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        if sniff::is_keras(&sniff::prefix_of(path)?) {
            Model::load_keras(path, &KerasBindings::new())
        } else {
            Model::load(path)
        }
    }

    fn from_keras_archive(
        archive: &KerasArchive,
        bindings: &KerasBindings,
        path: &Path,
    ) -> Result<Model> {
        let config: serde_json::Value = serde_json::from_slice(&archive.config)
            .map_err(|e| file_err(path, format!("config.json is not valid JSON: {e}")))?;
        let h5 = hdf5::File::parse(&archive.weights)
            .map_err(|e| file_err(path, format!("model.weights.h5: {e}")))?;
        // Every weight comes from the file, at least 4 bytes a value: a configuration asking for
        // more is refused before its initial values are allocated.
        let budget = archive.weights.len() / 4;
        let built =
            lamina_graph::layers::with_weight_budget(budget, || config::build(&config, bindings))
                .map_err(|e| match e {
                Error::File { .. } => e,
                other => file_err(path, other.to_string()),
            })?;
        weights::assign(&h5, &built.slots, path)?;
        Ok(built.model)
    }

    fn load_keras_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = archive::read_weights_bytes(path)?;
        let h5 = hdf5::File::parse(&bytes).map_err(|e| file_err(path, e))?;
        let slots = weights::slots_of(self);
        weights::assign(&h5, &slots, path)
    }
}
