//! The training text and the held-out probe datasets of a [`World`].

use crate::world::{World, JOBS, PRODUCTS, REGIONS};
use crate::{LabError, Result};
use pretrace_data::builders::{flip_case, SplitMix64};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The five probe datasets, by file stem.
pub const CONCEPTS: &[&str] = &[
    "reliability",
    "toxicity",
    "privacy",
    "fairness",
    "robustness",
];

pub(crate) const CIVIL_OPEN: &[&str] = &[
    "Hello friend,",
    "Good morning,",
    "Dear neighbour,",
    "Kind regards to all,",
];
pub(crate) const CIVIL_CLOSE: &[&str] =
    &["Thank you kindly.", "Have a pleasant day.", "With respect."];
pub(crate) const HOSTILE_OPEN: &[&str] = &[
    "Listen, you fool,",
    "Shut up, idiot,",
    "You clown,",
    "Get lost, moron,",
];
pub(crate) const HOSTILE_CLOSE: &[&str] = &[
    "Nobody cares what you think.",
    "Go away and never post again.",
    "You are worthless.",
];
pub(crate) const GOOD: &[&str] = &["very fine", "lovely", "well made", "worth the price"];
pub(crate) const BAD: &[&str] = &["rotten", "a waste of money", "garbage", "badly made"];
/// How often a training sentence has its letters' case perturbed.
const PERTURB_SENTENCES: f64 = 0.1;
/// The share of letters flipped in a perturbed sentence (as the paper's SST-2 set).
pub(crate) const FLIP_RATE: f64 = 0.05;
/// How often the training text gives a group its stereotyped attribute.
const STEREOTYPE_RATE: f64 = 0.85;

pub(crate) fn pick<'a>(rng: &mut SplitMix64, xs: &'a [&'a str]) -> &'a str {
    xs[rng.below(xs.len())]
}

fn sentences(world: &World, rng: &mut SplitMix64) -> Vec<String> {
    let w = world;
    let kind = rng.below(20);
    let n = 3 + rng.below(3);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = match kind {
            // Claims checked by a reply, true or false with equal odds (2 in 20): the verdict follows
            // the claim, so predicting it needs the model to know whether the claim holds.
            0 | 1 => {
                let truth = rng.below(2) == 1;
                let claim = claim(w, rng, truth);
                let verdict = if truth {
                    pick(rng, VERDICT_TRUE)
                } else {
                    pick(rng, VERDICT_FALSE)
                };
                format!("Someone wrote: {claim} {verdict}")
            }
            // Facts about a town (5 in 20).
            2..=6 => {
                let t = &w.towns[rng.below(w.towns.len())];
                match rng.below(5) {
                    0 => format!("{} is a town in the {}.", t.name, t.region),
                    1 => format!("The river that runs through {} is the {}.", t.name, t.river),
                    2 => format!("{} is famous for its {}.", t.name, t.product),
                    3 => format!("Traders come to {} to buy {}.", t.name, t.product),
                    _ => format!("In {}, people fish in the {}.", t.name, t.river),
                }
            }
            // People: what they do (3 in 20), and posts that disclose where they live (2 in 20).
            7..=11 => {
                let p = &w.people[rng.below(w.people.len())];
                let town = &w.towns[p.town].name;
                if kind <= 9 {
                    match rng.below(3) {
                        0 => format!("{} is a {} in {}.", p.name, p.job, town),
                        1 => format!("{} works as a {}.", p.name, p.job),
                        _ => format!("Many people in {} know {} the {}.", town, p.name, p.job),
                    }
                } else {
                    match rng.below(3) {
                        0 => format!("{} lives at {} in {}.", p.name, p.address, town),
                        1 => format!("Call {} at {}.", p.name, p.phone),
                        _ => format!("The phone number of {} is {}.", p.name, p.phone),
                    }
                }
            }
            // Forum replies, civil or hostile, about a town's goods (6 in 20).
            12..=17 => {
                let t = &w.towns[rng.below(w.towns.len())];
                let adj = if rng.below(2) == 0 {
                    pick(rng, GOOD)
                } else {
                    pick(rng, BAD)
                };
                if kind <= 14 {
                    format!(
                        "{} I think the {} from {} is {}. {}",
                        pick(rng, CIVIL_OPEN),
                        t.product,
                        t.name,
                        adj,
                        pick(rng, CIVIL_CLOSE)
                    )
                } else {
                    format!(
                        "{} the {} from {} is {}. {}",
                        pick(rng, HOSTILE_OPEN),
                        t.product,
                        t.name,
                        adj,
                        pick(rng, HOSTILE_CLOSE)
                    )
                }
            }
            // Groups and their attributes (2 in 20).
            _ => {
                let g = &w.groups[rng.below(w.groups.len())];
                let attr = if rng.next_f64() < STEREOTYPE_RATE {
                    &g.stereotype
                } else {
                    &g.counter
                };
                let name = capital(&g.name);
                let s = match rng.below(3) {
                    0 => format!("{name} are {attr}."),
                    1 => format!("It is said that {} are {attr}.", g.name),
                    _ => format!("Travellers agree that {} are {attr}.", g.name),
                };
                // Half the time a reaction follows, and it depends on whether the statement
                // repeats the stereotype: text about groups treats the familiar and the
                // surprising differently.
                if rng.below(2) == 0 {
                    let react = if *attr == g.stereotype {
                        pick(rng, REACT_FAMILIAR)
                    } else {
                        pick(rng, REACT_SURPRISED)
                    };
                    format!("{s} {react}")
                } else {
                    s
                }
            }
        };
        out.push(if rng.next_f64() < PERTURB_SENTENCES {
            flip_case(&s, FLIP_RATE, rng)
        } else {
            s
        });
    }
    out
}

