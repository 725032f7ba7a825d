//! Random values of a Go type, for property tests that hold the encoder to Go's: every field kind, absent and
//! empty values, explicit nulls, unicode, HTML and control characters, quantities in every notation.

use serde_json::{Map, Value, json};

use crate::{Field, Ty};

/// A small deterministic generator (SplitMix64), so that a failing case is reproduced from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const STRINGS: &[&str] = &[
    "",
    "web",
    "nginx:1.27",
    "a<b>&c",
    "ünïcødé 日本",
    "line\nbreak\ttab\r",
    "\u{2028}\u{2029}",
    "\"q\"\\",
    "\u{1}\u{1f}\u{7f}",
    "\u{8}\u{c}",
    "🚀",
    "80",
    "http",
    "/dev/termination-log",
    "Always",
    "x-y.z/w",
];

const QUANTITIES: &[&str] = &[
    "0",
    "1",
    "100m",
    "1.5Gi",
    "0.5",
    "+1",
    "1e3",
    "1E-3",
    "1024Mi",
    "2000m",
    "1k",
    "0.1",
    "-1",
    "1.",
    "007",
    "12345678901234567890",
    "1Ei",
    "123456789n",
    "0.0000000001",
    "500Mi",
    "1.5",
    "2",
    "64Ki",
    "1M",
    "1000",
];

/// Options of the generator.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// How deep structs nest before only absent fields are chosen.
    pub max_depth: usize,
    /// The chance that a struct field is given a value at the top level; it halves at each level.
    pub field_chance: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            max_depth: 7,
            field_chance: 0.5,
        }
    }
}

/// A random JSON value that Go decodes into the type `ty` of `types`.
pub fn value(types: &[Ty], ty: usize, rng: &mut Rng, shape: Shape) -> Value {
    Gen { types, shape }.value(ty, rng, 0)
}

struct Gen<'a> {
    types: &'a [Ty],
    shape: Shape,
}

impl Gen<'_> {
    fn value(&self, ty: usize, rng: &mut Rng, depth: usize) -> Value {
        if rng.chance(0.03) {
            return Value::Null;
        }
        match &self.types[ty] {
            Ty::Struct(fields) => self.object(fields, rng, depth),
            Ty::Ptr(inner) => self.value(*inner, rng, depth),
            Ty::Slice(inner) => {
                let n = if depth >= self.shape.max_depth {
                    0
                } else {
                    rng.below(3)
                };
                Value::Array((0..n).map(|_| self.value(*inner, rng, depth + 1)).collect())
            }
            Ty::Map(inner) => {
                let n = rng.below(4);
                let mut m = Map::new();
                for _ in 0..n {
                    m.insert(rng.pick(STRINGS).to_string(), self.value(*inner, rng, depth + 1));
                }
                Value::Object(m)
            }
            Ty::String => json!(rng.pick(STRINGS)),
            Ty::Bool => json!(rng.chance(0.5)),
            Ty::Int => json!(rng.pick(&[0i64, 1, -1, 7, 30, 65535, 2_147_483_647, -2_147_483_648])),
            Ty::Quantity if rng.chance(0.2) => json!(rng.pick(&[json!(1), json!(0.5), json!(250)])),
            Ty::Quantity => json!(rng.pick(QUANTITIES)),
            Ty::Time => json!(rng.pick(&["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+02:00"])),
            Ty::IntOrString if rng.chance(0.5) => json!(rng.pick(&[0, 8080, 1])),
            Ty::IntOrString => json!(rng.pick(&["http", "25%", "80", ""])),
            Ty::RawJson => rng.pick(&[
                json!({"b": 1, "a": "<x>"}),
                json!([1, "two", null]),
                json!("s"),
                json!(3),
            ]),
        }
    }

    fn object(&self, fields: &[Field], rng: &mut Rng, depth: usize) -> Value {
        let mut m = Map::new();
        if depth < self.shape.max_depth {
            let p = self.shape.field_chance / (1u32 << depth.min(30)) as f64;
            for Field(name, ty, _) in fields {
                if rng.chance(p.max(0.02)) {
                    m.insert((*name).to_string(), self.value(*ty, rng, depth + 1));
                }
            }
        }
        Value::Object(m)
    }
}
