//! What a `#[service]` trait says, read and checked once: every misuse becomes a spanned
//! compile error here, so the generators never meet a shape they cannot handle.

use proc_macro2::TokenStream;
use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
use syn::{
    Attribute, Error, Expr, FnArg, GenericArgument, Ident, ItemTrait, Lit, Pat, Path,
    PathArguments, Result, ReturnType, TraitItem, TraitItemFn, Type, Visibility,
};

/// The attribute's own arguments: `#[service]` or `#[service(crate = path)]`.
pub(crate) struct Args {
    /// Where the generated code finds memwire-rpc.
    pub(crate) krate: Path,
}

impl Args {
    pub(crate) fn parse(tokens: TokenStream) -> Result<Self> {
        let mut krate = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                krate = Some(meta.value()?.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error("unknown `service` option; the only one is `crate = path`"))
            }
        });
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(Self {
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::memwire::rpc)),
        })
    }
}

/// A service trait.
pub(crate) struct Service {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) methods: Vec<Method>,
}

/// One method of the trait.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    /// The name it is called by (the identifier without `r#`).
    pub(crate) name: String,
    /// Its `///` lines, as attributes (copied onto the client's method).
    pub(crate) doc_attrs: Vec<Attribute>,
    /// Its `///` lines, joined and trimmed (`list_functions`).
    pub(crate) doc: String,
    pub(crate) run: Run,
    pub(crate) params: Vec<Param>,
    /// The declared return type; `()` when none is written.
    pub(crate) output: Type,
    /// `Some` when the method returns `Result<T, E>`.
    pub(crate) result: Option<ResultType>,
    /// The item type, for a method with a `Sink<T>` parameter.
    pub(crate) stream: Option<Type>,
}

/// How the server runs a method.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// `async fn`: awaited on the call's task.
    Async,
    /// A plain `fn`: called inline on the call's task.
    Inline,
    /// `#[rpc(blocking)] fn`: on tokio's blocking threads.
    Blocking,
}

/// The parts of a `Result<T, E>` return type.
pub(crate) struct ResultType {
    pub(crate) ok: Type,
    /// Whether `E` is the rpc crate's `Fault` (passed through unchanged).
    pub(crate) err_is_fault: bool,
}

/// A parameter after `&self`.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) kind: ParamKind,
}

/// What the server passes for a parameter.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum ParamKind {
    /// An argument the caller sends.
    Value,
    /// The call's `CallContext`.
    Context,
    /// The call's `Sink<T>`.
    Sink,
    /// The request's bytes in place in the link (`Payload`): the whole request, sent with a
    /// loan.
    Payload,
}

impl Method {
    /// The parameters the caller sends, in order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.kind == ParamKind::Value)
    }

    /// The `Payload` parameter, if the method takes its request as bytes in place.
    pub(crate) fn payload(&self) -> Option<&Param> {
        self.params.iter().find(|p| p.kind == ParamKind::Payload)
    }

    /// What the client's call yields: the item type of a stream, else the `Ok` type of a
    /// `Result`, else the return type.
    pub(crate) fn returns(&self) -> &Type {
        if let Some(item) = &self.stream {
            item
        } else if let Some(result) = &self.result {
            &result.ok
        } else {
            &self.output
        }
    }
}

/// Reads and checks the trait.
pub(crate) fn read(item: &ItemTrait) -> Result<Service> {
    if let Some(unsafety) = &item.unsafety {
        return Err(Error::new_spanned(
            unsafety,
            "a service trait cannot be `unsafe`",
        ));
    }
    if let Some(auto) = &item.auto_token {
        return Err(Error::new_spanned(auto, "a service trait cannot be `auto`"));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &item.generics,
            "a service trait cannot be generic: its methods are called by name from other processes",
        ));
    }
    let mut methods = Vec::new();
    for trait_item in &item.items {
        match trait_item {
            TraitItem::Fn(f) => methods.push(read_method(f)?),
            other => {
                return Err(Error::new_spanned(
                    other,
                    "a service trait holds only methods",
                ));
            }
        }
    }
    // A method `m` with a `Payload` parameter also gets a client method `m_with`.
    for m in methods.iter().filter(|m| m.payload().is_some()) {
        let with = format!("{}_with", m.ident.unraw());
        if let Some(other) = methods.iter().find(|o| o.ident.unraw() == with.as_str()) {
            return Err(Error::new_spanned(
                &other.ident,
                format!(
                    "a method named `{with}` would clash with the client's `{with}` of `{}`, which takes a `Payload`",
                    m.ident.unraw()
                ),
            ));
        }
    }
    Ok(Service {
        vis: item.vis.clone(),
        ident: item.ident.clone(),
        methods,
    })
}

