//! nanoGPT interop: importing `ckpt.pt` files (fixtures written by scripts/numpy_gpt.py, whose
//! layout real PyTorch loads) against an independent NumPy forward pass, exporting back, and
//! starting from a local Hugging Face GPT-2 directory.

mod common;

use common::{expect_clean_error, expect_success, run};
use nanoreward::checkpoint::nanogpt;
use nanoreward::checkpoint::{self, HostTensor};
use nanoreward::model::{GPT, GPTConfig, Mode, Param, Pooling, RewardHeadKind};
use nanoreward::tokenizer::{CharVocab, Tokenizer};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const IDS: [u32; 6] = [1, 5, 2, 9, 3, 10];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An 11-character vocabulary for the fixtures (vocab_size 11).
fn meta(dir: &Path) -> PathBuf {
    let p = dir.join("meta.pkl");
    CharVocab::from_text("abcdefghijk").save_pickle(&p).unwrap();
    p
}

/// Logits `[T][vocab]` of the NumPy reference, or None (with a message) without numpy.
fn numpy_logits(pt: &Path) -> Option<Vec<Vec<f64>>> {
    numpy("logits", pt).map(|v| serde_json::from_value(v).unwrap())
}

/// `scripts/numpy_gpt.py CMD PATH IDS` as JSON, or None (with a message) without numpy.
fn numpy(cmd: &str, path: &Path) -> Option<serde_json::Value> {
    let ids: Vec<String> = IDS.iter().map(|i| i.to_string()).collect();
    let ids = ids.join(",");
    let args = [OsStr::new(cmd), path.as_os_str(), OsStr::new(&ids)];
    common::script_needing("numpy_gpt.py", &args, "numpy")
        .map(|o| serde_json::from_str(&o).unwrap())
}

fn our_logits(m: &GPT) -> Vec<Vec<f32>> {
    let ids: Vec<i64> = IDS.iter().map(|&i| i as i64).collect();
    let l = HostTensor::from_tensor(m.forward(m.tokens(&ids, 1), None));
    l.data
        .chunks(m.config.vocab_size)
        .map(|c| c.to_vec())
        .collect()
}

fn assert_close(ours: &[Vec<f32>], reference: &[Vec<f64>], what: &str) {
    let d = ours
        .iter()
        .flatten()
        .zip(reference.iter().flatten())
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0f64, f64::max);
    assert_eq!(ours.len(), reference.len());
    assert!(d < 1e-4, "{what}: max |Δlogit| = {d}");
}

#[test]
fn imported_logits_equal_the_numpy_forward_and_export_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let meta = meta(d.path());
    for name in ["nanogpt_tiny.pt", "nanogpt_tiny_nobias_compiled.pt"] {
        let pt = fixture(name);
        let out = d.path().join(name.replace(".pt", ""));
        let o = run(
            &[
                "import-nanogpt",
                pt.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--meta",
                meta.to_str().unwrap(),
            ],
            d.path(),
        );
        expect_success(&o);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains("iter_num 250, best_val_loss 1.4697"),
            "{stdout}"
        );
        let model = checkpoint::load_model(&out, &burn::tensor::Device::flex()).unwrap();
        assert_eq!(model.config.bias, !name.contains("nobias"));
        let ours = our_logits(&model);
        if let Some(reference) = numpy_logits(&pt) {
            assert_close(&ours, &reference, name);
        }
        // Export, then read the export with the NumPy reader and with our importer.
        let back = d.path().join(format!("back_{name}"));
        let o = run(
            &[
                "export-nanogpt",
                out.to_str().unwrap(),
                "--out",
                back.to_str().unwrap(),
            ],
            d.path(),
        );
        expect_success(&o);
        if let Some(reference) = numpy_logits(&back) {
            assert_close(&ours, &reference, &format!("exported {name}"));
        }
        let again = nanogpt::read(&back).unwrap();
        let orig = checkpoint::safetensors::read(&out.join("model.safetensors")).unwrap();
        for (k, t) in &orig {
            assert_eq!(&again.weights[k], t, "{k} changed in the round trip");
        }
        assert_eq!(
            again.weights["lm_head.weight"],
            orig["transformer.wte.weight"]
        );
        assert_eq!(again.config, model.config);
        assert_eq!(again.state.iter_num, Some(250));
    }
}

