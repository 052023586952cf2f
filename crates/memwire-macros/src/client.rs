//! The typed client: `{Trait}Client`, one `async fn` per method, postcard on the wire.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Path;
use syn::ext::IdentExt;

use crate::model::{Method, Service};

pub(crate) fn generate(service: &Service, krate: &Path) -> TokenStream {
    let trait_ident = &service.ident;
    let client = format_ident!("{}Client", trait_ident);
    let vis = &service.vis;
    let member_vis = crate::member_vis(vis);
    let struct_doc = format!(
        "A typed client of the [`{trait_ident}`] service: each method sends its arguments \
         (postcard) over the [`Client`]({}::Client)'s link and decodes the answer.",
        crate::path_text(krate)
    );
    let names = service.methods.iter().map(|m| &m.name);
    let methods = service
        .methods
        .iter()
        .map(|m| method(m, krate, &member_vis));
    quote! {
        #[doc = #struct_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            client: #krate::Client,
        }

        impl #client {
            /// The names of the service's methods, as it is called by.
            #member_vis const METHODS: &'static [&'static str] = &[#(#names),*];

            /// A typed client that calls through `client`.
            #member_vis fn new(client: #krate::Client) -> Self {
                Self { client }
            }

            /// The untyped client beneath: calls by name, with an encoding or a timeout of
            /// their own.
            #member_vis fn client(&self) -> &#krate::Client {
                &self.client
            }

            #(#methods)*
        }

        impl ::core::convert::From<#krate::Client> for #client {
            fn from(client: #krate::Client) -> Self {
                Self::new(client)
            }
        }
    }
}

fn method(m: &Method, krate: &Path, vis: &TokenStream) -> TokenStream {
    let ident = &m.ident;
    let name = &m.name;
    let params = m.values().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#ident: #ty)
    });
    let args = m.values().map(|p| &p.ident);
    let returns = m.returns();
    let doc_attrs = &m.doc_attrs;
    let fallback_doc = doc_attrs.is_empty().then(|| format!("Calls `{name}`."));
    let fallback_doc = fallback_doc.iter();
    let errors_doc = if m.stream.is_some() {
        "\n# Errors\nEvery error a call can end with, for starting the stream; each item carries its own."
    } else {
        "\n# Errors\nEvery error a call can end with; an error the handler returned comes back as `Error::Remote`."
    };
    if let Some(payload) = m.payload() {
        let data = &payload.ident;
        let with = format_ident!("{}_with", ident.unraw());
        let with_doc = format!(
            "[`Self::{}`] whose `len` bytes `fill` writes in place, in the link's memory: no \
             copy on the way to the server.",
            ident.unraw()
        );
        quote! {
            #(#doc_attrs)*
            #(#[doc = #fallback_doc])*
            #[doc = "\nThe bytes travel with a loan: the server reads them in place."]
            #[doc = #errors_doc]
            #vis async fn #ident(&self, #data: &[u8]) -> #krate::Result<#returns> {
                self.#with(#data.len(), |__buf| __buf.copy_from_slice(#data)).await
            }

            #[doc = #with_doc]
            #[doc = #errors_doc]
            #vis async fn #with(
                &self,
                len: usize,
                fill: impl ::core::ops::FnOnce(&mut [u8]),
            ) -> #krate::Result<#returns> {
                self.client.call_loaned_typed(#name, len, fill).await
            }
        }
    } else if m.stream.is_some() {
        quote! {
            #(#doc_attrs)*
            #(#[doc = #fallback_doc])*
            #[doc = #errors_doc]
            #vis async fn #ident(&self, #(#params),*)
                -> #krate::Result<#krate::ItemStream<#returns>>
            {
                self.client.stream_typed(#name, &(#(#args,)*)).await
            }
        }
    } else {
        quote! {
            #(#doc_attrs)*
            #(#[doc = #fallback_doc])*
            #[doc = #errors_doc]
            #vis async fn #ident(&self, #(#params),*) -> #krate::Result<#returns> {
                self.client.call_typed(#name, &(#(#args,)*)).await
            }
        }
    }
}
