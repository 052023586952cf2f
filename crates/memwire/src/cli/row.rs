//! The rows `ls`, `gc` and `resource info` print: a table for people, JSON for scripts.
//!
//! Every row has a `kind` and a `name`. Each kind of object (resources, store servers and their
//! tenants, services, transport hosts) is one variant of [`Row`] and renders its own table,
//! since the kinds share few other columns.

use std::path::PathBuf;
use std::time::Duration;

use comfy_table::{Table, presets};
use memwire::shm::resource::ResourceInfo;
use serde::{Serialize, Serializer};

use super::units::{show_duration, show_size};

/// One listed object. Serialises as an object with `"kind": "<variant>"` and its fields.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Row {
    /// A named shared-memory resource.
    Resource(ResourceRow),
    /// A transport host listening in the runtime directory.
    TransportHost(HostRow),
    /// A named RPC service in the registry.
    Service(ServiceRow),
    /// A store server (`memwire serve`) listening in the runtime directory.
    StoreServer(StoreServerRow),
    /// A tenant of a running store server.
    Tenant(TenantRow),
}

/// A store server that answered at its socket.
#[derive(Debug, Serialize)]
pub(crate) struct StoreServerRow {
    /// Its name (`memwire serve --name`).
    pub(crate) name: String,
    /// Its pid, when visible from here.
    pub(crate) pid: Option<u32>,
    /// Its local socket (a remote server's URL, with `ls --remote`).
    pub(crate) socket: PathBuf,
    /// How many tenants a key it accepted may see (`null` if none was accepted).
    pub(crate) tenants: Option<usize>,
    /// Why its tenants are not listed (no key it accepts, or the error it gave).
    pub(crate) problem: Option<String>,
}

/// A tenant, as its local store server (`memwire serve`) reports it.
#[derive(Debug, Serialize)]
pub(crate) struct TenantRow {
    pub(crate) name: String,
    /// The store server it lives in.
    pub(crate) server: String,
    pub(crate) services: usize,
    pub(crate) variables: u32,
    pub(crate) used_bytes: u64,
    pub(crate) quota_bytes: u64,
    pub(crate) revision: u64,
    pub(crate) clients: u32,
}

impl TenantRow {
    /// `t`, a tenant of the store server `server`.
    pub(crate) fn new(
        server: &str,
        t: &memwire::store::local::TenantInfo,
        services: usize,
    ) -> Self {
        Self {
            name: t.tenant.clone(),
            server: server.to_owned(),
            services,
            variables: t.variables,
            used_bytes: t.used_bytes,
            quota_bytes: t.quota_bytes,
            revision: t.revision,
            clients: t.clients,
        }
    }
}

/// A registered RPC service, with what its transport host said.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceRow {
    pub(crate) name: String,
    pub(crate) pid: u32,
    /// Its bootstrap socket.
    pub(crate) socket: PathBuf,
    /// Time since it registered; JSON: `uptime_s`, float seconds.
    #[serde(rename = "uptime_s", serialize_with = "secs")]
    pub(crate) uptime: Duration,
    /// Connected clients, when its host answered.
    pub(crate) clients: Option<usize>,
    /// `live` (its host answered), `busy` (running, did not answer), `no-host` (registered
    /// but its socket is gone).
    pub(crate) health: &'static str,
}

impl ServiceRow {
    /// `entry` (a live registry entry) with its host's status, if any.
    pub(crate) fn new(
        entry: &memwire::rpc::ServiceEntry,
        host: Option<&memwire::transport::HostStatus>,
    ) -> Self {
        use memwire::transport::HostState;
        let (clients, health) = match host.map(|h| &h.state) {
            Some(HostState::Live { peers, .. }) => (Some(peers.len()), "live"),
            Some(HostState::Busy) => (None, "busy"),
            Some(HostState::Stale) | None => (None, "no-host"),
        };
        Self {
            name: entry.name.clone(),
            pid: entry.pid,
            socket: entry.socket.clone(),
            uptime: entry.uptime(),
            clients,
            health,
        }
    }
}

/// A transport host, as `memwire_transport::list_hosts` sees it.
#[derive(Debug, Serialize)]
pub(crate) struct HostRow {
    pub(crate) name: String,
    /// Its pid, when it is running.
    pub(crate) pid: Option<u32>,
    /// Its bootstrap socket.
    pub(crate) socket: PathBuf,
    /// `live` (answered), `busy` (running, not in `accept`), or `stale` (dead host's socket).
    pub(crate) state: &'static str,
    /// What the host is, when known: `store links of <server>` for a store server's
    /// shared-memory request path.
    pub(crate) what: Option<String>,
    /// Most guests at once (`null` unless it answered).
    pub(crate) max_peers: Option<u32>,
    /// Attached guests.
    pub(crate) peers: Vec<PeerRow>,
    /// Slots of the host's sending pools in use, over all links.
    pub(crate) slots_out: u64,
    /// Slots of those pools in all.
    pub(crate) slots_total: u64,
}