#[test]
fn a_pt_path_works_wherever_a_checkpoint_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let pt = d.path().join("ckpt.pt");
    std::fs::copy(fixture("nanogpt_tiny.pt"), &pt).unwrap();
    meta(d.path()); // beside the .pt, as nanoGPT's data/<dataset>/meta.pkl would be found
    let o = run(
        &[
            "sample",
            "--checkpoint",
            pt.to_str().unwrap(),
            "--start",
            "abc",
            "--num-samples",
            "2",
            "--max-new-tokens",
            "5",
        ],
        d.path(),
    );
    expect_success(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.lines().filter(|l| l.starts_with("abc")).count() == 2,
        "{stdout}"
    );
    // Without any vocabulary the error says what to do.
    std::fs::remove_file(d.path().join("meta.pkl")).unwrap();
    let o = run(&["sample", "--checkpoint", pt.to_str().unwrap()], d.path());
    assert!(expect_clean_error(&o).contains("--meta"));
}

#[test]
fn broken_pt_files_fail_clearly() {
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("nanogpt_tiny.pt")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pt", Vec::new()),
        ("truncated.pt", bytes[..bytes.len() / 2].to_vec()),
        ("text.pt", b"not a checkpoint".to_vec()),
    ];
    for (name, content) in cases {
        let p = d.path().join(name);
        std::fs::write(&p, content).unwrap();
        let out = d.path().join("o");
        let o = run(
            &[
                "import-nanogpt",
                p.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            d.path(),
        );
        let e = expect_clean_error(&o);
        assert!(e.contains(name), "{e}");
        assert!(!out.exists(), "{name}: output written");
    }
    // A reward model cannot become a nanoGPT checkpoint.
    let (t, _m, ck) = common::tiny_base();
    let mut cfg = checkpoint::read_config(&ck).unwrap();
    cfg.mode = nanoreward::model::Mode::Reward;
    let rm = GPT::new(&cfg, &burn::tensor::Device::flex(), 1).unwrap();
    let rdir = t.path().join("rm");
    common::save_model(&rdir, &rm, None, None);
    let o = run(
        &["export-nanogpt", rdir.to_str().unwrap(), "--out", "x.pt"],
        t.path(),
    );
    assert!(expect_clean_error(&o).contains("reward model"));
}

