//! `keys mint -f key.yaml`: the `ApiKey` manifest `kubectl apply` takes, turned into a mint body.
//! Every error names the field (`spec.entitlements.layer.scopes[0]: ...`); `status` is ignored.

use serde_json::{Map, Value, json};

/// The `POST /v2/keys` body from a manifest's text; `name` overrides `metadata.name`.
pub fn mint_body(text: &str, name: Option<&str>) -> Result<Value, String> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(doc) = doc else {
        return Err("the manifest is not a mapping".into());
    };
    if let Some(v) = doc.get("apiVersion") {
        match v.as_str() {
            Some(s) if s.starts_with("hevlayer.com/") => {}
            _ => {
                return Err(format!(
                    "apiVersion: expected hevlayer.com/v1alpha1, got {v}"
                ));
            }
        }
    }
    if let Some(v) = doc.get("kind")
        && v.as_str() != Some("ApiKey")
    {
        return Err(format!("kind: expected ApiKey, got {v}"));
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("metadata.name: required (a non-empty string)")?
            .to_string(),
    };
    let empty = Map::new();
    let spec = match doc.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(s)) => s,
        Some(v) => return Err(format!("spec: expected a mapping, got {v}")),
    };
    let mut body = json!({ "name": name });
    for (k, v) in spec {
        let field = format!("spec.{k}");
        match k.as_str() {
            "owner" | "description" | "expiresAfter" => {
                let s = v.as_str().ok_or(format!("{field}: expected a string"))?;
                body[k.as_str()] = json!(s);
            }
            "entitlements" => body["entitlements"] = entitlements(v)?,
            _ => {
                return Err(format!(
                    "{field}: unknown field (owner, description, entitlements, expiresAfter)"
                ));
            }
        }
    }
    if body.get("expiresAfter").is_none() {
        body["expiresAfter"] = json!("365d");
    }
    Ok(body)
}

fn strings(v: &Value, field: &str, allowed: Option<&[&str]>) -> Result<Value, String> {
    let a = v
        .as_array()
        .ok_or(format!("{field}: expected a list of strings"))?;
    for (i, s) in a.iter().enumerate() {
        let s = s
            .as_str()
            .ok_or(format!("{field}[{i}]: expected a string"))?;
        if let Some(allowed) = allowed
            && !allowed.contains(&s)
        {
            return Err(format!(
                "{field}[{i}]: {s:?} is not one of {}",
                allowed.join(", ")
            ));
        }
    }
    Ok(v.clone())
}

fn entitlements(v: &Value) -> Result<Value, String> {
    let m = v
        .as_object()
        .ok_or("spec.entitlements: expected a mapping of target to entitlement")?;
    let mut out = Map::new();
    for (target, e) in m {
        let field = format!("spec.entitlements.{target}");
        if !valid_target(target) {
            return Err(format!(
                "{field}: the target must be vectorstore.NAME, warehouse.NAME or layer"
            ));
        }
        let mut entry = Map::new();
        match e {
            Value::Null => {}
            Value::Object(e) => {
                for (k, v) in e {
                    let f = format!("{field}.{k}");
                    let v = match k.as_str() {
                        "scopes" => strings(v, &f, Some(&["read", "write", "admin"]))?,
                        "namespaces" | "claims" => strings(v, &f, None)?,
                        _ => {
                            return Err(format!("{f}: unknown field (scopes, namespaces, claims)"));
                        }
                    };
                    entry.insert(k.clone(), v);
                }
            }
            _ => return Err(format!("{field}: expected a mapping")),
        }
        out.insert(target.clone(), Value::Object(entry));
    }
    Ok(Value::Object(out))
}

/// `vectorstore.NAME`, `warehouse.NAME` or `layer`.
pub fn valid_target(t: &str) -> bool {
    t == "layer"
        || ["vectorstore.", "warehouse."]
            .iter()
            .any(|p| t.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"
apiVersion: hevlayer.com/v1alpha1
kind: ApiKey
metadata:
  name: cohort-reader
  namespace: layer
spec:
  owner: acme
  description: cohort read access
  entitlements:
    vectorstore.prod-turbopuffer:
      scopes: [read]
      namespaces: ["cohort-*"]
    warehouse.prod-snowflake:
      claims:
        - "notes:cohort:*:read"
  expiresAfter: 365d
status:
  phase: Active
"#;

    #[test]
    fn the_spec_example_becomes_a_mint_body() {
        let b = mint_body(SPEC_EXAMPLE, None).unwrap();
        assert_eq!(
            b,
            json!({
                "name": "cohort-reader",
                "owner": "acme",
                "description": "cohort read access",
                "entitlements": {
                    "vectorstore.prod-turbopuffer": {"scopes": ["read"], "namespaces": ["cohort-*"]},
                    "warehouse.prod-snowflake": {"claims": ["notes:cohort:*:read"]},
                },
                "expiresAfter": "365d",
            })
        );
        assert_eq!(
            mint_body(SPEC_EXAMPLE, Some("other")).unwrap()["name"],
            "other"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("kind: Function\nmetadata: {name: a}\n", "kind:"),
            ("kind: ApiKey\n", "metadata.name:"),
            (
                "metadata: {name: a}\nspec: {entitlements: {layer: {scopes: [root]}}}\n",
                "spec.entitlements.layer.scopes[0]:",
            ),
            (
                "metadata: {name: a}\nspec: {entitlements: {bogus: {}}}\n",
                "spec.entitlements.bogus:",
            ),
            ("metadata: {name: a}\nspec: {owner: [x]}\n", "spec.owner:"),
            (
                "metadata: {name: a}\nspec: {expires: 3d}\n",
                "spec.expires:",
            ),
            ("metadata: {name: a\n", "line"),
        ];
        for (text, want) in cases {
            let e = mint_body(text, None).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
