//! `bench-hub-sweep`: a sweep of checkpoints from the hub under a disk budget, against its two
//! halves run alone, on the same machine in one run.
//!
//! `bench-hub-sweep --pretrace BIN --work DIR --text FILE [--checkpoints 8] [--rate MB/s]
//! [--rounds 3] [--rows 240] [--d-model 512] [--layers 8]`
//!
//! It writes N distinct LLaMA checkpoints (random weights, one seed each, a BPE tokenizer trained
//! on FILE), serves them from a local stand-in for the hub on 127.0.0.1 as branches `step0`,
//! `step1000`, … of one repository, with file bodies throttled to RATE, and in every round
//! measures:
//! - **download**: every checkpoint fetched into an empty cache one after another, through the
//!   same client `pretrace extract` uses (`pretrace_hub::Hub::fetch`), nothing else running;
//! - **extraction**: `pretrace extract --checkpoints hf:bench/suite --revisions 'step*'` on that
//!   full cache with `HF_HUB_OFFLINE=1` (process wall time: resolving, loading, forward passes,
//!   writing the store);
//! - **sweep**: the same command from an empty cache, online, with `--cache-budget` = two
//!   checkpoints, while a thread measures the cache folder's size every 20 ms (regular files,
//!   partial downloads included; links not counted).
//!
//! The sweep's store must equal the offline one byte for byte (activations). Printed per round
//! and as medians: the three times, sweep / max(download, extraction) and peak disk / budget.

