//! Weights in a form made for one kernel (Winograd's transform of a convolution kernel, the
//! column panels of a packed product), kept by an executable between runs: made on the first
//! run that needs them and again only when the weight's value is another buffer (a weight set
//! since, by `set_weight` or `load_weights`).

use lamina_graph::HostData;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The form a kept weight was made into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// A convolution kernel transformed for Winograd's F(2×2, 3×3).
    Winograd,
    /// A matrix packed into the column panels of `packed_product`.
    Panels,
}

/// The kept forms of an executable's weights: by weight node and form, with the buffer each
/// was made from. That buffer is held, so its address cannot be reused meanwhile.
pub struct KeptKernels {
    forms: Mutex<HashMap<(usize, Form), KeptKernel>>,
    /// Per node, whether its value depends on the inputs (a new buffer every run: no form of
    /// it is kept).
    from_inputs: Vec<bool>,
}

/// A kept form and the weight buffer it was made from.
type KeptKernel = (Arc<HostData>, Arc<Vec<f32>>);

impl KeptKernels {
    /// No forms yet, for a program whose nodes depend on its inputs as `from_inputs` says.
    pub fn new(from_inputs: Vec<bool>) -> KeptKernels {
        KeptKernels {
            forms: Mutex::new(HashMap::new()),
            from_inputs,
        }
    }

    /// Where node `node`'s forms are kept, its value being `value` in this run; `None` for a
    /// node computed from the inputs, whose forms would be made again every run (and would hold
    /// its buffer).
    pub fn of<'a>(&'a self, node: usize, value: &'a Arc<HostData>) -> Option<Kept<'a>> {
        let weight = !self.from_inputs.get(node).copied().unwrap_or(true);
        weight.then_some(Kept {
            kernels: self,
            node,
            value,
        })
    }
}

/// Where a kernel finds the kept form of a weight: the executable's kept forms, the weight's
/// node and its value in this run.
#[derive(Clone, Copy)]
pub struct Kept<'a> {
    pub kernels: &'a KeptKernels,
    pub node: usize,
    pub value: &'a Arc<HostData>,
}

impl Kept<'_> {
    /// The kept `form` of this weight, made by `make` where there is none for this buffer.
    pub fn get_or_make(&self, form: Form, make: impl FnOnce() -> Vec<f32>) -> Arc<Vec<f32>> {
        let key = (self.node, form);
        let mut map = self.kernels.forms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((value, kept)) = map.get(&key)
            && Arc::ptr_eq(value, self.value)
        {
            return kept.clone();
        }
        // A stale form is dropped before the new one is made.
        map.remove(&key);
        let kept = Arc::new(make());
        map.insert(key, (self.value.clone(), kept.clone()));
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A weight's form is made once and kept while its buffer stays, made again for a new
    /// buffer; a value computed from the inputs gets no kept form at all.
    #[test]
    fn forms_are_kept_for_weights_alone() {
        let kernels = KeptKernels::new(vec![false, true]);
        let value = Arc::new(HostData::F32(vec![1.0, 2.0]));
        assert!(kernels.of(1, &value).is_none(), "an input-dependent node");
        assert!(kernels.of(2, &value).is_none(), "a node past the program");
        let mut made = 0;
        let mut form = |value: &Arc<HostData>| {
            kernels
                .of(0, value)
                .expect("a weight")
                .get_or_make(Form::Panels, || {
                    made += 1;
                    vec![made as f32]
                })
        };
        assert_eq!(*form(&value), vec![1.0]);
        assert_eq!(*form(&value), vec![1.0]);
        let set_again = Arc::new(HostData::F32(vec![1.0, 2.0]));
        assert_eq!(*form(&set_again), vec![2.0]);
        assert_eq!(made, 2);
    }
}
