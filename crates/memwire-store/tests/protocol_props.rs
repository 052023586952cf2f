//! Property tests of the store protocol's codec: every request and server message survives a
//! round trip through both encodings; no input, however hostile, panics a decoder; an
//! oversized message is refused on its length alone.

use std::collections::BTreeMap;

use memwire_shm::Name;
use memwire_store::protocol::{
    ErrorCode, Event, EventKind, Format, Frame, KeyEntry, Lagged, Limits, ListEntry, Reply,
    Request, Response, Scope, TenantInfo, Value, VarPath, decode_request, decode_response,
    encode_request, encode_response,
};
use memwire_store::{Role, ServicePattern};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Name> {
    "[A-Za-z0-9._-]{1,12}"
        .prop_filter("not . or ..", |s| s != "." && s != "..")
        .prop_map(|s| Name::new(s).expect("the regex follows the rules"))
}

fn var_path() -> impl Strategy<Value = VarPath> {
    (name(), name(), name()).prop_map(|(t, s, v)| VarPath::new(t, s, v))
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        name().prop_map(Scope::Tenant),
        (name(), name()).prop_map(|(t, s)| Scope::Service(t, s)),
        var_path().prop_map(Scope::Variable),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    proptest::sample::select(vec![Role::Read, Role::Write, Role::Admin])
}

fn pattern() -> impl Strategy<Value = ServicePattern> {
    "[A-Za-z0-9._*-]{1,12}"
        .prop_map(|s| ServicePattern::new(&s).expect("the regex follows the rules"))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48).prop_map(Value),
        ".{0,24}".prop_map(|s: String| Value::from(s.as_str())),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let id = any::<u64>();
    prop_oneof![
        (id, ".{0,40}").prop_map(|(id, key)| Request::Auth { id, v: 1, key }),
        (id, var_path()).prop_map(|(id, path)| Request::Get { id, path }),
        (id, var_path(), value(), any::<Option<u64>>()).prop_map(
            |(id, path, value, expected_version)| Request::Set {
                id,
                path,
                value,
                expected_version
            }
        ),
        (id, var_path(), any::<Option<u64>>()).prop_map(|(id, path, expected_version)| {
            Request::Delete {
                id,
                path,
                expected_version,
            }
        }),
        (
            id,
            name(),
            name(),
            proptest::collection::btree_map(name(), value(), 1..5)
        )
            .prop_map(|(id, tenant, service, values)| Request::SetMany {
                id,
                tenant,
                service,
                values
            }),
        (
            id,
            proptest::option::of((name(), proptest::option::of(name())))
        )
            .prop_map(|(id, list)| match list {
                None => Request::List {
                    id,
                    tenant: None,
                    service: None,
                },
                Some((tenant, service)) => Request::List {
                    id,
                    tenant: Some(tenant),
                    service,
                },
            }),
        (id, scope(), any::<Option<u64>>()).prop_map(|(id, path, from_version)| {
            Request::Watch {
                id,
                path,
                from_version,
            }
        }),
        (id, any::<u64>()).prop_map(|(id, watch_id)| Request::Unwatch { id, watch_id }),
        id.prop_map(|id| Request::Ping { id }),
        (
            id,
            proptest::option::of(name()),
            role(),
            proptest::option::of(pattern()),
            proptest::option::of(".{0,24}")
        )
            .prop_map(|(id, tenant, role, services, label)| Request::CreateKey {
                id,
                tenant,
                role,
                services,
                label
            }),
        id.prop_map(|id| Request::ListKeys { id }),
        (id, ".{0,12}").prop_map(|(id, key_id)| Request::RevokeKey { id, key_id }),
        (id, name(), any::<Option<u64>>(), any::<Option<u32>>()).prop_map(
            |(id, tenant, quota_bytes, max_variables)| Request::CreateTenant {
                id,
                tenant,
                quota_bytes,
                max_variables
            }
        ),
        (id, name()).prop_map(|(id, tenant)| Request::DeleteTenant { id, tenant }),
        id.prop_map(|id| Request::Stats { id }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let (v, t) = (any::<u64>(), any::<u64>());
    let entry = (
        name(),
        any::<u64>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
    )
        .prop_map(|(name, version, count, len)| ListEntry {
            name,
            version,
            count,
            len,
        });
    prop_oneof![
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(v, m, x)| Reply::Auth {
            v,
            max_message_bytes: m,
            max_value_bytes: x
        }),
        (value(), v, t).prop_map(|(value, version, timestamp_ms)| Reply::Get {
            value,
            version,
            timestamp_ms
        }),
        (v, t).prop_map(|(version, timestamp_ms)| Reply::Set {
            version,
            timestamp_ms
        }),
        (v, t).prop_map(|(version, timestamp_ms)| Reply::Delete {
            version,
            timestamp_ms
        }),
        (v, t).prop_map(|(version, timestamp_ms)| Reply::SetMany {
            version,
            timestamp_ms
        }),
        proptest::collection::vec(entry, 0..4).prop_map(|entries| Reply::List { entries }),
        (v, t).prop_map(|(watch_id, version)| Reply::Watch { watch_id, version }),
        Just(Reply::Unwatch),
        Just(Reply::Ping),
        (".{0,48}", ".{0,12}").prop_map(|(key, key_id)| Reply::CreateKey { key, key_id }),
        proptest::collection::vec(key_entry(), 0..4).prop_map(|keys| Reply::ListKeys { keys }),
        ".{0,12}".prop_map(|key_id| Reply::RevokeKey { key_id }),
        Just(Reply::CreateTenant),
        v.prop_map(|version| Reply::DeleteTenant { version }),
        proptest::collection::vec(tenant_info(), 0..3).prop_map(|tenants| Reply::Stats { tenants }),
    ]
}

