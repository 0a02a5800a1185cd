//! The dashboard's only write actions: pause and resume a UDF. Each is a confirm page (a form,
//! so it works with JavaScript off) whose POST calls the gateway and sends the browser back to
//! the UDF tab; without write access both answer 403.

use http::StatusCode;

use super::Ctx;
use crate::gateway::encode;
use crate::html::{self, banner, esc};

/// `pause` or `resume`.
pub fn verb_of(s: &str) -> Option<&'static str> {
    match s {
        "pause" => Some("pause"),
        "resume" => Some("resume"),
        _ => None,
    }
}

/// The confirm page for `verb` on `udf`.
pub fn confirm(ctx: &Ctx, udf: &str, verb: &str) -> (StatusCode, String) {
    if !ctx.config.write_access {
        return forbidden();
    }
    let body = format!(
        "<p>{} UDF <b>{}</b>? {}</p><form method=\"post\" action=\"/udfs/{}/{verb}\">\
         <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button type=\"submit\" id=\"confirm\">Yes, {verb}</button> <a href=\"/udfs\" id=\"cancel\">Cancel</a></form>",
        if verb == "pause" { "Pause" } else { "Resume" },
        esc(udf),
        if verb == "pause" {
            "Workers stop getting its items until it is resumed."
        } else {
            "Workers get its items again."
        },
        encode(udf)
    );
    (
        StatusCode::OK,
        html::page(&format!("Confirm: {verb} {udf}"), "/udfs", &body, 0),
    )
}

/// Performs `verb` on `udf` when the form confirmed it; `Ok(())` means redirect to the tab.
pub async fn perform(
    ctx: &Ctx,
    udf: &str,
    verb: &str,
    form: &str,
) -> Result<(), (StatusCode, String)> {
    if !ctx.config.write_access {
        return Err(forbidden());
    }
    if !form.split('&').any(|kv| kv == "confirm=yes") {
        return Err((
            StatusCode::BAD_REQUEST,
            html::page(
                "Not confirmed",
                "/udfs",
                &banner("The action was not confirmed.", true),
                0,
            ),
        ));
    }
    ctx.gateway
        .post_empty(&format!("/v2/udfs/{}/{verb}", encode(udf)))
        .await
        .map(|_| ())
        .map_err(|e| {
            (
                StatusCode::BAD_GATEWAY,
                html::page("Action failed", "/udfs", &banner(&e.to_string(), true), 0),
            )
        })
}

fn forbidden() -> (StatusCode, String) {
    (
        StatusCode::FORBIDDEN,
        html::page(
            "Read-only",
            "/udfs",
            &banner(
                "Write actions are off (dashboard.writeAccess.enabled / --write-access).",
                true,
            ),
            0,
        ),
    )
}
