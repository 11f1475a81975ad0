//! NumPy `.npy` files as host tensors: `HostTensor::read_npy("x.npy")`,
//! `HostTensor::from_npy_bytes(&bytes)`, `t.write_npy("y.npy")`, `t.to_npy_bytes()`.
//!
//! Reading trusts nothing: the header is bounded (`MAX_NPY_HEADER_BYTES`, brackets nested at
//! most `MAX_NPY_HEADER_NESTING` deep, a shape of at most `MAX_ELEMENTS` elements) before it
//! is parsed, and the data is read only up to its declared size, which must be exactly what
//! the file holds.

use crate::error::{Error, Result};
use crate::host::{HostData, HostTensor, MAX_ELEMENTS};
use std::io::Read;
use std::path::Path;

/// The largest `.npy` header read: 64 KiB (NumPy writes fewer than 200 bytes for a plain array).
pub const MAX_NPY_HEADER_BYTES: usize = 64 * 1024;

/// How deeply brackets may nest in a `.npy` header. A plain array's header nests two deep (the
/// dict and its shape tuple); deep nesting makes the header parser take exponential time.
pub const MAX_NPY_HEADER_NESTING: usize = 8;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

impl HostTensor {
    /// Reads a C-order `.npy` file of float32, float64, int32, int64, uint32 or bool. float64 is
    /// narrowed to float32 and int64 to int32 (an error if a value does not fit), as Keras does
    /// when it feeds NumPy arrays to a float32 model. A file that is not a valid `.npy` file,
    /// whose header is oversized, or that holds more or fewer data bytes than its header
    /// declares, is an `Err` naming the file.
    pub fn read_npy(path: impl AsRef<Path>) -> Result<HostTensor> {
        let path = path.as_ref();
        let origin = format!("npy file {}", path.display());
        let file = std::fs::File::open(path).map_err(|e| Error::Npy {
            origin: origin.clone(),
            detail: format!("cannot read: {e}"),
        })?;
        read(std::io::BufReader::new(file), &origin)
    }

    /// Reads `.npy` data held in memory, as `read_npy` reads a file.
    pub fn from_npy_bytes(bytes: &[u8]) -> Result<HostTensor> {
        read(bytes, "npy data")
    }

    /// The tensor as the bytes of a C-order `.npy` file (version 1.0).
    pub fn to_npy_bytes(&self) -> Result<Vec<u8>> {
        use npyz::WriterBuilder;
        let shape: Vec<u64> = self.shape().iter().map(|&d| d as u64).collect();
        let mut buf = Vec::new();
        let io = |e: std::io::Error| Error::Npy {
            origin: "npy data".into(),
            detail: format!("cannot encode: {e}"),
        };
        macro_rules! put {
            ($v:expr, $ty:ty) => {{
                let mut w = npyz::WriteOptions::<$ty>::new()
                    .default_dtype()
                    .shape(&shape)
                    .writer(&mut buf)
                    .begin_nd()
                    .map_err(io)?;
                w.extend($v.iter().copied()).map_err(io)?;
                w.finish().map_err(io)?;
            }};
        }
        match self.data() {
            HostData::F32(v) => put!(v, f32),
            HostData::I32(v) => put!(v, i32),
            HostData::U32(v) => put!(v, u32),
            HostData::Bool(v) => put!(v, bool),
        }
        Ok(buf)
    }

    /// Writes the tensor as a C-order `.npy` file, atomically as model saves are (a temporary
    /// file and a rename; only a regular file is replaced).
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_npy_bytes()?;
        crate::saving::write_atomically(path, &bytes)
    }
}

