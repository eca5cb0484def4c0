//! Holds the lengths an Avro body claims against the bytes it has, before apache-avro allocates
//! for them.
//!
//! apache-avro 0.21 trusts length prefixes: it reserves a claimed string or `bytes` length (up
//! to its process-wide `max_allocation_bytes`, 512 MB by default) and a claimed `fixed` size
//! before reading them, reserves room for a claimed array or map block count times the size of
//! a decoded value, and recurses once per nesting level. A dozen hostile bytes could so make one
//! decode reserve gigabytes, abort the process on a failed allocation, or overflow the stack
//! through a recursive writer schema. One walk over the body, allocating nothing, holds each
//! claim against what remains; only a body that passes reaches apache-avro, so what it
//! allocates is bounded by the input.
//!
//! The walk also refuses what apache-avro's decoding refuses (a boolean byte other than 0 or 1,
//! an `int` beyond 32 bits, an enum index without a symbol, a string that is not UTF-8), so that
//! the decoder's plans, which [`skip`] over the fields they do not read with this same walk,
//! refuse the bodies apache-avro refuses.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, Namespace, ResolvedSchema};

/// How deep values may nest. The contract nests five levels (payload, samples, sample,
/// metadata union, map); the limit keeps apache-avro's recursion far from the stack's end.
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a body cannot be decoded safely. The text becomes the reason of its error row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BoundsError {
    #[error("body ends at byte {at} inside {what}")]
    Truncated { at: usize, what: &'static str },
    #[error("variable-length integer at byte {at} is longer than 10 bytes")]
    LongVarint { at: usize },
    #[error("{what} at byte {at} claims {claimed} bytes but {remaining} remain")]
    Length { what: &'static str, at: usize, claimed: i64, remaining: usize },
    #[error("block at byte {at} claims {count} items of at least {min_bytes} bytes but {remaining} bytes remain")]
    Block { at: usize, count: u64, min_bytes: usize, remaining: usize },
    #[error("block at byte {at} claims {count} items, more than the {budget} the body's size leaves")]
    ItemBudget { at: usize, count: u64, budget: u64 },
    #[error("union branch {index} at byte {at} does not exist ({variants} branches)")]
    UnionBranch { at: usize, index: i64, variants: usize },
    #[error("value nests deeper than {MAX_DEPTH} levels at byte {at}")]
    TooDeep { at: usize },
    #[error("writer schema does not resolve: {0}")]
    Schema(String),
    #[error("{what} at byte {at} is not valid")]
    Invalid { what: &'static str, at: usize },
}

/// The named types of a writer schema, resolved once per schema: named references in its
/// values are looked up there.
pub(crate) fn named_types(schema: &Schema) -> Result<HashMap<Name, Schema>, BoundsError> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| BoundsError::Schema(e.to_string()))?;
    Ok(resolved.get_names().iter().map(|(name, schema)| (name.clone(), (*schema).clone())).collect())
}

/// Checks that `body` can be decoded with `schema` (whose [`named_types`] are `names`) without
/// a claim outgrowing the body. Bytes after the value are left for the caller to judge.
pub(crate) fn check(schema: &Schema, names: &HashMap<Name, Schema>, body: &[u8]) -> Result<(), BoundsError> {
    let mut walk = Walk { body, at: 0, items_budget: body.len() as u64, names };
    walk.value(schema, &None, 0)
}

/// Walks the value of `schema` that starts at byte `at` of a body [`check`] has passed, and
/// returns where it ends.
pub(crate) fn skip(
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    namespace: &Namespace,
    body: &[u8],
    at: usize,
) -> Result<usize, BoundsError> {
    // The whole body's item budget: the check granted no more than that to all of it.
    let mut walk = Walk { body, at, items_budget: body.len() as u64, names };
    walk.value(schema, namespace, 0)?;
    Ok(walk.at)
}

struct Walk<'a> {
    body: &'a [u8],
    at: usize,
    /// Items a body may still hold over all its arrays and maps. Items of zero width (nulls,
    /// empty records) take no bytes, so without this budget a few bytes could claim millions
    /// of them; every other item owns at least one byte, so valid bodies never run out.
    items_budget: u64,
    names: &'a HashMap<Name, Schema>,
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.body.len() - self.at
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), BoundsError> {
        if n > self.remaining() {
            return Err(BoundsError::Truncated { at: self.body.len(), what });
        }
        self.at += n;
        Ok(())
    }

    /// Avro `int`/`long`: a zig-zag varint of at most 10 bytes, read as apache-avro reads it.
    fn long(&mut self, what: &'static str) -> Result<i64, BoundsError> {
        let start = self.at;
        let mut z = 0u64;
        for shift in 0..10 {
            let Some(&byte) = self.body.get(self.at) else {
                return Err(BoundsError::Truncated { at: self.at, what });
            };
            self.at += 1;
            z |= u64::from(byte & 0x7f) << (shift * 7);
            if byte & 0x80 == 0 {
                return Ok(if z & 1 == 0 { (z >> 1) as i64 } else { !(z >> 1) as i64 });
            }
        }
        Err(BoundsError::LongVarint { at: start })
    }

    /// A length prefix and the bytes it claims.
    fn counted(&mut self, what: &'static str) -> Result<&[u8], BoundsError> {
        let at = self.at;
        let claimed = self.long(what)?;
        match usize::try_from(claimed) {
            Ok(n) if n <= self.remaining() => {
                self.at += n;
                Ok(&self.body[self.at - n..self.at])
            }
            _ => Err(BoundsError::Length { what, at, claimed, remaining: self.remaining() }),
        }
    }

    /// A string: its length claim, and UTF-8.
    fn string(&mut self, what: &'static str) -> Result<(), BoundsError> {
        let at = self.at;
        match std::str::from_utf8(self.counted(what)?) {
            Ok(_) => Ok(()),
            Err(_) => Err(BoundsError::Invalid { what, at }),
        }
    }

    /// An Avro `int`: a varint that fits 32 bits.
    fn int(&mut self, what: &'static str) -> Result<i32, BoundsError> {
        let at = self.at;
        i32::try_from(self.long(what)?).map_err(|_| BoundsError::Invalid { what, at })
    }

    fn value(&mut self, schema: &Schema, namespace: &Namespace, depth: usize) -> Result<(), BoundsError> {
        if depth > MAX_DEPTH {
            return Err(BoundsError::TooDeep { at: self.at });
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => {
                let at = self.at;
                self.skip(1, "a boolean")?;
                match self.body[at] {
                    0 | 1 => Ok(()),
                    _ => Err(BoundsError::Invalid { what: "a boolean", at }),
                }
            }
            Schema::Int | Schema::Date | Schema::TimeMillis => self.int("an int").map(drop),
            Schema::Enum(enumeration) => {
                let at = self.at;
                match usize::try_from(self.int("an enum index")?) {
                    Ok(index) if index < enumeration.symbols.len() => Ok(()),
                    _ => Err(BoundsError::Invalid { what: "an enum index", at }),
                }
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long("a number").map(drop),
            Schema::Float => self.skip(4, "a float"),
            Schema::Double => self.skip(8, "a double"),
            Schema::Duration => self.skip(12, "a duration"),
            Schema::Fixed(fixed) => self.skip(fixed.size, "a fixed"),
            Schema::String | Schema::Uuid => self.string("string"),
            Schema::Bytes | Schema::BigDecimal => self.counted("bytes").map(drop),
            Schema::Decimal(decimal) => self.value(&decimal.inner, namespace, depth + 1),
            Schema::Array(array) => self.blocks(&array.items, false, namespace, depth),
            Schema::Map(map) => self.blocks(&map.types, true, namespace, depth),
            Schema::Union(union) => {
                let at = self.at;
                let index = self.long("a union branch")?;
                let variants = union.variants();
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| variants.get(i))
                    .ok_or(BoundsError::UnionBranch { at, index, variants: variants.len() })?;
                self.value(variant, namespace, depth + 1)
            }
            Schema::Record(record) => {
                let name = record.name.fully_qualified_name(namespace);
                for field in &record.fields {
                    self.value(&field.schema, &name.namespace, depth + 1)?;
                }
                Ok(())
            }
            Schema::Ref { name } => {
                let name = name.fully_qualified_name(namespace);
                let names = self.names;
                let schema = names
                    .get(&name)
                    .ok_or_else(|| BoundsError::Schema(format!("{} is not defined", name.fullname(None))))?;
                self.value(schema, &name.namespace, depth + 1)
            }
        }
    }

    /// Array or map blocks: each a count (negative: followed by the block's size in bytes),
    /// then the items; a zero count ends them.
    fn blocks(&mut self, items: &Schema, keyed: bool, namespace: &Namespace, depth: usize) -> Result<(), BoundsError> {
        let min_bytes = usize::from(keyed) + min_size(items);
        loop {
            let at = self.at;
            let count = self.long("a block count")?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long("a block size")?;
            }
            let count = count.unsigned_abs();
            let remaining = self.remaining();
            if min_bytes > 0 && count > (remaining / min_bytes) as u64 {
                return Err(BoundsError::Block { at, count, min_bytes, remaining });
            }
            if count > self.items_budget {
                return Err(BoundsError::ItemBudget { at, count, budget: self.items_budget });
            }
            self.items_budget -= count;
            for _ in 0..count {
                if keyed {
                    self.string("map key")?;
                }
                self.value(items, namespace, depth + 1)?;
            }
        }
    }
}

