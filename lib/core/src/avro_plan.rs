//! Avro bodies decoded straight into payloads.
//!
//! apache-avro decodes a body into a `Value` tree shaped by the writer schema, resolves that tree
//! against the reader schema (a second tree), and [`HealthDataPayload::from_avro`] then copies it
//! into the payload: three allocations of every string and a schema lookup per field of every
//! record. Here each writer schema is compiled once, when it is registered, into a plan that says
//! for every writer field, in wire order, which payload field it fills or that it is skipped;
//! reader fields the writer lacks take the reader schema's defaults. That is Avro schema
//! resolution by field name, for the one reader schema healthlake has: apache-avro offers no
//! way to decode into a type without its `Value` tree, so this is code a crate should have had.
//!
//! A writer schema the plan cannot express (samples that are not an array of records, say) gets
//! no plan and decodes through apache-avro as before. Bodies reach the plan only after
//! [`crate::avro_bounds::check`], so every length it reads is known to fit; it checks anyway.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use apache_avro::schema::{Name, Namespace, RecordSchema};

use crate::payload::{HealthDataPayload, HealthSample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadField {
    PayloadId,
    DeviceId,
    UserId,
    Timestamp,
    AppVersion,
    Samples,
}

impl PayloadField {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "payloadId" => Self::PayloadId,
            "deviceId" => Self::DeviceId,
            "userId" => Self::UserId,
            "timestamp" => Self::Timestamp,
            "appVersion" => Self::AppVersion,
            "samples" => Self::Samples,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleField {
    Id,
    Type,
    Value,
    Unit,
    StartDate,
    EndDate,
    CreatedAt,
    SourceBundle,
    Metadata,
    IsSynced,
}

impl SampleField {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Self::Id,
            "type" => Self::Type,
            "value" => Self::Value,
            "unit" => Self::Unit,
            "startDate" => Self::StartDate,
            "endDate" => Self::EndDate,
            "createdAt" => Self::CreatedAt,
            "sourceBundle" => Self::SourceBundle,
            "metadata" => Self::Metadata,
            "isSynced" => Self::IsSynced,
            _ => return None,
        })
    }
}

/// One writer field: read into a payload field, or skipped. Each carries its schema and the
/// namespace named references in it are relative to.
#[derive(Debug, Clone)]
enum Step<F> {
    Read(F, Schema, Namespace),
    Skip(Schema, Namespace),
}

/// A writer schema compiled against the payload.
#[derive(Debug, Clone)]
pub(crate) struct PayloadPlan {
    payload: Vec<Step<PayloadField>>,
    sample: Vec<Step<SampleField>>,
    /// Reader sample fields the writer lacks, with the reader's default.
    sample_defaults: Vec<(SampleField, serde_json::Value)>,
}

impl PayloadPlan {
    /// The plan of `writer` (already checked readable with `reader`; `names` are its named
    /// types), or None when the writer's shape is one the plan does not express.
    pub(crate) fn compile(writer: &Schema, names: &HashMap<Name, Schema>, reader: &Schema) -> Option<Self> {
        let Schema::Record(root) = writer else { return None };
        let Schema::Record(reader_root) = reader else { return None };
        let mut plan = PayloadPlan { payload: vec![], sample: vec![], sample_defaults: vec![] };
        let root_namespace = root.name.namespace.clone();
        let mut sample_record: Option<(RecordSchema, Namespace)> = None;
        for field in &root.fields {
            plan.payload.push(match PayloadField::named(&field.name) {
                Some(PayloadField::Samples) => {
                    sample_record = Some(sample_record_of(names, &field.schema, &root_namespace)?);
                    Step::Read(PayloadField::Samples, field.schema.clone(), root_namespace.clone())
                }
                Some(target) => Step::Read(target, field.schema.clone(), root_namespace.clone()),
                None => Step::Skip(field.schema.clone(), root_namespace.clone()),
            });
        }
        // Every reader payload field is required: a writer without one is not readable, and
        // was refused when registered.
        if reader_root.fields.iter().any(|f| !root.lookup.contains_key(&f.name)) {
            return None;
        }
        let (sample, sample_namespace) = sample_record?;
        let reader_sample = reader_sample_record(reader_root)?;
        for field in &sample.fields {
            plan.sample.push(match SampleField::named(&field.name) {
                Some(target) => Step::Read(target, field.schema.clone(), sample_namespace.clone()),
                None => Step::Skip(field.schema.clone(), sample_namespace.clone()),
            });
        }
        for field in &reader_sample.fields {
            if !sample.lookup.contains_key(&field.name) {
                plan.sample_defaults.push((SampleField::named(&field.name)?, field.default.clone()?));
            }
        }
        Some(plan)
    }

