//! A masked text classifier: integer token ids padded with 0 → `Embedding(mask_zero)` → a
//! Lambda that passes the mask on → `GlobalAveragePooling1D` (padded steps left out) →
//! `Dense(softmax)`. It prints the class probabilities, then shows that more padding changes
//! nothing, and that a Lambda without a `mask` drops the mask (and the mean then counts the
//! padding).

use lamina::prelude::*;

const VOCABULARY: usize = 20;
const CLASSES: usize = 3;

/// Builds the classifier; `keep_mask` chooses whether the Lambda passes the mask on.
fn classifier(keep_mask: bool) -> Result<Model> {
    let tokens = Input::with_dims(vec![Dim::Dynamic])
        .dtype(DType::I32)
        .name("tokens")
        .tensor();
    let embedding = Embedding::new(VOCABULARY, 8)
        .mask_zero(true)
        .name("embedding")
        .seed(7);
    let scale = Lambda::new(|x| x.multiply(2.0).tanh()).name("scale");
    let scale = if keep_mask {
        scale.mask_fn(|_, masks| masks[0].clone())
    } else {
        scale
    };
    let x = embedding.call(&tokens)?;
    let x = scale.call(&x)?;
    let x = GlobalAveragePooling1D::new().call(&x)?;
    let probabilities = Dense::new(CLASSES)
        .activation(Activation::Softmax)
        .name("classes")
        .seed(11)
        .call(&x)?;
    Model::named("text_classifier", &[tokens], &[probabilities])
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

fn print_probabilities(label: &str, t: &HostTensor) -> Result<()> {
    println!("{label}:");
    for (row, p) in t.as_f32()?.chunks(CLASSES).enumerate() {
        let cells: Vec<String> = p.iter().map(|v| format!("{v:.6}")).collect();
        println!("  sentence {row}: [{}]", cells.join(", "));
    }
    Ok(())
}

fn main() -> Result<()> {
    let model = classifier(true)?;
    model.summary()?;
    println!("backend: {}", model.session()?.backend_name());
    let sentences: [&[i32]; 3] = [&[5], &[3, 7, 2, 9, 4, 11], &[3, 7, 2]];
    let short = model.predict(&[batch(&sentences, 6)?])?.remove(0);
    let long = model.predict(&[batch(&sentences, 12)?])?.remove(0);
    print_probabilities("class probabilities, padded to 6", &short)?;
    print_probabilities("class probabilities, padded to 12", &long)?;
    let largest = short
        .as_f32()?
        .iter()
        .zip(long.as_f32()?)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("padding changes nothing: largest difference {largest:e}");

    // The same weights behind a Lambda without a mask: the mask is dropped (a warning says so
    // through the log facade) and the mean now counts the padded steps.
    let unmasked = classifier(false)?;
    for path in ["embedding/embeddings", "classes/kernel", "classes/bias"] {
        unmasked.set_weight(path, model.get_weight(path)?)?;
    }
    let dropped = unmasked.predict(&[batch(&sentences, 6)?])?.remove(0);
    print_probabilities("without the mask, padded to 6", &dropped)?;
    Ok(())
}
