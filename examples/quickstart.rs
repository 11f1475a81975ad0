//! The Keras `Lambda` documentation examples, in Rust: `x**2` in a Sequential model, the
//! antirectifier, `linear_transform` with shared variables, `arguments`, and a functional model
//! with two inputs.

use lamina::prelude::*;

fn antirectifier(x: &Tensor) -> Tensor {
    let x = x - x.mean_keepdims(1);
    let x = x.l2_normalize(1);
    let pos = x.relu();
    let neg = (-&x).relu();
    Tensor::concatenate(&[pos, neg], 1)
}

fn print_rows(label: &str, t: &HostTensor) -> Result<()> {
    let data = t.as_f32()?;
    let width = t.shape().last().copied().unwrap_or(1);
    println!("{label} {:?}:", t.shape());
    for row in data.chunks(width) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:9.5}")).collect();
        println!("  [{}]", cells.join(", "));
    }
    Ok(())
}

fn main() -> Result<()> {
    // 1. model.add(Lambda(lambda x: x ** 2))
    let mut square = Sequential::named("square");
    square.add(Input::new(&[3]))?;
    square.add(Lambda::new(|x| x.pow(2.0)).name("square"))?;
    square.summary()?;
    println!("backend: {}", square.session()?.backend_name());
    let x = HostTensor::new(&[2, 3], vec![1.0f32, -2.0, 3.0, 0.5, 4.0, -1.5])?;
    print_rows("x ** 2", &square.predict(&[x])?[0])?;

    // 2. The antirectifier: centre rows, l2-normalise, concat(relu(x), relu(-x)).
    let mut anti = Sequential::named("antirectifier");
    anti.add(Input::new(&[4]))?;
    anti.add(Lambda::new(antirectifier).name("antirectifier"))?;
    anti.summary()?;
    let rows = HostTensor::new(
        &[3, 4],
        vec![
            1.0f32, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 3e-7, -1e-7, -1e-7, -1e-7,
        ],
    )?;
    print_rows("antirectifier", &anti.predict(&[rows])?[0])?;

    // 3. linear_transform: variables created by name once, shared by both uses of the layer.
    let linear = Lambda::with_scope(|xs, scope| {
        let multiplier = scope.variable("multiplier", &[], 1.0);
        let bias = scope.variable("bias", &[], 0.0);
        &xs[0] * multiplier + bias
    })
    .name("linear_transform");
    let mut lt = Sequential::named("linear_transform_model");
    lt.add(Input::new(&[10]))?;
    lt.add(linear.clone())?;
    lt.add(Dense::new(10).activation(Activation::Relu))?;
    lt.add(linear.clone())?; // reuses the same variables
    linear.set_variable("multiplier", HostTensor::scalar(2.0))?;
    linear.set_variable("bias", HostTensor::scalar(0.5))?;
    lt.summary()?;
    let ones = HostTensor::full(&[1, 10], 1.0)?;
    print_rows("linear_transform model", &lt.predict(&[ones])?[0])?;

    // 4. arguments: runtime values handed to the function.
    let affine = Lambda::with_scope(|xs, s| &xs[0] * s.argument("a") + s.argument("b"))
        .argument("a", 0.6)
        .argument("b", 0.4)
        .name("affine");
    let mut args = Sequential::named("arguments");
    args.add(Input::new(&[2]))?;
    args.add(affine.clone())?;
    let x = HostTensor::new(&[1, 2], vec![1.0f32, 2.0])?;
    print_rows("x * 0.6 + 0.4", &args.predict(std::slice::from_ref(&x))?[0])?;
    affine.set_argument("a", 2.0)?;
    print_rows(
        "x * 2.0 + 0.4 (argument changed, nothing recompiled)",
        &args.predict(&[x])?[0],
    )?;

    // 5. A functional model: two inputs, a Lambda over a list, branches, merges, reuse.
    let a = Input::new(&[4]).name("a").tensor();
    let b = Input::new(&[4]).name("b").tensor();
    let shared = Dense::new(4)
        .activation(Activation::Tanh)
        .name("shared_dense");
    let ha = shared.call(&a)?;
    let hb = shared.call(&b)?;
    let l1 = Lambda::multi(|xs| (&xs[0] - &xs[1]).abs()).name("l1_distance");
    let distance = l1.call(&[ha.clone(), hb.clone()])?;
    let merged = Lambda::multi(|xs| Tensor::concatenate(xs, -1))
        .name("merge")
        .call(&[distance, ha, hb])?;
    let score = Dense::new(1)
        .activation(Activation::Sigmoid)
        .name("score")
        .call(&merged)?;
    let siamese = Model::named("siamese", &[a, b], &[score])?;
    siamese.summary()?;
    let xa = HostTensor::new(&[2, 4], vec![0.1f32, 0.2, 0.3, 0.4, 1.0, 0.0, -1.0, 0.5])?;
    let xb = HostTensor::new(&[2, 4], vec![0.1f32, 0.2, 0.3, 0.4, -1.0, 0.5, 1.0, 0.0])?;
    print_rows("siamese score", &siamese.predict(&[xa, xb])?[0])?;
    Ok(())
}
