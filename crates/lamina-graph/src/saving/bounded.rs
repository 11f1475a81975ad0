//! Reading a model (or weights) file without trusting its size: the header's declared length is
//! checked against `MAX_METADATA_BYTES` before the header is read, the data is read only up to
//! the size the header declares, and nothing is allocated for bytes that have not arrived. An
//! endless file (`/dev/zero`, a pipe) or a header that declares more than the file holds costs
//! an error, not the process's memory.

use crate::error::{Error, Result};
use crate::limits::MAX_METADATA_BYTES;
use safetensors::tensor::Metadata;
use std::io::Read;
use std::path::Path;

/// How much is read (and allocated) at a time.
const CHUNK: usize = 1 << 20;

fn file_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// The header length a safetensors file declares in its first 8 bytes, checked against
/// `MAX_METADATA_BYTES`.
pub(crate) fn header_len(prefix: &[u8; 8]) -> std::result::Result<usize, String> {
    let n = u64::from_le_bytes(*prefix);
    if n > MAX_METADATA_BYTES as u64 {
        return Err(format!(
            "not a valid safetensors file: its header declares {n} bytes, more than the \
             maximum of {MAX_METADATA_BYTES} (limits::MAX_METADATA_BYTES)"
        ));
    }
    if n < 2 {
        return Err(format!(
            "not a valid safetensors file: its header declares {n} bytes"
        ));
    }
    Ok(n as usize)
}

/// Reads `len` bytes onto `buf`, growing it only as data arrives and with fallible
/// allocation; an early end of file is an error naming `what`.
fn read_exactly(
    path: &Path,
    reader: &mut impl Read,
    buf: &mut Vec<u8>,
    len: usize,
    what: &str,
) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let step = left.min(CHUNK);
        buf.try_reserve(step).map_err(|_| {
            file_err(
                path,
                format!("cannot allocate memory to read its {what} ({len} bytes)"),
            )
        })?;
        let start = buf.len();
        buf.resize(start + step, 0);
        let mut got = 0;
        while got < step {
            match reader.read(&mut buf[start + got..start + step]) {
                Ok(0) => {
                    return Err(file_err(
                        path,
                        format!(
                            "not a valid safetensors file: truncated: it ends after {} of the {len} bytes of its {what}",
                            len - left + got
                        ),
                    ));
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(file_err(path, format!("cannot read: {e}"))),
            }
        }
        left -= step;
    }
    Ok(())
}

/// The bytes of a safetensors file, read by the sizes its header declares: the 8-byte header
/// length (at most `MAX_METADATA_BYTES`), the header, then the tensor data the header
/// describes, and nothing after it. A regular file whose length differs from what its header
/// declares is refused before its data is read.
pub(crate) fn read_safetensors_file(path: &Path) -> Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let file_len = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let mut reader = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    read_exactly(path, &mut reader, &mut bytes, 8, "header length")?;
    let prefix: [u8; 8] = bytes[..8].try_into().unwrap_or([0; 8]);
    if let Some(format) = super::sniff::sniff(&prefix) {
        return Err(file_err(
            path,
            format!(
                "not a safetensors file: it is {format}{}",
                if format.starts_with("NumPy") {
                    " (read it with HostTensor::read_npy)"
                } else {
                    " (load Keras files with Model::load_keras or load_keras_weights)"
                }
            ),
        ));
    }
    let n = header_len(&prefix).map_err(|d| file_err(path, d))?;
    if let Some(len) = file_len
        && len < 8 + n as u64
    {
        return Err(file_err(
            path,
            format!(
                "not a valid safetensors file: truncated: it holds {len} bytes, fewer than its \
                 {n}-byte header needs"
            ),
        ));
    }
    read_exactly(path, &mut reader, &mut bytes, n, "header")?;
    let metadata: Metadata = serde_json::from_slice(&bytes[8..])
        .map_err(|e| file_err(path, format!("not a valid safetensors file: {e}")))?;
    let data_len = metadata.data_len();
    let total = (8 + n as u64).saturating_add(data_len as u64);
    if let Some(len) = file_len
        && len != total
    {
        return Err(file_err(
            path,
            format!(
                "not a valid safetensors file: it holds {len} bytes but its header declares \
                 {total} ({n} of header, {data_len} of tensor data)"
            ),
        ));
    }
    read_exactly(path, &mut reader, &mut bytes, data_len, "tensor data")?;
    // Nothing may follow the declared data (a stream that goes on is not this file).
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => break,
            Ok(_) => {
                return Err(file_err(
                    path,
                    format!(
                        "not a valid safetensors file: it goes on past the {total} bytes its \
                         header declares"
                    ),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(file_err(path, format!("cannot read: {e}"))),
        }
    }
    Ok(bytes)
}
