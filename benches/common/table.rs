//! Medians, the 90th percentile, and the table every figure goes into.

use std::time::Duration;

#[derive(Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub p90: Duration,
}

pub fn stats(mut v: Vec<Duration>) -> Stats {
    assert!(!v.is_empty());
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    let p90 = v[((n * 9).div_ceil(10)).saturating_sub(1)];
    Stats { median, p90 }
}

/// Median and p90 of signed figures in nanoseconds, as `+m.mmm / +p.ppp`
/// milliseconds.
pub fn signed_ms(mut v: Vec<i64>) -> String {
    assert!(!v.is_empty());
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    };
    let p90 = v[((n * 9).div_ceil(10)).saturating_sub(1)] as f64;
    format!("{:+.3} / {:+.3}", median / 1e6, p90 / 1e6)
}

pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

pub struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    pub fn new() -> Table {
        Table { rows: Vec::new() }
    }

    pub fn section(&mut self, title: &str) {
        self.rows.push([
            format!("-- {title}"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }

    /// A timed figure next to its floor.
    pub fn timed(&mut self, what: &str, ours: Stats, floor: Option<Stats>, target: &str) {
        let (floor_text, ratio) = match floor {
            Some(f) => (
                format!("{} / {}", ms(f.median), ms(f.p90)),
                format!(
                    "{:.2}x ({:+.3} ms)",
                    ours.median.as_secs_f64() / f.median.as_secs_f64(),
                    (ours.median.as_secs_f64() - f.median.as_secs_f64()) * 1e3
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        self.rows.push([
            what.into(),
            format!("{} / {}", ms(ours.median), ms(ours.p90)),
            floor_text,
            ratio,
            target.into(),
        ]);
    }

    pub fn value(&mut self, what: &str, value: String, target: &str) {
        self.rows
            .push([what.into(), value, "-".into(), "-".into(), target.into()]);
    }

    pub fn print(&self) {
        let header = [
            "figure".to_string(),
            "hot-restarter median / p90 (ms)".to_string(),
            "floor median / p90 (ms)".to_string(),
            "vs floor".to_string(),
            "target".to_string(),
        ];
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(&self.rows) {
            if row[0].starts_with("-- ") {
                continue;
            }
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 5]| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&header);
        println!(
            "|{}|",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            if let Some(title) = row[0].strip_prefix("-- ") {
                let mut r: [String; 5] = Default::default();
                r[0] = format!("**{title}**");
                line(&r);
            } else {
                line(row);
            }
        }
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}
