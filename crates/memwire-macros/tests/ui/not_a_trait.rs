#[memwire_rpc::service(crate = memwire_rpc)]
pub struct Math {
    total: i64,
}

fn main() {}
