//! The `axis` argument of reductions: one axis, several, or all.

/// Which axes a reduction runs over: `Axes::All`, or a list of possibly negative axes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axes {
    /// Every axis (Keras's `axis=None`).
    All,
    /// These axes; negative values count from the end.
    List(Vec<isize>),
}

impl Axes {
    /// Resolves to sorted, distinct, non-negative axes of a tensor of `rank`, or the first
    /// offending axis.
    pub(crate) fn resolve(&self, rank: usize) -> Result<Vec<usize>, isize> {
        match self {
            Axes::All => Ok((0..rank).collect()),
            Axes::List(list) => {
                let mut out = Vec::with_capacity(list.len());
                for &a in list {
                    let r = rank as isize;
                    let n = if a < 0 { a + r } else { a };
                    if n < 0 || n >= r {
                        return Err(a);
                    }
                    out.push(n as usize);
                }
                out.sort_unstable();
                out.dedup();
                Ok(out)
            }
        }
    }
}

impl From<i32> for Axes {
    fn from(a: i32) -> Self {
        Axes::List(vec![a as isize])
    }
}

impl From<isize> for Axes {
    fn from(a: isize) -> Self {
        Axes::List(vec![a])
    }
}

impl From<&[i32]> for Axes {
    fn from(a: &[i32]) -> Self {
        Axes::List(a.iter().map(|&x| x as isize).collect())
    }
}

impl<const N: usize> From<[i32; N]> for Axes {
    fn from(a: [i32; N]) -> Self {
        Axes::List(a.iter().map(|&x| x as isize).collect())
    }
}

impl From<Vec<i32>> for Axes {
    fn from(a: Vec<i32>) -> Self {
        Axes::List(a.into_iter().map(|x| x as isize).collect())
    }
}

impl From<Option<i32>> for Axes {
    fn from(a: Option<i32>) -> Self {
        a.map_or(Axes::All, Axes::from)
    }
}
