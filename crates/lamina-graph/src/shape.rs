//! Shapes whose dimensions are known sizes or the symbolic batch size (`None` in Keras).

use smallvec::SmallVec;
use std::fmt;

/// One dimension of a symbolic shape: a known size, or unknown until run time (Keras's `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known when the graph is built.
    Known(usize),
    /// A size known only when concrete inputs arrive, such as the batch dimension.
    Dynamic,
}

impl Dim {
    /// The size, if known.
    pub fn known(self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(n),
            Dim::Dynamic => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Known(n)
    }
}

impl From<Option<usize>> for Dim {
    fn from(n: Option<usize>) -> Self {
        n.map_or(Dim::Dynamic, Dim::Known)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Dynamic => f.write_str("None"),
        }
    }
}

/// The shape of a symbolic tensor: a known rank, each dimension known or dynamic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub SmallVec<[Dim; 6]>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl IntoIterator<Item = Dim>) -> Self {
        Shape(dims.into_iter().collect())
    }

    /// A fully known shape from sizes.
    pub fn known(sizes: &[usize]) -> Self {
        Shape(sizes.iter().map(|&n| Dim::Known(n)).collect())
    }

    /// The shape of a scalar (rank 0).
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// The dimension at `axis`, which may be negative (counted from the end).
    pub fn dim(&self, axis: isize) -> Option<Dim> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if a < 0 || a >= rank {
            None
        } else {
            Some(self.0[a as usize])
        }
    }

    /// The sizes, if every dimension is known.
    pub fn to_sizes(&self) -> Option<Vec<usize>> {
        self.0.iter().map(|d| d.known()).collect()
    }

    /// Keras's tuple spelling: `(None, 4)`, `(3,)`, `()`.
    pub fn keras_string(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        if parts.len() == 1 {
            format!("({},)", parts[0])
        } else {
            format!("({})", parts.join(", "))
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.keras_string())
    }
}

impl From<&[usize]> for Shape {
    fn from(s: &[usize]) -> Self {
        Shape::known(s)
    }
}

/// Formats a list of shapes for error messages: `(None, 4) and (3,)`.
pub fn shapes_string(shapes: &[&Shape]) -> String {
    let parts: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
    parts.join(" and ")
}
