#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    fn add(&mut self, a: i64, b: i64) -> i64;
}

fn main() {}
