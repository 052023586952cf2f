#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    #[rpc(blocking)]
    async fn factorial(&self, n: u64) -> u64;
}

fn main() {}