/// One guest of a host.
#[derive(Debug, Serialize)]
pub(crate) struct PeerRow {
    pub(crate) pid: u32,
    pub(crate) slots_out: u32,
    pub(crate) slots_total: u32,
    pub(crate) messages_sent: u64,
    pub(crate) messages_received: u64,
}

impl From<&memwire::transport::HostStatus> for HostRow {
    fn from(h: &memwire::transport::HostStatus) -> Self {
        use memwire::transport::HostState;
        let (state, max_peers, peers): (_, _, &[memwire::transport::PeerStatus]) = match &h.state {
            HostState::Live { max_peers, peers } => ("live", Some(*max_peers), peers),
            HostState::Busy => ("busy", None, &[]),
            HostState::Stale => ("stale", None, &[]),
        };
        Self {
            name: h.name.to_string(),
            pid: h.pid,
            socket: h.socket.clone(),
            state,
            what: None,
            max_peers,
            slots_out: peers.iter().map(|p| u64::from(p.slots_out)).sum(),
            slots_total: peers.iter().map(|p| u64::from(p.slots_total)).sum(),
            peers: peers
                .iter()
                .map(|p| PeerRow {
                    pid: p.pid,
                    slots_out: p.slots_out,
                    slots_total: p.slots_total,
                    messages_sent: p.messages_sent,
                    messages_received: p.messages_received,
                })
                .collect(),
        }
    }
}

/// A resource, as `memwire_shm::resource::list` sees it.
#[derive(Debug, Serialize)]
pub(crate) struct ResourceRow {
    pub(crate) name: String,
    pub(crate) namespace: String,
    /// Its file under `/dev/shm`.
    pub(crate) path: PathBuf,
    /// Payload bytes.
    pub(crate) size: u64,
    /// Bytes last written with `put`.
    pub(crate) written: u64,
    /// Pids of the live processes that hold it.
    pub(crate) holders: Vec<u32>,
    /// Time since creation; JSON: `age_s`, float seconds.
    #[serde(rename = "age_s", serialize_with = "secs")]
    pub(crate) age: Duration,
    /// Time to live; JSON: `ttl_s`, float seconds, `null` if none.
    #[serde(rename = "ttl_s", serialize_with = "opt_secs")]
    pub(crate) ttl: Option<Duration>,
    /// `live`, `orphan` or `expired`.
    pub(crate) state: &'static str,
}

impl From<&ResourceInfo> for ResourceRow {
    fn from(info: &ResourceInfo) -> Self {
        Self {
            name: info.name.to_string(),
            namespace: info.namespace.to_string(),
            path: info.path.clone(),
            size: info.size,
            written: info.written,
            holders: info.holders.clone(),
            age: info.age,
            ttl: info.ttl,
            state: info.state.as_str(),
        }
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => secs(d, s),
        None => s.serialize_none(),
    }
}

/// Tables for people: one per kind present, with a NAMESPACE column when rows may come from
/// more than one namespace.
pub(crate) fn tables(rows: &[Row], show_namespace: bool) -> Vec<Table> {
    let resources: Vec<&ResourceRow> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Resource(r) => Some(r),
            Row::TransportHost(_) | Row::Service(_) | Row::StoreServer(_) | Row::Tenant(_) => None,
        })
        .collect();
    let hosts: Vec<&HostRow> = rows
        .iter()
        .filter_map(|row| match row {
            Row::TransportHost(h) => Some(h),
            Row::Resource(_) | Row::Service(_) | Row::StoreServer(_) | Row::Tenant(_) => None,
        })
        .collect();
    let services: Vec<&ServiceRow> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Service(s) => Some(s),
            Row::Resource(_) | Row::TransportHost(_) | Row::StoreServer(_) | Row::Tenant(_) => None,
        })
        .collect();
    let stores: Vec<&StoreServerRow> = rows
        .iter()
        .filter_map(|row| match row {
            Row::StoreServer(s) => Some(s),
            Row::Resource(_) | Row::TransportHost(_) | Row::Service(_) | Row::Tenant(_) => None,
        })
        .collect();
    let tenants: Vec<&TenantRow> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Tenant(t) => Some(t),
            Row::Resource(_) | Row::TransportHost(_) | Row::Service(_) | Row::StoreServer(_) => {
                None
            }
        })
        .collect();
    let mut out = Vec::new();
    if !resources.is_empty() {
        out.push(resource_table(&resources, show_namespace));
    }
    if !stores.is_empty() {
        out.push(store_table(&stores));
    }
    if !tenants.is_empty() {
        out.push(tenant_table(&tenants));
    }
    if !services.is_empty() {
        out.push(service_table(&services));
    }
    if !hosts.is_empty() {
        out.push(host_table(&hosts));
    }
    out
}

/// With a NOTE column when a server's tenants are not listed.
fn store_table(rows: &[&StoreServerRow]) -> Table {
    let notes = rows.iter().any(|s| s.problem.is_some());
    let mut header = vec!["STORE SERVER", "PID", "TENANTS"];
    if notes {
        header.push("NOTE");
    }
    let mut table = new_table(header);
    for s in rows {
        let mut cells = vec![
            s.name.clone(),
            s.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            s.tenants.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ];
        if notes {
            cells.push(s.problem.clone().unwrap_or_default());
        }
        table.add_row(cells);
    }
    table
}