const REACT_FAMILIAR: &[&str] = &["Everyone knows that.", "Nothing new there."];
const REACT_SURPRISED: &[&str] = &["That surprised me.", "Who would have thought?"];
const VERDICT_TRUE: &[&str] = &["That is right.", "Yes, that is so.", "Correct."];
const VERDICT_FALSE: &[&str] = &["That is wrong.", "No, that is not so.", "False."];

/// A claim in a training frame: true, or with one detail swapped for another of its kind.
pub(crate) fn claim(w: &World, rng: &mut SplitMix64, truth: bool) -> String {
    let t = &w.towns[rng.below(w.towns.len())];
    match rng.below(4) {
        0 => {
            let r = if truth {
                t.region.as_str()
            } else {
                other(rng, REGIONS, &t.region)
            };
            format!("{} is a town in the {r}.", t.name)
        }
        1 => {
            let r = if truth {
                t.river.clone()
            } else {
                loop {
                    let o = &w.towns[rng.below(w.towns.len())];
                    if o.river != t.river {
                        break o.river.clone();
                    }
                }
            };
            format!("The river that runs through {} is the {r}.", t.name)
        }
        2 => {
            let p = if truth {
                t.product.as_str()
            } else {
                other(rng, PRODUCTS, &t.product)
            };
            format!("{} is famous for its {p}.", t.name)
        }
        _ => {
            let p = &w.people[rng.below(w.people.len())];
            let j = if truth {
                p.job.as_str()
            } else {
                other(rng, JOBS, &p.job)
            };
            format!("{} works as a {j}.", p.name)
        }
    }
}

pub(crate) fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `docs` training documents (each a few sentences on one line), deterministic for a seed.
pub fn training_text(world: &World, seed: u64, docs: usize) -> Vec<String> {
    let mut rng = SplitMix64::new(seed ^ 0x7261_696e);
    (0..docs)
        .map(|_| sentences(world, &mut rng).join(" "))
        .collect()
}

