//! `predict` on models: runs on a session kept with the model, on the backend chosen by
//! `LAMINA_BACKEND` (default `auto`).

use lamina_backend::{BackendKind, Session};
use lamina_graph::{Error, HostTensor, Model, Result, Sequential};
use std::sync::Arc;

/// Inference on host tensors.
pub trait Predict {
    /// Runs the model on host inputs (one per model input) and returns its outputs.
    fn predict(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>>;

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
    fn predict(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        self.session()?.run(inputs)
    }

    fn session(&self) -> Result<Arc<Session>> {
        default_session(self)
    }
}

impl Predict for Sequential {
    fn predict(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
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
