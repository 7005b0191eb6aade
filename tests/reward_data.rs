//! The reward dataset: lockstep generation against the one-at-a-time reference, the file
//! contract (counts, exact labels, natural prefixes), determinism, sharding + merging, resuming
//! after kill -9, the numpy reader, and precise errors on corrupt datasets.

mod common;

use burn::tensor::Device;
use nanoreward::model::{GPT, GPTConfig};
use nanoreward::reward::dataset::RewardDataset;
use nanoreward::reward::prepare::{self as reward_prepare, RewardPrepOptions};
use nanoreward::reward::recipe::{self as reward_data, Split};
use nanoreward::sampling::{self, Batching, Row, SampleOptions};
use nanoreward::tokenizer::{CharVocab, Tokenizer};
use std::path::{Path, PathBuf};

const N: usize = 16;

fn tiny_model(vocab: usize) -> GPT {
    let cfg = GPTConfig {
        block_size: N,
        vocab_size: vocab,
        n_layer: 1,
        n_head: 2,
        n_embd: 32,
        bias: false,
        ..Default::default()
    };
    let dev = Device::flex();
    GPT::new(&cfg, &dev, 5).unwrap()
}

fn setup() -> (tempfile::TempDir, GPT, PathBuf) {
    common::tiny_base()
}

fn opts(d: &Path, ck: &Path, out: &str) -> RewardPrepOptions {
    common::prep_options(d, ck, out)
}

#[test]
fn lockstep_generation_equals_one_at_a_time() {
    let model = tiny_model(23);
    let blocks: Vec<Vec<u32>> = (0..6)
        .map(|b| (0..N as u32).map(|t| (t * 7 + b * 3) % 23).collect())
        .collect();
    let mut rows = Vec::new();
    for (b, nat) in blocks.iter().enumerate() {
        for (k, seed) in reward_data::block_plan(9, Split::Train, b, 3, N) {
            rows.push(Row {
                prefix: &nat[..k],
                seed,
            });
        }
    }
    let sample = SampleOptions {
        temperature: 1.0,
        top_k: Some(10),
        ..Default::default()
    };
    let g = Batching {
        batch_size: 5,
        workers: 2,
    };
    let fast = sampling::complete(&model, &rows, N, &sample, &g).unwrap();
    for (row, got) in rows.iter().zip(&fast) {
        assert_eq!(got, &sampling::complete_one_naive(&model, row, N, &sample));
    }
}

fn read_u16(p: &Path) -> Vec<u16> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn dataset_contract_determinism_and_shards() {
    let (d, model, ck) = setup();
    let o = opts(d.path(), &ck, "full");
    let s = reward_prepare::run(&o, &model, false).unwrap();
    let text = common::tiny_corpus();
    let tok = Tokenizer::Char(CharVocab::from_text(&text));
    let n_chars = text.chars().count();
    let cut = (n_chars as f64 * 0.9) as usize;
    let natural = [
        tok.encode(&text.chars().take(cut).collect::<String>())
            .unwrap(),
        tok.encode(&text.chars().skip(cut).collect::<String>())
            .unwrap(),
    ];
    for (m, nat) in s.metas.iter().zip(&natural) {
        let blocks = (nat.len() / N).min(40);
        assert_eq!(m.num_samples, blocks * 3, "{}", m.split);
        let ds = RewardDataset::open(&o.output_dir, &m.split, None).unwrap();
        for i in 0..ds.len() {
            let (x, [p, q]) = ds.get(i);
            let k = (p * N as f32).round() as usize;
            assert_eq!(p, k as f32 / N as f32);
            assert_eq!(q, (N - k) as f32 / N as f32);
            assert_eq!(p + q, 1.0);
            let b = i / 3;
            assert_eq!(
                &x[..k],
                &nat[b * N..b * N + k],
                "sample {i}: natural prefix"
            );
        }
        let st = ds.stats();
        assert!((st.y.mean[0] - 0.5).abs() < 0.1, "{:?}", st.y);
    }
    // Same seed and arguments: identical bytes.
    let again = opts(d.path(), &ck, "again");
    reward_prepare::run(&again, &model, false).unwrap();
    for f in ["train_x.bin", "train_y.bin", "val_x.bin", "val_y.bin"] {
        assert!(
            std::fs::read(o.output_dir.join(f)).unwrap()
                == std::fs::read(again.output_dir.join(f)).unwrap(),
            "{f}"
        );
    }
    // Three shards, merged: the same labels and natural prefixes in the same order.
    let mut shard_dirs = Vec::new();
    for i in 0..3 {
        let mut so = opts(d.path(), &ck, &format!("shard{i}"));
        so.num_shards = 3;
        so.shard_index = i;
        so.batch_size = 5;
        reward_prepare::run(&so, &model, false).unwrap();
        shard_dirs.push(so.output_dir);
    }
    let merged = d.path().join("merged");
    nanoreward::reward::dataset::merge(&merged, &shard_dirs).unwrap();
    for split in ["train", "val"] {
        let a = RewardDataset::open(&o.output_dir, split, None).unwrap();
        let b = RewardDataset::open(&merged, split, None).unwrap();
        assert_eq!(a.len(), b.len());
        for i in 0..a.len() {
            let ((xa, la), (xb, lb)) = (a.get(i), b.get(i));
            assert_eq!(la, lb);
            let k = (la[0] * N as f32).round() as usize;
            assert_eq!(xa[..k], xb[..k]);
        }
    }
    // A shard set that does not belong together is refused.
    assert!(nanoreward::reward::dataset::merge(&d.path().join("bad"), &shard_dirs[..2]).is_err());
    // The seed's numpy snippet reads the files and agrees with the Rust reader.
    numpy_check(&o.output_dir);
}

