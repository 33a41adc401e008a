//! A seeded world: towns with facts, people with jobs and private details, groups with a
//! stereotyped attribute.

use pretrace_data::builders::SplitMix64;
use serde::{Deserialize, Serialize};

/// How big a world to make.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Size {
    pub towns: usize,
    pub people: usize,
    pub groups: usize,
}

impl Default for Size {
    fn default() -> Size {
        Size {
            towns: 24,
            people: 60,
            groups: 6,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Town {
    pub name: String,
    pub river: String,
    pub product: String,
    pub region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub town: usize,
    pub job: String,
    pub address: String,
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    /// The attribute the training text mostly gives the group (the stereotype).
    pub stereotype: String,
    /// The other attribute of the pair.
    pub counter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub seed: u64,
    pub towns: Vec<Town>,
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ven", "tor", "sa", "bel", "dun", "fi", "gar", "hel", "is", "jor",
    "ke", "lun", "mor", "nes", "or", "pel", "qui", "ros", "sil", "tam", "ul", "vor", "wen", "yas",
    "zel", "ba",
];
pub const PRODUCTS: &[&str] = &[
    "salt", "wool", "glass", "copper", "honey", "timber", "silk", "tea", "cheese", "paper", "rope",
    "wine",
];
pub const REGIONS: &[&str] = &["north", "south", "east", "west", "highlands", "coast"];
pub const JOBS: &[&str] = &[
    "baker", "smith", "weaver", "miner", "sailor", "teacher", "healer", "farmer", "scribe",
    "potter",
];
pub const STREETS: &[&str] = &[
    "Oak Lane",
    "Mill Road",
    "Harbor Street",
    "Stone Way",
    "Bell Alley",
    "Cedar Row",
    "Well Street",
    "Gate Road",
];
/// Attribute pairs; a group's stereotype is one side of its pair.
pub const ATTRIBUTES: &[(&str, &str)] = &[
    ("good at sums", "bad at sums"),
    ("quick to anger", "slow to anger"),
    ("honest traders", "dishonest traders"),
    ("skilled sailors", "poor sailors"),
    ("fond of music", "deaf to music"),
    ("early risers", "late sleepers"),
    ("careful builders", "careless builders"),
    ("generous hosts", "stingy hosts"),
];

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Distinct made-up names of 2–3 syllables.
fn names(
    rng: &mut SplitMix64,
    n: usize,
    taken: &mut std::collections::HashSet<String>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let k = 2 + rng.below(2);
        let w: String = (0..k)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
            .collect();
        let w = capitalize(&w);
        if taken.insert(w.clone()) {
            out.push(w);
        }
    }
    out
}

impl World {
    pub fn generate(seed: u64, size: &Size) -> World {
        let mut rng = SplitMix64::new(seed);
        let mut taken = std::collections::HashSet::new();
        let town_names = names(&mut rng, size.towns, &mut taken);
        let rivers = names(&mut rng, size.towns, &mut taken);
        let towns = town_names
            .into_iter()
            .zip(rivers)
            .map(|(name, river)| Town {
                name,
                river,
                product: PRODUCTS[rng.below(PRODUCTS.len())].to_string(),
                region: REGIONS[rng.below(REGIONS.len())].to_string(),
            })
            .collect::<Vec<_>>();
        let first = names(&mut rng, size.people, &mut taken);
        let people = first
            .into_iter()
            .map(|n| Person {
                name: n,
                town: rng.below(size.towns),
                job: JOBS[rng.below(JOBS.len())].to_string(),
                address: format!(
                    "{} {}",
                    1 + rng.below(98),
                    STREETS[rng.below(STREETS.len())]
                ),
                phone: format!("555-{:04}", rng.below(10000)),
            })
            .collect();
        let group_names = names(&mut rng, size.groups, &mut taken);
        let mut pairs: Vec<usize> = (0..ATTRIBUTES.len()).collect();
        rng.shuffle(&mut pairs);
        let orient: Vec<bool> = pairs.iter().map(|_| rng.below(2) == 0).collect();
        let groups = group_names
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                // Groups come in pairs that share one attribute pair with opposite stereotypes, so
                // no attribute word alone tells a stereotyped statement from a counter one: only
                // the group and the attribute together do.
                let (a, b) = ATTRIBUTES[pairs[(i / 2) % pairs.len()]];
                let flip = (i % 2 == 1) != orient[(i / 2) % pairs.len()];
                let (stereotype, counter) = if flip { (b, a) } else { (a, b) };
                Group {
                    name: format!("the {n} folk"),
                    stereotype: stereotype.into(),
                    counter: counter.into(),
                }
            })
            .collect();
        World {
            seed,
            towns,
            people,
            groups,
        }
    }
}