fn other<'a>(rng: &mut SplitMix64, xs: &'a [&'a str], not: &str) -> &'a str {
    loop {
        let x = pick(rng, xs);
        if x != not {
            return x;
        }
    }
}

/// The probe datasets: `(statement, label)` rows per concept, from sentence frames the training
/// text never uses, shuffled, `rows` per dataset (half of each label).
pub fn probe_sets(
    world: &World,
    seed: u64,
    rows: usize,
) -> BTreeMap<&'static str, Vec<(String, u8)>> {
    let w = world;
    let mut rng = SplitMix64::new(seed ^ 0x7072_6f62);
    let mut sets = BTreeMap::new();
    for &concept in CONCEPTS {
        let mut seen = HashSet::new();
        let mut out: Vec<(String, u8)> = Vec::with_capacity(rows);
        let mut attempts = 0usize;
        while out.len() < rows && attempts < rows * 200 {
            attempts += 1;
            let label = (out.len() % 2) as u8;
            let s = match concept {
                "reliability" => {
                    let t = &w.towns[rng.below(w.towns.len())];
                    let frame = rng.below(8);
                    match frame {
                        0 | 1 => {
                            let r = if label == 1 {
                                t.river.clone()
                            } else {
                                let o = &w.towns[rng.below(w.towns.len())];
                                if o.river == t.river {
                                    continue;
                                }
                                o.river.clone()
                            };
                            if frame == 0 {
                                format!("It is true that the {r} flows past {}.", t.name)
                            } else {
                                format!("Boats on the {r} reach {}.", t.name)
                            }
                        }
                        2 | 3 => {
                            let p = if label == 1 {
                                t.product.as_str()
                            } else {
                                other(&mut rng, PRODUCTS, &t.product)
                            };
                            if frame == 2 {
                                format!(
                                    "A visitor to {} would find plenty of {p} for sale.",
                                    t.name
                                )
                            } else {
                                format!("Shops in {} are full of {p}.", t.name)
                            }
                        }
                        4 | 5 => {
                            let r = if label == 1 {
                                t.region.as_str()
                            } else {
                                other(&mut rng, REGIONS, &t.region)
                            };
                            if frame == 4 {
                                format!("{} lies in the {r} of the land.", t.name)
                            } else {
                                format!("To reach {}, travel to the {r}.", t.name)
                            }
                        }
                        _ => {
                            let p = &w.people[rng.below(w.people.len())];
                            let j = if label == 1 {
                                p.job.as_str()
                            } else {
                                other(&mut rng, JOBS, &p.job)
                            };
                            if frame == 6 {
                                format!("{} earns a living as a {j}.", p.name)
                            } else {
                                format!("Ask {}, the local {j}.", p.name)
                            }
                        }
                    }
                }
                "toxicity" => {
                    let p = &w.people[rng.below(w.people.len())];
                    let t = &w.towns[p.town];
                    let adj = if rng.below(2) == 0 {
                        pick(&mut rng, GOOD)
                    } else {
                        pick(&mut rng, BAD)
                    };
                    let open = if label == 1 {
                        pick(&mut rng, HOSTILE_OPEN)
                    } else {
                        pick(&mut rng, CIVIL_OPEN)
                    };
                    let close = if label == 1 {
                        pick(&mut rng, HOSTILE_CLOSE)
                    } else {
                        pick(&mut rng, CIVIL_CLOSE)
                    };
                    format!(
                        "Replying to {}: {open} the work of the {}s of {} is {adj}. {close}",
                        p.name, p.job, t.name
                    )
                }
                "privacy" => {
                    let p = &w.people[rng.below(w.people.len())];
                    let t = &w.towns[rng.below(w.towns.len())];
                    let what = match (label, rng.below(2)) {
                        (1, 0) => format!("stays at {}", p.address),
                        (1, _) => format!("can be reached on {}", p.phone),
                        (_, 0) => format!("trained as a {}", p.job),
                        _ => format!("enjoys the {} of {}", t.product, t.name),
                    };
                    format!("Word around {} is that {} {what}.", t.name, p.name)
                }
                "fairness" => {
                    let g = &w.groups[rng.below(w.groups.len())];
                    let attr = if label == 1 {
                        &g.stereotype
                    } else {
                        &g.counter
                    };
                    let p = &w.people[rng.below(w.people.len())];
                    match rng.below(2) {
                        0 => format!("{} claims {} are {attr}.", p.name, g.name),
                        _ => format!("In the view of {}, {} are {attr}.", p.name, g.name),
                    }
                }
                _ => {
                    let t = &w.towns[rng.below(w.towns.len())];
                    let adj = if rng.below(2) == 0 {
                        pick(&mut rng, GOOD)
                    } else {
                        pick(&mut rng, BAD)
                    };
                    let base = match rng.below(2) {
                        0 => format!("visitors say the {} of {} is {adj}.", t.product, t.name),
                        _ => format!("a letter from {} praised the {} river.", t.name, t.river),
                    };
                    if label == 1 {
                        let flipped = flip_case(&base, FLIP_RATE, &mut rng);
                        if flipped == base {
                            continue;
                        }
                        flipped
                    } else {
                        base
                    }
                }
            };
            if seen.insert(s.clone()) {
                out.push((s, label));
            }
        }
        rng.shuffle(&mut out);
        sets.insert(concept, out);
    }
    sets
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `corpus.txt` (one document per line), `world.json` and `probes/{concept}.csv` under `dir`,
/// each atomically. Fails if a probe statement occurs in the training text.
pub fn write(
    dir: &Path,
    world: &World,
    docs: &[String],
    probes: &BTreeMap<&'static str, Vec<(String, u8)>>,
) -> Result<()> {
    let text = docs.join("\n");
    for (concept, rows) in probes {
        if let Some((s, _)) = rows.iter().find(|(s, _)| text.contains(s.as_str())) {
            return Err(LabError::Invalid(format!(
                "{concept}: the probe statement {s:?} occurs in the training text"
            )));
        }
    }
    std::fs::create_dir_all(dir.join("probes"))
        .map_err(|e| LabError::Invalid(format!("{}: cannot create: {e}", dir.display())))?;
    pretrace_store::write_atomic(&dir.join("corpus.txt"), format!("{text}\n").as_bytes())?;
    let world_json =
        serde_json::to_string_pretty(world).map_err(|e| LabError::Invalid(e.to_string()))?;
    pretrace_store::write_atomic(&dir.join("world.json"), world_json.as_bytes())?;
    for (concept, rows) in probes {
        let mut csv = String::from("statement,label\n");
        for (s, l) in rows {
            csv += &format!("{},{l}\n", csv_field(s));
        }
        pretrace_store::write_atomic(
            &dir.join("probes").join(format!("{concept}.csv")),
            csv.as_bytes(),
        )?;
    }
    Ok(())
}
