//! Per-caller rate limiting (GCRA, `governor`), keyed by principal or client IP.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

type Keyed =
    RateLimiter<String, governor::state::keyed::DefaultKeyedStateStore<String>, DefaultClock>;

/// A keyed limiter; `None` inside when the limit is off.
pub struct Limiter {
    inner: Option<Keyed>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl Limiter {
    /// `per_s` requests per second with a burst of `burst`; `per_s == 0` turns limiting off.
    pub fn new(per_s: u32, burst: u32) -> Self {
        let inner = NonZeroU32::new(per_s).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_s)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            inner,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Ok, or the seconds to wait before the caller `key` may try again.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Some(l) = &self.inner else {
            return Ok(());
        };
        // Forget idle callers now and then so the key table stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            l.retain_recent();
        }
        l.check_key(&key.to_string()).map_err(|not_until| {
            not_until
                .wait_time_from(self.clock.now())
                .as_secs_f64()
                .ceil() as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse_then_other_keys_unaffected() {
        let l = Limiter::new(1, 3);
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        assert!(l.check("a").is_err());
        assert!(l.check("b").is_ok());
        let off = Limiter::new(0, 0);
        for _ in 0..10_000 {
            assert!(off.check("a").is_ok());
        }
    }
}
