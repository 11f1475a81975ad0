//! A small transformer text classifier: token ids padded with 0 → `Embedding(mask_zero)` plus
//! sinusoidal positions (a Lambda reading the run-time sequence length) → one encoder block
//! (`MultiHeadAttention` over the padding mask, residual, `LayerNormalization`, feed-forward,
//! residual, `LayerNormalization`) → `GlobalAveragePooling1D` (padding left out) →
//! `Dense(softmax)`. The model is built once with `Input(shape=(None,))` and runs on two
//! sequence lengths; it prints the backend and shows that more padding changes nothing.

use lamina::prelude::*;

const VOCABULARY: usize = 50;
const DIM: usize = 16;
const HEADS: usize = 2;
const MAX_LEN: usize = 64;
const CLASSES: usize = 3;

/// Sinusoidal position encodings `(MAX_LEN, DIM)`, as in "Attention is all you need".
fn positions() -> Result<HostTensor> {
    let mut v = Vec::with_capacity(MAX_LEN * DIM);
    for p in 0..MAX_LEN {
        for i in 0..DIM {
            let angle = p as f64 / 10_000f64.powf((i / 2 * 2) as f64 / DIM as f64);
            v.push(if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    HostTensor::new(&[MAX_LEN, DIM], v)
}

fn classifier() -> Result<Model> {
    let tokens = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .name("tokens")
        .tensor();
    let x = Embedding::new(VOCABULARY, DIM)
        .mask_zero(true)
        .seed(3)
        .call(&tokens)?;
    // x + table[arange(T)]: T is known only when the model runs.
    let table = positions()?;
    let x = Lambda::new(move |x| {
        let steps = Tensor::arange_size(&x.size_of(1), DType::I32);
        x.add(Tensor::constant(table.clone()).take(&steps, 0))
    })
    .mask_fn(|_, masks| masks[0].clone())
    .name("positions")
    .call(&x)?;
    let attention = MultiHeadAttention::new(HEADS, DIM / HEADS)
        .name("self_attention")
        .call([&x, &x])?;
    let x = LayerNormalization::new().call(&Add::new().call([&x, &attention])?)?;
    let ff = Dense::new(4 * DIM)
        .activation(Activation::Gelu)
        .seed(5)
        .call(&x)?;
    let ff = Dense::new(DIM).seed(6).call(&ff)?;
    let x = LayerNormalization::new().call(&Add::new().call([&x, &ff])?)?;
    let pooled = GlobalAveragePooling1D::new().call(&x)?;
    let probabilities = Dense::new(CLASSES)
        .activation(Activation::Softmax)
        .seed(7)
        .call(&pooled)?;
    Model::named("transformer_classifier", &[tokens], &[probabilities])
}

/// Token ids padded with 0 to `length`.
fn batch(sentences: &[&[i32]], length: usize) -> Result<HostTensor> {
    let mut ids = Vec::with_capacity(sentences.len() * length);
    for s in sentences {
        ids.extend_from_slice(s);
        ids.extend(std::iter::repeat_n(0, length - s.len()));
    }
    HostTensor::new(&[sentences.len(), length], ids)
}

fn main() -> Result<()> {
    let model = classifier()?;
    model.summary()?;
    println!("backend: {}", model.session()?.backend_name());
    let sentences: [&[i32]; 3] = [&[5, 9], &[3, 7, 2, 9, 4, 11, 8], &[3, 7, 2]];
    let mut results = Vec::new();
    for length in [8, 20] {
        let p = model.predict(&[batch(&sentences, length)?])?.remove(0);
        println!("padded to {length}:");
        for (row, probs) in p.as_f32()?.chunks(CLASSES).enumerate() {
            let cells: Vec<String> = probs.iter().map(|v| format!("{v:.6}")).collect();
            println!("  sentence {row}: [{}]", cells.join(", "));
        }
        results.push(p.to_f32_vec());
    }
    let largest = results[0]
        .iter()
        .zip(&results[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("padding changes nothing: largest difference {largest:e}");
    Ok(())
}
