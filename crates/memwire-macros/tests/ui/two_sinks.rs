use memwire_rpc::Sink;

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    async fn count(&self, n: u64, evens: Sink<u64>, odds: Sink<u64>);
}

fn main() {}
