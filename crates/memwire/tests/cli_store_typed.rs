//! The store clients' typed helpers (`get_as`, `set_as`, `compare_and_set_as`) through a real
//! `memwire serve`, with the CLI reading and writing the same JSON.

mod serve_support;
#[path = "../../memwire-shm/tests/support/mod.rs"]
mod support;

use anyhow::{Context, Result, bail, ensure};
use memwire::store::protocol::VarPath;
use memwire::store::{Error, Local, Remote, RemoteOptions};
use serve_support::{ok, serve_with};
use support::trial;

fn main() {
    support::private_runtime_dir("memwire-cli-store-typed");
    support::main(
        |role| bail!("no roles: {role}"),
        vec![trial("typed_values_through_a_real_server", typed_values)],
    )
}

/// A value of the typed helpers' tests.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Rate {
    currency: String,
    rate: f64,
}

/// The typed helpers of both clients through a real `memwire serve`: a value they write is
/// JSON that `memwire get` prints as it is, a JSON value `memwire set` writes decodes, a
/// compare-and-set needs the version, and a value of another shape is `Error::Decode` naming
/// the variable and the type, after which both clients go on working.
fn typed_values() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--name", "typed"])?;
    let key = served.admin_key.clone().context("no admin key printed")?;
    let url = served.url.as_str();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--name", "typed"]);
        ok(&data, &all)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let remote = runtime.block_on(Remote::connect(url, &key, RemoteOptions::default()))?;
    let local = Local::connect("typed", &key)?;
    let path = |p: &str| -> Result<VarPath> { Ok(p.parse()?) };

    // Written by the remote client: JSON for the CLI, local and remote, and the local client.
    let eur = Rate {
        currency: "EUR".to_owned(),
        rate: 0.19,
    };
    let written = runtime.block_on(remote.set_as(&path("a/fx/eur")?, &eur, None))?;
    ensure!(cli(&["get", "a/fx/eur"])? == "{\"currency\":\"EUR\",\"rate\":0.19}\n");
    ensure!(
        ok(&data, &["get", "a/fx/eur", "--remote", url])?
            == "{\"currency\":\"EUR\",\"rate\":0.19}\n"
    );
    let read = local
        .get_as::<Rate>(&path("a/fx/eur")?)?
        .context("a/fx/eur is missing")?;
    ensure!(
        read.value == eur
            && read.version == written.version
            && read.timestamp_ms == written.timestamp_ms,
        "{read:?} / {written:?}"
    );

    // Written by hand with the CLI, read typed by both clients.
    ensure!(
        cli(&["set", "a/fx/usd", r#"{"currency": "USD", "rate": 1.0}"#])?
            == "a/fx/usd = version 2\n"
    );
    let usd = Rate {
        currency: "USD".to_owned(),
        rate: 1.0,
    };
    let read = runtime.block_on(remote.get_as::<Rate>(&path("a/fx/usd")?))?;
    ensure!(read.value == usd && read.version == 2, "{read:?}");
    ensure!(local.get_as::<Rate>(&path("a/fx/usd")?)?.map(|t| t.value) == Some(usd));

    // Compare-and-set: only at the version read.
    let cheaper = Rate {
        currency: "EUR".to_owned(),
        rate: 0.18,
    };
    match local.compare_and_set_as(&path("a/fx/eur")?, &cheaper, written.version + 7) {
        Err(Error::Conflict { expected, found }) if found == written.version => {
            ensure!(expected == written.version + 7);
        }
        other => bail!("not a conflict: {other:?}"),
    }
    let again = local.compare_and_set_as(&path("a/fx/eur")?, &cheaper, written.version)?;
    match runtime.block_on(remote.set_as(&path("a/fx/eur")?, &eur, Some(written.version))) {
        Err(Error::Conflict { found, .. }) if found == again.version => {}
        other => bail!("not a conflict: {other:?}"),
    }
    let read = runtime.block_on(remote.get_as::<Rate>(&path("a/fx/eur")?))?;
    ensure!(
        read.value == cheaper && read.version == again.version,
        "{read:?}"
    );
    local.set_as(&path("a/fx/list")?, &[1_u32, 2, 3])?;
    ensure!(cli(&["get", "a/fx/list"])? == "[1,2,3]\n");

    // Not the type asked for: a typed error naming the variable and the type.
    cli(&["set", "a/fx/note", "hello"])?;
    let decode_error = |result: std::result::Result<(), Error>, p: &str| match result {
        Err(Error::Decode { path, ty, .. }) if path.to_string() == p && ty.ends_with("Rate") => {
            Ok(())
        }
        other => bail!("{p}: not a decode error: {other:?}"),
    };
    for p in ["a/fx/note", "a/fx/list"] {
        decode_error(local.get_as::<Rate>(&path(p)?).map(drop), p)?;
        decode_error(
            runtime.block_on(remote.get_as::<Rate>(&path(p)?)).map(drop),
            p,
        )?;
    }
    let e = local
        .get_as::<Rate>(&path("a/fx/note")?)
        .err()
        .context("hello decoded as a Rate")?;
    let chain = format!("{:#}", anyhow::Error::new(e));
    ensure!(
        chain.starts_with("value of a/fx/note is not the JSON of a cli_store_typed::Rate: "),
        "{chain}"
    );
    // Both clients go on: an absent value, and a present one.
    ensure!(local.get_as::<Rate>(&path("a/fx/none")?)?.is_none());
    match runtime.block_on(remote.get_as::<Rate>(&path("a/fx/none")?)) {
        Err(Error::NotFound(_)) => {}
        other => bail!("not a not-found: {other:?}"),
    }
    ensure!(
        runtime
            .block_on(remote.get_as::<Rate>(&path("a/fx/eur")?))?
            .value
            == cheaper
    );

    // A value serde_json cannot write: refused before anything is sent.
    let tuple_keys = std::collections::BTreeMap::from([((1_u8, 2_u8), 3_u8)]);
    for result in [
        local.set_as(&path("a/fx/map")?, &tuple_keys),
        runtime.block_on(remote.set_as(&path("a/fx/map")?, &tuple_keys, None)),
    ] {
        match result {
            Err(Error::Encode { path, .. }) if path.to_string() == "a/fx/map" => {}
            other => bail!("not an encode error: {other:?}"),
        }
    }
    ensure!(
        local.get(&path("a/fx/map")?)?.is_none(),
        "a/fx/map was written"
    );
    drop((local, remote));
    served.guard.kill()?;
    Ok(())
}