/// Reads one `.npy` array from `r`, which must hold nothing after it.
fn read(mut r: impl Read, origin: &str) -> Result<HostTensor> {
    let err = |detail: String| Error::Npy {
        origin: origin.to_string(),
        detail,
    };
    let io = |e: std::io::Error| err(format!("cannot read: {e}"));

    // The preamble: magic, version, header length.
    let mut preamble = [0u8; 12];
    let got = read_up_to(&mut r, &mut preamble[..8]).map_err(io)?;
    if got < 8 || &preamble[..6] != MAGIC {
        return Err(err(
            "not a .npy file (no \\x93NUMPY magic at its start)".into()
        ));
    }
    let (major, minor) = (preamble[6], preamble[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(err(format!(
                "not a .npy file: unsupported format version {major}.{minor}"
            )));
        }
    };
    let prefix = 8 + len_bytes;
    if read_up_to(&mut r, &mut preamble[8..prefix]).map_err(io)? < len_bytes {
        return Err(err("not a .npy file: truncated before its header".into()));
    }
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([preamble[8], preamble[9]]) as usize
    } else {
        u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]) as usize
    };
    if header_len > MAX_NPY_HEADER_BYTES {
        return Err(err(format!(
            "header of {header_len} bytes exceeds the limit of {MAX_NPY_HEADER_BYTES}"
        )));
    }

    // The header text, checked before the parser sees it.
    let mut header = vec![0u8; header_len];
    if read_up_to(&mut r, &mut header).map_err(io)? < header_len {
        return Err(err(format!(
            "truncated: its header declares {header_len} bytes, fewer follow"
        )));
    }
    check_nesting(&header).map_err(&err)?;
    let declared = declared_elements(&header).map_err(&err)?;

    let mut head = preamble[..prefix].to_vec();
    head.extend_from_slice(&header);
    let parsed = std::panic::catch_unwind(|| npyz::NpyHeader::from_reader(&head[..]))
        .map_err(|_| err("not a .npy file: its header could not be parsed".into()))?
        .map_err(|e| err(format!("not a .npy file: {e}")))?;
    if parsed.order() == npyz::Order::Fortran {
        return Err(err("in Fortran order; save it in C order".into()));
    }
    let shape: Vec<usize> = parsed
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("dimension {d} is too large"))))
        .collect::<Result<_>>()?;
    let numel = crate::host::checked_numel(&shape).map_err(|e| err(e.to_string()))?;
    if numel != declared {
        return Err(err(format!(
            "header shape {shape:?} disagrees with its own text ({declared} elements)"
        )));
    }
    let type_str = match parsed.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => return Err(err(format!("unsupported dtype {}", other.descr()))),
    };
    let kind = type_str
        .trim_start_matches(['<', '>', '|', '='])
        .to_string();
    let item = match kind.as_str() {
        "f4" | "i4" | "u4" => 4,
        "f8" | "i8" => 8,
        "b1" => 1,
        other => {
            return Err(err(format!(
                "unsupported dtype {other} (use float32, int32, uint32 or bool)"
            )));
        }
    };

    // The data: exactly its declared size, read no further than one byte past it.
    let size = numel
        .checked_mul(item)
        .ok_or_else(|| err(format!("shape {shape:?} is too large")))?;
    let mut data = Vec::new();
    r.take(size as u64 + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() < size {
        return Err(err(format!(
            "truncated: shape {shape:?} of {type_str} needs {size} data bytes, {} follow the header",
            data.len()
        )));
    }
    if data.len() > size {
        return Err(err(format!(
            "more data than shape {shape:?} of {type_str} declares ({size} bytes)"
        )));
    }

    let npy = npyz::NpyFile::with_header(parsed, &data[..]);
    let bad = |e: std::io::Error| err(e.to_string());
    let values = match kind.as_str() {
        "f4" => HostData::F32(npy.into_vec::<f32>().map_err(bad)?),
        "f8" => HostData::F32(
            npy.into_vec::<f64>()
                .map_err(bad)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        ),
        "i4" => HostData::I32(npy.into_vec::<i32>().map_err(bad)?),
        "i8" => HostData::I32(
            npy.into_vec::<i64>()
                .map_err(bad)?
                .into_iter()
                .map(|v| i32::try_from(v).map_err(|_| err(format!("value {v} does not fit int32"))))
                .collect::<Result<_>>()?,
        ),
        "u4" => HostData::U32(npy.into_vec::<u32>().map_err(bad)?),
        _ => HostData::Bool(npy.into_vec::<bool>().map_err(bad)?),
    };
    HostTensor::from_data(&shape, values).map_err(|e| err(e.to_string()))
}

/// Fills as much of `buf` as `r` holds; returns how many bytes were read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Refuses brackets nested deeper than `MAX_NPY_HEADER_NESTING`.
fn check_nesting(header: &[u8]) -> std::result::Result<(), String> {
    let mut depth = 0usize;
    for &b in header {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NPY_HEADER_NESTING {
                    return Err(format!(
                        "header nests brackets deeper than {MAX_NPY_HEADER_NESTING}"
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The number of elements of the header's `'shape'` tuple, read from its text so that a
/// hostile shape is refused before the parser multiplies it out.
fn declared_elements(header: &[u8]) -> std::result::Result<usize, String> {
    let text = std::str::from_utf8(header).map_err(|_| "header is not text".to_string())?;
    let key = ["'shape'", "\"shape\""]
        .iter()
        .find_map(|k| text.rfind(k).map(|i| i + k.len()))
        .ok_or_else(|| "not a .npy file: its header has no 'shape'".to_string())?;
    let rest = text[key..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('('))
        .ok_or_else(|| "not a .npy file: its 'shape' is not a tuple".to_string())?;
    let close = rest
        .find(')')
        .ok_or_else(|| "not a .npy file: its 'shape' is not a tuple".to_string())?;
    let mut n = 1usize;
    for part in rest[..close].split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let d: usize = part
            .trim_end_matches(['L', 'l'])
            .parse()
            .map_err(|_| format!("shape entry '{part}' is not a non-negative integer"))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| {
                format!(
                    "shape ({}) has more than {MAX_ELEMENTS} elements",
                    &rest[..close]
                )
            })?;
    }
    Ok(n)
}
