#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    fn rpc_functions(&self) -> Vec<String>;
}

fn main() {}
