//! The convolution family, windowed and global pooling, and BatchNormalization: every layer
//! against a direct f64 definition written here (for each padding mode, stride, dilation,
//! group count and data format), on the CPU and the GPU (which must agree); a few cases against
//! outputs recorded from Keras 3.15; save/load round trips; bad configurations.
#![cfg(feature = "gpu")]
// compares the CPU interpreter with the GPU backend

// The case tables are tuples of sizes, spelled out where they are read.
#![allow(clippy::type_complexity)]

use lamina::prelude::*;

use crate::common;
use common::run_both;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 1e-4 + 1e-4 * b.abs(),
            "{what}: element {i}: got {a}, want {b}"
        );
    }
}

/// The geometry of a reference convolution over channels-last data with 2 spatial axes.
#[derive(Clone, Copy)]
struct Ref {
    stride: [usize; 2],
    dil: [usize; 2],
    pad: [usize; 2],
    groups: usize,
}

impl Ref {
    /// Stride 1, no dilation, one group, padded by `pad` before each spatial axis.
    fn plain(pad: [usize; 2]) -> Ref {
        Ref {
            stride: [1, 1],
            dil: [1, 1],
            pad,
            groups: 1,
        }
    }
}

/// Direct definition: out[n, oh, ow, o] = b[o] + sum over taps and the group's channels.
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f32],
    [n, h, w, c]: [usize; 4],
    k: &[f32],
    [kh, kw, cig, cout]: [usize; 4],
    bias: Option<&[f32]>,
    g: Ref,
    [oh, ow]: [usize; 2],
) -> Vec<f64> {
    let cog = cout / g.groups;
    let mut out = vec![0f64; n * oh * ow * cout];
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for o in 0..cout {
                    let grp = o / cog;
                    let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                    for ti in 0..kh {
                        for tj in 0..kw {
                            let y = (i * g.stride[0] + ti * g.dil[0]) as isize - g.pad[0] as isize;
                            let z = (j * g.stride[1] + tj * g.dil[1]) as isize - g.pad[1] as isize;
                            if y < 0 || z < 0 || y >= h as isize || z >= w as isize {
                                continue;
                            }
                            for ci in 0..cig {
                                let xv = x
                                    [((b * h + y as usize) * w + z as usize) * c + grp * cig + ci]
                                    as f64;
                                let kv = k[((ti * kw + tj) * cig + ci) * cout + o] as f64;
                                acc += xv * kv;
                            }
                        }
                    }
                    out[((b * oh + i) * ow + j) * cout + o] = acc;
                }
            }
        }
    }
    out
}

/// The output size and the padding before each spatial axis of a convolution over `[h, w]`,
/// worked out here from Keras's rules (`same`: the output is the input over the stride, the
/// total padding split with the smaller half first).
fn out_and_pad(
    padding: Padding,
    [h, w]: [usize; 2],
    k: [usize; 2],
    strides: [usize; 2],
    dil: [usize; 2],
) -> (Vec<usize>, Vec<usize>) {
    let keff = [(k[0] - 1) * dil[0] + 1, (k[1] - 1) * dil[1] + 1];
    (0..2)
        .map(|a| {
            let len = [h, w][a];
            match padding {
                Padding::Same => {
                    let o = len.div_ceil(strides[a]);
                    let total = ((o - 1) * strides[a] + keff[a]).saturating_sub(len);
                    (o, total / 2)
                }
                _ => ((len - keff[a]) / strides[a] + 1, 0),
            }
        })
        .unzip()
}

fn model_of(input: &[usize], layer: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Model> {
    let x = Input::new(input).tensor();
    let y = layer(&x)?;
    Model::new(&[x], &[y])
}

fn transpose_nhwc_to_nchw(x: &[f32], [n, h, w, c]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for i in 0..h {
            for j in 0..w {
                for k in 0..c {
                    out[((b * c + k) * h + i) * w + j] = x[((b * h + i) * w + j) * c + k];
                }
            }
        }
    }
    out
}

/// First layers of image models: 3 input channels and more output channels than one panel of
/// 32 (40: a full panel and a partial one), strided, padded and dilated along the height, on
/// a batch whose positions do not fill the last register tile, against the definition.
#[test]
fn first_layers_over_rgb_images_against_the_definition() -> Result<()> {
    let (n, h, w, c, f) = (3, 17, 15, 3, 40);
    let cases: &[(Padding, [usize; 2], [usize; 2], [usize; 2])] = &[
        (Padding::Same, [2, 2], [1, 1], [3, 3]),
        (Padding::Valid, [2, 2], [1, 1], [7, 7]),
        (Padding::Same, [1, 1], [2, 1], [3, 3]),
        (Padding::Same, [1, 2], [1, 1], [2, 4]),
    ];
    for (case, &(padding, strides, dil, k)) in cases.iter().enumerate() {
        let x = values(n * h * w * c, 300 + case as u64);
        let kernel = values(k[0] * k[1] * c * f, 400 + case as u64);
        let bias = values(f, 500 + case as u64);
        let layer = Conv2D::new(f, k)
            .strides(strides)
            .padding(padding)
            .dilation_rate(dil);
        let model = model_of(&[h, w, c], &|t| layer.call(t))?;
        layer.set_weight(
            "kernel",
            HostTensor::new(&[k[0], k[1], c, f], kernel.clone())?,
        )?;
        layer.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
        let (out, pad) = out_and_pad(padding, [h, w], k, strides, dil);
        let want = conv_ref(
            &x,
            [n, h, w, c],
            &kernel,
            [k[0], k[1], c, f],
            Some(&bias),
            Ref {
                stride: strides,
                dil,
                pad: [pad[0], pad[1]],
                groups: 1,
            },
            [out[0], out[1]],
        );
        let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x)?]);
        assert_eq!(got[0].shape(), &[n, out[0], out[1], f], "case {case}");
        assert_close(&got[0].to_f32_vec(), &want, &format!("rgb case {case}"));
    }
    Ok(())
}

