use memwire_rpc::Payload;

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Store {
    async fn put(&self, key: String, data: Payload) -> u64;
}

fn main() {}