/// A Hugging Face GPT-2 directory with the fixture's weights in Conv1D layout gives the same
/// model as the .pt import.
#[test]
fn hugging_face_gpt2_directory_matches_the_pt_import() {
    let d = tempfile::tempdir().unwrap();
    let ck = nanogpt::read(&fixture("nanogpt_tiny.pt")).unwrap();
    let hf = d.path().join("gpt2");
    std::fs::create_dir_all(&hf).unwrap();
    let c = &ck.config;
    let config = serde_json::json!({"n_positions": c.block_size, "vocab_size": c.vocab_size,
        "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd, "model_type": "gpt2"});
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();
    let conv1d = |k: &str| {
        [
            "attn.c_attn.weight",
            "attn.c_proj.weight",
            "mlp.c_fc.weight",
            "mlp.c_proj.weight",
        ]
        .iter()
        .any(|s| k.ends_with(s))
    };
    let mut tensors: Vec<(String, HostTensor)> = ck
        .weights
        .iter()
        .filter(|(k, _)| *k != "lm_head.weight")
        .map(|(k, t)| {
            let t = if conv1d(k) { t.transposed() } else { t.clone() };
            (k.trim_start_matches("transformer.").to_string(), t)
        })
        .collect();
    tensors.push((
        "h.0.attn.bias".into(),
        HostTensor {
            shape: vec![1, 1, 8, 8],
            data: vec![1.0; 64],
        },
    ));
    std::fs::write(
        hf.join("model.safetensors"),
        checkpoint::safetensors::to_bytes(&tensors).unwrap(),
    )
    .unwrap();
    let (cfg, weights) = checkpoint::hf::read(&hf).unwrap();
    let dev = burn::tensor::Device::flex();
    let mut from_hf = GPT::new(&cfg, &dev, 0).unwrap();
    checkpoint::load_weights(&mut from_hf, &weights, &hf, |_| false).unwrap();
    let (from_pt, _) = nanogpt::model(&ck, &dev).unwrap();
    assert_eq!(our_logits(&from_hf), our_logits(&from_pt));
    // `train --init_from=gpt2` without the directory explains itself.
    let e = checkpoint::hf::read(&d.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("never downloads"), "{e}");
}

/// `train --init_from=gpt2` starts from a local Hugging Face directory (cropping block_size),
/// and explains itself when the directory is missing.
#[test]
fn train_starts_from_a_local_gpt2_directory() {
    let d = tempfile::tempdir().unwrap();
    let text = common::tiny_corpus();
    std::fs::write(d.path().join("input.txt"), &text).unwrap();
    let data = d.path().join("data");
    nanoreward::data::prepare(
        &d.path().join("input.txt"),
        &data,
        nanoreward::data::TokenizationKind::Bpe,
        0.9,
    )
    .unwrap();
    let hf = d.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    let (v, c, bs) = (50257usize, 8usize, 16usize);
    let config = serde_json::json!({"n_positions": bs, "vocab_size": v, "n_layer": 1, "n_head": 2, "n_embd": c});
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();
    let fill = |n: usize, k: f32| {
        (0..n)
            .map(|i| ((i as f32 * 0.37 + k).sin()) * 0.05)
            .collect()
    };
    let t = |shape: Vec<usize>, k: f32| HostTensor {
        data: fill(shape.iter().product(), k),
        shape,
    };
    let mut tensors = vec![
        ("wte.weight".to_string(), t(vec![v, c], 0.1)),
        ("wpe.weight".to_string(), t(vec![bs, c], 0.2)),
        ("ln_f.weight".to_string(), t(vec![c], 1.0)),
        ("ln_f.bias".to_string(), t(vec![c], 0.3)),
    ];
    for (name, shape) in [
        ("ln_1.weight", vec![c]),
        ("ln_1.bias", vec![c]),
        ("attn.c_attn.weight", vec![c, 3 * c]),
        ("attn.c_attn.bias", vec![3 * c]),
        ("attn.c_proj.weight", vec![c, c]),
        ("attn.c_proj.bias", vec![c]),
        ("ln_2.weight", vec![c]),
        ("ln_2.bias", vec![c]),
        ("mlp.c_fc.weight", vec![c, 4 * c]),
        ("mlp.c_fc.bias", vec![4 * c]),
        ("mlp.c_proj.weight", vec![4 * c, c]),
        ("mlp.c_proj.bias", vec![c]),
    ] {
        tensors.push((format!("h.0.{name}"), t(shape, 0.7)));
    }
    std::fs::write(
        hf.join("model.safetensors"),
        checkpoint::safetensors::to_bytes(&tensors).unwrap(),
    )
    .unwrap();
    let args = |dir: &str| {
        vec![
            "train".to_string(),
            "--init_from=gpt2".into(),
            format!("--pretrained_dir={dir}"),
            format!("--data_dir={}", data.display()),
            "--out_dir=out".into(),
            "--block_size=8".into(),
            "--batch_size=2".into(),
            "--max_iters=2".into(),
            "--eval_interval=2".into(),
            "--eval_iters=1".into(),
        ]
    };
    let a = args(hf.to_str().unwrap());
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), d.path());
    expect_success(&o);
    let cfg = checkpoint::read_config(&d.path().join("out/ckpt")).unwrap();
    assert_eq!((cfg.block_size, cfg.vocab_size, cfg.n_embd), (8, v, c));
    let w = checkpoint::safetensors::read(&d.path().join("out/ckpt/model.safetensors")).unwrap();
    assert_eq!(w["transformer.wpe.weight"].shape, vec![8, c]);
    let a = args(d.path().join("nowhere").to_str().unwrap());
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), d.path());
    assert!(expect_clean_error(&o).contains("never downloads"));
}

/// A nanoGPT .pt can be the trunk of a reward model directly.
#[test]
fn a_pt_file_is_a_reward_model_base() {
    let pt = fixture("nanogpt_tiny.pt");
    let dev = burn::tensor::Device::flex();
    let base = checkpoint::Checkpoint::open(&pt).unwrap();
    let spec = nanoreward::reward::model::HeadSpec {
        hidden: 16,
        pooling: nanoreward::model::Pooling::Mean,
        ..Default::default()
    };
    let (rm, report) = nanoreward::reward::model::from_checkpoint(&base, &spec, &dev, 1).unwrap();
    assert!(
        report
            .unused
            .iter()
            .any(|n| n.starts_with("lm_head.weight"))
    );
    assert!(
        report
            .initialised
            .iter()
            .all(|n| n.starts_with("reward_head."))
    );
    let ck = nanogpt::read(&pt).unwrap();
    for (name, t) in checkpoint::model_tensors(&rm) {
        if !name.starts_with("reward_head.") {
            assert_eq!(&t, &ck.weights[&name], "{name}");
        }
    }
}

