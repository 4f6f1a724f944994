//! A run's result: JSON fields, hdrhistogram percentiles, and the latency-percentile
//! plot (SVG, with plotters) of one or several results.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde_json::{json, Map, Value};

/// One run's numbers, as printed and as plotted.
pub struct Report {
    fields: Map<String, Value>,
}

/// The percentiles of the curve: 0, 68.4, 90, 96.8, 99, … up to 99.999 (ten steps per
/// decade of 1/(1 − q), the x axis of the plot).
fn curve_quantiles() -> impl Iterator<Item = f64> {
    (0..=50).map(|k| 1.0 - 10f64.powf(-(k as f64) / 10.0))
}

impl Report {
    /// Counts, rate and percentiles of `hist` (nanoseconds) over `window`.
    pub fn new(hist: &Histogram<u64>, window: Duration) -> Self {
        let calls = hist.len();
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        let curve: Vec<Value> = curve_quantiles().map(|q| json!([q, us(q)])).collect();
        let fields = json!({
            "calls": calls,
            "seconds": window.as_secs_f64(),
            "qps": calls as f64 / window.as_secs_f64().max(1e-9),
            "p50_us": us(0.50),
            "p90_us": us(0.90),
            "p99_us": us(0.99),
            "p999_us": us(0.999),
            "p9999_us": us(0.9999),
            "max_us": hist.max() as f64 / 1000.0,
            "curve": curve,
        });
        let Value::Object(fields) = fields else {
            unreachable!("an object literal")
        };
        Report { fields }
    }

    /// A result read back from its JSON.
    pub fn from_json(v: Value) -> std::io::Result<Self> {
        match v {
            Value::Object(fields) if fields.contains_key("curve") => Ok(Report { fields }),
            _ => Err(std::io::Error::other(
                "not a ringsoa-perf load result (no curve)",
            )),
        }
    }

    /// Adds a field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// The result as lines for a person: what ran, counts, latency percentiles and
    /// CPU per call.
    pub fn summary(&self) -> String {
        let f = |k: &str| self.number(k);
        let num = |k: &str| self.shown(k);
        let s = |k: &str| {
            self.fields
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut out = format!(
            "{} {} ({} B), {} {}, {} loop{}, {:.1} s measured\n",
            s("mode"),
            s("method"),
            f("payload").unwrap_or(0.0),
            f("conns").unwrap_or(0.0),
            if s("mode") == "raw" {
                "connections"
            } else {
                "callers"
            },
            s("loop"),
            if s("tracking") == "true" {
                ", tracked"
            } else {
                ""
            },
            f("seconds").unwrap_or(0.0),
        );
        out += &format!(
            "  calls    {:.0} ({:.0}/s), errors {:.0}\n",
            f("calls").unwrap_or(0.0),
            f("qps").unwrap_or(0.0),
            f("errors").unwrap_or(0.0)
        );
        if f("calls").unwrap_or(0.0) == 0.0 {
            // Zeros here would read as a fast server.
            out += "  latency  - (no call completed)\n  CPU      - (no call completed)\n";
        } else {
            out += &format!(
                "  latency  p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs\n",
                num("p50_us"),
                num("p90_us"),
                num("p99_us"),
                num("p999_us"),
                num("max_us")
            );
            out += &self.cpu_line();
        }
        if let (Some(n), Some(c)) = (f("nodes"), f("nodes_connected")) {
            if n > 1.0 {
                out += &format!("  nodes    {n:.0}, {c:.0} of them connected to\n");
            }
        }
        if let Some(e) = self.fields.get("first_error").and_then(Value::as_str) {
            out += &format!("  first error: {e}\n");
        }
        out
    }

    /// A numeric field.
    fn number(&self, key: &str) -> Option<f64> {
        self.fields.get(key).and_then(Value::as_f64)
    }

    /// A numeric field as the summary shows it (two decimals, `-` when absent).
    fn shown(&self, key: &str) -> String {
        self.number(key)
            .map_or("-".to_string(), |v| format!("{v:.2}"))
    }

    /// The summary's line of server and client CPU per call.
    fn cpu_line(&self) -> String {
        let f = |k: &str| self.number(k);
        let num = |k: &str| self.shown(k);
        let server = match (f("server_user_us_per_call"), f("server_system_us_per_call")) {
            (Some(u), Some(s)) => format!(
                "{} µs/call (user {u:.2}, system {s:.2})",
                num("server_cpu_us_per_call")
            ),
            _ if f("server_cpu_us_per_call").is_none() => {
                "not measured (--server-pid PID or --spawn-demo CPU)".to_string()
            }
            _ => format!("{} µs/call", num("server_cpu_us_per_call")),
        };
        format!(
            "  CPU      server {server}, client {} µs/call\n",
            num("client_cpu_us_per_call")
        )
    }

    /// The result as one JSON object.
    pub fn json(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    fn label(&self) -> String {
        let get = |k: &str| {
            self.fields
                .get(k)
                .map(|v| v.to_string().trim_matches('"').to_string())
        };
        match get("label").filter(|l| !l.is_empty()) {
            Some(l) => l,
            None => format!(
                "{} {} conns",
                get("mode").unwrap_or_default(),
                get("conns").unwrap_or_default()
            ),
        }
    }

    /// (1/(1 − q), latency µs) points, for the log-scale x axis.
    fn points(&self) -> Vec<(f64, f64)> {
        let Some(Value::Array(curve)) = self.fields.get("curve") else {
            return Vec::new();
        };
        curve
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .map(|(q, us)| (1.0 / (1.0 - q).max(1e-5), us.max(0.001)))
            .collect()
    }
}

/// Writes a latency-by-percentile plot of `reports` to `path` (SVG).
pub fn plot(reports: &[Report], path: &Path) -> std::io::Result<()> {
    let err =
        |e: &dyn std::fmt::Display| std::io::Error::other(format!("plot {}: {e}", path.display()));
    let series: Vec<(String, Vec<(f64, f64)>)> =
        reports.iter().map(|r| (r.label(), r.points())).collect();
    let all = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if hi <= 0.0 {
        return Err(err(&"no latencies to plot"));
    }
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..1e5).log_scale(), (lo * 0.8..hi * 1.25).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| format!("{}%", 100.0 - 100.0 / x))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (label, points)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
