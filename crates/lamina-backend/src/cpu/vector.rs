//! The interpreter's per-op loops over whole float tensors (ops that run outside a fused
//! region), compiled for the instruction set `isa::active` picks and spread over threads for
//! large tensors.

use super::isa::{self, Isa};
use super::math::{binary_slice, unary_slice};
use lamina_graph::op::{BinaryOp, UnaryOp};
use rayon::prelude::*;

/// Elements per task when a loop is spread over threads.
const CHUNK: usize = 1 << 15;

macro_rules! with_isa {
    ($name:ident, $avx512:ident, $avx2:ident, ($($arg:ident: $ty:ty),*), $body:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn $avx512($($arg: $ty),*) {
            $body
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2($($arg: $ty),*) {
            $body
        }

        fn $name($($arg: $ty),*) {
            match isa::active() {
                // SAFETY: `active` only reports an instruction set the CPU was found to have.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { $avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { $avx2($($arg),*) },
                _ => $body,
            }
        }
    };
}

with_isa!(unary_chunk, unary_avx512, unary_avx2, (op: UnaryOp, src: &[f32], dst: &mut [f32]), unary_slice(op, src, dst));
with_isa!(binary_chunk, binary_avx512, binary_avx2, (op: BinaryOp, a: &[f32], b: &[f32], dst: &mut [f32]), binary_slice(op, a, b, dst));

/// `op` of every element of `src` written to `dst` (of the same length), on this thread.
pub fn unary_into(op: UnaryOp, src: &[f32], dst: &mut [f32]) {
    unary_chunk(op, src, dst);
}

/// `op` of every element of `src` (a float op; the `is*` tests give 0 or 1).
pub fn unary(op: UnaryOp, src: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    if src.len() > 2 * CHUNK {
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| unary_chunk(op, s, o));
    } else {
        unary_chunk(op, src, &mut out);
    }
    out
}

/// `op` of `a` and `b` where each has `n` elements or one (broadcast).
pub fn binary(op: BinaryOp, a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    let part = |v: &[f32], i: usize, len: usize| -> std::ops::Range<usize> {
        if v.len() == 1 {
            0..1
        } else {
            i * CHUNK..i * CHUNK + len
        }
    };
    if n > 2 * CHUNK {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, o)| {
            let len = o.len();
            binary_chunk(op, &a[part(a, i, len)], &b[part(b, i, len)], o)
        });
    } else {
        binary_chunk(op, a, b, &mut out);
    }
    out
}
