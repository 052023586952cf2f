//! The dispatcher: `{Trait}Server<T>`, whose `Service` impl decodes a request's arguments,
//! runs the method as it asked to be run, and encodes its answer.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, Path};

use crate::model::{Method, ParamKind, Run, Service, type_text};

pub(crate) fn generate(service: &Service, krate: &Path) -> TokenStream {
    let trait_ident = &service.ident;
    let server = format_ident!("{}Server", trait_ident);
    let vis = &service.vis;
    let member_vis = crate::member_vis(vis);
    // The generic parameter's name must not be the trait's own.
    let t = Ident::new(
        if trait_ident == "T" { "S" } else { "T" },
        Span::call_site(),
    );
    let struct_doc = format!(
        "Serves a [`{trait_ident}`] implementation: its [`Service`]({}::Service) impl \
         decodes each call's arguments (postcard or MessagePack), runs the method and encodes \
         the answer in the caller's encoding.",
        crate::path_text(krate)
    );
    let infos = service.methods.iter().map(|m| function_info(m, krate));
    let arms = service.methods.iter().map(|m| arm(m, trait_ident, krate));
    let take_service = (!service.methods.is_empty())
        .then(|| quote!(let __service = ::std::sync::Arc::clone(&self.service);));
    quote! {
        #[doc = #struct_doc]
        #vis struct #server<#t> {
            service: ::std::sync::Arc<#t>,
        }

        impl<#t: #trait_ident> #server<#t> {
            /// Serves `service`.
            #member_vis fn new(service: #t) -> Self {
                Self::from_arc(::std::sync::Arc::new(service))
            }

            /// Serves a service shared with other owners.
            #member_vis fn from_arc(service: ::std::sync::Arc<#t>) -> Self {
                Self { service }
            }
        }

        impl<#t> ::core::clone::Clone for #server<#t> {
            fn clone(&self) -> Self {
                Self {
                    service: ::std::sync::Arc::clone(&self.service),
                }
            }
        }

        impl<#t> ::core::fmt::Debug for #server<#t> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#server)).finish_non_exhaustive()
            }
        }

        impl<__S: #trait_ident> #krate::Service for #server<__S> {
            fn functions(&self) -> ::std::vec::Vec<#krate::FunctionInfo> {
                ::std::vec![#(#infos),*]
            }

            fn call(
                self: ::std::sync::Arc<Self>,
                __request: #krate::Request,
            ) -> #krate::BoxFuture<::core::result::Result<::std::vec::Vec<u8>, #krate::Fault>> {
                #take_service
                match __request.method() {
                    #(#arms)*
                    _ => ::std::boxed::Box::pin(::core::future::ready(
                        ::core::result::Result::Err(#krate::Fault::UnknownMethod),
                    )),
                }
            }
        }
    }
}

fn function_info(m: &Method, krate: &Path) -> TokenStream {
    let name = &m.name;
    let params = m.values().chain(m.payload()).map(|p| {
        let name = p.ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name);
        let ty = type_text(&p.ty);
        quote! {
            #krate::Param {
                name: ::std::string::String::from(#name),
                ty: ::std::string::String::from(#ty),
            }
        }
    });
    let returns = type_text(m.returns());
    let streaming = m.stream.is_some();
    let doc = &m.doc;
    quote! {
        #krate::FunctionInfo {
            name: ::std::string::String::from(#name),
            params: ::std::vec![#(#params),*],
            returns: ::std::string::String::from(#returns),
            streaming: #streaming,
            doc: ::std::string::String::from(#doc),
        }
    }
}

/// The `match` arm that runs one method.
fn arm(m: &Method, trait_ident: &Ident, krate: &Path) -> TokenStream {
    let name = &m.name;
    let ident = &m.ident;
    let value_types: Vec<_> = m.values().map(|p| &p.ty).collect();
    let decode = if m.payload().is_some() {
        quote!(let (__payload, __responder) = __request.into_payload();)
    } else if value_types.is_empty() {
        quote!(let __responder = __request.into_responder();)
    } else {
        quote! {
            let (__args, __responder) =
                __request.into_args::<(#(#value_types,)*)>()?;
        }
    };
    let has = |kind: ParamKind| m.params.iter().any(|p| p.kind == kind);
    let context = has(ParamKind::Context)
        .then(|| quote!(let __context = #krate::Responder::context(&__responder).clone();));
    let sink = m
        .stream
        .as_ref()
        .map(|item| quote!(let __sink = __responder.sink::<#item>();));
    let mut index = 0usize;
    let args = m.params.iter().map(|p| match p.kind {
        ParamKind::Value => {
            let i = syn::Index::from(index);
            index += 1;
            quote!(__args.#i)
        }
        ParamKind::Context => quote!(__context),
        ParamKind::Sink => quote!(__sink),
        ParamKind::Payload => quote!(__payload),
    });
    let invoke = quote!(<__S as #trait_ident>::#ident(&__service, #(#args),*));
    let outcome = match m.run {
        Run::Async => quote!(#invoke.await),
        Run::Inline => invoke,
        Run::Blocking => quote!(#krate::run_blocking(move || #invoke).await?),
    };
    let value = match &m.result {
        Some(r) if r.err_is_fault => quote!(#outcome?),
        Some(_) => quote!(#outcome.map_err(|__e| #krate::Fault::from_error(&__e))?),
        None => outcome,
    };
    let answer = if m.stream.is_some() {
        quote! {
            #value;
            ::core::result::Result::Ok(::std::vec::Vec::new())
        }
    } else {
        quote!(__responder.reply(&#value))
    };
    quote! {
        #name => ::std::boxed::Box::pin(async move {
            #decode
            #context
            #sink
            #answer
        }),
    }
}
