//! The page: one HTML document with inline CSS and SVG, every text from a
//! card, a registry or a server escaped.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use model_persistence_versioning::EventKind;

use crate::charts;
use crate::gather::ModelPage;

/// Escapes text for HTML content and attribute values: `&`, `<`, `>`, `"`
/// and `'`.
///
/// ```
/// assert_eq!(
///     model_persistence_report::escape("<script>alert('x')</script>"),
///     "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
/// );
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time as people read it: `2026-11-25 14:34:39 UTC`.
fn when(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2433}
header{background:#1f3a5f;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px} header p{margin:4px 0 0;opacity:.85}
main{padding:16px 32px;max-width:1200px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{margin:0 0 12px;font-size:18px;color:#1f3a5f}
h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:14px;margin:6px 0}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
.passport{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:8px 24px}
.passport div{border-bottom:1px dotted #ccd;padding:4px 0;overflow-wrap:anywhere}
.passport b{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#6b7385}
.pass{color:#1e7b34;font-weight:600} .fail{color:#b3261e;font-weight:600}
.tag{display:inline-block;background:#e8eef7;border-radius:10px;padding:1px 8px;margin:1px;font-size:12px}
.features{display:grid;grid-template-columns:repeat(auto-fill,minmax(390px,1fr));gap:12px}
.mono{font-family:ui-monospace,monospace;font-size:12px}
.muted{color:#6b7385}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 6px 0 12px;vertical-align:-1px}
";

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        format!("{v}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), num)
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        "<span class=\"pass\">passed</span>"
    } else {
        "<span class=\"fail\">failed</span>"
    }
}

fn field(out: &mut String, label: &str, value: &str) {
    let _ = write!(out, "<div><b>{}</b>{}</div>", escape(label), value);
}

/// Renders the report as one self-contained HTML document.
pub fn render(r: &ModelPage) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let card = &r.card;
    let title = format!("{} {}", card.name, card.version);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\
         <header><h1>{}</h1><p>{} · generated {}</p></header><main>",
        escape(&title),
        escape(&title),
        escape(&r.reference),
        when(r.generated_at)
    );
    passport(&mut out, r);
    versions(&mut out, r);
    gates(&mut out, r);
    live_decisions(&mut out, r);
    timeline(&mut out, r);
    features(&mut out, r);
    out.push_str("</main></body></html>\n");
    out
}

fn passport(out: &mut String, r: &ModelPage) {
    let card = &r.card;
    out.push_str("<section><h2>Model card</h2><div class=\"passport\">");
    field(out, "name", &escape(&card.name));
    field(out, "version", &escape(&card.version.to_string()));
    field(out, "kind", &escape(&card.kind));
    field(out, "algorithm", &escape(&card.algorithm));
    field(out, "trained", &when(card.created_at));
    field(
        out,
        "content id",
        &format!("<span class=\"mono\">{}</span>", r.selected.content_id),
    );
    if let Some(t) = &card.training_data {
        field(out, "dataset", &escape(&format!("{} ({} rows)", t.source, t.samples)));
        field(
            out,
            "dataset sha-256",
            &format!("<span class=\"mono\">{}</span>", escape(&t.sha256)),
        );
    }
    field(
        out,
        "features",
        &escape(&format!("{} ({})", card.n_features, card.features.join(", "))),
    );
    if !card.classes.is_empty() {
        field(out, "classes", &escape(&card.classes.join(", ")));
    }
    let aliases: Vec<String> = r
        .aliases
        .iter()
        .filter(|(_, t)| t.version == card.version)
        .map(|(a, _)| format!("<span class=\"tag\">{}</span>", escape(a.as_str())))
        .collect();
    if !aliases.is_empty() {
        field(out, "aliases", &aliases.concat());
    }
    if !card.tags.is_empty() {
        let tags: Vec<String> = card
            .tags
            .iter()
            .map(|t| format!("<span class=\"tag\">{}</span>", escape(t)))
            .collect();
        field(out, "tags", &tags.concat());
    }
    out.push_str("</div>");
    let list = |out: &mut String, title: &str, rows: Vec<(String, String)>| {
        if rows.is_empty() {
            return;
        }
        let _ = write!(out, "<h3>{title}</h3><table>");
        for (k, v) in rows {
            let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
        }
        out.push_str("</table>");
    };
    list(
        out,
        "Metrics",
        card.metrics.iter().map(|(k, v)| (k.clone(), num(*v))).collect(),
    );
    list(
        out,
        "Hyperparameters",
        card.hyperparameters
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    );
    list(
        out,
        "Dependencies",
        card.dependencies.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    );
    if !card.notes.is_empty() {
        let _ = write!(out, "<h3>Notes</h3><p>{}</p>", escape(&card.notes));
    }
    out.push_str("</section>");
}

fn versions(out: &mut String, r: &ModelPage) {
    let metrics: BTreeSet<&str> = r
        .versions
        .iter()
        .flat_map(|v| v.info.metrics.keys().map(String::as_str))
        .collect();
    let _ = write!(
        out,
        "<section><h2>Versions ({})</h2><table><tr><th>version</th><th>published</th>",
        r.versions.len()
    );
    for m in &metrics {
        let _ = write!(out, "<th>{}</th>", escape(m));
    }
    out.push_str("<th>aliases</th><th>gate</th></tr>");
    for v in &r.versions {
        let aliases: Vec<String> = r
            .aliases
            .iter()
            .filter(|(_, t)| t.version == v.info.version)
            .map(|(a, _)| format!("<span class=\"tag\">{}</span>", escape(a.as_str())))
            .collect();
        let gate = match &v.gate {
            Some(g) => g.report.as_ref().map_or("unreadable", |rep| verdict(rep.passed())),
            None => "<span class=\"muted\">not gated</span>",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>",
            escape(&v.info.version.to_string()),
            when(v.info.published_at)
        );
        for m in &metrics {
            let _ = write!(out, "<td>{}</td>", opt(v.info.metrics.get(*m).copied()));
        }
        let _ = write!(out, "<td>{}</td><td>{gate}</td></tr>", aliases.concat());
    }
    out.push_str("</table>");
    if let Some(svg) = charts::metrics_over_versions(&r.versions) {
        out.push_str(&svg);
    }
    out.push_str("</section>");
}

fn gates(out: &mut String, r: &ModelPage) {
    out.push_str("<section><h2>Gate decisions</h2>");
    let mut any = false;
    for v in r.versions.iter().rev() {
        let Some(g) = &v.gate else { continue };
        any = true;
        let _ = write!(
            out,
            "<h3>{} — gated for {} against {}</h3>",
            escape(&v.info.version.to_string()),
            escape(g.alias.as_deref().unwrap_or("?")),
            escape(g.baseline.as_deref().unwrap_or("no baseline"))
        );
        let Some(rep) = &g.report else {
            out.push_str("<p class=\"fail\">the stored report does not read</p>");
            continue;
        };
        let _ = write!(
            out,
            "<p>verdict: {}</p><table><tr><th>metric</th><th>check</th><th>candidate</th><th>threshold</th>\
             <th>baseline</th><th>difference</th><th>p-value</th><th>interval</th><th>verdict</th><th>reason</th></tr>",
            verdict(rep.passed())
        );
        for c in rep.checks() {
            let interval = c
                .interval
                .map_or_else(|| "–".to_owned(), |(a, b)| format!("[{}, {}]", num(a), num(b)));
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.metric),
                c.kind,
                opt(c.candidate),
                opt(c.threshold),
                opt(c.baseline),
                opt(c.difference),
                opt(c.p_value),
                interval,
                verdict(c.passed),
                escape(&c.reason)
            );
        }
        out.push_str("</table>");
    }
    if !any {
        out.push_str("<p class=\"muted\">No version of this model went through the gate.</p>");
    }
    out.push_str("</section>");
}

/// The decisions taken on live outcomes: guardrail rollbacks and A/B
/// tests, with their evidence.
fn live_decisions(out: &mut String, r: &ModelPage) {
    let decided: Vec<_> = r
        .versions
        .iter()
        .rev()
        .filter(|v| v.guardrail.is_some() || v.ab_decision.is_some())
        .collect();
    if decided.is_empty() {
        return;
    }
    out.push_str("<section><h2>Decisions on live outcomes</h2>");
    let f = |v: &serde_json::Value| v.as_f64().map_or_else(|| "–".to_owned(), num);
    for v in decided {
        let version = escape(&v.info.version.to_string());
        if let Some(g) = &v.guardrail {
            let verdict = &g["verdict"];
            let _ = write!(
                out,
                "<h3>{version}: <span class=\"fail\">rolled back</span> from {} by the guardrail</h3><p>{}</p>\
                 <table><tr><th>outcomes</th><th>accuracy</th><th>precision</th><th>recall</th><th>always-valid p</th></tr>\
                 <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
                escape(g["alias"].as_str().unwrap_or("?")),
                escape(verdict["reason"].as_str().unwrap_or("")),
                g["live"]["outcomes"].as_u64().unwrap_or(0),
                f(&g["live"]["accuracy"]),
                f(&g["live"]["precision"]),
                f(&g["live"]["recall"]),
                f(&verdict["test"]["p_value"]),
            );
        }
        if let Some(d) = &v.ab_decision {
            let test = &d["test"];
            let _ = write!(
                out,
                "<h3>{version}: <span class=\"pass\">won</span> the A/B test on {} ({})</h3>\
                 <table><tr><th>arm</th><th>successes</th><th>trials</th></tr>\
                 <tr><td>a</td><td>{}</td><td>{}</td></tr><tr><td>b</td><td>{}</td><td>{}</td></tr></table>\
                 <p>difference {} · always-valid p {} · alpha {}</p>",
                escape(d["metric"].as_str().unwrap_or("?")),
                escape(d["on_decision"].as_str().unwrap_or("?")),
                test["a"]["successes"],
                test["a"]["trials"],
                test["b"]["successes"],
                test["b"]["trials"],
                f(&test["difference"]),
                f(&test["p_value"]),
                f(&d["settings"]["alpha"]),
            );
        }
    }
    out.push_str("</section>");
}

fn timeline(out: &mut String, r: &ModelPage) {
    out.push_str("<section><h2>Alias timeline</h2>");
    if !r.aliases.is_empty() {
        out.push_str("<p>Now: ");
        for (a, t) in &r.aliases {
            let _ = write!(
                out,
                "<span class=\"tag\">{} → {}</span> ",
                escape(a.as_str()),
                escape(&t.version.to_string())
            );
        }
        out.push_str("</p>");
    }
    out.push_str("<table><tr><th>when</th><th>alias</th><th>from</th><th>to</th><th>what</th><th>by</th></tr>");
    let mut rows = 0;
    for e in &r.history {
        let (alias, from, to, what) = match &e.kind {
            EventKind::AliasMoved { alias, from, to } => (
                alias,
                from.as_ref().map_or_else(|| "(new)".to_owned(), ToString::to_string),
                to,
                "moved",
            ),
            EventKind::RolledBack { alias, from, to } => {
                (alias, from.to_string(), to, "<span class=\"fail\">rolled back</span>")
            }
            _ => continue,
        };
        rows += 1;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{what}</td><td>{}</td></tr>",
            when(e.at),
            escape(alias.as_str()),
            escape(&from),
            escape(&to.to_string()),
            escape(e.by.as_deref().unwrap_or("–"))
        );
    }
    if rows == 0 {
        out.push_str("<tr><td colspan=\"6\" class=\"muted\">no alias has been set</td></tr>");
    }
    out.push_str("</table></section>");
}

fn features(out: &mut String, r: &ModelPage) {
    let card = &r.card;
    out.push_str("<section><h2>Features: training distribution");
    if r.live.is_some() {
        out.push_str(" and live drift");
    }
    out.push_str("</h2>");
    if card.feature_stats.is_empty() {
        out.push_str("<p class=\"muted\">The card holds no training statistics.</p></section>");
        return;
    }
    if let Some(live) = &r.live {
        let _ = write!(
            out,
            "<p>Live window: {} rows. PSI below 0.1 is stable, 0.1–0.2 a moderate shift, above 0.2 a significant one.</p>",
            live.window
        );
    }
    out.push_str("<p><span class=\"swatch\" style=\"background:#3465a4\"></span>training share per decile bin");
    if r.live.is_some() {
        out.push_str(" <span class=\"swatch\" style=\"background:#e67e22\"></span>live share");
    }
    out.push_str("</p><div class=\"features\">");
    for (i, s) in card.feature_stats.iter().enumerate() {
        let live = r.live.as_ref().and_then(|l| {
            l.features
                .iter()
                .find(|f| f.name == s.name)
                .or_else(|| l.features.get(i))
        });
        let _ = write!(
            out,
            "<div><h3>{}</h3><p class=\"muted\">mean {} · std {} · min {} · max {}",
            escape(&s.name),
            num(s.mean),
            num(s.std),
            num(s.min),
            num(s.max)
        );
        if let Some(f) = live {
            let _ = write!(
                out,
                " · PSI <span class=\"{}\">{}</span>",
                if f.drifting { "fail" } else { "pass" },
                num(f.psi)
            );
        }
        out.push_str("</p>");
        match charts::histogram(s, live.map(|f| f.live_fractions.as_slice())) {
            Some(svg) => out.push_str(&svg),
            None => out.push_str("<p class=\"muted\">no histogram</p>"),
        }
        out.push_str("</div>");
    }
    out.push_str("</div></section>");
}
