//! Reading and writing NumPy `.npy` files as host tensors.

use lamina::{HostData, HostTensor};
use npyz::WriterBuilder;
use std::path::Path;

/// Reads a C-order `.npy` file of float32/float64, int32/int64, uint32 or bool. float64 is
/// narrowed to float32 and int64 to int32 (an error if a value does not fit), as Keras does
/// when it feeds NumPy arrays to a float32 model.
pub fn read(path: &Path) -> Result<HostTensor, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let npy =
        npyz::NpyFile::new(&bytes[..]).map_err(|e| format!("{name} is not a .npy file: {e}"))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(format!("{name} is in Fortran order; save it in C order"));
    }
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("{name}: dimension {d} is too large")))
        .collect::<Result<_, _>>()?;
    let type_str = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => return Err(format!("{name}: unsupported dtype {}", other.descr())),
    };
    let kind = type_str.trim_start_matches(['<', '>', '|', '=']);
    let bad = |e: std::io::Error| format!("{name}: {e}");
    let data = match kind {
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
                .map(|v| {
                    i32::try_from(v).map_err(|_| format!("{name}: value {v} does not fit int32"))
                })
                .collect::<Result<_, _>>()?,
        ),
        "u4" => HostData::U32(npy.into_vec::<u32>().map_err(bad)?),
        "b1" => HostData::Bool(npy.into_vec::<bool>().map_err(bad)?),
        other => {
            return Err(format!(
                "{name}: unsupported dtype {other} (use float32, int32, uint32 or bool)"
            ));
        }
    };
    HostTensor::from_data(&shape, data).map_err(|e| format!("{name}: {e}"))
}

/// Writes a host tensor as a C-order `.npy` file.
pub fn write(path: &Path, t: &HostTensor) -> Result<(), String> {
    let name = path.display();
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut buf = Vec::new();
    let io = |e: std::io::Error| format!("cannot encode {name}: {e}");
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
    match t.data() {
        HostData::F32(v) => put!(v, f32),
        HostData::I32(v) => put!(v, i32),
        HostData::U32(v) => put!(v, u32),
        HostData::Bool(v) => put!(v, bool),
    }
    std::fs::write(path, buf).map_err(|e| format!("cannot write {name}: {e}"))
}
