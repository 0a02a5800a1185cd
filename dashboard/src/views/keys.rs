//! API keys: metadata only (name, phase, scopes, namespaces, dates). The gateway never returns a
//! token after minting, and this view never asks for one.

use serde_json::Value;

use super::{Ctx, failed};
use crate::gateway::GatewayError;
use crate::html::{banner, esc, table};

pub async fn render(ctx: &Ctx) -> String {
    let list = match ctx.gateway.get("/v2/keys").await {
        Ok(l) => l,
        Err(GatewayError::Status {
            status: 503,
            message,
        }) => return banner(&format!("Minted keys are not configured: {message}"), false),
        Err(e) => return failed("keys", &e),
    };
    let text = |v: &Value| esc(v.as_str().unwrap_or("–"));
    let rows: Vec<Vec<String>> = list["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    let layer = &k["entitlements"]["layer"];
                    let scopes = joined(&layer["scopes"]).unwrap_or_default();
                    let namespaces = joined(&layer["namespaces"]).unwrap_or_else(|| "all".into());
                    vec![
                        text(&k["name"]),
                        text(&k["keyId"]),
                        text(&k["phase"]),
                        esc(&scopes),
                        esc(&namespaces),
                        text(&k["createdAt"]),
                        text(&k["expiresAt"]),
                        text(&k["lastSeenAt"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "name",
            "key id",
            "phase",
            "scopes",
            "namespaces",
            "created",
            "expires",
            "last seen",
        ],
        &rows,
    )
}

/// The strings of a JSON array, comma-joined; `None` when it is not an array.
fn joined(v: &Value) -> Option<String> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    })
}