fn tenant_table(rows: &[&TenantRow]) -> Table {
    let mut table = new_table(vec![
        "SERVER",
        "TENANT",
        "SERVICES",
        "VARIABLES",
        "MEMORY",
        "REVISION",
        "CLIENTS",
    ]);
    for t in rows {
        table.add_row(vec![
            t.server.clone(),
            t.name.clone(),
            t.services.to_string(),
            t.variables.to_string(),
            format!("{} / {}", show_size(t.used_bytes), show_size(t.quota_bytes)),
            t.revision.to_string(),
            t.clients.to_string(),
        ]);
    }
    table
}

fn service_table(rows: &[&ServiceRow]) -> Table {
    let mut table = new_table(vec!["SERVICE", "PID", "UPTIME", "CLIENTS", "HEALTH"]);
    for s in rows {
        table.add_row(vec![
            s.name.clone(),
            s.pid.to_string(),
            show_duration(s.uptime),
            s.clients.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            s.health.to_owned(),
        ]);
    }
    table
}

/// With a WHAT column when some host is known to be something (a store server's links).
fn host_table(rows: &[&HostRow]) -> Table {
    let what = rows.iter().any(|h| h.what.is_some());
    let mut header = vec!["TRANSPORT HOST", "PID", "PEERS", "SLOTS IN USE", "STATE"];
    if what {
        header.push("WHAT");
    }
    let mut table = new_table(header);
    for h in rows {
        let peers = match h.max_peers {
            Some(max) => {
                let pids: Vec<String> = h.peers.iter().map(|p| p.pid.to_string()).collect();
                format!("{}/{max} {}", h.peers.len(), pids.join(","))
            }
            None => "-".to_owned(),
        };
        let mut cells = vec![
            h.name.clone(),
            h.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            peers.trim_end().to_owned(),
            if h.max_peers.is_some() {
                format!("{}/{}", h.slots_out, h.slots_total)
            } else {
                "-".to_owned()
            },
            h.state.to_owned(),
        ];
        if what {
            cells.push(h.what.clone().unwrap_or_else(|| "-".to_owned()));
        }
        table.add_row(cells);
    }
    table
}

fn new_table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(header);
    table
}

fn resource_table(rows: &[&ResourceRow], show_namespace: bool) -> Table {
    let mut header = vec!["NAME"];
    if show_namespace {
        header.push("NAMESPACE");
    }
    header.extend(["SIZE", "WRITTEN", "HOLDERS", "AGE", "TTL", "STATE"]);
    let mut table = new_table(header);
    for r in rows {
        let mut cells = vec![r.name.clone()];
        if show_namespace {
            cells.push(r.namespace.clone());
        }
        let holders = if r.holders.is_empty() {
            "-".to_owned()
        } else {
            let pids: Vec<String> = r.holders.iter().map(u32::to_string).collect();
            pids.join(",")
        };
        cells.extend([
            show_size(r.size),
            show_size(r.written),
            holders,
            show_duration(r.age),
            r.ttl.map_or_else(|| "-".to_owned(), show_duration),
            r.state.to_owned(),
        ]);
        table.add_row(cells);
    }
    table
}

/// `key  value` lines for one resource (`resource info`).
pub(crate) fn resource_details(r: &ResourceRow) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    let holders: Vec<String> = r.holders.iter().map(u32::to_string).collect();
    let ttl = r.ttl.map_or_else(|| "none".to_owned(), show_duration);
    for (key, value) in [
        ("name", r.name.clone()),
        ("namespace", r.namespace.clone()),
        ("path", r.path.display().to_string()),
        ("size", format!("{} ({} bytes)", show_size(r.size), r.size)),
        ("written", format!("{} bytes", r.written)),
        (
            "holders",
            if holders.is_empty() {
                "none".to_owned()
            } else {
                holders.join(", ")
            },
        ),
        ("age", show_duration(r.age)),
        ("ttl", ttl),
        ("state", r.state.to_owned()),
    ] {
        table.add_row(vec![key.to_owned(), value]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_carry_kind_and_name() -> serde_json::Result<()> {
        let row = Row::Resource(ResourceRow {
            name: "frames".into(),
            namespace: "default".into(),
            path: "/dev/shm/memwire.1000.default.frames".into(),
            size: 4096,
            written: 5,
            holders: vec![42],
            age: Duration::from_millis(1500),
            ttl: None,
            state: "live",
        });
        let v = serde_json::to_value(&row)?;
        assert_eq!(v["kind"], "resource");
        assert_eq!(v["name"], "frames");
        assert_eq!(v["holders"], serde_json::json!([42]));
        assert_eq!(v["age_s"], 1.5);
        assert!(v["ttl_s"].is_null());
        Ok(())
    }
}
