//! The Kafka side of healthlake run locally: what the Lambda event source mapping does in
//! production (a consumer group cut into invocations, offsets committed after success, retries,
//! an on-failure destination), and a producer of realistic payloads. Never linked into a Lambda
//! binary: the functions receive their events from the mapping.

pub mod batch;
pub mod destination;
pub mod invoke;
pub mod lanes;
pub mod produce;
pub mod runner;
pub mod settings;

pub use batch::{Batch, BatchLimits, ConsumedRecord};
pub use destination::FailureDestination;
pub use invoke::{FunctionInvoker, InProcessInvoker, Invocation, InvokeApiInvoker, InvokeFailure};
pub use runner::{RunReport, Runner};
pub use settings::{KafkaSettings, RunnerSettings, StartingPosition};
