//! `#[service]` at compile time: every misuse is a spanned error (the `.stderr` files), and every
//! accepted shape compiles warning-free. The cases live beside the macro, in
//! `crates/memwire-macros/tests/`; they run here, where the generated code's dependency is.

#[test]
fn service_macro_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("../memwire-macros/tests/ui/*.rs");
    t.pass("../memwire-macros/tests/pass/*.rs");
}
