//! The vector instruction set the interpreter's own loops run with, chosen once at run time
//! from what the CPU has (the build itself targets plain x86-64), and selectable for tests and
//! benchmarks that compare the paths.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the fused loops are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// The baseline: SSE2 on x86-64, whatever the target has elsewhere.
    Baseline,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F, VL, DQ and BW (x86-64-v4).
    Avx512,
}

impl Isa {
    /// Whether this CPU can run code compiled for the instruction set.
    pub fn supported(self) -> bool {
        match self {
            Isa::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.supported()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512dq")
                    && std::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The name `lamina bench` and `LAMINA_CPU_ISA` use: `baseline`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Option<Isa> {
        [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .find(|i| i.code() == c)
    }
}

/// 0 until chosen; then the code of the instruction set in use.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The widest instruction set this CPU supports, or the one `LAMINA_CPU_ISA` names when the
/// CPU supports it.
fn detect() -> Isa {
    let best = [Isa::Avx512, Isa::Avx2]
        .into_iter()
        .find(|i| i.supported())
        .unwrap_or(Isa::Baseline);
    match std::env::var("LAMINA_CPU_ISA").as_deref() {
        Ok("baseline") | Ok("sse2") => Isa::Baseline,
        Ok("avx2") if Isa::Avx2.supported() => Isa::Avx2,
        _ => best,
    }
}

/// The instruction set the interpreter's loops use now.
pub fn active() -> Isa {
    match Isa::from_code(ACTIVE.load(Ordering::Relaxed)) {
        Some(i) => i,
        None => {
            let i = detect();
            ACTIVE.store(i.code(), Ordering::Relaxed);
            i
        }
    }
}

/// Makes the interpreter's loops use `isa` from now on, in every thread; `false` (and no
/// change) when this CPU cannot run it. For tests and benchmarks that compare the paths.
pub fn force(isa: Isa) -> bool {
    if !isa.supported() {
        return false;
    }
    ACTIVE.store(isa.code(), Ordering::Relaxed);
    true
}

/// Calls `$f(args...)` built for the instruction set in use ([`active`]): the same code
/// compiled three times, with AVX-512 (F, VL, DQ, BW), with AVX2 and FMA, and for the
/// baseline, each vectorised by the compiler for its set. `$f` should be `#[inline(always)]`,
/// so that its loops are compiled into each copy. The arguments are given with their types,
/// e.g. `call_with_best_isa!(kernel_loop, (x: &[f32], out: &mut [f32]))`.
macro_rules! call_with_best_isa {
    ($f:path, ($($arg:ident: $ty:ty),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) {
            $f($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")]
        unsafe fn avx512($($arg: $ty),*) {
            $f($($arg),*)
        }
        match $crate::cpu::isa::active() {
            // SAFETY: `active` only reports an instruction set the CPU was found to have, and
            // each copy needs no more than the features it is compiled with.
            #[cfg(target_arch = "x86_64")]
            $crate::cpu::isa::Isa::Avx512 => unsafe { avx512($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            $crate::cpu::isa::Isa::Avx2 => unsafe { avx2($($arg),*) },
            _ => $f($($arg),*),
        }
    }};
}
pub(crate) use call_with_best_isa;
