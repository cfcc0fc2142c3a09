//! Pages for people beside the protocol: `/` lists the served models,
//! `/models/{name}` is the model's report (the card of the version served,
//! every version, the gate's decisions, the alias timeline) with the drift
//! this server measures on its live traffic.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use model_persistence_report::{escape, gather, render};
use model_persistence_serving::DriftReport;
use model_persistence_versioning::{ModelRef, Target};

use crate::hosting::{AppState, Route, Slot};

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn message(status: StatusCode, text: &str) -> Response {
    html(
        status,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title></head>\
             <body><p>{0}</p><p><a href=\"/\">served models</a></p></body></html>\n",
            escape(text)
        ),
    )
}

/// The reference of what a slot serves now (the version loaded, when one
/// is) and the drift of its live traffic, once the window is full.
fn served(slot: &Slot) -> Option<(ModelRef, Option<DriftReport>)> {
    let configured = slot
        .config
        .reference
        .as_deref()
        .or_else(|| slot.config.ab.as_ref()?.variants.first().map(|v| v.reference.as_str()))?;
    let mut reference: ModelRef = configured.parse().ok()?;
    let server = match slot.route.get() {
        Some(Route::Single(server)) => Some(server),
        Some(Route::Ab { split, .. }) => split.variants().next().map(|(_, s)| s),
        None => None,
    };
    let live = server.map(|s| s.status()).and_then(|status| {
        if status.loaded {
            reference.target = Target::Version(status.version.clone());
        }
        status.drift
    });
    Some((reference, live))
}

/// `GET /`: the served models, each linked to its report.
pub(super) async fn index(State(state): State<Arc<AppState>>) -> Response {
    let mut rows = String::new();
    for slot in state.slots().iter() {
        let (what, ready) = match served(slot) {
            Some((reference, _)) => (reference.to_string(), slot.route.get().is_some()),
            None => ("?".to_owned(), false),
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"/models/{0}\">{1}</a></td><td>{2}</td><td>{3}</td></tr>",
            escape(&url_segment(&slot.name)),
            escape(&slot.name),
            escape(&what),
            if ready { "ready" } else { "loading" }
        ));
    }
    html(
        StatusCode::OK,
        format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>served models</title>\
             <style>body{{font-family:system-ui,sans-serif;margin:32px}}td,th{{padding:4px 12px;text-align:left}}</style>\
             </head><body><h1>Served models</h1><table><tr><th>name</th><th>serving</th><th>state</th></tr>{rows}</table>\
             <p>The Open Inference Protocol is under <code>/v2</code>; metrics at <a href=\"/metrics\">/metrics</a>.</p>\
             </body></html>\n"
        ),
    )
}

/// `GET /models/{name}`: the report of the version served, with live drift.
pub(super) async fn model(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let Ok(slot) = state.slot(&name) else {
        return message(
            StatusCode::NOT_FOUND,
            &format!("no model named {name:?} is served here"),
        );
    };
    let Some((reference, live)) = served(&slot) else {
        return message(StatusCode::NOT_FOUND, &format!("{name:?} has no registry reference"));
    };
    let Some(registry) = state.registry.clone() else {
        return message(StatusCode::NOT_FOUND, &format!("{name:?} is served without a registry"));
    };
    // Registry reads block (files, or object storage through its own runtime).
    let page =
        tokio::task::spawn_blocking(move || gather(&registry, &reference).map(|r| render(&r.with_live(live)))).await;
    match page {
        Ok(Ok(page)) => html(StatusCode::OK, page),
        Ok(Err(e)) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the registry could not be read for {name:?}: {e}"),
        ),
        Err(_) => message(StatusCode::SERVICE_UNAVAILABLE, "the report could not be made"),
    }
}

/// `name` as one URL path segment.
fn url_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
