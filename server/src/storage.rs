//! The transaction log stage of the pipeline.
//!
//! The node loop hands batches of prepared transactions to [`Log::append`]; a transaction
//! is applied and answered only once the log reports it durable, either at once (the
//! in-memory log) or later through a [`LogEvent::Durable`] from the writer task.

use corral_proto::{Txn, TxnHeader};

/// What the log reports back to the node loop.
#[derive(Debug)]
pub enum LogEvent {
    /// Every transaction up to this zxid is durable.
    Durable(i64),
    /// The log can no longer write; the server must stop.
    Failed(String),
}

/// Where transactions go before they are applied.
#[derive(Debug, Default)]
pub enum Log {
    /// Keeps nothing: every batch is "durable" at once. For tests and ephemeral servers.
    #[default]
    Memory,
}

impl Log {
    /// Appends a batch in zxid order. Returns the zxid now durable when that is known at
    /// once; otherwise a [`LogEvent::Durable`] follows.
    pub fn append(&mut self, batch: Vec<(TxnHeader, Txn)>) -> Option<i64> {
        match self {
            Log::Memory => batch.last().map(|(h, _)| h.zxid),
        }
    }

    /// Flushes and stops the writer.
    pub async fn close(&mut self) {}
}
