//! `pretrace report`: figures, a self-contained report.html that renders, results computed when
//! missing, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

mod run;
use run::{fails, golden, ok, s};

fn scratch(name: &str) -> PathBuf {
    run::scratch("report", name)
}

fn store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    ok(&[
        "extract",
        "--checkpoints",
        s(&golden("sweep")),
        "--data",
        s(&golden("sweep/texts.csv")),
        "--out",
        s(&store),
    ]);
    store
}

#[test]
fn writes_figures_and_a_self_contained_report() {
    let dir = scratch("full");
    let store = store(&dir);
    let out = dir.join("report");
    let err = ok(&[
        "report",
        "--store",
        s(&store),
        "--out",
        s(&out),
        "--estimator",
        "nhsic-paper,hsic-normalized",
        "--title",
        "Golden sweep <test>",
    ]);
    assert!(err.contains("probes.json is missing"), "{err}");
    // The results it computed are the commands' own.
    for f in [
        "probes.csv",
        "probes.json",
        "infoplane.csv",
        "infoplane.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let figs = [
        "accuracy_steps_texts",
        "accuracy_layers_texts",
        "accuracy_heatmap_texts",
        "infoplane_texts_nhsic-paper",
        "infoplane_texts_hsic-normalized",
        "mi_texts_nhsic-paper",
        "mi_texts_hsic-normalized",
    ];
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for f in figs {
        let png = std::fs::read(out.join("figures").join(format!("{f}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{f}.png");
        assert!(png.len() > 5_000, "{f}.png is {} bytes", png.len());
        let svg = std::fs::read_to_string(out.join("figures").join(format!("{f}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}.svg"
        );
        assert!(
            html.contains(&format!("figures/{f}.png")),
            "{f} is in the report"
        );
    }
    // Every figure is embedded; nothing is fetched from elsewhere.
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        figs.len()
    );
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    // Provenance: checkpoints, dataset hash, settings; the title is escaped.
    for want in [
        "step0",
        "step1000",
        "step143000",
        "gpt_neox",
        "nhsic_paper",
        "&quot;sigma&quot;: 50.0",
        "Golden sweep &lt;test&gt;",
    ] {
        assert!(html.contains(want), "report.html lacks {want}");
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(store.join("step0/texts/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(html.contains(manifest["dataset"]["sha256"].as_str().unwrap()));
    // A second run reuses the results.
    let err = ok(&["report", "--store", s(&store), "--out", s(&out)]);
    assert!(!err.contains("missing"), "{err}");
    screenshot(&out, &dir);
}

/// Renders report.html in headless Chromium (Debian package `chromium`) when it is installed and
/// checks the page has content: its screenshot is far larger than a blank page's.
fn screenshot(out: &Path, dir: &Path) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.is_file() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP report screenshot: /usr/bin/chromium is absent (apt-get install chromium)"
        );
        return;
    }
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let shot = |page: &Path, png: &Path| -> Result<usize, String> {
        let run = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,2000",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.join("chromium").display()
            ))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .map_err(|e| e.to_string())?;
        if !run.status.success() {
            return Err(String::from_utf8_lossy(&run.stderr).into_owned());
        }
        std::fs::metadata(png)
            .map(|m| m.len() as usize)
            .map_err(|e| e.to_string())
    };
    // A browser that cannot render a blank page here says nothing about the report.
    let empty = match shot(&blank, &dir.join("blank.png")) {
        Ok(n) => n,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP report screenshot: chromium cannot render a blank page here: {}",
                e.lines().last().unwrap_or("")
            );
            return;
        }
    };
    let full = shot(&out.join("report.html"), &out.join("screenshot.png"))
        .unwrap_or_else(|e| panic!("chromium rendered a blank page but not report.html: {e}"));
    assert!(
        full > 5 * empty.max(1),
        "screenshot {full} bytes vs blank page {empty}"
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = scratch("bad");
    let out = dir.join("report");
    let e = fails(&["report", "--store", s(&dir), "--out", s(&out)]);
    assert!(e.contains("not an activation store"), "{e}");
    let store = store(&dir);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("probes.json"), "{\"probes\": 3}").unwrap();
    let e = fails(&["report", "--store", s(&store), "--out", s(&out)]);
    assert!(e.contains("probes.json") && e.contains("'probes'"), "{e}");
    std::fs::write(out.join("probes.json"), "not json").unwrap();
    let e = fails(&["report", "--store", s(&store), "--out", s(&out)]);
    assert!(
        e.contains("probes.json: not a pretrace results file"),
        "{e}"
    );
    assert!(!out.join("report.html").exists());
}
