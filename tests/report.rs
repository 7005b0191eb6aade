//! `nanoreward report`: one self-contained HTML page for a train-reward and a grpo directory,
//! loaded in a real headless browser (Debian's chromium; skipped with a message where it is
//! absent): no console errors, and the plots are there.

mod common;

use std::path::Path;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The DOM chromium builds from `page`, and what it logged.
fn load(browser: &str, page: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn report_pages_load_in_a_browser() {
    let (d, _m, ck) = common::tiny_base_with_data();
    let p = d.path();
    let ok = |args: &[&str]| common::expect_success(&common::run(args, p));
    let base = format!("--base={}", ck.display());
    ok(&[
        "prepare-reward-data",
        &format!("--model_path={}", ck.display()),
        "--data_path=input.txt",
        "--output_dir=rd",
        "--samples_per_chunk=2",
        "--max_blocks=20",
    ]);
    ok(&[
        "train-reward",
        &base,
        "--data=rd",
        "--out_dir=rm",
        "--loss=token_bce",
        "--lexicon=true",
        "--epochs=2",
        "--reward_head_hidden_dim=8",
        "--threads=1",
    ]);
    ok(&[
        "grpo",
        &format!("--init_from={}", ck.display()),
        "--reward_model=rm",
        "--data_dir=data",
        "--out_dir=g",
        "--max_steps=4",
        "--prompts_per_step=2",
        "--group_size=2",
        "--prompt_min=2",
        "--prompt_max=4",
        "--completion_len=6",
        "--eval_interval=2",
        "--eval_iters=1",
        "--eval_batch_size=2",
        "--eval_prompts=2",
        "--log_completions=1",
        "--threads=1",
    ]);
    for dir in ["rm", "g"] {
        ok(&["report", dir]);
        let page = p.join(dir).join("report.html");
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(
            html.contains("<svg") && !html.contains("<script"),
            "{dir}: not a self-contained page"
        );
        let Some(browser) = chromium() else {
            eprintln!(
                "SKIP: no chromium on this machine; the report pages were written but not loaded (.ci/run installs Debian's chromium)"
            );
            continue;
        };
        let (dom, log) = load(browser, &page);
        assert!(
            dom.matches("<svg").count() >= 1,
            "{dir}: no plot in the DOM"
        );
        assert!(dom.contains("Curves"), "{dir}");
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
            .collect();
        assert!(errors.is_empty(), "{dir}: console errors: {errors:?}");
        if dir == "rm" {
            assert!(
                dom.contains("Per-token P(natural)") && dom.contains("Evaluation"),
                "{dir}"
            );
        } else {
            assert!(dom.contains("Completions before and after"), "{dir}");
        }
    }
    let e = common::expect_clean_error(&common::run(&["report", "data"], p));
    assert!(e.contains("nothing to report"), "{e}");
}
