//! `docs/protocol.md` cannot rot: every fenced `json` block is one message and every `>` / `<`
//! line of a `text` block is a client / server message; each must decode with the real decoder
//! and survive a round trip through both encodings, and together they must show every request
//! type and every kind of server message.

use std::collections::BTreeSet;

use memwire_store::protocol::{
    Format, Frame, Limits, Reply, Request, Response, decode_request, decode_response,
    encode_request, encode_response,
};

const DOC: &str = include_str!("../../../docs/protocol.md");

/// `(line number, text, side)` of every message in the document; side `None`: either.
fn messages() -> Vec<(usize, &'static str, Option<char>)> {
    let mut found = Vec::new();
    let mut block: Option<&str> = None;
    for (n, line) in DOC.lines().enumerate() {
        let n = n + 1;
        match (block, line.strip_prefix("```")) {
            (None, Some(tag)) => block = Some(tag.trim()),
            (Some(_), Some(_)) => block = None,
            (Some("json"), None) if !line.trim().is_empty() => found.push((n, line, None)),
            (Some("text"), None) => {
                for side in ['>', '<'] {
                    if let Some(rest) = line.strip_prefix(side).and_then(|r| r.strip_prefix(' ')) {
                        found.push((n, rest, Some(side)));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(block.is_none(), "a fenced block is never closed");
    found
}

enum Message {
    Request(Request),
    Response(Response),
}

fn decode(n: usize, text: &str, side: Option<char>) -> Message {
    let limits = Limits::default();
    let request = decode_request(Frame::Text(text), &limits);
    let response = decode_response(Frame::Text(text), &limits);
    match (side, request, response) {
        (Some('>') | None, Ok(request), _) => Message::Request(request),
        (Some('<') | None, _, Ok(response)) => Message::Response(response),
        (_, request, response) => panic!(
            "docs/protocol.md line {n}: {text}\n  as a request: {:?}\n  as a response: {:?}",
            request.err(),
            response.err()
        ),
    }
}

#[test]
fn every_message_in_the_document_decodes_and_round_trips() -> anyhow::Result<()> {
    let limits = Limits::default();
    let mut seen = BTreeSet::new();
    let all = messages();
    assert!(all.len() > 30, "only {} messages found", all.len());
    for (n, text, side) in all {
        match decode(n, text, side) {
            Message::Request(request) => {
                seen.insert(format!("request {}", request.type_name()));
                for format in [Format::Json, Format::MessagePack] {
                    let encoded = encode_request(&request, format);
                    assert_eq!(
                        decode_request(encoded.as_frame(), &limits)?,
                        request,
                        "line {n}"
                    );
                }
            }
            Message::Response(response) => {
                seen.insert(match &response {
                    Response::Ok { reply, .. } => format!("ok {}", op(reply)),
                    Response::Error { .. } => "error".into(),
                    Response::Event(_) => "event".into(),
                    Response::Lagged(_) => "lagged".into(),
                    Response::Synced { .. } => "synced".into(),
                    Response::WatchEnded { .. } => "watch_ended".into(),
                    other => panic!("line {n}: unexpected {other:?}"),
                });
                for format in [Format::Json, Format::MessagePack] {
                    let encoded = encode_response(&response, format);
                    assert_eq!(
                        decode_response(encoded.as_frame(), &limits)?,
                        response,
                        "line {n}"
                    );
                }
            }
        }
    }
    let kinds = [
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
        "stats",
    ];
    let mut missing: Vec<String> = kinds
        .iter()
        .flat_map(|k| [format!("request {k}"), format!("ok {k}")])
        .chain(["error", "event", "lagged", "synced", "watch_ended"].map(String::from))
        .filter(|k| !seen.contains(k))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "docs/protocol.md shows no {missing:?}");
    Ok(())
}

fn op(reply: &Reply) -> &'static str {
    match reply {
        Reply::Auth { .. } => "auth",
        Reply::Get { .. } => "get",
        Reply::Set { .. } => "set",
        Reply::Delete { .. } => "delete",
        Reply::SetMany { .. } => "set_many",
        Reply::List { .. } => "list",
        Reply::Watch { .. } => "watch",
        Reply::Unwatch => "unwatch",
        Reply::Ping => "ping",
        Reply::CreateKey { .. } => "create_key",
        Reply::ListKeys { .. } => "list_keys",
        Reply::RevokeKey { .. } => "revoke_key",
        Reply::CreateTenant => "create_tenant",
        Reply::DeleteTenant { .. } => "delete_tenant",
        Reply::Stats { .. } => "stats",
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_documented_error_example_is_what_the_decoder_says() {
    let e = decode_request(Frame::Text(r#"{"type": "get", "id""#), &Limits::default())
        .expect_err("truncated");
    assert!(
        DOC.contains(&e.to_string()),
        "docs/protocol.md should quote {:?}",
        e.to_string()
    );
}