fn read_method(f: &TraitItemFn) -> Result<Method> {
    let sig = &f.sig;
    if let Some(constness) = &sig.constness {
        return Err(Error::new_spanned(
            constness,
            "a service method cannot be `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(Error::new_spanned(
            unsafety,
            "a service method cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(Error::new_spanned(
            abi,
            "a service method cannot be `extern`",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new_spanned(
            variadic,
            "a service method cannot be variadic",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &sig.generics,
            "a service method cannot be generic: its arguments are decoded into one known type",
        ));
    }
    let name = sig.ident.unraw().to_string();
    if name.starts_with("rpc") {
        return Err(Error::new_spanned(
            &sig.ident,
            "method names starting with `rpc` are reserved for the built-in methods",
        ));
    }
    if name == "new" || name == "client" {
        return Err(Error::new_spanned(
            &sig.ident,
            format!("a method named `{name}` would clash with the generated client's own `{name}`"),
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference
                .as_ref()
                .is_some_and(|(_, lifetime)| lifetime.is_none())
                && r.mutability.is_none()
                && r.colon_token.is_none() => {}
        Some(other) => {
            return Err(Error::new_spanned(
                other,
                "a service method takes `&self` first",
            ));
        }
        None => {
            return Err(Error::new(
                sig.paren_token.span.join(),
                "a service method takes `&self` first",
            ));
        }
    }
    let params = inputs.map(read_param).collect::<Result<Vec<_>>>()?;
    for kind in [ParamKind::Sink, ParamKind::Context, ParamKind::Payload] {
        if let Some(second) = params.iter().filter(|p| p.kind == kind).nth(1) {
            let what = match kind {
                ParamKind::Sink => "`Sink`",
                ParamKind::Context => "`CallContext`",
                _ => "`Payload`",
            };
            return Err(Error::new_spanned(
                &second.ty,
                format!("a service method takes at most one {what} parameter"),
            ));
        }
    }
    if params.iter().any(|p| p.kind == ParamKind::Payload) {
        if let Some(value) = params.iter().find(|p| p.kind == ParamKind::Value) {
            return Err(Error::new_spanned(
                &value.ty,
                "a method with a `Payload` parameter takes no other arguments: the payload is the whole request",
            ));
        }
        if let Some(sink) = params.iter().find(|p| p.kind == ParamKind::Sink) {
            return Err(Error::new_spanned(
                &sink.ty,
                "a method with a `Payload` parameter cannot stream: it answers once",
            ));
        }
    }
    let stream = params
        .iter()
        .find(|p| p.kind == ParamKind::Sink)
        .and_then(|p| sink_item(&p.ty).cloned());

    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if contains_impl_trait(&output) {
        return Err(Error::new_spanned(
            &output,
            "a service method returns a concrete type: its value is encoded for another process",
        ));
    }
    let result = result_type(&output);
    if stream.is_some() {
        let ok = result.as_ref().map_or(&output, |r| &r.ok);
        if !is_unit(ok) {
            return Err(Error::new_spanned(
                &output,
                "a streaming method (one with a `Sink` parameter) returns `()` or `Result<(), E>`: its items go through the sink",
            ));
        }
    }

    let mut blocking = None;
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("rpc")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("blocking") {
                blocking = Some(meta.path.span());
                Ok(())
            } else {
                Err(meta.error("unknown `rpc` option; the only one is `blocking`"))
            }
        })?;
    }
    let run = match (blocking, &sig.asyncness) {
        (Some(_), Some(asyncness)) => {
            return Err(Error::new_spanned(
                asyncness,
                "an `async fn` cannot be `#[rpc(blocking)]`: blocking methods are plain `fn`s run on tokio's blocking threads",
            ));
        }
        (Some(_), None) => Run::Blocking,
        (None, Some(_)) => Run::Async,
        (None, None) => Run::Inline,
    };

    let doc_attrs: Vec<Attribute> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Method {
        ident: sig.ident.clone(),
        name,
        doc: doc_text(&doc_attrs),
        doc_attrs,
        run,
        params,
        output,
        result,
        stream,
    })
}

