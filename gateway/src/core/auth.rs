//! Inbound auth: bearer token → principal, then scope and namespace-grant checks.
//!
//! Modes (`vectorStore.inboundAuth.mode`): `deriveFromStore` (the upstream credential is the one
//! bearer and is admin), `keys` (configured keys with `read`/`write`/`admin` scopes and namespace
//! globs), `open` (no auth). The key map is keyed by the SHA-256 of each token, so lookup time
//! does not depend on how much of a guess matches a real token, and no token is kept in the clear
//! or logged. The policy is built from config at start; the route table says which scope each
//! route needs ([`super::router`]).

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use http::HeaderMap;
use sha2::{Digest, Sha256};

use super::config::{AuthMode, Config, ConfigError, Scope};
use super::error::GatewayError;

/// Who is calling.
#[derive(Debug)]
pub struct Principal {
    pub name: String,
    scopes: u8,
    /// `None` = every namespace.
    namespaces: Option<GlobSet>,
}

impl Principal {
    fn admin(name: &str) -> Self {
        Principal {
            name: name.into(),
            scopes: bit(Scope::Admin),
            namespaces: None,
        }
    }

    /// Whether the principal holds `scope` (admin satisfies everything).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & (bit(scope) | bit(Scope::Admin)) != 0
    }

    /// Whether the namespace grant covers `ns`.
    pub fn may_access(&self, ns: &str) -> bool {
        self.namespaces.as_ref().is_none_or(|g| g.is_match(ns))
    }

    /// Whether the principal is limited to some namespaces (list results must be filtered).
    pub fn is_namespace_limited(&self) -> bool {
        self.namespaces.is_some()
    }

    /// Keeps only the rows of a listing's `namespaces` array whose `key` (`name` in Layer's
    /// listing, `id` in Turbopuffer's) names a namespace this principal may access.
    pub fn retain_granted(&self, page: &mut serde_json::Value, key: &str) {
        if !self.is_namespace_limited() {
            return;
        }
        if let Some(rows) = page
            .get_mut("namespaces")
            .and_then(serde_json::Value::as_array_mut)
        {
            rows.retain(|r| {
                r.get(key)
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|n| self.may_access(n))
            });
        }
    }
}

fn bit(s: Scope) -> u8 {
    match s {
        Scope::Read => 1,
        Scope::Write => 2,
        Scope::Admin => 4,
    }
}

type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The published auth policy.
pub struct Auth {
    mode: AuthMode,
    keys: HashMap<TokenHash, Arc<Principal>>,
    open: Arc<Principal>,
}

impl Auth {
    /// Builds the policy from config; `env` resolves `tokenEnv` and `credential.env`.
    pub fn from_config(
        cfg: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Auth, ConfigError> {
        let ia = &cfg.vector_store.inbound_auth;
        let mut keys = HashMap::new();
        match ia.mode {
            AuthMode::DeriveFromStore => {
                let key = cfg.upstream_key(env).ok_or_else(|| {
                    ConfigError::Invalid("deriveFromStore needs the upstream credential".into())
                })?;
                keys.insert(
                    hash(key.trim()),
                    Arc::new(Principal::admin("store-credential")),
                );
            }
            AuthMode::Keys => {
                for k in &ia.keys {
                    let token = match (&k.token, &k.token_env) {
                        (Some(t), _) => t.clone(),
                        (None, Some(var)) => env(var).ok_or_else(|| {
                            ConfigError::Invalid(format!(
                                "key {:?}: environment variable {var} is not set",
                                k.name
                            ))
                        })?,
                        (None, None) => {
                            return Err(ConfigError::Invalid(format!(
                                "key {:?} has no token",
                                k.name
                            )));
                        }
                    };
                    let namespaces = if k.namespaces.is_empty() {
                        None
                    } else {
                        let mut b = GlobSetBuilder::new();
                        for g in &k.namespaces {
                            b.add(Glob::new(g).map_err(|e| {
                                ConfigError::Invalid(format!(
                                    "key {:?}: bad namespace glob {g:?}: {e}",
                                    k.name
                                ))
                            })?);
                        }
                        Some(b.build().map_err(|e| ConfigError::Invalid(e.to_string()))?)
                    };
                    let scopes = k.scopes.iter().fold(0, |acc, s| acc | bit(*s));
                    let p = Principal {
                        name: k.name.clone(),
                        scopes,
                        namespaces,
                    };
                    if keys.insert(hash(token.trim()), Arc::new(p)).is_some() {
                        return Err(ConfigError::Invalid(format!(
                            "key {:?} reuses another key's token",
                            k.name
                        )));
                    }
                }
            }
            AuthMode::Open => {}
        }
        Ok(Auth {
            mode: ia.mode,
            keys,
            open: Arc::new(Principal::admin("open")),
        })
    }

    /// Authenticates and authorizes a request for a route needing `scope` (`None`: public) on
    /// namespace `ns` (when the route names one).
    pub fn admit(
        &self,
        headers: &HeaderMap,
        scope: Option<Scope>,
        ns: Option<&str>,
    ) -> Result<Arc<Principal>, GatewayError> {
        let Some(scope) = scope else {
            return Ok(self.open.clone());
        };
        let principal = match self.mode {
            AuthMode::Open => self.open.clone(),
            _ => {
                // Two `authorization` headers are ambiguous (proxies disagree on which wins): refused.
                if headers
                    .get_all(http::header::AUTHORIZATION)
                    .iter()
                    .nth(1)
                    .is_some()
                {
                    return Err(GatewayError::InvalidToken);
                }
                let token = bearer(headers).ok_or(GatewayError::MissingToken)?;
                self.keys
                    .get(&hash(token))
                    .cloned()
                    .ok_or(GatewayError::InvalidToken)?
            }
        };
        if !principal.has(scope) {
            return Err(GatewayError::InsufficientScope { required: scope });
        }
        if let Some(ns) = ns
            && !principal.may_access(ns)
        {
            return Err(GatewayError::NamespaceNotGranted {
                namespace: ns.to_string(),
            });
        }
        Ok(principal)
    }
}

/// The bearer token of a request, whitespace-trimmed. The value is trimmed first: HTTP/1.1
/// parsers drop the whitespace around a field value, HTTP/2 hands it over as sent, and the two
/// must admit the same requests.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::KeyConfig;
    use http::HeaderValue;

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    fn keys_config() -> Config {
        let mut c = Config::default();
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![
            KeyConfig {
                name: "reader".into(),
                scopes: vec![Scope::Read],
                namespaces: vec!["shop-*".into()],
                token: Some("r".into()),
                token_env: None,
            },
            KeyConfig {
                name: "admin".into(),
                scopes: vec![Scope::Admin],
                namespaces: vec![],
                token: None,
                token_env: Some("ADMIN_TOKEN".into()),
            },
        ];
        c
    }

