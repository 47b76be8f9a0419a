//! corral-recipes: Curator-style coordination recipes on [`corral_client`].
//!
//! Each recipe is a small state machine over the client: it creates its nodes, reads, and
//! waits on exactly the watch it needs. Handles are RAII: dropping a guard releases what it
//! holds, and cancelling an operation at any await point leaves no node behind. Where
//! Curator has the same recipe, the node layout is Curator's, so a Rust process and a Java
//! process can share one lock. Dependency direction: `recipes → client → proto`.
//!
//! ```text
//!   Mutex / RwLock / Semaphore / SimpleLock      (lock::*)
//!        │ acquire()                ▲ guard: is_held(), fencing_token(), not_held()
//!        ▼                          │
//!   sequential queue ── protected create, sort by sequence, watch one node (lock::common)
//!        │                          │
//!        ▼                          │ hold monitor: session states + own-node watch
//!   corral_client::Client ──────────┘
//! ```
//!
//! Recipes so far: [`lock::Mutex`] (Curator `InterProcessMutex`), [`lock::RwLock`]
//! (`InterProcessReadWriteLock`), [`lock::Semaphore`] (`InterProcessSemaphoreV2`) and
//! [`lock::SimpleLock`] (a herd-prone lock, for contrast).
//!
//! # Example
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::lock::Mutex;
//!
//! # async fn run() -> Result<(), corral_recipes::RecipeError> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! let mutex = Mutex::new(client.clone(), "/locks/report");
//! let guard = mutex.acquire().await?;
//! println!("held with fencing token {}", guard.fencing_token());
//! drop(guard); // released in the background
//! # Ok(()) }
//! ```

pub mod cache;
pub mod discovery;
mod error;
pub mod group;
pub mod lock;
pub mod persistent_node;

pub mod barrier;
pub mod counter;
pub mod leader;
pub mod queue;
pub mod sequence;

pub use error::RecipeError;
