//! The saved records of the image layers (convolutions, windowed and global 2-D pooling,
//! batch normalisation), in one place for the saver and the loader.

use super::batch_normalization::BatchNormalization;
use super::conv::*;
use super::window_pooling::*;
use crate::error::Result;
use crate::layer::LayerRef;
use crate::saving::format::LayerRecord;
use std::sync::Arc;

/// The record of an image layer, or `None` for another type.
pub(crate) fn image_layer_record(any: &dyn std::any::Any, name: &str) -> Option<LayerRecord> {
    macro_rules! try_types {
        ($($ty:ident),*) => {
            $(if let Some(l) = any.downcast_ref::<$ty>() {
                return Some(l.record(name.to_string()));
            })*
        };
    }
    try_types!(
        Conv1D,
        Conv2D,
        DepthwiseConv2D,
        SeparableConv1D,
        SeparableConv2D,
        Conv1DTranspose,
        Conv2DTranspose,
        MaxPooling1D,
        MaxPooling2D,
        AveragePooling1D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        BatchNormalization
    );
    None
}

/// The image layer of a record, or `None` for another record.
pub(crate) fn image_layer_from_record(record: &LayerRecord) -> Result<Option<LayerRef>> {
    macro_rules! from {
        ($($ty:ident),*) => {
            match record {
                $(LayerRecord::$ty(r) => return Ok(Some(Arc::new($ty::from_record(r)?))),)*
                _ => {}
            }
        };
    }
    from!(
        Conv1D,
        Conv2D,
        DepthwiseConv2D,
        SeparableConv1D,
        SeparableConv2D,
        Conv1DTranspose,
        Conv2DTranspose,
        MaxPooling1D,
        MaxPooling2D,
        AveragePooling1D,
        AveragePooling2D,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        BatchNormalization
    );
    Ok(None)
}