    #[test]
    fn keys_mode_checks_scope_and_grant() {
        let env = |k: &str| (k == "ADMIN_TOKEN").then(|| "a".to_string());
        let auth = Auth::from_config(&keys_config(), &env).unwrap();
        let query = (Some(Scope::Read), Some("shop-1"));
        let write = (Some(Scope::Write), Some("shop-1"));
        let other = (Some(Scope::Read), Some("orders"));
        let admit =
            |h: &HeaderMap, (scope, ns): (Option<Scope>, Option<&str>)| auth.admit(h, scope, ns);
        assert!(admit(&headers("r"), query).is_ok());
        assert!(matches!(
            admit(&headers("r"), write),
            Err(GatewayError::InsufficientScope {
                required: Scope::Write
            })
        ));
        assert!(matches!(
            admit(&headers("r"), other),
            Err(GatewayError::NamespaceNotGranted { .. })
        ));
        assert!(admit(&headers("a"), write).is_ok());
        assert!(matches!(
            admit(&headers("nope"), query),
            Err(GatewayError::InvalidToken)
        ));
        assert!(matches!(
            admit(&HeaderMap::new(), query),
            Err(GatewayError::MissingToken)
        ));
        // A second authorization header, valid or not, is refused whatever the first says.
        let mut twice = headers("a");
        twice.append(http::header::AUTHORIZATION, "Bearer r".parse().unwrap());
        assert!(matches!(
            admit(&twice, write),
            Err(GatewayError::InvalidToken)
        ));
    }

    #[test]
    fn bearer_spellings() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        for v in [
            "Bearer t",
            "bearer t",
            "BEARER t",
            "Bearer   t  ",
            "  Bearer t ",
        ] {
            assert_eq!(bearer(&with(v)), Some("t"), "{v:?}");
        }
        for v in [
            "",
            "Bearer",
            "Bearer ",
            "t",
            "Bearert",
            "Basic t",
            "Bearer\tt",
        ] {
            assert_eq!(bearer(&with(v)), None, "{v:?}");
        }
    }

    #[test]
    fn derive_from_store_and_open() {
        let mut c = Config::default();
        c.vector_store.credential.value = Some("tpuf_x".into());
        let auth = Auth::from_config(&c, &|_| None).unwrap();
        let write = (Some(Scope::Write), Some("a"));
        assert!(auth.admit(&headers("tpuf_x"), write.0, write.1).is_ok());
        assert!(auth.admit(&headers("tpuf_y"), write.0, write.1).is_err());
        c.vector_store.inbound_auth.mode = AuthMode::Open;
        let auth = Auth::from_config(&c, &|_| None).unwrap();
        assert!(auth.admit(&HeaderMap::new(), write.0, write.1).is_ok());
        let strict = Auth::from_config(&keys_config(), &|_| Some("a".into())).unwrap();
        assert!(strict.admit(&HeaderMap::new(), None, None).is_ok());
    }
}
