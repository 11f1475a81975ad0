//! Sessions: a program bound to a backend, with compiled executables cached by input shapes.

use crate::backend::{Backend, Executable};
use crate::budget::MemoryBudget;
use crate::select::{BackendKind, create_backend};
use lamina_graph::{HostTensor, Program, Result};
use std::sync::{Arc, Mutex};

/// The concrete shapes of a program's inputs: the key of compiled executables.
type InputShapes = Vec<Vec<usize>>;

/// How many compiled executables a session keeps: a model fed many sequence lengths compiles
/// one per length, and the least recently used are dropped past this many.
pub const MAX_CACHED_EXECUTABLES: usize = 64;

/// Compiled executables by input shapes, least recently used first.
#[derive(Default)]
struct ExecutableCache {
    entries: Vec<(InputShapes, Arc<dyn Executable>)>,
}

impl ExecutableCache {
    /// The executable for `key`, now the most recently used.
    fn get(&mut self, key: &InputShapes) -> Option<Arc<dyn Executable>> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(at);
        let exe = entry.1.clone();
        self.entries.push(entry);
        Some(exe)
    }

    /// Keeps `exe` for `key`, dropping the least recently used past the bound.
    fn insert(&mut self, key: InputShapes, exe: Arc<dyn Executable>) {
        self.entries.retain(|(k, _)| *k != key);
        if self.entries.len() >= MAX_CACHED_EXECUTABLES {
            self.entries.remove(0);
        }
        self.entries.push((key, exe));
    }
}

/// A program on a backend. Compiles once per set of input shapes (keeping the last
/// [`MAX_CACHED_EXECUTABLES`]); `Send + Sync`, so threads may call `run` at once.
pub struct Session {
    program: Arc<Program>,
    backend: Arc<dyn Backend>,
    cache: Mutex<ExecutableCache>,
    /// The memory budget of each compile; `None` reads `LAMINA_MEMORY_LIMIT` or the machine's
    /// memory when a compile needs it.
    budget: Option<MemoryBudget>,
}

impl Session {
    /// A session on the backend chosen by `kind`.
    pub fn new(program: Arc<Program>, kind: BackendKind) -> Result<Session> {
        Ok(Session::with_backend(program, create_backend(kind)?))
    }

    /// A session on a given backend.
    pub fn with_backend(program: Arc<Program>, backend: Arc<dyn Backend>) -> Session {
        Session {
            program,
            backend,
            cache: Mutex::new(ExecutableCache::default()),
            budget: None,
        }
    }

    /// The same session with a memory budget for its compiled programs, in place of the
    /// default (`LAMINA_MEMORY_LIMIT`, else half the machine's memory). A run
    /// whose buffers would not fit is an `Error::Memory` naming the largest tensors.
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Session {
        self.budget = Some(budget);
        self.cache = Mutex::new(ExecutableCache::default());
        self
    }

    /// The backend's counters (dispatches, compiles, cache hits, bytes moved).
    pub fn stats(&self) -> crate::backend::RunStats {
        self.backend.stats()
    }

    /// The backend's name.
    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    /// Runs the program on host inputs (checked for count, dtype and shape first).
    pub fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        self.executable(inputs)?.run(inputs)
    }

    /// Runs the program, reading results back asynchronously where the backend can (the GPU):
    /// the future polls the device instead of blocking a thread on it.
    pub async fn run_async(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let exe = self.executable(inputs)?;
        exe.run_async(inputs).await
    }

    /// For benchmarks: the kernels of the last inputs of these shapes run again on the device,
    /// without upload or read-back (`None` on the CPU).
    pub fn run_on_device(&self, inputs: &[HostTensor]) -> Option<Result<()>> {
        match self.executable(inputs) {
            Ok(exe) => exe.run_on_device(),
            Err(e) => Some(Err(e)),
        }
    }

    /// The executable for these inputs' shapes, compiled on first use.
    fn executable(&self, inputs: &[HostTensor]) -> Result<Arc<dyn Executable>> {
        self.program.check_inputs(inputs)?;
        let key: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let exe = {
            let cached = self
                .cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key);
            match cached {
                Some(e) => e,
                None => {
                    let budget = match self.budget {
                        Some(b) => b,
                        None => MemoryBudget::from_env_or_machine()?,
                    };
                    let e = self.backend.compile(&self.program, &key, &budget)?;
                    self.cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, e.clone());
                    e
                }
            }
        };
        Ok(exe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_graph::shape::{Dim, Shape};
    use lamina_graph::{DType, Tensor};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend that counts compiles and returns its inputs.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    struct Echo;

    impl Executable for Echo {
        fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
            Ok(inputs.to_vec())
        }
    }

    impl Backend for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        fn compile(
            &self,
            _: &Arc<Program>,
            _: &[Vec<usize>],
            _: &MemoryBudget,
        ) -> Result<Arc<dyn Executable>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Arc::new(Echo))
        }
    }

    #[test]
    fn keeps_the_most_recently_used_executables() -> Result<()> {
        let x = Tensor::input("x", Shape::new([Dim::Dynamic]), DType::F32);
        let program = Arc::new(Program::from_tensors(
            std::slice::from_ref(&x),
            std::slice::from_ref(&x),
        )?);
        let backend = Arc::new(Counting::default());
        let session = Session::with_backend(program, backend.clone())
            .with_memory_budget(MemoryBudget::bytes(1 << 20));
        let run = |n: usize| session.run(&[HostTensor::new(&[n], vec![0f32; n]).unwrap()]);
        let compiles = || backend.0.load(Ordering::Relaxed);
        for n in 1..=MAX_CACHED_EXECUTABLES {
            run(n)?;
        }
        assert_eq!(compiles(), MAX_CACHED_EXECUTABLES);
        run(1)?; // cached, and now the most recent
        assert_eq!(compiles(), MAX_CACHED_EXECUTABLES);
        run(MAX_CACHED_EXECUTABLES + 1)?; // evicts length 2, the least recently used
        run(1)?;
        assert_eq!(compiles(), MAX_CACHED_EXECUTABLES + 1);
        run(2)?;
        assert_eq!(compiles(), MAX_CACHED_EXECUTABLES + 2);
        Ok(())
    }
}
