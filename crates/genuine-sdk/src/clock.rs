//! Time, injected: every decision about the cache, expiry and backoff reads
//! it through [`Clock`], so tests move it by hand and need no sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The client's view of time.
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary origin, *counting time the device
    /// spent suspended*: token ages and backoff are measured with it (device
    /// wall clocks are often wrong; intervals are not). A clock that stops
    /// during suspend would keep a token "fresh" past its expiry after the
    /// device slept; the client also checks the wall clock (see
    /// [`Clock::unix_secs`]), which keeps running.
    fn monotonic(&self) -> Duration;
    /// The wall clock in Unix seconds: sent as the evidence's `iat`
    /// (diagnostics only), and a second measure of a cached token's age (the
    /// time elapsed since it was received, never compared with the token's
    /// `exp` directly, since the device clock may be off by any amount).
    fn unix_secs(&self) -> i64;
    /// Waits `d` (the backoff between attempts).
    fn sleep(&self, d: Duration);
}

/// The real clocks: `CLOCK_BOOTTIME` on Linux and Android (monotonic, and
/// counting suspend), [`Instant`] elsewhere (which on some platforms stops
/// during suspend: there the wall-clock check of the cache covers it);
/// [`SystemTime`]; [`std::thread::sleep`].
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
    /// `CLOCK_BOOTTIME` when this clock was made.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    boot_origin: Option<Duration>,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            boot_origin: crate::sys::boottime(),
        }
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let (Some(origin), Some(now)) = (self.boot_origin, crate::sys::boottime()) {
            return now.saturating_sub(origin);
        }
        self.origin.elapsed()
    }

    fn unix_secs(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_moves_forward() {
        let c = SystemClock::default();
        let a = c.monotonic();
        c.sleep(Duration::from_millis(20));
        let b = c.monotonic();
        assert!(b >= a + Duration::from_millis(20), "{a:?} {b:?}");
        assert!(b < Duration::from_secs(60));
        assert!(c.unix_secs() > 1_700_000_000);
    }
}
