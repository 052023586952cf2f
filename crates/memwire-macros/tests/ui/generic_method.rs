#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    async fn add<T: Into<i64>>(&self, a: T, b: T) -> i64;
}

fn main() {}
