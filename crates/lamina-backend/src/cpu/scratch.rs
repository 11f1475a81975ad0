//! Scratch buffers each thread keeps between tasks and runs. Rayon calls a parallel loop's
//! `for_each_init` once per split of the work, often once per task, and a fresh buffer is
//! cleared when it is first sized: for a convolution's patches or a region's slabs that
//! clearing took a tenth of the run.

use std::cell::RefCell;

/// The most floats a kept buffer may hold (4 MiB); a larger one, which only very large
/// convolutions need, is given back after use.
const KEPT_FLOATS: usize = 1 << 20;
/// The most buffers a thread keeps.
const KEPT_BUFFERS: usize = 8;

thread_local! {
    static BUFFERS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `N` of this thread's buffers (their contents are left from earlier uses:
/// callers size them with `resize` and write before reading), then keeps them for the next
/// call.
pub(super) fn with_buffers<const N: usize, R>(f: impl FnOnce(&mut [Vec<f32>; N]) -> R) -> R {
    let mut taken: [Vec<f32>; N] =
        BUFFERS.with_borrow_mut(|kept| std::array::from_fn(|_| kept.pop().unwrap_or_default()));
    let result = f(&mut taken);
    BUFFERS.with_borrow_mut(|kept| {
        for buffer in taken {
            if buffer.capacity() <= KEPT_FLOATS && kept.len() < KEPT_BUFFERS {
                kept.push(buffer);
            }
        }
    });
    result
}