    /// Decodes one body (`names`: the writer's named types); bytes after the value are left for
    /// the caller to judge.
    pub(crate) fn decode(
        &self,
        names: &HashMap<Name, Schema>,
        body: &[u8],
    ) -> Result<(HealthDataPayload, usize), String> {
        let mut cursor = Cursor { body, at: 0, names };
        let mut read_sample = |cursor: &mut Cursor<'_>| self.sample(cursor);
        let mut payload = HealthDataPayload::default();
        for step in &self.payload {
            match step {
                Step::Skip(schema, namespace) => cursor.skip(schema, namespace)?,
                Step::Read(PayloadField::Samples, schema, namespace) => {
                    cursor.samples(schema, namespace, &mut read_sample, &mut payload.samples)?
                }
                Step::Read(field, schema, namespace) => {
                    let text = cursor.string(schema, namespace)?;
                    match field {
                        PayloadField::PayloadId => payload.payload_id = text,
                        PayloadField::DeviceId => payload.device_id = text,
                        PayloadField::UserId => payload.user_id = text,
                        PayloadField::Timestamp => payload.timestamp = text,
                        PayloadField::AppVersion => payload.app_version = text,
                        PayloadField::Samples => unreachable!("matched above"),
                    }
                }
            }
        }
        Ok((payload, cursor.at))
    }

    fn sample(&self, cursor: &mut Cursor<'_>) -> Result<HealthSample, String> {
        let mut sample = HealthSample::default();
        for step in &self.sample {
            match step {
                Step::Skip(schema, namespace) => cursor.skip(schema, namespace)?,
                Step::Read(field, schema, namespace) => match field {
                    SampleField::Id => sample.id = cursor.string(schema, namespace)?,
                    SampleField::Type => sample.data_type = cursor.string(schema, namespace)?,
                    SampleField::Value => sample.value = cursor.number(schema, namespace)?,
                    SampleField::Unit => sample.unit = cursor.string(schema, namespace)?,
                    SampleField::StartDate => sample.start_date = cursor.string(schema, namespace)?,
                    SampleField::EndDate => sample.end_date = cursor.string(schema, namespace)?,
                    SampleField::CreatedAt => sample.created_at = cursor.string(schema, namespace)?,
                    SampleField::SourceBundle => sample.source_bundle = cursor.string(schema, namespace)?,
                    SampleField::Metadata => sample.metadata = cursor.string_map(schema, namespace)?,
                    SampleField::IsSynced => sample.is_synced = cursor.boolean(schema, namespace)?,
                },
            }
        }
        for (field, default) in &self.sample_defaults {
            apply_default(&mut sample, *field, default)?;
        }
        Ok(sample)
    }
}

/// The record schema of the samples array, through unions with null and named references.
fn sample_record_of(
    names: &HashMap<Name, Schema>,
    schema: &Schema,
    namespace: &Namespace,
) -> Option<(RecordSchema, Namespace)> {
    match schema {
        Schema::Array(array) => record_of(names, &array.items, namespace),
        Schema::Union(union) => {
            let mut arrays = union.variants().iter().filter(|v| !matches!(v, Schema::Null));
            let only = arrays.next()?;
            if arrays.next().is_some() {
                return None;
            }
            sample_record_of(names, only, namespace)
        }
        Schema::Ref { name } => {
            let name = name.fully_qualified_name(namespace);
            sample_record_of(names, names.get(&name)?, &name.namespace)
        }
        _ => None,
    }
}

