//! A small CNN on images made here: two blocks of Conv2D → BatchNormalization → ReLU →
//! MaxPooling2D, then GlobalAveragePooling2D and a Dense softmax over three classes (stripes
//! across, stripes down, a bright square). The weights are Lamina's seeded initial values, so
//! the probabilities show the model running, not a trained classifier.
//!
//! Run with `cargo run --release --example image_classifier` (`LAMINA_BACKEND=cpu|gpu` to pick).

use lamina::prelude::*;

const SIZE: usize = 16;

/// One 16x16 RGB image of class `kind`, channels last.
fn image(kind: usize, shift: usize) -> Vec<f32> {
    let mut px = Vec::with_capacity(SIZE * SIZE * 3);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let v = match kind {
                0 => ((y + shift) / 2 % 2) as f32,
                1 => ((x + shift) / 2 % 2) as f32,
                _ => ((4..12).contains(&y) && (4..12).contains(&x)) as u8 as f32,
            };
            px.extend([v, 0.5 * v, 1.0 - v]);
        }
    }
    px
}

fn main() -> Result<()> {
    let x = Input::new(&[SIZE, SIZE, 3]).tensor();
    let mut h = x.clone();
    for filters in [8, 16] {
        h = Conv2D::new(filters, 3).padding(Padding::Same).call(&h)?;
        h = BatchNormalization::new().call(&h)?;
        h = ActivationLayer::new(Activation::Relu).call(&h)?;
        h = MaxPooling2D::new(2).call(&h)?;
    }
    h = GlobalAveragePooling2D::new().call(&h)?;
    let y = Dense::new(3).activation(Activation::Softmax).call(&h)?;
    let model = Model::new(&[x], &[y])?;
    model.summary()?;

    let names = ["stripes across", "stripes down", "square"];
    let mut pixels = Vec::new();
    let labels: Vec<usize> = vec![0, 1, 2, 0, 1, 2];
    for (i, &k) in labels.iter().enumerate() {
        pixels.extend(image(k, i));
    }
    let batch = HostTensor::new(&[labels.len(), SIZE, SIZE, 3], pixels)?;
    println!("backend: {}", model.session()?.backend_name());
    let probs = model.predict(&[batch])?.remove(0);
    for (row, &k) in probs.to_f32_vec().chunks(3).zip(&labels) {
        println!(
            "{:>15}: {}",
            names[k],
            row.iter()
                .map(|p| format!("{p:.3}"))
                .collect::<Vec<_>>()
                .join("  ")
        );
    }
    Ok(())
}
