//! `layer keys mint/ls/get/revoke/rm` over the gateway key routes. `mint` prints the token alone
//! on stdout (so `| pbcopy` captures only it) and the metadata on stderr. Keys are named by key
//! id or, failing that, by name.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Api, ApiKey, Typed};
use crate::context::{Ctx, out};
use crate::error::{CliError, Result};
use crate::manifest::valid_target;
use crate::output::{self, Format, opt};

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Mint a key; the token is printed once, alone on stdout (metadata on stderr)
    #[command(
        after_help = "Examples:\n  layer keys mint cohort-reader --owner acme \\\n    --entitle vectorstore.prod-turbopuffer=read --namespaces 'cohort-*' \\\n    --claim warehouse.prod-snowflake='notes:cohort:*:read'\n  layer keys mint ops-admin --entitle layer=admin --expires-after 30d | pbcopy\n  layer keys mint -f key.yaml"
    )]
    Mint {
        /// Key name (with -f, overrides the manifest's metadata.name)
        #[arg(required_unless_present = "file")]
        name: Option<String>,
        /// An ApiKey manifest (the one `kubectl apply` takes); `status` is ignored
        #[arg(short = 'f', long = "file", value_name = "KEY.yaml",
              conflicts_with_all = ["owner", "description", "entitle", "namespaces", "claim", "expires_after"])]
        file: Option<std::path::PathBuf>,
        /// Owner recorded on the key
        #[arg(long)]
        owner: Option<String>,
        /// Free-text description
        #[arg(long)]
        description: Option<String>,
        /// TARGET[=SCOPE[+SCOPE]], repeatable; targets are vectorstore.NAME, warehouse.NAME or
        /// layer; scopes read, write, admin
        #[arg(long, value_name = "TARGET[=SCOPES]")]
        entitle: Vec<String>,
        /// Upstream-namespace globs for the vectorstore entitlements, comma-separated
        #[arg(long, value_name = "GLOBS")]
        namespaces: Option<String>,
        /// TARGET=STRING, repeatable: an opaque claim appended to that target's entitlement
        #[arg(long, value_name = "TARGET=STRING")]
        claim: Vec<String>,
        /// A duration (e.g. 30d, 12h) or `never` [default: 365d]
        #[arg(long, value_name = "DURATION")]
        expires_after: Option<String>,
    },
    /// List keys (metadata only: never tokens or hashes)
    #[command(after_help = "Examples:\n  layer keys ls\n  layer keys ls --include-revoked -o json")]
    Ls {
        /// Include revoked and expired keys
        #[arg(long)]
        include_revoked: bool,
    },
    /// One key's metadata, by key id or name
    #[command(after_help = "Example:\n  layer keys get cohort-reader")]
    Get { key: String },
    /// Revoke a key (idempotent; the record is kept)
    #[command(after_help = "Example:\n  layer keys revoke cohort-reader")]
    Revoke { key: String },
    /// Delete a key's record for good
    #[command(after_help = "Example:\n  layer keys rm cohort-reader")]
    Rm { key: String },
}

