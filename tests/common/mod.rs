//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether python3 runs and imports `modules` (none: python3 alone); prints a SKIP line saying
/// that `what` needs it otherwise.
pub fn python_with(modules: &[&str], what: &str) -> bool {
    let code: String = modules.iter().map(|m| format!("import {m}\n")).collect();
    let ok = Command::new("python3")
        .args(["-c", &code])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let with = if modules.is_empty() {
            String::new()
        } else {
            format!(" with {}", modules.join(", "))
        };
        eprintln!("SKIP: python3{with} not available; {what} needs it");
    }
    ok
}

/// `python3 scripts/NAME ARGS...` from the checkout.
pub fn python_script<S: AsRef<std::ffi::OsStr>>(
    name: &str,
    args: &[S],
) -> std::io::Result<std::process::Output> {
    python_command(name).args(args).output()
}

/// `python3 scripts/NAME`, to add arguments, a directory or an environment to.
pub fn python_command(name: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name),
    );
    c
}

/// Runs `python3 scripts/NAME ARGS...` from the checkout and asserts that it succeeded (showing
/// its stderr otherwise); returns its stdout.
pub fn script<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> String {
    let out = python_script(name, args).expect("python3 runs");
    assert!(
        out.status.success(),
        "scripts/{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Like `script`, for a script that imports `module`: None, with a SKIP line, when python3 is
/// missing or `module` is not installed (.ci/run installs it); any other failure panics.
pub fn script_needing<S: AsRef<std::ffi::OsStr>>(
    name: &str,
    args: &[S],
    module: &str,
) -> Option<String> {
    match python_script(name, args) {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).to_string()),
        Ok(o)
            if String::from_utf8_lossy(&o.stderr)
                .contains(&format!("No module named '{module}'")) =>
        {
            eprintln!(
                "SKIP: {module} is not installed (.ci/run installs it); scripts/{name} skipped"
            );
            None
        }
        Ok(o) => panic!(
            "scripts/{name} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => {
            eprintln!("SKIP: python3 not found; scripts/{name} skipped");
            None
        }
    }
}

/// The Tiny Shakespeare copy beside the checkout, when present.
pub fn shakespeare() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare/input.txt");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: ../shared/data/tinyshakespeare/input.txt is absent; this check needs it");
        None
    }
}

/// A small corpus with a repetitive structure a tiny model can learn quickly.
pub fn tiny_corpus() -> String {
    let lines = [
        "the cat sat on the mat.\n",
        "the dog sat on the log.\n",
        "a cat and a dog met.\n",
        "to be or not to be.\n",
    ];
    lines.iter().cycle().take(400).copied().collect()
}

/// Runs the nanoreward binary.
pub fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nanoreward"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the nanoreward binary runs")
}

/// Asserts a successful run, showing its stderr otherwise.
pub fn expect_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a failed run with a one-line error and no panic; returns the message.
pub fn expect_clean_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "panic instead of an error: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// Every file and folder under `dir`, at any depth (none when `dir` cannot be read).
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Files whose names mark an unfinished write (temporary names) anywhere under `dir`.
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    entries_under(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.contains(".tmp.") || name.contains(".old.")
        })
        .collect()
}

/// A folder holding `input.txt` (the tiny corpus) and `base/`, a saved tiny char-level generator
/// (block 16) whose meta.pkl matches the text.
pub fn tiny_base() -> (tempfile::TempDir, nanoreward::model::GPT, PathBuf) {
    use nanoreward::model::{GPT, GPTConfig};
    use nanoreward::tokenizer::{CharVocab, Tokenizer};
    let d = tempfile::tempdir().unwrap();
    let text = tiny_corpus();
    std::fs::write(d.path().join("input.txt"), &text).unwrap();
    let tok = Tokenizer::Char(CharVocab::from_text(&text));
    let cfg = GPTConfig {
        block_size: 16,
        vocab_size: tok.vocab_size(),
        n_layer: 1,
        n_head: 2,
        n_embd: 32,
        bias: false,
        ..Default::default()
    };
    let dev = burn::tensor::Device::flex();
    let model = GPT::new(&cfg, &dev, 5).unwrap();
    let ck = d.path().join("base");
    save_model(&ck, &model, Some(&tok), None);
    (d, model, ck)
}

