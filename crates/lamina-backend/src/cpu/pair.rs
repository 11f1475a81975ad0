//! A second thread for work too small for rayon's hand-off: a batch-1 product whose weights
//! are megabytes takes tens of microseconds, about what waking a sleeping rayon worker costs.
//! The helper spins for a while after each job (as ONNX Runtime's workers do), so that the
//! next one, a layer or a run later, starts within a microsecond; and it always takes the same
//! part of a job, so that each core keeps its part of the data in its own cache.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the helper spins after a job before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

/// How long a caller spins waiting for the helper to finish a job it has started, before it
/// yields its core between looks.
const WAIT_SPIN: Duration = Duration::from_micros(20);

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const FAILED: u8 = 4;

/// A job for the helper: a closure on the caller's stack, which the caller outlives by
/// waiting for the job to end.
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the closure is `Sync`, so calling it from the helper thread is sound; the pointer is
// only dereferenced while the caller waits (see `both`).
unsafe impl Send for Job {}

struct Helper {
    /// `IDLE`, `POSTED` (a job waits), `RUNNING` (the helper took it), `DONE` or `FAILED`
    /// (it ended, or panicked).
    state: AtomicU8,
    /// Held by the one caller using the helper; others run both parts themselves.
    taken: AtomicBool,
    /// The helper is asleep (or about to be) and must be woken for a job.
    sleeping: AtomicBool,
    job: Mutex<Option<Job>>,
    thread: Thread,
}

/// The helper thread, started on first use; `None` on a machine (or a rayon configuration)
/// with one thread, or where no thread can be started.
fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        if rayon::current_num_threads() < 2 {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel::<&'static Helper>();
        let spawned = std::thread::Builder::new()
            .name("lamina-cpu-pair".into())
            .spawn(move || {
                let h: &'static Helper = Box::leak(Box::new(Helper {
                    state: AtomicU8::new(IDLE),
                    taken: AtomicBool::new(false),
                    sleeping: AtomicBool::new(false),
                    job: Mutex::new(None),
                    thread: std::thread::current(),
                }));
                if tx.send(h).is_ok() {
                    serve(h);
                }
            });
        spawned.ok()?;
        rx.recv().ok()
    })
}

/// The helper's loop: spin for `SPIN` waiting for a job, then sleep until woken.
fn serve(h: &'static Helper) {
    loop {
        let idle_since = Instant::now();
        let mut spins = 0u32;
        while h.state.load(Ordering::Acquire) != POSTED {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && idle_since.elapsed() > SPIN {
                h.sleeping.store(true, Ordering::SeqCst);
                if h.state.load(Ordering::SeqCst) != POSTED {
                    std::thread::park();
                }
                h.sleeping.store(false, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        }
        // The caller takes its job back if it is done with its own part first.
        if h.state
            .compare_exchange(POSTED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        let job = h.job.lock().ok().and_then(|mut j| j.take());
        let ok = match job {
            // SAFETY: the caller that posted the job waits until `state` leaves `RUNNING`
            // (set below) before its closure goes out of scope.
            Some(Job(f)) => catch_unwind(AssertUnwindSafe(|| unsafe { (*f)() })).is_ok(),
            None => false,
        };
        h.state
            .store(if ok { DONE } else { FAILED }, Ordering::Release);
    }
}

/// How a posted job ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The helper had not started it: the caller took it back, to run it itself.
    TakenBack,
    Done,
    Failed,
}

/// Ends the caller's hold on the helper: takes the job back if the helper has not started it,
/// otherwise waits for it to end; then frees the helper for the next caller.
fn settle(h: &'static Helper) -> Outcome {
    let outcome = if h
        .state
        .compare_exchange(POSTED, IDLE, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        if let Ok(mut slot) = h.job.lock() {
            *slot = None;
        }
        Outcome::TakenBack
    } else {
        // The helper is running the job: spin while it should be about done, then give this
        // core away (the helper may be waiting for it) between looks. Time, not a count of
        // spins: a spin-loop hint takes from a few to 140 cycles depending on the CPU.
        let since = Instant::now();
        let mut spins = 0u32;
        loop {
            match h.state.load(Ordering::Acquire) {
                DONE => break Outcome::Done,
                FAILED => break Outcome::Failed,
                _ if spins < 64 || since.elapsed() < WAIT_SPIN => std::hint::spin_loop(),
                _ => std::thread::yield_now(),
            }
            spins = spins.saturating_add(1);
        }
    };
    h.state.store(IDLE, Ordering::Release);
    h.taken.store(false, Ordering::Release);
    outcome
}

/// Settles the helper (see [`settle`]) when dropped unsettled, so that the job's closure
/// outlives the helper's use of it even when the caller's own part panics.
struct Hold(Option<&'static Helper>);

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            settle(h);
        }
    }
}

/// Runs `mine` on this thread and `theirs` on the helper at the same time, and returns when
/// both have ended. Where the helper is in use by another caller (or there is none), or has
/// not started `theirs` by the time `mine` is done (it was asleep, or its core busy), runs
/// `theirs` here after `mine`. Panics if `theirs` panicked on the helper.
pub fn both(mine: impl FnOnce(), theirs: &(dyn Fn() + Sync)) {
    let Some(h) = helper() else {
        mine();
        theirs();
        return;
    };
    if h.taken
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        mine();
        theirs();
        return;
    }
    // SAFETY: only the lifetime is erased; `Hold` and `settle` below keep this frame (and `theirs`)
    // alive until the helper has finished with the pointer.
    let job: *const (dyn Fn() + Sync + 'static) =
        unsafe { std::mem::transmute(theirs as *const (dyn Fn() + Sync + '_)) };
    let posted = match h.job.lock() {
        Ok(mut slot) => {
            *slot = Some(Job(job));
            true
        }
        Err(_) => false,
    };
    if !posted {
        h.taken.store(false, Ordering::Release);
        mine();
        theirs();
        return;
    }
    h.state.store(POSTED, Ordering::SeqCst);
    if h.sleeping.load(Ordering::SeqCst) {
        h.thread.unpark();
    }
    let mut hold = Hold(Some(h));
    mine();
    hold.0 = None;
    match settle(h) {
        Outcome::TakenBack => theirs(),
        Outcome::Done => {}
        Outcome::Failed => {
            panic!("the CPU interpreter's helper thread panicked running its part of a job")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Both parts run, every time, also when calls come from several threads at once (the
    /// helper is taken by one; the others run both parts themselves).
    #[test]
    fn both_parts_run_from_many_threads() {
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        let mine = AtomicUsize::new(0);
                        let theirs = AtomicUsize::new(0);
                        both(
                            || {
                                mine.fetch_add(1, Ordering::Relaxed);
                            },
                            &|| {
                                theirs.fetch_add(1, Ordering::Relaxed);
                            },
                        );
                        assert_eq!(mine.load(Ordering::Relaxed), 1);
                        assert_eq!(theirs.load(Ordering::Relaxed), 1);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 8000);
    }

    /// The helper sleeps after `SPIN` without work and still takes the next job.
    #[test]
    fn the_helper_wakes_after_sleeping() {
        for _ in 0..3 {
            std::thread::sleep(SPIN * 5);
            let theirs = AtomicUsize::new(0);
            both(|| {}, &|| {
                theirs.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(theirs.load(Ordering::Relaxed), 1);
        }
    }
}
