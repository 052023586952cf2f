use memwire_rpc::CallContext;

#[memwire_rpc::service(crate = memwire_rpc)]
pub trait Math {
    async fn slow(&self, ctx: CallContext, again: memwire_rpc::CallContext) -> bool;
}

fn main() {}
