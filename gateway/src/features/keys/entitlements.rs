//! Entitlements of a minted key (the `ApiKey` spec's map): parsed and checked at mint, and
//! turned into the request path's [`Principal`] when the key map is loaded.
//!
//! | key | fields | grants |
//! |---|---|---|
//! | `layer` | `scopes` (`read`, `write`, `admin`), `namespaces`, `claims` | the control plane (pipelines, UDFs, keys, stores); `admin` also every store's data plane |
//! | `vectorstore.<name>` | `scopes` (`read`, `write`), `namespaces`, `claims` | the data plane of the namespaces routed to that store, within the globs |
//! | `warehouse.<name>` | `claims` only | nothing in Layer: the claims are stored and echoed for other systems |
//!
//! A target that does not exist is not an error: the key carries the `EntitlementTargetMissing`
//! condition and the entitlement grants nothing until the target exists (grants are by name).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::core::auth::{Grant, Principal, Routing, StoreGrant};
use crate::core::config::Scope;
use crate::core::error::GatewayError;
use crate::features::keys::bad;

/// One entitlement, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entitlement {
    pub scopes: Vec<Scope>,
    pub namespaces: Vec<String>,
    pub claims: Vec<String>,
}

/// What an entitlement's key names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Layer,
    Store(String),
    Warehouse(String),
}

impl Target {
    fn parse(key: &str) -> Option<Target> {
        if key == "layer" {
            return Some(Target::Layer);
        }
        let named = |prefix: &str| {
            key.strip_prefix(prefix)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        };
        named("vectorstore.")
            .map(Target::Store)
            .or_else(|| named("warehouse.").map(Target::Warehouse))
    }
}

fn strings(o: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>, GatewayError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(field, "must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(bad(field, "must be a list of strings")),
    }
}

/// Parses and checks an `entitlements` map; every problem is a 422 naming its field.
pub fn parse(v: Option<&Value>) -> Result<Vec<(String, Target, Entitlement)>, GatewayError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("entitlements", "must be an object")),
    };
    let mut out = Vec::new();
    for (key, e) in map {
        let field = format!("entitlements.{key}");
        let target = Target::parse(key).ok_or_else(|| {
            bad(
                &field,
                "unknown entitlement: use layer, vectorstore.<name> or warehouse.<name>",
            )
        })?;
        let o = e
            .as_object()
            .ok_or_else(|| bad(&field, "must be an object"))?;
        for k in o.keys() {
            if !["scopes", "namespaces", "claims"].contains(&k.as_str()) {
                return Err(bad(&format!("{field}.{k}"), "unknown field"));
            }
        }
        let mut scopes = Vec::new();
        for s in strings(o, "scopes", &format!("{field}.scopes"))? {
            let scope = match s.as_str() {
                "read" => Scope::Read,
                "write" => Scope::Write,
                "admin" => Scope::Admin,
                _ => {
                    return Err(bad(
                        &format!("{field}.scopes"),
                        format!("unknown scope {s:?} (read, write, admin)"),
                    ));
                }
            };
            scopes.push(scope);
        }
        let namespaces = strings(o, "namespaces", &format!("{field}.namespaces"))?;
        Grant::new(&[], &namespaces).map_err(|e| bad(&format!("{field}.namespaces"), e))?;
        let claims = strings(o, "claims", &format!("{field}.claims"))?;
        match &target {
            Target::Store(_) if scopes.contains(&Scope::Admin) => {
                return Err(bad(
                    &format!("{field}.scopes"),
                    "a store entitlement takes read and write; admin is the layer entitlement's",
                ));
            }
            Target::Warehouse(_) if !scopes.is_empty() || !namespaces.is_empty() => {
                return Err(bad(
                    &field,
                    "a warehouse entitlement carries only claims (Layer routes never reach a \
                     warehouse)",
                ));
            }
            _ => {}
        }
        out.push((
            key.clone(),
            target,
            Entitlement {
                scopes,
                namespaces,
                claims,
            },
        ));
    }
    Ok(out)
}

