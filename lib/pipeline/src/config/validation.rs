//! The validation rules: `VALIDATION_*`, heart rate and step limits, future skew, sanity limits.

use std::collections::HashMap;

use chrono::Duration;
use healthlake_core::{SanityLimits, ValidationRules};

use super::env;
use super::values::{ConfigError, num, parse, parse_bool};

pub(super) fn validation_rules(vars: &HashMap<String, String>) -> Result<ValidationRules, ConfigError> {
    let validation = ValidationRules {
        enabled: parse(vars, env::VALIDATION_ENABLED, true, "true or false", parse_bool)?,
        strict_mode: parse(vars, env::VALIDATION_STRICT_MODE, false, "true or false", parse_bool)?,
        min_heart_rate: parse(vars, env::MIN_HEART_RATE, 30.0, "a number of bpm", num)?,
        max_heart_rate: parse(vars, env::MAX_HEART_RATE, 250.0, "a number of bpm", num)?,
        max_steps_per_day: parse(vars, env::MAX_STEPS_PER_DAY, 100_000.0, "a number of steps", num)?,
        max_future_skew: Duration::hours(parse(vars, env::HEALTHLAKE_MAX_FUTURE_SKEW_HOURS, 24, "whole hours", num)?),
        sanity_limits: parse(
            vars,
            env::HEALTHLAKE_VALUE_SANITY_LIMITS,
            SanityLimits::default(),
            "comma-separated type=limit pairs with positive limits, `*` for all other types (e.g. *=1e9,steps=1e6)",
            parse_sanity_limits,
        )?,
    };
    if validation.min_heart_rate > validation.max_heart_rate {
        return Err(ConfigError {
            variable: env::MIN_HEART_RATE,
            value: validation.min_heart_rate.to_string(),
            expected: format!("at most MAX_HEART_RATE ({})", validation.max_heart_rate),
        });
    }
    Ok(validation)
}

fn parse_sanity_limits(text: &str) -> Option<SanityLimits> {
    let mut limits = SanityLimits::default();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (data_type, limit) = pair.split_once('=')?;
        let limit: f64 = limit.trim().parse().ok().filter(|l: &f64| l.is_finite() && *l > 0.0)?;
        match data_type.trim() {
            "" => return None,
            "*" => limits.default = limit,
            data_type => {
                limits.by_type.insert(data_type.to_string(), limit);
            }
        }
    }
    Some(limits)
}
