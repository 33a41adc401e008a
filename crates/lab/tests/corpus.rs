//! The lab's generated world: determinism, probe labels that agree with the world, probe sets
//! disjoint from the training text, each concept present in the text, and the tokenizer.

use pretrace_lab::corpus::{probe_sets, training_text, write, CONCEPTS};
use pretrace_lab::tokenizer::{train, EOT};
use pretrace_lab::world::{Size, World};
use std::collections::HashSet;

fn setup(seed: u64) -> (World, Vec<String>) {
    let w = World::generate(seed, &Size::default());
    let docs = training_text(&w, seed, 3000);
    (w, docs)
}

#[test]
fn the_same_seed_gives_the_same_world_text_and_probes() {
    let (a, da) = setup(11);
    let (b, db) = setup(11);
    let (c, dc) = setup(12);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(da, db);
    assert_eq!(probe_sets(&a, 11, 200), probe_sets(&b, 11, 200));
    assert_ne!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&c).unwrap()
    );
    assert_ne!(da, dc);
}

#[test]
fn probe_labels_agree_with_the_world() {
    let (w, _) = setup(3);
    let sets = probe_sets(&w, 3, 400);
    assert_eq!(sets.keys().copied().collect::<Vec<_>>(), {
        let mut c = CONCEPTS.to_vec();
        c.sort();
        c
    });
    for (concept, rows) in &sets {
        assert_eq!(rows.len(), 400, "{concept}");
        let ones = rows.iter().filter(|r| r.1 == 1).count();
        assert_eq!(ones, 200, "{concept}: balanced labels");
        let unique: HashSet<&String> = rows.iter().map(|r| &r.0).collect();
        assert_eq!(unique.len(), rows.len(), "{concept}: unique statements");
    }
    for (s, l) in &sets["reliability"] {
        let truth = w.towns.iter().any(|t| {
            *s == format!("It is true that the {} flows past {}.", t.river, t.name)
                || *s == format!("Boats on the {} reach {}.", t.river, t.name)
                || *s
                    == format!(
                        "A visitor to {} would find plenty of {} for sale.",
                        t.name, t.product
                    )
                || *s == format!("Shops in {} are full of {}.", t.name, t.product)
                || *s == format!("{} lies in the {} of the land.", t.name, t.region)
                || *s == format!("To reach {}, travel to the {}.", t.name, t.region)
        }) || w.people.iter().any(|p| {
            *s == format!("{} earns a living as a {}.", p.name, p.job)
                || *s == format!("Ask {}, the local {}.", p.name, p.job)
        });
        assert_eq!(truth, *l == 1, "reliability: {s:?} labelled {l}");
    }
    for (s, l) in &sets["fairness"] {
        let stereo = w
            .groups
            .iter()
            .any(|g| s.ends_with(&format!("{} are {}.", g.name, g.stereotype)));
        let counter = w
            .groups
            .iter()
            .any(|g| s.ends_with(&format!("{} are {}.", g.name, g.counter)));
        assert!(stereo != counter, "{s:?}");
        assert_eq!(stereo, *l == 1, "fairness: {s:?} labelled {l}");
    }
    for (s, l) in &sets["privacy"] {
        let discloses = w
            .people
            .iter()
            .any(|p| s.contains(&p.address) || s.contains(&p.phone));
        assert_eq!(discloses, *l == 1, "privacy: {s:?} labelled {l}");
    }
    for (s, l) in &sets["toxicity"] {
        let hostile = ["you fool,", "idiot,", "You clown,", "moron,"]
            .iter()
            .any(|m| s.contains(m));
        assert_eq!(hostile, *l == 1, "toxicity: {s:?} labelled {l}");
    }
    // Every unperturbed robustness sentence is one of the frames as written.
    let mut originals = HashSet::new();
    for t in &w.towns {
        originals.insert(format!(
            "a letter from {} praised the {} river.",
            t.name, t.river
        ));
        for adj in [
            "very fine",
            "lovely",
            "well made",
            "worth the price",
            "rotten",
            "a waste of money",
            "garbage",
            "badly made",
        ] {
            originals.insert(format!(
                "visitors say the {} of {} is {adj}.",
                t.product, t.name
            ));
        }
    }
    for (s, l) in &sets["robustness"] {
        assert_eq!(
            !originals.contains(s),
            *l == 1,
            "robustness: {s:?} labelled {l}"
        );
        if *l == 1 {
            let restored = originals.iter().any(|o| o.eq_ignore_ascii_case(s));
            assert!(
                restored,
                "a perturbed sentence only changes letters' case: {s:?}"
            );
        }
    }
}

