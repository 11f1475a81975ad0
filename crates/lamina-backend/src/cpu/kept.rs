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
#[derive(Default)]
pub struct KeptKernels(Mutex<HashMap<(usize, Form), KeptKernel>>);

/// A kept form and the weight buffer it was made from.
type KeptKernel = (Arc<HostData>, Arc<Vec<f32>>);

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
        let mut map = self.kernels.0.lock().unwrap_or_else(|p| p.into_inner());
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