use anyhow::{bail, Context, Result};
use candle_core::DType;
use pretrace_hub::fake::{FakeHub, FakeRepo};
use pretrace_hub::{Cache, ClientOptions, Hub, HubRef};
use pretrace_lab::train::{Arch, Params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPO: &str = "bench/suite";

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Bytes of the regular files under `dir` (symbolic links not followed, not counted).
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in rd.flatten() {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if m.is_dir() {
            total += disk_bytes(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

/// CPU seconds of this process and of its waited-for children (`/proc/self/stat`).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0;
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    // utime, stime, cutime, cstime are fields 14-17 of the line, 12-15 after the name.
    (at(11) + at(12), at(13) + at(14))
}

/// The activations of every entry of a store, by `CHECKPOINT/DATASET`.
fn activations(store: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for ck in std::fs::read_dir(store)?.flatten() {
        if !ck.path().is_dir() {
            continue;
        }
        for ds in std::fs::read_dir(ck.path())?.flatten() {
            let f = ds.path().join("activations.safetensors");
            if f.is_file() {
                out.insert(
                    format!(
                        "{}/{}",
                        ck.file_name().to_string_lossy(),
                        ds.file_name().to_string_lossy()
                    ),
                    std::fs::read(&f)?,
                );
            }
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |k: &str, d: f64| -> Result<f64> {
        get(k).map_or(Ok(d), |v| {
            v.parse::<f64>()
                .with_context(|| format!("{k} {v}: not a number"))
        })
    };
    let pretrace = PathBuf::from(get("--pretrace").context("--pretrace BIN is required")?);
    let work = PathBuf::from(get("--work").context("--work DIR is required")?);
    let text = PathBuf::from(get("--text").context("--text FILE is required")?);
    let n_ckpt = num("--checkpoints", 8.0)? as usize;
    let rate_mb = num("--rate", 40.0)?;
    let rounds = num("--rounds", 3.0)? as usize;
    let rows = num("--rows", 240.0)? as usize;
    let d_model = num("--d-model", 512.0)? as usize;
    let layers = num("--layers", 8.0)? as usize;
    if n_ckpt < 2 || rounds == 0 || rows < 4 || rate_mb <= 0.0 {
        bail!("give at least 2 checkpoints, 1 round, 4 rows and a positive rate");
    }

    // Checkpoints and rows.
    let source = std::fs::read_to_string(&text)
        .with_context(|| format!("{}: cannot read", text.display()))?;
    let words: Vec<&str> = source.split_whitespace().collect();
    if words.len() < 24 {
        bail!("{}: needs some text (at least 24 words)", text.display());
    }
    let sentences: Vec<String> = (0..rows)
        .map(|i| {
            let len = 8 + i % 9;
            let start = (i * 13) % (words.len() - len);
            words[start..start + len].join(" ")
        })
        .collect();
    let ckpts = work.join("checkpoints");
    let names: Vec<String> = (0..n_ckpt).map(|k| format!("step{}", k * 1000)).collect();
    let tok_json = pretrace_lab::tokenizer::train(&sentences, 512)?;
    let tok: tokenizers::Tokenizer = tok_json
        .parse()
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    let arch = Arch {
        d_model,
        n_layers: layers,
        n_heads: 8,
        n_kv_heads: 8,
        d_mlp: d_model * 11 / 4,
        vocab_size: tok.get_vocab_size(true),
        max_positions: 256,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
    };
    for (k, name) in names.iter().enumerate() {
        let dir = ckpts.join(name);
        if !dir.join("model.safetensors").is_file() {
            Params::init(&arch, 1000 + k as u64, DType::F32)?.save(&dir, &tok_json, 0, 0, &[])?;
        }
    }
    let data = work.join("rows.csv");
    let mut csv = String::from("statement,label\n");
    for (i, s) in sentences.iter().enumerate() {
        csv.push_str(&format!("\"{}\",{}\n", s.replace('"', "\"\""), i % 2));
    }
    std::fs::write(&data, csv)?;

    // The hub.
    let mut repo = FakeRepo::default();
    let mut last = String::new();
    for name in &names {
        last = repo.add_folder(name, &ckpts.join(name))?;
    }
    repo.branches.push(("main".into(), last));
    let ckpt_bytes = disk_bytes(&ckpts.join(&names[0]));
    let hub = FakeHub::start(BTreeMap::from([(REPO.to_string(), repo)]))?;
    let rate = (rate_mb * 1e6) as u64;
    hub.faults.bytes_per_sec.store(rate, Ordering::SeqCst);
    let budget = 2 * ckpt_bytes;
    let tokens: usize = sentences
        .iter()
        .map(|s| tok.encode(s.as_str(), true).map_or(0, |e| e.len()))
        .sum();
    eprintln!(
        "{n_ckpt} checkpoints of {:.1} MB (LLaMA, d_model {d_model}, {layers} layers, vocabulary {}), {rows} rows ({tokens} tokens), served at {rate_mb} MB/s, budget {:.1} MB (two checkpoints)",
        ckpt_bytes as f64 / 1e6,
        arch.vocab_size,
        budget as f64 / 1e6
    );

    let run = |cache: &Path, online: bool, out: &Path, budget: Option<u64>| -> Result<f64> {
        let mut c = Command::new(&pretrace);
        c.args(["extract", "--checkpoints", &format!("hf:{REPO}")])
            .args(["--revisions", "step*", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .env("HF_HUB_CACHE", cache)
            .env("HF_HOME", cache.join("home"))
            .env_remove("HF_TOKEN");
        if let Some(b) = budget {
            c.args(["--cache-budget", &b.to_string()]);
        }
        if online {
            c.env("HF_ENDPOINT", hub.endpoint())
                .env_remove("HF_HUB_OFFLINE");
        } else {
            c.env("HF_HUB_OFFLINE", "1");
        }
        let t = Instant::now();
        if std::env::var_os("BENCH_TRACE").is_some() {
            // Each line pretrace writes, with the seconds since the command started.
            use std::io::BufRead;
            let mut child = c.stderr(std::process::Stdio::piped()).spawn()?;
            let err = child.stderr.take().context("no stderr")?;
            for line in std::io::BufReader::new(err)
                .split(b'\n')
                .map_while(|l| l.ok())
            {
                for part in String::from_utf8_lossy(&line).split('\r') {
                    if !part.trim().is_empty() {
                        eprintln!("[{:7.2}] {}", t.elapsed().as_secs_f64(), part.trim_end());
                    }
                }
            }
            let status = child.wait()?;
            if !status.success() {
                bail!("pretrace extract failed");
            }
            return Ok(t.elapsed().as_secs_f64());
        }
        let o = c.output()?;
        let secs = t.elapsed().as_secs_f64();
        if !o.status.success() {
            bail!(
                "pretrace extract failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(secs)
    };

    let (mut dl, mut ex, mut sw, mut peaks) = (vec![], vec![], vec![], vec![]);
    println!(
        "| round | download s | extraction s | sweep s | sweep / max | peak disk MB | budget MB | CPU s: extraction alone / sweep's pretrace / bench process during the sweep |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in 0..rounds {
        let round = work.join(format!("round{r}"));
        if round.exists() {
            std::fs::remove_dir_all(&round)?;
        }
        // Download alone.
        let cache = round.join("cache-full");
        let h = Hub::new(
            Cache::new(&cache),
            false,
            ClientOptions {
                endpoint: hub.endpoint(),
                token: None,
                timeout: Duration::from_secs(30),
            },
        );
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        let (suite, _) = h.resolve_suite(&HubRef::parse(&format!("hf:{REPO}"))?, Some("step*"))?;
        if suite.len() != n_ckpt {
            bail!("the hub resolved {} checkpoints, not {n_ckpt}", suite.len());
        }
        for ck in &suite {
            let plan = h.plan(ck)?;
            h.fetch(ck, &plan, &mut |_| {})?;
        }
        let d = t.elapsed().as_secs_f64();
        // Extraction alone, from the full cache.
        std::thread::sleep(Duration::from_secs(1));
        let c0 = cpu_seconds();
        let e = run(&cache, false, &round.join("store-offline"), None)?;
        let c1 = cpu_seconds();
        // The sweep under the budget, from an empty cache.
        let cache2 = round.join("cache-sweep");
        std::fs::create_dir_all(&cache2)?;
        std::thread::sleep(Duration::from_secs(1));
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let watcher = {
            let (stop, peak, dir) = (stop.clone(), peak.clone(), cache2.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    peak.fetch_max(disk_bytes(&dir), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let c2 = cpu_seconds();
        let w = run(&cache2, true, &round.join("store-sweep"), Some(budget));
        let c3 = cpu_seconds();
        stop.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        let w = w?;
        let p = peak.load(Ordering::SeqCst);
        let a = activations(&round.join("store-offline"))?;
        if a.len() != n_ckpt || a != activations(&round.join("store-sweep"))? {
            bail!("the sweep's store differs from the offline one");
        }
        println!(
            "| {} | {d:.2} | {e:.2} | {w:.2} | {:.3} | {:.1} | {:.1} | {:.1} / {:.1} / {:.1} |",
            r + 1,
            w / d.max(e),
            p as f64 / 1e6,
            budget as f64 / 1e6,
            c1.1 - c0.1,
            c3.1 - c2.1,
            c3.0 - c2.0
        );
        dl.push(d);
        ex.push(e);
        sw.push(w);
        peaks.push(p as f64);
        std::fs::remove_dir_all(&round)?;
    }
    let ratios: Vec<f64> = (0..rounds).map(|i| sw[i] / dl[i].max(ex[i])).collect();
    let worst_peak = peaks.iter().cloned().fold(0.0, f64::max);
    println!();
    println!(
        "medians of {rounds}: download {:.2} s, extraction {:.2} s, sweep {:.2} s; sweep / max(download, extraction) = {:.3} (median of rounds; largest {:.3}); peak disk {:.1} MB of a {:.1} MB budget (largest over rounds: {:.0}%)",
        median(&dl),
        median(&ex),
        median(&sw),
        median(&ratios),
        ratios.iter().cloned().fold(0.0, f64::max),
        median(&peaks) / 1e6,
        budget as f64 / 1e6,
        100.0 * worst_peak / budget as f64
    );
    Ok(())
}
