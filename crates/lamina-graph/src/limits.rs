//! The limits that keep hostile input (a crafted model file, a huge shape, a long name) from
//! costing more than an error: every one is checked before anything is allocated for it.
//!
//! | limit | value | checked |
//! | --- | --- | --- |
//! | [`MAX_RANK`] | 64 axes | every tensor, when the graph is built and when a file loads |
//! | [`MAX_ELEMENTS`] | 2^32 elements | every tensor shape (known dims), every host tensor |
//! | [`loaded_node_limit`] | one node per 16 bytes of file, at least 2^16, at most 2^20 | a model file's graph after its recorded bodies replay |
//! | [`MAX_METADATA_BYTES`] | 64 MiB | a model file's header (architecture JSON included) |
//! | [`MAX_LAYER_CONSTANT`] | 2^26 elements | a constant a layer builds itself (the indices of padding, up-sampling, resizing) |

use crate::error::{Error, Result};
use crate::shape::{Dim, Shape};
use std::borrow::Cow;

pub use crate::host::MAX_ELEMENTS;

/// The most axes a tensor may have: 64, as NumPy 2. A shape of higher rank is refused where it
/// is made (an op, an `Input`, a constant), so that no node stores an oversized shape.
pub const MAX_RANK: usize = 64;

/// The most graph nodes any model file may replay into: 2^20 (1,048,576). A Lambda body is
/// recorded once in a file but replays once per call, so a small file could otherwise describe
/// an enormous graph; the count is checked from the architecture before any node is made. See
/// `loaded_node_limit` for the limit of a file of a given size.
pub const MAX_LOADED_NODES: usize = 1 << 20;

/// The nodes any model file may replay into, however small: 2^16 (65,536).
pub const LOADED_NODES_FLOOR: usize = 1 << 16;

/// Above the floor, a model file may replay into one graph node per this many bytes of file,
/// so that loading costs memory and time in proportion to the file's size (a recorded node
/// takes about 40 bytes of JSON, so a file whose bodies each replay once is always within it).
pub const LOAD_BYTES_PER_NODE: usize = 16;

/// The most graph nodes a model file of `file_bytes` bytes may replay into: one per
/// `LOAD_BYTES_PER_NODE` bytes, at least `LOADED_NODES_FLOOR`, at most `MAX_LOADED_NODES`.
/// Recorded bodies (Lambdas, their mask functions, custom activations) count their nodes once
/// per call; every other layer call counts one.
pub fn loaded_node_limit(file_bytes: usize) -> usize {
    (file_bytes / LOAD_BYTES_PER_NODE).clamp(LOADED_NODES_FLOOR, MAX_LOADED_NODES)
}

/// The most elements of a constant a layer builds from its own arguments (the index and weight
/// vectors of padding, up-sampling and resizing): 2^26 (64 Mi). Checked before the vector is
/// allocated, so that an 800-byte file asking for a padding of 2^31 costs an error.
pub const MAX_LAYER_CONSTANT: usize = 1 << 26;

/// Checks that a layer may build a constant of `count` elements (`None`: the count overflowed),
/// naming the layer and what the constant is for.
pub fn check_layer_constant(layer: &str, what: &str, count: Option<usize>) -> Result<usize> {
    match count {
        Some(n) if n <= MAX_LAYER_CONSTANT => Ok(n),
        _ => Err(Error::Model {
            detail: format!(
                "{layer}: {what} would need {} elements, more than {MAX_LAYER_CONSTANT} \
                 (limits::MAX_LAYER_CONSTANT)",
                count.map_or("too many".to_string(), |n| n.to_string())
            ),
        }),
    }
}

/// The most entries an error message lists (layer names, classes, weights, mismatches): the
/// rest are counted, so a file with 20,000 unknown classes gives a message of a few hundred
/// bytes, not megabytes.
pub const MAX_LISTED: usize = 12;

/// The longest text an error message quotes from elsewhere (a driver's or a compiler's
/// message): 2,000 characters, then a count of the rest.
pub const MAX_QUOTED_CHARS: usize = 2000;

/// `items` joined by `separator`, the first [`MAX_LISTED`] of them, then `and N more`.
pub fn bounded_list<S: AsRef<str>>(items: &[S], separator: &str) -> String {
    let mut out: Vec<&str> = items.iter().take(MAX_LISTED).map(AsRef::as_ref).collect();
    let more = items.len().saturating_sub(MAX_LISTED);
    let tail = format!("and {more} more");
    if more > 0 {
        out.push(&tail);
    }
    out.join(separator)
}

