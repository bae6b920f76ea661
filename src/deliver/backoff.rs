//! The retry schedule of transient failures: exponential growth from `initial` by `multiplier`
//! up to `max`, each delay spread by ±`jitter` so that a relay coming back is not hit by every
//! notification at the same instant. There is no last attempt: DESIGN §4 retries "for as long as
//! it takes", and the outbox bound turns a long outage into consumer lag instead of memory.

use crate::config::RetryConfig;
use rand::Rng;
use std::time::Duration;

/// The backoff schedule; pure, the random source is passed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Backoff {
    /// The schedule of `[smtp.retry]` (validated at load: initial > 0, max ≥ initial,
    /// multiplier ≥ 1, jitter in 0..=1; out-of-range values are clamped here all the same).
    pub fn new(cfg: &RetryConfig) -> Backoff {
        Backoff {
            initial: cfg.initial,
            max: cfg.max.max(cfg.initial),
            multiplier: if cfg.multiplier.is_finite() {
                cfg.multiplier.max(1.0)
            } else {
                1.0
            },
            jitter: if cfg.jitter.is_finite() {
                cfg.jitter.clamp(0.0, 1.0)
            } else {
                0.0
            },
        }
    }

    /// The delay before retry number `attempt` (0 = the first retry), before jitter:
    /// `min(initial × multiplier^attempt, max)`. Never overflows, whatever the attempt.
    pub fn base(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry number `attempt`: `base(attempt)` spread uniformly by ±jitter,
    /// never above `max`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base(attempt).as_secs_f64();
        let spread = base * self.jitter;
        let secs = if spread > 0.0 {
            base + rng.random_range(-spread..=spread)
        } else {
            base
        };
        Duration::from_secs_f64(secs.max(0.0)).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn cfg(initial_ms: u64, max_ms: u64, multiplier: f64, jitter: f64) -> RetryConfig {
        RetryConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier,
            jitter,
        }
    }

    #[test]
    fn without_jitter_the_delay_doubles_from_initial_until_max() {
        let b = Backoff::new(&cfg(1000, 300_000, 2.0, 0.0));
        let mut rng = StdRng::seed_from_u64(1);
        let secs: Vec<u64> = (0..12).map(|a| b.delay(a, &mut rng).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn attempts_never_end_and_never_overflow() {
        let b = Backoff::new(&cfg(1000, 300_000, 10.0, 0.5));
        let mut rng = StdRng::seed_from_u64(2);
        for attempt in [100, 10_000, u32::MAX] {
            assert_eq!(b.base(attempt), Duration::from_secs(300));
            let d = b.delay(attempt, &mut rng);
            assert!(
                d >= Duration::from_secs(150) && d <= Duration::from_secs(300),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jittered_delays_stay_within_their_bounds_and_actually_spread() {
        let b = Backoff::new(&cfg(1000, 60_000, 2.0, 0.2));
        let mut rng = StdRng::seed_from_u64(3);
        for attempt in 0..10 {
            let base = b.base(attempt).as_secs_f64();
            let lo = base * 0.8;
            let hi = (base * 1.2).min(60.0);
            let samples: Vec<f64> = (0..200)
                .map(|_| b.delay(attempt, &mut rng).as_secs_f64())
                .collect();
            for s in &samples {
                assert!(
                    *s >= lo - 1e-9 && *s <= hi + 1e-9,
                    "attempt {attempt}: {s} not in {lo}..{hi}"
                );
            }
            let min = samples.iter().cloned().fold(f64::MAX, f64::min);
            let max = samples.iter().cloned().fold(0.0, f64::max);
            assert!(max - min > (hi - lo) * 0.5, "attempt {attempt}: no spread");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let b = Backoff::new(&cfg(500, 30_000, 1.5, 0.3));
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20).map(|a| b.delay(a, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