/// Adds deterministic noise of scale `s` to every parameter, so that biases, LayerNorms and the
/// reward head all matter in a comparison.
fn perturbed(mut m: GPT, s: f32) -> GPT {
    let dev = m.device();
    let mut k = 0u32;
    m.map_params(|_, p| {
        let mut bump = |t: HostTensor| {
            let data = t
                .data
                .iter()
                .map(|v| {
                    k += 1;
                    v + s * ((k as f32) * 0.7548).sin()
                })
                .collect();
            HostTensor { data, ..t }
        };
        Ok(match p {
            Param::Vector(t) => Param::Vector(bump(HostTensor::from_tensor(t)).to_tensor(&dev)),
            Param::Matrix(t) => Param::Matrix(bump(HostTensor::from_tensor(t)).to_tensor(&dev)),
        })
    })
    .unwrap();
    m
}

fn export_hf(ck: &Path, out: &Path) -> String {
    let o = run(
        &[
            "export-hf",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        out.parent().unwrap(),
    );
    expect_success(&o);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn hf_export_of_generators_matches_numpy_and_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let tok = Tokenizer::Char(CharVocab::from_text("abcdefghijk"));
    let dev = burn::tensor::Device::flex();
    for bias in [true, false] {
        let cfg = GPTConfig {
            block_size: 8,
            vocab_size: 11,
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            bias,
            ..Default::default()
        };
        let model = perturbed(GPT::new(&cfg, &dev, 3).unwrap(), 0.2);
        let ck = d.path().join(format!("gen_{bias}"));
        common::save_model(&ck, &model, Some(&tok), None);
        let out = d.path().join(format!("hf_{bias}"));
        let said = export_hf(&ck, &out);
        assert!(said.contains("GPT2LMHeadModel.from_pretrained"), "{said}");
        let ours = our_logits(&model);
        if let Some(v) = numpy("hf_logits", &out) {
            let reference: Vec<Vec<f64>> = serde_json::from_value(v).unwrap();
            assert_close(&ours, &reference, &format!("hf export, bias {bias}"));
        }
        // Our own GPT-2 reader (init_from = gpt2) gives the same model back.
        let (c, w) = checkpoint::hf::read(&out).unwrap();
        assert_eq!((c.n_layer, c.n_embd, c.vocab_size), (2, 16, 11));
        let mut back = GPT::new(&c, &dev, 0).unwrap();
        checkpoint::load_weights(&mut back, &w, &out, |_| false).unwrap();
        let again = our_logits(&back);
        let reference: Vec<Vec<f64>> = ours
            .iter()
            .map(|r| r.iter().map(|&v| v as f64).collect())
            .collect();
        assert_close(&again, &reference, "read back");
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["activation_function"], "gelu");
        assert!(cfg["bos_token_id"].is_null());
        assert!(out.join("meta.pkl").exists());
    }
}

