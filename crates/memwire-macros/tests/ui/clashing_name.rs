#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Registry {
    fn new(&self, name: String) -> u64;
}

fn main() {}
