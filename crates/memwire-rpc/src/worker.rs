//! Workers: child processes that serve calls over a link their parent made
//! ([`Worker::spawn`]), or running services found by name ([`Worker::connect`]).
//!
//! A spawned worker inherits its end of the link (`MEMWIRE_TICKET`) and calls
//! [`crate::serve`]. Its stdout and stderr are piped back and forwarded line by line as
//! `tracing` events (target `memwire::worker`, field `worker`), and to [`Worker::output`] for
//! whoever wants them. Dropping the `Worker` kills the child; [`Worker::stop`] first closes the
//! link and sends SIGTERM (the child's `serve` returns and it exits), then kills it after a
//! deadline. The child dies with its parent: its end of the link watches the parent's pidfd.
//!
//! With a [`RestartPolicy`], a worker that dies is started again, after a backoff that
//! doubles from `initial_backoff` to `max_backoff`; calls made while it is down fail with
//! [`Error::PeerGone`] (the circuit breaker, if any, opens on them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use memwire_transport::{Guest, Host, HostConfig};
use tokio::sync::mpsc;

use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};

/// How a worker is started and stopped.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The name its output is tagged with (default: the program's file name).
    pub name: Option<String>,
    /// The link's shape and wait strategy.
    pub host: HostConfig,
    /// How long a started worker has to answer its first ping (default 10 s).
    pub ready_timeout: Duration,
    /// How long [`Worker::stop`] waits for the child to exit before killing it (default 5 s).
    pub stop_timeout: Duration,
    /// Restart the worker when it dies (default: never).
    pub restart: Option<RestartPolicy>,
    /// The client's breaker and heartbeats.
    pub client: ClientConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            name: None,
            host: HostConfig::default(),
            ready_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(5),
            restart: None,
            client: ClientConfig::default(),
        }
    }
}

/// When and how often a dead worker is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed in all (then it stays down).
    pub max_restarts: u32,
    /// Wait before the first restart; doubles after each.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Which stream a line of a worker's output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    /// Its standard output.
    Stdout,
    /// Its standard error.
    Stderr,
}

/// One line a worker printed (without its newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputLine {
    /// Where it printed it.
    pub stream: OutputStream,
    /// The line (invalid UTF-8 replaced).
    pub line: String,
}

/// A worker process (or a connection to a running service) and the client that calls it.
#[derive(Debug)]
pub struct Worker {
    name: String,
    state: Arc<Mutex<State>>,
    output: Option<mpsc::UnboundedReceiver<OutputLine>>,
    config: WorkerConfig,
    /// Restarts done so far.
    restarts: Arc<AtomicU64>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct State {
    /// `None` once stopping.
    client: Option<Client>,
    child: Option<Child>,
    /// What restarts spawn again; `None` for a connected service.
    spawner: Option<Spawner>,
    stopping: bool,
}

/// What it takes to start the worker (again).
#[derive(Debug)]
struct Spawner {
    client: ClientConfig,
    host: Arc<Host>,
    command: Command,
    output: mpsc::UnboundedSender<OutputLine>,
}

static NEXT_WORKER: AtomicU64 = AtomicU64::new(0);

impl Worker {
    /// Starts `command` as a worker with the default [`WorkerConfig`] and waits until it
    /// answers a ping.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be started; [`Error::PeerGone`] if it exits before it
    /// serves; [`Error::Timeout`] if it does not answer in `ready_timeout`.
    pub async fn spawn(command: Command) -> Result<Self> {
        Self::spawn_with(command, WorkerConfig::default()).await
    }