/// 3x3 convolutions of stride 1 with many channels (which the CPU computes by Winograd's
/// F(2x2, 3x3)): odd heights and widths (partial tiles), `same` and `valid` padding, a batch
/// whose slabs of work begin and end inside images, alone and inside a ReLU's fused region,
/// against the definition.
#[test]
fn three_by_three_convolutions_of_many_channels_against_the_definition() -> Result<()> {
    let (c, f) = (24, 40);
    let cases: &[(Padding, [usize; 3], bool)] = &[
        (Padding::Same, [5, 7, 6], false),
        (Padding::Same, [2, 11, 9], true),
        (Padding::Valid, [3, 9, 8], false),
        (Padding::Valid, [4, 6, 5], true),
        (Padding::Same, [1, 1, 3], false),
    ];
    for (case, &(padding, [n, h, w], relu)) in cases.iter().enumerate() {
        let x = values(n * h * w * c, 600 + case as u64);
        let kernel = values(9 * c * f, 700 + case as u64);
        let bias = values(f, 800 + case as u64);
        let mut layer = Conv2D::new(f, [3, 3]).padding(padding);
        if relu {
            layer = layer.activation(Activation::Relu);
        }
        let model = model_of(&[h, w, c], &|t| layer.call(t))?;
        layer.set_weight("kernel", HostTensor::new(&[3, 3, c, f], kernel.clone())?)?;
        layer.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
        let (out, pad) = out_and_pad(padding, [h, w], [3, 3], [1, 1], [1, 1]);
        let mut want = conv_ref(
            &x,
            [n, h, w, c],
            &kernel,
            [3, 3, c, f],
            Some(&bias),
            Ref::plain([pad[0], pad[1]]),
            [out[0], out[1]],
        );
        if relu {
            want.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let inputs = [HostTensor::new(&[n, h, w, c], x)?];
        let got = common::run_both_to_scale(&model, &inputs, 1e-6);
        assert_eq!(got[0].shape(), &[n, out[0], out[1], f], "case {case}");
        // Within a few roundings of the output's scale: Winograd's form adds its terms in
        // another order than the direct sum, through transforms with ±1/2.
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let got = got[0].to_f32_vec();
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
        eprintln!(
            "3x3 case {case}: worst {:e} of scale {scale}",
            worst / scale
        );
        assert!(
            worst <= 1e-6 * scale,
            "3x3 case {case}: off by {worst} at scale {scale}"
        );
        assert_close(&got, &want, &format!("3x3 case {case}"));
    }
    Ok(())
}

#[test]
fn conv2d_against_the_definition() -> Result<()> {
    // (padding, strides, dilation, groups): (top, left) padding and output size worked out here.
    let (n, h, w, c, f) = (2, 7, 6, 4, 6);
    let cases: &[(Padding, [usize; 2], [usize; 2], usize, [usize; 2])] = &[
        (Padding::Valid, [1, 1], [1, 1], 1, [3, 3]),
        (Padding::Same, [1, 1], [1, 1], 1, [3, 3]),
        (Padding::Same, [2, 2], [1, 1], 1, [3, 3]),
        (Padding::Valid, [2, 1], [1, 1], 2, [3, 2]),
        (Padding::Same, [1, 1], [2, 2], 1, [3, 3]),
        (Padding::Valid, [1, 1], [2, 1], 2, [2, 3]),
        (Padding::Same, [3, 2], [1, 1], 2, [2, 2]),
    ];
    for (case, &(padding, strides, dil, groups, k)) in cases.iter().enumerate() {
        let x = values(n * h * w * c, case as u64);
        let kernel = values(k[0] * k[1] * (c / groups) * f, 100 + case as u64);
        let bias = values(f, 200 + case as u64);
        let layer = Conv2D::new(f, k)
            .strides(strides)
            .padding(padding)
            .dilation_rate(dil)
            .groups(groups);
        let model = model_of(&[h, w, c], &|t| layer.call(t))?;
        layer.set_weight(
            "kernel",
            HostTensor::new(&[k[0], k[1], c / groups, f], kernel.clone())?,
        )?;
        layer.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
        let (out, pad) = out_and_pad(padding, [h, w], k, strides, dil);
        let want = conv_ref(
            &x,
            [n, h, w, c],
            &kernel,
            [k[0], k[1], c / groups, f],
            Some(&bias),
            Ref {
                stride: strides,
                dil,
                pad: [pad[0], pad[1]],
                groups,
            },
            [out[0], out[1]],
        );
        let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x.clone())?]);
        assert_eq!(got[0].shape(), &[n, out[0], out[1], f], "case {case}");
        assert_close(&got[0].to_f32_vec(), &want, &format!("case {case}"));

        // With an activation, the CPU computes the convolution inside the activation's fused
        // region, slab by slab: the same values through the activation.
        let act = Conv2D::new(f, k)
            .strides(strides)
            .padding(padding)
            .dilation_rate(dil)
            .groups(groups)
            .activation(Activation::Relu);
        let model = model_of(&[h, w, c], &|t| act.call(t))?;
        act.set_weight(
            "kernel",
            HostTensor::new(&[k[0], k[1], c / groups, f], kernel.clone())?,
        )?;
        act.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
        let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x.clone())?]);
        let relu: Vec<f64> = want.iter().map(|&v| v.max(0.0)).collect();
        assert_close(&got[0].to_f32_vec(), &relu, &format!("case {case} relu"));

        // The same layer over channels-first data gives the transposed result.
        let cf = Conv2D::new(f, k)
            .strides(strides)
            .padding(padding)
            .dilation_rate(dil)
            .groups(groups)
            .data_format(DataFormat::ChannelsFirst);
        let model = model_of(&[c, h, w], &|t| cf.call(t))?;
        cf.set_weight(
            "kernel",
            HostTensor::new(&[k[0], k[1], c / groups, f], kernel.clone())?,
        )?;
        cf.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
        let xt = transpose_nhwc_to_nchw(&x, [n, h, w, c]);
        let got = run_both(&model, &[HostTensor::new(&[n, c, h, w], xt)?]);
        let want_t: Vec<f64> = {
            let w32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            transpose_nhwc_to_nchw(&w32, [n, out[0], out[1], f])
                .iter()
                .map(|&v| v as f64)
                .collect()
        };
        assert_close(&got[0].to_f32_vec(), &want_t, &format!("case {case} nchw"));
    }
    Ok(())
}