#[test]
fn hf_export_of_a_bpe_generator_carries_gpt2_tokenizer_files() {
    let d = tempfile::tempdir().unwrap();
    let cfg = GPTConfig {
        block_size: 8,
        vocab_size: 50304,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        bias: false,
        ..Default::default()
    };
    let dev = burn::tensor::Device::flex();
    let model = perturbed(GPT::new(&cfg, &dev, 4).unwrap(), 0.1);
    let ck = d.path().join("gen");
    common::save_model(&ck, &model, None, None);
    let out = d.path().join("hf");
    export_hf(&ck, &out);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (cfg["vocab_size"].as_u64(), cfg["eos_token_id"].as_u64()),
        (Some(50304), Some(50256))
    );
    let bpe = nanoreward::tokenizer::gpt2_files::MergeBpe::read(&out).unwrap();
    assert_eq!(bpe.encode_piece(b" the").unwrap(), vec![262]);
    if let Some(v) = numpy("hf_logits", &out) {
        let reference: Vec<Vec<f64>> = serde_json::from_value(v).unwrap();
        assert_close(&our_logits(&model), &reference, "bpe hf export");
    }
    // Hugging Face's own code reads the directory and tokenizes as we do.
    let text = format!("{}\n  Où est-il? 1234 ``quoted''", common::tiny_corpus());
    std::fs::write(d.path().join("text.txt"), &text).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/hf_check.py");
    let ids: Vec<String> = IDS.iter().map(|i| i.to_string()).collect();
    let o = Command::new("python3")
        .arg(script)
        .arg(&out)
        .arg(d.path().join("text.txt"))
        .args(["--logits", &ids.join(",")])
        .output()
        .unwrap();
    if o.status.code() == Some(3) {
        eprintln!("SKIP: neither transformers nor tokenizers is installed (.ci/run installs them)");
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["model_type"].as_str(), v["vocab_size"].as_u64()),
        (Some("gpt2"), Some(50304))
    );
    let ids: Vec<u32> = serde_json::from_value(v["ids"].clone()).unwrap();
    assert_eq!(
        ids,
        Tokenizer::Bpe.encode(&text).unwrap(),
        "{}",
        v["library"]
    );
    // Where PyTorch is installed, GPT2LMHeadModel.from_pretrained loads the weights too.
    match serde_json::from_value::<Vec<Vec<f64>>>(v["logits"].clone()) {
        Ok(reference) => assert_close(&our_logits(&model), &reference, "GPT2LMHeadModel"),
        Err(_) => {
            eprintln!("SKIP: PyTorch is not installed; GPT2LMHeadModel's logits not compared")
        }
    }
}

#[test]
fn hf_export_of_reward_models_scores_like_ours() {
    let d = tempfile::tempdir().unwrap();
    let tok = Tokenizer::Char(CharVocab::from_text("abcdefghijk"));
    let dev = burn::tensor::Device::flex();
    let gen_cfg = GPTConfig {
        block_size: 8,
        vocab_size: 11,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        bias: false,
        ..Default::default()
    };
    let generator = perturbed(GPT::new(&gen_cfg, &dev, 5).unwrap(), 0.2);
    for pooling in [Pooling::Last, Pooling::Mean] {
        let cfg = GPTConfig {
            mode: Mode::Reward,
            reward_head_hidden_dim: 8,
            pooling,
            ..gen_cfg.clone()
        };
        let rm = perturbed(GPT::new(&cfg, &dev, 6).unwrap(), 0.3);
        let ck = d.path().join(format!("rm_{}", pooling.as_str()));
        common::save_model(&ck, &rm, Some(&tok), None);
        let out = d.path().join(format!("hf_{}", pooling.as_str()));
        let said = export_hf(&ck, &out);
        assert!(said.contains("README.md"), "{said}");
        let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(readme.contains("p_natural"), "{readme}");
        let ids: Vec<i64> = IDS.iter().map(|&i| i as i64).collect();
        let ours = HostTensor::from_tensor(rm.reward_probs(rm.tokens(&ids, 1), None).unwrap());
        if let Some(v) = numpy("hf_reward", &out) {
            let reference: Vec<f64> = serde_json::from_value(v).unwrap();
            assert!(
                (ours.data[0] as f64 - reference[0]).abs() < 1e-5,
                "{pooling:?}: ours {:?} numpy {reference:?}",
                ours.data
            );
            assert!(
                (ours.data[0] - 0.5).abs() > 1e-3,
                "the head must matter: {:?}",
                ours.data
            );
        }
    }
    // A token head carries its feature generator as a GPT-2 directory too.
    let cfg = GPTConfig {
        mode: Mode::Reward,
        reward_head: RewardHeadKind::Token,
        reward_features: 6,
        white_box: true,
        reward_context: 1,
        reward_head_hidden_dim: 8,
        ..gen_cfg.clone()
    };
    let rm = GPT::new(&cfg, &dev, 7).unwrap();
    let ck = d.path().join("rm_token");
    common::save_model(&ck, &rm, Some(&tok), Some(&generator));
    let out = d.path().join("hf_token");
    export_hf(&ck, &out);
    let rc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reward_config.json")).unwrap()).unwrap();
    assert_eq!(
        (rc["reward_head"].as_str(), rc["reward_context"].as_u64()),
        (Some("token"), Some(1))
    );
    let head = checkpoint::safetensors::read(&out.join("reward_head.safetensors")).unwrap();
    assert_eq!(head.len(), 6, "{:?}", head.keys());
    if let Some(v) = numpy("hf_logits", &out.join("feature_model")) {
        let reference: Vec<Vec<f64>> = serde_json::from_value(v).unwrap();
        assert_close(&our_logits(&generator), &reference, "feature model");
    }
}

