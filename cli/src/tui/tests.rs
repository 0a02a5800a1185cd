//! The TUI without a terminal: each view drawn from a fixed [`App`] into ratatui's `TestBackend`
//! (asserting on the buffer's text: humanized values, empty and loading states, errors in the
//! view, long names cut), and the key handling as a state machine.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

use super::render;
use super::state::{
    App, DetailData, EnvRow, Header, IndexDetail, Key, ListData, Payload, PipelineRow, Request,
    Response, Screen, Slot, UdfRow, View,
};
use crate::client::{ApiKey, CacheState, NamespaceEntry, NamespaceMetadata, QueueStatus};
use crate::config::EnvEntry;

/// 2026-12-04T20:00:00Z.
const NOW: u64 = 1_796_414_400_000;

fn app() -> App {
    App::new(
        Header {
            base_url: "http://gw.test:8080".into(),
            env_name: Some("local".into()),
        },
        Duration::from_secs(5),
        NOW,
    )
}

fn with_list(v: View, data: ListData) -> App {
    let mut a = app();
    a.screen = Screen::List(v);
    a.lists[v as usize] = Slot {
        data: Some(data),
        error: None,
        at_ms: Some(NOW - 2_000),
    };
    a
}

/// The screen as text, one line per row, trailing spaces trimmed.
fn screen(a: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render::draw(f, a)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn entry(name: &str) -> NamespaceEntry {
    NamespaceEntry {
        name: name.into(),
        row_count: Some(1_234_567),
        size_bytes: Some(1536),
        stable_as_of_ms: Some(NOW - 5_000),
        is_stable: Some(true),
        cache_state: Some(CacheState {
            state: "warm".into(),
            warm_inflight: false,
            warmed_through_ms: Some(NOW - 60_000),
        }),
        last_write_ms: Some(NOW - 3 * 60_000),
        ..Default::default()
    }
}

fn status(pending: u64) -> QueueStatus {
    serde_json::from_value(json!({
        "status": "running", "pending_count": pending, "processing_count": 2, "failed_count": 1,
        "indexed_rate_per_min": 12.5, "rate_window_seconds": 300,
        "discovery": {"sweeps_completed": 7, "last_completed_at": "2026-12-04T19:59:00Z"},
        "active_namespaces": ["shop-a", "shop-b"],
    }))
    .unwrap()
}

fn udf(id: &str) -> UdfRow {
    UdfRow {
        udf: serde_json::from_value(json!({
            "id": id, "spec": {"version": "v3", "model": "tagger"}, "paused": false,
            "created_at": "2026-12-01T20:00:00Z", "updated_at": "2026-12-04T19:00:00Z",
        }))
        .unwrap(),
        status: Some(status(1500)),
    }
}

fn pipeline(id: &str, with_status: bool) -> PipelineRow {
    PipelineRow {
        pipeline: serde_json::from_value(json!({
            "id": id, "target_namespace": "shop-products", "distance_metric": "cosine_distance",
            "created_at": "2026-12-04T18:00:00Z",
        }))
        .unwrap(),
        status: with_status.then(|| status(3)),
    }
}

fn key(name: &str, extra: Value) -> ApiKey {
    let mut v = json!({
        "keyId": format!("key_{name}"), "name": name, "phase": "Active",
        "createdAt": "2026-12-04T19:00:00Z", "owner": "acme",
        "entitlements": {"layer": {"scopes": ["read"]}, "vectorstore.prod": {"scopes": ["read"]}},
        "expiresAt": "2027-12-03T20:00:00Z",
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(v).unwrap()
}

fn env_row(name: &str, active: bool) -> EnvRow {
    EnvRow {
        name: name.into(),
        entry: EnvEntry {
            base_url: Some(format!("https://{name}.example.com")),
            api_key: Some("secret-key-0123456789".into()),
            kube_context: Some("kind-x".into()),
            kube_namespace: None,
        },
        active,
        in_use: active,
    }
}

#[test]
fn indexes_view_shows_humanized_rows_tabs_and_where_it_reads() {
    let a = with_list(
        View::Indexes,
        ListData::Indexes(vec![entry("shop-products"), entry("cohort-7")]),
    );
    let s = screen(&a, 140, 12);
    for want in [
        "layer",
        "env local · http://gw.test:8080 · read-only",
        "[i] Indexes",
        "[f] Functions",
        "[p] Pipelines",
        "[k] Keys",
        "[e] Environments",
        "Indexes (2)",
        "NAME",
        "> shop-products",
        "cohort-7",
        "1,234,567",
        "1.5 KiB",
        "5s ago",
        "3m ago",
        "warm",
        "raw values: layer index list",
        "updated 2s ago · refresh every 5s",
        "esc/q quit",
    ] {
        assert!(s.contains(want), "{want:?} missing:\n{s}");
    }
    // Raw values are not what the view shows.
    assert!(!s.contains("1536"), "{s}");
    assert!(!s.contains(&(NOW - 5_000).to_string()), "{s}");
}

#[test]
fn every_view_has_an_empty_state() {
    for (v, data, want) in [
        (View::Indexes, ListData::Indexes(vec![]), "No indexes."),
        (
            View::Functions,
            ListData::Functions(vec![]),
            "No functions.",
        ),
        (
            View::Pipelines,
            ListData::Pipelines(vec![]),
            "No pipelines.",
        ),
        (View::Keys, ListData::Keys(vec![]), "No keys."),
        (
            View::Environments,
            ListData::Environments(vec![]),
            "No environments.",
        ),
    ] {
        let s = screen(&with_list(v, data), 100, 10);
        assert!(s.contains(want), "{v:?}:\n{s}");
        assert!(s.contains(&format!("{} (0)", v.title())), "{v:?}:\n{s}");
        assert!(s.contains(v.twin()), "{v:?} names its twin:\n{s}");
    }
}

#[test]
fn a_view_not_loaded_yet_says_loading() {
    let mut a = app();
    assert_eq!(a.start(), vec![Request::List(View::Indexes)]);
    let s = screen(&a, 100, 10);
    assert!(s.contains("Loading…"), "{s}");
    assert!(s.contains("not loaded yet"), "{s}");
    assert!(s.contains("loading…"), "in flight: {s}");
}

#[test]
fn errors_are_shown_in_the_view() {
    let mut a = app();
    a.screen = Screen::List(View::Pipelines);
    a.lists[View::Pipelines as usize] = Slot {
        data: None,
        error: Some("GET /v2/pipelines: HTTP 503 queue_unavailable: no database".into()),
        at_ms: Some(NOW),
    };
    let s = screen(&a, 120, 10);
    assert!(
        s.contains("error: GET /v2/pipelines: HTTP 503 queue_unavailable: no database"),
        "{s}"
    );
    assert!(!s.contains("Loading"), "{s}");

    // A failed refresh keeps the earlier rows under the error.
    let mut a = with_list(
        View::Indexes,
        ListData::Indexes(vec![entry("shop-products")]),
    );
    a.lists[0].error = Some("cannot reach http://gw.test:8080: connection refused".into());
    let s = screen(&a, 120, 12);
    assert!(
        s.contains("refresh failed (showing earlier data): cannot reach"),
        "{s}"
    );
    assert!(s.contains("shop-products"), "{s}");

    // A row whose metadata failed shows its error cell.
    let mut e = entry("broken");
    e.metadata_error = Some("upstream 500".into());
    let s = screen(
        &with_list(View::Indexes, ListData::Indexes(vec![e])),
        160,
        10,
    );
    assert!(s.contains("upstream 500"), "{s}");
}

#[test]
fn long_names_are_cut_with_an_ellipsis() {
    let long = format!("very-long-namespace-{}", "x".repeat(60));
    let a = with_list(View::Indexes, ListData::Indexes(vec![entry(&long)]));
    let s = screen(&a, 160, 10);
    let cut: String = long.chars().take(render::NAME_WIDTH - 1).collect();
    assert!(s.contains(&format!("{cut}…")), "{s}");
    assert!(!s.contains(&long), "{s}");
    // The columns after the name are still on screen.
    assert!(s.contains("1.5 KiB"), "{s}");
}

#[test]
fn functions_pipelines_keys_and_environments_lists() {
    let mut bare = udf("bare");
    bare.status = None;
    let s = screen(
        &with_list(
            View::Functions,
            ListData::Functions(vec![udf("product-tags"), bare]),
        ),
        140,
        10,
    );
    for want in [
        "Functions (2)",
        "product-tags",
        "1,500",
        "12.5",
        "7",
        "1h ago",
    ] {
        assert!(s.contains(want), "{want:?}:\n{s}");
    }
    let bare_line = s.lines().find(|l| l.contains("bare")).unwrap();
    assert!(
        bare_line.contains(" -  "),
        "no status → dashes: {bare_line}"
    );

    let s = screen(
        &with_list(
            View::Pipelines,
            ListData::Pipelines(vec![
                pipeline("product-images", true),
                pipeline("fresh", false),
            ]),
        ),
        140,
        10,
    );
    for want in [
        "Pipelines (2)",
        "product-images",
        "shop-products",
        "running",
        "2h ago",
    ] {
        assert!(s.contains(want), "{want:?}:\n{s}");
    }

    let s = screen(
        &with_list(
            View::Keys,
            ListData::Keys(vec![
                key("cohort-reader", json!({})),
                key(
                    "ci",
                    json!({"lastSeenAt": "2026-12-04T19:59:50Z", "expiresAt": null}),
                ),
            ]),
        ),
        140,
        10,
    );
    for want in [
        "Keys (2)",
        "cohort-reader",
        "key_cohort-reader",
        "Active",
        "layer,vectorstore.prod",
        "in 364d",
        "10s ago",
        "never",
    ] {
        assert!(s.contains(want), "{want:?}:\n{s}");
    }

    let s = screen(
        &with_list(
            View::Environments,
            ListData::Environments(vec![env_row("local", true), env_row("partner", false)]),
        ),
        140,
        10,
    );
    assert!(s.contains("****6789"), "{s}");
    assert!(!s.contains("secret-key"), "keys are masked: {s}");
    let local = s.lines().find(|l| l.contains("local.example")).unwrap();
    assert!(local.contains('*') && local.contains("yes"), "{local}");
}

fn with_detail(v: View, id: &str, d: DetailData) -> App {
    let mut a = app();
    a.screen = Screen::Detail(v, id.into());
    a.detail = Slot {
        data: Some(d),
        error: None,
        at_ms: Some(NOW),
    };
    a
}

#[test]
fn detail_views_show_humanized_fields() {
    let meta: NamespaceMetadata = serde_json::from_value(json!({
        "id": "shop-products", "approx_logical_bytes": 5 * 1024 * 1024, "approx_row_count": 2000,
        "schema": {"text": {"type": "string"}, "vector": {"type": "[768]f32"}},
        "layer": {"stable_as_of": NOW - 4_000, "is_stable": true, "indexed": false, "index_lag_rows": 12},
    }))
    .unwrap();
    let d = DetailData::Index(IndexDetail {
        meta,
        entry: Some(entry("shop-products")),
        listing_error: None,
    });
    let s = screen(&with_detail(View::Indexes, "shop-products", d), 100, 30);
    for want in [
        "Index shop-products",
        "rows",
        "2,000",
        "5.0 MiB (5,242,880 bytes)",
        "2 attributes, vector dim 768",
        "stable as of    4s ago",
        "3m ago",
        "index lag rows  12",
        "Attributes",
        "vector  [768]f32",
        "raw values: layer index get NAME",
        "esc/q back",
    ] {
        assert!(s.contains(want), "{want:?}:\n{s}");
    }

    let g = udf("product-tags");
    let d = DetailData::Function(crate::client::GetUdf {
        udf: g.udf,
        status: g.status.unwrap(),
    });
    let s = screen(&with_detail(View::Functions, "product-tags", d), 100, 40);
    for want in [
        "version",
        "v3",
        "shop-a, shop-b",
        "1,500",
        "rate window        5m",
        "last sweep         1m ago (2026-12-04T19:59:00Z)",
        "\"model\": \"tagger\"",
    ] {
        assert!(s.contains(want), "{want:?}:\n{s}");
    }

    let d = DetailData::Pipeline(pipeline("fresh", false));
    let s = screen(&with_detail(View::Pipelines, "fresh", d), 100, 20);
    assert!(s.contains("cosine_distance"), "{s}");
    assert!(s.contains("no status yet"), "{s}");

    let d = DetailData::Key(key(
        "cohort-reader",
        json!({"revokedAt": "2026-12-04T19:30:00Z"}),
    ));
    let s = screen(&with_detail(View::Keys, "key_cohort-reader", d), 120, 24);
    for want in [
        "Active",
        "revoked        30m ago",
        "in 364d",
        "Entitlements",
        "vectorstore.prod",
    ] {
        assert!(s.contains(want), "{want:?}:\n{s}");
    }

    let d = DetailData::Environment(env_row("partner", false));
    let s = screen(&with_detail(View::Environments, "partner", d), 100, 20);
    assert!(
        s.contains("https://partner.example.com") && s.contains("****6789"),
        "{s}"
    );
    assert!(!s.contains("secret-key"), "{s}");
}

#[test]
fn a_failed_detail_read_is_shown() {
    let mut a = app();
    a.screen = Screen::Detail(View::Indexes, "gone".into());
    a.detail.error = Some("GET /v2/namespaces/gone/metadata: HTTP 404 not_found".into());
    let s = screen(&a, 100, 10);
    assert!(
        s.contains("error: GET /v2/namespaces/gone/metadata: HTTP 404"),
        "{s}"
    );
}

fn loaded(a: &mut App, v: View, data: ListData) {
    a.apply(Response {
        request: Request::List(v),
        result: Ok(Payload::List(data)),
        at_ms: NOW,
    });
}

#[test]
fn view_keys_switch_views_from_anywhere_and_request_their_lists() {
    let mut a = app();
    assert_eq!(a.start(), vec![Request::List(View::Indexes)]);
    for v in View::ALL {
        a.inflight.clear();
        let reqs = a.on_key(Key::Char(v.key()));
        assert_eq!(a.screen, Screen::List(v));
        assert_eq!(reqs, vec![Request::List(v)]);
        // Pressed again while the read is in flight: no second read.
        assert!(a.on_key(Key::Char(v.key())).is_empty());
    }
    // From a detail view too.
    a.screen = Screen::Detail(View::Keys, "key_x".into());
    a.on_key(Key::Char('p'));
    assert_eq!(a.screen, Screen::List(View::Pipelines));
    // Unbound letters do nothing.
    assert!(a.on_key(Key::Char('z')).is_empty());
    assert_eq!(a.screen, Screen::List(View::Pipelines));
    assert!(!a.quit);
}

#[test]
fn enter_opens_the_selected_rows_detail_and_esc_goes_back() {
    let mut a = app();
    a.start();
    // Enter before anything is loaded does nothing.
    assert!(a.on_key(Key::Enter).is_empty());
    loaded(
        &mut a,
        View::Indexes,
        ListData::Indexes(vec![entry("a"), entry("b"), entry("c")]),
    );
    assert!(a.inflight.is_empty());
    a.on_key(Key::Down);
    a.on_key(Key::Down);
    a.on_key(Key::Down);
    assert_eq!(a.selected(View::Indexes), 2, "clamped to the last row");
    a.on_key(Key::Up);
    let reqs = a.on_key(Key::Enter);
    assert_eq!(a.screen, Screen::Detail(View::Indexes, "b".into()));
    assert_eq!(reqs, vec![Request::Detail(View::Indexes, "b".into())]);
    assert!(
        a.on_key(Key::Enter).is_empty(),
        "enter in a detail view does nothing"
    );
    a.on_key(Key::Down);
    assert_eq!(a.detail_scroll, 1);
    a.on_key(Key::Esc);
    assert_eq!(a.screen, Screen::List(View::Indexes));
    assert_eq!(a.selected(View::Indexes), 1, "the selection is kept");
    assert!(!a.quit);
    // q also backs out of a detail view, then quits from the list.
    a.on_key(Key::Enter);
    a.on_key(Key::Char('q'));
    assert_eq!(a.screen, Screen::List(View::Indexes));
    assert!(!a.quit);
    a.on_key(Key::Char('q'));
    assert!(a.quit);
}

#[test]
fn esc_on_a_list_and_ctrl_c_anywhere_quit() {
    let mut a = app();
    a.on_key(Key::Esc);
    assert!(a.quit);
    let mut a = app();
    a.screen = Screen::Detail(View::Functions, "x".into());
    a.on_key(Key::Interrupt);
    assert!(a.quit);
}

#[test]
fn a_key_detail_opens_with_its_row_then_the_read_replaces_it() {
    let mut a = app();
    a.on_key(Key::Char('k'));
    loaded(
        &mut a,
        View::Keys,
        ListData::Keys(vec![key("one", json!({})), key("two", json!({}))]),
    );
    a.on_key(Key::End);
    let reqs = a.on_key(Key::Enter);
    assert_eq!(reqs, vec![Request::Detail(View::Keys, "key_two".into())]);
    assert!(matches!(&a.detail.data, Some(DetailData::Key(k)) if k.name == "two"));
    a.apply(Response {
        request: Request::Detail(View::Keys, "key_two".into()),
        result: Ok(Payload::Detail(Box::new(DetailData::Key(key(
            "two",
            json!({"phase": "Revoked"}),
        ))))),
        at_ms: NOW + 10,
    });
    assert!(matches!(&a.detail.data, Some(DetailData::Key(k)) if k.phase == "Revoked"));
    // An answer for a detail no longer open is dropped.
    a.on_key(Key::Esc);
    a.apply(Response {
        request: Request::Detail(View::Keys, "key_two".into()),
        result: Err("late".into()),
        at_ms: NOW + 20,
    });
    assert!(a.detail.data.is_none() && a.detail.error.is_none());
    assert!(a.inflight.is_empty());
}

#[test]
fn a_failed_refresh_keeps_the_data_and_a_shorter_list_clamps_the_selection() {
    let mut a = app();
    loaded(
        &mut a,
        View::Indexes,
        ListData::Indexes(vec![entry("a"), entry("b"), entry("c")]),
    );
    a.on_key(Key::End);
    a.apply(Response {
        request: Request::List(View::Indexes),
        result: Err("HTTP 502".into()),
        at_ms: NOW + 5_000,
    });
    let s = a.list(View::Indexes);
    assert_eq!(s.data.as_ref().map(ListData::len), Some(3));
    assert_eq!(s.error.as_deref(), Some("HTTP 502"));
    loaded(&mut a, View::Indexes, ListData::Indexes(vec![entry("a")]));
    assert_eq!(a.selected(View::Indexes), 0);
    assert!(a.list(View::Indexes).error.is_none());
}

#[test]
fn the_tick_refreshes_the_screen_once_its_data_is_an_interval_old() {
    let mut a = app();
    assert_eq!(
        a.tick(NOW),
        vec![Request::List(View::Indexes)],
        "never loaded"
    );
    assert!(a.tick(NOW + 1_000).is_empty(), "in flight");
    loaded(&mut a, View::Indexes, ListData::Indexes(vec![]));
    assert!(a.tick(NOW + 4_999).is_empty());
    assert_eq!(a.now_ms, NOW + 4_999);
    assert_eq!(a.tick(NOW + 5_000), vec![Request::List(View::Indexes)]);
    // `r` asks now, unless a read is in flight.
    assert!(a.on_key(Key::Char('r')).is_empty());
    a.inflight.clear();
    assert_eq!(a.on_key(Key::Char('r')), vec![Request::List(View::Indexes)]);
}
