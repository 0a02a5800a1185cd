//! Rows and facts shared by features, so no feature reaches into another: content-addressed
//! blobs ([`blobs`]), origin paging and the
//! gateway's own upstream reads ([`origin`]), documents by id through the cache ([`documents`]),
//! the cached rows of a namespace ([`cache_rows`]), the snapshot store ([`snapshot_store`]), the
//! Auto source policy ([`auto`]), the warm watermark ([`warmth`]), schema facts ([`schema`]), the lease queue on PostgreSQL ([`queue`]) and the write path that stamps and
//! invalidates ([`writes`]), namespace layouts set by init and the metadata `layer` block ([`layouts`]), the
//! cluster's `Index`, `ApiKey` and `VectorStore` resources read through a watch ([`kubernetes`]).
//! Sources stand on `crate::core` only.

pub mod auto;
pub mod blobs;
pub mod cache_rows;
pub mod documents;
pub mod kubernetes;
pub mod layouts;
pub mod origin;
pub mod queue;
pub mod schema;
pub mod snapshot_store;
pub mod warmth;
pub mod writes;
