//! The metric catalog: every metric family the gateway emits, and every family of the
//! documented product's catalog (whose dashboards, alerts and KEDA triggers must work against
//! Layer), as data in one place. `GET /metrics` takes each family's help text from here, the
//! gateway serves it at `GET /v2/metrics/catalog` ([`catalog_json`]), and
//! `cargo run -p metrics-catalog --bin export` prints the same JSON.
//!
//! Each [`Entry`] says whether the gateway emits the family ([`Emission::Emitted`]), emits it
//! only in a configuration or after an event that may not happen ([`Emission::Conditional`],
//! with the reason), or emits it under an old name kept for one release
//! ([`Emission::Deprecated`], naming its replacement). An end-to-end test scrapes `/metrics`
//! after exercising every route family and checks both directions.
//!
//! The wire shape is the client's `MetricCatalogEntry` (`name`, `kind`, `family`, `labels`,
//! `description`, `example_promql`, `alert`), plus `group`, `origin`, `emitted` and, where they
//! apply, `condition` and `deprecated` (the client keeps unknown fields). `family` is one of the
//! client's seven (`query`, `upsert`, `fetch`, `cache`, `pipeline`, `storage`, `saturation`);
//! `group` is the documented product's finer grouping (it adds `udf`, `cost` and `license`).

mod layer;
mod product;

use serde_json::{Map, Value, json};

/// The catalog's JSON shape version (bumped when the shape changes incompatibly).
pub const VERSION: &str = "2026-05";

/// What a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The client's seven families (`MetricFamily`).
pub const FAMILIES: &[&str] = &[
    "query",
    "upsert",
    "fetch",
    "cache",
    "pipeline",
    "storage",
    "saturation",
];

/// The alert rule an entry backs.
#[derive(Clone, Copy, Debug)]
pub struct Alert {
    pub name: &'static str,
    pub summary: &'static str,
    pub expr: &'static str,
    pub for_: &'static str,
}

/// Whether and when the gateway emits a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emission {
    /// Always present in `/metrics` (its `# TYPE` line, once the feature that owns it is built).
    Emitted,
    /// Present only when the reason holds.
    Conditional(&'static str),
    /// Still emitted, under this old name, for one release; the replacement is named.
    Deprecated { replaced_by: &'static str },
}

/// Where a family's name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Layer's own family.
    Layer,
    /// A family of the documented product's catalog (same name and labels).
    Product,
}

/// One metric family.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub name: &'static str,
    pub kind: Kind,
    /// One of [`FAMILIES`].
    pub family: &'static str,
    /// The documented product's catalog family (or Layer's, for its own families).
    pub group: &'static str,
    pub labels: &'static [&'static str],
    pub description: &'static str,
    pub example_promql: &'static str,
    pub alert: Option<Alert>,
    pub emission: Emission,
    pub origin: Origin,
}

impl Entry {
    const fn new(
        name: &'static str,
        kind: Kind,
        family: &'static str,
        group: &'static str,
        labels: &'static [&'static str],
        description: &'static str,
        example_promql: &'static str,
    ) -> Entry {
        Entry {
            name,
            kind,
            family,
            group,
            labels,
            description,
            example_promql,
            alert: None,
            emission: Emission::Emitted,
            origin: Origin::Layer,
        }
    }

    const fn alert(mut self, alert: Alert) -> Entry {
        self.alert = Some(alert);
        self
    }

    const fn conditional(mut self, reason: &'static str) -> Entry {
        self.emission = Emission::Conditional(reason);
        self
    }

    const fn deprecated(mut self, replaced_by: &'static str) -> Entry {
        self.emission = Emission::Deprecated { replaced_by };
        self
    }

    const fn product(mut self) -> Entry {
        self.origin = Origin::Product;
        self
    }

    /// The entry as the API serves it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("kind".into(), json!(self.kind.as_str()));
        m.insert("family".into(), json!(self.family));
        m.insert("labels".into(), json!(self.labels));
        m.insert("description".into(), json!(self.description));
        m.insert("example_promql".into(), json!(self.example_promql));
        if let Some(a) = &self.alert {
            m.insert(
                "alert".into(),
                json!({"name": a.name, "summary": a.summary, "expr": a.expr, "for": a.for_}),
            );
        }
        m.insert("group".into(), json!(self.group));
        let origin = match self.origin {
            Origin::Layer => "layer",
            Origin::Product => "hevlayer_catalog",
        };
        m.insert("origin".into(), json!(origin));
        match self.emission {
            Emission::Emitted => {
                m.insert("emitted".into(), json!(true));
            }
            Emission::Conditional(reason) => {
                m.insert("emitted".into(), json!(false));
                m.insert("condition".into(), json!(reason));
            }
            Emission::Deprecated { replaced_by } => {
                m.insert("emitted".into(), json!(true));
                m.insert(
                    "deprecated".into(),
                    json!({
                        "replaced_by": replaced_by,
                        "note": "emitted under this old name for one more release next to its replacement; move dashboards and alerts to the replacement",
                    }),
                );
            }
        }
        Value::Object(m)
    }
}

