//! The `math` service the examples share: its trait (which `#[memwire::service]` turns into
//! `MathClient` and `MathServer`) and its implementation.

use memwire::rpc::{Fault, Sink};

/// Arithmetic in another process.
#[memwire::service]
pub(crate) trait Math {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;

    /// Multiplies two numbers; fails if the product overflows.
    async fn multiply(&self, a: i64, b: i64) -> Result<i64, MathError>;

    /// `n!`; fails above 20!, which overflows a u64.
    fn factorial(&self, n: u64) -> Result<u64, MathError>;

    /// Streams 0, 1, …, n - 1.
    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault>;
}

/// Why an operation has no answer.
#[derive(Debug)]
pub(crate) struct MathError(pub(crate) String);

impl std::fmt::Display for MathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The implementation.
pub(crate) struct Calculator;

impl Math for Calculator {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn multiply(&self, a: i64, b: i64) -> Result<i64, MathError> {
        a.checked_mul(b)
            .ok_or_else(|| MathError(format!("{a} * {b} overflows an i64")))
    }

    fn factorial(&self, n: u64) -> Result<u64, MathError> {
        (1..=n).try_fold(1u64, |acc, k| {
            acc.checked_mul(k)
                .ok_or_else(|| MathError(format!("{n}! overflows a u64")))
        })
    }

    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault> {
        for i in 0..n {
            sink.send(&i).await?;
        }
        Ok(())
    }
}
