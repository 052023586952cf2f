#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    async fn sum(&self, items: impl IntoIterator<Item = i64>) -> i64;
}

fn main() {}
