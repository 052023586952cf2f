use memwire_rpc::{Payload, Sink};

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Chunks {
    async fn split(&self, data: Payload, chunks: Sink<u64>);
}

fn main() {}
