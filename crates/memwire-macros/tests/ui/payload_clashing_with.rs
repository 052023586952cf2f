use memwire_rpc::Payload;

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Upload {
    async fn upload(&self, data: Payload) -> u64;
    fn upload_with(&self, name: String) -> u64;
}

fn main() {}
