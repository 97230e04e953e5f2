//! The agents' endpoint, `/mcp` (Model Context Protocol over streamable
//! HTTP, JSON-RPC): any method, any tool with any arguments (mostly under
//! the argument names the tools take, so their parsers are reached), or
//! bytes that are no JSON-RPC at all. It answers a JSON-RPC error, a tool
//! error or a result; never a panic or a 500.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "initialize",
    "ping",
    "notifications/initialized",
    "resources/list",
    "prompts/list",
];
const TOOLS: &[&str] = &[
    "search_entities",
    "get_entity",
    "entity_relations",
    "history",
    "scorecards",
    "adoption_metric",
];
const KEYS: &[&str] = &[
    "filter",
    "text",
    "limit",
    "asOf",
    "as_of",
    "entityRef",
    "entity_ref",
    "depth",
    "types",
    "after",
    "kind",
    "scorecard",
    "by",
    "metric",
    "interval",
    "from",
    "to",
    "params",
];

/// Any JSON value.
#[derive(Arbitrary, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn value(&self) -> Value {
        match self {
            J::Null => Value::Null,
            J::Bool(b) => json!(b),
            J::Int(i) => json!(i),
            J::Float(f) => json!(f),
            J::Str(s) => json!(s),
            J::Arr(xs) => Value::Array(xs.iter().map(J::value).collect()),
            J::Obj(kv) => Value::Object(kv.iter().map(|(k, v)| (k.clone(), v.value())).collect()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Call {
    /// Bytes as the body.
    Raw(Vec<u8>),
    /// A JSON-RPC request.
    Rpc {
        method: u8,
        other_method: Option<String>,
        tool: u8,
        other_tool: Option<String>,
        /// Arguments under the tools' names (index into KEYS) or any name.
        args: Vec<(u8, Option<String>, J)>,
        id: J,
        /// Params that are not an object at all.
        params: Option<J>,
    },
}

fn body(call: &Call) -> Vec<u8> {
    match call {
        Call::Raw(bytes) => bytes.clone(),
        Call::Rpc {
            method,
            other_method,
            tool,
            other_tool,
            args,
            id,
            params,
        } => {
            let method = other_method
                .clone()
                .unwrap_or_else(|| METHODS[usize::from(*method) % METHODS.len()].to_owned());
            let tool = other_tool
                .clone()
                .unwrap_or_else(|| TOOLS[usize::from(*tool) % TOOLS.len()].to_owned());
            let arguments: Map<String, Value> = args
                .iter()
                .map(|(k, other, v)| {
                    let key = other
                        .clone()
                        .unwrap_or_else(|| KEYS[usize::from(*k) % KEYS.len()].to_owned());
                    (key, v.value())
                })
                .collect();
            let params = match params {
                Some(p) => p.value(),
                None => json!({"name": tool, "arguments": arguments}),
            };
            json!({"jsonrpc": "2.0", "id": id.value(), "method": method, "params": params})
                .to_string()
                .into_bytes()
        }
    }
}

fuzz_target!(|call: Call| {
    let req = Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header(
            "authorization",
            format!("Bearer {}", catalog_fuzz::ADMIN_TOKEN),
        )
        .body(Body::from(body(&call)))
        .expect("a request");
    let status = catalog_fuzz::runtime().block_on(async {
        let resp = catalog_fuzz::app()
            .clone()
            .oneshot(req)
            .await
            .expect("the router answers");
        let status = resp.status();
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("the body reads to its end");
        status
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{call:?}");
});
