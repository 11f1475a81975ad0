//! Keras's recurrent layers: `SimpleRNN`, `LSTM` and `GRU`.

use crate::config::read::{activation_or, bool_or, model_err, usize_of};
use lamina_graph::error::Result;
use lamina_graph::layer::LayerRef;
use lamina_graph::layers::*;
use serde_json::Value;
use std::sync::Arc;

/// A `SimpleRNN`, `LSTM` or `GRU` from its config.
pub(super) fn recurrent_layer(class: &str, cfg: &Value, n: &str) -> Result<Option<LayerRef>> {
    Ok(Some(match class {
        "SimpleRNN" | "LSTM" | "GRU" => {
            if bool_or(cfg, "stateful", false, n)? {
                return Err(model_err(format!(
                    "layer '{n}': stateful recurrent layers are not supported"
                )));
            }
            let units = usize_of(cfg, "units", n)?;
            let recurrent = |cfg: &Value| activation_or(cfg, "recurrent_activation", "sigmoid", n);
            macro_rules! rnn {
                ($l:expr) => {
                    $l.activation(activation_or(cfg, "activation", "tanh", n)?)
                        .use_bias(bool_or(cfg, "use_bias", true, n)?)
                        .return_sequences(bool_or(cfg, "return_sequences", false, n)?)
                        .return_state(bool_or(cfg, "return_state", false, n)?)
                        .go_backwards(bool_or(cfg, "go_backwards", false, n)?)
                        .zero_output_for_mask(bool_or(cfg, "zero_output_for_mask", false, n)?)
                        .unroll(bool_or(cfg, "unroll", false, n)?)
                        .name(n)
                };
            }
            match class {
                "SimpleRNN" => Arc::new(rnn!(SimpleRNN::new(units))) as LayerRef,
                "LSTM" => Arc::new(rnn!(LSTM::new(units).recurrent_activation(recurrent(cfg)?))),
                _ => Arc::new(rnn!(
                    GRU::new(units)
                        .recurrent_activation(recurrent(cfg)?)
                        .reset_after(bool_or(cfg, "reset_after", true, n)?)
                )),
            }
        }
        _ => return Ok(None),
    }))
}