#[test]
fn hf_export_refuses_a_missing_checkpoint_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("hf");
    let err = expect_clean_error(&run(
        &["export-hf", "no_such_ckpt", "--out", out.to_str().unwrap()],
        d.path(),
    ));
    assert!(err.contains("no_such_ckpt"), "{err}");
    assert!(!out.exists());
}

/// `interpolate` against a reference computed from the two files' tensors: every weight is
/// A + α·(B − A) evaluated in f64 and rounded once (so α = 0 is A to the bit), for interpolation
/// and extrapolation; the result loads with A's tokenizer and records where it came from. Two
/// architectures, a reward model, a missing checkpoint and a non-number α each fail with one
/// line and write nothing.
#[test]
fn interpolate_mixes_two_generators_weight_by_weight() {
    let (d, base, a) = common::tiny_base();
    let (_, b) = common::save_reference(d.path(), &base, &a, 11);
    let read = |p: &Path| checkpoint::safetensors::read(&p.join("model.safetensors")).unwrap();
    let (wa, wb) = (read(&a), read(&b));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    for alpha in [0.0, 1.0, 0.5, 1.5] {
        let out = d.path().join(format!("mix{alpha}"));
        let o = run(
            &[
                "interpolate",
                &path(&a),
                &path(&b),
                &format!("--alpha={alpha}"),
                "--out",
                &path(&out),
            ],
            d.path(),
        );
        expect_success(&o);
        let w = read(&out);
        assert_eq!(w.len(), wa.len());
        let mut moved = 0usize;
        for (k, t) in &w {
            assert_eq!(t.shape, wa[k].shape, "{k}");
            for ((x, y), z) in wa[k].data.iter().zip(&wb[k].data).zip(&t.data) {
                let want = (*x as f64 + alpha * (*y as f64 - *x as f64)) as f32;
                assert_eq!(*z, want, "{k} at α {alpha}: {x} → {y}");
                moved += usize::from(z != x);
            }
        }
        assert_eq!(moved == 0, alpha == 0.0, "α {alpha}: {moved} weights moved");
        let ck = checkpoint::Checkpoint::open(&out).unwrap();
        let (Tokenizer::Char(v), Tokenizer::Char(va)) = (
            ck.tokenizer().unwrap(),
            checkpoint::Checkpoint::open(&a)
                .unwrap()
                .tokenizer()
                .unwrap(),
        ) else {
            panic!("a character-level tokenizer")
        };
        assert_eq!(v, va);
        let recorded = ck.state.config.clone().unwrap();
        assert_eq!(recorded["alpha"], alpha);
        assert_eq!(recorded["interpolate"][1], path(&b));
        assert!(ck.model(&burn::tensor::Device::flex()).is_ok());
    }
    let wide = GPT::new(
        &GPTConfig {
            n_embd: 64,
            ..base.config.clone()
        },
        &burn::tensor::Device::flex(),
        3,
    )
    .unwrap();
    let tok = checkpoint::Checkpoint::open(&a)
        .unwrap()
        .tokenizer()
        .unwrap();
    let wide_ck = d.path().join("wide");
    common::save_model(&wide_ck, &wide, Some(&tok), None);
    let rm = GPT::new(
        &GPTConfig {
            mode: Mode::Reward,
            reward_head_hidden_dim: 8,
            ..base.config.clone()
        },
        &burn::tensor::Device::flex(),
        4,
    )
    .unwrap();
    let rm_ck = d.path().join("rm");
    common::save_model(&rm_ck, &rm, Some(&tok), None);
    let out = d.path().join("refused");
    for (other, alpha, says) in [
        (path(&wide_ck), "0.5", "different architectures"),
        (path(&rm_ck), "0.5", "only generators"),
        (path(&d.path().join("missing")), "0.5", "missing"),
        (path(&b), "nan", "alpha must be a number"),
    ] {
        let o = run(
            &[
                "interpolate",
                &path(&a),
                &other,
                "--alpha",
                alpha,
                "--out",
                &path(&out),
            ],
            d.path(),
        );
        let line = expect_clean_error(&o);
        assert!(line.contains(says), "{line}");
        assert!(!out.exists(), "{line}: wrote {}", out.display());
    }
}
