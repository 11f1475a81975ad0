//! `summary()`: the Keras-style table of layers, output shapes and parameter counts.

use super::functional::Model;
use super::sequential::Sequential;
use crate::error::Result;
use crate::limits::printable;
use crate::variable::VariableKind;
use std::collections::HashMap;

/// Formats a count with thousands separators, as Keras does: `1,088`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a byte size as Keras does: `200.00 B`, `6.79 KB`.
fn bytes(n: usize) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", units[u])
}

fn row(cells: &[String], widths: &[usize], right: &[bool], edge: [&str; 3]) -> String {
    let mut s = String::from(edge[0]);
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            s.push_str(edge[1]);
        }
        // Padded by hand: `format!`'s width is limited to 65,535, and a name may be longer.
        let pad = " ".repeat(w.saturating_sub(c.chars().count()));
        s.push(' ');
        if right[i] {
            s.push_str(&pad);
            s.push_str(c);
        } else {
            s.push_str(c);
            s.push_str(&pad);
        }
        s.push(' ');
    }
    s.push_str(edge[2]);
    s
}

fn rule(widths: &[usize], line: &str, edge: [&str; 3]) -> String {
    let mut s = String::from(edge[0]);
    for (i, w) in widths.iter().enumerate() {
        if i > 0 {
            s.push_str(edge[1]);
        }
        s.push_str(&line.repeat(w + 2));
    }
    s.push_str(edge[2]);
    s
}

impl Model {
    /// The Keras-style summary table as a string: one row per layer call, with the output shape
    /// (`None` for the batch) and the parameter count, then the totals (shared weights counted
    /// once). Functional models also show what each call is connected to (its inputs, then the
    /// masks given to it explicitly). The same signature as `Sequential::summary_string`, which
    /// fails while the model is not built.
    pub fn summary_string(&self) -> Result<String> {
        Ok(self.table())
    }

    /// Prints the summary table to standard output, as Keras's `model.summary()` does. The same
    /// signature as `Sequential::summary`.
    pub fn summary(&self) -> Result<()> {
        print!("{}", self.summary_string()?);
        Ok(())
    }

    fn table(&self) -> String {
        let functional = !self.is_sequential();
        let mut header = vec![
            "Layer (type)".to_string(),
            "Output Shape".into(),
            "Param #".into(),
        ];
        if functional {
            header.push("Connected to".into());
        }
        let mut call_index: HashMap<u64, usize> = HashMap::new();
        let mut call_pos: HashMap<u64, usize> = HashMap::new();
        let mut rows: Vec<Vec<String>> = Vec::new();
        for call in self.calls() {
            let layer = call.layer();
            let n = call_index.entry(layer.id()).or_insert(0);
            call_pos.insert(call.seq(), *n);
            *n += 1;
            if !functional && layer.kind() == "InputLayer" {
                continue;
            }
            let shapes: Vec<String> = call
                .outputs()
                .iter()
                .map(|t| t.shape().to_string())
                .collect();
            let params: usize = layer.variables().iter().map(|v| v.numel()).sum();
            let mut cells = vec![
                format!("{} ({})", printable(&layer.name()), layer.kind()),
                shapes.join(", "),
                thousands(params),
            ];
            if functional {
                // The inputs, then the masks given explicitly, as Keras lists a call's tensors.
                let links: Vec<String> = call
                    .inputs()
                    .iter()
                    .chain(call.explicit_masks().iter().flatten())
                    .filter_map(|t| t.history())
                    .map(|h| {
                        let pos = call_pos.get(&h.seq()).copied().unwrap_or(0);
                        format!("{}[{pos}][0]", printable(&h.layer().name()))
                    })
                    .collect();
                cells.push(if links.is_empty() {
                    "-".into()
                } else {
                    links.join(", ")
                });
            }
            rows.push(cells);
        }
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        let mins = [31, 22, 13, 20];
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(mins[i]);
        }
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let right: Vec<bool> = (0..header.len()).map(|i| i == 2).collect();
        let mut out = format!("Model: \"{}\"\n", printable(self.name()));
        out += &rule(&widths, "━", ["┏", "┳", "┓"]);
        out.push('\n');
        out += &row(&header, &widths, &right, ["┃", "┃", "┃"]);
        out.push('\n');
        out += &rule(&widths, "━", ["┡", "╇", "┩"]);
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out += &rule(&widths, "─", ["├", "┼", "┤"]);
                out.push('\n');
            }
            out += &row(r, &widths, &right, ["│", "│", "│"]);
            out.push('\n');
        }
        out += &rule(&widths, "─", ["└", "┴", "┘"]);
        out.push('\n');
        let weights = self.weights();
        let trainable: usize = weights
            .iter()
            .filter(|v| v.kind() == VariableKind::Weight && v.trainable())
            .map(|v| v.numel())
            .sum();
        let total: usize = weights.iter().map(|v| v.numel()).sum();
        let size = |n: usize| bytes(n * 4);
        out += &format!(" Total params: {} ({})\n", thousands(total), size(total));
        out += &format!(
            " Trainable params: {} ({})\n",
            thousands(trainable),
            size(trainable)
        );
        out += &format!(
            " Non-trainable params: {} ({})\n",
            thousands(total - trainable),
            size(total - trainable)
        );
        out
    }
}

impl Sequential {
    /// The summary table, or an error if the model is not built yet.
    pub fn summary_string(&self) -> Result<String> {
        self.model()?.summary_string()
    }

    /// Prints the summary table, or returns an error if the model is not built yet.
    pub fn summary(&self) -> Result<()> {
        print!("{}", self.summary_string()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_and_bytes_follow_keras() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(650), "650");
        assert_eq!(thousands(1088), "1,088");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(200), "200.00 B");
        assert_eq!(bytes(6952), "6.79 KB");
    }

    #[test]
    fn rows_pad_past_the_format_width_limit() {
        let long = "n".repeat(70_000);
        let r = row(
            &[long.clone(), "7".into()],
            &[70_001, 3],
            &[false, true],
            ["|", "|", "|"],
        );
        assert_eq!(r, format!("| {long}  |   7 |"));
    }
}