fn record_of(
    names: &HashMap<Name, Schema>,
    schema: &Schema,
    namespace: &Namespace,
) -> Option<(RecordSchema, Namespace)> {
    match schema {
        Schema::Record(record) => {
            let name = record.name.fully_qualified_name(namespace);
            Some((record.clone(), name.namespace))
        }
        Schema::Ref { name } => {
            let name = name.fully_qualified_name(namespace);
            record_of(names, names.get(&name)?, &name.namespace)
        }
        _ => None,
    }
}

fn reader_sample_record(reader_root: &RecordSchema) -> Option<&RecordSchema> {
    let samples = &reader_root.fields[*reader_root.lookup.get("samples")?].schema;
    match samples {
        Schema::Array(array) => match array.items.as_ref() {
            Schema::Record(record) => Some(record),
            _ => None,
        },
        _ => None,
    }
}

/// What the reader schema's default gives a sample field the writer lacks.
fn apply_default(sample: &mut HealthSample, field: SampleField, default: &serde_json::Value) -> Result<(), String> {
    use serde_json::Value as Json;
    let text = || match default {
        Json::String(s) => Ok(Some(s.clone())),
        Json::Null => Ok(None),
        other => Err(format!("reader default {other} is not a string")),
    };
    match field {
        SampleField::Id => sample.id = text()?,
        SampleField::Type => sample.data_type = text()?,
        SampleField::Unit => sample.unit = text()?,
        SampleField::StartDate => sample.start_date = text()?,
        SampleField::EndDate => sample.end_date = text()?,
        SampleField::CreatedAt => sample.created_at = text()?,
        SampleField::SourceBundle => sample.source_bundle = text()?,
        SampleField::Value => sample.value = default.as_f64(),
        SampleField::IsSynced => sample.is_synced = default.as_bool(),
        SampleField::Metadata => {
            sample.metadata = match default {
                Json::Object(map) => Some(
                    map.iter()
                        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())).ok_or("a map of strings"))
                        .collect::<Result<BTreeMap<_, _>, _>>()?,
                ),
                _ => None,
            }
        }
    }
    Ok(())
}

struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
    names: &'a HashMap<Name, Schema>,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.body.len());
        let end = end.ok_or_else(|| format!("body ends inside {what} at byte {}", self.at))?;
        let bytes = &self.body[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    /// A zig-zag varint, as apache-avro reads it.
    fn long(&mut self) -> Result<i64, String> {
        let mut z = 0u64;
        for shift in 0..10 {
            let byte = self.take(1, "a number")?[0];
            z |= u64::from(byte & 0x7f) << (shift * 7);
            if byte & 0x80 == 0 {
                return Ok(if z & 1 == 0 { (z >> 1) as i64 } else { !(z >> 1) as i64 });
            }
        }
        Err(format!("variable-length integer longer than 10 bytes before byte {}", self.at))
    }

    /// An Avro `int`: a varint that must fit 32 bits.
    fn int(&mut self) -> Result<i32, String> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| format!("int {n} out of range"))
    }

    fn counted(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("{what} of negative length {n}"))?;
        self.take(n, what)
    }

    /// A named reference's schema and its namespace.
    fn named(
        &self,
        name: &apache_avro::schema::Name,
        namespace: &Namespace,
    ) -> Result<(&'a Schema, Namespace), String> {
        let name = name.fully_qualified_name(namespace);
        let names: &'a HashMap<Name, Schema> = self.names;
        let schema = names.get(&name).ok_or_else(|| format!("{} is not defined", name.fullname(None)))?;
        Ok((schema, name.namespace))
    }

    /// The branch a union value takes.
    fn branch<'s>(&mut self, union: &'s apache_avro::schema::UnionSchema) -> Result<&'s Schema, String> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| union.variants().get(i))
            .ok_or_else(|| format!("union branch {index} does not exist"))
    }

    /// The schema a value of `schema` is read as: a union reads its branch, a named reference
    /// its definition; None for a null. A named type is never a union or a reference, so this
    /// ends.
    fn concrete<'s>(
        &mut self,
        schema: &'s Schema,
        namespace: &Namespace,
    ) -> Result<Option<(&'s Schema, Namespace)>, String>
    where
        'a: 's,
    {
        let (mut schema, mut namespace) = (schema, namespace.clone());
        loop {
            match schema {
                Schema::Null => return Ok(None),
                Schema::Union(union) => schema = self.branch(union)?,
                Schema::Ref { name } => (schema, namespace) = self.named(name, &namespace)?,
                other => return Ok(Some((other, namespace))),
            }
        }
    }

    fn string(&mut self, schema: &Schema, namespace: &Namespace) -> Result<Option<String>, String> {
        match self.concrete(schema, namespace)? {
            None => Ok(None),
            Some((Schema::String | Schema::Bytes, _)) => {
                let bytes = self.counted("a string")?;
                let text = std::str::from_utf8(bytes).map_err(|e| format!("string is not UTF-8: {e}"))?;
                Ok(Some(text.to_string()))
            }
            Some((other, _)) => Err(format!("a {other:?} where the payload has a string")),
        }
    }

    fn number(&mut self, schema: &Schema, namespace: &Namespace) -> Result<Option<f64>, String> {
        match self.concrete(schema, namespace)? {
            None => Ok(None),
            Some((Schema::Double, _)) => {
                Ok(Some(f64::from_le_bytes(self.take(8, "a double")?.try_into().expect("8 bytes"))))
            }
            Some((Schema::Float, _)) => {
                Ok(Some(f64::from(f32::from_le_bytes(self.take(4, "a float")?.try_into().expect("4 bytes")))))
            }
            Some((Schema::Long, _)) => Ok(Some(self.long()? as f64)),
            Some((Schema::Int, _)) => Ok(Some(f64::from(self.int()?))),
            Some((other, _)) => Err(format!("a {other:?} where the payload has a number")),
        }
    }

    fn boolean(&mut self, schema: &Schema, namespace: &Namespace) -> Result<Option<bool>, String> {
        match self.concrete(schema, namespace)? {
            None => Ok(None),
            Some((Schema::Boolean, _)) => match self.take(1, "a boolean")?[0] {
                0 => Ok(Some(false)),
                1 => Ok(Some(true)),
                other => Err(format!("invalid boolean byte {other}")),
            },
            Some((other, _)) => Err(format!("a {other:?} where the payload has a boolean")),
        }
    }

    fn string_map(
        &mut self,
        schema: &Schema,
        namespace: &Namespace,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        match self.concrete(schema, namespace)? {
            None => Ok(None),
            Some((Schema::Map(map), namespace)) => {
                let mut out = BTreeMap::new();
                self.blocks(|cursor| {
                    let key = cursor.string(&Schema::String, &namespace)?.expect("a string schema reads a string");
                    let value = cursor.string(&map.types, &namespace)?.ok_or("a null map value")?;
                    out.insert(key, value);
                    Ok(())
                })?;
                Ok(Some(out))
            }
            Some((other, _)) => Err(format!("a {other:?} where the payload has a map")),
        }
    }

    fn samples(
        &mut self,
        schema: &Schema,
        namespace: &Namespace,
        read: &mut dyn FnMut(&mut Cursor<'a>) -> Result<HealthSample, String>,
        out: &mut Vec<HealthSample>,
    ) -> Result<(), String> {
        match self.concrete(schema, namespace)? {
            None => Ok(()),
            Some((Schema::Array(_), _)) => self.blocks(|cursor| {
                out.push(read(cursor)?);
                Ok(())
            }),
            Some((other, _)) => Err(format!("a {other:?} where the payload has samples")),
        }
    }

    /// Array or map blocks: a count (negative: followed by the block's size in bytes), the
    /// items, until a zero count.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), String>) -> Result<(), String> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self)?;
            }
        }
    }

    /// Skips a value the payload has no field for, with the walk the bounds check made: it
    /// refuses what apache-avro's decoding refuses.
    fn skip(&mut self, schema: &Schema, namespace: &Namespace) -> Result<(), String> {
        self.at =
            crate::avro_bounds::skip(schema, self.names, namespace, self.body, self.at).map_err(|e| e.to_string())?;
        Ok(())
    }
}
