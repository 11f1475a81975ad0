//! Keras's application CNNs built in Rust with their architectures (`keras.applications`,
//! 224x224 inputs, 1,000 classes, random weights from fixed seeds): `mobilenet_v2` (alpha 1.0),
//! `resnet50` and `efficientnet_b0` (without its input Rescaling and Normalization, which are
//! elementwise). The benchmark workloads of real CNNs.

use crate::Result;
use lamina_graph::{
    Activation, ActivationLayer, Add, BatchNormalization, Conv2D, Dense, DepthwiseConv2D,
    GlobalAveragePooling2D, Input, Layer, MaxPooling2D, Model, Multiply, Padding, ReLU, Tensor,
    ZeroPadding2D,
};

/// Seeds for the layers' weights, one per layer, in order.
struct Seeds(u64);

impl Seeds {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Keras's `imagenet_utils.correct_pad`: the zero padding before a strided `kernel` x `kernel`
/// convolution over a `size` x `size` input, so that it reads as `same` padding does on TPUs.
fn correct_pad(size: usize, kernel: usize) -> [(i64, i64); 2] {
    let c = (kernel / 2) as i64;
    let adjust = 1 - (size % 2) as i64;
    [(c - adjust, c), (c - adjust, c)]
}

/// An activation layer applied to a tensor.
type ActivationFn = dyn Fn(&Tensor) -> Result<Tensor>;

/// Convolution (no bias), BatchNormalization, then `activation` where given.
fn conv_bn(x: &Tensor, conv: Conv2D, activation: Option<&ActivationFn>) -> Result<Tensor> {
    let h = conv.use_bias(false).call(x)?;
    let h = BatchNormalization::new().epsilon(1e-3).call(&h)?;
    match activation {
        Some(f) => f(&h),
        None => Ok(h),
    }
}

fn relu6(x: &Tensor) -> Result<Tensor> {
    ReLU::new().max_value(6.0).call(x)
}

fn relu(x: &Tensor) -> Result<Tensor> {
    ReLU::new().call(x)
}

fn swish(x: &Tensor) -> Result<Tensor> {
    ActivationLayer::new(Activation::Silu).call(x)
}

/// The spatial size of `x` (square images).
fn side(x: &Tensor) -> usize {
    x.shape().dims()[1].known().unwrap_or(1)
}

fn channels(x: &Tensor) -> usize {
    x.shape().dims().last().and_then(|d| d.known()).unwrap_or(1)
}

/// The classifier head: global average pooling and `Dense(1000, softmax)`.
fn head(x: &Tensor, seeds: &mut Seeds) -> Result<Tensor> {
    let h = GlobalAveragePooling2D::new().call(x)?;
    Dense::new(1000)
        .activation(Activation::Softmax)
        .seed(seeds.next())
        .call(&h)
}

/// A depthwise convolution of `kernel`, strided by 2 through Keras's explicit padding.
fn depthwise(x: &Tensor, kernel: usize, stride: usize, seeds: &mut Seeds) -> Result<Tensor> {
    let layer = DepthwiseConv2D::new(kernel)
        .use_bias(false)
        .seed(seeds.next());
    if stride == 2 {
        let padded = ZeroPadding2D::asymmetric(correct_pad(side(x), kernel)).call(x)?;
        layer.strides(2).call(&padded)
    } else {
        layer.padding(Padding::Same).call(x)
    }
}

/// `keras.applications.MobileNetV2(alpha=1.0)`: a strided stem, 17 inverted residual blocks
/// (1x1 expansion, 3x3 depthwise, 1x1 projection, relu6, residual where shapes allow), a 1x1
/// convolution to 1,280 channels and the classifier.
pub fn mobilenet_v2_model() -> Result<Model> {
    let mut seeds = Seeds(100);
    let x = Input::new(&[224, 224, 3]).tensor();
    let stem = Conv2D::new(32, 3)
        .strides(2)
        .padding(Padding::Same)
        .seed(seeds.next());
    let mut h = conv_bn(&x, stem, Some(&relu6))?;
    // (expansion, filters, stride, repeats)
    let stages = [
        (1usize, 16usize, 1usize, 1usize),
        (6, 24, 2, 2),
        (6, 32, 2, 3),
        (6, 64, 2, 4),
        (6, 96, 1, 3),
        (6, 160, 2, 3),
        (6, 320, 1, 1),
    ];
    for (expansion, filters, stride, repeats) in stages {
        for r in 0..repeats {
            let stride = if r == 0 { stride } else { 1 };
            let input = h.clone();
            let cin = channels(&input);
            if expansion != 1 {
                let expand = Conv2D::new(cin * expansion, 1).seed(seeds.next());
                h = conv_bn(&h, expand, Some(&relu6))?;
            }
            h = depthwise(&h, 3, stride, &mut seeds)?;
            h = relu6(&BatchNormalization::new().epsilon(1e-3).call(&h)?)?;
            h = conv_bn(&h, Conv2D::new(filters, 1).seed(seeds.next()), None)?;
            if stride == 1 && cin == filters {
                h = Add::new().call([&input, &h])?;
            }
        }
    }
    h = conv_bn(&h, Conv2D::new(1280, 1).seed(seeds.next()), Some(&relu6))?;
    let y = head(&h, &mut seeds)?;
    Model::new(&[x], &[y])
}

/// `keras.applications.ResNet50`: a 7x7 strided stem with max pooling, then 3, 4, 6 and 3
/// bottleneck blocks of 64, 128, 256 and 512 filters (1x1, 3x3, 1x1 to four times as many,
/// projection shortcuts where the shape changes), and the classifier.
pub fn resnet50_model() -> Result<Model> {
    let mut seeds = Seeds(200);
    let x = Input::new(&[224, 224, 3]).tensor();
    let h = ZeroPadding2D::new(3).call(&x)?;
    let h = Conv2D::new(64, 7).strides(2).seed(seeds.next()).call(&h)?;
    let h = relu(&BatchNormalization::new().epsilon(1.001e-5).call(&h)?)?;
    let h = ZeroPadding2D::new(1).call(&h)?;
    let mut h = MaxPooling2D::new(3).strides(2).call(&h)?;
    let bn = || BatchNormalization::new().epsilon(1.001e-5);
    for (filters, blocks, first_stride) in [
        (64usize, 3usize, 1usize),
        (128, 4, 2),
        (256, 6, 2),
        (512, 3, 2),
    ] {
        for b in 0..blocks {
            let stride = if b == 0 { first_stride } else { 1 };
            let shortcut = if b == 0 {
                let s = Conv2D::new(4 * filters, 1)
                    .strides(stride)
                    .seed(seeds.next())
                    .call(&h)?;
                bn().call(&s)?
            } else {
                h.clone()
            };
            let r = Conv2D::new(filters, 1)
                .strides(stride)
                .seed(seeds.next())
                .call(&h)?;
            let r = relu(&bn().call(&r)?)?;
            let r = Conv2D::new(filters, 3)
                .padding(Padding::Same)
                .seed(seeds.next())
                .call(&r)?;
            let r = relu(&bn().call(&r)?)?;
            let r = Conv2D::new(4 * filters, 1).seed(seeds.next()).call(&r)?;
            let r = bn().call(&r)?;
            h = relu(&Add::new().call([&shortcut, &r])?)?;
        }
    }
    let y = head(&h, &mut seeds)?;
    Model::new(&[x], &[y])
}

/// `keras.applications.EfficientNetB0` (its input Rescaling and Normalization left out): a
/// strided stem, 16 MBConv blocks (1x1 expansion, depthwise 3x3 or 5x5, squeeze-and-excitation
/// at a quarter of the block's input channels, 1x1 projection, swish, residual where shapes
/// allow), a 1x1 convolution to 1,280 channels and the classifier.
pub fn efficientnet_b0_model() -> Result<Model> {
    let mut seeds = Seeds(300);
    let x = Input::new(&[224, 224, 3]).tensor();
    let padded = ZeroPadding2D::asymmetric(correct_pad(224, 3)).call(&x)?;
    let stem = Conv2D::new(32, 3).strides(2).seed(seeds.next());
    let mut h = conv_bn(&padded, stem, Some(&swish))?;
    // (kernel, repeats, filters out, expansion, stride)
    let stages = [
        (3usize, 1usize, 16usize, 1usize, 1usize),
        (3, 2, 24, 6, 2),
        (5, 2, 40, 6, 2),
        (3, 3, 80, 6, 2),
        (5, 3, 112, 6, 1),
        (5, 4, 192, 6, 2),
        (3, 1, 320, 6, 1),
    ];
    for (kernel, repeats, filters, expansion, stride) in stages {
        for r in 0..repeats {
            let stride = if r == 0 { stride } else { 1 };
            let input = h.clone();
            let cin = channels(&input);
            let expanded = cin * expansion;
            if expansion != 1 {
                let expand = Conv2D::new(expanded, 1).seed(seeds.next());
                h = conv_bn(&h, expand, Some(&swish))?;
            }
            h = depthwise(&h, kernel, stride, &mut seeds)?;
            h = swish(&BatchNormalization::new().epsilon(1e-3).call(&h)?)?;
            let squeeze = (cin / 4).max(1);
            let se = GlobalAveragePooling2D::new().keepdims(true).call(&h)?;
            let se = Conv2D::new(squeeze, 1)
                .activation(Activation::Silu)
                .seed(seeds.next())
                .call(&se)?;
            let se = Conv2D::new(expanded, 1)
                .activation(Activation::Sigmoid)
                .seed(seeds.next())
                .call(&se)?;
            h = Multiply::new().call([&h, &se])?;
            h = conv_bn(&h, Conv2D::new(filters, 1).seed(seeds.next()), None)?;
            if stride == 1 && cin == filters {
                h = Add::new().call([&input, &h])?;
            }
        }
    }
    h = conv_bn(&h, Conv2D::new(1280, 1).seed(seeds.next()), Some(&swish))?;
    let y = head(&h, &mut seeds)?;
    Model::new(&[x], &[y])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keras's parameter counts for these architectures (`model.count_params()` with
    /// `weights=None`; EfficientNetB0 without its 7 Normalization weights).
    #[test]
    fn the_architectures_have_keras_parameter_counts() -> Result<()> {
        let count = |m: &Model| m.count_params();
        assert_eq!(count(&mobilenet_v2_model()?), 3_538_984);
        assert_eq!(count(&resnet50_model()?), 25_636_712);
        assert_eq!(count(&efficientnet_b0_model()?), 5_330_564);
        Ok(())
    }
}
