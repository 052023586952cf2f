use memwire_rpc::Sink;

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    async fn count(&self, n: u64, sink: Sink<u64>) -> Result<u64, String>;
}

fn main() {}
