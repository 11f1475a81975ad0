//! A sequence tagger over sentences of any length: token ids padded with 0 →
//! `Embedding(mask_zero)` → `Bidirectional(LSTM(return_sequences))` → `GRU(return_sequences)` →
//! `TimeDistributed(Dense(softmax))`, one tag distribution per token. The model is built once
//! with `Input(shape=(None,))`; it runs on batches padded to different lengths (the CPU runs
//! the recurrent loops natively, one compile for every length), prints the backend, and shows
//! that each real token's tags do not depend on the padding.

use lamina::prelude::*;

const VOCABULARY: usize = 40;
const DIM: usize = 12;
const UNITS: usize = 8;
const TAGS: usize = 4;

fn tagger() -> Result<Model> {
    let tokens = Input::shape(&[None])
        .dtype(DType::I32)
        .name("tokens")
        .tensor();
    let embedding = Embedding::new(VOCABULARY, DIM).mask_zero(true);
    let x = embedding.call(&tokens)?;
    // Embeddings of unit scale (Keras's initial ones are within ±0.05), so the tags differ.
    let table = (0..VOCABULARY * DIM)
        .map(|k| (1.3 * (k / DIM) as f32 + 0.7 * (k % DIM) as f32).sin())
        .collect();
    embedding.set_weight("embeddings", HostTensor::new(&[VOCABULARY, DIM], table)?)?;
    let x = Bidirectional::new(&LSTM::new(UNITS).return_sequences(true).seed(12))?.call(&x)?;
    let x = GRU::new(UNITS).return_sequences(true).seed(13).call(&x)?;
    let tags =
        TimeDistributed::new(Dense::new(TAGS).activation(Activation::Softmax).seed(14)).call(&x)?;
    Model::named("sequence_tagger", &[tokens], &[tags])
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
    let model = tagger()?;
    model.summary()?;
    println!("backend: {}", model.session()?.backend_name());
    let sentences: [&[i32]; 3] = [&[5, 9, 2], &[3, 7, 2, 9, 4, 11], &[8]];
    let mut results = Vec::new();
    for length in [6, 15] {
        let p = model.predict(&[batch(&sentences, length)?])?.remove(0);
        let v = p.to_f32_vec();
        println!("padded to {length}:");
        for (row, s) in sentences.iter().enumerate() {
            let best: Vec<String> = (0..s.len())
                .map(|t| {
                    let probs = &v[(row * length + t) * TAGS..][..TAGS];
                    let tag = (0..TAGS)
                        .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
                        .unwrap_or(0);
                    format!("{tag} ({:.3})", probs[tag])
                })
                .collect();
            println!("  sentence {row}: {}", best.join(", "));
        }
        // The real tokens' distributions, for comparing the two paddings.
        let kept: Vec<f32> = sentences
            .iter()
            .enumerate()
            .flat_map(|(row, s)| v[row * length * TAGS..][..s.len() * TAGS].to_vec())
            .collect();
        results.push(kept);
    }
    let largest = results[0]
        .iter()
        .zip(&results[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("padding changes no real token's tags: largest difference {largest:e}");
    Ok(())
}