/// The fewest bytes a value of `schema` takes: a lower bound, so named references count as
/// zero (which also keeps recursive schemas finite).
fn min_size(schema: &Schema) -> usize {
    match schema {
        Schema::Null | Schema::Ref { .. } => 0,
        Schema::Float => 4,
        Schema::Double => 8,
        Schema::Duration => 12,
        Schema::Fixed(fixed) => fixed.size,
        Schema::Decimal(decimal) => min_size(&decimal.inner),
        Schema::Union(union) => 1 + union.variants().iter().map(min_size).min().unwrap_or(0),
        Schema::Record(record) => record.fields.iter().map(|f| min_size(&f.schema)).fold(0, usize::saturating_add),
        // Every other value starts with at least one byte: a varint, a length or a block count.
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check with the schema's named types resolved on the spot.
    fn check(schema: &Schema, body: &[u8]) -> Result<(), BoundsError> {
        super::check(schema, &named_types(schema).expect("test schemas resolve"), body)
    }

    fn long(n: i64) -> Vec<u8> {
        apache_avro::to_avro_datum(&apache_avro::Schema::Long, apache_avro::types::Value::Long(n))
            .expect("a long encodes")
    }

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    #[test]
    fn values_apache_avro_refuses_to_decode_are_refused() {
        let invalid = |r: Result<(), BoundsError>| matches!(r, Err(BoundsError::Invalid { .. }));
        assert!(invalid(check(&Schema::Boolean, &[2])));
        assert_eq!(check(&Schema::Boolean, &[1]), Ok(()));
        assert!(invalid(check(&Schema::Int, &long(i64::from(i32::MAX) + 1))));
        assert_eq!(check(&Schema::Int, &long(i64::from(i32::MIN))), Ok(()));
        let kind = Schema::parse_str(r#"{"type": "enum", "name": "Kind", "symbols": ["A", "B"]}"#).unwrap();
        assert!(invalid(check(&kind, &long(2))));
        assert!(invalid(check(&kind, &long(-1))));
        assert_eq!(check(&kind, &long(1)), Ok(()));
        assert!(invalid(check(&Schema::String, &[long(2), vec![0xc3, 0x28]].concat())));
        let map = Schema::parse_str(r#"{"type": "map", "values": "long"}"#).unwrap();
        assert!(invalid(check(&map, &[long(1), long(1), vec![0xff], long(0), long(0)].concat())));
    }

    #[test]
    fn varints_read_as_apache_avro_writes_them() {
        for n in [0, 1, -1, 63, -64, 64, 1 << 40, i64::MAX, i64::MIN] {
            let bytes = long(n);
            let mut walk = Walk { body: &bytes, at: 0, items_budget: 0, names: &HashMap::new() };
            assert_eq!(walk.long("n"), Ok(n));
            let written = apache_avro::to_avro_datum(&Schema::Long, apache_avro::types::Value::Long(n)).unwrap();
            assert_eq!(bytes, written);
        }
        assert!(matches!(check(&Schema::Long, &[0xff; 11]), Err(BoundsError::LongVarint { .. })));
    }

    #[test]
    fn claims_beyond_the_body_are_refused() {
        let s = [long(i64::MAX), b"abc".to_vec()].concat();
        assert!(matches!(check(&Schema::String, &s), Err(BoundsError::Length { claimed: i64::MAX, remaining: 3, .. })));
        assert!(matches!(check(&Schema::Bytes, &long(-5)), Err(BoundsError::Length { .. })));
        let fixed = schema(r#"{"type":"fixed","name":"f","size":1000000000000}"#);
        assert!(matches!(check(&fixed, &[0; 16]), Err(BoundsError::Truncated { .. })));
        let doubles = schema(r#"{"type":"array","items":"double"}"#);
        // Two doubles need 16 bytes; 9 remain.
        let body = [long(2), vec![0; 9]].concat();
        assert!(matches!(check(&doubles, &body), Err(BoundsError::Block { count: 2, min_bytes: 8, .. })));
        assert!(matches!(check(&doubles, &[long(-1), long(8), vec![0; 8], long(0)].concat()), Ok(())));
    }

    #[test]
    fn zero_width_items_draw_on_the_body_budget() {
        let nulls = schema(r#"{"type":"array","items":"null"}"#);
        // One item per body byte: two nulls in two bytes pass, a million do not.
        assert_eq!(check(&nulls, &[long(2), long(0)].concat()), Ok(()));
        let many = [long(1_000_000), long(0)].concat();
        assert!(matches!(check(&nulls, &many), Err(BoundsError::ItemBudget { count: 1_000_000, budget: 4, .. })));
        // Block after block cannot add up past the budget either.
        let blocks = [long(2), long(2), long(2), long(0)].concat();
        assert!(matches!(check(&nulls, &blocks), Err(BoundsError::ItemBudget { .. })));
    }

    #[test]
    fn recursion_stops_at_the_depth_limit() {
        let list = schema(r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#);
        let shallow = [vec![2u8; 10], vec![0]].concat();
        assert_eq!(check(&list, &shallow), Ok(()));
        let deep = [vec![2u8; 100_000], vec![0]].concat();
        assert!(matches!(check(&list, &deep), Err(BoundsError::TooDeep { .. })));
    }

    #[test]
    fn union_branches_and_truncation_are_named() {
        let opt = schema(r#"["null","string"]"#);
        assert!(matches!(check(&opt, &long(2)), Err(BoundsError::UnionBranch { index: 2, .. })));
        assert!(matches!(check(&opt, &long(-1)), Err(BoundsError::UnionBranch { index: -1, .. })));
        assert!(matches!(check(&opt, &[]), Err(BoundsError::Truncated { at: 0, .. })));
        assert!(matches!(check(&Schema::Double, &[0; 7]), Err(BoundsError::Truncated { .. })));
    }
}