fn tenant_info() -> impl Strategy<Value = TenantInfo> {
    (
        ".{0,12}",
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(tenant, variables, used_bytes, quota_bytes, revision, epoch, clients)| TenantInfo {
                tenant,
                variables,
                used_bytes,
                quota_bytes,
                revision,
                epoch,
                clients,
            },
        )
}

fn key_entry() -> impl Strategy<Value = KeyEntry> {
    (
        ".{0,12}",
        proptest::option::of(".{0,12}"),
        role(),
        proptest::option::of(".{0,12}"),
        any::<bool>(),
        proptest::option::of(".{0,24}"),
        any::<u64>(),
    )
        .prop_map(
            |(id, tenant, role, services, revoked, label, created_at_unix_ms)| KeyEntry {
                id,
                tenant,
                role,
                services,
                revoked,
                label,
                created_at_unix_ms,
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(vec![
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::QuotaExceeded,
        ErrorCode::BadRequest,
        ErrorCode::Conflict,
        ErrorCode::BadMessage,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Internal,
    ])
}

fn response() -> impl Strategy<Value = Response> {
    let kind =
        proptest::sample::select(vec![EventKind::Set, EventKind::Delete, EventKind::Current]);
    prop_oneof![
        (any::<u64>(), reply()).prop_map(|(id, reply)| Response::Ok { id, reply }),
        (any::<Option<u64>>(), error_code(), ".{0,40}")
            .prop_map(|(id, code, message)| { Response::Error { id, code, message } }),
        (
            any::<u64>(),
            var_path(),
            kind,
            proptest::option::of(value()),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(watch_id, path, kind, value, version, timestamp_ms)| {
                Response::Event(Event {
                    watch_id,
                    path,
                    kind,
                    value,
                    version,
                    timestamp_ms,
                })
            }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(watch_id, missed_from, resumed_at)| {
                Response::Lagged(Lagged {
                    watch_id,
                    missed_from,
                    resumed_at,
                })
            }
        ),
        (any::<u64>(), any::<u64>())
            .prop_map(|(watch_id, version)| Response::Synced { watch_id, version }),
        (any::<u64>(), error_code(), ".{0,40}").prop_map(|(watch_id, code, message)| {
            Response::WatchEnded {
                watch_id,
                code,
                message,
            }
        }),
    ]
}

/// Arbitrary JSON, biased towards the protocol's own keys and words so that it gets past the
/// first checks.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let word = proptest::sample::select(vec![
        "type",
        "id",
        "path",
        "value",
        "text",
        "base64",
        "json",
        "auth",
        "get",
        "set",
        "delete",
        "set_many",
        "list",
        "watch",
        "unwatch",
        "ping",
        "create_key",
        "list_keys",
        "revoke_key",
        "create_tenant",
        "delete_tenant",
        "quota_bytes",
        "max_variables",
        "watch_ended",
        "code",
        "message",
        "role",
        "read",
        "admin",
        "services",
        "label",
        "key_id",
        "billing-*",
        "tenant",
        "service",
        "values",
        "v",
        "key",
        "expected_version",
        "from_version",
        "watch_id",
        "a/b/c",
        "a",
        "..",
        "ok",
        "op",
        "AP8=",
    ])
    .prop_map(String::from);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        word.clone().prop_map(serde_json::Value::String),
        ".{0,8}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn limits() -> Limits {
    Limits::default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip(request in request()) {
        for format in [Format::Json, Format::MessagePack] {
            let encoded = encode_request(&request, format);
            prop_assert_eq!(decode_request(encoded.as_frame(), &limits())?, request.clone());
        }
    }

    #[test]
    fn responses_round_trip(response in response()) {
        for format in [Format::Json, Format::MessagePack] {
            let encoded = encode_response(&response, format);
            prop_assert_eq!(decode_response(encoded.as_frame(), &limits())?, response.clone());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_request(Frame::Binary(&bytes), &limits());
        let _ = decode_response(Frame::Binary(&bytes), &limits());
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_request(Frame::Text(&text), &limits());
        let _ = decode_response(Frame::Text(&text), &limits());
    }

    #[test]
    fn arbitrary_json_never_panics(json in json()) {
        let text = serde_json::to_string(&json)?;
        let binary = rmp_serde::to_vec_named(&json)?;
        // Both encodings of one value are refused (or accepted) alike, and never as
        // `bad_message`: they are well-formed.
        let outcome = |frame| decode_request(frame, &limits()).map_err(|e| (e.id(), e.code()));
        let (in_json, in_mp) = (outcome(Frame::Text(&text)), outcome(Frame::Binary(&binary)));
        prop_assert_eq!(in_json.as_ref().err(), in_mp.as_ref().err());
        prop_assert!(!matches!(in_json, Err((_, ErrorCode::BadMessage))));
        for frame in [Frame::Text(&text), Frame::Binary(&binary)] {
            // Whatever is accepted must re-encode to something that decodes to the same.
            if let Ok(request) = decode_request(frame, &limits()) {
                let again = encode_request(&request, frame.format());
                prop_assert_eq!(decode_request(again.as_frame(), &limits())?, request);
            }
            if let Ok(response) = decode_response(frame, &limits()) {
                let again = encode_response(&response, frame.format());
                prop_assert_eq!(decode_response(again.as_frame(), &limits())?, response);
            }
        }
    }

    #[test]
    fn oversized_messages_are_refused_unread(request in request(), garbage in any::<bool>()) {
        for format in [Format::Json, Format::MessagePack] {
            let mut bytes = encode_request(&request, format).into_bytes();
            if garbage {
                // Unparseable past the limit: still `too_large`, so parsing never started.
                bytes.push(b'}');
            }
            let max = bytes.len() - 1;
            let small = Limits { max_message_bytes: max, ..limits() };
            let text;
            let frame = match format {
                Format::Json => {
                    text = String::from_utf8(bytes.clone())?;
                    Frame::Text(&text)
                }
                Format::MessagePack => Frame::Binary(&bytes),
            };
            let refused = decode_request(frame, &small).expect_err("over the limit");
            prop_assert_eq!(refused.code(), ErrorCode::TooLarge);
            prop_assert_eq!(refused.id(), None);
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    for depth in [100, 10_000, 1_000_000] {
        let text = format!(
            r#"{{"type":"set","id":1,"path":"a/b/c","value":{{"json":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let limits = Limits {
            max_message_bytes: usize::MAX,
            ..limits()
        };
        assert!(decode_request(Frame::Text(&text), &limits).is_err() || depth < 128);
        let mut binary = vec![
            0x82, 0xa4, b't', b'y', b'p', b'e', 0xa4, b'p', b'i', b'n', b'g',
        ];
        binary.extend_from_slice(&[0xa2, b'i', b'd']);
        binary.extend(std::iter::repeat_n(0x91, depth));
        binary.push(0x01);
        assert!(decode_request(Frame::Binary(&binary), &limits).is_err());
    }
}

#[test]
fn set_many_values_decode_in_any_order() {
    // `set_many` values decode into a sorted map whatever order the client wrote them in.
    let text = r#"{"type":"set_many","id":1,"tenant":"t","service":"s","values":{"b":{"text":"2"},"a":{"text":"1"}}}"#;
    let Ok(Request::SetMany { values, .. }) = decode_request(Frame::Text(text), &limits()) else {
        panic!("set_many refused");
    };
    let expected: BTreeMap<Name, Value> = [("a", "1"), ("b", "2")]
        .into_iter()
        .map(|(k, v)| (Name::new(k).expect("valid"), Value::from(v)))
        .collect();
    assert_eq!(values, expected);
}
