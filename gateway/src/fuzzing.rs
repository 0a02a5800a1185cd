//! The narrow surface the fuzz targets (`fuzz/`, package `layer-fuzz`) drive: the gateway's real
//! route table built offline, and the checks a request path meets before a handler runs. Not an
//! API: hidden from the docs, and nothing in the gateway calls it.

use crate::app::App;
use crate::core::router::Router;

pub use crate::core::params::{
    decode_path_segment, decode_query_component, encode_query_component, parse_query,
};
pub use crate::core::service::check_namespace;
pub use crate::features::history::entry::parse_rfc3339;
pub use crate::features::history::params::{DEFAULT_LIMIT, ListQuery, MAX_LIMIT};

/// The router the gateway serves with, over an offline core (no upstream, no control runtime).
///
/// # Panics
/// When two routes overlap (the app's route-table test catches that first).
#[must_use]
pub fn router() -> Router {
    let app = App::build(crate::core::test_core()).expect("the test core's config is valid");
    Router::new(app.routes()).expect("no overlapping routes")
}
