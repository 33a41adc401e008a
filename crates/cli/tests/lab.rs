//! `pretrace lab corpus`: the files it writes, that they load as a dataset and a tokenizer, and
//! bad input.

mod run;
use run::{fails, ok, s};

#[test]
fn writes_corpus_probes_world_and_tokenizer() {
    let dir = run::scratch("lab", "corpus");
    // The same seed writes the same files: written twice below.
    let corpus = |out: &std::path::Path| {
        ok(&[
            "lab",
            "corpus",
            "--out",
            s(out),
            "--docs",
            "400",
            "--probe-rows",
            "40",
            "--vocab",
            "500",
            "--seed",
            "4",
        ])
    };
    let out = dir.join("lab");
    let err = corpus(&out);
    assert!(err.contains("400 documents"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("corpus.txt"))
            .unwrap()
            .lines()
            .count(),
        400
    );
    for c in [
        "reliability",
        "toxicity",
        "privacy",
        "fairness",
        "robustness",
    ] {
        let ds = pretrace_data::Dataset::read(
            &out.join("probes").join(format!("{c}.csv")),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(ds.rows.len(), 40, "{c}");
        assert_eq!(
            ds.rows.iter().filter(|r| r.label == Some(1)).count(),
            20,
            "{c}"
        );
    }
    let tok = pretrace_model::Tokenizer::from_file(&out.join("tokenizer.json")).unwrap();
    // Without special tokens the text round-trips; with them, `<|endoftext|>` (id 0) begins it.
    let ids = tok
        .encode_with("Shops in Tarn are full of salt.", false)
        .unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "Shops in Tarn are full of salt.");
    let with = tok.encode("Shops in Tarn are full of salt.").unwrap();
    assert_eq!(with[0], 0);
    assert_eq!(&with[1..], &ids[..]);
    let world: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("world.json")).unwrap()).unwrap();
    assert_eq!(world["towns"].as_array().unwrap().len(), 16);
    let again = dir.join("again");
    corpus(&again);
    for f in [
        "corpus.txt",
        "world.json",
        "tokenizer.json",
        "probes/privacy.csv",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f}"
        );
    }
    let e = fails(&[
        "lab",
        "corpus",
        "--out",
        s(&dir.join("big")),
        "--docs",
        "10",
        "--probe-rows",
        "5000",
    ]);
    assert!(e.contains("distinct statements"), "{e}");
}