/// `text` cut to [`MAX_QUOTED_CHARS`] characters, with a count of what was cut.
pub fn bounded_text(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!(
            "{}... ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        )),
    }
}

/// The largest model file header (the safetensors header with the architecture JSON in its
/// metadata): 64 MiB. Checked from the header's declared length before it is read.
pub const MAX_METADATA_BYTES: usize = 64 << 20;

/// Checks a shape against `MAX_RANK` and `MAX_ELEMENTS` (each known dimension, and their
/// product with checked arithmetic). `op` and `inputs` name what made the shape in the error.
pub fn check_shape(op: &str, inputs: &[&Shape], shape: &Shape) -> Result<()> {
    let err = |detail: String| Error::IncompatibleShapes {
        op: op.to_string(),
        shapes: if inputs.is_empty() {
            "()".to_string()
        } else {
            crate::shape::shapes_string(inputs)
        },
        detail,
    };
    if shape.rank() > MAX_RANK {
        return Err(err(format!(
            "the result would have {} axes, more than the maximum rank {MAX_RANK}",
            shape.rank()
        )));
    }
    let known = shape.dims().iter().filter_map(|d| d.known());
    let mut total: usize = 1;
    for d in known {
        total = match total.checked_mul(d) {
            Some(t) if d <= MAX_ELEMENTS && t <= MAX_ELEMENTS => t,
            _ => {
                return Err(err(format!(
                    "the result {shape} would hold more than {MAX_ELEMENTS} elements"
                )));
            }
        };
    }
    Ok(())
}

/// Checks the shape of a leaf (an input, a constant, a variable): `check_shape` with the
/// shape itself named (only its rank when that is what is too large).
pub(crate) fn check_leaf(op: &str, shape: &Shape) -> Result<()> {
    let shown = if shape.rank() > MAX_RANK {
        format!("a shape of rank {}", shape.rank())
    } else {
        shape.to_string()
    };
    check_shape(op, &[], shape).map_err(|e| match e {
        Error::IncompatibleShapes { op, detail, .. } => Error::IncompatibleShapes {
            op,
            shapes: shown,
            detail,
        },
        other => other,
    })
}

/// The sum of dimension sizes, or `None` if any is unknown; an error on overflow.
pub(crate) fn checked_dim_sum(op: &str, shapes: &[&Shape], dims: &[Dim]) -> Result<Option<usize>> {
    let mut total = 0usize;
    for d in dims {
        let Dim::Known(k) = d else {
            return Ok(None);
        };
        total = total
            .checked_add(*k)
            .ok_or_else(|| Error::IncompatibleShapes {
                op: op.to_string(),
                shapes: crate::shape::shapes_string(shapes),
                detail: format!(
                    "the sizes along the axis add up to more than {}",
                    usize::MAX
                ),
            })?;
    }
    Ok(Some(total))
}

/// Text that is safe to print to a terminal: control characters (escape sequences included),
/// and the Unicode controls that reorder or hide text, become `\u{..}` escapes (`\n`, `\t`,
/// `\r`, `\\` keep their short forms only when escaped). Names from files and users pass
/// through this before `summary()` or the `lamina` command print them.
pub fn printable(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c,
                '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_controls() {
        assert_eq!(printable("dense_1"), "dense_1");
        assert!(matches!(printable("dense"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(printable("\u{202E}evil"), "\\u{202e}evil");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("naïve ✓"), "naïve ✓");
    }

    #[test]
    fn shapes_past_the_limits_are_refused() {
        let ok = Shape::known(&[2, 1 << 31]);
        assert!(check_shape("concatenate", &[], &ok).is_ok());
        let big = Shape::known(&[2, 1 << 32]);
        let e = check_shape("concatenate", &[&ok, &ok], &big).unwrap_err();
        assert!(e.to_string().contains("concatenate"), "{e}");
        assert!(e.to_string().contains("(2, 2147483648)"), "{e}");
        let huge = Shape::known(&[1 << 63, 1 << 63]);
        assert!(check_shape("reshape", &[], &huge).is_err());
        let deep = Shape::known(&[1; MAX_RANK + 1]);
        assert!(check_shape("reshape", &[], &deep).is_err());
        assert!(check_shape("reshape", &[], &Shape::known(&[1; MAX_RANK])).is_ok());
        let dynamic = Shape::new([Dim::Dynamic, Dim::Known(1 << 32)]);
        assert!(check_shape("add", &[], &dynamic).is_ok());
        let sum = checked_dim_sum("concatenate", &[], &[Dim::Known(usize::MAX), Dim::Known(1)]);
        assert!(sum.is_err());
    }
}
