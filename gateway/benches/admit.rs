//! The cost of admitting a request: a configured key against a minted key (the minted map is a
//! second, lock-free lookup, a constant-time hash compare and an expiry check). The issue asks
//! that a minted key cost the same as a configured one on the query path within noise; this
//! measures the one place they differ. `cargo bench -p layer-gateway --bench admit`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use layer_gateway::Config;
use layer_gateway::core::auth::{
    Auth, Grant, MintedMap, Principal, StoreGrant, Surface, hash_token,
};
use layer_gateway::core::config::Scope;

fn headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

fn bench(c: &mut Criterion) {
    let mut cfg = Config::default();
    cfg.vector_store.credential.value = Some("tpuf_configured_key".into());
    let auth = Auth::from_config(&cfg, &|_| None).unwrap();
    // 1,000 minted keys, one of them used.
    let mut map = MintedMap::default();
    for i in 0..1000 {
        let token = format!("hvl_minted_token_{i:04}");
        let h = hash_token(&token);
        let mut half = [0u8; 16];
        half.copy_from_slice(&h[..16]);
        let p = Principal::new(
            &format!("k{i}"),
            Some(format!("id{i}")),
            Grant::default(),
            vec![StoreGrant {
                store: Some("default".into()),
                grant: Grant::new(&[Scope::Read], &[]).unwrap(),
            }],
            auth.routing().clone(),
        );
        map.insert(half, (h, Arc::new(p)));
    }
    auth.publish_minted(map);
    let configured = headers("tpuf_configured_key");
    let minted = headers("hvl_minted_token_0500");
    let mut g = c.benchmark_group("admit_query");
    g.bench_function("configured_key", |b| {
        b.iter(|| {
            auth.admit(
                &configured,
                Some(Scope::Read),
                Surface::Data,
                Some("products"),
            )
            .unwrap()
        })
    });
    g.bench_function("minted_key", |b| {
        b.iter(|| {
            auth.admit(&minted, Some(Scope::Read), Surface::Data, Some("products"))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
