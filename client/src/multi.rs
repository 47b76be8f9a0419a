//! Atomic multi-operations (`multi`) and batched reads (`multiRead`).

use std::future::Future;
use std::sync::Arc;

use corral_proto::{
    CheckVersionRequest, DeleteRequest, MultiResult, PathWatchRequest, Request, Response,
    SetDataRequest, Stat,
};

use crate::client::{unexpected, Client};
use crate::connect_string::Chroot;
use crate::{CreateOptions, Error};

/// The result of one operation of a successful [`MultiWriter::commit`], or of every
/// operation of a failed one (inside [`Error::MultiFailed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// A create: the actual path (with any sequence suffix) and the new node's Stat.
    Create {
        /// Path relative to the chroot.
        path: String,
        /// Stat of the new node.
        stat: Stat,
    },
    /// A set_data: the node's new Stat.
    SetData {
        /// The new Stat.
        stat: Stat,
    },
    /// A delete.
    Delete,
    /// A check.
    Check,
    /// In a failed multi: this operation failed (the first failing one).
    Error(Error),
    /// In a failed multi: this operation was not applied because another one failed.
    Aborted,
}

/// A builder of an atomic multi-operation: every operation applies, or none does.
///
/// Created by [`Client::multi`]. Operations run in the order added, each seeing the
/// effects of the previous ones.
///
/// ```no_run
/// # async fn f(client: corral_client::Client) -> Result<(), corral_client::Error> {
/// use corral_client::CreateOptions;
/// let results = client
///     .multi()
///     .check("/config", 3)
///     .create("/config/v4", b"...", &CreateOptions::persistent())
///     .set_data("/config", b"v4", Some(3))
///     .delete("/config/v3", None)
///     .commit()
///     .await?;
/// assert_eq!(results.len(), 4);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a multi does nothing until committed"]
pub struct MultiWriter {
    client: Client,
    ops: Vec<Request>,
    error: Option<Error>,
}

impl MultiWriter {
    pub(crate) fn new(client: Client) -> Self {
        MultiWriter {
            client,
            ops: Vec::new(),
            error: None,
        }
    }

    fn push(mut self, op: Result<Request, Error>) -> Self {
        match op {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Adds a check that the node at `path` has data version `version`.
    pub fn check(self, path: &str, version: i32) -> Self {
        let op = self
            .client
            .server_path(path, false)
            .map(|path| Request::Check(CheckVersionRequest { path, version }));
        self.push(op)
    }

    /// Adds a create (any mode, including container and TTL).
    pub fn create(self, path: &str, data: &[u8], options: &CreateOptions) -> Self {
        let op = self
            .client
            .server_path(path, options.mode().is_sequential())
            .and_then(|p| options.request(p, data));
        self.push(op)
    }

    /// Adds a set_data; `version` `None` matches any version.
    pub fn set_data(self, path: &str, data: &[u8], version: Option<i32>) -> Self {
        let op = self.client.server_path(path, false).map(|path| {
            Request::SetData(SetDataRequest {
                path,
                data: Some(data.to_vec()),
                version: version.unwrap_or(-1),
            })
        });
        self.push(op)
    }

    /// Adds a delete; `version` `None` matches any version.
    pub fn delete(self, path: &str, version: Option<i32>) -> Self {
        let op = self.client.server_path(path, false).map(|path| {
            Request::Delete(DeleteRequest {
                path,
                version: version.unwrap_or(-1),
            })
        });
        self.push(op)
    }

    /// Number of operations added.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Sends the multi (now, in call order with other operations) and returns a future of
    /// its results, one per operation in order. An empty multi succeeds without a round
    /// trip.
    ///
    /// # Errors
    ///
    /// [`Error::MultiFailed`] with the index and error of the first failing operation (and
    /// per-operation results) when an operation failed, in which case nothing was applied;
    /// [`Error::BadArguments`] for an invalid path; [`Error::ConnectionLoss`] when the reply
    /// was lost (the multi may or may not have applied; it is not retried).
    ///
    /// # Cancellation safety
    ///
    /// The multi is sent when `commit` is called; dropping the future does not cancel it.
    pub fn commit(self) -> impl Future<Output = Result<Vec<OpResult>, Error>> + Send + 'static {
        let chroot = self.client.chroot();
        let n = self.ops.len();
        let request = match self.error {
            Some(e) => Err(e),
            None => Ok(Request::Multi(self.ops)),
        };
        let empty = n == 0 && request.is_ok();
        let reply = (!empty).then(|| self.client.submit(request, false));
        async move {
            let Some(reply) = reply else {
                return Ok(Vec::new());
            };
            match reply.await? {
                Response::Multi(results) if results.len() == n => multi_results(results, &chroot),
                other => Err(unexpected(other)),
            }
        }
    }
}

fn multi_results(results: Vec<MultiResult>, chroot: &Arc<Chroot>) -> Result<Vec<OpResult>, Error> {
    let failed = results
        .iter()
        .position(|r| matches!(r, MultiResult::Error(code) if *code != 0 && *code != -2));
    if let Some(index) = failed {
        let results: Vec<OpResult> = results
            .into_iter()
            .map(|r| match r {
                MultiResult::Error(0 | -2) => OpResult::Aborted,
                MultiResult::Error(code) => OpResult::Error(Error::from_code(code)),
                // A failed multi carries only error results; anything else was not applied.
                _ => OpResult::Aborted,
            })
            .collect();
        let OpResult::Error(source) = results[index].clone() else {
            unreachable!("the failing result is an error")
        };
        return Err(Error::MultiFailed {
            index,
            source: Box::new(source),
            results,
        });
    }
    results
        .into_iter()
        .map(|r| {
            Ok(match r {
                MultiResult::Create2(c) => OpResult::Create {
                    path: chroot.strip(&c.path),
                    stat: c.stat,
                },
                MultiResult::Create(path) => OpResult::Create {
                    path: chroot.strip(&path),
                    stat: Stat::default(),
                },
                MultiResult::SetData(stat) => OpResult::SetData { stat },
                MultiResult::Delete => OpResult::Delete,
                MultiResult::Check => OpResult::Check,
                other => return Err(unexpected(Response::Multi(vec![other]))),
            })
        })
        .collect()
}

/// The result of one read of a [`MultiReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    /// A get_data: the data and Stat.
    Data {
        /// The node's data (empty for null data).
        data: Vec<u8>,
        /// The node's Stat.
        stat: Stat,
    },
    /// A get_children: the child names (unordered).
    Children(Vec<String>),
    /// This read failed (the others still ran).
    Error(Error),
}

