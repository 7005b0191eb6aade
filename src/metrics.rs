//! Metrics: JSON-lines logs, SVG curve plots and peak memory.

use crate::tensorboard::EventWriter;
use crate::util::fsutil;
use crate::{Error, Result};
use plotters::prelude::*;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An append-only JSON-lines log, optionally mirrored to TensorBoard.
pub struct JsonlLog {
    path: PathBuf,
    file: File,
    tensorboard: Option<Mirror>,
}

/// Where a log's scalars also go: an event file, the record key that holds the step, and a tag
/// prefix.
struct Mirror {
    writer: EventWriter,
    step_key: String,
    prefix: String,
}

impl JsonlLog {
    /// Opens `path` for appending. With `keep_before = Some((key, n))`, lines whose numeric
    /// `key` is ≥ n are dropped first (a resumed run rewrites the part it repeats).
    pub fn open(path: &Path, keep_before: Option<(&str, u64)>) -> Result<Self> {
        if let (Some((key, n)), true) = (keep_before, path.exists()) {
            let text = fsutil::read_text(path)?;
            let kept: String = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v.get(key).and_then(|x| x.as_u64()))
                        .is_some_and(|i| i < n)
                })
                .map(|l| format!("{l}\n"))
                .collect();
            fsutil::write_bytes_atomic(path, kept.as_bytes())?;
        } else if keep_before.is_none() && path.exists() {
            fsutil::write_bytes_atomic(path, b"")?;
        }
        if let Some(parent) = path.parent() {
            fsutil::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io("cannot open log", path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            tensorboard: None,
        })
    }

    /// Also writes every numeric field of each record as a TensorBoard scalar `prefix/field`
    /// at the step in field `step_key`, into an event file in `logdir` (an empty `logdir`:
    /// nothing).
    pub fn with_tensorboard(mut self, logdir: &str, step_key: &str, prefix: &str) -> Result<Self> {
        if !logdir.is_empty() {
            self.tensorboard = Some(Mirror {
                writer: EventWriter::create(Path::new(logdir))?,
                step_key: step_key.into(),
                prefix: prefix.into(),
            });
        }
        Ok(self)
    }

    /// Appends one record as a line.
    pub fn write(&mut self, record: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{record}")
            .map_err(|e| Error::io("cannot write log", &self.path, e))?;
        let Some(m) = self.tensorboard.as_mut() else {
            return Ok(());
        };
        let (Some(step), Some(fields)) = (
            record.get(&m.step_key).and_then(|v| v.as_u64()),
            record.as_object(),
        ) else {
            return Ok(());
        };
        for (k, v) in fields {
            if let Some(x) = v.as_f64().filter(|_| k != &m.step_key && !v.is_boolean()) {
                m.writer.scalar(&format!("{}/{k}", m.prefix), step, x)?;
            }
        }
        Ok(())
    }
}

/// Reads the records of a JSON-lines file (malformed lines are skipped).
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    Ok(fsutil::read_text(path)?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// One named line of a plot.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws line series into an SVG file (written atomically).
pub fn plot_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let Some(((x0, x1), (y0, y1))) = ranges(series) else {
        return Err(Error::Other(format!(
            "nothing to plot for {}",
            path.display()
        )));
    };
    let mut svg = String::new();
    let draw = |svg: &mut String| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        draw_lines(&mut chart, x_label, y_label, series)?;
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| Error::Other(format!("cannot draw {}: {e}", path.display())))?;
    fsutil::write_bytes_atomic(path, svg.as_bytes())
}

/// The x and y ranges of line series (finite points only), padded a little in y; None when
/// there is nothing to draw.
/// The axes, the lines of `series` (one palette colour each) and their legend on `chart`.
fn draw_lines<'a, 'b: 'a>(
    chart: &mut ChartContext<
        'a,
        SVGBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> std::result::Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    // A series with no finite point (a measurement not taken) gets no line and no legend entry.
    let drawn = series
        .iter()
        .filter(|s| s.points.iter().any(|p| p.0.is_finite() && p.1.is_finite()));
    for (i, s) in drawn.enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn ranges(series: &[Series]) -> Option<((f64, f64), (f64, f64))> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        return None;
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    Some(((x0, x1), (y0 - pad, y1 + pad)))
}

