//! Time-series plots as server-rendered SVG: one chart per query, one polyline per series, the
//! time and value ranges on the axes and a legend. Input is a Prometheus range answer
//! (`data.result[].values`), as the gateway's metrics proxy returns it.

use std::fmt::Write;

use serde_json::Value;

use crate::html::esc;

const COLORS: [&str; 6] = [
    "#2f6fd6", "#d9534f", "#2b7a3d", "#c77c02", "#7a3db8", "#00838f",
];
const W: f64 = 460.0;
const H: f64 = 180.0;
const PAD_L: f64 = 54.0;
const PAD_B: f64 = 22.0;

/// One series: a label (its labels, `k="v"` joined) and `(unix seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The series of a Prometheus `matrix` answer (NaN and unparsable samples dropped).
pub fn from_prometheus(answer: &Value) -> Vec<Series> {
    let Some(result) = answer.pointer("/data/result").and_then(Value::as_array) else {
        return Vec::new();
    };
    result
        .iter()
        .map(|s| {
            let label = s
                .get("metric")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.as_str() != "__name__")
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let points = s
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|p| {
                            let t = p.get(0)?.as_f64()?;
                            let v: f64 = p.get(1)?.as_str()?.parse().ok()?;
                            v.is_finite().then_some((t, v))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Series { label, points }
        })
        .filter(|s: &Series| !s.points.is_empty())
        .collect()
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1e6 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// An SVG chart of `series` titled `title`; a chart with no points says so.
pub fn svg(title: &str, series: &[Series]) -> String {
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let mut out = format!(
        "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" \
         role=\"img\" aria-label=\"{}\"><text x=\"8\" y=\"16\" font-size=\"12\" font-weight=\"600\">{}</text>",
        H + 20.0 * series.len().min(6) as f64,
        esc(title),
        esc(title)
    );
    if points.is_empty() {
        out.push_str("<text x=\"8\" y=\"60\" font-size=\"12\" fill=\"#6b7385\">no samples in this range</text></svg></div>");
        return out;
    }
    let (t0, t1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (t, _)| {
        (a.min(*t), b.max(*t))
    });
    let (mut v0, mut v1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, v)| {
        (a.min(*v), b.max(*v))
    });
    if v0 > 0.0 {
        v0 = 0.0;
    }
    if (v1 - v0).abs() < f64::EPSILON {
        v1 = v0 + 1.0;
    }
    let span_t = (t1 - t0).max(1.0);
    let (x0, y0, pw, ph) = (PAD_L, 26.0, W - PAD_L - 10.0, H - 26.0 - PAD_B);
    let x = |t: f64| x0 + (t - t0) / span_t * pw;
    let y = |v: f64| y0 + ph - (v - v0) / (v1 - v0) * ph;
    let _ = write!(
        out,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"#999\"/>\
         <line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"{x0}\" y=\"{}\" font-size=\"10\">{:.0} s</text>",
        y0 + ph,
        y0 + ph,
        x0 + pw,
        y0 + ph,
        x0 - 4.0,
        y0 + 8.0,
        fmt_value(v1),
        x0 - 4.0,
        y0 + ph,
        fmt_value(v0),
        y0 + ph + 14.0,
        span_t
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" ")
        );
        if i < 6 {
            let ly = H + 14.0 + 20.0 * i as f64 - 6.0;
            let _ = write!(
                out,
                "<rect x=\"8\" y=\"{}\" width=\"10\" height=\"3\" fill=\"{color}\"/><text x=\"22\" y=\"{ly}\" font-size=\"10\">{}</text>",
                ly - 4.0,
                esc(if s.label.is_empty() {
                    "(no labels)"
                } else {
                    &s.label
                })
            );
        }
    }
    out.push_str("</svg></div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plots_every_series_of_a_matrix() {
        let answer = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"__name__": "x", "stage": "pending"}, "values": [[1.0, "3"], [2.0, "5"], [3.0, "NaN"]]},
            {"metric": {"stage": "done"}, "values": [[1.0, "0"], [2.0, "7"]]},
            {"metric": {"stage": "empty"}, "values": []},
        ]}});
        let series = from_prometheus(&answer);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].label, "stage=pending");
        assert_eq!(series[0].points, vec![(1.0, 3.0), (2.0, 5.0)]);
        let chart = svg("stages", &series);
        assert_eq!(chart.matches("<polyline").count(), 2);
        assert!(chart.contains("stage=done"));
        assert!(svg("nothing", &[]).contains("no samples"));
    }
}
