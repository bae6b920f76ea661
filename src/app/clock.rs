//! The clock the async shell reads and hands to the deciders (they never read one themselves).

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Instant;

/// Wall time, injectable.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that runs `speed` times faster than real time from `start` (the demo plays a day
/// in well under a minute with it).
pub struct ScaledClock {
    start: DateTime<Utc>,
    real_start: Instant,
    speed: f64,
}

impl ScaledClock {
    /// Simulated time starts at `start` and advances `speed` simulated seconds per real second.
    pub fn new(start: DateTime<Utc>, speed: f64) -> Arc<Self> {
        Arc::new(ScaledClock {
            start,
            real_start: Instant::now(),
            speed,
        })
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.real_start.elapsed().as_secs_f64() * self.speed;
        self.start + chrono::TimeDelta::milliseconds((real * 1000.0) as i64)
    }
}