/// Builds the `entitlements` map from `--entitle`, `--namespaces` and `--claim`.
pub fn entitlements(
    entitle: &[String],
    namespaces: Option<&str>,
    claims: &[String],
) -> Result<BTreeMap<String, Value>> {
    let mut map: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
    for e in entitle {
        let (target, scopes) = match e.split_once('=') {
            Some((t, s)) => (t.trim(), Some(s)),
            None => (e.trim(), None),
        };
        if !valid_target(target) {
            return Err(CliError::usage(format!(
                "--entitle {e:?}: the target must be vectorstore.NAME, warehouse.NAME or layer"
            )));
        }
        let entry = map.entry(target.to_string()).or_default();
        if let Some(scopes) = scopes {
            let mut list: Vec<Value> = Vec::new();
            for s in scopes.split('+').map(str::trim) {
                if !matches!(s, "read" | "write" | "admin") {
                    return Err(CliError::usage(format!(
                        "--entitle {e:?}: unknown scope {s:?} (read, write or admin)"
                    )));
                }
                list.push(json!(s));
            }
            entry.insert("scopes".into(), Value::Array(list));
        }
    }
    if let Some(globs) = namespaces {
        let globs: Vec<Value> = globs
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| json!(g))
            .collect();
        let mut any = false;
        for (t, e) in map.iter_mut() {
            if t.starts_with("vectorstore.") {
                e.insert("namespaces".into(), Value::Array(globs.clone()));
                any = true;
            }
        }
        if !any {
            return Err(CliError::usage(
                "--namespaces applies to a vectorstore entitlement: add --entitle vectorstore.NAME=SCOPE",
            ));
        }
    }
    for c in claims {
        let Some((target, claim)) = c.split_once('=') else {
            return Err(CliError::usage(format!(
                "--claim {c:?}: expected TARGET=STRING"
            )));
        };
        let target = target.trim();
        if !valid_target(target) {
            return Err(CliError::usage(format!(
                "--claim {c:?}: the target must be vectorstore.NAME, warehouse.NAME or layer"
            )));
        }
        let entry = map.entry(target.to_string()).or_default();
        let list = entry
            .entry("claims")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = list {
            a.push(json!(claim));
        }
    }
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, Value::Object(v)))
        .collect())
}

/// The key by id, else the one key with that name (revoked keys included).
async fn find(api: &Api, key: &str) -> Result<Typed<ApiKey>> {
    if let Some(k) = api.get_key(key).await? {
        return Ok(k);
    }
    let list = api.list_keys(true).await?;
    let hits: Vec<usize> = (0..list.value.keys.len())
        .filter(|&i| list.value.keys[i].name == key)
        .collect();
    match hits.as_slice() {
        [] => Err(CliError::failure(format!("no key with id or name {key:?}"))),
        [i] => Ok(Typed {
            raw: list.raw["keys"][*i].clone(),
            value: list.value.keys[*i].clone(),
        }),
        many => {
            let ids: Vec<&str> = many
                .iter()
                .map(|&i| list.value.keys[i].key_id.as_str())
                .collect();
            Err(CliError::failure(format!(
                "{} keys are named {key:?}; use a key id: {}",
                many.len(),
                ids.join(", ")
            )))
        }
    }
}

fn targets(k: &ApiKey) -> String {
    let t: Vec<&str> = k.entitlements.keys().map(String::as_str).collect();
    if t.is_empty() {
        "-".into()
    } else {
        t.join(",")
    }
}

fn detail(k: &ApiKey) -> String {
    output::fields(&[
        ("key_id", k.key_id.clone()),
        ("name", k.name.clone()),
        ("owner", opt(k.owner.as_deref())),
        ("description", opt(k.description.as_deref())),
        ("phase", k.phase.clone()),
        (
            "entitlements",
            Value::Object(k.entitlements.clone()).to_string(),
        ),
        ("created_at", k.created_at.clone()),
        ("expires_after", opt(k.expires_after.as_deref())),
        ("expires_at", opt(k.expires_at.as_deref())),
        ("revoked_at", opt(k.revoked_at.as_deref())),
        ("last_seen_at", opt(k.last_seen_at.as_deref())),
    ])
}

fn show(ctx: &Ctx, k: &Typed<ApiKey>) -> Result<()> {
    match ctx.format {
        Format::Json => out(&output::json(&k.raw)),
        Format::Names => out(&format!("{}\n", k.value.name)),
        Format::Table => out(&detail(&k.value)),
    }
}

