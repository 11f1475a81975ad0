//! Sessions: a program bound to a backend, with compiled executables cached by input shapes.

use crate::backend::{Backend, Executable};
use crate::budget::MemoryBudget;
use crate::select::{BackendKind, create_backend};
use lamina_graph::{HostTensor, Program, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The concrete shapes of a program's inputs: the key of compiled executables.
type InputShapes = Vec<Vec<usize>>;

/// A program on a backend. Compiles once per set of input shapes; `Send + Sync`, so threads
/// may call `run` at once.
pub struct Session {
    program: Arc<Program>,
    backend: Arc<dyn Backend>,
    cache: Mutex<HashMap<InputShapes, Arc<dyn Executable>>>,
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
            cache: Mutex::new(HashMap::new()),
            budget: None,
        }
    }

    /// The same session with a memory budget for its compiled programs, in place of the
    /// default (`LAMINA_MEMORY_LIMIT`, else half the machine's memory). A run
    /// whose buffers would not fit is an `Error::Memory` naming the largest tensors.
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Session {
        self.budget = Some(budget);
        self.cache = Mutex::new(HashMap::new());
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
                .get(&key)
                .cloned();
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
