#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Greeter {
    async fn hello(&self, name: &str) -> String;
}

fn main() {}
