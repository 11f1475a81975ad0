//! Convolutions as GPU kernels: every configuration of the convolution layers (padding,
//! strides, dilation, groups, depthwise multipliers, transposed, channels first) runs on both
//! kernel shapes (the direct and pointwise kernels a CPU-hosted adapter gets, and the implicit
//! GEMM through workgroup memory a GPU gets) and agrees with the CPU interpreter; depthwise
//! convolutions over up to 2,048 channels compile to one kernel whose code does not depend on
//! the channel count; blocks of real CNNs (MobileNetV2, ResNet, EfficientNet, Xception) agree
//! with their epilogues fused. Without an adapter the tests say so and pass, unless
//! `LAMINA_REQUIRE_GPU=1`.
#![cfg(feature = "gpu")] // compares the CPU interpreter with the GPU backend

use crate::common;

use lamina::bench::seeded;
use lamina::prelude::*;
use lamina::{GpuBackend, GpuOptions};
use std::sync::Arc;

/// The two kernel shapes: the adapter's own (direct kernels on lavapipe) and GPU-shaped
/// (implicit GEMM through workgroup memory); empty without an adapter.
fn backends() -> Vec<(&'static str, Arc<GpuBackend>)> {
    let Some(g) = common::gpu() else {
        return Vec::new();
    };
    let shaped = GpuBackend::with_options(GpuOptions {
        gpu_shaped_kernels: true,
        ..Default::default()
    })
    .expect("a second backend on the adapter that the shared one opened");
    vec![("adapter-shaped", g), ("gpu-shaped", Arc::new(shaped))]
}

fn input(shape: &[usize], seed: u32) -> Result<HostTensor> {
    HostTensor::new(shape, seeded(shape.iter().product(), seed))
}

/// Runs `model` on the CPU and on both GPU kernel shapes; each output must agree within `rel`
/// of its largest magnitude (sums added in another order).
fn agree(name: &str, model: &Model, inputs: &[HostTensor], rel: f32) -> Result<()> {
    let cpu = Session::new(model.program().clone(), BackendKind::Cpu)?.run(inputs)?;
    for (shape, g) in backends() {
        let gpu = Session::with_backend(model.program().clone(), Arc::new(g)).run(inputs)?;
        common::assert_agree_to_scale(&format!("{name} ({shape})"), &cpu, &gpu, rel);
    }
    Ok(())
}

/// The kinds of the GPU-shaped kernels `model` compiles to for `shape`, on a device binding 16
/// storage buffers per kernel (a folded BatchNormalization and a residual read seven).
fn kinds(model: &Model, shape: &[usize]) -> Result<Vec<&'static str>> {
    let kernels = GpuBackend::kernels_for(model.program(), &[shape.to_vec()], 16)?;
    Ok(kernels.iter().map(|k| k.kind).collect())
}