#[test]
fn conv1d_causal_and_depthwise_separable() -> Result<()> {
    let (n, l, c) = (2, 9, 3);
    let x = values(n * l * c, 7);
    // Conv1D causal, dilation 2: pad (k - 1) * d = 4 before.
    let layer = Conv1D::new(2, 3)
        .padding(Padding::Causal)
        .dilation_rate(2)
        .use_bias(false);
    let model = model_of(&[l, c], &|t| layer.call(t))?;
    let k = values(3 * c * 2, 8);
    layer.set_weight("kernel", HostTensor::new(&[3, c, 2], k.clone())?)?;
    let want = conv_ref(
        &x,
        [n, 1, l, c],
        &k,
        [1, 3, c, 2],
        None,
        Ref {
            stride: [1, 1],
            dil: [1, 2],
            pad: [0, 4],
            groups: 1,
        },
        [1, l],
    );
    let got = run_both(&model, &[HostTensor::new(&[n, l, c], x.clone())?]);
    assert_eq!(got[0].shape(), &[n, l, 2]);
    assert_close(&got[0].to_f32_vec(), &want, "causal conv1d");

    // DepthwiseConv2D, multiplier 2: output channel c * 2 + m uses kernel[.., c, m].
    let (h, w) = (5, 6);
    let x2 = values(n * h * w * c, 9);
    let dw = DepthwiseConv2D::new(3)
        .depth_multiplier(2)
        .padding(Padding::Same)
        .strides(2);
    let model = model_of(&[h, w, c], &|t| dw.call(t))?;
    let k = values(9 * c * 2, 10);
    let b = values(c * 2, 11);
    dw.set_weight("kernel", HostTensor::new(&[3, 3, c, 2], k.clone())?)?;
    dw.set_weight("bias", HostTensor::new(&[c * 2], b.clone())?)?;
    // As a grouped convolution: (3, 3, 1, c * 2) with groups = c, same memory order.
    let want = conv_ref(
        &x2,
        [n, h, w, c],
        &k,
        [3, 3, 1, c * 2],
        Some(&b),
        Ref {
            stride: [2, 2],
            dil: [1, 1],
            pad: [1, 0],
            groups: c,
        },
        [3, 3],
    );
    let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x2.clone())?]);
    assert_eq!(got[0].shape(), &[n, 3, 3, c * 2]);
    assert_close(&got[0].to_f32_vec(), &want, "depthwise");

    // With an activation, the CPU computes the depthwise convolution inside the activation's
    // fused region, position by position: the same values through the activation.
    let dw_act = DepthwiseConv2D::new(3)
        .depth_multiplier(2)
        .padding(Padding::Same)
        .strides(2)
        .activation(Activation::Relu6);
    let model = model_of(&[h, w, c], &|t| dw_act.call(t))?;
    dw_act.set_weight("kernel", HostTensor::new(&[3, 3, c, 2], k.clone())?)?;
    dw_act.set_weight("bias", HostTensor::new(&[c * 2], b.clone())?)?;
    let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x2.clone())?]);
    let relu6: Vec<f64> = want.iter().map(|&v| v.clamp(0.0, 6.0)).collect();
    assert_close(&got[0].to_f32_vec(), &relu6, "depthwise relu6");

    // SeparableConv2D: the depthwise result (no bias) through a 1x1 convolution plus bias.
    let sep = SeparableConv2D::new(4, 3).depth_multiplier(2);
    let model = model_of(&[h, w, c], &|t| sep.call(t))?;
    let pk = values(c * 2 * 4, 12);
    let pb = values(4, 13);
    sep.set_weight(
        "depthwise_kernel",
        HostTensor::new(&[3, 3, c, 2], k.clone())?,
    )?;
    sep.set_weight(
        "pointwise_kernel",
        HostTensor::new(&[1, 1, c * 2, 4], pk.clone())?,
    )?;
    sep.set_weight("bias", HostTensor::new(&[4], pb.clone())?)?;
    let mid = conv_ref(
        &x2,
        [n, h, w, c],
        &k,
        [3, 3, 1, c * 2],
        None,
        Ref {
            stride: [1, 1],
            dil: [1, 1],
            pad: [0, 0],
            groups: c,
        },
        [3, 4],
    );
    let mid32: Vec<f32> = mid.iter().map(|&v| v as f32).collect();
    let want = conv_ref(
        &mid32,
        [n, 3, 4, c * 2],
        &pk,
        [1, 1, c * 2, 4],
        Some(&pb),
        Ref::plain([0, 0]),
        [3, 4],
    );
    let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x2)?]);
    assert_close(&got[0].to_f32_vec(), &want, "separable");
    Ok(())
}

