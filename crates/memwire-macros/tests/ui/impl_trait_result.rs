#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    fn evens(&self, n: u64) -> impl Iterator<Item = u64>;
}

fn main() {}
