//! Inbound auth: bearer token → principal ([`super::principal`]), then the route's scope on its
//! plane and the namespace grant.
//!
//! Modes (`vectorStore.inboundAuth.mode`): `deriveFromStore` (the upstream credential is the one
//! bearer and is admin), `keys` (configured keys with `read`/`write`/`admin` scopes and namespace
//! globs), `open` (no auth). The key map is keyed by the SHA-256 of each token, so lookup time
//! does not depend on how much of a guess matches a real token, and no token is kept in the clear
//! or logged. The configured policy is built from config at start; minted keys (the `keys`
//! feature) are republished into a lock-free map ([`Auth::publish_minted`]) and checked after
//! the configured ones, with their expiry. The route table says which scope each route needs and
//! on which plane ([`super::router`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use http::HeaderMap;
use sha2::{Digest, Sha256};

pub use super::principal::{Denied, Grant, Principal, Routing, StoreGrant, Surface};

use super::config::{AuthMode, Config, ConfigError, Scope};
use super::error::GatewayError;

/// How often at most a minted key's use is reported (`lastSeenAt`), per key.
pub const LAST_SEEN_EVERY_MS: u64 = 5 * 60 * 1000;

/// The SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// The SHA-256 of a token (the key maps are keyed by it, so no token is kept in the clear).
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A token's `lookupHash` as the key model shows it: `sha256:<hex>`.
pub fn lookup_hash(token: &str) -> String {
    let mut out = String::from("sha256:");
    for b in hash_token(token) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Equality of two hashes in time that does not depend on where they differ.
fn same(a: &TokenHash, b: &TokenHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A map keyed by token digests (SHA-256, or a prefix of one). Their bytes are already uniform,
/// and nobody can choose them without a preimage, so std's keyed SipHash (~800 instructions per
/// admitted request, `bench/results/2026-12-06-digest-hasher.md`) protects nothing here:
/// foldhash's fast hasher, as the hot cache uses, does the job.
pub type DigestMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Minted keys as the request path sees them: by the first half of the token's hash, with the
/// whole hash to compare in constant time.
pub type MintedMap = DigestMap<[u8; 16], (TokenHash, Arc<Principal>)>;

/// The published auth policy: configured keys (fixed at start) and minted keys (republished by
/// the key store's loop, read lock-free).
///
/// Each shard admits through its own copy ([`Auth::shard_copy`]): a request takes a counted
/// reference to its principal, and with one principal for all traffic (the default modes) a
/// shared one would have every core write the same reference count per request. Minted keys'
/// principals stay shared (one map, republished by the key store).
pub struct Auth {
    mode: AuthMode,
    keys: DigestMap<TokenHash, Arc<Principal>>,
    minted: Arc<ArcSwap<MintedMap>>,
    open: Arc<Principal>,
    routing: Arc<Routing>,
    /// Where minted keys' uses are reported (`lastSeenAt`); set by the keys feature.
    seen: Arc<OnceLock<tokio::sync::mpsc::Sender<String>>>,
}

impl Auth {
    /// Builds the policy from config; `env` resolves `tokenEnv` and `credential.env`.
    pub fn from_config(
        cfg: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Auth, ConfigError> {
        let ia = &cfg.vector_store.inbound_auth;
        let routing = Routing::from_config(cfg);
        let mut keys = DigestMap::default();
        match ia.mode {
            AuthMode::DeriveFromStore => {
                // The default store's credential is admin; another store's opens that store.
                for (i, store) in cfg.stores().enumerate() {
                    let key = super::config::store_key(store, env).ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "deriveFromStore needs store {:?}'s credential",
                            store.name
                        ))
                    })?;
                    let p = if i == 0 {
                        Principal::admin("store-credential", routing.clone())
                    } else {
                        Principal::new(
                            &format!("store-credential:{}", store.name),
                            None,
                            Grant::default(),
                            vec![StoreGrant {
                                store: Some(store.name.clone()),
                                grant: Grant::new(&[Scope::Admin], &[])
                                    .map_err(ConfigError::Invalid)?,
                            }],
                            routing.clone(),
                        )
                    };
                    // Stores sharing a credential: the first (the default store's) wins.
                    keys.entry(hash_token(key.trim()))
                        .or_insert_with(|| Arc::new(p));
                }
            }
            AuthMode::Keys => {
                for (i, store) in cfg.stores().enumerate() {
                    // The default store's keys reach every store; another store's keys its own.
                    let scope_store = (i > 0).then(|| store.name.clone());
                    for k in &store.inbound_auth.keys {
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
                        let p = Principal::configured(
                            &k.name,
                            &k.scopes,
                            &k.namespaces,
                            scope_store.clone(),
                            routing.clone(),
                        )
                        .map_err(|e| ConfigError::Invalid(format!("key {:?}: {e}", k.name)))?;
                        if keys.insert(hash_token(token.trim()), Arc::new(p)).is_some() {
                            return Err(ConfigError::Invalid(format!(
                                "key {:?} reuses another key's token",
                                k.name
                            )));
                        }
                    }
                }
            }
            AuthMode::Open => {}
        }
        Ok(Auth {
            mode: ia.mode,
            keys,
            minted: Arc::new(ArcSwap::from_pointee(MintedMap::default())),
            open: Arc::new(Principal::admin("open", routing.clone())),
            routing,
            seen: Arc::default(),
        })
    }

    /// A copy for one shard: the configured principals copied (their reference counts are the
    /// shard's own), the minted map and the report channel shared with `self` (so keys minted
    /// or a channel set later reach every copy).
    pub fn shard_copy(&self) -> Auth {
        Auth {
            mode: self.mode,
            keys: self
                .keys
                .iter()
                .map(|(h, p)| (*h, Arc::new(p.copy())))
                .collect(),
            minted: self.minted.clone(),
            open: Arc::new(self.open.copy()),
            routing: self.routing.clone(),
            seen: self.seen.clone(),
        }
    }

    /// Which store serves which namespace.
    pub fn routing(&self) -> &Arc<Routing> {
        &self.routing
    }

    /// Publishes the minted keys the request path accepts (replacing the previous set).
    pub fn publish_minted(&self, map: MintedMap) {
        self.minted.store(Arc::new(map));
    }

    /// The minted keys published now.
    pub fn minted_snapshot(&self) -> Arc<MintedMap> {
        self.minted.load_full()
    }

    /// Where uses of minted keys are reported (once).
    pub fn report_seen_to(&self, tx: tokio::sync::mpsc::Sender<String>) {
        let _ = self.seen.set(tx);
    }

    /// The principal of a token (configured keys, then minted ones), or `None`. Minted keys
    /// past their expiry are refused.
    pub fn principal_of(&self, token: &str) -> Option<Arc<Principal>> {
        let h = hash_token(token);
        if let Some(p) = self.keys.get(&h) {
            return Some(p.clone());
        }
        let minted = self.minted.load();
        let mut half = [0u8; 16];
        half.copy_from_slice(&h[..16]);
        let (full, p) = minted.get(&half)?;
        if !same(full, &h) {
            return None;
        }
        if p.expires_at_ms.is_some_and(|e| super::http::now_ms() >= e) {
            return None;
        }
        Some(p.clone())
    }

    /// Authenticates and authorizes a request for a route needing `scope` (`None`: public) on
    /// `surface`, naming namespace `ns` (when the route names one).
    pub fn admit(
        &self,
        headers: &HeaderMap,
        scope: Option<Scope>,
        surface: Surface,
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
                self.principal_of(token).ok_or(GatewayError::InvalidToken)?
            }
        };
        principal.check(scope, surface, ns).map_err(|d| match d {
            Denied::Scope(required) => GatewayError::InsufficientScope { required },
            Denied::Namespace => GatewayError::NamespaceNotGranted {
                namespace: ns.unwrap_or_default().to_string(),
            },
        })?;
        if let Some(id) = &principal.key_id
            && principal.due_seen(super::http::now_ms(), LAST_SEEN_EVERY_MS)
            && let Some(tx) = self.seen.get()
        {
            let _ = tx.try_send(id.clone());
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
    fn a_shard_copy_admits_alike_with_its_own_principals_and_sees_keys_minted_later() {
        let env = |k: &str| (k == "ADMIN_TOKEN").then(|| "a".to_string());
        let auth = Auth::from_config(&keys_config(), &env).unwrap();
        let copy = auth.shard_copy();
        let read = |a: &Auth, token: &str, ns: &str| {
            a.admit(&headers(token), Some(Scope::Read), Surface::Data, Some(ns))
        };
        for (token, ns) in [
            ("r", "shop-1"),
            ("r", "orders"),
            ("a", "orders"),
            ("x", "shop-1"),
        ] {
            let (shared, own) = (read(&auth, token, ns), read(&copy, token, ns));
            assert_eq!(
                shared
                    .as_ref()
                    .map(|p| p.name.clone())
                    .map_err(|e| e.to_string()),
                own.as_ref()
                    .map(|p| p.name.clone())
                    .map_err(|e| e.to_string()),
                "{token} on {ns}"
            );
            if let (Ok(shared), Ok(own)) = (shared, own) {
                // Equal principals, not the same allocation: no reference count is shared.
                assert!(!Arc::ptr_eq(&shared, &own));
            }
        }
        // A key minted after the copy was made is admitted by the copy too.
        let h = hash_token("hvl_later");
        let mut half = [0u8; 16];
        half.copy_from_slice(&h[..16]);
        let minted =
            Principal::configured("later", &[Scope::Read], &[], None, auth.routing().clone())
                .unwrap();
        auth.publish_minted(MintedMap::from_iter([(half, (h, Arc::new(minted)))]));
        assert_eq!(read(&copy, "hvl_later", "orders").unwrap().name, "later");
    }

    #[test]
    fn keys_mode_checks_scope_and_grant() {
        let env = |k: &str| (k == "ADMIN_TOKEN").then(|| "a".to_string());
        let auth = Auth::from_config(&keys_config(), &env).unwrap();
        let query = (Some(Scope::Read), Some("shop-1"));
        let write = (Some(Scope::Write), Some("shop-1"));
        let other = (Some(Scope::Read), Some("orders"));
        let admit = |h: &HeaderMap, (scope, ns): (Option<Scope>, Option<&str>)| {
            auth.admit(h, scope, Surface::Data, ns)
        };
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
        assert!(
            auth.admit(&headers("tpuf_x"), write.0, Surface::Data, write.1)
                .is_ok()
        );
        assert!(
            auth.admit(&headers("tpuf_y"), write.0, Surface::Data, write.1)
                .is_err()
        );
        c.vector_store.inbound_auth.mode = AuthMode::Open;
        let auth = Auth::from_config(&c, &|_| None).unwrap();
        assert!(
            auth.admit(&HeaderMap::new(), write.0, Surface::Data, write.1)
                .is_ok()
        );
        let strict = Auth::from_config(&keys_config(), &|_| Some("a".into())).unwrap();
        assert!(
            strict
                .admit(&HeaderMap::new(), None, Surface::Data, None)
                .is_ok()
        );
    }
}
