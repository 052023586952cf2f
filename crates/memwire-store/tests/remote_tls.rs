//! `wss://` with a CA made by rcgen: a client that trusts it works, one that does not is
//! refused.

mod remote_support;

use anyhow::{Result, ensure};
use memwire_store::remote::{Remote, RemoteOptions, ServerOptions, tls};
use remote_support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_trusted_ca_and_a_refused_one() -> Result<()> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = tls::self_signed(&names)?;
    let server = Server::start_tls(ServerOptions::default(), Some(cert.config.clone())).await?;
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &cert.ca_pem)?;

    let mut options = RemoteOptions::default();
    options.ca_file = Some(ca_file);
    let port = server.addr.port();
    for url in [
        format!("wss://127.0.0.1:{port}"),
        format!("wss://localhost:{port}"),
    ] {
        let remote = Remote::connect(&url, &server.admin_key, options.clone()).await?;
        let path = "t/s/v".parse()?;
        let w = remote.set(&path, b"secret", None).await?;
        ensure!(remote.get(&path).await?.version == w.version);
    }

    // Another CA: the handshake fails.
    let other = tls::self_signed(&names)?;
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, &other.ca_pem)?;
    let mut untrusting = RemoteOptions::default();
    untrusting.ca_file = Some(other_file);
    let refused = Remote::connect(&server.url, &server.admin_key, untrusting).await;
    ensure!(
        refused.is_err(),
        "a client that does not trust the CA connected"
    );
    // Nor do the public roots trust it.
    ensure!(
        Remote::connect(&server.url, &server.admin_key, RemoteOptions::default())
            .await
            .is_err()
    );
    // Plain ws:// to a TLS server is refused too.
    let plain = format!("ws://127.0.0.1:{port}");
    ensure!(
        Remote::connect(&plain, &server.admin_key, RemoteOptions::default())
            .await
            .is_err()
    );
    Ok(())
}
