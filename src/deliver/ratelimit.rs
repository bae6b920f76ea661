//! The optional cap on messages per second over the whole pool (`smtp.rate_limit_per_second`),
//! for relays that throttle or penalise bursts. Each transaction reserves the next free slot;
//! slots are `1/rate` apart, so the pool never exceeds the rate even briefly. Pure: `now` in,
//! the wait out.

use std::time::{Duration, Instant};

/// Slot reservations at a fixed rate.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval: Duration,
    next_free: Option<Instant>,
}

impl RateLimiter {
    /// At most `per_second` reservations per second (at least 1).
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            interval: Duration::from_secs(1) / per_second.max(1),
            next_free: None,
        }
    }

    /// Reserves the next slot; returns how long the caller must wait before using it.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let slot = match self.next_free {
            Some(t) if t > now => t,
            _ => now,
        };
        self.next_free = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_at_the_same_instant_are_spaced_by_one_over_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10);
        let waits: Vec<u128> = (0..4).map(|_| r.reserve(t0).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 300]);
    }

    #[test]
    fn an_idle_limiter_does_not_bank_slots() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10);
        r.reserve(t0);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(r.reserve(later), Duration::ZERO);
        assert_eq!(r.reserve(later), Duration::from_millis(100));
    }
}
