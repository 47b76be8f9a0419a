//! Retrying operations that failed because the connection broke.

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

use crate::Error;

/// When and how often to retry an operation that failed with a retryable error
/// ([`Error::is_retryable`], mainly [`Error::ConnectionLoss`]).
///
/// Exponential back-off with jitter (the `backoff` crate), bounded by a total time and
/// optionally a number of retries. The client applies its policy to idempotent operations
/// only (reads, `sync`, `who_am_i`, `add_auth`, `add_watch`, `multi_read`): a write whose
/// reply was lost may already have applied, so creates, deletes, sets and `multi` return
/// [`Error::ConnectionLoss`] to the caller, who knows whether running them twice is safe.
///
/// ```
/// use std::time::Duration;
/// use corral_client::RetryPolicy;
/// let policy = RetryPolicy::exponential(Duration::from_millis(50), Duration::from_secs(1))
///     .with_max_elapsed(Duration::from_secs(10))
///     .with_max_retries(20);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    initial: Duration,
    max_interval: Duration,
    multiplier: f64,
    randomization_factor: f64,
    max_elapsed: Duration,
    max_retries: Option<u32>,
}

impl Default for RetryPolicy {
    /// 100 ms doubling up to 2 s, ±50% jitter, for at most 15 s.
    fn default() -> Self {
        RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(2))
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: Some(0),
            ..RetryPolicy::default()
        }
    }

    /// Exponential back-off: the first retry after about `initial`, each delay doubling up
    /// to `max_interval`, ±50% jitter, giving up after 15 s in total.
    pub fn exponential(initial: Duration, max_interval: Duration) -> Self {
        RetryPolicy {
            initial,
            max_interval: max_interval.max(initial),
            multiplier: 2.0,
            randomization_factor: 0.5,
            max_elapsed: Duration::from_secs(15),
            max_retries: None,
        }
    }

    /// Gives up once this much time has passed since the first attempt.
    pub fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = max_elapsed;
        self
    }

    /// Gives up after this many retries.
    pub fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Sets the growth factor of the delay (at least 1).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier.max(1.0);
        self
    }

    /// Sets the jitter: each delay is drawn from `delay × [1 - factor, 1 + factor]`.
    pub fn with_randomization_factor(mut self, factor: f64) -> Self {
        self.randomization_factor = factor.clamp(0.0, 1.0);
        self
    }

    /// Whether this policy never retries.
    pub fn is_none(&self) -> bool {
        self.max_retries == Some(0)
    }

    /// A fresh schedule of delays, starting now.
    pub(crate) fn schedule(&self) -> RetrySchedule {
        let backoff = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(self.initial)
            .with_max_interval(self.max_interval)
            .with_multiplier(self.multiplier)
            .with_randomization_factor(self.randomization_factor)
            .with_max_elapsed_time(Some(self.max_elapsed))
            .build();
        RetrySchedule {
            backoff,
            retries_left: self.max_retries,
        }
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the policy gives
    /// up (then the last error is returned).
    ///
    /// Use it only for operations that are safe to repeat.
    ///
    /// # Errors
    ///
    /// The last error of `op`.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future stops retrying; an attempt already sent still runs.
    pub async fn retry<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut schedule = self.schedule();
        loop {
            match op().await {
                Err(e) if e.is_retryable() => match schedule.next_delay() {
                    Some(d) => tokio::time::sleep(d).await,
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}

/// The delays of one retried operation.
#[derive(Debug)]
pub(crate) struct RetrySchedule {
    backoff: ExponentialBackoff,
    retries_left: Option<u32>,
}

impl RetrySchedule {
    /// The delay before the next retry, or `None` to give up.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if let Some(n) = &mut self.retries_left {
            if *n == 0 {
                return None;
            }
            *n -= 1;
        }
        self.backoff.next_backoff()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn none_never_retries() {
        assert_eq!(RetryPolicy::none().schedule().next_delay(), None);
        assert!(RetryPolicy::none().is_none());
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::exponential(Duration::from_millis(10), Duration::from_millis(40))
            .with_randomization_factor(0.0)
            .with_max_retries(5);
        let mut s = p.schedule();
        let delays: Vec<_> = std::iter::from_fn(|| s.next_delay()).collect();
        let ms: Vec<_> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [10, 20, 40, 40, 40]);
    }

    #[tokio::test]
    async fn retry_stops_on_a_non_retryable_error() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::exponential(Duration::from_millis(1), Duration::from_millis(1));
        let r: Result<(), _> = p
            .retry(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(Error::ConnectionLoss)
                    } else {
                        Err(Error::NoNode)
                    }
                }
            })
            .await;
        assert_eq!(r, Err(Error::NoNode));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
