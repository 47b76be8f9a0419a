//! Leader election: a [`LeaderLatch`] (Curator's `LeaderLatch`) that tells a participant
//! whether it leads, and a [`LeaderElection`] (Curator's `LeaderSelector`) that runs the
//! leader's work and relinquishes when it returns or leadership is lost.
//!
//! Both use Curator's node layouts (`<path>/_c_<uuid>-latch-<seq>` and
//! `<path>/_c_<uuid>-lock-<seq>`, data = the participant id), so Rust and Java participants
//! elect one leader among them. Both hand out a fencing token per term (the `czxid` of
//! the node that made us leader) and stop claiming leadership as soon as the connection
//! drops.
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::leader::{LeaderElection, LeaderLatch};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! let latch = LeaderLatch::start_with_id(client.clone(), "/app/latch", "a");
//! let term = latch.leadership().await?;
//! println!("leading with token {}", term.fencing_token());
//!
//! let election = LeaderElection::new(client, "/app/election")
//!     .with_id("a")
//!     .start(|ctx| async move { ctx.cancelled().await });
//! # drop(election);
//! # Ok(()) }
//! ```

mod election;
mod latch;
mod participant;
mod session;

pub use election::{Election, ElectionState, LeaderContext, LeaderElection};
pub use latch::{LatchState, LatchStateStream, LeaderLatch, Term};
pub use participant::Participant;
