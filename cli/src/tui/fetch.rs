//! The TUI's reads: each [`Request`] answered through the typed gateway client (the same calls
//! the command twins make) or, for environments, from the config file. Errors become the one-line
//! message the view shows.

use crate::client::Api;
use crate::config;
use crate::reads::fan_out;

use super::state::{
    DetailData, EnvRow, IndexDetail, ListData, Payload, PipelineRow, Request, UdfRow, View,
};

/// Performs reads; cheap to clone into each spawned task.
#[derive(Clone)]
pub struct Fetcher {
    /// The client, or why none could be built (every gateway view then shows that message).
    pub api: Result<Api, String>,
    /// The config environment the settings resolved from, if any.
    pub in_use: Option<String>,
}

impl Fetcher {
    /// Answers one request.
    pub async fn run(&self, req: &Request) -> Result<Payload, String> {
        match req {
            Request::List(v) => self.list(*v).await.map(Payload::List),
            Request::Detail(v, id) => self
                .detail(*v, id)
                .await
                .map(|d| Payload::Detail(Box::new(d))),
        }
    }

    fn api(&self) -> Result<&Api, String> {
        self.api.as_ref().map_err(Clone::clone)
    }

    async fn list(&self, v: View) -> Result<ListData, String> {
        let e = |e: crate::error::CliError| e.message;
        Ok(match v {
            View::Environments => ListData::Environments(environments(self.in_use.as_deref())?),
            View::Indexes => {
                ListData::Indexes(self.api()?.list_namespaces(None).await.map_err(e)?.value)
            }
            View::Functions => {
                let api = self.api()?;
                let list = api.list_udfs().await.map_err(e)?.value.udfs;
                let ids = list.iter().map(|u| u.id.clone()).collect();
                let statuses = fan_out(api, ids, true).await;
                ListData::Functions(
                    list.into_iter()
                        .zip(statuses)
                        .map(|(udf, s)| UdfRow {
                            udf,
                            status: s.map(|s| s.value),
                        })
                        .collect(),
                )
            }
            View::Pipelines => {
                let api = self.api()?;
                let list = api.list_pipelines().await.map_err(e)?.value.pipelines;
                let ids = list.iter().map(|p| p.id.clone()).collect();
                let statuses = fan_out(api, ids, false).await;
                ListData::Pipelines(
                    list.into_iter()
                        .zip(statuses)
                        .map(|(pipeline, s)| PipelineRow {
                            pipeline,
                            status: s.map(|s| s.value),
                        })
                        .collect(),
                )
            }
            View::Keys => ListData::Keys(self.api()?.list_keys(false).await.map_err(e)?.value.keys),
        })
    }

    async fn detail(&self, v: View, id: &str) -> Result<DetailData, String> {
        let e = |e: crate::error::CliError| e.message;
        Ok(match v {
            View::Environments => {
                let envs = environments(self.in_use.as_deref())?;
                match envs.into_iter().find(|x| x.name == id) {
                    Some(x) => DetailData::Environment(x),
                    None => return Err(format!("environment {id:?} is no longer in the config")),
                }
            }
            View::Indexes => {
                let api = self.api()?;
                let (meta, listing) =
                    tokio::join!(api.namespace_metadata(id), api.list_namespaces(Some(id)));
                let meta = meta.map_err(e)?.value;
                let (entry, listing_error) = match listing {
                    Ok(l) => (l.value.into_iter().find(|n| n.name == id), None),
                    Err(err) => (None, Some(err.message)),
                };
                DetailData::Index(IndexDetail {
                    meta,
                    entry,
                    listing_error,
                })
            }
            View::Functions => {
                DetailData::Function(self.api()?.get_udf(id).await.map_err(e)?.value)
            }
            View::Pipelines => {
                let api = self.api()?;
                let list = api.list_pipelines().await.map_err(e)?.value.pipelines;
                let Some(pipeline) = list.into_iter().find(|p| p.id == id) else {
                    return Err(format!("pipeline {id:?} not found"));
                };
                let status = api.pipeline_status(id).await.ok().map(|s| s.value);
                DetailData::Pipeline(PipelineRow { pipeline, status })
            }
            View::Keys => match self.api()?.get_key(id).await.map_err(e)? {
                Some(k) => DetailData::Key(k.value),
                None => return Err(format!("key {id:?} not found")),
            },
        })
    }
}

/// The config file's environments (keys kept; the renderer masks them).
fn environments(in_use: Option<&str>) -> Result<Vec<EnvRow>, String> {
    let path = config::config_path().map_err(|e| e.message)?;
    let cfg = config::load(&path).map_err(|e| e.message)?;
    Ok(cfg
        .envs
        .into_iter()
        .map(|(name, entry)| EnvRow {
            active: cfg.active.as_deref() == Some(name.as_str()),
            in_use: in_use == Some(name.as_str()),
            name,
            entry,
        })
        .collect())
}
