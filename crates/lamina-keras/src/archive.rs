//! Reading a `.keras` archive (a zip) or a `.weights.h5` file into memory, bounded: every
//! entry's declared size is checked before it is read, reading stops at that size, memory is
//! reserved fallibly as data arrives, and a deflated entry may not claim to expand more than
//! deflate can.

use super::file_err;
use lamina_graph::error::Result;
use lamina_graph::saving::sniff::{HDF5_MAGIC, prefix_of, sniff};
use std::io::Read;
use std::path::Path;

/// The largest `config.json`, `metadata.json` or `model.weights.h5` read: 4 GiB.
pub const MAX_KERAS_ENTRY_BYTES: u64 = 1 << 32;
/// Deflate cannot expand data by more than about 1032 to 1.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// The most entries an archive may list.
const MAX_ENTRIES: usize = 1 << 12;

/// The parts of a `.keras` file, read into memory.
pub struct KerasArchive {
    /// `config.json`: the architecture.
    pub config: Vec<u8>,
    /// `metadata.json` (Keras version, date), empty when absent.
    pub metadata: Vec<u8>,
    /// `model.weights.h5`.
    pub weights: Vec<u8>,
}

/// Reads at most `limit` bytes from `r`, reserving memory as data arrives; more is an error.
fn read_bounded(path: &Path, r: &mut impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(file_err(path, format!("cannot read {what}: {e}"))),
        };
        if out.len() as u64 + n as u64 > limit {
            return Err(file_err(
                path,
                format!("{what} holds more than the {limit} bytes it may"),
            ));
        }
        out.try_reserve(n)
            .map_err(|_| file_err(path, format!("cannot allocate memory to read {what}")))?;
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

impl KerasArchive {
    /// Reads a `.keras` file. A file that is not a zip is refused naming what it is.
    pub fn open(path: &Path) -> Result<KerasArchive> {
        let prefix = prefix_of(path)?;
        if prefix.starts_with(HDF5_MAGIC) {
            return Err(file_err(
                path,
                "this is an HDF5 file (a Keras .weights.h5 or legacy .h5), not a .keras \
                 archive: build the model in Rust and call load_keras_weights",
            ));
        }
        if !prefix.starts_with(b"PK") {
            return Err(file_err(
                path,
                format!(
                    "not a .keras file (a zip archive){}",
                    match sniff(&prefix) {
                        Some(f) => format!(": it is {f}"),
                        None if prefix.first() == Some(&b'{') || prefix.len() >= 8 => {
                            " (a Lamina model file? use Model::load)".to_string()
                        }
                        None => String::new(),
                    }
                ),
            ));
        }
        let file =
            std::fs::File::open(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| file_err(path, format!("not a valid .keras (zip) file: {e}")))?;
        if zip.len() > MAX_ENTRIES {
            return Err(file_err(
                path,
                format!(
                    "the archive lists {} entries, more than {MAX_ENTRIES}",
                    zip.len()
                ),
            ));
        }
        // Each entry is read only up to the limit of its kind: the JSON ones to
        // MAX_METADATA_BYTES, the weights to MAX_KERAS_ENTRY_BYTES (a deflate bomb declaring
        // gigabytes of config.json is refused before a byte is inflated).
        let mut entry = |name: &str, required: bool, kind_limit: u64| -> Result<Vec<u8>> {
            let mut f = match zip.by_name(name) {
                Ok(f) => f,
                Err(zip::result::ZipError::FileNotFound) if !required => return Ok(Vec::new()),
                Err(zip::result::ZipError::FileNotFound) => {
                    return Err(file_err(
                        path,
                        format!("the archive has no '{name}': not a Keras 3 .keras file"),
                    ));
                }
                Err(e) => return Err(file_err(path, format!("'{name}': {e}"))),
            };
            let size = f.size();
            let limit = match f.compression() {
                zip::CompressionMethod::Stored => f.compressed_size(),
                _ => f.compressed_size().saturating_mul(MAX_DEFLATE_RATIO),
            }
            .min(kind_limit);
            if size > limit {
                return Err(file_err(
                    path,
                    format!(
                        "'{name}' declares {size} bytes, more than it can hold ({limit} at most)"
                    ),
                ));
            }
            let bytes = read_bounded(path, &mut (&mut f).take(size + 1), size, name)?;
            if (bytes.len() as u64) != size {
                return Err(file_err(
                    path,
                    format!(
                        "'{name}' holds {} bytes, not the {size} declared",
                        bytes.len()
                    ),
                ));
            }
            Ok(bytes)
        };
        let json_limit = lamina_graph::limits::MAX_METADATA_BYTES as u64;
        let config = entry("config.json", true, json_limit)?;
        if config.len() > lamina_graph::limits::MAX_METADATA_BYTES {
            return Err(file_err(
                path,
                format!(
                    "config.json holds {} bytes, more than {} (limits::MAX_METADATA_BYTES)",
                    config.len(),
                    lamina_graph::limits::MAX_METADATA_BYTES
                ),
            ));
        }
        let metadata = entry("metadata.json", false, json_limit)?;
        let weights = entry("model.weights.h5", true, MAX_KERAS_ENTRY_BYTES)?;
        Ok(KerasArchive {
            config,
            metadata,
            weights,
        })
    }
}

/// The HDF5 bytes of a `.weights.h5` file, or of the `model.weights.h5` inside a `.keras`.
/// Whether the file starts with the HDF5 signature.
pub(crate) fn is_hdf5(path: &Path) -> Result<bool> {
    Ok(prefix_of(path)?.starts_with(HDF5_MAGIC))
}

pub(crate) fn read_weights_bytes(path: &Path) -> Result<Vec<u8>> {
    let prefix = prefix_of(path)?;
    if prefix.starts_with(b"PK") {
        return Ok(KerasArchive::open(path)?.weights);
    }
    if !prefix.starts_with(HDF5_MAGIC) {
        return Err(file_err(
            path,
            format!(
                "not a Keras weights file (HDF5) or .keras archive{}",
                match sniff(&prefix) {
                    Some(f) => format!(": it is {f}"),
                    None => " (a safetensors file? use load_weights)".into(),
                }
            ),
        ));
    }
    let mut f =
        std::fs::File::open(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    read_bounded(
        path,
        &mut (&mut f).take(MAX_KERAS_ENTRY_BYTES + 1),
        MAX_KERAS_ENTRY_BYTES,
        "the file",
    )
}