    /// [`Worker::spawn`] with a configuration.
    ///
    /// # Errors
    /// As [`Worker::spawn`].
    pub async fn spawn_with(mut command: Command, config: WorkerConfig) -> Result<Self> {
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| program_name(&command));
        let host_name = format!(
            "worker-{}-{}",
            std::process::id(),
            NEXT_WORKER.fetch_add(1, Ordering::Relaxed)
        );
        let host = Arc::new(Host::bind(&host_name, config.host.clone()).map_err(Error::from)?);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let (output_tx, output_rx) = mpsc::unbounded_channel();
        let mut spawner = Spawner {
            client: config.client,
            host,
            command,
            output: output_tx,
        };
        let (child, client) = spawner.start(&name, config.ready_timeout).await?;
        let state = Arc::new(Mutex::new(State {
            client: Some(client),
            child: Some(child),
            spawner: Some(spawner),
            stopping: false,
        }));
        let restarts = Arc::new(AtomicU64::new(0));
        let supervisor = config.restart.map(|policy| {
            tokio::spawn(supervise(
                name.clone(),
                Arc::clone(&state),
                policy,
                config.ready_timeout,
                Arc::clone(&restarts),
            ))
        });
        Ok(Self {
            name,
            state,
            output: Some(output_rx),
            config,
            restarts,
            supervisor,
        })
    }

    /// Connects to the running service registered as `name` ([`crate::serve_as`]).
    ///
    /// # Errors
    /// [`Error::NoService`] when no live service has that name; the link's errors when it
    /// refuses the connection.
    pub async fn connect(name: &str) -> Result<Self> {
        Self::connect_with(name, ClientConfig::default()).await
    }

    /// [`Worker::connect`] with the client's configuration.
    ///
    /// # Errors
    /// As [`Worker::connect`].
    pub async fn connect_with(name: &str, config: ClientConfig) -> Result<Self> {
        crate::registry::lookup(name)?;
        let owned = name.to_owned();
        let link = tokio::task::spawn_blocking(move || Guest::connect(&owned))
            .await
            .map_err(|e| Error::io("connect", std::io::Error::other(e)))?
            .map_err(Error::from)?;
        let client = Client::with_config(link, config);
        Ok(Self {
            name: name.to_owned(),
            state: Arc::new(Mutex::new(State {
                client: Some(client),
                child: None,
                spawner: None,
                stopping: false,
            })),
            output: None,
            config: WorkerConfig::default(),
            restarts: Arc::new(AtomicU64::new(0)),
            supervisor: None,
        })
    }

    /// The worker's name (its output's tag).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client of the running worker (a fresh one after each restart). Cheap to clone;
    /// a clone kept past [`Worker::stop`] keeps the link open until it is dropped.
    #[must_use]
    pub fn client(&self) -> Client {
        self.lock()
            .client
            .clone()
            .expect("only `stop` and `drop`, which consume the worker, take the client")
    }

