//! Telling file formats apart by their first bytes, for the readers of Lamina model files and
//! of Keras files alike: which reader a file needs (`Model::open`), and errors that name what a
//! file is when it is not what was asked for.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// How many leading bytes [`prefix_of`] reads: enough for every signature here.
pub const PREFIX_LEN: usize = 8;

/// The signature of an HDF5 file (a Keras `.weights.h5` or legacy whole-model `.h5`).
pub const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Whether a file with these first bytes is a Keras file (a `.keras` zip archive or an HDF5
/// `.h5`) rather than a Lamina model file.
pub fn is_keras(prefix: &[u8]) -> bool {
    prefix.starts_with(b"PK") || prefix.starts_with(HDF5_MAGIC)
}

/// What a file looks like from its first bytes, for errors that name the format; `None` for
/// anything else (a Lamina model file, a safetensors file, text, ...).
pub fn sniff(prefix: &[u8]) -> Option<&'static str> {
    if prefix.starts_with(HDF5_MAGIC) {
        Some("HDF5 (a Keras .weights.h5 or .h5 file)")
    } else if prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") {
        Some("zip (a Keras .keras archive?)")
    } else if prefix.starts_with(b"\x93NUMPY") {
        Some("NumPy .npy")
    } else {
        None
    }
}

/// The first [`PREFIX_LEN`] bytes of the file at `path` (fewer if it is shorter).
pub fn prefix_of(path: &Path) -> Result<Vec<u8>> {
    let cannot_read = |e: std::io::Error| Error::File {
        path: path.display().to_string(),
        detail: format!("cannot read: {e}"),
    };
    let mut f = std::fs::File::open(path).map_err(cannot_read)?;
    let mut buf = vec![0u8; PREFIX_LEN];
    let mut got = 0;
    while got < PREFIX_LEN {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(cannot_read(e)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}