/// A batch of reads sent as one request (`multiRead`, ZooKeeper 3.6+).
///
/// Unlike [`MultiWriter`], the reads are independent: one failing does not stop the others.
/// Created by [`Client::multi_read`].
#[derive(Debug)]
#[must_use = "a multi_read does nothing until executed"]
pub struct MultiReader {
    client: Client,
    ops: Vec<Request>,
    error: Option<Error>,
}

impl MultiReader {
    pub(crate) fn new(client: Client) -> Self {
        MultiReader {
            client,
            ops: Vec::new(),
            error: None,
        }
    }

    fn push(mut self, op: Result<Request, Error>) -> Self {
        match op {
            Ok(op) => self.ops.push(op),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Adds a get_data.
    pub fn get_data(self, path: &str) -> Self {
        let op = self
            .client
            .server_path(path, false)
            .map(|path| Request::GetData(PathWatchRequest { path, watch: false }));
        self.push(op)
    }

    /// Adds a get_children.
    pub fn get_children(self, path: &str) -> Self {
        let op = self
            .client
            .server_path(path, false)
            .map(|path| Request::GetChildren(PathWatchRequest { path, watch: false }));
        self.push(op)
    }

    /// Number of reads added.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no read was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Sends the reads (now) and returns a future of one result per read, in order.
    /// Retried on connection loss per the client's [`crate::RetryPolicy`].
    ///
    /// # Errors
    ///
    /// Per-read failures are [`ReadResult::Error`]; the call itself fails only for invalid
    /// paths, a lost connection or a closed client.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: the reads change nothing.
    pub fn execute(self) -> impl Future<Output = Result<Vec<ReadResult>, Error>> + Send + 'static {
        let n = self.ops.len();
        let request = match self.error {
            Some(e) => Err(e),
            None => Ok(Request::MultiRead(self.ops)),
        };
        let empty = n == 0 && request.is_ok();
        let reply = (!empty).then(|| self.client.submit(request, true));
        async move {
            let Some(reply) = reply else {
                return Ok(Vec::new());
            };
            match reply.await? {
                Response::Multi(results) if results.len() == n => results
                    .into_iter()
                    .map(|r| {
                        Ok(match r {
                            MultiResult::GetData(g) => ReadResult::Data {
                                data: g.data.unwrap_or_default(),
                                stat: g.stat,
                            },
                            MultiResult::GetChildren(c) => ReadResult::Children(c),
                            MultiResult::Error(code) => ReadResult::Error(Error::from_code(code)),
                            other => return Err(unexpected(Response::Multi(vec![other]))),
                        })
                    })
                    .collect(),
                other => Err(unexpected(other)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::Create2Response;

    #[test]
    fn failed_multi_reports_the_first_failing_operation() {
        let chroot = Arc::new(Chroot::default());
        let err = multi_results(
            vec![
                MultiResult::Error(0),
                MultiResult::Error(-103),
                MultiResult::Error(-2),
            ],
            &chroot,
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::MultiFailed {
                index: 1,
                source: Box::new(Error::BadVersion),
                results: vec![
                    OpResult::Aborted,
                    OpResult::Error(Error::BadVersion),
                    OpResult::Aborted
                ],
            }
        );
    }

    #[test]
    fn successful_multi_strips_the_chroot_from_created_paths() {
        let cs: crate::ConnectString = "h/app".parse().unwrap();
        let (_, chroot) = cs.into_parts();
        let ok = multi_results(
            vec![
                MultiResult::Create2(Create2Response {
                    path: "/app/x".into(),
                    stat: Stat::default(),
                }),
                MultiResult::Check,
            ],
            &Arc::new(chroot),
        )
        .unwrap();
        assert_eq!(
            ok,
            vec![
                OpResult::Create {
                    path: "/x".into(),
                    stat: Stat::default()
                },
                OpResult::Check
            ]
        );
    }
}