/// A model of one layer call on an input of `per_sample` shape.
fn one_layer(per_sample: &[usize], f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Model> {
    let x = Input::new(per_sample).tensor();
    let y = f(&x)?;
    Model::new(&[x], &[y])
}

#[test]
fn every_convolution_configuration_agrees_with_the_cpu() -> Result<()> {
    type Case = (
        &'static str,
        Vec<usize>,
        Box<dyn Fn(&Tensor) -> Result<Tensor>>,
    );
    let cases: Vec<Case> = vec![
        (
            "conv2d valid",
            vec![9, 8, 5],
            Box::new(|t| Conv2D::new(7, [3, 3]).call(t)),
        ),
        (
            "conv2d same relu",
            vec![20, 18, 5],
            Box::new(|t| {
                Conv2D::new(70, [3, 3])
                    .padding(Padding::Same)
                    .activation(Activation::Relu)
                    .call(t)
            }),
        ),
        (
            "conv2d strided same",
            vec![16, 15, 6],
            Box::new(|t| {
                Conv2D::new(12, [3, 3])
                    .strides([2, 2])
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "conv2d dilated",
            vec![11, 12, 4],
            Box::new(|t| {
                Conv2D::new(5, [3, 2])
                    .dilation_rate([2, 3])
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "conv2d 5x3 no bias",
            vec![10, 9, 3],
            Box::new(|t| Conv2D::new(4, [5, 3]).use_bias(false).call(t)),
        ),
        (
            "conv2d groups 4",
            vec![8, 8, 8],
            Box::new(|t| {
                Conv2D::new(12, [3, 3])
                    .groups(4)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "conv2d 1x1",
            vec![7, 6, 33],
            Box::new(|t| Conv2D::new(17, [1, 1]).call(t)),
        ),
        (
            "conv2d 1x1 groups 3",
            vec![7, 6, 12],
            Box::new(|t| Conv2D::new(9, [1, 1]).groups(3).call(t)),
        ),
        (
            "conv2d 1x1 strided",
            vec![9, 9, 8],
            Box::new(|t| Conv2D::new(6, [1, 1]).strides([2, 2]).call(t)),
        ),
        (
            "conv2d channels first",
            vec![5, 10, 9],
            Box::new(|t| {
                Conv2D::new(6, [3, 3])
                    .data_format(DataFormat::ChannelsFirst)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "conv1d causal dilated",
            vec![19, 4],
            Box::new(|t| {
                Conv1D::new(6, 3)
                    .padding(Padding::Causal)
                    .dilation_rate(2)
                    .call(t)
            }),
        ),
        (
            "conv1d strided groups",
            vec![21, 6],
            Box::new(|t| Conv1D::new(4, 4).strides(3).groups(2).call(t)),
        ),
        (
            "depthwise multiplier 2 strided",
            vec![9, 10, 5],
            Box::new(|t| {
                DepthwiseConv2D::new(3)
                    .depth_multiplier(2)
                    .strides(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "depthwise dilated",
            vec![12, 12, 4],
            Box::new(|t| {
                DepthwiseConv2D::new(3)
                    .dilation_rate(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "separable conv2d",
            vec![10, 10, 6],
            Box::new(|t| {
                SeparableConv2D::new(11, 3)
                    .depth_multiplier(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "separable conv1d",
            vec![15, 4],
            Box::new(|t| SeparableConv1D::new(5, 3).call(t)),
        ),
        (
            "conv2d transpose strided same",
            vec![6, 5, 4],
            Box::new(|t| {
                Conv2DTranspose::new(3, [3, 3])
                    .strides([2, 2])
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "conv2d transpose output padding",
            vec![5, 4, 3],
            Box::new(|t| {
                Conv2DTranspose::new(2, [3, 3])
                    .strides([2, 2])
                    .output_padding([1, 1])
                    .call(t)
            }),
        ),
        (
            "conv1d transpose",
            vec![8, 3],
            Box::new(|t| Conv1DTranspose::new(5, 4).strides(3).call(t)),
        ),
        // Inner dimensions past one workgroup's chunk: partial products summed after, the
        // bias added once.
        (
            "conv2d long inner dimension",
            vec![4, 4, 520],
            Box::new(|t| Conv2D::new(8, [3, 3]).padding(Padding::Same).call(t)),
        ),
        (
            "conv2d 1x1 long inner dimension",
            vec![3, 3, 4100],
            Box::new(|t| Conv2D::new(5, [1, 1]).call(t)),
        ),
    ];
    for (name, shape, f) in &cases {
        let model = one_layer(shape, f)?;
        let mut full = vec![2];
        full.extend_from_slice(shape);
        agree(name, &model, &[input(&full, 7)?], 2e-5)?;
    }
    // On a GPU a windowed convolution is one implicit GEMM with its activation (no im2col
    // written), a 1x1 one a plain product of the input in place.
    let conv = one_layer(&[20, 18, 5], |t| {
        Conv2D::new(70, [3, 3])
            .padding(Padding::Same)
            .activation(Activation::Relu)
            .call(t)
    })?;
    assert_eq!(kinds(&conv, &[2, 20, 18, 5])?, ["conv_gemm"]);
    let pointwise = one_layer(&[7, 6, 33], |t| Conv2D::new(17, [1, 1]).call(t))?;
    assert_eq!(kinds(&pointwise, &[2, 7, 6, 33])?, ["conv_pointwise"]);
    Ok(())
}

#[test]
fn depthwise_convolutions_over_many_channels_are_one_kernel_whatever_the_count() -> Result<()> {
    let mut programs = Vec::new();
    for channels in [1usize, 3, 32, 1152, 2048] {
        let model = one_layer(&[6, 5, channels], |t| {
            let y = DepthwiseConv2D::new(3).padding(Padding::Same).call(t)?;
            ReLU::new().max_value(6.0).call(&y)
        })?;
        agree(
            &format!("depthwise over {channels} channels"),
            &model,
            &[input(&[2, 6, 5, channels], 3)?],
            2e-5,
        )?;
        // The convolution, its bias and relu6 in one kernel: no node or kernel per channel.
        assert_eq!(
            kinds(&model, &[2, 6, 5, channels])?,
            ["conv_direct"],
            "{channels} channels"
        );
        programs.push((channels, model.program().nodes.len()));
        let wgsl = GpuBackend::kernels_for(model.program(), &[vec![2, 6, 5, channels]], 8)?
            .remove(0)
            .wgsl;
        programs.push((channels, wgsl.len()));
    }
    // The same graph and the same shader text for 32 and 2,048 channels (sizes are uniforms).
    let at =
        |c: usize| -> Vec<usize> { programs.iter().filter(|p| p.0 == c).map(|p| p.1).collect() };
    assert_eq!(at(32), at(1152));
    assert_eq!(at(1152), at(2048));
    Ok(())
}

/// BatchNormalization in inference with its statistics set to seeded values (variance
/// positive), applied to `t`.
fn batch_norm(t: &Tensor, seed: u32) -> Result<Tensor> {
    let layer = BatchNormalization::new();
    let y = layer.call(t)?;
    let c = t.shape().dims().last().and_then(|d| d.known()).unwrap_or(1);
    let v = |s: u32| seeded(c, seed * 7 + s);
    layer.set_weight("gamma", HostTensor::new(&[c], v(1))?)?;
    layer.set_weight("beta", HostTensor::new(&[c], v(2))?)?;
    layer.set_weight("moving_mean", HostTensor::new(&[c], v(3))?)?;
    let var: Vec<f32> = v(4).iter().map(|x| x.abs() + 0.5).collect();
    layer.set_weight("moving_variance", HostTensor::new(&[c], var)?)?;
    Ok(y)
}

fn relu6(t: &Tensor) -> Result<Tensor> {
    ReLU::new().max_value(6.0).call(t)
}

/// MobileNetV2's inverted residual: expand 1x1, depthwise 3x3, project 1x1, each with
/// BatchNormalization (relu6 after the first two), the input added back.
fn inverted_residual(x: &Tensor, channels: usize, expansion: usize, seed: u32) -> Result<Tensor> {
    let h = Conv2D::new(channels * expansion, 1)
        .use_bias(false)
        .call(x)?;
    let h = relu6(&batch_norm(&h, seed)?)?;
    let h = DepthwiseConv2D::new(3)
        .padding(Padding::Same)
        .use_bias(false)
        .call(&h)?;
    let h = relu6(&batch_norm(&h, seed + 1)?)?;
    let h = Conv2D::new(channels, 1).use_bias(false).call(&h)?;
    let h = batch_norm(&h, seed + 2)?;
    Add::new().call([x, &h])
}

#[test]
fn a_residual_block_with_folded_batch_norm_and_relu6_runs_three_kernels() -> Result<()> {
    let x = Input::new(&[8, 8, 16]).tensor();
    let y = inverted_residual(&x, 16, 6, 1)?;
    let model = Model::new(&[x], &[y])?;
    let data = input(&[2, 8, 8, 16], 5)?;
    agree(
        "inverted residual",
        &model,
        std::slice::from_ref(&data),
        2e-5,
    )?;
    // Each convolution takes its BatchNormalization, relu6 and (the last) the residual add as
    // its epilogue; the BatchNormalization folded into its kernel is computed from weights
    // only.
    let all = kinds(&model, &[2, 8, 8, 16])?;
    let convs: Vec<&str> = all
        .iter()
        .copied()
        .filter(|k| k.starts_with("conv"))
        .collect();
    assert_eq!(
        convs,
        ["conv_pointwise", "conv_direct", "conv_pointwise"],
        "{all:?}"
    );
    let Some(_) = common::gpu() else {
        return Ok(());
    };
    // Those weights-only kernels run on the first run and when a weight changes, not on every
    // run: three dispatches a run after the first.
    let g = Arc::new(GpuBackend::new()?);
    let session = Session::with_backend(model.program().clone(), Arc::new(g.clone()));
    let first = session.run(std::slice::from_ref(&data))?;
    let before = session.stats();
    let again = session.run(std::slice::from_ref(&data))?;
    assert_eq!(session.stats().since(&before).dispatches, 3);
    assert_eq!(first[0].to_f32_vec(), again[0].to_f32_vec());
    // A changed BatchNormalization weight folds again: the GPU follows the CPU.
    let c = 96;
    let (gamma, _) = model
        .named_weights()
        .into_iter()
        .find(|(p, v)| p.ends_with("/gamma") && v.shape() == [c])
        .expect("the expansion's BatchNormalization");
    model.set_weight(&gamma, HostTensor::new(&[c], seeded(c, 99))?)?;
    let before = session.stats();
    let changed = session.run(std::slice::from_ref(&data))?;
    assert!(session.stats().since(&before).dispatches > 3);
    let cpu = Session::new(model.program().clone(), BackendKind::Cpu)?.run(&[data])?;
    let (c, g) = (cpu[0].to_f32_vec(), changed[0].to_f32_vec());
    let scale = c.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(c.iter().zip(&g).all(|(a, b)| (a - b).abs() <= 2e-5 * scale));
    assert_ne!(changed[0].to_f32_vec(), first[0].to_f32_vec());
    Ok(())
}

#[test]
fn blocks_of_real_cnns_agree_with_the_cpu() -> Result<()> {
    // MobileNetV2: a strided stem, then two inverted residuals.
    let x = Input::new(&[17, 17, 3]).tensor();
    let h = ZeroPadding2D::asymmetric([(0, 1), (0, 1)]).call(&x)?;
    let h = Conv2D::new(16, 3).strides(2).use_bias(false).call(&h)?;
    let h = relu6(&batch_norm(&h, 10)?)?;
    let h = inverted_residual(&h, 16, 6, 11)?;
    let h = inverted_residual(&h, 16, 4, 14)?;
    let y = GlobalAveragePooling2D::new().call(&h)?;
    let model = Model::new(&[x], &[y])?;
    agree(
        "mobilenet_v2 stand-in",
        &model,
        &[input(&[2, 17, 17, 3], 1)?],
        2e-5,
    )?;

    // ResNet: a bottleneck with a strided projection shortcut, then an identity one.
    let x = Input::new(&[12, 12, 32]).tensor();
    let mut h = x.clone();
    for (stride, project) in [(2usize, true), (1, false)] {
        let shortcut = if project {
            let s = Conv2D::new(64, 1).strides(stride).call(&h)?;
            batch_norm(&s, 20)?
        } else {
            h.clone()
        };
        let r = Conv2D::new(16, 1).strides(stride).call(&h)?;
        let r = ReLU::new().call(&batch_norm(&r, 21)?)?;
        let r = Conv2D::new(16, 3).padding(Padding::Same).call(&r)?;
        let r = ReLU::new().call(&batch_norm(&r, 22)?)?;
        let r = Conv2D::new(64, 1).call(&r)?;
        let r = batch_norm(&r, 23)?;
        h = ReLU::new().call(&Add::new().call([&shortcut, &r])?)?;
    }
    let model = Model::new(&[x], &[h])?;
    agree(
        "resnet bottleneck",
        &model,
        &[input(&[2, 12, 12, 32], 2)?],
        2e-5,
    )?;

    // EfficientNet: MBConv with squeeze-and-excitation and swish.
    let x = Input::new(&[10, 10, 24]).tensor();
    let h = Conv2D::new(96, 1).use_bias(false).call(&x)?;
    let h = ActivationLayer::new(Activation::Silu).call(&batch_norm(&h, 30)?)?;
    let h = DepthwiseConv2D::new(5)
        .padding(Padding::Same)
        .use_bias(false)
        .call(&h)?;
    let h = ActivationLayer::new(Activation::Silu).call(&batch_norm(&h, 31)?)?;
    let se = GlobalAveragePooling2D::new().keepdims(true).call(&h)?;
    let se = Conv2D::new(6, 1).activation(Activation::Silu).call(&se)?;
    let se = Conv2D::new(96, 1)
        .activation(Activation::Sigmoid)
        .call(&se)?;
    let h = Multiply::new().call([&h, &se])?;
    let h = Conv2D::new(24, 1).use_bias(false).call(&h)?;
    let h = batch_norm(&h, 32)?;
    let y = Add::new().call([&x, &h])?;
    let model = Model::new(&[x], &[y])?;
    agree(
        "efficientnet mbconv",
        &model,
        &[input(&[2, 10, 10, 24], 3)?],
        2e-5,
    )?;

    // Xception: separable convolutions, max pooling, a strided 1x1 residual.
    let x = Input::new(&[14, 14, 8]).tensor();
    let residual = Conv2D::new(32, 1)
        .strides(2)
        .padding(Padding::Same)
        .call(&x)?;
    let residual = batch_norm(&residual, 40)?;
    let h = SeparableConv2D::new(32, 3)
        .padding(Padding::Same)
        .call(&x)?;
    let h = ReLU::new().call(&batch_norm(&h, 41)?)?;
    let h = SeparableConv2D::new(32, 3)
        .padding(Padding::Same)
        .call(&h)?;
    let h = batch_norm(&h, 42)?;
    let h = MaxPooling2D::new(3)
        .strides(2)
        .padding(Padding::Same)
        .call(&h)?;
    let y = Add::new().call([&h, &residual])?;
    let model = Model::new(&[x], &[y])?;
    agree(
        "xception block",
        &model,
        &[input(&[2, 14, 14, 8], 4)?],
        2e-5,
    )?;
    Ok(())
}

#[test]
fn concatenations_wider_than_a_kernel_binds_compile_in_passes() -> Result<()> {
    // 1,100 inputs joined: more than a kernel binds (8 here, about 8 to 32 on real devices)
    // and more than the 1,024 parts the lowering joins in one op.
    let inputs: Vec<Tensor> = (0..1100).map(|_| Input::new(&[2]).tensor()).collect();
    let y = Tensor::concatenate(&inputs, -1);
    let model = Model::new(&inputs, &[&y * 2.0])?;
    let shapes = vec![vec![3, 2]; 1100];
    let kernels = GpuBackend::kernels_for(model.program(), &shapes, 8)?;
    for k in &kernels {
        assert!(
            k.bindings.len() <= 8,
            "{} binds {}",
            k.kind,
            k.bindings.len()
        );
    }
    let data: Vec<HostTensor> = (0..1100)
        .map(|i| input(&[3, 2], i as u32))
        .collect::<Result<_>>()?;
    agree("concatenate of 1,100", &model, &data, 0.0)?;
    Ok(())
}

#[test]
fn a_keras_made_mobile_cnn_matches_keras_on_both_kernel_shapes() -> Result<()> {
    // Made by tests/fixtures/make_keras_fixtures.py (Keras 3 on JAX): a strided stem, an
    // inverted residual, a strided 5x5 depthwise block with squeeze-and-excitation, separable
    // and grouped convolutions, BatchNormalization with trained-looking statistics.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras");
    let model = Model::load_keras(dir.join("mobile_cnn.keras"), &KerasBindings::new())?;
    let x = HostTensor::read_npy(dir.join("mobile_cnn.input0.npy"))?;
    let want = HostTensor::read_npy(dir.join("mobile_cnn.output0.npy"))?.to_f32_vec();
    for (shape, g) in backends() {
        let got = Session::with_backend(model.program().clone(), Arc::new(g))
            .run(std::slice::from_ref(&x))?;
        for (i, (a, b)) in got[0].to_f32_vec().iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1e-2),
                "{shape}: element {i}: lamina {a} vs keras {b}"
            );
        }
    }
    Ok(())
}

#[test]
fn pooling_of_every_kind_agrees_with_the_cpu_as_one_window_kernel() -> Result<()> {
    type Case = (
        &'static str,
        Vec<usize>,
        Box<dyn Fn(&Tensor) -> Result<Tensor>>,
    );
    let cases: Vec<Case> = vec![
        (
            "max 2d 2",
            vec![8, 9, 5],
            Box::new(|t| MaxPooling2D::new(2).call(t)),
        ),
        (
            "max 2d 3 strided same",
            vec![9, 8, 4],
            Box::new(|t| {
                MaxPooling2D::new(3)
                    .strides(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "average 2d 3 strided same",
            vec![9, 8, 4],
            Box::new(|t| {
                AveragePooling2D::new(3)
                    .strides(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "average 2d 7 valid",
            vec![7, 7, 6],
            Box::new(|t| AveragePooling2D::new(7).call(t)),
        ),
        (
            "max 2d channels first",
            vec![3, 8, 8],
            Box::new(|t| {
                MaxPooling2D::new(2)
                    .data_format(DataFormat::ChannelsFirst)
                    .call(t)
            }),
        ),
        (
            "max 1d same",
            vec![11, 3],
            Box::new(|t| {
                MaxPooling1D::new(3)
                    .strides(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
        ),
        (
            "average 1d",
            vec![12, 3],
            Box::new(|t| AveragePooling1D::new(4).strides(3).call(t)),
        ),
        (
            "global average 2d",
            vec![6, 5, 7],
            Box::new(|t| GlobalAveragePooling2D::new().call(t)),
        ),
        (
            "global max 2d keepdims",
            vec![6, 5, 7],
            Box::new(|t| GlobalMaxPooling2D::new().keepdims(true).call(t)),
        ),
        (
            "global max 1d",
            vec![9, 4],
            Box::new(|t| GlobalMaxPooling1D::new().call(t)),
        ),
    ];
    for (name, shape, f) in &cases {
        let model = one_layer(shape, f)?;
        let mut full = vec![2];
        full.extend_from_slice(shape);
        agree(name, &model, &[input(&full, 11)?], 1e-6)?;
    }
    // A convolution with relu, then a max pooling: the pooling's window (its slices, the
    // padding of each tap, and the maxima) is one kernel, valid or same.
    for (padding, passes) in [(Padding::Valid, 1), (Padding::Same, 1)] {
        let model = one_layer(&[12, 12, 4], |t| {
            let h = Conv2D::new(8, 3)
                .padding(Padding::Same)
                .activation(Activation::Relu)
                .call(t)?;
            MaxPooling2D::new(3).strides(2).padding(padding).call(&h)
        })?;
        let k = kinds(&model, &[2, 12, 12, 4])?;
        assert_eq!(k[0], "conv_gemm");
        assert_eq!(k[1..], vec!["elementwise"; passes][..], "{padding:?}");
        agree(
            "conv then pool",
            &model,
            &[input(&[2, 12, 12, 4], 12)?],
            2e-5,
        )?;
    }
    Ok(())
}

#[test]
fn special_values_and_long_axes_agree_on_both_kernel_shapes() -> Result<()> {
    // NaN, infinities and -0.0 through padded, strided, grouped and depthwise convolutions:
    // the same NaN positions and infinities on every backend (padding multiplies zeros, as
    // the CPU's im2col does).
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        1e30,
        -1e-30,
    ];
    let x = |n: usize| -> Result<HostTensor> {
        let v: Vec<f32> = seeded(n, 21)
            .into_iter()
            .enumerate()
            .map(|(k, v)| {
                if k % 7 == 3 {
                    specials[(k / 7) % specials.len()]
                } else {
                    v
                }
            })
            .collect();
        HostTensor::new(&[2, 6, 6, 4], v)
    };
    let models = [
        one_layer(&[6, 6, 4], |t| {
            Conv2D::new(6, 3).padding(Padding::Same).call(t)
        })?,
        one_layer(&[6, 6, 4], |t| {
            Conv2D::new(4, 3)
                .groups(2)
                .strides(2)
                .padding(Padding::Same)
                .call(t)
        })?,
        one_layer(&[6, 6, 4], |t| {
            DepthwiseConv2D::new(3).padding(Padding::Same).call(t)
        })?,
        one_layer(&[6, 6, 4], |t| Conv2D::new(5, 1).call(t))?,
        one_layer(&[6, 6, 4], |t| {
            MaxPooling2D::new(3)
                .strides(2)
                .padding(Padding::Same)
                .call(t)
        })?,
    ];
    for (i, m) in models.iter().enumerate() {
        agree(
            &format!("special values, model {i}"),
            m,
            &[x(2 * 6 * 6 * 4)?],
            2e-5,
        )?;
    }
    // A spatial axis past 65,535, and a window of more taps than a shader loop may run.
    let long = 70_000;
    let data = input(&[1, long, 1], 22)?;
    let m = one_layer(&[long, 1], |t| {
        Conv1D::new(2, 3).padding(Padding::Same).call(t)
    })?;
    agree("a 70,000-long axis", &m, &[data], 2e-5)?;
    let m = one_layer(&[66_100, 1], |t| Conv1D::new(2, 66_000).call(t))?;
    agree(
        "a 66,000-tap window",
        &m,
        &[input(&[1, 66_100, 1], 23)?],
        2e-5,
    )?;
    Ok(())
}