/// Saves `model` as a checkpoint directory with no optimizer or job state (the tokenizer's
/// meta.pkl when it is character level; a reward model's feature generator when given).
pub fn save_model(
    dir: &Path,
    model: &nanoreward::model::GPT,
    tok: Option<&nanoreward::tokenizer::Tokenizer>,
    feature_model: Option<&nanoreward::model::GPT>,
) {
    nanoreward::checkpoint::save(
        dir,
        &nanoreward::checkpoint::CheckpointParts {
            model,
            optimizer: None,
            train_state: Default::default(),
            tokenizer: tok,
            feature_models: feature_model
                .map(|m| vec![(nanoreward::checkpoint::FEATURE_MODEL.to_string(), m)])
                .unwrap_or_default(),
            extra: Vec::new(),
        },
    )
    .unwrap();
}

/// A second tiny language model shaped like `base` (weights from `seed`), saved with the
/// tokenizer of the checkpoint `base_ck` as `dir/reference`: a reference model for reward models
/// (or a trunk of their own). Returns the model and its checkpoint.
pub fn save_reference(
    dir: &Path,
    base: &nanoreward::model::GPT,
    base_ck: &Path,
    seed: u64,
) -> (nanoreward::model::GPT, PathBuf) {
    let tok = nanoreward::checkpoint::Checkpoint::open(base_ck)
        .unwrap()
        .tokenizer()
        .unwrap();
    let dev = burn::tensor::Device::flex();
    let reference = nanoreward::model::GPT::new(&base.config, &dev, seed).unwrap();
    let rp = dir.join("reference");
    save_model(&rp, &reference, Some(&tok), None);
    (reference, rp)
}

/// [`tiny_base`] with the corpus also prepared into `data/` (char level, 90% train).
pub fn tiny_base_with_data() -> (tempfile::TempDir, nanoreward::model::GPT, PathBuf) {
    let (d, m, ck) = tiny_base();
    let p = d.path();
    nanoreward::data::prepare(
        &p.join("input.txt"),
        &p.join("data"),
        nanoreward::data::TokenizationKind::Char,
        0.9,
    )
    .unwrap();
    (d, m, ck)
}

/// `prepare-reward-data` options for the tiny base: text mode on `d/input.txt`, into `d/out`.
pub fn prep_options(
    d: &Path,
    ck: &Path,
    out: &str,
) -> nanoreward::reward::prepare::RewardPrepOptions {
    nanoreward::reward::prepare::RewardPrepOptions {
        model_path: ck.to_path_buf(),
        input_mode: nanoreward::reward::prepare::InputMode::Text,
        data_path: Some(d.join("input.txt")),
        train_bin: None,
        val_bin: None,
        extra_train: Vec::new(),
        tokenization: nanoreward::reward::prepare::TokenizationChoice::Auto,
        meta_path: None,
        output_dir: d.join(out),
        train_split: 0.9,
        samples_per_chunk: 3,
        full_share: 0.0,
        temperature: 1.0,
        top_k: None,
        seed: 42,
        batch_size: 8,
        max_blocks: Some(40),
        num_shards: 1,
        shard_index: 0,
        threads: 2,
    }
}

/// The largest absolute difference between the same-named weights of two checkpoints.
pub fn max_weight_diff(a: &Path, b: &Path) -> f32 {
    let wa = nanoreward::checkpoint::safetensors::read(&a.join("model.safetensors")).unwrap();
    let wb = nanoreward::checkpoint::safetensors::read(&b.join("model.safetensors")).unwrap();
    assert_eq!(wa.len(), wb.len(), "different tensor sets");
    wa.iter()
        .flat_map(|(k, t)| t.data.iter().zip(&wb[k].data).map(|(x, y)| (x - y).abs()))
        .fold(0.0f32, f32::max)
}
