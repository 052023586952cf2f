//! `authorize` and `may_map_tenant` over every role × action × tenant × pattern, each outcome
//! written out.
#![allow(clippy::unwrap_used)]

use memwire_store::{Action, Error, KeyRecord, Role, ServicePattern, authorize, may_map_tenant};

fn key(tenant: Option<&str>, role: Role, pattern: Option<&str>) -> KeyRecord {
    KeyRecord {
        id: "TestKey0".into(),
        hash: [7; 32],
        tenant: tenant.map(Into::into),
        role,
        services: pattern.map(|p| ServicePattern::new(p).unwrap()),
        created_at_unix_ms: 0,
        revoked: false,
        label: None,
    }
}

/// What each key asks for, in the order of the outcome strings below.
const TARGETS: [(&str, Option<&str>); 5] = [
    ("finance", Some("billing-eu")),
    ("finance", Some("payroll")),
    ("finance", None),
    ("hr", Some("billing-eu")),
    ("hr", None),
];
const ACTIONS: [Action; 3] = [Action::Read, Action::Write, Action::Admin];

#[test]
fn permission_matrix() {
    use Role::{Admin, Read, Write};
    // One group per target (in TARGETS order), one character per action (read, write,
    // admin): `Y` allowed, `-` PermissionDenied.
    let matrix: [(Option<&str>, Role, Option<&str>, &str); 12] = [
        (None, Read, None, "Y-- Y-- Y-- Y-- Y--"),
        (None, Write, None, "YY- YY- YY- YY- YY-"),
        (None, Admin, None, "YYY YYY YYY YYY YYY"),
        (None, Read, Some("billing-*"), "Y-- --- --- Y-- ---"),
        (None, Write, Some("billing-*"), "YY- --- --- YY- ---"),
        (None, Admin, Some("billing-*"), "YYY --- --- YYY ---"),
        (Some("finance"), Read, None, "Y-- Y-- Y-- --- ---"),
        (Some("finance"), Write, None, "YY- YY- YY- --- ---"),
        (Some("finance"), Admin, None, "YYY YYY YYY --- ---"),
        (
            Some("finance"),
            Read,
            Some("billing-*"),
            "Y-- --- --- --- ---",
        ),
        (
            Some("finance"),
            Write,
            Some("billing-*"),
            "YY- --- --- --- ---",
        ),
        (
            Some("finance"),
            Admin,
            Some("billing-*"),
            "YYY --- --- --- ---",
        ),
    ];
    for (tenant, role, pattern, expected) in matrix {
        let record = key(tenant, role, pattern);
        let groups: Vec<&str> = expected.split(' ').collect();
        assert_eq!(groups.len(), TARGETS.len());
        for ((target_tenant, service), group) in TARGETS.iter().zip(groups) {
            for (action, want) in ACTIONS.iter().zip(group.chars()) {
                let got = authorize(&record, *action, target_tenant, *service);
                let case = format!(
                    "key {tenant:?}/{role}/{pattern:?} doing {action} on {target_tenant}/{service:?}"
                );
                match (want, got) {
                    ('Y', Ok(())) | ('-', Err(Error::PermissionDenied(_))) => {}
                    (want, got) => panic!("{case}: expected {want}, got {got:?}"),
                }
            }
        }
    }
}

#[test]
fn mapping_matrix() {
    // (key tenant, pattern) → may map finance, may map hr; the role does not matter.
    let matrix = [
        (None, None, true, true),
        (None, Some("billing-*"), false, false),
        (Some("finance"), None, true, false),
        (Some("finance"), Some("billing-*"), false, false),
        (Some("finance"), Some("*"), false, false),
    ];
    for (tenant, pattern, finance, hr) in matrix {
        for role in [Role::Read, Role::Write, Role::Admin] {
            let record = key(tenant, role, pattern);
            assert_eq!(may_map_tenant(&record, "finance"), finance, "{record:?}");
            assert_eq!(may_map_tenant(&record, "hr"), hr, "{record:?}");
        }
    }
}

#[test]
fn a_revoked_record_grants_nothing() {
    let mut record = key(None, Role::Admin, None);
    record.revoked = true;
    assert!(!may_map_tenant(&record, "finance"));
    for action in ACTIONS {
        assert!(matches!(
            authorize(&record, action, "finance", Some("billing-eu")),
            Err(Error::Unauthenticated(_))
        ));
    }
}

fn denial(record: &KeyRecord, action: Action, tenant: &str, service: Option<&str>) -> String {
    match authorize(record, action, tenant, service) {
        Err(Error::PermissionDenied(msg)) => msg,
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[test]
fn denials_say_why() {
    let reader = key(Some("finance"), Role::Read, Some("billing-*"));
    let msg = denial(&reader, Action::Read, "hr", Some("billing-eu"));
    assert!(msg.contains("tenant \"finance\", not \"hr\""), "{msg}");
    let msg = denial(&reader, Action::Write, "finance", Some("billing-eu"));
    assert!(
        msg.contains("has role read; write needs role write"),
        "{msg}"
    );
    let msg = denial(&reader, Action::Read, "finance", Some("payroll"));
    assert!(
        msg.contains("`billing-*`") && msg.contains("\"payroll\" does not match"),
        "{msg}"
    );
    let msg = denial(&reader, Action::Read, "finance", None);
    assert!(
        msg.contains("never through a mapping") && msg.contains("whole tenant"),
        "{msg}"
    );
    let writer = key(Some("finance"), Role::Write, None);
    let msg = denial(&writer, Action::Admin, "finance", None);
    assert!(
        msg.contains("has role write; admin needs role admin"),
        "{msg}"
    );
}

#[test]
fn roles_are_ordered_and_spelled() {
    assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
    for role in [Role::Read, Role::Write, Role::Admin] {
        assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
    }
    assert!(matches!("root".parse::<Role>(), Err(Error::BadRequest(_))));
}
