//! The hand-written WGSL that Lamina's GPU kernels are built from, one complete module per
//! file in this folder (each validated by naga in `tests/validate.rs`), embedded so that the
//! published crates carry them.

use std::sync::OnceLock;

/// Helper functions every generated kernel may call (`helpers.wgsl`): NaN-aware comparisons,
/// max/min and casts, exp, log, tanh, sigmoid, erf, pow, expm1, log1p, floor division and
/// modulo. A kernel needs only those it calls: see [`helpers_for`].
pub const HELPERS: &str = include_str!("../helpers.wgsl");

/// One function of `helpers.wgsl`: its name, its text (with the comment lines just above it)
/// and the indices of the helpers it calls.
struct Helper {
    name: &'static str,
    text: &'static str,
    calls: Vec<usize>,
}

/// The helpers of `helpers.wgsl` in file order, parsed once: a function starts at a line that
/// begins with `fn ` and runs to the start of the next one (or its comment).
fn parsed() -> &'static [Helper] {
    static HELPERS_PARSED: OnceLock<Vec<Helper>> = OnceLock::new();
    HELPERS_PARSED.get_or_init(|| {
        // Byte offset of every line start.
        let mut starts = vec![0usize];
        starts.extend(HELPERS.match_indices('\n').map(|(i, _)| i + 1));
        let line = |k: usize| {
            let end = starts.get(k + 1).copied().unwrap_or(HELPERS.len());
            &HELPERS[starts[k]..end]
        };
        let lines = starts.len();
        // (first line including its comment, the `fn` line) of each function.
        let mut spans = Vec::new();
        for k in 0..lines {
            if line(k).starts_with("fn ") {
                let mut first = k;
                while first > 0 && line(first - 1).starts_with("//") {
                    first -= 1;
                }
                spans.push((first, k));
            }
        }
        let mut helpers: Vec<Helper> = spans
            .iter()
            .enumerate()
            .map(|(i, &(first, fn_line))| {
                let end = spans
                    .get(i + 1)
                    .map_or(HELPERS.len(), |&(next, _)| starts[next]);
                // Trailing blank lines dropped, the final newline kept.
                let trimmed = HELPERS[starts[first]..end].trim_end_matches(['\n', ' ']);
                let text = &HELPERS[starts[first]..(starts[first] + trimmed.len() + 1).min(end)];
                let head = &line(fn_line)[3..];
                let name = &head[..head.find('(').unwrap_or(head.len())];
                Helper {
                    name: name.trim(),
                    text,
                    calls: Vec::new(),
                }
            })
            .collect();
        let names: Vec<&str> = helpers.iter().map(|h| h.name).collect();
        for h in &mut helpers {
            let body = &h.text[h.text.find("fn ").unwrap_or(0)..];
            h.calls = called(body)
                .filter(|c| *c != h.name)
                .filter_map(|c| names.iter().position(|n| *n == c))
                .collect();
        }
        helpers
    })
}

/// The names `lamina_*` that `src` calls (followed by `(`), outside `//` comments, in order of
/// appearance, repeats included.
fn called(src: &str) -> impl Iterator<Item = &str> {
    src.lines()
        .map(|l| l.find("//").map_or(l, |c| &l[..c]))
        .flat_map(|l| {
            l.match_indices("lamina_").filter_map(move |(i, _)| {
                let before = l[..i].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return None;
                }
                let len = l[i..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(l.len() - i);
                let rest = l[i + len..].trim_start();
                rest.starts_with('(').then(|| &l[i..i + len])
            })
        })
}

/// The names of the helper functions of `helpers.wgsl`, in file order.
pub fn helper_names() -> impl Iterator<Item = &'static str> {
    parsed().iter().map(|h| h.name)
}

/// The text of one helper function (with its comment), or `None` if there is no such helper.
pub fn helper(name: &str) -> Option<&'static str> {
    parsed().iter().find(|h| h.name == name).map(|h| h.text)
}

/// The helper names that WGSL text calls (`lamina_*` followed by `(`), each once, in order of
/// first appearance; names that are not helpers are left out.
pub fn helpers_called(src: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in called(src) {
        match parsed().iter().find(|h| h.name == c) {
            Some(h) if !out.contains(&h.name) => out.push(h.name),
            _ => {}
        }
    }
    out
}

/// The helper functions that `kernel_source` calls, with every helper they call in turn, in
/// the order of `helpers.wgsl`: the text to append to a kernel so that it is complete.
pub fn helpers_for(kernel_source: &str) -> String {
    let helpers = parsed();
    let mut needed = vec![false; helpers.len()];
    let mut stack: Vec<usize> = helpers_called(kernel_source)
        .into_iter()
        .filter_map(|n| helpers.iter().position(|h| h.name == n))
        .collect();
    while let Some(i) = stack.pop() {
        if !needed[i] {
            needed[i] = true;
            stack.extend(&helpers[i].calls);
        }
    }
    helpers
        .iter()
        .zip(needed)
        .filter(|(_, n)| *n)
        .map(|(h, _)| h.text)
        .collect()
}

/// The tiled matrix product for GPUs (`matmul_tiled.wgsl`): 64x64 tiles through workgroup
/// memory, a 4x4 block per thread, with generated operand reads and epilogue.
pub const MATMUL_TILED: &str = include_str!("../matmul_tiled.wgsl");

/// The matrix product streaming from global memory (`matmul_stream.wgsl`), for CPU-hosted
/// adapters and for products with few rows.
pub const MATMUL_STREAM: &str = include_str!("../matmul_stream.wgsl");