fn read_param(arg: &FnArg) -> Result<Param> {
    let FnArg::Typed(pat_type) = arg else {
        return Err(Error::new_spanned(arg, "`self` comes first, once"));
    };
    let ident = match &*pat_type.pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
        other => {
            return Err(Error::new_spanned(
                other,
                "a service method's parameters are `name: Type`, without patterns",
            ));
        }
    };
    let ty = (*pat_type.ty).clone();
    if contains_impl_trait(&ty) {
        return Err(Error::new_spanned(
            &ty,
            "a service method's parameters have concrete types: `impl Trait` cannot be decoded",
        ));
    }
    if let Type::Reference(r) = &ty {
        return Err(Error::new_spanned(
            r,
            "a service method's parameters are owned: arguments are decoded into new values (take `String`, not `&str`)",
        ));
    }
    let kind = match last_segment(&ty) {
        Some(seg) if seg.ident == "Sink" => {
            if sink_item(&ty).is_none() {
                return Err(Error::new_spanned(
                    &ty,
                    "a `Sink` parameter names its item type: `Sink<T>`",
                ));
            }
            ParamKind::Sink
        }
        Some(seg) if seg.ident == "CallContext" => ParamKind::Context,
        Some(seg) if seg.ident == "Payload" && seg.arguments.is_none() => ParamKind::Payload,
        _ => ParamKind::Value,
    };
    Ok(Param { ident, ty, kind })
}

/// The last segment of a path type, if `ty` is one.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

/// The type arguments of the last segment of a path type.
fn type_args(ty: &Type) -> Vec<&Type> {
    match last_segment(ty).map(|s| &s.arguments) {
        Some(PathArguments::AngleBracketed(args)) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `T` of `Sink<T>`.
fn sink_item(ty: &Type) -> Option<&Type> {
    match type_args(ty).as_slice() {
        [item] => Some(item),
        _ => None,
    }
}

/// `Some` for `…::Result<T, E>` (two type arguments).
fn result_type(ty: &Type) -> Option<ResultType> {
    if last_segment(ty)?.ident != "Result" {
        return None;
    }
    match type_args(ty).as_slice() {
        [ok, err] => Some(ResultType {
            ok: (*ok).clone(),
            err_is_fault: last_segment(err).is_some_and(|s| s.ident == "Fault"),
        }),
        _ => None,
    }
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(t) => t.elems.is_empty(),
        Type::Paren(p) => is_unit(&p.elem),
        Type::Group(g) => is_unit(&g.elem),
        _ => false,
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// The text of `///` lines: one leading space dropped from each, joined, trimmed.
fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| {
            text.lines()
                .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// A type as a user wrote it, without the spaces token printing puts between every token:
/// `Vec<Option<u8>>`, `(i64, String)`, `&'a mut [u8; 4]`.
pub(crate) fn type_text(ty: &Type) -> String {
    let printed = quote::quote!(#ty).to_string();
    let mut out = String::with_capacity(printed.len());
    for token in printed.split_whitespace() {
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let glue = match (out.chars().last(), token.chars().next()) {
            (Some(prev), Some(next)) => word(prev) && (word(next) || next == '\''),
            _ => false,
        };
        if glue || out.ends_with(',') || out.ends_with(';') {
            out.push(' ');
        }
        out.push_str(token);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::type_text;

    #[test]
    fn type_text_reads_like_source() {
        let cases = [
            ("i64", "i64"),
            ("Vec < Option < u8 > >", "Vec<Option<u8>>"),
            ("(i64 , String)", "(i64, String)"),
            ("[u8 ; 4]", "[u8; 4]"),
            (
                "std :: collections :: HashMap < String , u8 >",
                "std::collections::HashMap<String, u8>",
            ),
            ("Box < dyn Fn () + Send >", "Box<dyn Fn()+Send>"),
            ("()", "()"),
        ];
        for (source, text) in cases {
            let ty: syn::Type = syn::parse_str(source).expect("a type");
            assert_eq!(type_text(&ty), text, "{source}");
        }
    }
}
