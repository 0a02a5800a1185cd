//! The narrow surface the fuzz targets (`fuzz/`, package `layer-fuzz`) drive: the gateway's real
//! route table built offline, and the checks a request path meets before a handler runs. Not an
//! API: hidden from the docs, and nothing in the gateway calls it.

use crate::app::App;
use crate::core::router::Router;

pub use crate::core::h1::{AnswerFields as H1AnswerFields, Conn as H1Conn};
pub use crate::core::h1_server::{Outcome as H1Outcome, serve as h1_serve};
pub use crate::core::http::RequestBody;
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

/// The head of a bodiless request for `method` on `/`, as the upstream client writes it.
#[must_use]
pub fn h1_request_head(method: &http::Method) -> Vec<u8> {
    let mut head = Vec::new();
    crate::core::h1::write_head(&mut head, method, "", "/", &http::HeaderMap::new(), 0)
        .expect("a valid target");
    head
}
