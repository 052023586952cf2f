#[memwire_rpc::service(crate = memwire_rpc, name = "math")]
pub trait Math {
    async fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