/// Every entry: the documented product's families first, then Layer's own, each name once.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    product::ENTRIES.iter().chain(layer::ENTRIES.iter())
}

/// The entry named `name`.
pub fn get(name: &str) -> Option<&'static Entry> {
    entries().find(|e| e.name == name)
}

/// The help text `/metrics` prints for a family (its catalog description).
pub fn help(name: &str) -> &'static str {
    get(name).map_or("Layer metric.", |e| e.description)
}

/// A `family` filter the catalog does not know.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownFamily(pub String);

impl std::fmt::Display for UnknownFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = groups();
        write!(
            f,
            "unknown metric family {:?}: one of {} (or a group: {})",
            self.0,
            FAMILIES.join(", "),
            groups.join(", ")
        )
    }
}

fn groups() -> Vec<&'static str> {
    let mut g: Vec<&str> = entries().map(|e| e.group).collect();
    g.sort_unstable();
    g.dedup();
    g
}

/// `{version, entries}`, all of them or those of one family (a client family, or a group such as
/// `udf`).
pub fn catalog_json(family: Option<&str>) -> Result<Value, UnknownFamily> {
    let list: Vec<Value> = match family {
        None => entries().map(Entry::to_json).collect(),
        Some(f) if FAMILIES.contains(&f) => entries()
            .filter(|e| e.family == f)
            .map(Entry::to_json)
            .collect(),
        Some(f) if groups().contains(&f) => entries()
            .filter(|e| e.group == f)
            .map(Entry::to_json)
            .collect(),
        Some(f) => return Err(UnknownFamily(f.to_string())),
    };
    Ok(json!({"version": VERSION, "entries": list}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for e in entries() {
            assert!(seen.insert(e.name), "{} listed twice", e.name);
            assert!(
                FAMILIES.contains(&e.family),
                "{}: family {}",
                e.name,
                e.family
            );
            assert!(
                e.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{}",
                e.name
            );
            assert!(!e.description.is_empty() && e.example_promql.contains(e.name));
            if let Emission::Deprecated { replaced_by } = e.emission {
                assert!(get(replaced_by).is_some(), "{} -> {replaced_by}", e.name);
            }
            if e.kind == Kind::Counter {
                assert!(e.name.ends_with("_total"), "{}", e.name);
            }
        }
    }

    #[test]
    fn the_documented_catalog_is_listed_whole() {
        assert_eq!(product::ENTRIES.len(), 64);
        assert_eq!(
            product::ENTRIES
                .iter()
                .map(|e| e.group)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            10
        );
    }

    #[test]
    fn filters_and_alerts() {
        let v = catalog_json(Some("pipeline")).unwrap();
        assert_eq!(v["version"], VERSION);
        let list = v["entries"].as_array().unwrap();
        assert!(list.iter().all(|e| e["family"] == "pipeline"));
        assert!(list.iter().any(|e| e["name"] == "layer_udf_queue_depth"));
        let udf = catalog_json(Some("udf")).unwrap();
        assert!(
            udf["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["group"] == "udf")
        );
        assert!(catalog_json(Some("nope")).is_err());
        let q = get("layer_query_duration_seconds").unwrap().to_json();
        assert_eq!(q["alert"]["name"], "QueryP99High");
        assert!(q["alert"]["for"].is_string());
        assert_eq!(q["labels"], json!(["pipeline_id", "namespace", "status"]));
    }
}
