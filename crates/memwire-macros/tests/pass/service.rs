//! Every shape `#[service]` accepts compiles, warning-free, and its implementors may write
//! `async fn`.
#![deny(warnings, missing_docs)]

use std::time::Duration;

use memwire_rpc::{CallContext, Fault, Service as _, Sink};

/// Why `multiply` refuses.
#[derive(Debug)]
pub struct Overflow;

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("overflow")
    }
}

/// Arithmetic.
#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Multiplies.
    fn multiply(&self, a: i64, b: i64) -> Result<i64, Overflow>;
    /// `n!`.
    #[rpc(blocking)]
    fn factorial(&self, n: u64) -> Result<u64, String>;
    /// `0..n`.
    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault>;
    /// Sleeps unless cancelled.
    async fn slow(&self, ctx: CallContext, ms: u64) -> bool;
    /// Streams from a blocking thread, with a unit result.
    #[rpc(blocking)]
    fn blocking_stream(&self, ctx: memwire_rpc::CallContext, sink: memwire_rpc::Sink<String>);
    /// No parameters, no result.
    fn ping(&self);
    /// A result of unit.
    async fn reset(&self) -> Result<(), Fault>;
    /// A default body.
    async fn double(&self, a: i64) -> i64 {
        self.add(a, a).await
    }
    /// A raw identifier.
    fn r#type(&self, r#in: Vec<Option<u8>>) -> (String, u8);
}

struct Impl;

impl Math for Impl {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    fn multiply(&self, a: i64, b: i64) -> Result<i64, Overflow> {
        a.checked_mul(b).ok_or(Overflow)
    }
    fn factorial(&self, n: u64) -> Result<u64, String> {
        Ok((1..=n).product())
    }
    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault> {
        for i in 0..n {
            sink.send(&i).await?;
        }
        Ok(())
    }
    async fn slow(&self, ctx: CallContext, ms: u64) -> bool {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => false,
            () = ctx.cancelled() => true,
        }
    }
    fn blocking_stream(&self, ctx: CallContext, sink: Sink<String>) {
        let _ = (ctx.call_id(), sink);
    }
    fn ping(&self) {}
    async fn reset(&self) -> Result<(), Fault> {
        Ok(())
    }
    fn r#type(&self, r#in: Vec<Option<u8>>) -> (String, u8) {
        (String::new(), r#in.len() as u8)
    }
}

/// Generated client methods have the signatures the trait promises.
#[allow(dead_code)]
async fn client_api(math: MathClient) -> memwire_rpc::Result<()> {
    let _: i64 = math.add(1, 2).await?;
    let _: i64 = math.multiply(1, 2).await?;
    let _: u64 = math.factorial(3).await?;
    let _: memwire_rpc::ItemStream<u64> = math.count(3).await?;
    let _: bool = math.slow(5).await?;
    let _: memwire_rpc::ItemStream<String> = math.blocking_stream().await?;
    math.ping().await?;
    math.reset().await?;
    let _: i64 = math.double(2).await?;
    let _: (String, u8) = math.r#type(vec![None]).await?;
    let _: &memwire_rpc::Client = math.client();
    let _ = MathClient::new(math.client().clone());
    Ok(())
}

fn main() {
    let server = MathServer::new(Impl);
    let functions = server.clone().functions();
    assert_eq!(functions.len(), MathClient::METHODS.len());
    let by_name = |name: &str| functions.iter().find(|f| f.name == name).unwrap();
    assert_eq!(by_name("type").params[0].name, "in");
    assert_eq!(by_name("type").params[0].ty, "Vec<Option<u8>>");
    assert_eq!(by_name("type").returns, "(String, u8)");
    assert!(by_name("blocking_stream").streaming);
    assert_eq!(by_name("blocking_stream").returns, "String");
    assert!(by_name("blocking_stream").params.is_empty());
    assert_eq!(by_name("ping").returns, "()");
    let _ = MathServer::from_arc(std::sync::Arc::new(Impl));
    let _ = format!("{server:?}");
}
