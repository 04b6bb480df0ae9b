//! When to try a request again: a policy as plain data and one pure function that decides,
//! so the rules are unit-tested without a network.
//!
//! Retried: idempotent requests (GET, HEAD, and the PUT of a manifest) after connection
//! errors, resets, timeouts and the statuses 408, 429, 500, 502, 503 and 504. A request on
//! an upload session is never replayed: the whole upload starts over from a fresh `POST`,
//! under this same policy. Waits grow exponentially with full jitter, and a `Retry-After` from the
//! registry or its token server (seconds or an HTTP date) is honoured up to a cap, also when
//! the answer that carried it became an error first ([`crate::Error::retry_after`]).

use std::time::{Duration, SystemTime};

/// How hard to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The first backoff step; step n waits up to `base_delay * 2^(n-1)`.
    pub base_delay: Duration,
    /// The largest backoff step.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured: a registry asking for more is waited on for this
    /// long (so a typo on its side cannot park a build for an hour).
    pub max_wait: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }
}

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The registry answered with this status and maybe a `Retry-After` wait.
    Status {
        /// The HTTP status.
        status: u16,
        /// The wait the registry asked for.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, timeout, broken body.
    Transport,
    /// A failure no retry can fix (bad request built locally, refused redirect…).
    Fatal,
}

impl Attempt {
    /// How an operation that failed with `error` ended: for retries of a whole operation
    /// (an upload started over), or of a request that failed before it went out (its token
    /// request), rather than of one answer. An error status keeps the server's `Retry-After`.
    pub(crate) fn of(error: &crate::error::Error) -> Attempt {
        match error.status() {
            Some(status) => Attempt::Status {
                status,
                retry_after: error.retry_after(),
            },
            None if error.is_retryable() => Attempt::Transport,
            None => Attempt::Fatal,
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop: return this attempt's outcome.
    GiveUp,
}

/// Decides whether attempt number `attempt` (1-based), which ended as `outcome`, is followed
/// by another. `elapsed` is the time since the first attempt started; `jitter` in `[0, 1]`
/// picks the wait within the backoff step (full jitter), supplied by the caller so this
/// function stays pure.
pub fn decide(
    policy: &RetryPolicy,
    attempt: u32,
    elapsed: Duration,
    idempotent: bool,
    outcome: Attempt,
    jitter: f64,
) -> Decision {
    if !idempotent || attempt >= policy.max_attempts || elapsed >= policy.max_total {
        return Decision::GiveUp;
    }
    let retry_after = match outcome {
        Attempt::Status {
            status,
            retry_after,
        } if is_retryable_status(status) => retry_after,
        Attempt::Transport => None,
        Attempt::Status { .. } | Attempt::Fatal => return Decision::GiveUp,
    };
    let wait = match retry_after {
        Some(asked) => asked.min(policy.max_wait),
        None => {
            let exponent = attempt.saturating_sub(1).min(20);
            let step = policy
                .base_delay
                .saturating_mul(1u32 << exponent)
                .min(policy.max_backoff);
            // A step near `Duration::MAX` (a policy with no cap) does not survive the round
            // trip through f64; it is waited in full rather than panicking.
            Duration::try_from_secs_f64(step.as_secs_f64() * jitter.clamp(0.0, 1.0))
                .unwrap_or(step)
                .min(step)
        }
    };
    // Saturating: a policy without caps (`Duration::MAX`) meeting a registry that asks for
    // the longest wait it can write must not overflow.
    if elapsed.saturating_add(wait) > policy.max_total {
        return Decision::GiveUp;
    }
    Decision::RetryAfter(wait)
}

/// The statuses that say "try again later".
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
/// A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Attempt {
        Attempt::Status {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn retries_only_what_can_heal() {
        let p = RetryPolicy::default();
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    decide(&p, 1, Duration::ZERO, true, status(code), 1.0),
                    Decision::RetryAfter(_)
                ),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 405, 416, 501] {
            assert_eq!(
                decide(&p, 1, Duration::ZERO, true, status(code), 1.0),
                Decision::GiveUp,
                "{code}"
            );
        }
        assert!(matches!(
            decide(&p, 1, Duration::ZERO, true, Attempt::Transport, 1.0),
            Decision::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, 1, Duration::ZERO, true, Attempt::Fatal, 1.0),
            Decision::GiveUp
        );
        assert_eq!(
            decide(&p, 1, Duration::ZERO, false, Attempt::Transport, 1.0),
            Decision::GiveUp
        );
    }

