//! Two processes, one output directory: the second is refused at once, naming the directory and
//! the holder's pid; a kill -9 of the holder releases the lock (no stale lock to clean by hand).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_second_process_is_refused_and_kill_releases() {
    let (d, _m, _ck) = common::tiny_base_with_data();
    let p = d.path();
    let train = |out: &str, iters: &str| -> Vec<String> {
        [
            "train",
            "--data_dir=data",
            "--n_layer=1",
            "--n_head=2",
            "--n_embd=32",
            "--block_size=16",
            "--batch_size=4",
            "--eval_interval=1000",
            "--eval_iters=1",
            "--threads=1",
            "--device=cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--out_dir={out}"), format!("--max_iters={iters}")])
        .collect()
    };
    // A long run holds "out"; wait until it has taken the lock (its pid is in the lock file).
    let mut holder = Command::new(env!("CARGO_BIN_EXE_nanoreward"))
        .args(train("out", "100000"))
        .current_dir(p)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = p.join(".out.lock");
    let t0 = Instant::now();
    let pid = holder.id().to_string();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim() != pid)
        .unwrap_or(true)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t1 = Instant::now();
    let e = common::expect_clean_error(&common::run(
        &train("out", "5")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        p,
    ));
    assert!(
        t1.elapsed() < Duration::from_secs(10),
        "the second run was not refused at once"
    );
    assert!(
        e.contains("out is in use by another nanoreward process") && e.contains(&pid),
        "{e}"
    );
    // kill -9 releases the lock: the next run proceeds.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(lock.exists());
    common::expect_success(&common::run(
        &train("out", "3")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        p,
    ));
}
