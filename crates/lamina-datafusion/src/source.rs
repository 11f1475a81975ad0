//! Where a model function's model comes from, and how it travels in a serialized query plan:
//! its bytes when small, else its file's path and content hash.

use lamina_graph::{Error, Model, Result};
use lamina_keras::KerasImport;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Models up to this many bytes (as Lamina model files) travel inside query plans; larger ones
/// travel as a path and a content hash.
pub const INLINE_LIMIT: usize = 8 << 20;

/// Marks the bytes this crate writes into a plan, with their layout version.
const MAGIC: &[u8; 8] = b"LAMINA\x00\x01";

/// Where a model comes from.
#[derive(Clone)]
pub enum ModelSource {
    /// The bytes of a Lamina model file.
    Inline {
        /// The model file's bytes.
        bytes: Arc<[u8]>,
        /// Their SHA-256.
        digest: [u8; 32],
    },
    /// A model file every machine reads at the same path.
    File {
        /// The file's absolute path.
        path: PathBuf,
        /// The SHA-256 of its contents.
        digest: [u8; 32],
    },
}

impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Inline { bytes, digest } => write!(
                f,
                "Inline({} bytes, sha256 {})",
                bytes.len(),
                hex(&digest[..8])
            ),
            ModelSource::File { path, digest } => {
                write!(f, "File({}, sha256 {})", path.display(), hex(&digest[..8]))
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl ModelSource {
    /// A model carried by its bytes.
    pub fn inline(model: &Model) -> Result<ModelSource> {
        let bytes: Arc<[u8]> = model.to_bytes()?.into();
        Ok(ModelSource::Inline {
            digest: sha256(&bytes),
            bytes,
        })
    }

    /// Loads a model file; a small model is carried by its bytes, a large one by the path.
    pub fn from_file(path: &Path) -> Result<(Model, ModelSource)> {
        let model = Model::open(path)?;
        let bytes = model.to_bytes()?;
        if bytes.len() <= INLINE_LIMIT {
            let bytes: Arc<[u8]> = bytes.into();
            return Ok((
                model,
                ModelSource::Inline {
                    digest: sha256(&bytes),
                    bytes,
                },
            ));
        }
        let path = std::path::absolute(path).map_err(|e| Error::File {
            path: path.display().to_string(),
            detail: format!("cannot make the path absolute: {e}"),
        })?;
        let digest = file_digest(&path)?;
        Ok((model, ModelSource::File { path, digest }))
    }

    /// The SHA-256 that identifies the model.
    pub fn digest(&self) -> [u8; 32] {
        match self {
            ModelSource::Inline { digest, .. } | ModelSource::File { digest, .. } => *digest,
        }
    }

    /// The bytes written into a plan.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            ModelSource::Inline { bytes, digest } => {
                out.push(0);
                out.extend_from_slice(digest);
                out.extend_from_slice(bytes);
            }
            ModelSource::File { path, digest } => {
                out.push(1);
                out.extend_from_slice(digest);
                out.extend_from_slice(path.to_string_lossy().as_bytes());
            }
        }
        out
    }

    /// Whether plan bytes were written by `encode`.
    pub fn is_encoded(buf: &[u8]) -> bool {
        buf.starts_with(MAGIC)
    }

    /// The model hash recorded in plan bytes, read without loading the model.
    pub fn encoded_digest(buf: &[u8]) -> Option<[u8; 32]> {
        buf.get(MAGIC.len() + 1..MAGIC.len() + 33)?.try_into().ok()
    }

    /// Reads plan bytes back and loads the model, checking its hash.
    pub fn decode(buf: &[u8]) -> Result<(Model, ModelSource)> {
        let bad = |detail: &str| Error::Model {
            detail: format!("a model function in the query plan is unreadable: {detail}"),
        };
        if !Self::is_encoded(buf) || buf.len() < MAGIC.len() + 33 {
            return Err(bad(
                "it was not written by this version of lamina-datafusion",
            ));
        }
        let kind = buf[MAGIC.len()];
        let digest: [u8; 32] = buf[MAGIC.len() + 1..MAGIC.len() + 33]
            .try_into()
            .map_err(|_| bad("short hash"))?;
        let rest = &buf[MAGIC.len() + 33..];
        match kind {
            0 => {
                if sha256(rest) != digest {
                    return Err(bad("the model's bytes do not match their hash"));
                }
                let model = Model::from_bytes(rest)?;
                Ok((
                    model,
                    ModelSource::Inline {
                        bytes: rest.into(),
                        digest,
                    },
                ))
            }
            1 => {
                let path = PathBuf::from(
                    std::str::from_utf8(rest).map_err(|_| bad("the model path is not UTF-8"))?,
                );
                let found = file_digest(&path)?;
                if found != digest {
                    return Err(Error::File {
                        path: path.display().to_string(),
                        detail: format!(
                            "this machine's copy of the model differs from the one the query \
                             was planned with (sha256 {} here, {} expected)",
                            hex(&found[..8]),
                            hex(&digest[..8])
                        ),
                    });
                }
                let model = Model::open(&path)?;
                Ok((model, ModelSource::File { path, digest }))
            }
            k => Err(bad(&format!("unknown source kind {k}"))),
        }
    }
}

fn file_digest(path: &Path) -> Result<[u8; 32]> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        detail: format!("cannot read the model file: {e}"),
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::File {
        path: path.display().to_string(),
        detail: format!("cannot read the model file: {e}"),
    })?;
    Ok(hasher.finalize().into())
}
