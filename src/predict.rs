//! `predict` on models: runs on a session kept with the model, on the backend chosen by
//! `LAMINA_BACKEND` (default `auto`).

use lamina_backend::{BackendKind, Session};
use lamina_graph::{Error, HostTensor, Model, Result, Sequential};
use std::borrow::Cow;
use std::sync::Arc;

/// Inference on host tensors.
pub trait Predict {
    /// Runs the model on host inputs, one per model input, and returns its outputs, as Keras's
    /// `model.predict(x)`: one tensor (`x`, `&x`, `HostTensor::read_npy("x.npy")?`) or a list
    /// (`&[a, b]`, `vec![a, b]`, `&inputs`).
    fn predict<'a>(&self, inputs: impl Into<ModelInputs<'a>>) -> Result<Vec<HostTensor>>;

    /// The session `predict` uses (created on first use).
    fn session(&self) -> Result<Arc<Session>>;
}

fn default_session(model: &Model) -> Result<Arc<Session>> {
    let slot = model.runtime_slot();
    if let Some(any) = slot.get() {
        return any.clone().downcast::<Session>().map_err(|_| Error::Model {
            detail: "the model's runtime slot holds something other than a session".into(),
        });
    }
    let session = Arc::new(Session::new(
        model.program().clone(),
        BackendKind::from_env()?,
    )?);
    // Another thread may have won the race; use whichever session is stored.
    let _ = slot.set(session.clone());
    match slot.get() {
        Some(any) => any.clone().downcast::<Session>().map_err(|_| Error::Model {
            detail: "the model's runtime slot holds something other than a session".into(),
        }),
        None => Ok(session),
    }
}

impl Predict for Model {
    fn predict<'a>(&self, inputs: impl Into<ModelInputs<'a>>) -> Result<Vec<HostTensor>> {
        self.session()?.run(inputs.into().as_slice())
    }

    fn session(&self) -> Result<Arc<Session>> {
        default_session(self)
    }
}

impl Predict for Sequential {
    fn predict<'a>(&self, inputs: impl Into<ModelInputs<'a>>) -> Result<Vec<HostTensor>> {
        let inputs = inputs.into();
        let inputs = inputs.as_slice();
        let model = match inputs.first() {
            Some(x) => self.model_for(x.shape())?,
            None => self.model()?,
        };
        model.predict(inputs)
    }

    fn session(&self) -> Result<Arc<Session>> {
        default_session(&self.model()?)
    }
}

/// The host inputs of `predict`: one tensor or a list, borrowed or owned.
#[derive(Clone, Debug)]
pub struct ModelInputs<'a>(Cow<'a, [HostTensor]>);

impl ModelInputs<'_> {
    /// The host tensors, one per model input, in order.
    pub fn as_slice(&self) -> &[HostTensor] {
        &self.0
    }
}

impl<'a> From<&'a HostTensor> for ModelInputs<'a> {
    fn from(t: &'a HostTensor) -> Self {
        ModelInputs(Cow::Borrowed(std::slice::from_ref(t)))
    }
}

impl From<HostTensor> for ModelInputs<'_> {
    fn from(t: HostTensor) -> Self {
        ModelInputs(Cow::Owned(vec![t]))
    }
}

impl<'a> From<&'a [HostTensor]> for ModelInputs<'a> {
    fn from(ts: &'a [HostTensor]) -> Self {
        ModelInputs(Cow::Borrowed(ts))
    }
}

impl<'a, const N: usize> From<&'a [HostTensor; N]> for ModelInputs<'a> {
    fn from(ts: &'a [HostTensor; N]) -> Self {
        ModelInputs(Cow::Borrowed(ts))
    }
}

impl<'a> From<&'a Vec<HostTensor>> for ModelInputs<'a> {
    fn from(ts: &'a Vec<HostTensor>) -> Self {
        ModelInputs(Cow::Borrowed(ts))
    }
}

impl From<Vec<HostTensor>> for ModelInputs<'_> {
    fn from(ts: Vec<HostTensor>) -> Self {
        ModelInputs(Cow::Owned(ts))
    }
}

impl<const N: usize> From<[HostTensor; N]> for ModelInputs<'_> {
    fn from(ts: [HostTensor; N]) -> Self {
        ModelInputs(Cow::Owned(ts.into()))
    }
}

impl<const N: usize> From<[&HostTensor; N]> for ModelInputs<'_> {
    fn from(ts: [&HostTensor; N]) -> Self {
        // Host tensors share their data: these clones copy no elements.
        ModelInputs(Cow::Owned(ts.into_iter().cloned().collect()))
    }
}