/// Transposed convolution by its definition: each input element scatters kernel * x into the
/// output at `i * stride + t * dilation - pad_lo`.
#[test]
fn conv_transpose_against_scatter_definition() -> Result<()> {
    let (n, l, c, f) = (1, 4, 2, 3);
    let x = values(n * l * c, 21);
    // (kernel, stride, padding, output_padding, output length, pad_lo) from Keras's rules.
    let cases: &[(usize, usize, Padding, Option<usize>, usize, usize)] = &[
        (3, 2, Padding::Valid, None, 9, 0),
        (3, 2, Padding::Same, None, 8, 0),
        (4, 2, Padding::Same, None, 8, 1),
        (3, 2, Padding::Valid, Some(1), 10, 0),
        (2, 3, Padding::Valid, None, 12, 0),
    ];
    for (case, &(k, s, padding, op, out_len, lo)) in cases.iter().enumerate() {
        let mut layer = Conv1DTranspose::new(f, k).strides(s).padding(padding);
        if let Some(p) = op {
            layer = layer.output_padding(p);
        }
        let model = model_of(&[l, c], &|t| layer.call(t))?;
        let kern = values(k * f * c, 30 + case as u64);
        layer.set_weight("kernel", HostTensor::new(&[k, f, c], kern.clone())?)?;
        let mut want = vec![0f64; n * out_len * f];
        for i in 0..l {
            for t in 0..k {
                let o = (i * s + t) as isize - lo as isize;
                if o < 0 || o >= out_len as isize {
                    continue;
                }
                for of in 0..f {
                    for ci in 0..c {
                        want[o as usize * f + of] +=
                            x[i * c + ci] as f64 * kern[(t * f + of) * c + ci] as f64;
                    }
                }
            }
        }
        let got = run_both(&model, &[HostTensor::new(&[n, l, c], x.clone())?]);
        assert_eq!(got[0].shape(), &[n, out_len, f], "transpose case {case}");
        assert_close(
            &got[0].to_f32_vec(),
            &want,
            &format!("transpose case {case}"),
        );
    }
    Ok(())
}

