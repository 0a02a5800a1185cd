//! The emulator's `--data-dir`: namespaces written before a restart are back after it, indexed.

use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::{Http, UPSTREAM_KEY, pause};
use serde_json::{Value, json};

fn start(dir: &std::path::Path) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(turbopuffer_emulator::start(turbopuffer_emulator::Config {
            api_keys: vec![UPSTREAM_KEY.into()],
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        }))
        .unwrap();
    (rt, format!("http://{}", running.addr))
}

#[test]
fn namespaces_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("layer-emu-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let http = Http::default();
    let auth = format!("Bearer {UPSTREAM_KEY}");
    let h = [("authorization", auth.as_str())];
    let (rt, url) = start(&dir);
    let w = json!({"upsert_rows": [{"id": 1, "vector": [0.1, 0.2], "t": "kept"}, {"id": 2, "vector": [0.3, 0.4], "t": "also"}],
                   "distance_metric": "cosine_distance", "schema": {"t": {"type": "string", "full_text_search": true}}});
    assert_eq!(
        http.send(
            Method::POST,
            &format!("{url}/v2/namespaces/p"),
            &h,
            w.to_string()
        )
        .status,
        200
    );
    // The persister writes dirty namespaces every 250 ms (to a temporary file, then renamed):
    // wait until the file holds both rows.
    let file = dir.join("namespaces").join("p.json");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&file)
        .is_ok_and(|t| t.contains("\"kept\"") && t.contains("\"also\""))
    {
        assert!(Instant::now() < deadline, "namespace file never written");
        pause(Duration::from_millis(50));
    }
    rt.shutdown_background();

    let (_rt, url) = start(&dir);
    let q = json!({"rank_by": ["t", "BM25", "kept"], "top_k": 5, "include_attributes": ["t", "vector"]});
    let r = http.send(
        Method::POST,
        &format!("{url}/v2/namespaces/p/query"),
        &h,
        q.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json()["rows"].clone();
    assert_eq!(
        rows.as_array().unwrap().len(),
        1,
        "full-text tokens are rebuilt on restore"
    );
    assert_eq!(rows[0]["t"], "kept");
    let meta: Value = http
        .send(
            Method::GET,
            &format!("{url}/v2/namespaces/p/metadata"),
            &h,
            "",
        )
        .json();
    assert_eq!(
        meta["approx_row_count"], 2,
        "restored namespaces count as indexed"
    );
    assert_eq!(meta["index"]["status"], "up-to-date");
    let _ = std::fs::remove_dir_all(&dir);
}