/// The entitlements whose target does not exist (stores and warehouses by name).
pub fn missing(
    ents: &[(String, Target, Entitlement)],
    stores: &[&str],
    warehouses: &[&str],
) -> Vec<String> {
    ents.iter()
        .filter(|(_, t, _)| match t {
            Target::Layer => false,
            Target::Store(s) => !stores.contains(&s.as_str()),
            Target::Warehouse(w) => !warehouses.contains(&w.as_str()),
        })
        .map(|(k, _, _)| k.clone())
        .collect()
}

/// The request path's principal of a minted key.
pub fn principal(
    name: &str,
    key_id: &str,
    ents: &[(String, Target, Entitlement)],
    routing: Arc<Routing>,
) -> Principal {
    let mut control = Grant::default();
    let mut data = Vec::new();
    for (_, target, e) in ents {
        match target {
            Target::Layer => {
                // Checked at mint; a stored glob that no longer compiles grants nothing.
                control = Grant::new(&e.scopes, &e.namespaces).unwrap_or_default();
                if e.scopes.contains(&Scope::Admin) {
                    data.push(StoreGrant {
                        store: None,
                        grant: Grant::new(&[Scope::Admin], &e.namespaces).unwrap_or_default(),
                    });
                }
            }
            Target::Store(s) if !e.scopes.is_empty() => data.push(StoreGrant {
                store: Some(s.clone()),
                grant: Grant::new(&e.scopes, &e.namespaces).unwrap_or_default(),
            }),
            Target::Store(_) | Target::Warehouse(_) => {}
        }
    }
    Principal::new(name, Some(key_id.to_string()), control, data, routing)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::auth::{Denied, Surface};

    fn field(v: Value) -> String {
        match parse(Some(&v)) {
            Err(GatewayError::Detailed { detail, .. }) => detail["field"].as_str().unwrap().into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_entitlements_name_their_field() {
        assert_eq!(field(json!({"store.x": {}})), "entitlements.store.x");
        assert_eq!(
            field(json!({"vectorstore.a": {"scopes": ["root"]}})),
            "entitlements.vectorstore.a.scopes"
        );
        assert_eq!(
            field(json!({"vectorstore.a": {"namespaces": ["a[b"]}})),
            "entitlements.vectorstore.a.namespaces"
        );
        assert_eq!(
            field(json!({"warehouse.w": {"scopes": ["read"]}})),
            "entitlements.warehouse.w"
        );
        assert_eq!(
            field(json!({"vectorstore.a": {"scopes": ["admin"]}})),
            "entitlements.vectorstore.a.scopes"
        );
        assert_eq!(
            field(json!({"layer": {"scopez": []}})),
            "entitlements.layer.scopez"
        );
    }

    #[test]
    fn entitlements_become_grants() {
        let routing = Arc::new(Routing {
            default_store: "prod".into(),
            by_namespace: Default::default(),
            live: Default::default(),
        });
        let ents = parse(Some(&json!({
            "vectorstore.prod": {"scopes": ["read"], "namespaces": ["cohort-*"]},
            "warehouse.snow": {"claims": ["notes:cohort:*:read"]},
        })))
        .unwrap();
        assert_eq!(missing(&ents, &["prod"], &[]), vec!["warehouse.snow"]);
        let p = principal("r", "id", &ents, routing.clone());
        assert!(
            p.check(Scope::Read, Surface::Data, Some("cohort-7"))
                .is_ok()
        );
        assert_eq!(
            p.check(Scope::Read, Surface::Data, Some("orders")),
            Err(Denied::Namespace)
        );
        assert!(p.check(Scope::Read, Surface::Control, None).is_err());
        let claims_only = parse(Some(&json!({"warehouse.snow": {"claims": ["x"]}}))).unwrap();
        let c = principal("c", "id2", &claims_only, routing.clone());
        assert!(
            c.check(Scope::Read, Surface::Data, Some("cohort-7"))
                .is_err()
        );
        let admin = parse(Some(&json!({"layer": {"scopes": ["admin"]}}))).unwrap();
        let a = principal("a", "id3", &admin, routing);
        assert!(a.check(Scope::Write, Surface::Data, Some("orders")).is_ok());
        assert!(a.check(Scope::Admin, Surface::Control, None).is_ok());
    }
}