/// A session keeps a 3x3 convolution's transformed kernel between runs (Winograd's form on
/// the CPU): a kernel set between two runs of the same session is the one the second run
/// uses, alone and inside a fused region, against the definition.
#[test]
fn a_kernel_set_between_runs_is_the_one_used() -> Result<()> {
    let (n, h, w, c, f) = (4, 16, 16, 16, 16);
    let x = values(n * h * w * c, 1200);
    let inputs = [HostTensor::new(&[n, h, w, c], x.clone())?];
    let bias = values(f, 1201);
    for relu in [false, true] {
        let mut layer = Conv2D::new(f, [3, 3]).padding(Padding::Same);
        if relu {
            layer = layer.activation(Activation::Relu);
        }
        let model = model_of(&[h, w, c], &|t| layer.call(t))?;
        layer.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
        let session = Session::new(model.program().clone(), BackendKind::Cpu)?;
        for seed in [1300, 1301, 1300] {
            let kernel = values(9 * c * f, seed);
            layer.set_weight("kernel", HostTensor::new(&[3, 3, c, f], kernel.clone())?)?;
            let mut want = conv_ref(
                &x,
                [n, h, w, c],
                &kernel,
                [3, 3, c, f],
                Some(&bias),
                Ref::plain([1, 1]),
                [h, w],
            );
            if relu {
                want.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            let got = session.run(&inputs)?;
            assert_close(
                &got[0].to_f32_vec(),
                &want,
                &format!("kernel {seed}, relu {relu}"),
            );
        }
    }
    Ok(())
}

/// `valid` pooling (max or mean over `pool` windows at `stride`) of channels-last `x`, in f64.
fn pool_ref(
    x: &[f64],
    [n, h, w, c]: [usize; 4],
    pool: usize,
    stride: usize,
    max: bool,
) -> Vec<f64> {
    let (oh, ow) = ((h - pool) / stride + 1, (w - pool) / stride + 1);
    let mut out = Vec::with_capacity(n * oh * ow * c);
    for b in 0..n {
        for i in 0..oh {
            for j in 0..ow {
                for ch in 0..c {
                    let window = (0..pool * pool).map(|t| {
                        let (y, z) = (i * stride + t / pool, j * stride + t % pool);
                        x[((b * h + y) * w + z) * c + ch]
                    });
                    out.push(if max {
                        window.fold(f64::NEG_INFINITY, f64::max)
                    } else {
                        window.sum::<f64>() / (pool * pool) as f64
                    });
                }
            }
        }
    }
    out
}

/// A convolution with a ReLU whose output only a pooling reads (the CPU then computes the
/// convolution slab by slab for the pooling's rows, never whole): each of the CPU's
/// convolution kinds (Winograd's for 16 channels in, the first-layer tiles for 3, im2col for a
/// 2x2 kernel), pools that tile the image and that overlap (3x3 at stride 2), max and mean,
/// against the definition; and the same convolution also returned as an output, which must
/// not change either result.
#[test]
fn convolutions_read_only_by_a_pooling_against_the_definition() -> Result<()> {
    let (n, h, w, f) = (8, 13, 12, 24);
    let cases: &[(usize, usize, usize, usize, bool)] = &[
        // (input channels, kernel side, pool, pool stride, max)
        (16, 3, 2, 2, true),
        (16, 3, 3, 2, false),
        (3, 3, 2, 2, true),
        (10, 2, 3, 2, true),
        (10, 2, 2, 2, false),
    ];
    for (case, &(c, k, pool, stride, max)) in cases.iter().enumerate() {
        let x = values(n * h * w * c, 900 + case as u64);
        let kernel = values(k * k * c * f, 950 + case as u64);
        let bias = values(f, 990 + case as u64);
        let (out, pad) = out_and_pad(Padding::Same, [h, w], [k, k], [1, 1], [1, 1]);
        let mut conv = conv_ref(
            &x,
            [n, h, w, c],
            &kernel,
            [k, k, c, f],
            Some(&bias),
            Ref::plain([pad[0], pad[1]]),
            [out[0], out[1]],
        );
        conv.iter_mut().for_each(|v| *v = v.max(0.0));
        let want = pool_ref(&conv, [n, out[0], out[1], f], pool, stride, max);
        for also_conv in [false, true] {
            let layer = Conv2D::new(f, [k, k])
                .padding(Padding::Same)
                .activation(Activation::Relu);
            let input = Input::new(&[h, w, c]).tensor();
            let y = layer.call(&input)?;
            let pooled = if max {
                MaxPooling2D::new((pool, pool))
                    .strides((stride, stride))
                    .call(&y)?
            } else {
                AveragePooling2D::new((pool, pool))
                    .strides((stride, stride))
                    .call(&y)?
            };
            let outputs = if also_conv {
                vec![pooled, y]
            } else {
                vec![pooled]
            };
            let model = Model::new(&[input], &outputs)?;
            layer.set_weight("kernel", HostTensor::new(&[k, k, c, f], kernel.clone())?)?;
            layer.set_weight("bias", HostTensor::new(&[f], bias.clone())?)?;
            let inputs = [HostTensor::new(&[n, h, w, c], x.clone())?];
            let got = common::run_both_to_scale(&model, &inputs, 1e-6);
            let what = format!("case {case}, conv also returned: {also_conv}");
            assert_close(&got[0].to_f32_vec(), &want, &what);
            if also_conv {
                assert_close(&got[1].to_f32_vec(), &conv, &what);
            }
        }
    }
    Ok(())
}

/// `valid` windowed pooling of several channels (each window position one slice of the input,
/// strided along both spatial axes) against the definition: for every output position and
/// channel, the maximum or mean of the window's elements; channels first too.
#[test]
fn valid_pooling_over_channels_matches_the_definition() -> Result<()> {
    let (n, h, w, c) = (2usize, 7usize, 6usize, 3usize);
    let data = values(n * h * w * c, 61);
    let x = HostTensor::new(&[n, h, w, c], data.clone())?;
    for (pool, stride) in [
        ((2, 2), (2, 2)),
        ((3, 3), (2, 2)),
        ((2, 3), (1, 2)),
        ((4, 4), (1, 1)),
    ] {
        for max in [true, false] {
            let (oh, ow) = ((h - pool.0) / stride.0 + 1, (w - pool.1) / stride.1 + 1);
            let mut want = Vec::new();
            for (b, i, j, ch) in (0..n).flat_map(|b| {
                (0..oh).flat_map(move |i| {
                    (0..ow).flat_map(move |j| (0..c).map(move |ch| (b, i, j, ch)))
                })
            }) {
                let window: Vec<f64> = (0..pool.0)
                    .flat_map(|di| (0..pool.1).map(move |dj| (di, dj)))
                    .map(|(di, dj)| {
                        let (y, z) = (i * stride.0 + di, j * stride.1 + dj);
                        data[((b * h + y) * w + z) * c + ch] as f64
                    })
                    .collect();
                want.push(if max {
                    window.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    window.iter().sum::<f64>() / window.len() as f64
                });
            }
            let what = format!("pool {pool:?} strides {stride:?} max {max}");
            let layer = move |t: &Tensor| -> Result<Tensor> {
                if max {
                    MaxPooling2D::new(pool).strides(stride).call(t)
                } else {
                    AveragePooling2D::new(pool).strides(stride).call(t)
                }
            };
            let model = model_of(&[h, w, c], &layer)?;
            let got = run_both(&model, std::slice::from_ref(&x));
            assert_close(&got[0].to_f32_vec(), &want, &what);
            // Channels first: the same values with the channels moved to axis 1.
            let xf = HostTensor::new(
                &[n, c, h, w],
                (0..n * c * h * w)
                    .map(|f| {
                        let (b, ch, y, z) = (f / (c * h * w), f / (h * w) % c, f / w % h, f % w);
                        data[((b * h + y) * w + z) * c + ch]
                    })
                    .collect(),
            )?;
            let layer_first = move |t: &Tensor| -> Result<Tensor> {
                if max {
                    MaxPooling2D::new(pool)
                        .strides(stride)
                        .data_format(DataFormat::ChannelsFirst)
                        .call(t)
                } else {
                    AveragePooling2D::new(pool)
                        .strides(stride)
                        .data_format(DataFormat::ChannelsFirst)
                        .call(t)
                }
            };
            let model = model_of(&[c, h, w], &layer_first)?;
            let got = run_both(&model, std::slice::from_ref(&xf));
            let want_first: Vec<f64> = (0..n * c * oh * ow)
                .map(|f| {
                    let (b, ch, i, j) = (f / (c * oh * ow), f / (oh * ow) % c, f / ow % oh, f % ow);
                    want[((b * oh + i) * ow + j) * c + ch]
                })
                .collect();
            assert_close(
                &got[0].to_f32_vec(),
                &want_first,
                &format!("{what}, channels first"),
            );
        }
    }
    Ok(())
}

/// Recorded from Keras 3.15 (JAX): `AveragePooling2D` and `MaxPooling2D` on
/// `arange(1, 26).reshape(1, 5, 5, 1)`.
#[test]
fn pooling_matches_keras() -> Result<()> {
    let x = HostTensor::new(&[1, 5, 5, 1], (1..=25).map(|v| v as f32).collect())?;
    let cases: Vec<(Box<dyn Fn(&Tensor) -> Result<Tensor>>, Vec<f64>)> = vec![
        (
            Box::new(|t| AveragePooling2D::new(2).padding(Padding::Same).call(t)),
            vec![4., 6., 7.5, 14., 16., 17.5, 21.5, 23.5, 25.],
        ),
        (
            Box::new(|t| {
                AveragePooling2D::new(3)
                    .strides(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
            vec![4., 5.5, 7., 11.5, 13., 14.5, 19., 20.5, 22.],
        ),
        (
            Box::new(|t| {
                MaxPooling2D::new(3)
                    .strides(2)
                    .padding(Padding::Same)
                    .call(t)
            }),
            vec![7., 9., 10., 17., 19., 20., 22., 24., 25.],
        ),
        (
            Box::new(|t| MaxPooling2D::new(2).call(t)),
            vec![7., 9., 17., 19.],
        ),
        (
            Box::new(|t| AveragePooling2D::new((2, 3)).strides(1).call(t)),
            (0..4)
                .flat_map(|i| (0..3).map(move |j| (5 * i + j + 1) as f64 + 1.0 + 2.5))
                .collect(),
        ),
    ];
    for (k, (f, want)) in cases.iter().enumerate() {
        let model = model_of(&[5, 5, 1], f.as_ref())?;
        let got = run_both(&model, std::slice::from_ref(&x));
        assert_close(&got[0].to_f32_vec(), want, &format!("pool case {k}"));
    }
    // 1-D and channels-first, global pooling.
    let x1 = HostTensor::new(&[1, 2, 5], (1..=10).map(|v| v as f32).collect())?;
    let model = model_of(&[2, 5], &|t| {
        MaxPooling1D::new(2)
            .strides(2)
            .padding(Padding::Same)
            .data_format(DataFormat::ChannelsFirst)
            .call(t)
    })?;
    let got = run_both(&model, std::slice::from_ref(&x1));
    assert_close(
        &got[0].to_f32_vec(),
        &[2., 4., 5., 7., 9., 10.],
        "maxpool1d cf",
    );
    let model = model_of(&[2, 5], &|t| AveragePooling1D::new(2).call(t))?;
    let got = run_both(&model, std::slice::from_ref(&x1));
    assert_close(
        &got[0].to_f32_vec(),
        &[3.5, 4.5, 5.5, 6.5, 7.5],
        "avgpool1d",
    );
    let model = model_of(&[5, 5, 1], &|t| {
        GlobalAveragePooling2D::new().keepdims(true).call(t)
    })?;
    let got = run_both(&model, std::slice::from_ref(&x));
    assert_eq!(got[0].shape(), &[1, 1, 1, 1]);
    assert_close(&got[0].to_f32_vec(), &[13.0], "gap");
    let model = model_of(&[5, 5, 1], &|t| GlobalMaxPooling2D::new().call(t))?;
    let got = run_both(&model, std::slice::from_ref(&x));
    assert_close(&got[0].to_f32_vec(), &[25.0], "gmp");
    Ok(())
}

#[test]
fn batch_normalization_alone_and_folded_into_conv() -> Result<()> {
    let (n, h, w, c, f) = (2, 5, 5, 3, 4);
    let x = values(n * h * w * c, 40);
    let conv = Conv2D::new(f, 3).padding(Padding::Same);
    let bn = BatchNormalization::new();
    let xi = Input::new(&[h, w, c]).tensor();
    let y = bn.call(&conv.call(&xi)?)?;
    let model = Model::new(&[xi], &[y])?;
    let names: Vec<String> = bn
        .variables()
        .iter()
        .map(|v| v.name().to_string())
        .collect();
    assert_eq!(names, ["gamma", "beta", "moving_mean", "moving_variance"]);
    let trainable: Vec<bool> = bn.variables().iter().map(|v| v.trainable()).collect();
    assert_eq!(trainable, [true, true, false, false]);
    let k = values(9 * c * f, 41);
    let b = values(f, 42);
    let (gamma, beta, mean) = (values(f, 43), values(f, 44), values(f, 45));
    let var: Vec<f32> = values(f, 46).iter().map(|v| v.abs() + 0.5).collect();
    conv.set_weight("kernel", HostTensor::new(&[3, 3, c, f], k.clone())?)?;
    conv.set_weight("bias", HostTensor::new(&[f], b.clone())?)?;
    for (name, v) in [
        ("gamma", &gamma),
        ("beta", &beta),
        ("moving_mean", &mean),
        ("moving_variance", &var),
    ] {
        bn.set_weight(name, HostTensor::new(&[f], v.clone())?)?;
    }
    let raw = conv_ref(
        &x,
        [n, h, w, c],
        &k,
        [3, 3, c, f],
        Some(&b),
        Ref::plain([1, 1]),
        [h, w],
    );
    let want: Vec<f64> = raw
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let o = i % f;
            (v - mean[o] as f64) / (var[o] as f64 + 1e-3).sqrt() * gamma[o] as f64 + beta[o] as f64
        })
        .collect();
    let got = run_both(&model, &[HostTensor::new(&[n, h, w, c], x.clone())?]);
    assert_close(&got[0].to_f32_vec(), &want, "conv + bn");
    // The folded kernel is computed once per session and kept; a weight set between runs
    // makes it again (gamma doubled: twice the normalised value, plus beta).
    let session = Session::new(model.program().clone(), BackendKind::Cpu)?;
    let input = HostTensor::new(&[n, h, w, c], x.clone())?;
    for _ in 0..2 {
        assert_close(
            &session.run(std::slice::from_ref(&input))?[0].to_f32_vec(),
            &want,
            "kept",
        );
    }
    let doubled: Vec<f32> = gamma.iter().map(|g| 2.0 * g).collect();
    bn.set_weight("gamma", HostTensor::new(&[f], doubled)?)?;
    let want_doubled: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(i, &v)| 2.0 * v - beta[i % f] as f64)
        .collect();
    let got = session.run(&[input])?;
    assert_close(&got[0].to_f32_vec(), &want_doubled, "after set_weight");
    bn.set_weight("gamma", HostTensor::new(&[f], gamma.clone())?)?;
    // Folded: the program has one convolution and nothing elementwise after it.
    let p = model.program();
    let last = &p.nodes[p.outputs[0]];
    assert_eq!(last.op.name(), "conv");

    // Alone on another axis (channels-first 3-D data).
    let bn2 = BatchNormalization::new().axis(1).center(false);
    let model = model_of(&[3, 2], &|t| bn2.call(t))?;
    bn2.set_weight("gamma", HostTensor::new(&[3], vec![1.0f32, 2.0, 3.0])?)?;
    bn2.set_weight(
        "moving_mean",
        HostTensor::new(&[3], vec![1.0f32, 0.0, -1.0])?,
    )?;
    bn2.set_weight(
        "moving_variance",
        HostTensor::new(&[3], vec![0.999f32, 3.999, 0.249])?,
    )?;
    let xs = HostTensor::new(&[1, 3, 2], vec![1.0f32, 3.0, 2.0, -2.0, 0.0, 1.0])?;
    let got = run_both(&model, &[xs]);
    assert_close(
        &got[0].to_f32_vec(),
        &[0.0, 2.0, 2.0, -2.0, 6.0, 12.0],
        "bn axis 1",
    );
    Ok(())
}

#[test]
fn save_load_round_trips_every_layer() -> Result<()> {
    use lamina::Predict;
    let x = Input::new(&[8, 8, 4]).tensor();
    let mut h = Conv2D::new(4, 3)
        .padding(Padding::Same)
        .groups(2)
        .activation("relu".parse()?)
        .call(&x)?;
    h = BatchNormalization::new().call(&h)?;
    h = DepthwiseConv2D::new(3).depth_multiplier(2).call(&h)?;
    h = SeparableConv2D::new(4, 2).call(&h)?;
    h = Conv2DTranspose::new(3, 3)
        .strides(2)
        .padding(Padding::Same)
        .call(&h)?;
    h = MaxPooling2D::new(2).call(&h)?;
    h = AveragePooling2D::new(3)
        .strides(1)
        .padding(Padding::Same)
        .call(&h)?;
    let g1 = GlobalAveragePooling2D::new().call(&h)?;
    let g2 = GlobalMaxPooling2D::new().keepdims(true).call(&h)?;
    let s = Reshape::new(&[-1, 3]).call(&h)?;
    let mut t = Conv1D::new(4, 2).padding(Padding::Causal).call(&s)?;
    t = SeparableConv1D::new(2, 3).padding(Padding::Same).call(&t)?;
    t = Conv1DTranspose::new(2, 2).strides(2).call(&t)?;
    t = MaxPooling1D::new(2).call(&t)?;
    t = AveragePooling1D::new(2).padding(Padding::Same).call(&t)?;
    let model = Model::new(&[x], &[g1, g2, t])?;
    let input = HostTensor::new(&[2, 8, 8, 4], values(2 * 8 * 8 * 4, 50))?;
    let before = model.predict(std::slice::from_ref(&input))?;
    let dir = std::env::temp_dir().join(format!("lamina-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Model {
        detail: e.to_string(),
    })?;
    let path = dir.join("cnn.lamina");
    model.save(&path)?;
    let loaded = Model::load(&path)?;
    let after = loaded.predict(std::slice::from_ref(&input))?;
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.to_f32_vec(), b.to_f32_vec());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn bad_configurations_name_the_layer() {
    let x = Input::new(&[4, 4, 3]).tensor();
    let err = |r: Result<Tensor>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let e = err(Conv2D::new(2, 5).name("too_big").call(&x));
    assert!(e.contains("too_big") && e.contains("larger"), "{e}");
    let e = err(Conv2D::new(4, 3).groups(2).name("bad_groups").call(&x));
    assert!(e.contains("bad_groups") && e.contains("groups"), "{e}");
    let e = err(Conv2D::new(0, 3).name("no_filters").call(&x));
    assert!(e.contains("no_filters"), "{e}");
    let e = err(Conv2D::new(2, 0).name("zero_kernel").call(&x));
    assert!(e.contains("zero_kernel"), "{e}");
    let e = err(Conv2D::new(2, 2)
        .strides(2)
        .dilation_rate(2)
        .name("sd")
        .call(&x));
    assert!(e.contains("sd"), "{e}");
    let e = err(Conv2D::new(2, 2)
        .padding(Padding::Causal)
        .name("causal2d")
        .call(&x));
    assert!(e.contains("causal2d"), "{e}");
    let e = err(MaxPooling2D::new(5).name("big_pool").call(&x));
    assert!(e.contains("big_pool"), "{e}");
    let e = err(Conv1D::new(2, 2).name("rank").call(&x));
    assert!(e.contains("rank"), "{e}");
    let e = err(Conv2DTranspose::new(2, 3)
        .strides(2)
        .output_padding(2)
        .name("op")
        .call(&x));
    assert!(e.contains("op") && e.contains("output_padding"), "{e}");
}

/// A convolution whose activation is pooled over time (the pooling's region must not compute
/// the convolution's rows itself: its output is one row per sequence), and a 1×1 convolution
/// of one filter used as a gate over every channel (its rows are shorter than the product's):
/// both against the definition.
#[test]
fn conv_pooled_over_time_and_a_one_filter_gate() -> Result<()> {
    let (n, l, c, f) = (3, 40, 7, 8);
    let x = values(n * l * c, 31);
    let conv = Conv1D::new(f, 3).activation(Activation::Relu);
    let model = model_of(&[l, c], &|t| {
        GlobalAveragePooling1D::new().call(&conv.call(t)?)
    })?;
    let k = values(3 * c * f, 32);
    let b = values(f, 33);
    conv.set_weight("kernel", HostTensor::new(&[3, c, f], k.clone())?)?;
    conv.set_weight("bias", HostTensor::new(&[f], b.clone())?)?;
    let ol = l - 2;
    let full = conv_ref(
        &x,
        [n, 1, l, c],
        &k,
        [1, 3, c, f],
        Some(&b),
        Ref::plain([0, 0]),
        [1, ol],
    );
    let mut want = vec![0f64; n * f];
    for s in 0..n {
        for t in 0..ol {
            for o in 0..f {
                want[s * f + o] += full[(s * ol + t) * f + o].max(0.0) / ol as f64;
            }
        }
    }
    let got = run_both(&model, &[HostTensor::new(&[n, l, c], x.clone())?]);
    assert_eq!(got[0].shape(), &[n, f]);
    assert_close(
        &got[0].to_f32_vec(),
        &want,
        "conv1d, relu, pooled over time",
    );

    // x * sigmoid(Conv2D(1, 1)(x)): one gate value per position, broadcast over 5 channels.
    let (h, w, c) = (6, 6, 5);
    let x2 = values(2 * h * w * c, 34);
    let gate = Conv2D::new(1, 1).activation(Activation::Sigmoid);
    let model = model_of(&[h, w, c], &|t| Ok(t * &gate.call(t)?))?;
    let k2 = values(c, 35);
    gate.set_weight("kernel", HostTensor::new(&[1, 1, c, 1], k2.clone())?)?;
    gate.set_weight("bias", HostTensor::new(&[1], vec![0.25])?)?;
    let want: Vec<f64> = (0..2 * h * w)
        .flat_map(|p| {
            let z: f64 = 0.25
                + (0..c)
                    .map(|i| x2[p * c + i] as f64 * k2[i] as f64)
                    .sum::<f64>();
            let g = 1.0 / (1.0 + (-z).exp());
            let x2 = &x2;
            (0..c).map(move |i| x2[p * c + i] as f64 * g)
        })
        .collect();
    let got = run_both(&model, &[HostTensor::new(&[2, h, w, c], x2.clone())?]);
    assert_close(&got[0].to_f32_vec(), &want, "a one-filter 1x1 gate");
    Ok(())
}
