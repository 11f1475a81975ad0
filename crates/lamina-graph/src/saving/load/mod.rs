//! Loading: rebuilds a model from a file without running any code. Every index, arity, shape,
//! dtype, name and tensor is checked before use; a bad file gives an `Err`, never a panic.
//!
//! `from_bytes` reads the header and metadata here; `build` (in `build.rs`) rebuilds the graph:
//! it plans the calls (`plan.rs`), builds each layer from its record (`layers.rs`, recorded
//! bodies replayed by `replay.rs`) and replays the calls.

mod build;
mod layers;
mod plan;
mod replay;

use super::format::*;
use crate::error::{Error, Result};
use crate::host::HostTensor;
use crate::model::Model;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use std::collections::HashSet;
use std::path::Path;

struct Loader<'a> {
    path: String,
    tensors: SafeTensors<'a>,
    /// The tensors read so far: a file whose tensors are not all read is refused.
    used: std::cell::RefCell<HashSet<String>>,
    /// Where the model being built keeps its tensors: empty for the file's model,
    /// `layers/{i}/model/` for a model nested in it as layer `i`.
    prefix: std::cell::RefCell<String>,
}

impl<'a> Loader<'a> {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::File {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn new(path: String, tensors: SafeTensors<'a>) -> Loader<'a> {
        Loader {
            path,
            tensors,
            used: Default::default(),
            prefix: Default::default(),
        }
    }

    /// Runs `f` with tensor names read under `prefix` as well (for a nested model's build).
    fn nested<R>(&self, prefix: &str, f: impl FnOnce() -> R) -> R {
        let outer = self
            .prefix
            .replace(format!("{}{prefix}", self.prefix.borrow()));
        let out = f();
        *self.prefix.borrow_mut() = outer;
        out
    }

    fn tensor(&self, name: &str) -> Result<HostTensor> {
        let full = format!("{}{name}", self.prefix.borrow());
        let name = full.as_str();
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        self.used.borrow_mut().insert(name.to_string());
        let shape = view.shape().to_vec();
        let bytes = view.data();
        let words = |b: &[u8]| -> Vec<[u8; 4]> {
            b.chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect()
        };
        let t = match view.dtype() {
            Dtype::F32 => HostTensor::new(
                &shape,
                words(bytes).into_iter().map(f32::from_le_bytes).collect(),
            ),
            Dtype::I32 => HostTensor::new(
                &shape,
                words(bytes).into_iter().map(i32::from_le_bytes).collect(),
            ),
            Dtype::U32 => HostTensor::new(
                &shape,
                words(bytes).into_iter().map(u32::from_le_bytes).collect(),
            ),
            Dtype::BOOL => {
                if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                    return Err(self.err(format!("tensor '{name}' holds the byte {b}, not a bool")));
                }
                HostTensor::new(&shape, bytes.iter().map(|&b| b == 1).collect())
            }
            other => {
                return Err(self.err(format!("tensor '{name}' has unsupported dtype {other:?}")));
            }
        };
        t.map_err(|e| self.err(format!("tensor '{name}': {e}")))
    }
}

/// Rebuilds a model from the bytes of a model file. `path` only names the file in errors.
pub(crate) fn from_bytes(bytes: &[u8], path: &str) -> Result<Model> {
    let file_err = |detail: String| Error::File {
        path: path.to_string(),
        detail,
    };
    // The header's declared size is checked before the safetensors parser reads it.
    if let Some(prefix) = bytes.first_chunk::<8>() {
        super::bounded::header_len(prefix).map_err(file_err)?;
    }
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| file_err(format!("not a valid safetensors file: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| file_err(format!("not a valid safetensors file: {e}")))?;
    let loader = Loader::new(path.to_string(), tensors);
    let meta = metadata
        .metadata()
        .as_ref()
        .ok_or_else(|| loader.err("no metadata: not a Lamina model file"))?;
    match meta.get("format") {
        Some(f) if f == FORMAT_NAME => {}
        Some(f) => return Err(loader.err(format!("format '{f}' is not '{FORMAT_NAME}'"))),
        None => return Err(loader.err("no 'format' metadata: not a Lamina model file")),
    }
    let version_text = meta
        .get("version")
        .ok_or_else(|| loader.err("no 'version' metadata"))?;
    // Only the canonical spelling: "2", not "+2", "02" or " 2".
    let version: u32 = version_text
        .parse()
        .ok()
        .filter(|v: &u32| v.to_string() == *version_text)
        .ok_or_else(|| {
            loader.err(format!(
                "version '{version_text}' is not a format version (a number in plain digits)"
            ))
        })?;
    if version > FORMAT_VERSION {
        return Err(loader.err(format!(
            "format version {version} is newer than this build reads (up to {FORMAT_VERSION}); upgrade Lamina"
        )));
    }
    if version == 0 {
        return Err(loader.err("format version 0 does not exist"));
    }
    let arch_json = meta
        .get("architecture")
        .ok_or_else(|| loader.err("no 'architecture' metadata"))?;
    let arch: Architecture =
        serde_json::from_str(arch_json).map_err(|e| loader.err(format!("architecture: {e}")))?;
    build::build(&loader, &arch, bytes.len())
}

impl Model {
    /// Loads a model saved by `save`. Runs no code: Lambda bodies are replayed from their
    /// recorded graphs, and every field is validated; a truncated, corrupt or hostile file, or
    /// one of a newer format version, gives an `Err`.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = super::bounded::read_safetensors_file(path)?;
        from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a model from the bytes of a model file (see `load`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        from_bytes(bytes, "<bytes>")
    }

    /// The bytes of the model file `save` would write.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let snap = super::save::snapshot(self)?;
        super::save::to_bytes(&snap, Path::new("<bytes>"))
    }

    /// Loads weights from a safetensors file whose tensors are named by their Keras paths
    /// (`dense/kernel`, `dense/bias`, `linear/multiplier`, `tower/dense/kernel` inside a nested
    /// model), as trained elsewhere. Every name and
    /// shape is checked before anything is set, so a bad file changes nothing.
    pub fn load_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = super::bounded::read_safetensors_file(path)?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| Error::File {
            path: path.display().to_string(),
            detail: format!("not a valid safetensors file: {e}"),
        })?;
        let loader = Loader::new(path.display().to_string(), tensors);
        let weights = self.named_weights();
        let mut updates = Vec::new();
        for name in loader.tensors.names() {
            let var = weights
                .iter()
                .find(|(p, _)| p == name)
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    loader.err(format!(
                        "weight '{name}' is not in the model (it has: {})",
                        crate::limits::bounded_list(
                            &weights.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
                            ", "
                        )
                    ))
                })?;
            let value = loader.tensor(name)?;
            if value.shape() != var.shape().as_slice() || value.dtype() != var.dtype() {
                return Err(loader.err(format!(
                    "layer '{}': weight '{}' has shape {:?} {} in the model but {:?} {} in the file",
                    var.layer(),
                    var.name(),
                    var.shape(),
                    var.dtype(),
                    value.shape(),
                    value.dtype()
                )));
            }
            updates.push((var.clone(), value));
        }
        for (var, value) in updates {
            var.set(value)?;
        }
        Ok(())
    }

    /// As `load_weights` (safetensors named `layer/variable`), but every weight of the model
    /// must be in the file: the error lists those it lacks, and then nothing is changed.
    pub fn load_weights_strict(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = super::bounded::read_safetensors_file(path)?;
        let names: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| strict_err(path, format!("not a valid safetensors file: {e}")))?
            .names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let missing: Vec<String> = self
            .weights()
            .iter()
            .map(|v| v.path())
            .filter(|p| !names.contains(p))
            .collect();
        if !missing.is_empty() {
            return Err(strict_err(
                path,
                format!(
                    "it lacks {} weight(s) of the model: {}",
                    missing.len(),
                    crate::limits::bounded_list(&missing, ", ")
                ),
            ));
        }
        self.load_weights(path)
    }
}

fn strict_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}
