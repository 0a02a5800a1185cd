//! `layer-dashboard`: the operator UI. Server-rendered HTML (no JavaScript needed to read it, no
//! asset from anywhere but this binary) over the gateway API — the same endpoints customers use
//! plus the metrics proxy (`/v2/metrics`) — with a gateway bearer; it never touches PostgreSQL,
//! VictoriaMetrics or the cache directly. HTTP Basic auth sits in front of every route and the
//! binary refuses to start without credentials.
//!
//! Where to start: [`config::Config`] (what it needs), [`server::start`] (the listener and the
//! route table), [`views`] (one module per tab), [`chart`] (the SVG time-series plots).

pub mod auth;
pub mod chart;
pub mod config;
pub mod gateway;
pub mod html;
pub mod server;
pub mod views;

pub use config::{Config, ConfigError};
pub use server::{Running, start};
