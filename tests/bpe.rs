//! GPT-2 BPE end to end with nanoGPT's padded vocabulary (50,304 rows for 50,257 tokens), and
//! no sampler ever drawing an id the tokenizer cannot decode, even when the padding ids are the
//! most likely ones.

mod common;

use burn::tensor::Device;
use common::{expect_success, run};
use nanoreward::checkpoint;
use nanoreward::model::{GPT, GPTConfig};
use nanoreward::reward::RewardDataset;
use nanoreward::reward::prepare::{self as reward_prepare, RewardPrepOptions};
use nanoreward::sampling::{self, SampleOptions};
use nanoreward::tokenizer::{CharVocab, Tokenizer};
use rand::SeedableRng;

/// A char model whose vocabulary is padded past its tokenizer's (25 characters, 40 rows),
/// saved with its meta.pkl, in a folder holding the corpus.
fn padded_base() -> (tempfile::TempDir, GPT, std::path::PathBuf, usize) {
    let d = tempfile::tempdir().unwrap();
    let text = common::tiny_corpus();
    std::fs::write(d.path().join("input.txt"), &text).unwrap();
    let tok = Tokenizer::Char(CharVocab::from_text(&text));
    let cfg = GPTConfig {
        block_size: 16,
        vocab_size: tok.vocab_size() + 15,
        n_layer: 1,
        n_head: 2,
        n_embd: 32,
        ..Default::default()
    };
    let model = GPT::new(&cfg, &Device::flex(), 3).unwrap();
    let ck = d.path().join("base");
    common::save_model(&ck, &model, Some(&tok), None);
    (d, model, ck, tok.vocab_size())
}

#[test]
fn no_sampler_draws_a_padding_id() {
    // Padding logits the largest: greedy, top-1 and full sampling stay below the vocabulary.
    let logits = [0.0f32, 1.0, 0.5, 9.0, 8.0];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (temperature, top_k) in [(0.0, None), (1.0, Some(1)), (1.0, None), (50.0, None)] {
        let o = SampleOptions {
            temperature,
            top_k,
            vocab: Some(3),
        };
        for _ in 0..200 {
            assert!(sampling::sample_row(&logits, &o, &mut rng) < 3);
        }
    }
    // The model's samplers at a temperature that makes every id about equally likely: without
    // the limit a third of the draws would be padding.
    let (d, model, ck, v) = padded_base();
    let hot = SampleOptions {
        temperature: 1000.0,
        top_k: None,
        vocab: Some(v),
    };
    let prompts = vec![vec![1u32]; 64];
    let out = sampling::generate(&model, &prompts, 15, &hot, &mut rng, 2).unwrap();
    assert!(out.iter().flatten().all(|&t| (t as usize) < v));
    // Reward data at that temperature: every token decodable, so the dataset opens.
    let o = RewardPrepOptions {
        temperature: 1000.0,
        samples_per_chunk: 4,
        max_blocks: Some(20),
        ..common::prep_options(d.path(), &ck, "rd")
    };
    reward_prepare::run(&o, &model, false).unwrap();
    for split in ["train", "val"] {
        let ds = RewardDataset::open(&d.path().join("rd"), split, None).unwrap();
        assert!(
            (0..ds.len())
                .flat_map(|i| ds.tokens(i))
                .all(|t| (t as usize) < v)
        );
    }
}

/// The seed's BPE commands end to end on a tiny model (vocabulary padded to 50,304):
/// prepare → train → prepare-reward-data (seed flags, text mode, auto tokenization) →
/// inspect-reward-data → train-reward → eval-reward → grpo → sample.
#[test]
fn bpe_pipeline_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(p.join("input.txt"), common::tiny_corpus()).unwrap();
    let ok = |args: &[&str]| {
        let o = run(args, p);
        expect_success(&o);
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    ok(&[
        "prepare",
        "--input",
        "input.txt",
        "--tokenization",
        "bpe",
        "--out-dir",
        "data",
    ]);
    ok(&[
        "train",
        "--data_dir=data",
        "--out_dir=out",
        "--n_layer=1",
        "--n_head=2",
        "--n_embd=32",
        "--block_size=16",
        "--batch_size=4",
        "--max_iters=6",
        "--eval_interval=3",
        "--eval_iters=1",
        "--warmup_iters=0",
        "--threads=2",
        "--device=cpu",
    ]);
    let ck = checkpoint::read_config(&p.join("out/ckpt")).unwrap();
    assert_eq!(ck.vocab_size, 50304);
    ok(&[
        "prepare-reward-data",
        "--model_path",
        "out",
        "--data_path",
        "input.txt",
        "--output_dir",
        "rd",
        "--max_blocks",
        "6",
        "--samples_per_chunk",
        "3",
        "--temperature",
        "3.0",
        "--seed",
        "5",
        "--batch_size",
        "8",
    ]);
    let inspect = ok(&["inspect-reward-data", "rd"]);
    assert!(
        inspect.contains("tokenization: bpe (vocab 50257)"),
        "{inspect}"
    );
    ok(&[
        "train-reward",
        "--base=out/ckpt",
        "--data=rd",
        "--out_dir=rm",
        "--loss=token_bce",
        "--features=true",
        "--lexicon=true",
        "--epochs=1",
        "--batch_size=8",
        "--reward_head_hidden_dim=16",
        "--freeze_trunk=false",
        "--threads=2",
    ]);
    ok(&["eval-reward", "--checkpoint", "rm", "--windows", "8"]);
    ok(&[
        "grpo",
        "--init_from=out",
        "--reward_model=rm",
        "--data_dir=data",
        "--out_dir=g",
        "--max_steps=2",
        "--prompts_per_step=2",
        "--group_size=2",
        "--prompt_min=2",
        "--prompt_max=3",
        "--completion_len=4",
        "--eval_interval=2",
        "--eval_iters=1",
        "--eval_batch_size=2",
        "--eval_prompts=2",
        "--temperature=3.0",
        "--threads=2",
    ]);
    let text = ok(&[
        "sample",
        "--out_dir",
        "g",
        "--num-samples",
        "2",
        "--max-new-tokens",
        "12",
    ]);
    assert_eq!(text.matches("---------------").count(), 2, "{text}");
}
