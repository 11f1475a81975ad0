//! `Sequential`: a stack of single-input layers.

use super::functional::{Model, duplicate_name_error};
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerRef, call_layer, unique_name};
use crate::layers::Input;
use crate::shape::Dim;
use crate::tensor::Tensor;
use std::sync::{Arc, Mutex};

/// What `Sequential::add` takes: an `Input` or any layer.
pub enum SequentialItem {
    /// The model's input.
    Input(Input),
    /// A layer to apply to the current output.
    Layer(LayerRef),
}

impl From<Input> for SequentialItem {
    fn from(i: Input) -> Self {
        SequentialItem::Input(i)
    }
}

impl<L: Layer + 'static> From<L> for SequentialItem {
    fn from(l: L) -> Self {
        SequentialItem::Layer(Arc::new(l))
    }
}

/// A linear stack of layers, as Keras's `Sequential`. With an `Input` first, each `add` calls
/// the new layer at once, so a shape error shows at `add`; without one, the model is built on
/// the first `predict` (or an explicit `build`) from the input's shape.
pub struct Sequential {
    name: String,
    input: Option<Input>,
    layers: Vec<LayerRef>,
    current: Option<(Tensor, Tensor)>,
    built: Mutex<Option<Model>>,
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Sequential {
    /// An empty model.
    pub fn new() -> Sequential {
        Sequential::named(&unique_name("sequential"))
    }

    /// An empty model with a name.
    pub fn named(name: &str) -> Sequential {
        Sequential {
            name: name.to_string(),
            input: None,
            layers: Vec::new(),
            current: None,
            built: Mutex::new(None),
        }
    }

    /// Adds an `Input` (first) or a layer. The same layer may be added twice and then shares
    /// its variables. A layer that does not fit the current output is an error and is not
    /// added.
    pub fn add(&mut self, item: impl Into<SequentialItem>) -> Result<()> {
        match item.into() {
            SequentialItem::Input(input) => {
                if self.input.is_some() || !self.layers.is_empty() {
                    return Err(Error::Model {
                        detail: "an Input can only be the first thing added to a Sequential".into(),
                    });
                }
                let t = input.clone().tensor();
                t.check()?;
                self.input = Some(input);
                self.current = Some((t.clone(), t));
            }
            SequentialItem::Layer(layer) => {
                let name = layer.name();
                let taken = self
                    .layers
                    .iter()
                    .any(|l| l.id() != layer.id() && l.name() == name)
                    || self
                        .current
                        .as_ref()
                        .and_then(|(input, _)| input.history())
                        .is_some_and(|h| h.layer().id() != layer.id() && h.layer().name() == name);
                if taken {
                    return Err(duplicate_name_error(&self.name, &name, 2));
                }
                if let Some((input, out)) = &self.current {
                    let next = call_layer(layer.as_ref(), std::slice::from_ref(out))?;
                    let next = single(next, layer.as_ref())?;
                    self.current = Some((input.clone(), next));
                }
                self.layers.push(layer);
            }
        }
        *self.built.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Builds the model for inputs of this per-sample shape (batch left unknown), if it was
    /// made without an `Input`.
    pub fn build(&mut self, per_sample: &[usize]) -> Result<()> {
        if self.input.is_some() {
            return Ok(());
        }
        let layers = std::mem::take(&mut self.layers);
        let result = self.add(Input::new(per_sample)).and_then(|_| {
            for l in &layers {
                self.add(SequentialItem::Layer(l.clone()))?;
            }
            Ok(())
        });
        if result.is_err() {
            self.input = None;
            self.current = None;
            self.layers = layers;
        }
        result
    }

    /// The layers in order of addition (a layer added twice appears twice).
    pub fn layers(&self) -> &[LayerRef] {
        &self.layers
    }

    /// The built model, or an error if no input shape is known yet.
    pub fn model(&self) -> Result<Model> {
        let mut guard = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = &*guard {
            return Ok(m.clone());
        }
        let Some((input, out)) = &self.current else {
            return Err(Error::Model {
                detail: format!(
                    "Sequential '{}' is not built: add an Input first, or call build(shape)",
                    self.name
                ),
            });
        };
        let m = Model::build(
            &self.name,
            std::slice::from_ref(input),
            std::slice::from_ref(out),
            true,
        )?;
        *guard = Some(m.clone());
        Ok(m)
    }

    /// The model for inputs of this full shape: the built one, or one built now from the
    /// shape (batch dimension left unknown) without changing `self`.
    pub fn model_for(&self, full_shape: &[usize]) -> Result<Model> {
        if self.current.is_some() {
            return self.model();
        }
        let Some((_, per_sample)) = full_shape.split_first() else {
            return Err(Error::Inputs {
                detail: "a Sequential model needs inputs with a batch dimension".into(),
            });
        };
        // The model built for this input shape before, with its compiled session: reused, so
        // that `predict` does not build and compile again on every call.
        if let Some(m) = self
            .built
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|m| {
                m.inputs().first().is_some_and(|i| {
                    let dims = i.shape();
                    dims.dims()[1..]
                        .iter()
                        .map(|d| d.known())
                        .eq(per_sample.iter().map(|&n| Some(n)))
                })
            })
        {
            return Ok(m.clone());
        }
        let input = Input::with_dims(per_sample.iter().map(|&n| Dim::Known(n)).collect());
        let t = input.tensor();
        let mut out = t.clone();
        for l in &self.layers {
            out = single(
                call_layer(l.as_ref(), std::slice::from_ref(&out))?,
                l.as_ref(),
            )?;
        }
        let m = Model::build(&self.name, std::slice::from_ref(&t), &[out], true)?;
        *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
        Ok(m)
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn single(mut outs: Vec<Tensor>, layer: &dyn Layer) -> Result<Tensor> {
    if outs.len() != 1 {
        return Err(Error::Model {
            detail: format!(
                "layer '{}' gives {} outputs; Sequential needs exactly one",
                layer.name(),
                outs.len()
            ),
        });
    }
    Ok(outs.remove(0))
}
