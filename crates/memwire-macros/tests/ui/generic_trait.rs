#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math<T> {
    fn add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