    /// The worker's pid: the child's, or the connected service's.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.client().peer_pid()
    }

    /// Times the worker was restarted.
    #[must_use]
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The worker's output lines, from now on (once: later calls get `None`; `None` also for
    /// a connected service, whose output is its own).
    pub fn output(&mut self) -> Option<mpsc::UnboundedReceiver<OutputLine>> {
        self.output.take()
    }

    /// Stops the worker: closes its link and sends it SIGTERM (its `serve` returns), waits up
    /// to `stop_timeout` for it to exit, then kills it. Gives its exit status (`None` for a connected service).
    ///
    /// # Errors
    /// [`Error::Io`] if waiting for the child fails.
    pub async fn stop(mut self) -> Result<Option<ExitStatus>> {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        let (child, client) = {
            let mut state = self.lock();
            state.stopping = true;
            state.spawner = None;
            (state.child.take(), state.client.take())
        };
        // Closes the link, unless the caller kept a clone; SIGTERM ends `serve` either way.
        drop(client);
        let Some(mut child) = child else {
            return Ok(None);
        };
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = self.config.stop_timeout;
        tokio::task::spawn_blocking(move || wait_or_kill(&mut child, deadline))
            .await
            .map_err(|e| Error::io("wait for the worker", std::io::Error::other(e)))?
            .map(Some)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.abort();
        }
        let child = {
            let mut state = self.lock();
            state.stopping = true;
            state.spawner = None;
            state.child.take()
        };
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Spawner {
    /// Starts the command on a new link and waits until it answers a ping.
    async fn start(&mut self, name: &str, ready: Duration) -> Result<(Child, Client)> {
        let host = Arc::clone(&self.host);
        // `Host::spawn` blocks until the child joins; the command goes to the blocking thread
        // and back.
        let mut command = std::mem::replace(&mut self.command, Command::new(""));
        let (command, spawned) = tokio::task::spawn_blocking(move || {
            let spawned = host.spawn(&mut command);
            (command, spawned)
        })
        .await
        .map_err(|e| Error::io("spawn the worker", std::io::Error::other(e)))?;
        self.command = command;
        let (mut child, link) = spawned.map_err(Error::from)?;
        forward(name, &mut child, &self.output);
        let client = Client::with_config(link, self.client);
        if let Err(e) = client.ping(ready).await {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok((child, client))
    }
}

/// Restarts the worker whenever its link closes, per `policy`.
async fn supervise(
    name: String,
    state: Arc<Mutex<State>>,
    policy: RestartPolicy,
    ready: Duration,
    restarts: Arc<AtomicU64>,
) {
    let mut backoff = policy.initial_backoff;
    let mut done = 0;
    loop {
        let Some(client) = state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .client
            .clone()
        else {
            return;
        };
        client.closed().await;
        drop(client);
        if done >= policy.max_restarts {
            tracing::warn!(target: "memwire::worker", worker = %name, "worker died; no restarts left");
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(policy.max_backoff);
        let taken = {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            if s.stopping {
                return;
            }
            if let Some(mut old) = s.child.take() {
                let _ = old.kill();
                let _ = old.wait();
            }
            s.spawner.take()
        };
        let Some(mut spawner) = taken else { return };
        let started = spawner.start(&name, ready).await;
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.stopping {
            return;
        }
        s.spawner = Some(spawner);
        done += 1;
        match started {
            Ok((child, client)) => {
                tracing::info!(target: "memwire::worker", worker = %name, pid = child.id(), "worker restarted");
                s.child = Some(child);
                s.client = Some(client);
                restarts.fetch_add(1, Ordering::Relaxed);
                backoff = policy.initial_backoff;
            }
            Err(e) => {
                tracing::warn!(target: "memwire::worker", worker = %name, error = %e, "worker restart failed");
            }
        }
    }
}

/// Forwards the child's stdout and stderr, line by line, from two threads.
fn forward(name: &str, child: &mut Child, output: &mpsc::UnboundedSender<OutputLine>) {
    fn pump<R: std::io::Read + Send + 'static>(
        name: String,
        stream: OutputStream,
        reader: R,
        output: mpsc::UnboundedSender<OutputLine>,
    ) {
        let spawned = std::thread::Builder::new()
            .name(format!("memwire-out-{name}"))
            .spawn(move || {
                for line in BufReader::new(reader).split(b'\n') {
                    let Ok(mut line) = line else { break };
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let line = String::from_utf8_lossy(&line).into_owned();
                    match stream {
                        OutputStream::Stdout => {
                            tracing::info!(target: "memwire::worker", worker = %name, stream = "stdout", "{line}");
                        }
                        OutputStream::Stderr => {
                            tracing::warn!(target: "memwire::worker", worker = %name, stream = "stderr", "{line}");
                        }
                    }
                    let _ = output.send(OutputLine { stream, line });
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "memwire::worker", error = %e, "cannot forward a worker's output");
        }
    }
    if let Some(out) = child.stdout.take() {
        pump(name.to_owned(), OutputStream::Stdout, out, output.clone());
    }
    if let Some(err) = child.stderr.take() {
        pump(name.to_owned(), OutputStream::Stderr, err, output.clone());
    }
}

/// Waits up to `deadline` for `child` to exit, then kills it; reaps it either way.
fn wait_or_kill(child: &mut Child, deadline: Duration) -> Result<ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None) => {
                let _ = child.kill();
                return child
                    .wait()
                    .map_err(|e| Error::io("reap the killed worker", e));
            }
            Err(e) => return Err(Error::io("wait for the worker", e)),
        }
    }
}

fn program_name(command: &Command) -> String {
    std::path::Path::new(command.get_program())
        .file_name()
        .map_or_else(|| "worker".to_owned(), |n| n.to_string_lossy().into_owned())
}