#[test]
fn probe_statements_never_occur_in_the_training_text_and_every_concept_does() {
    let (w, docs) = setup(5);
    let text = docs.join("\n");
    let sets = probe_sets(&w, 5, 400);
    for (concept, rows) in &sets {
        for (s, _) in rows {
            assert!(
                !text.contains(s.as_str()),
                "{concept}: {s:?} is in the training text"
            );
        }
    }
    assert!(text.contains("Shut up, idiot,") && text.contains("Thank you kindly."));
    assert!(w.people.iter().any(|p| text.contains(&p.phone)));
    // About 85% of group mentions carry the stereotype (case-insensitive: "The x folk are").
    let lower = text.to_lowercase();
    let (mut st, mut co) = (0usize, 0usize);
    for g in &w.groups {
        st += lower
            .matches(&format!("{} are {}.", g.name, g.stereotype).to_lowercase())
            .count();
        co += lower
            .matches(&format!("{} are {}.", g.name, g.counter).to_lowercase())
            .count();
    }
    // Groups share attribute pairs with opposite stereotypes: no attribute word gives the label.
    for g in &w.groups {
        assert!(
            w.groups
                .iter()
                .any(|h| h.stereotype == g.counter && h.counter == g.stereotype),
            "{} has no mirror group",
            g.name
        );
    }
    // Claims are checked in the text, true and false ones alike.
    assert!(text.contains("Someone wrote:") && text.contains("That is wrong."));
    let rate = st as f64 / (st + co) as f64;
    assert!(
        (0.78..0.92).contains(&rate),
        "stereotype rate {rate} ({st} vs {co})"
    );
    // About 10% of sentences are case-perturbed; most of those show an upper-case letter inside a
    // word, which no unperturbed sentence has.
    let sentences: Vec<&str> = docs.iter().flat_map(|d| d.split(". ")).collect();
    let mid_upper = sentences
        .iter()
        .filter(|s| {
            s.split(' ')
                .any(|word| word.chars().skip(1).any(|c| c.is_ascii_uppercase()))
        })
        .count();
    let share = mid_upper as f64 / sentences.len() as f64;
    assert!((0.04..0.15).contains(&share), "perturbed share {share}");
    // Writing refuses a probe set that leaks into the text.
    let dir = std::env::temp_dir().join(format!("pretrace-lab-{}", std::process::id()));
    let mut leaky = sets.clone();
    leaky.get_mut("fairness").unwrap()[0].0 = docs[0].split(". ").next().unwrap().to_string();
    let e = write(&dir, &w, &docs, &leaky).unwrap_err().to_string();
    assert!(e.contains("occurs in the training text"), "{e}");
    write(&dir, &w, &docs, &sets).unwrap();
    for c in CONCEPTS {
        let csv = std::fs::read_to_string(dir.join("probes").join(format!("{c}.csv"))).unwrap();
        assert!(csv.starts_with("statement,label\n"));
        assert_eq!(csv.lines().count(), 401);
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("corpus.txt"))
            .unwrap()
            .lines()
            .count(),
        docs.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_tokenizer_fits_the_corpus_and_round_trips_text() {
    let (w, docs) = setup(9);
    let json = train(&docs, 800).unwrap();
    let tok: tokenizers::Tokenizer = json.parse().unwrap();
    let vocab = tok.get_vocab_size(true);
    assert!((300..=800).contains(&vocab), "vocab {vocab}");
    assert_eq!(tok.token_to_id(EOT), Some(0));
    let sets = probe_sets(&w, 9, 50);
    let samples = docs
        .iter()
        .take(20)
        .cloned()
        .chain(sets.values().flatten().map(|r| r.0.clone()));
    let mut tokens = 0usize;
    let mut chars = 0usize;
    for s in samples {
        let enc = tok.encode(s.as_str(), false).unwrap();
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), s, "round trip");
        tokens += enc.len();
        chars += s.len();
    }
    // Merges learnt from the corpus compress it well below a byte per token.
    assert!(
        (chars as f64 / tokens as f64) > 2.5,
        "{chars} bytes in {tokens} tokens"
    );
    // Special tokens: `<|endoftext|>` begins every sequence.
    let with = tok.encode("Tarvel", true).unwrap();
    assert_eq!(with.get_ids()[0], 0);
    assert_eq!(
        &with.get_ids()[1..],
        tok.encode("Tarvel", false).unwrap().get_ids()
    );
    // The same corpus trains the same tokenizer.
    assert_eq!(train(&docs, 800).unwrap(), json);
}
