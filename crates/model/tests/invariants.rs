//! Invariants that need no reference: hooks that do nothing change nothing, sites chain, padding
//! and batching do not change a row's result, the KV cache equals recomputation, early stop equals a
//! full run.

mod common;

use candle_core::{IndexOp, Tensor};
use common::*;
use pretrace_model::{
    AddVector, Batch, Capture, Hook, KvCache, Logits, Padding, Positions, Site, SiteCtx,
};

/// Returns its input at every site.
struct NoOp(usize);
impl Hook for NoOp {
    fn at(&mut self, _site: Site, x: Tensor, _ctx: &SiteCtx) -> pretrace_model::Result<Tensor> {
        self.0 += 1;
        Ok(x)
    }
}

/// Records which sites fired.
#[derive(Default)]
struct Seen(Vec<Site>, Option<Site>);
impl Hook for Seen {
    fn at(&mut self, site: Site, x: Tensor, _ctx: &SiteCtx) -> pretrace_model::Result<Tensor> {
        self.0.push(site);
        Ok(x)
    }
    fn last_site(&self) -> Option<Site> {
        self.1
    }
}

fn rows(name: &str) -> Vec<Vec<u32>> {
    let c = load(name);
    let tok = c.tokenizer.as_ref().unwrap();
    let mut r: Vec<Vec<u32>> = texts().iter().map(|t| tok.encode(t).unwrap()).collect();
    r.push(tok.encode("short").unwrap());
    r
}