/// Draws several panels one above the other into an SVG file (written atomically), each with
/// its own y axis: `panels` holds each panel's y label and series. Empty panels are left out.
pub fn plot_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[(&str, Vec<Series>)],
) -> Result<()> {
    let svg = panels_svg(title, x_label, panels)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    fsutil::write_bytes_atomic(path, svg.as_bytes())
}

/// The SVG text of [`plot_panels`].
pub fn panels_svg(title: &str, x_label: &str, panels: &[(&str, Vec<Series>)]) -> Result<String> {
    let panels: Vec<&(&str, Vec<Series>)> =
        panels.iter().filter(|(_, s)| ranges(s).is_some()).collect();
    if panels.is_empty() {
        return Err(Error::Other(format!("nothing to plot in '{title}'")));
    }
    let mut svg = String::new();
    let draw = |svg: &mut String| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let height = 60 + 260 * panels.len() as u32;
        let root = SVGBackend::with_string(svg, (800, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let areas = root.split_evenly((panels.len(), 1));
        for (area, (y_label, series)) in areas.iter().zip(&panels) {
            let Some(((x0, x1), (y0, y1))) = ranges(series) else {
                continue;
            };
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            draw_lines(&mut chart, x_label, y_label, series)?;
        }
        root.present()?;
        Ok(())
    };
    draw(&mut svg).map_err(|e| Error::Other(format!("cannot draw '{title}': {e}")))?;
    Ok(svg)
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_log_drops_repeated_iterations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let mut log = JsonlLog::open(&p, None).unwrap();
        for i in 0..5u64 {
            log.write(&serde_json::json!({"iter": i})).unwrap();
        }
        drop(log);
        let mut log = JsonlLog::open(&p, Some(("iter", 3))).unwrap();
        log.write(&serde_json::json!({"iter": 3, "again": true}))
            .unwrap();
        let recs = read_jsonl(&p).unwrap();
        let iters: Vec<u64> = recs.iter().map(|r| r["iter"].as_u64().unwrap()).collect();
        assert_eq!(iters, vec![0, 1, 2, 3]);
    }

    #[test]
    fn panels_are_drawn_each_on_its_axis() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.svg");
        let a = Series {
            name: "reward".into(),
            points: vec![(0.0, 0.5), (1.0, 0.6)],
        };
        let b = Series {
            name: "val loss".into(),
            points: vec![(0.0, 1.9), (1.0, 2.0)],
        };
        let empty = Series {
            name: "none".into(),
            points: vec![],
        };
        plot_panels(
            &p,
            "t",
            "step",
            &[("reward", vec![a]), ("loss", vec![b]), ("x", vec![empty])],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("reward") && text.contains("val loss") && !text.contains(">none<"));
    }

    #[test]
    fn a_series_without_a_finite_point_has_no_legend_entry() {
        let measured = Series {
            name: "C2ST measured".into(),
            points: vec![(1.0, 0.9), (2.0, 0.8)],
        };
        let unmeasured = Series {
            name: "C2ST not taken".into(),
            points: vec![(1.0, f64::NAN), (2.0, f64::NAN)],
        };
        let svg = panels_svg("t", "round", &[("AUROC", vec![measured, unmeasured])]).unwrap();
        assert!(svg.contains("C2ST measured"), "{svg}");
        assert!(!svg.contains("C2ST not taken"));
    }

    #[test]
    fn svg_plot_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.svg");
        let s = Series {
            name: "loss".into(),
            points: vec![(0.0, 4.0), (1.0, 3.0), (2.0, 2.5)],
        };
        plot_svg(&p, "t", "iter", "loss", &[s]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("<svg") && text.contains("loss"));
    }
}