/// Runs a `keys` subcommand.
pub async fn run(ctx: &Ctx, cmd: KeysCmd) -> Result<()> {
    // Flags are checked before anything is resolved or sent.
    let mint_body = match &cmd {
        KeysCmd::Mint {
            file: Some(file),
            name,
            ..
        } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
            let body = crate::manifest::mint_body(&text, name.as_deref())
                .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
            Some(body)
        }
        KeysCmd::Mint {
            name,
            owner,
            description,
            entitle,
            namespaces,
            claim,
            expires_after,
            ..
        } => {
            let mut body = json!({
                "name": name,
                "entitlements": entitlements(entitle, namespaces.as_deref(), claim)?,
                "expiresAfter": expires_after.as_deref().unwrap_or("365d"),
            });
            if let Some(o) = owner {
                body["owner"] = json!(o);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            Some(body)
        }
        _ => None,
    };
    let api = ctx.api()?;
    match cmd {
        KeysCmd::Mint { .. } => {
            let body = mint_body.unwrap_or(Value::Null);
            let k = api.mint_key(&body).await?;
            if ctx.format == Format::Json {
                return out(&output::json(&k.raw));
            }
            let Some(token) = k.value.token.clone() else {
                return Err(CliError::failure(
                    "the gateway's mint answer carries no token",
                ));
            };
            eprint!("{}", detail(&k.value));
            eprintln!("The token is shown once; it cannot be printed again.");
            out(&format!("{token}\n"))
        }
        KeysCmd::Ls { include_revoked } => {
            let list = api.list_keys(include_revoked).await?;
            match ctx.format {
                Format::Json => out(&output::json(&list.raw)),
                Format::Names => out(&list
                    .value
                    .keys
                    .iter()
                    .map(|k| format!("{}\n", k.name))
                    .collect::<String>()),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .value
                        .keys
                        .iter()
                        .map(|k| {
                            vec![
                                k.key_id.clone(),
                                k.name.clone(),
                                opt(k.owner.as_deref()),
                                k.phase.clone(),
                                targets(k),
                                opt(k.expires_at.as_deref()),
                                opt(k.last_seen_at.as_deref()),
                            ]
                        })
                        .collect();
                    out(&output::table(
                        &[
                            "KEY_ID",
                            "NAME",
                            "OWNER",
                            "PHASE",
                            "TARGETS",
                            "EXPIRES_AT",
                            "LAST_SEEN",
                        ],
                        &rows,
                    ))
                }
            }
        }
        KeysCmd::Get { key } => show(ctx, &find(&api, &key).await?),
        KeysCmd::Revoke { key } => {
            let id = find(&api, &key).await?.value.key_id;
            let k = api.revoke_key(&id).await?;
            match ctx.format {
                Format::Table => out(&format!("revoked {} ({})\n", k.value.name, k.value.key_id)),
                _ => show(ctx, &k),
            }
        }
        KeysCmd::Rm { key } => {
            let found = find(&api, &key).await?.value;
            let body = api.delete_key(&found.key_id).await?;
            match ctx.format {
                Format::Json => out(&output::json(&body)),
                _ => out(&format!("deleted {} ({})\n", found.name, found.key_id)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitle_namespaces_and_claims_build_the_map() {
        let m = entitlements(
            &["vectorstore.prod=read+write".into(), "layer".into()],
            Some("cohort-*, orders"),
            &["warehouse.snow=notes:cohort:*:read".into()],
        )
        .unwrap();
        assert_eq!(
            Value::Object(m.into_iter().collect()),
            json!({
                "vectorstore.prod": {"scopes": ["read", "write"], "namespaces": ["cohort-*", "orders"]},
                "layer": {},
                "warehouse.snow": {"claims": ["notes:cohort:*:read"]},
            })
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for (e, n, c) in [
            (vec!["bogus.x=read".to_string()], None, vec![]),
            (vec!["layer=root".to_string()], None, vec![]),
            (vec!["layer=admin".to_string()], Some("a*"), vec![]),
            (vec![], None, vec!["noequals".to_string()]),
        ] {
            let err = entitlements(&e, n, &c).unwrap_err();
            assert_eq!(err.code, 2, "{err}");
        }
    }
}