    #[test]
    fn attempts_and_total_time_are_bounded() {
        let p = RetryPolicy::default();
        assert!(matches!(
            decide(&p, 4, Duration::ZERO, true, Attempt::Transport, 0.5),
            Decision::RetryAfter(_)
        ));
        assert_eq!(
            decide(&p, 5, Duration::ZERO, true, Attempt::Transport, 0.5),
            Decision::GiveUp
        );
        assert_eq!(
            decide(&p, 1, p.max_total, true, Attempt::Transport, 0.5),
            Decision::GiveUp
        );
        assert_eq!(
            decide(
                &RetryPolicy::never(),
                1,
                Duration::ZERO,
                true,
                Attempt::Transport,
                0.5
            ),
            Decision::GiveUp
        );
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter() {
        let p = RetryPolicy::default();
        let wait = |attempt, jitter| match decide(
            &p,
            attempt,
            Duration::ZERO,
            true,
            Attempt::Transport,
            jitter,
        ) {
            Decision::RetryAfter(d) => d,
            Decision::GiveUp => panic!("gave up"),
        };
        assert_eq!(wait(1, 1.0), Duration::from_millis(250));
        assert_eq!(wait(2, 1.0), Duration::from_millis(500));
        assert_eq!(wait(3, 1.0), Duration::from_millis(1000));
        assert_eq!(wait(3, 0.5), Duration::from_millis(500));
        assert_eq!(wait(1, 0.0), Duration::ZERO);
        let capped = RetryPolicy {
            max_attempts: 30,
            ..p
        };
        assert_eq!(
            decide(&capped, 25, Duration::ZERO, true, Attempt::Transport, 1.0),
            Decision::RetryAfter(p.max_backoff)
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        let asked = |secs| Attempt::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            decide(&p, 1, Duration::ZERO, true, asked(1), 0.0),
            Decision::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            decide(&p, 1, Duration::ZERO, true, asked(3600), 0.0),
            Decision::RetryAfter(p.max_wait)
        );
        // A wait that would run past the total budget is not started.
        assert_eq!(
            decide(&p, 1, Duration::from_secs(290), true, asked(30), 0.0),
            Decision::GiveUp
        );
    }

    #[test]
    fn a_policy_without_caps_never_overflows() {
        // "Honour any Retry-After" within the default total budget, against a registry
        // asking for the longest wait it can write: too long to start, not a panic.
        let any_wait = RetryPolicy {
            max_wait: Duration::MAX,
            ..RetryPolicy::default()
        };
        let asked = Attempt::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(u64::MAX)),
        };
        let elapsed = Duration::from_secs(1);
        assert_eq!(
            decide(&any_wait, 1, elapsed, true, asked, 0.5),
            Decision::GiveUp
        );
        let uncapped = RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::MAX,
            max_backoff: Duration::MAX,
            max_wait: Duration::MAX,
            max_total: Duration::MAX,
        };
        assert_eq!(
            decide(&uncapped, 1, elapsed, true, asked, 0.5),
            Decision::RetryAfter(Duration::from_secs(u64::MAX))
        );
        for jitter in [0.25, 1.0] {
            assert!(matches!(
                decide(&uncapped, 30, elapsed, true, Attempt::Transport, jitter),
                Decision::RetryAfter(w) if w > Duration::from_secs(u64::MAX / 8)
            ));
        }
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
