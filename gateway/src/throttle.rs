//! Per-session message throttle: a token bucket with a logout rule for sessions that keep
//! sending far above their rate.
//!
//! The bucket holds at most `burst` tokens and refills at `rate_per_s` tokens per second; every
//! application message takes one token. A message that finds the bucket empty is rejected
//! (the FIX layer answers it with a reject carrying [`crate::risk::GatewayReject::ThrottleExceeded`]).
//!
//! Logout rule: rejected messages are counted in a one-second window that opens at the first
//! rejected message after the previous window ended. When the count in the open window exceeds
//! `rate_per_s * logout_factor`, the verdict is [`ThrottleVerdict::Logout`] (for that message
//! and every further rejected one in the window). A client that is merely a little too fast
//! gets rejects; one that sends `logout_factor` times its allowance in rejected messages within
//! a second is misbehaving and is logged out. A window anchored at a reject, rather than a
//! sliding window, needs two integers instead of a timestamp per message; a flood that starts
//! just before a window closes can therefore send up to twice the threshold before the logout.
//!
//! Time is a caller-supplied `now_ns` (no clock is read here) and all arithmetic is integer
//! nanoseconds. Time that goes backwards grants no tokens and never panics: the bucket keeps
//! the latest time it has seen.

const NS_PER_S: u128 = 1_000_000_000;
const WINDOW_NS: u64 = 1_000_000_000;

/// What to do with one incoming application message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleVerdict {
    /// Within the rate: process it.
    Pass,
    /// Over the rate: reject it without processing.
    Reject,
    /// Far over the rate (see the module documentation): reject it and log the session out.
    Logout,
}

/// A token bucket for one session. See the module documentation for the rules.
#[derive(Clone, Debug)]
pub struct Throttle {
    rate_per_s: u128,
    /// Bucket size in token-nanoseconds (tokens times 10^9), so that refills of a fraction of
    /// a token are kept exactly without floats.
    capacity: u128,
    /// Current content in token-nanoseconds.
    credit: u128,
    /// The latest `now_ns` seen, or `None` before the first message.
    last_ns: Option<u64>,
    logout_threshold: u64,
    window_start_ns: u64,
    window_rejects: u64,
    window_open: bool,
}

impl Throttle {
    /// A full bucket of `burst` tokens refilled at `rate_per_s` per second. A burst of 0 is
    /// taken as 1, since a bucket that can hold no token would refuse every message whatever
    /// the rate. A rate of 0 allows only the initial burst, ever.
    pub fn new(rate_per_s: u32, burst: u32, logout_factor: u32) -> Throttle {
        let capacity = u128::from(burst.max(1)) * NS_PER_S;
        Throttle {
            rate_per_s: u128::from(rate_per_s),
            capacity,
            credit: capacity,
            last_ns: None,
            logout_threshold: u64::from(rate_per_s) * u64::from(logout_factor),
            window_start_ns: 0,
            window_rejects: 0,
            window_open: false,
        }
    }

    /// Takes one token for a message arriving at `now_ns`, or says why it cannot.
    pub fn check(&mut self, now_ns: u64) -> ThrottleVerdict {
        self.refill(now_ns);
        if self.credit >= NS_PER_S {
            self.credit -= NS_PER_S;
            return ThrottleVerdict::Pass;
        }
        // A window that began more than a second ago has ended; this reject opens a new one.
        // `saturating_sub` keeps a backwards clock inside the current window.
        if !self.window_open || now_ns.saturating_sub(self.window_start_ns) >= WINDOW_NS {
            self.window_open = true;
            self.window_start_ns = now_ns;
            self.window_rejects = 0;
        }
        self.window_rejects = self.window_rejects.saturating_add(1);
        if self.window_rejects > self.logout_threshold {
            ThrottleVerdict::Logout
        } else {
            ThrottleVerdict::Reject
        }
    }

    /// Whole tokens available now (without taking one); for the console and tests.
    pub fn tokens(&self) -> u32 {
        u32::try_from(self.credit / NS_PER_S).unwrap_or(u32::MAX)
    }

    fn refill(&mut self, now_ns: u64) {
        let elapsed = match self.last_ns {
            // Only forward time counts; a clock step backwards leaves the bucket as it is and
            // keeps the later time, so that the same interval is never credited twice.
            Some(last) if now_ns > last => now_ns - last,
            Some(_) => return,
            None => 0,
        };
        self.last_ns = Some(now_ns);
        // elapsed < 2^64 and rate < 2^32, so the product fits in u128.
        let added = u128::from(elapsed) * self.rate_per_s;
        self.credit = self.credit.saturating_add(added).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let mut t = Throttle::new(10, 3, 100);
        for _ in 0..3 {
            assert_eq!(t.check(0), ThrottleVerdict::Pass);
        }
        assert_eq!(t.check(0), ThrottleVerdict::Reject);
        // One token per 100 ms at 10/s.
        assert_eq!(t.check(99 * MS), ThrottleVerdict::Reject);
        assert_eq!(t.check(100 * MS), ThrottleVerdict::Pass);
        assert_eq!(t.check(100 * MS), ThrottleVerdict::Reject);
        // A long pause refills only up to the burst.
        assert_eq!(t.tokens(), 0);
        let later = 100 * 1_000 * MS;
        assert_eq!(t.check(later), ThrottleVerdict::Pass);
        assert_eq!(t.tokens(), 2);
    }

    #[test]
    fn backwards_time_grants_nothing_and_does_not_panic() {
        let mut t = Throttle::new(1_000, 1, 1_000);
        assert_eq!(t.check(10 * MS), ThrottleVerdict::Pass);
        assert_eq!(t.check(0), ThrottleVerdict::Reject);
        assert_eq!(t.check(5 * MS), ThrottleVerdict::Reject);
        // Only time after the latest seen (10 ms) counts: 1 ms at 1000/s is one token.
        assert_eq!(t.check(10 * MS + MS / 2), ThrottleVerdict::Reject);
        assert_eq!(t.check(11 * MS), ThrottleVerdict::Pass);
        assert_eq!(t.check(u64::MAX), ThrottleVerdict::Pass);
        assert_eq!(t.check(0), ThrottleVerdict::Reject);
    }

    #[test]
    fn logout_when_rejects_in_a_second_exceed_rate_times_factor() {
        let mut t = Throttle::new(2, 1, 3);
        assert_eq!(t.check(0), ThrottleVerdict::Pass);
        // Threshold 2 * 3 = 6 rejects within a second; the seventh logs out.
        for i in 0..6 {
            assert_eq!(t.check(i), ThrottleVerdict::Reject, "reject {i}");
        }
        assert_eq!(t.check(7), ThrottleVerdict::Logout);
        // The window ends a second after its first reject; the count starts again.
        let mut t = Throttle::new(2, 1, 3);
        assert_eq!(t.check(0), ThrottleVerdict::Pass);
        for i in 0..6 {
            assert_eq!(t.check(i), ThrottleVerdict::Reject);
        }
        // 1 s later a token is back (rate 2/s), and then rejects count in a new window.
        assert_eq!(t.check(1_000 * MS), ThrottleVerdict::Pass);
        assert_eq!(t.check(1_000 * MS), ThrottleVerdict::Reject);
    }
}
