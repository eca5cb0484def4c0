//! The pure domain core of healthlake: decode → flatten → validate → window → aggregate.
//!
//! Nothing in this crate performs I/O or talks to AWS, so every rule can be unit- and
//! property-tested and benchmarked on its own. Adapters (Iceberg, accumulator stores, schema
//! registries) live in sibling crates and depend on this one, never the other way round.

pub mod aggregate;
mod avro_bounds;
mod avro_plan;
pub mod decode;
pub mod generate;
pub mod labels;
pub mod payload;
pub mod record;
pub mod retry;
pub mod time;
pub mod validate;
pub mod window;

pub use aggregate::{AggregateStats, WelfordState};
pub use decode::{DecodeError, Decoder, WireValue};
pub use payload::{HealthDataPayload, HealthSample};
pub use record::{AggregateRow, ErrorRecord, ErrorType, KafkaCoordinates, RawRecord, RecordOutcome};
pub use retry::{ErrorClass, classify_aws_error};
pub use validate::{SanityLimits, ValidationRules, Validator};
pub use window::{Window, WindowKind};
