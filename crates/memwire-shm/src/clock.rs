//! A clock for timing short operations often: the CPU's time-stamp counter where it ticks at a
//! constant rate, `Instant` elsewhere.
//!
//! Reading `Instant` costs about 25 ns here (`clock_gettime` through the vDSO: a sequence
//! lock, a `rdtsc`, a multiply); reading the counter itself costs about 10. An RPC client that
//! times every call reads a clock twice a call, so the difference is a few percent of a call.
//!
//! The counter's rate is not known in advance, and measuring it up front (as `quanta` does)
//! takes about half a millisecond, which a worker's first call would pay. Instead a [`Clock`]
//! is in ticks, and converts to nanoseconds only when asked ([`Clock::ns_per_tick`]): the rate
//! is then measured over everything since the process's first [`Clock::get`], one `Instant`
//! read and one counter read at each end, which is exact to a few parts per million once a
//! millisecond has passed (a conversion asked for sooner waits for that millisecond).
//!
//! The counter is used only on x86-64 CPUs that say it is invariant (CPUID leaf `0x8000_0007`,
//! EDX bit 8: constant rate, never stops, synchronised across CPUs by the hardware or the
//! hypervisor). Elsewhere a tick is a nanosecond of `Instant`. Ticks read on two CPUs whose
//! counters disagree could make an interval look negative: intervals saturate at zero.
//!
//! ```
//! use memwire_shm::clock::Clock;
//!
//! let clock = Clock::get();
//! let start = clock.now();
//! std::thread::sleep(std::time::Duration::from_millis(2));
//! let took = clock.to_duration(clock.now().saturating_sub(start));
//! assert!(took >= std::time::Duration::from_millis(2));
//! ```

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after the process's first [`Clock::get`] a rate is measured, at least.
const MIN_SPAN: Duration = Duration::from_millis(1);

/// The process's clock: which source it reads, and where it started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Ticks are the time-stamp counter's (else nanoseconds of `Instant` since `origin`).
    counter: bool,
    /// The counter at `origin` (0 without the counter).
    origin_ticks: u64,
    origin: Instant,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

impl Clock {
    /// The process's clock, started by the first call.
    #[inline]
    pub fn get() -> Self {
        *CLOCK.get_or_init(|| {
            let counter = invariant_counter();
            let origin = Instant::now();
            let origin_ticks = if counter { read_counter() } else { 0 };
            Self {
                counter,
                origin_ticks,
                origin,
            }
        })
    }

    /// Whether ticks are the CPU's time-stamp counter (else nanoseconds).
    pub fn uses_counter(&self) -> bool {
        self.counter
    }

    /// Now, in ticks. Only differences of two readings mean anything.
    #[inline]
    pub fn now(&self) -> u64 {
        if self.counter {
            read_counter()
        } else {
            u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
        }
    }

    /// Nanoseconds per tick, measured over the time since the process's first [`Clock::get`]
    /// (waiting until a millisecond has passed since then, if it has not).
    pub fn ns_per_tick(&self) -> f64 {
        if !self.counter {
            return 1.0;
        }
        let mut span = self.origin.elapsed();
        if span < MIN_SPAN {
            std::thread::sleep(MIN_SPAN - span);
        }
        // The two reads as close together as two calls go; the order matters less than the
        // span they are divided by.
        let ticks = read_counter().saturating_sub(self.origin_ticks);
        span = self.origin.elapsed();
        if ticks == 0 {
            // A counter that did not move over a millisecond is not a clock; it cannot
            // happen with an invariant counter.
            return 0.0;
        }
        span.as_nanos() as f64 / ticks as f64
    }

    /// `ticks` (a difference of two [`Clock::now`] readings) as a duration.
    pub fn to_duration(&self, ticks: u64) -> Duration {
        Duration::from_nanos(Self::scale(ticks, self.ns_per_tick()))
    }

    /// `ticks` at `ns_per_tick`, in whole nanoseconds (saturating).
    pub fn scale(ticks: u64, ns_per_tick: f64) -> u64 {
        // `as` saturates a float that does not fit.
        (ticks as f64 * ns_per_tick).round() as u64
    }
}

#[cfg(target_arch = "x86_64")]
fn invariant_counter() -> bool {
    use std::arch::x86_64::__cpuid;
    // Leaf 0x8000_0000 says which extended leaves exist; 0x8000_0007 EDX bit 8 is "invariant
    // TSC" on both Intel and AMD (Linux shows it as `constant_tsc` and `nonstop_tsc`).
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_counter() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[allow(unsafe_code)]
fn read_counter() -> u64 {
    // SAFETY: `rdtsc` reads a register and has no preconditions; every x86-64 CPU has it, and
    // an OS that forbids it (CR4.TSD) would fault the process, which Linux never sets for user
    // code unless the process asks with prctl(PR_SET_TSC), which memwire never does.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn read_counter() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_converts_to_the_time_that_passed() {
        let clock = Clock::get();
        // Each reading of the clock bracketed by two of `Instant`, so a preemption between
        // reads widens the bracket instead of failing the test.
        let bracket = || {
            let before = Instant::now();
            let ticks = clock.now();
            (before, ticks, Instant::now())
        };
        let (b0, t0, a0) = bracket();
        std::thread::sleep(Duration::from_millis(20));
        let (b1, t1, a1) = bracket();
        let measured = clock.to_duration(t1.saturating_sub(t0)).as_nanos() as f64;
        let (shortest, longest) = ((b1 - a0).as_nanos() as f64, (a1 - b0).as_nanos() as f64);
        // The rate itself is exact to parts per million; a percent leaves room for rounding.
        assert!(
            measured >= shortest * 0.99 && measured <= longest * 1.01,
            "{measured} ns, outside {shortest}..={longest} ns"
        );
    }

    #[test]
    fn the_rate_is_positive_and_ticks_move_forward() {
        let clock = Clock::get();
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(1));
        assert!(clock.now() > a);
        let rate = clock.ns_per_tick();
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
        if !clock.uses_counter() {
            assert_eq!(rate, 1.0);
        }
    }

    #[test]
    fn scaling_saturates() {
        assert_eq!(Clock::scale(u64::MAX, 2.0), u64::MAX);
        assert_eq!(Clock::scale(1_000, 0.5), 500);
        assert_eq!(Clock::scale(0, 0.3), 0);
    }
}