fn numpy_check(dir: &Path) {
    if !common::python_with(&["numpy"], "the numpy reader check") {
        return;
    }
    let ds = RewardDataset::open(dir, "train", None).unwrap();
    let st = ds.stats();
    let out = common::script(
        "check_reward_data.py",
        &[dir.as_os_str(), std::ffi::OsStr::new("train")],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["num_samples"].as_u64().unwrap() as usize, ds.len());
    assert!((v["y_mean"][0].as_f64().unwrap() - st.y.mean[0]).abs() < 1e-6);
    let first: Vec<u32> = v["x0"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(first, ds.tokens(0));
}

#[test]
fn killed_run_resumes_to_the_same_dataset() {
    let (d, _model, ck) = setup();
    let args = |out: &str| -> Vec<String> {
        [
            "prepare-reward-data",
            "--model_path",
            ck.to_str().unwrap(),
            "--data_path",
            d.path().join("input.txt").to_str().unwrap(),
            "--output_dir",
            d.path().join(out).to_str().unwrap(),
            "--samples_per_chunk",
            "40",
            "--batch_size",
            "16",
            "--threads",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nanoreward"))
            .args(a)
            .output()
            .unwrap()
    };
    assert!(run(&args("ref")).status.success());
    let mut interrupted = 0;
    for delay_ms in [150u64, 400, 900] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nanoreward"))
            .args(args("killed"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let partial = std::fs::read_dir(d.path().join("killed"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial"));
        interrupted += usize::from(partial);
        // Whatever was left: final names hold complete files or nothing.
        for split in ["train", "val"] {
            let meta = d.path().join(format!("killed/{split}_metadata.txt"));
            if meta.exists() {
                assert!(RewardDataset::open(&d.path().join("killed"), split, None).is_ok());
            }
        }
    }
    assert!(
        interrupted > 0,
        "no kill landed mid-run; the test did not exercise resuming"
    );
    let out = run(&args("killed"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["train_x.bin", "train_y.bin", "val_x.bin", "val_y.bin"] {
        assert!(
            read_u16(&d.path().join("ref").join(f)) == read_u16(&d.path().join("killed").join(f)),
            "{f}"
        );
    }
    assert!(common::leftovers(d.path()).is_empty());
}

#[test]
fn corrupt_datasets_are_reported_precisely() {
    let (d, model, ck) = setup();
    let o = opts(d.path(), &ck, "ds");
    reward_prepare::run(&o, &model, false).unwrap();
    let dir = &o.output_dir;
    let fresh = |name: &str| {
        let t = d.path().join(name);
        std::fs::create_dir_all(&t).unwrap();
        for f in ["train_x.bin", "train_y.bin", "train_metadata.txt"] {
            std::fs::copy(dir.join(f), t.join(f)).unwrap();
        }
        t
    };
    let err = |t: &Path| {
        RewardDataset::open(t, "train", None)
            .err()
            .unwrap()
            .to_string()
    };
    let t = fresh("a");
    let x = std::fs::read(t.join("train_x.bin")).unwrap();
    std::fs::write(t.join("train_x.bin"), &x[..x.len() - 2]).unwrap();
    assert!(
        err(&t).contains("not a multiple of block_size 16"),
        "{}",
        err(&t)
    );
    let t = fresh("b");
    let y = std::fs::read(t.join("train_y.bin")).unwrap();
    std::fs::write(t.join("train_y.bin"), &y[..y.len() - 8]).unwrap();
    assert!(err(&t).contains("label rows but"), "{}", err(&t));
    let t = fresh("c");
    let mut y = std::fs::read(t.join("train_y.bin")).unwrap();
    y[8..12].copy_from_slice(&0.9f32.to_le_bytes());
    std::fs::write(t.join("train_y.bin"), &y).unwrap();
    assert!(err(&t).contains("row 1: probabilities"), "{}", err(&t));
    let t = fresh("d");
    let mut y = std::fs::read(t.join("train_y.bin")).unwrap();
    y[16..20].copy_from_slice(&0.0f32.to_le_bytes());
    y[20..24].copy_from_slice(&1.0f32.to_le_bytes());
    std::fs::write(t.join("train_y.bin"), &y).unwrap();
    assert!(
        err(&t).contains("row 2: P(natural) = 0 is outside"),
        "{}",
        err(&t)
    );
    let t = fresh("e");
    std::fs::remove_file(t.join("train_metadata.txt")).unwrap();
    assert!(err(&t).contains("metadata file is missing"), "{}", err(&t));
    let t = fresh("f");
    let m = std::fs::read_to_string(t.join("train_metadata.txt"))
        .unwrap()
        .replace("block_size: 16", "block_size: abc");
    std::fs::write(t.join("train_metadata.txt"), m).unwrap();
    assert!(
        err(&t).contains("'block_size: abc' is not a valid number"),
        "{}",
        err(&t)
    );
    let expect = nanoreward::reward::dataset::TokenizationInfo {
        method: "bpe".into(),
        vocab_size: 50257,
    };
    let e = RewardDataset::open(dir, "train", Some(&expect))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("tokenized char") && e.contains("bpe"), "{e}");
}

#[test]
fn incompatible_inputs_are_refused_before_work() {
    let (d, model, ck) = setup();
    let mut o = opts(d.path(), &ck, "x");
    o.tokenization = nanoreward::reward::prepare::TokenizationChoice::Bpe;
    let e = reward_prepare::run(&o, &model, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("tokenizer has 50257 tokens") || e.contains("trained on characters"),
        "{e}"
    );
    let mut o = opts(d.path(), &ck, "y");
    std::fs::write(d.path().join("other.txt"), "zzzz qqqq xxxx ".repeat(50)).unwrap();
    o.data_path = Some(d.path().join("other.txt"));
    let e = reward_prepare::run(&o, &model, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not in the vocabulary"), "{e}");
    let mut o = opts(d.path(), &ck, "z");
    std::fs::write(d.path().join("short.txt"), "the cat").unwrap();
    o.data_path = Some(d.path().join("short.txt"));
    let e = reward_prepare::run(&o, &model, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("fewer than the model's block_size 16"), "{e}");
    assert!(!d.path().join("x").exists() && !d.path().join("y").exists());
}

/// `--input_mode heldout`: the base model's val.bin split 80/20 into the reward data's text.
#[test]
fn heldout_mode_splits_the_val_tokens() {
    let (d, _model, ck) = common::tiny_base_with_data();
    let p = d.path();
    let out = common::run(
        &[
            "prepare-reward-data",
            "--model_path",
            ck.to_str().unwrap(),
            "--input_mode",
            "heldout",
            "--val_bin",
            "data/val.bin",
            "--output_dir",
            "rdh",
            "--samples_per_chunk",
            "2",
        ],
        p,
    );
    common::expect_success(&out);
    let n = nanoreward::data::TokenFile::open(&p.join("data/val.bin"))
        .unwrap()
        .len();
    let cut = nanoreward::data::split_point(n, 0.8);
    let train = RewardDataset::open(&p.join("rdh"), "train", None).unwrap();
    let val = RewardDataset::open(&p.join("rdh"), "val", None).unwrap();
    assert_eq!(train.len(), cut / 16 * 2);
    assert_eq!(val.len(), (n - cut) / 16 * 2);
    // The natural prefix of the first sample is the start of val.bin.
    let first = nanoreward::data::TokenFile::open(&p.join("data/val.bin"))
        .unwrap()
        .slice(0, 16);
    let (x, y) = train.get(0);
    let k = (y[0] * 16.0).round() as usize;
    assert_eq!(x[..k], first[..k]);
    let e = common::expect_clean_error(&common::run(
        &[
            "prepare-reward-data",
            "--model_path",
            ck.to_str().unwrap(),
            "--input_mode",
            "heldout",
            "--output_dir",
            "rdx",
        ],
        p,
    ));
    assert!(e.contains("--input_mode heldout needs --val_bin"), "{e}");
}

/// `--extra_train_bin`: more held-out text for the train split only, in whole blocks after the
/// val.bin part's whole blocks: the val split and the first train samples are byte for byte
/// those of the run without it, and the extra samples' natural prefixes are the extra file's.
#[test]
fn extra_train_text_extends_only_the_train_split() {
    let (d, _model, ck) = common::tiny_base_with_data();
    let p = d.path();
    let ck = ck.to_str().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let mut a = vec!["prepare-reward-data", "--model_path", ck, "--input_mode"];
        a.extend(["heldout", "--val_bin", "data/val.bin", "--output_dir", out]);
        a.extend(["--samples_per_chunk", "2"]);
        a.extend(extra);
        common::run(&a, p)
    };
    common::expect_success(&run("plain", &[]));
    common::expect_success(&run("more", &["--extra_train_bin", "data/train.bin"]));
    let read = |dir: &str, f: &str| std::fs::read(p.join(dir).join(f)).unwrap();
    assert_eq!(read("plain", "val_x.bin"), read("more", "val_x.bin"));
    assert_eq!(read("plain", "val_y.bin"), read("more", "val_y.bin"));
    let tokens = |f: &str| {
        nanoreward::data::TokenFile::open(&p.join(f))
            .unwrap()
            .to_vec()
    };
    let (val, extra) = (tokens("data/val.bin"), tokens("data/train.bin"));
    let own = nanoreward::data::split_point(val.len(), 0.8) / N;
    let plain = RewardDataset::open(&p.join("plain"), "train", None).unwrap();
    let more = RewardDataset::open(&p.join("more"), "train", None).unwrap();
    assert_eq!(plain.len(), own * 2);
    assert_eq!(more.len(), (own + extra.len() / N) * 2);
    for i in 0..plain.len() {
        assert_eq!(plain.get(i), more.get(i), "sample {i}");
    }
    for b in [0, extra.len() / N - 1] {
        let (x, y) = more.get((own + b) * 2);
        let k = (y[0] * N as f32).round() as usize;
        assert_eq!(x[..k], extra[b * N..b * N + k], "extra block {b}");
    }
    // Only held-out mode takes it.
    let e = common::expect_clean_error(&common::run(
        &[
            "prepare-reward-data",
            "--model_path",
            ck,
            "--input_mode",
            "text",
            "--data_path",
            "input.txt",
            "--extra_train_bin",
            "data/train.bin",
        ],
        p,
    ));
    assert!(
        e.contains("--extra_train_bin needs --input_mode heldout"),
        "{e}"
    );
}

/// The tiny corpus's tokens, and the token file they are written to under `d`.
fn natural_file(d: &Path) -> (Vec<u32>, PathBuf) {
    let text = common::tiny_corpus();
    let natural = Tokenizer::Char(CharVocab::from_text(&text))
        .encode(&text)
        .unwrap();
    let path = d.join("natural.bin");
    nanoreward::data::write_tokens(&path, &natural).unwrap();
    (natural, path)
}

/// scripts/reward_negatives.py: the source's train rows all kept, N_NEGATIVES more in the
/// dataset contract (read by nanoreward's own reader), each with an exact K/N label, a natural
/// prefix of K tokens from the natural file, and a rest off the base — about half of them the
/// natural continuation shuffled; the val split byte for byte the source's.
#[test]
fn negatives_script_adds_off_distribution_rows_in_the_contract() {
    let (d, model, ck) = setup();
    let o = opts(d.path(), &ck, "full");
    reward_prepare::run(&o, &model, false).unwrap();
    let src = RewardDataset::open(&o.output_dir, "train", None).unwrap();
    let (natural, nat_path) = natural_file(d.path());
    let out = d.path().join("neg");
    let args = [&o.output_dir, &nat_path, &out];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|p| p.as_os_str()).collect();
    args.extend(["40", "3"].map(std::ffi::OsStr::new));
    if common::script_needing("reward_negatives.py", &args, "numpy").is_none() {
        return;
    }
    let ds = RewardDataset::open(&out, "train", Some(&src.tokenization())).unwrap();
    assert_eq!(ds.len(), src.len() + 40);
    let key = |(x, y): (Vec<u32>, [f32; 2])| (x, y.map(f32::to_bits));
    let mut extra: Vec<_> = (0..ds.len()).map(|i| key(ds.get(i))).collect();
    extra.sort();
    for row in (0..src.len()).map(|i| key(src.get(i))) {
        let at = extra.binary_search(&row).expect("every source row is kept");
        extra.remove(at);
    }
    assert_eq!(extra.len(), 40);
    let mut shuffled = 0;
    for (x, [p, q]) in &extra {
        let (p, q) = (f32::from_bits(*p), f32::from_bits(*q));
        let k = (p * N as f32).round() as usize;
        assert!((1..N).contains(&k) && p == k as f32 / N as f32 && q == 1.0 - p);
        let starts: Vec<usize> = (0..=natural.len() - N)
            .filter(|&s| natural[s..s + k] == x[..k])
            .collect();
        assert!(
            !starts.is_empty(),
            "the prefix of {x:?} is not natural text"
        );
        let sorted = |v: &[u32]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        shuffled += starts
            .iter()
            .any(|&s| sorted(&natural[s + k..s + N]) == sorted(&x[k..]))
            as usize;
    }
    assert!((14..=30).contains(&shuffled), "{shuffled} of 40 shuffled");
    for f in ["val_x.bin", "val_y.bin", "val_metadata.txt"] {
        let read = |dir: &Path| std::fs::read(dir.join(f)).unwrap();
        assert_eq!(read(&o.output_dir), read(&out), "{f}");
    }
}

/// scripts/reward_negatives.py --rows: every train row of another reward dataset (here one made
/// with another seed, standing for a policy's continuations) is added beside the source's rows and
/// the negatives, each exactly once; a dataset of another block size is refused in one line.
#[test]
fn negatives_script_adds_another_datasets_rows() {
    let (d, model, ck) = setup();
    let o = opts(d.path(), &ck, "src");
    reward_prepare::run(&o, &model, false).unwrap();
    let mut o2 = opts(d.path(), &ck, "policy");
    o2.seed = o.seed + 1;
    o2.samples_per_chunk = 2;
    reward_prepare::run(&o2, &model, false).unwrap();
    let src = RewardDataset::open(&o.output_dir, "train", None).unwrap();
    let rows = RewardDataset::open(&o2.output_dir, "train", None).unwrap();
    let (_, nat_path) = natural_file(d.path());
    let out = d.path().join("neg");
    let os = |p: &Path| p.as_os_str().to_owned();
    let mut args = vec![os(&o.output_dir), os(&nat_path), os(&out)];
    args.extend(["5", "3", "--rows"].map(Into::into));
    args.push(os(&o2.output_dir));
    if common::script_needing("reward_negatives.py", &args, "numpy").is_none() {
        return;
    }
    let ds = RewardDataset::open(&out, "train", Some(&src.tokenization())).unwrap();
    assert_eq!(ds.len(), src.len() + 5 + rows.len());
    let key = |(x, y): (Vec<u32>, [f32; 2])| (x, y.map(f32::to_bits));
    let mut left: Vec<_> = (0..ds.len()).map(|i| key(ds.get(i))).collect();
    left.sort();
    let kept = (0..src.len()).map(|i| key(src.get(i)));
    for row in kept.chain((0..rows.len()).map(|i| key(rows.get(i)))) {
        let at = left.binary_search(&row).expect("every row is kept once");
        left.remove(at);
    }
    assert_eq!(left.len(), 5, "the negatives besides");
    let meta = std::fs::read_to_string(out.join("train_metadata.txt")).unwrap();
    assert!(meta.contains(&format!("{} rows of", rows.len())), "{meta}");

    let odd = d.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let m = std::fs::read_to_string(o2.output_dir.join("train_metadata.txt")).unwrap();
    let m = m.replace(&format!("block_size: {N}"), "block_size: 8");
    std::fs::write(odd.join("train_metadata.txt"), m).unwrap();
    args.pop();
    args.push(os(&odd));
    args[2] = os(&d.path().join("neg2"));
    let r = common::python_script("reward_negatives.py", &args).unwrap();
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && e.lines().count() == 1, "{e}");
    assert!(e.contains("blocks of 8 tokens"), "{e}");
    assert!(!d.path().join("neg2").exists(), "nothing written");
}
