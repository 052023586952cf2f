//! Model-based test: random sets, deletes, `set_many` and compare-and-sets against a
//! `HashMap`, checking every variable, every listing and the change ring after each step. A
//! small table (16 slots), a small ring (16 slots) and a count quota of 8 drive tombstone
//! reuse, ring wrap-around and quota refusals.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use memwire_store::segment::{ChangeKind, Changes, TenantConfig};
use memwire_store::{Error, TenantView, TenantWriter};
use proptest::prelude::*;

const SERVICES: [&str; 2] = ["alpha", "beta"];
const VARS: [&str; 6] = ["a", "b", "c", "dd", "eee", "f.g"];
const MAX_VARIABLES: usize = 8;
const RING: u64 = 16;

#[derive(Clone, Debug)]
enum Op {
    Set(usize, usize, Vec<u8>),
    Delete(usize, usize),
    SetMany(usize, Vec<(usize, Vec<u8>)>),
    Cas(usize, usize, Option<u64>, Vec<u8>),
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..SERVICES.len();
    let v = 0..VARS.len();
    prop_oneof![
        4 => (s.clone(), v.clone(), value()).prop_map(|(s, v, b)| Op::Set(s, v, b)),
        2 => (s.clone(), v.clone()).prop_map(|(s, v)| Op::Delete(s, v)),
        2 => (s.clone(), proptest::collection::vec((v.clone(), value()), 1..4))
            .prop_map(|(s, vars)| Op::SetMany(s, vars)),
        // `None`: use the model's version (a CAS that should succeed).
        2 => (s, v, proptest::option::of(0u64..30), value())
            .prop_map(|(s, v, e, b)| Op::Cas(s, v, e, b)),
    ]
}

#[derive(Default)]
struct Model {
    vars: HashMap<(usize, usize), (Vec<u8>, u64, u64)>,
    revision: u64,
}

impl Model {
    /// Applies a write of `(var, Some(value) | None)` all or nothing; returns the expected
    /// outcome: the events, or the error kind.
    fn write(
        &mut self,
        s: usize,
        ops: &[(usize, Option<Vec<u8>>)],
        ts: u64,
    ) -> Result<Vec<(u64, ChangeKind, usize)>, &'static str> {
        for (i, (v, _)) in ops.iter().enumerate() {
            if ops[..i].iter().any(|(w, _)| w == v) {
                return Err("bad_request");
            }
        }
        let mut live = self.vars.len();
        for (v, value) in ops {
            let exists = self.vars.contains_key(&(s, *v));
            match value {
                None if !exists => return Err("not_found"),
                None => live -= 1,
                Some(_) if !exists => live += 1,
                Some(_) => {}
            }
            if live > MAX_VARIABLES {
                return Err("quota");
            }
        }
        let mut events = Vec::new();
        for (v, value) in ops {
            self.revision += 1;
            match value {
                Some(bytes) => {
                    self.vars
                        .insert((s, *v), (bytes.clone(), self.revision, ts));
                    events.push((self.revision, ChangeKind::Set, *v));
                }
                None => {
                    self.vars.remove(&(s, *v));
                    events.push((self.revision, ChangeKind::Delete, *v));
                }
            }
        }
        Ok(events)
    }
}

fn kind(err: &Error) -> &'static str {
    match err {
        Error::BadRequest(_) => "bad_request",
        Error::NotFound(_) => "not_found",
        Error::QuotaExceeded(_) => "quota",
        Error::Conflict { .. } => "conflict",
        _ => "other",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn writer_and_reader_agree_with_a_hashmap(ops in proptest::collection::vec(op(), 1..120)) {
        let config = TenantConfig::new(1 << 16, MAX_VARIABLES as u32).ring_slots(RING as u32);
        let mut w = TenantWriter::create_with("model", config).unwrap();
        let r = TenantView::open(w.try_clone_fd().unwrap()).unwrap();
        let mut m = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            let ts = 1000 + step as u64;
            let before = r.revision().unwrap();
            let (s, expected, got) = match op {
                Op::Set(s, v, b) => {
                    let got = w.set(SERVICES[s], VARS[v], &b, ts);
                    (s, m.write(s, &[(v, Some(b))], ts), got)
                }
                Op::Delete(s, v) => {
                    let got = w.delete(SERVICES[s], VARS[v], ts);
                    (s, m.write(s, &[(v, None)], ts), got)
                }
                Op::SetMany(s, vars) => {
                    let args: Vec<(&str, &[u8])> =
                        vars.iter().map(|(v, b)| (VARS[*v], b.as_slice())).collect();
                    let got = w.set_many(SERVICES[s], &args, ts);
                    let ops: Vec<_> = vars.into_iter().map(|(v, b)| (v, Some(b))).collect();
                    (s, m.write(s, &ops, ts), got)
                }
                Op::Cas(s, v, expected_version, b) => {
                    let found = m.vars.get(&(s, v)).map_or(0, |x| x.1);
                    let expected_version = expected_version.unwrap_or(found);
                    let got = w.compare_and_set(SERVICES[s], VARS[v], expected_version, &b, ts);
                    let expected = if expected_version == found {
                        m.write(s, &[(v, Some(b))], ts)
                    } else {
                        Err("conflict")
                    };
                    (s, expected, got)
                }
            };
            match (&expected, &got) {
                (Ok(events), Ok(revision)) => {
                    prop_assert_eq!(*revision, m.revision);
                    let Changes::Events(seen) = r.changes_since(before).unwrap() else {
                        panic!("lagged on one write");
                    };
                    let seen: Vec<_> = seen
                        .iter()
                        .map(|e| (e.revision, e.kind, e.service.clone(), e.variable.clone(), e.timestamp_ns))
                        .collect();
                    let want: Vec<_> = events
                        .iter()
                        .map(|&(rev, k, v)| (rev, k, SERVICES[s].to_owned(), VARS[v].to_owned(), ts))
                        .collect();
                    prop_assert_eq!(seen, want);
                }
                (Err(k), Err(e)) => prop_assert_eq!(*k, kind(e), "{}", e),
                _ => prop_assert!(false, "model {:?}, writer {:?}", expected, got),
            }
            prop_assert_eq!(r.revision().unwrap(), m.revision);
            prop_assert_eq!(w.len() as usize, m.vars.len());
            // Every variable, present or not.
            for (si, service) in SERVICES.iter().enumerate() {
                for (vi, var) in VARS.iter().enumerate() {
                    let got = r.get(service, var).unwrap().map(|v| (v.bytes, v.version, v.timestamp_ns));
                    prop_assert_eq!(got, m.vars.get(&(si, vi)).cloned(), "{}/{}", service, var);
                }
                let listed: BTreeMap<String, u64> = r
                    .list(service)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (n, v.version))
                    .collect();
                let want: BTreeMap<String, u64> = m
                    .vars
                    .iter()
                    .filter(|((s, _), _)| *s == si)
                    .map(|((_, v), x)| (VARS[*v].to_owned(), x.1))
                    .collect();
                prop_assert_eq!(listed, want);
            }
            // The ring holds the last RING revisions exactly.
            if m.revision > RING {
                prop_assert_eq!(
                    r.changes_since(m.revision - RING - 1).unwrap(),
                    Changes::Lagged { missed_from: m.revision - RING, resumed_at: m.revision }
                );
                let Changes::Events(all) = r.changes_since(m.revision - RING).unwrap() else {
                    panic!("the ring lost a revision it should hold");
                };
                prop_assert_eq!(all.len() as u64, RING);
            }
        }
    }
}
