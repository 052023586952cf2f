use memwire_rpc::Payload;

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Diff {
    async fn diff(&self, a: Payload, b: Payload) -> u64;
}

fn main() {}
