//! memwire-macros: the `#[service]` attribute, which turns one trait into a typed client and a
//! dispatcher for memwire-rpc. Use it through `memwire::service` (or `memwire_rpc::service`);
//! the runnable example is in memwire-rpc's crate docs.
//!
//! | module | what it does |
//! | --- | --- |
//! | `model` | reads and checks the trait; every misuse is a spanned compile error |
//! | `client` | `{Trait}Client`: one `async fn` per method |
//! | `server` | `{Trait}Server<T>`: the `Service` impl that runs the methods |
#![forbid(unsafe_code)]

mod client;
mod model;
mod server;

use proc_macro2::TokenStream;
use quote::{ToTokens as _, quote};
use syn::{ItemTrait, Path, ReturnType, TraitItem, Visibility};

/// Makes a trait a memwire service: generates `{Trait}Client` and `{Trait}Server<T>`.
///
/// ```ignore
/// #[memwire::service]                 // the generated code names `::memwire::rpc`
/// pub trait Math {
///     /// Adds two numbers.
///     async fn add(&self, a: i64, b: i64) -> i64;
///     // A plain `fn` runs inline on the call's task: for quick work.
///     fn multiply(&self, a: i64, b: i64) -> Result<i64, MathError>;
///     // Runs on tokio's blocking threads.
///     #[rpc(blocking)]
///     fn factorial(&self, n: u64) -> Result<u64, String>;
///     // A `Sink<T>` parameter makes the method streaming.
///     async fn count(&self, n: u64, sink: Sink<u64>) -> Result<(), Fault>;
///     // A `CallContext` parameter gets the call's context (cancellation, call id).
///     async fn slow(&self, ctx: CallContext, ms: u64) -> bool;
///     // A `Payload` parameter is the whole request, read in place in the link's memory.
///     async fn checksum(&self, data: Payload) -> u64;
/// }
/// ```
///
/// With only memwire-rpc as a dependency, write `#[memwire_rpc::service(crate = memwire_rpc)]`:
/// `crate = path` says where the generated code finds memwire-rpc.
///
/// # What it generates
/// - **The trait**, with `Send + Sync + 'static` added to its supertraits and each
///   `async fn name(&self, …) -> T` declared as
///   `fn name(&self, …) -> impl Future<Output = T> + Send` (an impl may still write
///   `async fn`). `#[rpc(…)]` attributes are removed.
/// - **`{Trait}Client`** (`Clone`, `Debug`, `new(Client)`, `From<Client>`, `client()`,
///   `METHODS`): one `pub async fn` per method, taking its parameters except the `Sink` and
///   the `CallContext`, by value. It returns `Result<T>` (memwire-rpc's) where `T` is the
///   method's `Ok` type when it returns `Result<T, E>`, else its return type; a streaming
///   method returns `Result<ItemStream<T>>`. A method `m` with a `Payload` parameter becomes
///   `m(&self, data: &[u8])` and `m_with(&self, len, fill)`, whose `fill` writes the bytes in
///   place in the link; both send them with a loan (`Client::call_loaned_typed`).
/// - **`{Trait}Server<T>`** (`new(T)`, `from_arc(Arc<T>)`, `Clone`, `Debug`), implementing
///   `Service`: `functions()` describes each method (parameter and result types as written, the
///   `///` text); `call()` decodes the arguments as a tuple, runs the method (async: awaited;
///   plain: inline; `#[rpc(blocking)]`: on tokio's blocking threads), turns an `Err(e)` into
///   `Fault::from_error(&e)` (a `Fault` passes through unchanged) and encodes the value in the
///   caller's encoding. A streaming method gets the call's sink and answers with the end of
///   the stream when it returns.
///
/// A `Result` is recognised by its last path segment (`Result`, two type arguments), a sink by
/// `Sink<T>`, a context by `CallContext`, a payload by `Payload`.
///
/// # Compile errors
/// A non-trait item; a generic or `unsafe` trait, or one with items other than methods; a
/// method without `&self` first, generic, `const`, `unsafe` or `extern`; a parameter that is a
/// pattern, a reference or `impl Trait`; more than one `Sink`, `CallContext` or `Payload`; a
/// `Payload` beside other arguments or a `Sink`, or a method named like its `m_with`; a streaming
/// method returning anything but `()` or `Result<(), E>`; an `impl Trait` result; an unknown
/// `#[rpc(…)]` option or `#[rpc(blocking)]` on an `async fn`; a method whose name starts with
/// `rpc` (reserved for built-in methods such as `rpc.functions`), or is `new` or `client` (the
/// client's own methods).
#[proc_macro_attribute]
pub fn service(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    let item = TokenStream::from(item);
    match expand(args.into(), item.clone()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            // The trait itself still goes out, so one mistake is reported once, not again at
            // every use of the trait.
            let item = match syn::parse2::<ItemTrait>(item.clone()) {
                Ok(item) => rewrite_trait(item).into_token_stream(),
                Err(_) => item,
            };
            let error = error.into_compile_error();
            quote!(#error #item).into()
        }
    }
}

fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = model::Args::parse(args)?;
    let item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            return Err(syn::Error::new_spanned(
                item,
                "`#[service]` goes on a trait",
            ));
        }
    };
    let service = model::read(&item)?;
    let definition = rewrite_trait(item);
    let client = client::generate(&service, &args.krate);
    let server = server::generate(&service, &args.krate);
    Ok(quote! {
        #definition
        #client
        #server
    })
}

/// The trait as its implementors see it: `Send + Sync + 'static`, `async fn`s declared as
/// methods returning `impl Future + Send`, no `#[rpc]` attributes.
fn rewrite_trait(mut item: ItemTrait) -> ItemTrait {
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Send));
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Sync));
    item.supertraits.push(syn::parse_quote!('static));
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            continue;
        };
        f.attrs.retain(|a| !a.path().is_ident("rpc"));
        if f.sig.asyncness.take().is_none() {
            continue;
        }
        let output = match &f.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => ty.to_token_stream(),
        };
        f.sig.output = syn::parse_quote! {
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        };
        if let Some(block) = f.default.take() {
            f.default = Some(syn::parse_quote!({ async move #block }));
        }
    }
    item
}

/// The visibility of generated methods: the trait's, or `pub(crate)` for a private trait
/// (a plain `pub` on an item nobody outside can reach trips `unreachable_pub`).
fn member_vis(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Inherited => quote!(pub(crate)),
        other => other.to_token_stream(),
    }
}

/// A path as it reads in a doc link: `memwire_rpc`, `::memwire::rpc`.
fn path_text(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}
