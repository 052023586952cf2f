//! The clients' typed helpers: [`Typed`], and `get_as` / `set_as` / `compare_and_set_as` on
//! [`Local`] and [`Remote`], values as JSON.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::local::Local;
use crate::protocol::VarPath;
use crate::remote::Remote;
use crate::store::{Stored, Written};

/// A variable's value decoded as `T`, with the version and time of the write that set it:
/// what the typed helpers of both clients give.
///
/// [`Local::get_as`], [`Local::set_as`], [`Local::compare_and_set_as`], [`Remote::get_as`] and
/// [`Remote::set_as`] store a value as its JSON (serde_json, compact), so `memwire get` prints
/// it as it is, `memwire set` writes one by hand, and a client in any language reads it.
///
/// A value that is not the JSON of the type asked for (another type, plain text, bytes) is
/// [`Error::Decode`], naming the variable and the type; nothing panics, and the client stays
/// usable. A value serde_json cannot write (a map whose keys are not strings) is
/// [`Error::Encode`] and is not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Typed<T> {
    /// The value.
    pub value: T,
    /// The revision of the write that set it.
    pub version: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// `value`'s JSON, or [`Error::Encode`] naming `path`.
fn encode<T: Serialize + ?Sized>(path: &VarPath, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Encode {
        path: path.clone(),
        source,
    })
}

/// `stored`'s value read as the JSON of a `T`, or [`Error::Decode`] naming `path` and `T`.
fn decode<T: DeserializeOwned>(path: &VarPath, stored: Stored) -> Result<Typed<T>> {
    let value = serde_json::from_slice(&stored.value).map_err(|source| Error::Decode {
        path: path.clone(),
        ty: std::any::type_name::<T>(),
        source,
    })?;
    Ok(Typed {
        value,
        version: stored.version,
        timestamp_ms: stored.timestamp_ms,
    })
}

impl Local {
    /// The variable at `path` decoded from JSON as a `T` (`None` if it does not exist), read
    /// as [`Local::get`] reads; [`Error::Decode`] if it is not a `T`. See
    /// [`Typed`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use memwire_store::{Local, LocalServer, Store, StoreConfig};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let (store, startup) = Store::open(StoreConfig::new(tmp.path()))?;
    /// # let key = startup.admin_key.expect("a first start makes an admin key");
    /// # let socket = tmp.path().join("store.sock");
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # let server = runtime.block_on(async { LocalServer::bind(Arc::new(store), &socket) })?;
    /// # let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// # let served = runtime.spawn(server.run(async { let _ = stopped.await; }));
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct Rate {
    ///     currency: String,
    ///     rate: f64,
    /// }
    ///
    /// let store = Local::connect_at(&socket, &key)?;
    /// let path = "acme/billing/rate".parse()?;
    /// let eur = Rate { currency: "EUR".into(), rate: 0.19 };
    /// let written = store.set_as(&path, &eur)?;
    /// // Stored as JSON: readable by `memwire get` and by any client.
    /// assert_eq!(store.get(&path)?.map(|s| s.value), Some(br#"{"currency":"EUR","rate":0.19}"#.to_vec()));
    ///
    /// let read = store.get_as::<Rate>(&path)?.expect("it was just set");
    /// assert_eq!((read.value, read.version), (eur, written.version));
    ///
    /// // Not a `u64`: a typed error that names the variable.
    /// let err = store.get_as::<u64>(&path).unwrap_err();
    /// assert!(err.to_string().starts_with("value of acme/billing/rate is not the JSON of a u64"));
    /// # drop(store);
    /// # let _ = stop.send(());
    /// # runtime.block_on(served)??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_as<T: DeserializeOwned>(&self, path: &VarPath) -> Result<Option<Typed<T>>> {
        self.get(path)?
            .map(|stored| decode(path, stored))
            .transpose()
    }

    /// Sets the variable at `path` to `value`'s JSON, as [`Local::set`] does.
    pub fn set_as<T: Serialize + ?Sized>(&self, path: &VarPath, value: &T) -> Result<Written> {
        self.set(path, &encode(path, value)?)
    }

    /// Sets the variable at `path` to `value`'s JSON only if its version is `expected` (`0`:
    /// it does not exist), else [`Error::Conflict`], as [`Local::compare_and_set`] does.
    pub fn compare_and_set_as<T: Serialize + ?Sized>(
        &self,
        path: &VarPath,
        value: &T,
        expected: u64,
    ) -> Result<Written> {
        self.compare_and_set(path, &encode(path, value)?, expected)
    }
}

impl Remote {
    /// The variable at `path` decoded from JSON as a `T`, as [`Remote::get`] reads it
    /// ([`Error::NotFound`] if it does not exist); [`Error::Decode`] if it is not a `T`. See
    /// [`Typed`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use memwire_store::{Remote, RemoteOptions, RemoteServer, ServerOptions, Store, StoreConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let (store, startup) = Store::open(StoreConfig::new(tmp.path()))?;
    /// # let key = startup.admin_key.expect("a first start makes an admin key");
    /// # let server = RemoteServer::bind("127.0.0.1:0", Arc::new(store), None, ServerOptions::default()).await?;
    /// # let url = format!("ws://{}", server.local_addr()?);
    /// # tokio::spawn(server.run(std::future::pending()));
    /// let remote = Remote::connect(&url, &key, RemoteOptions::default()).await?;
    /// let path = "acme/app/limits".parse()?;
    /// let written = remote.set_as(&path, &[10_u32, 20, 30], None).await?;
    /// let read = remote.get_as::<Vec<u32>>(&path).await?;
    /// assert_eq!((read.value, read.version), (vec![10, 20, 30], written.version));
    ///
    /// // Only if nobody wrote it since: the version read.
    /// remote.set_as(&path, &[40_u32], Some(read.version)).await?;
    /// assert!(remote.set_as(&path, &[50_u32], Some(read.version)).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_as<T: DeserializeOwned>(&self, path: &VarPath) -> Result<Typed<T>> {
        decode(path, self.get(path).await?)
    }

    /// Sets the variable at `path` to `value`'s JSON, with `expected_version` as in
    /// [`Remote::set`]. `value` is encoded at the call, so the future does not borrow it.
    pub fn set_as<'a, T: Serialize + ?Sized>(
        &'a self,
        path: &'a VarPath,
        value: &T,
        expected_version: Option<u64>,
    ) -> impl Future<Output = Result<Written>> + Send + 'a {
        let encoded = encode(path, value);
        async move { self.set(path, &encoded?, expected_version).await }
    }
}