#[test]
fn no_hooks_and_noop_hooks_are_bit_identical() {
    for name in TINY {
        let c = load(name);
        let b = Batch::pad(&rows(name), Padding::Left, 0).unwrap();
        let plain = c
            .model
            .forward(&b, &mut [], Logits::All, None)
            .unwrap()
            .unwrap();
        let mut noop = NoOp(0);
        let hooked = c
            .model
            .forward(&b, &mut [&mut noop as &mut dyn Hook], Logits::All, None)
            .unwrap()
            .unwrap();
        assert!(noop.0 > 0, "{name}: the no-op hook never ran");
        assert_eq!(
            bits(&plain),
            bits(&hooked),
            "{name}: a no-op hook changed the logits"
        );
        // A zero vector added everywhere also changes nothing.
        let mut zero = AddVector {
            site: Site::ResidPost(1),
            vector: Tensor::zeros(
                c.model.config.d_model,
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
            alpha: 3.0,
            positions: Positions::All,
        };
        let z = c
            .model
            .forward(&b, &mut [&mut zero as &mut dyn Hook], Logits::All, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            bits(&plain),
            bits(&z),
            "{name}: a zero vector changed the logits"
        );
    }
}

#[test]
fn resid_post_equals_next_resid_pre() {
    for name in TINY {
        let c = load(name);
        let n = c.model.config.n_layers;
        let sites: Vec<Site> = (0..n)
            .flat_map(|l| [Site::ResidPre(l), Site::ResidPost(l)])
            .collect();
        let mut cap = Capture::new(sites);
        c.model
            .forward(
                &Batch::single(&rows(name)[0]).unwrap(),
                &mut [&mut cap as &mut dyn Hook],
                Logits::All,
                None,
            )
            .unwrap();
        for l in 0..n - 1 {
            assert_eq!(
                bits(cap.get(Site::ResidPost(l)).unwrap()),
                bits(cap.get(Site::ResidPre(l + 1)).unwrap()),
                "{name}: layer {l}"
            );
        }
    }
}

#[test]
fn padded_batches_equal_rows_alone() {
    for name in TINY {
        let c = load(name);
        let m = &c.model;
        let rs = rows(name);
        let n = m.config.n_layers;
        for side in [Padding::Left, Padding::Right] {
            let b = Batch::pad(&rs, side, 0).unwrap();
            let mut cap = Capture::new((0..n).map(Site::ResidPost));
            let logits = m
                .forward(&b, &mut [&mut cap as &mut dyn Hook], Logits::All, None)
                .unwrap()
                .unwrap();
            let t = b.len();
            for (r, row) in rs.iter().enumerate() {
                let off = if side == Padding::Left {
                    t - row.len()
                } else {
                    0
                };
                let mut alone = Capture::new((0..n).map(Site::ResidPost));
                let want = m
                    .forward(
                        &Batch::single(row).unwrap(),
                        &mut [&mut alone as &mut dyn Hook],
                        Logits::All,
                        None,
                    )
                    .unwrap()
                    .unwrap();
                let got = logits.i(r).unwrap().narrow(0, off, row.len()).unwrap();
                let e = rel_err(&got, &want.i(0).unwrap());
                assert!(
                    e < 1e-5,
                    "{name} {side:?} row {r}: logits relative error {e:.2e}"
                );
                for l in 0..n {
                    let got = cap
                        .get(Site::ResidPost(l))
                        .unwrap()
                        .i(r)
                        .unwrap()
                        .narrow(0, off, row.len())
                        .unwrap();
                    let e = rel_err(&got, &alone.get(Site::ResidPost(l)).unwrap().i(0).unwrap());
                    assert!(
                        e < 1e-5,
                        "{name} {side:?} row {r} layer {l}: relative error {e:.2e}"
                    );
                }
            }
        }
    }
}

#[test]
fn kv_cache_generation_equals_recomputation() {
    for name in TINY {
        let c = load(name);
        let m = &c.model;
        let rs = rows(name);
        let got = m.generate(&rs, 6, &[], &mut []).unwrap();
        for (r, row) in rs.iter().enumerate() {
            let mut seq = row.clone();
            for _ in 0..6 {
                let logits = m
                    .forward(&Batch::single(&seq).unwrap(), &mut [], Logits::Last, None)
                    .unwrap()
                    .unwrap();
                seq.push(pretrace_model::argmax_rows(&logits).unwrap()[0]);
            }
            assert_eq!(got[r], seq[row.len()..].to_vec(), "{name}: row {r}");
        }
        // Logits of a cached step equal those of the full sequence.
        let mut cache = KvCache::new();
        let row = &rs[0];
        m.forward(
            &Batch::single(&row[..row.len() - 1]).unwrap(),
            &mut [],
            Logits::Last,
            Some(&mut cache),
        )
        .unwrap();
        let step = m
            .forward(
                &Batch::single(&row[row.len() - 1..]).unwrap(),
                &mut [],
                Logits::Last,
                Some(&mut cache),
            )
            .unwrap()
            .unwrap();
        let full = m
            .forward(&Batch::single(row).unwrap(), &mut [], Logits::Last, None)
            .unwrap()
            .unwrap();
        let e = rel_err(&step, &full);
        assert!(
            e < 1e-5,
            "{name}: cached step logits relative error {e:.2e}"
        );
    }
}

#[test]
fn early_stop_equals_full_run_and_skips_later_blocks() {
    for name in TINY {
        let c = load(name);
        let b = Batch::pad(&rows(name), Padding::Right, 0).unwrap();
        let mut full = Capture::new([Site::ResidPost(1)]);
        c.model
            .forward(&b, &mut [&mut full as &mut dyn Hook], Logits::All, None)
            .unwrap();
        let mut early = Capture::new([Site::ResidPost(1)]);
        let mut seen = Seen(Vec::new(), Some(Site::ResidPost(1)));
        let out = c
            .model
            .forward(
                &b,
                &mut [&mut early as &mut dyn Hook, &mut seen],
                Logits::None,
                None,
            )
            .unwrap();
        assert!(
            out.is_none(),
            "{name}: logits computed without being asked for"
        );
        assert_eq!(
            bits(full.get(Site::ResidPost(1)).unwrap()),
            bits(early.get(Site::ResidPost(1)).unwrap()),
            "{name}"
        );
        assert_eq!(
            seen.0.last(),
            Some(&Site::ResidPost(1)),
            "{name}: sites after the last needed one fired: {:?}",
            seen.0
        );
    }
}

#[test]
fn capture_of_a_site_that_never_fired_is_an_error() {
    let c = load("neox_parallel");
    let mut cap = Capture::new([Site::ResidMid(0)]);
    c.model
        .forward(
            &Batch::single(&[5, 6, 7]).unwrap(),
            &mut [&mut cap as &mut dyn Hook],
            Logits::All,
            None,
        )
        .unwrap();
    let err = cap.get(Site::ResidMid(0)).unwrap_err().to_string();
    assert!(err.contains("never fired"), "{err}");
    assert!(cap.check_complete().is_err());
}

#[test]
fn steering_touches_only_chosen_positions_and_never_padding() {
    let c = load("llama_gqa");
    let m = &c.model;
    let rs = rows("llama_gqa");
    let d = m.config.d_model;
    let v = Tensor::ones(d, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let b = Batch::pad(&rs, Padding::Left, 0).unwrap();
    let site = Site::ResidPost(0);
    let mut before = Capture::new([site]);
    m.forward(&b, &mut [&mut before as &mut dyn Hook], Logits::None, None)
        .unwrap();
    let mut add = AddVector {
        site,
        vector: v,
        alpha: 2.0,
        positions: Positions::Last,
    };
    let mut after = Capture::new([site]);
    m.forward(
        &b,
        &mut [&mut add as &mut dyn Hook, &mut after],
        Logits::None,
        None,
    )
    .unwrap();
    let diff = (after.get(site).unwrap() - before.get(site).unwrap()).unwrap();
    let t = b.len();
    for r in 0..rs.len() {
        for j in 0..t {
            let delta: Vec<f32> = diff.i((r, j)).unwrap().to_vec1().unwrap();
            let want = if j == t - 1 { 2.0 } else { 0.0 };
            assert!(
                delta.iter().all(|&x| (x - want).abs() < 1e-5),
                "row {r} pos {j}: {:?}",
                &delta[..3]
            );
        }
    }
}

#[test]
fn bf16_compute_tracks_f32() {
    use pretrace_model::{LoadOptions, Model};
    for name in ["llama_gqa", "neox_parallel", "gpt2"] {
        let f32m = load(name);
        let bf = Model::load(
            &golden(name),
            &LoadOptions {
                dtype: candle_core::DType::BF16,
                device: candle_core::Device::Cpu,
                tokenizer: None,
            },
        )
        .unwrap();
        assert_eq!(bf.model.dtype, candle_core::DType::BF16);
        let ids = rows(name)[0].clone();
        let a = f32m
            .model
            .forward(&Batch::single(&ids).unwrap(), &mut [], Logits::All, None)
            .unwrap()
            .unwrap();
        let b = bf
            .model
            .forward(&Batch::single(&ids).unwrap(), &mut [], Logits::All, None)
            .unwrap()
            .unwrap();
        let e = rel_err(&b, &a);
        // bf16 keeps 8 bits of mantissa: a few percent of relative error is expected, not more.
        assert!(
            e > 0.0 && e < 5e-2,
            "{name}: bf16 logits relative error {e:.3e}"
        );
    }
}
