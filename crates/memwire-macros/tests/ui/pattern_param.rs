#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    async fn add(&self, (a, b): (i64, i64)) -> i64;
}

fn main() {}
